"""Model families, fitting, and a safe on-disk format.

Every model predicts the change DI(t+h) − DI(t) and adds it back to DI(t) (docs/data.md: this
beats predicting the level). A `ForecastModel` is one fitted estimator or an average of
several; it serialises to XGBoost's own UBJ or skops, never bare pickle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

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
        # 20 trees, not 40: half the time, and the seed average's validation RMSE is 1.5785
        # against 1.5776 (holdout 2.2023 against 2.2030)
        "n_estimators": 20,
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
        # 64 histogram bins, not 256: three seeds fit 2.4× faster (3.9 s against 9.3 s) with
        # the seed average's holdout RMSE 2.1402 against 2.1455 (docs/pitfalls.md)
        "max_bin": 64,
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

    def fused(self) -> ForecastModel:
        """The same model served faster: XGBoost's trees are served by ONNX Runtime
        (`OnnxTrees`), an ensemble of boosters fused into one first (one call instead of one
        per member). In an ensemble with other families each booster is converted on its
        own, so the members still weigh the same. Other models are returned as they are."""
        boosters = [m for m in self.members if isinstance(m, xgb.Booster)]
        if not boosters:
            return self
        if len(boosters) == len(self.members):
            booster = fuse_boosters(boosters) if len(boosters) > 1 else boosters[0]
            return replace(self, members=[OnnxTrees.from_booster(booster)])
        return replace(
            self,
            members=[
                OnnxTrees.from_booster(m) if isinstance(m, xgb.Booster) else m for m in self.members
            ],
        )

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


def fuse_boosters(boosters: Sequence[xgb.Booster]) -> xgb.Booster:
    """One booster predicting the mean of ``boosters`` (regression, one target): all their
    trees with every leaf divided by their number, and the mean of their base scores.
    Equal to the mean up to float32 rounding (XGBoost sums leaves in float32)."""
    documents = [json.loads(bytes(b.save_raw(raw_format="json"))) for b in boosters]
    fused = documents[0]
    model = fused["learner"]["gradient_booster"]["model"]
    if model["gbtree_model_param"]["num_parallel_tree"] != "1":
        raise ValueError("only boosters with one tree per round can be fused")
    k = len(documents)
    trees, tree_info = [], []
    for document in documents:
        member = document["learner"]["gradient_booster"]["model"]
        for tree in member["trees"]:
            leaves = [i for i, left in enumerate(tree["left_children"]) if left == -1]
            for i in leaves:  # a leaf's value is its split condition
                tree["split_conditions"][i] /= k
            tree["base_weights"] = [w / k for w in tree["base_weights"]]
            tree["id"] = len(trees)
            trees.append(tree)
        tree_info += member["tree_info"]
    model["trees"], model["tree_info"] = trees, tree_info
    model["gbtree_model_param"]["num_trees"] = str(len(trees))
    model["iteration_indptr"] = list(range(len(trees) + 1))
    scores = [d["learner"]["learner_model_param"]["base_score"] for d in documents]
    mean = f"{np.mean([float(s.strip('[]')) for s in scores]):.9E}"
    fused["learner"]["learner_model_param"]["base_score"] = (
        f"[{mean}]" if scores[0].startswith("[") else mean
    )
    fused["learner"]["attributes"] = {}  # best_iteration etc. describe one member
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(fused).encode()))
    return booster


#: The ONNX operator set the trees are written in (onnxmltools' XGBoost converter's newest).
ONNX_OPSET = 15
#: The name the converted trees give their input, the feature matrix.
ONNX_INPUT = "features"
#: Objectives whose forecast is the sum of the leaves plus the base score, as the converted
#: trees compute it (a logistic or count objective would need its link function too).
IDENTITY_OBJECTIVES = frozenset({"reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror"})


@dataclass(frozen=True)
class OnnxTrees:
    """A booster's trees served by ONNX Runtime's tree ensemble. XGBoost's own predict
    pays ~0.75 ms on every call before the rows count with a ~1,000-tree champion (0.78 ms
    for one row against 0.017 ms here, 1.51 against 0.64 ms for 64: docs/pitfalls.md), and
    a lone request pays all of it. The forecast is XGBoost's up to float32 summation order:
    the same float32 ``value < threshold`` splits, missing values to the default child."""

    session: Any  # onnxruntime.InferenceSession: imported only where a model is served

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> OnnxTrees:
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        if objective not in IDENTITY_OBJECTIVES:
            raise ValueError(f"cannot serve a {objective} booster as ONNX trees (no link)")
        # imported here: ONNX and its converter are only needed where a model is served
        import onnxmltools
        import onnxruntime as ort
        from onnxmltools.convert.common.data_types import FloatTensorType

        features = FloatTensorType([None, booster.num_features()])
        document = onnxmltools.convert_xgboost(
            booster, initial_types=[(ONNX_INPUT, features)], target_opset=ONNX_OPSET
        )
        options = ort.SessionOptions()
        # one core for the trees: the event loop and the load need the other one
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(
            document.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        return cls(session)

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        x = np.ascontiguousarray(features, dtype=np.float32)
        return self.session.run(None, {ONNX_INPUT: x})[0].ravel()


def _predict(member: Any, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if isinstance(member, xgb.Booster):
        return member.inplace_predict(features)
    if isinstance(member, xgb.XGBRegressor):
        return member.get_booster().inplace_predict(features)
    return member.predict(features)


#: the only types outside skops' defaults that the scikit-learn families store; anything else
#: in a model file (a function reference such as ``numpy.load``) is refused, not trusted
SKOPS_TYPES = frozenset({"numpy.dtype", "sklearn.tree._tree.Tree"})


def build_estimator(
    family: str, params: Mapping[str, Any], seed: int, n_jobs: int | None = None
) -> Any:
    n_jobs = n_jobs or usable_cores()
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
    n_jobs: int | None = None,
) -> ForecastModel:
    """Fit one member; XGBoost stops early on the validation split (never on the holdout)."""
    params = dict(params or {})
    estimator = build_estimator(family, params, seed, n_jobs)
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


Fitted = TypeVar("Fitted")


def usable_cores() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: families whose single fit spreads over every core (a forest's trees are independent:
#: 2 cores fit it 1.95× faster); the others gain more from being fitted side by side
SCALES_ACROSS_CORES = frozenset({"random_forest"})


def fit_side_by_side(
    tasks: Sequence[Callable[[int], Fitted]], family: str | None = None
) -> Iterator[Fitted]:
    """Run independent fits at once, one core each (``task(n_jobs)``), and yield their
    results in task order; a ``family`` in `SCALES_ACROSS_CORES` is fitted one at a time on
    every core instead.

    On this data XGBoost gains nothing from a second thread (3 fits: 9.9 s with 2 threads,
    8.6 s with 1), while 2 fits side by side finish 1.85× sooner (docs/pitfalls.md). The
    fitted models are the same either way; XGBoost and scikit-learn release the GIL while
    fitting, so threads suffice.
    """
    cores = usable_cores()
    workers = max(1, min(len(tasks), cores))
    if workers == 1 or family in SCALES_ACROSS_CORES:
        yield from (task(cores) for task in tasks)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="fit") as pool:
        yield from pool.map(lambda task: task(max(1, cores // workers)), tasks)


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
