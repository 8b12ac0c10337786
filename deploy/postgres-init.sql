-- The prediction log lives next to the Dagster instance, in its own database.
CREATE DATABASE predictions OWNER comfort;
