"""Serving: the BentoML service (`service.ComfortForecast`), what it shares with the
benchmark's FastAPI twins in `bench/` (`core`, `schemas`), and its HTTP guard (`guard`).
Importing this package stays light: the service module is only imported by `bentoml serve`."""
