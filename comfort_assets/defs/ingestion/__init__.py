"""Group `ingestion`."""
