"""The training job behind ``rapport train``: load, train, save, register, promote.

Also writes the popularity list (``SharedKeys.popular_products``) that serving falls back to when no
model is active, whether or not the new version is promoted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from core.keys import SharedKeys
from recommend.model.ann import DEFAULT_MIN_ITEMS, index_for, index_metadata
from recommend.model.artifact import Artifact, save_artifact
from recommend.model.dataset import FeatureConfig, TrainingData
from recommend.model.registry import Decision, ModelRegistry
from recommend.model.training import (
    TrainConfig,
    TrainResult,
    artifact_arrays,
    plot_learning_curve,
    train,
)

log = logging.getLogger("rapport.train")
POPULAR_KEPT = 500
# replace a zset in one step (ARGV: score, member, score, member, ...)
_REPLACE_ZSET = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1]) end
return #ARGV / 2
"""


@dataclass
class TrainingRun:
    result: TrainResult
    artifact: Artifact
    decision: Decision
    plot: Path | None


def save_result(
    result: TrainResult,
    model_dir: Path,
    version: str,
    clock=time.time,
    *,
    ann_min_items: int = DEFAULT_MIN_ITEMS,
) -> Artifact:
    """Save the trained result as ``version``, with the nearest-neighbour index over the
    items when there are at least ``ann_min_items`` of them (``recommend.model.ann``)."""
    arrays = artifact_arrays(result)
    started = time.perf_counter()
    index = index_for(arrays, ann_min_items)
    metadata: dict[str, object] = {
        "created_at": clock(),
        # the newest purchase trained on: later ones are folded in (recommend.model.foldin)
        "data_until": result.matrices.reference_time,
        "params": result.params(),
        "counts": result.counts,
        "metrics": result.metrics,
        "history": result.history,
        "train_seconds": round(result.train_seconds, 3),
    }
    if index is not None:
        metadata["ann"] = {**index_metadata(), "build_seconds": time.perf_counter() - started}
    return save_artifact(model_dir, version, arrays, metadata, index=index)


def write_popularity(client: redis.Redis, keys: SharedKeys, result: TrainResult) -> None:
    pop = result.popularity
    top = np.argsort(-pop, kind="stable")[:POPULAR_KEPT]
    mapping = {result.matrices.item_ids[i]: float(pop[i]) for i in top if pop[i] > 0}
    args: list[str | float] = []
    for pid, count in mapping.items():
        args += [count, pid]
    client.register_script(_REPLACE_ZSET)(keys=[keys.popular_products()], args=args)


def run_training(
    client: redis.Redis,
    keys: SharedKeys,
    model_dir: str | Path,
    data: TrainingData,
    *,
    config: TrainConfig | None = None,
    features: FeatureConfig | None = None,
    force: bool = False,
    no_activate: bool = False,
    tolerance: float = 0.02,
    keep: int = 5,
    plot: bool = False,
    progress: bool = True,
    clock: Callable[[], float] = time.time,
    ann_min_items: int = DEFAULT_MIN_ITEMS,
) -> TrainingRun:
    registry = ModelRegistry(client, keys, model_dir, clock=clock, tolerance=tolerance, keep=keep)
    result = train(data, config, features, progress=progress)
    version = registry.new_version()
    artifact = save_result(result, Path(model_dir), version, clock, ann_min_items=ann_min_items)
    plot_path = None
    if plot and result.history:
        plot_path = plot_learning_curve(
            result.history,
            artifact.path / "learning-curve.png",
            k=result.config.k,
        )
    registry.register(artifact)
    write_popularity(client, keys, result)
    decision = registry.promote(version, force=force, no_activate=no_activate)
    log.info(
        "trained %s: %s",
        version,
        decision.reason,
        extra={"version": version, "activated": decision.activated},
    )
    return TrainingRun(result, artifact, decision, plot_path)
