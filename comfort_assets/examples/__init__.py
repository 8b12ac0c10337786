"""Small runnable examples that help a new user try the platform on their own data."""
