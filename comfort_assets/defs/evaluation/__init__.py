"""Group `evaluation`."""
