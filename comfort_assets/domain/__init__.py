"""Pure, typed domain core: no Dagster, no BentoML, no I/O."""
