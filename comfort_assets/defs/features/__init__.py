"""Group `features`."""
