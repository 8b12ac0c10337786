"""Monitoring plots as Markdown images for the Dagster UI."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from comfort_assets.reporting import markdown_image


def _markdown(figure: plt.Figure, alt: str) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return markdown_image(buffer.getvalue(), alt)


def drift_plot(drift: pd.DataFrame) -> str:
    """Seasonally matched PSI next to raw PSI, per feature (worst station)."""
    worst = drift.groupby("feature")[["psi", "raw_psi"]].max()
    figure, axis = plt.subplots(figsize=(6, 3.5))
    worst.rename(columns={"psi": "same weeks", "raw_psi": "whole training window"}).plot.bar(
        ax=axis
    )
    axis.set(ylabel="PSI (worst station)", title="input PSI against the training data")
    return _markdown(figure, "feature drift")


def quality_plot(quality: pd.DataFrame) -> str:
    """Per station: completeness of the day and anomalies, side by side."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(7, 3))
    quality.plot.bar(x="station", y="completeness", ax=left, legend=False, ylim=(0, 1.05))
    left.set(title="hours observed", ylabel="share of the day")
    quality.plot.bar(
        x="station", y=["anomalies", "implausible_jumps", "quarantined_rows"], ax=right
    )
    right.set(title="anomalies, jumps, quarantined")
    return _markdown(figure, "data quality")


def performance_plot(log: pd.DataFrame) -> str:
    """Daily RMSE of the forecasts and of persistence, per station."""
    known = log[log["actual_source"] != "pending"].copy()
    known["day"] = known["valid_at"].dt.floor("D")
    known["error2"] = (known["prediction"] - known["actual"]) ** 2
    known["persistence_error2"] = (known["persistence"] - known["actual"]) ** 2
    daily = known.groupby(["day", "station"])[["error2", "persistence_error2"]].mean() ** 0.5
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for station, frame in daily.groupby(level="station"):
        days = frame.index.get_level_values("day")
        axis.plot(days, frame["error2"], marker="o", label=f"{station} model")
        axis.plot(days, frame["persistence_error2"], linestyle=":", label=f"{station} persistence")
    axis.set(ylabel="RMSE (DI)", title="production RMSE by day")
    axis.legend(fontsize=7)
    figure.autofmt_xdate()
    return _markdown(figure, "production performance")
