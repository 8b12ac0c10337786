"""Evaluation plots as PNG bytes (matplotlib, no display), shown in the Dagster UI and W&B."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from comfort_assets.domain.evaluation import EvaluationReport


def _png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str) -> bytes:
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(actual, predicted, s=2, alpha=0.3)
    low, high = float(np.nanmin(actual)), float(np.nanmax(actual))
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set(xlabel="actual DI", ylabel="forecast DI", title=title)
    return _png(figure)


def error_by_month(by_month: pd.DataFrame) -> bytes:
    """``by_month``: index month, one column of RMSE per model."""
    figure, axis = plt.subplots(figsize=(6, 3.5))
    by_month.plot.bar(ax=axis)
    axis.set(xlabel="month", ylabel="RMSE (DI)", title="holdout RMSE by month")
    return _png(figure)


def feature_importance(importance: dict[str, float], top: int = 15) -> bytes:
    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    figure, axis = plt.subplots(figsize=(6, 4.5))
    axis.barh([k for k, _ in items], [v for _, v in items])
    axis.set(xlabel="share of importance", title="feature importance")
    return _png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def evaluation_plots(report: EvaluationReport) -> dict[str, bytes]:
    """The three plots of a holdout evaluation, by name."""
    return {
        "predicted_vs_actual": predicted_vs_actual(
            report.actual, report.predicted, report.challenger_name
        ),
        "error_by_month": error_by_month(report.by_month),
        "feature_importance": feature_importance(report.challenger.feature_importance()),
    }


def markdown_images(plots: Mapping[str, bytes]) -> str:
    return "\n\n".join(markdown_image(png, name) for name, png in plots.items())
