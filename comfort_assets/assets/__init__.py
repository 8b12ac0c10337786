"""Thin Dagster wiring around the domain core, one module per asset group."""
