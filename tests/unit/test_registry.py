"""Model registry: registration, the promotion gate, force, no-activate, rollback, pruning,
activation announcements, corrupt artifacts refused."""

from __future__ import annotations

import copy
import json
import time

import pytest

from profiles.keys import Keys
from recommend.errors import ArtifactError, ModelVersionNotFound, NoPreviousModel
from recommend.model.artifact import ARRAYS
from recommend.model.job import run_training, save_result
from recommend.model.registry import ModelRegistry
from tests.recsys import FAST, synthetic, trained

KEYS = Keys("rp")


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        self.t += 1
        return self.t


@pytest.fixture
def registry(redis_client, tmp_path):
    return ModelRegistry(redis_client, KEYS, tmp_path, clock=Clock(), tolerance=0.02, keep=2)


def register(registry, version: str, precision: float | None = None):
    result = trained()
    if precision is not None:
        result = copy.copy(result)
        result.metrics = {
            **result.metrics,
            "model": {**result.metrics["model"], "precision": precision},
        }
    artifact = save_result(result, registry.model_dir, version, clock=registry.clock)
    registry.register(artifact)
    return artifact


def test_first_version_is_promoted(registry):
    register(registry, "v1", 0.30)
    decision = registry.promote("v1")
    assert decision.activated and "no active model" in decision.reason
    assert registry.active_version() == "v1"
    listed = registry.list()
    assert [r["version"] for r in listed] == ["v1"]
    assert listed[0]["active"] and listed[0]["metrics"]["model"]["precision"] == 0.30


def test_a_worse_model_is_kept_out(registry):
    register(registry, "v1", 0.30)
    registry.promote("v1")
    register(registry, "v2", 0.25)
    decision = registry.promote("v2")
    assert not decision.activated
    assert "below" in decision.reason and "--force" in decision.reason
    assert registry.active_version() == "v1"
    # within the tolerance (2%): promoted
    register(registry, "v3", 0.295)
    assert registry.promote("v3").activated
    assert registry.active_version() == "v3"


def test_force_and_no_activate(registry):
    register(registry, "v1", 0.30)
    registry.promote("v1")
    register(registry, "v2", 0.10)
    assert registry.promote("v2", no_activate=True).activated is False
    assert registry.active_version() == "v1"
    forced = registry.promote("v2", force=True)
    assert forced.activated and forced.reason.startswith("forced")
    assert registry.active_version() == "v2"


def test_rollback_returns_to_the_previous_version(registry):
    with pytest.raises(NoPreviousModel):
        registry.rollback()
    for v in ("v1", "v2"):
        register(registry, v, 0.3)
        registry.promote(v)
    assert registry.previous_version() == "v1"
    record = registry.rollback()
    assert record["action"] == "rollback" and record["previous"] == "v2"
    assert registry.active_version() == "v1"
    assert [h["version"] for h in registry.history()] == ["v1", "v2", "v1"]


def test_activation_is_published(registry, redis_client):
    register(registry, "v1", 0.3)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(KEYS.model_channel())

    def next_message(kind: str, data: str | None = None) -> dict | None:
        deadline = time.monotonic() + 10  # a loaded machine (or a Cluster) can be slow
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.2)
            # a Cluster broadcasts every node's publications: another test's activation of
            # its own version on the same channel may arrive first, and is skipped
            if message and message["type"] == kind and data in (None, message["data"]):
                return message
        return None

    # activate only once the subscription is confirmed: a message published before it is lost
    assert next_message("subscribe") is not None
    registry.activate("v1")
    message = next_message("message", "v1")
    pubsub.close()
    assert message is not None and message["data"] == "v1"


def test_a_corrupt_artifact_is_never_activated(registry):
    register(registry, "v1", 0.3)
    registry.promote("v1")
    artifact = register(registry, "v2", 0.5)
    (artifact.path / ARRAYS).write_bytes(b"not a zip")
    with pytest.raises(ArtifactError):
        registry.activate("v2")
    with pytest.raises(ArtifactError):
        registry.promote("v2")
    assert registry.active_version() == "v1"
    assert "sha256" in registry.verify("v2")
    with pytest.raises(ModelVersionNotFound):
        registry.activate("nope")


def test_prune_keeps_the_newest_and_never_active_or_previous(registry):
    for v in ("v1", "v2", "v3", "v4", "v5"):
        register(registry, v, 0.3)
    registry.activate("v1")
    registry.activate("v2")  # active v2, previous v1
    removed = registry.prune(keep=2)
    assert sorted(removed) == ["v3"]
    assert [r["version"] for r in registry.list()] == ["v5", "v4", "v2", "v1"]
    assert not (registry.model_dir / "v3").exists()
    assert (registry.model_dir / "v1").exists() and (registry.model_dir / "v2").exists()


def test_run_training_registers_promotes_and_writes_popularity(redis_client, tmp_path):
    clock = Clock()
    first = run_training(
        redis_client,
        KEYS,
        tmp_path,
        synthetic(),
        config=FAST,
        progress=False,
        plot=True,
        clock=clock,
    )
    assert first.decision.activated
    assert (first.artifact.path / "learning-curve.png").exists()
    registry = ModelRegistry(redis_client, KEYS, tmp_path)
    assert registry.active_version() == first.artifact.version
    popular = redis_client.zrevrange(KEYS.popular_products(), 0, 2)
    assert len(popular) == 3
    stored = json.loads(redis_client.get(KEYS.model_version(first.artifact.version)))
    assert stored["metrics"]["popularity"]["precision"] > 0
