"""Group `serving`."""
