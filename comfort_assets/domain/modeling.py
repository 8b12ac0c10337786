"""Model families, fitting, and a safe on-disk format.

Every model predicts the change DI(t+h) − DI(t) and adds it back to DI(t) (docs/data.md: this
beats predicting the level). A `ForecastModel` is one fitted estimator or an average of
several; it serialises to XGBoost's own UBJ or skops, never bare pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

FAMILIES: tuple[str, ...] = ("ridge", "random_forest", "xgboost")

DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "ridge": {"alpha": 1.0},
    "random_forest": {
        "n_estimators": 40,
        "max_depth": 14,
        "min_samples_leaf": 5,
        "max_samples": 0.5,
        # half the features per split: 2× faster and a lower validation RMSE than all of them
        "max_features": 0.5,
    },
    "xgboost": {
        "n_estimators": 3000,
        "learning_rate": 0.03,
        "max_depth": 6,
        "min_child_weight": 5,
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "reg_lambda": 10.0,
        "early_stopping_rounds": 50,
    },
}


@dataclass(frozen=True)
class TrainingData:
    """Features and the change target of one split."""

    features: npt.NDArray[np.float64]
    change: npt.NDArray[np.float64]
    di_now: npt.NDArray[np.float64]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, feature_names: Sequence[str]) -> TrainingData:
        now = frame["di_now"].to_numpy(dtype=float)
        return cls(
            features=frame[list(feature_names)].to_numpy(dtype=float),
            change=frame["di_target"].to_numpy(dtype=float) - now,
            di_now=now,
        )

    @property
    def di_target(self) -> npt.NDArray[np.float64]:
        return self.di_now + self.change

    def subset(self, index: npt.NDArray[np.intp]) -> TrainingData:
        return TrainingData(self.features[index], self.change[index], self.di_now[index])


@dataclass
class ForecastModel:
    """One estimator, or the average of several, predicting the DI change."""

    family: str
    feature_names: list[str]
    horizon_h: int
    members: list[Any]
    params: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        seeds = "+".join(str(s) for s in self.seeds)
        return f"{self.family}[{seeds}]" if seeds else self.family

    def predict_change(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        predictions = [_predict(member, features) for member in self.members]
        return np.mean(predictions, axis=0)

    def predict_di(
        self, features: npt.NDArray[np.float64], di_now: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        return np.asarray(di_now, dtype=float) + self.predict_change(features)

    def feature_importance(self) -> dict[str, float]:
        values = np.zeros(len(self.feature_names))
        for member in self.members:
            if isinstance(member, xgb.Booster | xgb.XGBRegressor):
                booster = member.get_booster() if isinstance(member, xgb.XGBRegressor) else member
                gains = booster.get_score(importance_type="gain")
                values += [gains.get(f"f{i}", 0.0) for i in range(len(self.feature_names))]
            elif isinstance(member, Pipeline) and hasattr(member[-1], "feature_importances_"):
                values += member[-1].feature_importances_
            elif isinstance(member, Pipeline) and hasattr(member[-1], "coef_"):
                values += np.abs(member[-1].coef_)
        total = values.sum()
        shares = values / total if total > 0 else values
        return dict(zip(self.feature_names, shares.tolist(), strict=True))

    # --- safe serialisation -------------------------------------------------------------
    def to_files(self) -> dict[str, bytes]:
        """File name → bytes; `model.json` describes the rest."""
        files: dict[str, bytes] = {}
        member_files = []
        for i, member in enumerate(self.members):
            if isinstance(member, xgb.XGBRegressor | xgb.Booster):
                booster = member.get_booster() if isinstance(member, xgb.XGBRegressor) else member
                name = f"member-{i}.ubj"
                files[name] = bytes(booster.save_raw(raw_format="ubj"))
            else:
                # imported here: skops walks all of scikit-learn on import (~1.5 s of start-up)
                import skops.io as sio

                name = f"member-{i}.skops"
                files[name] = sio.dumps(member)
            member_files.append(name)
        manifest = {
            "family": self.family,
            "feature_names": self.feature_names,
            "horizon_h": self.horizon_h,
            "params": self.params,
            "seeds": self.seeds,
            "members": member_files,
        }
        files["model.json"] = json.dumps(manifest, indent=1, default=str).encode()
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes]) -> ForecastModel:
        manifest = json.loads(files["model.json"])
        members = []
        for name in manifest["members"]:
            if name.endswith(".ubj"):
                booster = xgb.Booster()
                booster.load_model(bytearray(files[name]))
                members.append(booster)
            else:
                import skops.io as sio

                trusted = sio.get_untrusted_types(data=files[name])
                unexpected = [t for t in trusted if t not in SKOPS_TYPES]
                if unexpected:
                    raise ValueError(f"{name}: refusing to load unexpected types {unexpected}")
                members.append(sio.loads(files[name], trusted=trusted))
        return cls(
            family=manifest["family"],
            feature_names=list(manifest["feature_names"]),
            horizon_h=int(manifest["horizon_h"]),
            members=members,
            params=manifest.get("params", {}),
            seeds=list(manifest.get("seeds", [])),
        )


def _predict(member: Any, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if isinstance(member, xgb.Booster):
        return member.inplace_predict(features)
    if isinstance(member, xgb.XGBRegressor):
        return member.get_booster().inplace_predict(features)
    return member.predict(features)


#: the only types outside skops' defaults that the scikit-learn families store; anything else
#: in a model file (a function reference such as ``numpy.load``) is refused, not trusted
SKOPS_TYPES = frozenset({"numpy.dtype", "sklearn.tree._tree.Tree"})


def build_estimator(family: str, params: Mapping[str, Any], seed: int, n_jobs: int = 2) -> Any:
    if family not in FAMILIES:
        raise ValueError(f"model family must be one of {FAMILIES}, got {family!r}")
    merged = {**DEFAULT_PARAMS[family], **params}
    if family == "ridge":
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), Ridge(**merged))
    if family == "random_forest":
        return make_pipeline(
            SimpleImputer(strategy="median"),
            RandomForestRegressor(random_state=seed, n_jobs=n_jobs, **merged),
        )
    return xgb.XGBRegressor(random_state=seed, n_jobs=n_jobs, tree_method="hist", **merged)


def fit_model(
    family: str,
    train: TrainingData,
    validation: TrainingData,
    feature_names: Sequence[str],
    horizon_h: int,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> ForecastModel:
    """Fit one member; XGBoost stops early on the validation split (never on the holdout)."""
    params = dict(params or {})
    estimator = build_estimator(family, params, seed)
    if family == "xgboost":
        estimator.fit(
            train.features,
            train.change,
            eval_set=[(validation.features, validation.change)],
            verbose=False,
        )
        params["best_iteration"] = int(estimator.best_iteration)
        estimator = estimator.get_booster()[: estimator.best_iteration + 1]
    else:
        estimator.fit(train.features, train.change)
    return ForecastModel(
        family=family,
        feature_names=list(feature_names),
        horizon_h=horizon_h,
        members=[estimator],
        params={**DEFAULT_PARAMS[family], **params},
        seeds=[seed],
    )


def average(models: Sequence[ForecastModel], family: str = "ensemble") -> ForecastModel:
    """An equal-weight average of models built on the same features and horizon."""
    if not models:
        raise ValueError("cannot average zero models")
    first = models[0]
    if any(
        m.feature_names != first.feature_names or m.horizon_h != first.horizon_h for m in models
    ):
        raise ValueError("models to average must share features and horizon")
    return ForecastModel(
        family=family,
        feature_names=first.feature_names,
        horizon_h=first.horizon_h,
        members=[member for m in models for member in m.members],
        params={"members": [m.name for m in models]},
        seeds=[s for m in models for s in m.seeds],
    )
