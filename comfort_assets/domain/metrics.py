"""Forecast error metrics and skill against a reference forecast."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def rmse(actual: Array, predicted: Array) -> float:
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    return float(np.sqrt(np.mean(error**2))) if error.size else float("nan")


def mae(actual: Array, predicted: Array) -> float:
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    return float(np.mean(np.abs(error))) if error.size else float("nan")


def bias(actual: Array, predicted: Array) -> float:
    """Mean of predicted − actual: positive means the forecast runs hot."""
    error = np.asarray(predicted, dtype=float) - np.asarray(actual, dtype=float)
    return float(np.mean(error)) if error.size else float("nan")


def skill(model_rmse: float, reference_rmse: float) -> float:
    """1 − RMSE/RMSE_ref: 0 is no better than the reference, 0.3 is 30 % better."""
    return 1.0 - model_rmse / reference_rmse if reference_rmse > 0 else float("nan")


def scores(actual: Array, predicted: Array, reference: Array | None = None) -> dict[str, float]:
    """RMSE, MAE, bias, rows and (with a reference forecast, e.g. persistence) skill."""
    out = {
        "rmse": rmse(actual, predicted),
        "mae": mae(actual, predicted),
        "bias": bias(actual, predicted),
        "rows": float(np.asarray(actual).size),
    }
    if reference is not None:
        out["skill"] = skill(out["rmse"], rmse(actual, reference))
    return out
