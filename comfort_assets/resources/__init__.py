"""Every side effect behind a `dg.ConfigurableResource`; `deployment.py` picks them."""
