"""XGBoost training on a Dask cluster, behind one switch.

When the training table outgrows one machine, XGBoost's own distributed path
(`xgboost.dask`) builds the same trees from row partitions held by the workers, with the
histograms summed across them. Same features, target (the DI change), parameters and early
stopping on the validation split as `modeling.fit_model`, and the same `ForecastModel` (one
booster, saved as UBJ), so the registry, the service and the evaluation do not change.

``COMFORT_TRAINING_ENGINE=local`` (default) or ``dask``; with ``dask``,
``COMFORT_DASK_SCHEDULER`` (``tcp://host:8786``) names a running cluster, else a local one is
started for the fit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from comfort_assets.domain.modeling import DEFAULT_PARAMS, ForecastModel, TrainingData, fit_model

if TYPE_CHECKING:
    from distributed import Client

ENGINES: tuple[str, ...] = ("local", "dask")
ENGINE_ENV = "COMFORT_TRAINING_ENGINE"
SCHEDULER_ENV = "COMFORT_DASK_SCHEDULER"


def training_engine(environ: Mapping[str, str] = os.environ) -> str:
    engine = environ.get(ENGINE_ENV) or "local"
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV} must be one of {ENGINES}, got {engine!r}")
    return engine


@contextmanager
def dask_client(address: str | None = None, n_workers: int = 2) -> Iterator[Client]:
    """A client of the cluster at ``address`` (or ``COMFORT_DASK_SCHEDULER``), else of a local
    cluster of ``n_workers`` single-threaded processes that lives as long as the block."""
    from distributed import Client, LocalCluster

    address = address or os.environ.get(SCHEDULER_ENV)
    if address:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def fit_xgboost_dask(
    client: Client,
    train: TrainingData,
    validation: TrainingData,
    feature_names: Sequence[str],
    horizon_h: int,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> ForecastModel:
    """`fit_model("xgboost", ...)` with the rows split across the cluster's workers."""
    import dask.array as da
    from xgboost import dask as dxgb

    params = dict(params or {})
    merged = {**DEFAULT_PARAMS["xgboost"], **params}
    workers = max(1, len(client.scheduler_info()["workers"]))

    def rows(values):
        # one partition per worker: each holds its share of the rows
        chunk = max(1, math.ceil(len(values) / workers))
        return da.from_array(values, chunks=(chunk, *values.shape[1:]))

    estimator = dxgb.DaskXGBRegressor(random_state=seed, tree_method="hist", **merged)
    estimator.client = client
    estimator.fit(
        rows(train.features),
        rows(train.change),
        eval_set=[(rows(validation.features), rows(validation.change))],
        verbose=False,
    )
    best = int(estimator.best_iteration)
    return ForecastModel(
        family="xgboost",
        feature_names=list(feature_names),
        horizon_h=horizon_h,
        members=[estimator.get_booster()[: best + 1]],
        params={**merged, "best_iteration": best, "engine": "dask", "dask_workers": workers},
        seeds=[seed],
    )


def fit_xgboost(
    train: TrainingData,
    validation: TrainingData,
    feature_names: Sequence[str],
    horizon_h: int,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    engine: str | None = None,
) -> ForecastModel:
    """The switch a training step calls: one machine, or XGBoost on Dask."""
    if (engine or training_engine()) == "local":
        return fit_model("xgboost", train, validation, feature_names, horizon_h, seed, params)
    with dask_client() as client:
        return fit_xgboost_dask(client, train, validation, feature_names, horizon_h, seed, params)
