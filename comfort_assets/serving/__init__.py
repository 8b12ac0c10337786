"""Serving: the BentoML service (`service.ComfortForecast`) and what it shares with the
benchmark's FastAPI apps (`core`, `schemas`). Importing this package stays light: the
service module is only imported by `bentoml serve`."""
