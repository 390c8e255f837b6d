"""Train a LightFM model, evaluate it against popularity on a time-based holdout, build the
artifact arrays.

:func:`train` holds out every customer's most recent order (``split_holdout``), trains on
the rest one epoch at a time (a tqdm bar), and after each epoch measures precision@k,
recall@k, AUC and catalog coverage on the holdout. In the same run the popularity baseline
(items by number of distinct buyers) is measured with the same code, so the report compares
like with like (the scorers and metrics: ``recommend.model.evaluation``).

Evaluation mode (``TrainConfig.exclude_seen``, default True, "new items"): products the
customer bought in training are removed from the ranking *and* from the targets, which is
what LightFM contributes (``discover``); repeat purchases are the job of ``buy_again``, which
needs no model. ``exclude_seen=False`` ("all items") is also reported at the end.

Refit: after evaluation the model is trained again, with the same hyper-parameters, seed and
epochs, on **all** purchases (train + holdout), and that model is saved. The holdout is each
customer's latest order, the most predictive data there is; a served model blind to it would
recommend what the customer just bought and miss their newest taste. The metrics stored with
the artifact are those of the evaluated twin (same protocol every run, so the promotion gate
compares like with like). ``TrainConfig.refit=False`` saves the evaluated model instead (half
the training time).

Defaults for production (``rapport train``): :data:`PRODUCTION` and
``recommend.model.dataset.IDS_ONLY``, chosen by the quality benchmark on a validation window of the
Online Retail data (``docs/benchmarks.md``): ids only, weights ``log1p(quantity) *
0.5 ** (age / 60 days)``, WARP, 128 components, learning rate 0.02, max_sampled 50, 55
epochs. Every configuration with profile/catalog features lowered known customers' precision
there; cold start then comes from the trained embeddings (``recommend.model.coldstart``). The
``TrainConfig()`` class defaults stay small and fast (tests, quick runs).

The artifact also carries what the ranking rules of ``recommend.model.scoring`` need: each item's
trend (``log1p`` distinct buyers in the last 7 days of the data) and description text, and
the trend weight chosen on this run's holdout (``recommend.model.holdout_weights``; in
``params["scoring"]`` of the metadata, which serving applies).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from tqdm import tqdm

from recommend.model import coldstart, holdout_weights, scoring
from recommend.model.dataset import (
    FeatureConfig,
    Matrices,
    PurchaseLine,
    TrainingData,
    build_matrices,
    split_holdout,
)
from recommend.model.evaluation import (
    evaluate,
    holdout_metrics,
    item_popularity,
    model_scores,
    representations,
)

# the evaluation's names are re-exported: callers import them from here
__all__ = [
    "DESCRIPTION_CHARS",
    "PRODUCTION",
    "TrainConfig",
    "TrainResult",
    "artifact_arrays",
    "evaluate",
    "fit_epochs",
    "fit_weights",
    "format_report",
    "item_popularity",
    "model_scores",
    "plot_learning_curve",
    "representations",
    "scoring_arrays",
    "train",
]

log = logging.getLogger("rapport.training")


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "warp"  # warp | warp-kos | bpr | logistic
    no_components: int = 32
    epochs: int = 20
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 10
    k: int = 10  # precision/recall cut-off
    kos_k: int = 5  # warp-kos: the k-th positive of kos_n sampled ones is used
    kos_n: int = 10
    learning_schedule: str = "adagrad"  # or "adadelta"
    threads: int = 1
    seed: int = 42
    holdout_orders: int = 1
    exclude_seen: bool = True
    refit: bool = True

    def model(self) -> LightFM:
        return LightFM(
            loss=self.loss,
            no_components=self.no_components,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            max_sampled=self.max_sampled,
            k=self.kos_k,
            n=self.kos_n,
            learning_schedule=self.learning_schedule,
            random_state=np.random.RandomState(self.seed),
        )


DESCRIPTION_CHARS = 200  # per product in the artifact (fixed-width strings: bound the size)

# the tuned production defaults (see the module docstring; ``rapport train``'s defaults)
PRODUCTION = TrainConfig(no_components=128, learning_rate=0.02, max_sampled=50, epochs=55)


@dataclass
class TrainResult:
    model: LightFM  # the model to save (refit on all data unless refit=False)
    matrices: Matrices  # the matrices ``model`` was trained on
    metrics: dict[str, dict[str, float]]  # {"model": {...}, "popularity": {...}, ...}
    history: list[dict[str, float]]  # one row per epoch
    counts: dict[str, int]
    config: TrainConfig
    features: FeatureConfig
    train_seconds: float
    popularity: np.ndarray = field(repr=False)  # (n_items,) distinct buyers, all data
    # what ``model`` was trained on (trend, descriptions, cold-start tables); None: not stored
    data: TrainingData | None = field(default=None, repr=False)
    # the ranking weights chosen on this run's holdout (recommend.model.holdout_weights)
    scoring: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        """Hyper-parameters for the artifact's metadata; ``scoring`` is what serving applies."""
        extra = {"scoring": self.scoring} if self.scoring else {}
        return {**asdict(self.config), "features": asdict(self.features), **extra}


# -- training -----------------------------------------------------------------------------------
def fit_weights(m: Matrices, config: TrainConfig) -> sp.coo_matrix | None:
    """The sample weights LightFM is given: none for WARP-kOS, which refuses them."""
    return None if config.loss == "warp-kos" else m.weights


def fit_epochs(
    model: LightFM,
    m: Matrices,
    config: TrainConfig,
    *,
    progress: bool = True,
    desc: str = "training",
    on_epoch: Callable[[int], dict[str, float] | None] | None = None,
) -> list[dict[str, float]]:
    history = []
    bar = tqdm(range(config.epochs), desc=desc, unit="epoch", disable=not progress, leave=True)
    for epoch in bar:
        model.fit_partial(
            m.interactions,
            user_features=m.user_features,
            item_features=m.item_features,
            sample_weight=fit_weights(m, config),
            epochs=1,
            num_threads=config.threads,
        )
        row = on_epoch(epoch + 1) if on_epoch else None
        if row:
            history.append({"epoch": epoch + 1, **row})
            bar.set_postfix(p=f"{row['precision']:.4f}", auc=f"{row['auc']:.3f}")
    bar.close()
    return history


def train(
    data: TrainingData,
    config: TrainConfig | None = None,
    features: FeatureConfig | None = None,
    *,
    progress: bool = True,
    eval_every: int = 1,
) -> TrainResult:
    """Split, train with per-epoch evaluation, compare with popularity, refit (see module)."""
    config = config or TrainConfig()
    features = features or FeatureConfig()
    started = time.perf_counter()
    train_lines, test_lines = split_holdout(data.lines, holdout_orders=config.holdout_orders)
    if not train_lines or not test_lines:
        raise ValueError(
            "not enough purchases to evaluate: need customers with at least two orders"
        )
    m = build_matrices(data, train_lines, test_lines, features)
    train_csr = m.train_csr
    model = config.model()

    def evaluate_model() -> dict[str, float]:
        return evaluate(
            model_scores(model, m), train_csr, m.test, k=config.k, exclude_seen=config.exclude_seen
        )

    def on_epoch(epoch: int) -> dict[str, float] | None:
        if epoch % eval_every and epoch != config.epochs:
            return None
        return evaluate_model()

    history = fit_epochs(model, m, config, progress=progress, on_epoch=on_epoch)
    final = history[-1] if history else evaluate_model()
    final = {k: v for k, v in final.items() if k != "epoch"}
    metrics = holdout_metrics(
        model, m, train_csr, final, k=config.k, exclude_seen=config.exclude_seen
    )
    counts = _train_counts(data, train_lines, test_lines, final, m)
    chosen = holdout_weights.choose_trend_weight(
        model, m, data.lines, train_lines, test_lines, item_descriptions(data, m.item_ids),
        k=config.k, exclude_seen=config.exclude_seen,
    )  # fmt: skip
    if config.refit:
        m = build_matrices(data, data.lines, None, features)
        model = config.model()
        fit_epochs(model, m, config, progress=progress, desc="refit on all data")
    return TrainResult(
        model=model,
        matrices=m,
        metrics=metrics,
        history=history,
        counts=counts,
        config=config,
        features=features,
        train_seconds=time.perf_counter() - started,
        popularity=item_popularity(m),
        data=data,  # every purchase: the trend is as recent as the data, refit or not
        scoring=chosen,
    )


def fit_all(
    data: TrainingData, config: TrainConfig, features: FeatureConfig, *, progress: bool = False
) -> TrainResult:
    """A model fitted on every purchase of ``data``, without the holdout evaluation of
    :func:`train` (benchmarks that evaluate on their own split): metrics and counts empty."""
    started = time.perf_counter()
    m = build_matrices(data, data.lines, None, features)
    model = config.model()
    fit_epochs(model, m, config, progress=progress)
    return TrainResult(
        model=model,
        matrices=m,
        metrics={},
        history=[],
        counts={},
        config=config,
        features=features,
        train_seconds=time.perf_counter() - started,
        popularity=item_popularity(m),
        data=data,
    )


def _train_counts(
    data: TrainingData,
    train_lines: list[PurchaseLine],
    test_lines: list[PurchaseLine],
    final: dict[str, float],
    m: Matrices,
) -> dict[str, int]:
    """Data, split and matrix sizes of a training run (before any refit)."""
    return {
        **data.counts(),
        "train_lines": len(train_lines),
        "holdout_lines": len(test_lines),
        "holdout_users": int(final.get("users", 0)),  # a count (evaluate's "users" is an int)
        "users": len(m.user_ids),
        "items": len(m.item_ids),
        "interactions": int(m.interactions.nnz),
    }


# -- artifact arrays and report -----------------------------------------------------------------
def artifact_arrays(result: TrainResult) -> dict[str, np.ndarray]:
    """The arrays of :mod:`recommend.model.artifact` for a trained result."""
    m, model = result.matrices, result.model
    uf, itf = m.user_features.tocsr(), m.item_features.tocsr()
    countries = sorted({c for c in m.user_countries if c})
    by_country = np.zeros((len(countries), len(m.item_ids)), dtype=np.float32)
    if countries:
        index = {c: i for i, c in enumerate(countries)}
        rows = np.array([index.get(c, -1) for c in m.user_countries])
        bought = (m.interactions.tocsr() > 0).astype(np.float32)
        keep = rows >= 0
        onehot = sp.csr_matrix(
            (np.ones(keep.sum(), dtype=np.float32), (rows[keep], np.flatnonzero(keep))),
            shape=(len(countries), len(m.user_ids)),
        )
        by_country = np.asarray((onehot @ bought).todense(), dtype=np.float32)
    arrays = {
        "user_ids": np.array(m.user_ids, dtype=np.str_),
        "item_ids": np.array(m.item_ids, dtype=np.str_),
        "user_feature_names": np.array(m.user_feature_names, dtype=np.str_),
        "item_feature_names": np.array(m.item_feature_names, dtype=np.str_),
        "user_embeddings": model.user_embeddings.astype(np.float32),
        "user_biases": model.user_biases.astype(np.float32),
        "item_embeddings": model.item_embeddings.astype(np.float32),
        "item_biases": model.item_biases.astype(np.float32),
        "user_features_data": uf.data.astype(np.float32),
        "user_features_indices": uf.indices.astype(np.int32),
        "user_features_indptr": uf.indptr.astype(np.int64),
        "item_features_data": itf.data.astype(np.float32),
        "item_features_indices": itf.indices.astype(np.int32),
        "item_features_indptr": itf.indptr.astype(np.int64),
        "item_popularity": result.popularity.astype(np.float32),
        "item_categories": np.array(m.item_categories, dtype=np.str_),
        "country_names": np.array(countries, dtype=np.str_),
        "country_popularity": by_country,
    }
    if result.data is not None:
        arrays.update(scoring_arrays(result))
    return arrays


def scoring_arrays(result: TrainResult) -> dict[str, np.ndarray]:
    """What serving's ranking rules and cold start need besides the model: ``item_trend``
    (n_items,) log1p(distinct buyers in the last ``scoring.TREND_DAYS`` days of the data),
    ``item_descriptions`` (n_items,) text for the description-word term, and the derived
    cold-start tables of :mod:`recommend.model.coldstart`."""
    m, model, data = result.matrices, result.model, result.data
    assert data is not None
    index = {p: i for i, p in enumerate(m.item_ids)}
    purchases = [
        (ln.customer_id, index.get(ln.product_id, -1), ln.purchased_at) for ln in data.lines
    ]
    reference = max((ln.purchased_at for ln in data.lines), default=m.reference_time)
    trend = scoring.trend(purchases, len(m.item_ids), reference, scoring.TREND_DAYS)
    descriptions = item_descriptions(data, m.item_ids)
    uvec, _ = representations(m.user_features, model.user_embeddings, model.user_biases)
    ivec, ibias = representations(m.item_features, model.item_embeddings, model.item_biases)
    return {
        "item_trend": trend.astype(np.float32),
        "item_descriptions": np.array(descriptions, dtype=np.str_),
        **coldstart.derived_tables(
            user_ids=m.user_ids,
            item_ids=m.item_ids,
            user_vectors=uvec,
            item_vectors=ivec,
            item_bias=ibias,
            customers=data.customers,
            products=data.products,
            lines=data.lines,
            history_categories=result.features.history_categories or 3,
            min_word_items=result.features.min_word_items,
        ),
    }


def item_descriptions(data: TrainingData, item_ids: list[str]) -> list[str]:
    """Each item's description (else name) for the description-word term, truncated."""
    return [
        str((data.products.get(p) or {}).get("description")
            or (data.products.get(p) or {}).get("name") or "")[:DESCRIPTION_CHARS]
        for p in item_ids
    ]  # fmt: skip


def format_report(result: TrainResult) -> str:
    """A plain-text metrics table: model vs popularity."""
    k = result.config.k
    lines = [
        f"holdout: {result.counts.get('holdout_users', 0)} customers, "
        f"{result.counts.get('holdout_lines', 0)} purchase lines (latest order per customer)",
        f"{'':<24}{'precision@' + str(k):>14}{'recall@' + str(k):>12}{'AUC':>8}{'coverage':>10}",
    ]
    for name, row in result.metrics.items():
        lines.append(
            f"{name:<24}{row['precision']:>14.4f}{row['recall']:>12.4f}"
            f"{row['auc']:>8.3f}{row['coverage']:>10.3f}"
        )
    base = result.metrics["popularity"]["precision"]
    lift = (result.metrics["model"]["precision"] / base - 1) * 100 if base else float("inf")
    lines.append(f"model vs popularity (precision@{k}): {lift:+.1f}%")
    if result.scoring:
        lines.append(
            f"discover trend weight chosen on the holdout: {result.scoring['trend_weight']:g} "
            f"(precision@{k} by weight: {result.scoring['holdout_precision']})"
        )
    lines.append(f"train time: {result.train_seconds:.1f} s")
    return "\n".join(lines)


def plot_learning_curve(history: list[dict[str, float]], path: Path, *, k: int = 10) -> Path:
    """A PNG of the holdout metrics per epoch (needs matplotlib: ``pip install
    rapport-service[plot]``)."""
    try:
        import matplotlib  # optional dependency

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "the learning-curve plot needs matplotlib: pip install matplotlib"
        ) from exc
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["precision"] for h in history], marker="o", label=f"precision@{k}")
    left.plot(epochs, [h["recall"] for h in history], marker="o", label=f"recall@{k}")
    left.set_xlabel("epoch")
    left.legend()
    left.grid(alpha=0.3)
    right.plot(epochs, [h["auc"] for h in history], marker="o", color="tab:green", label="AUC")
    right.set_xlabel("epoch")
    right.legend()
    right.grid(alpha=0.3)
    fig.suptitle("Holdout metrics per epoch")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
