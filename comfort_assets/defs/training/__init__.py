"""Group `training`."""
