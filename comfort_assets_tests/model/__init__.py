"""Behaviour of a trained model (directional, invariance, minimum functionality)."""
