"""The model registry in Redis: versions with their metrics, the active version, history.

Keys (all under the ``{models}`` hash tag, see ``core/keys.py``): one JSON record per version,
a zset of versions by creation time, the active version (a string serving workers poll) and
a capped list of activation records. An activation is one Lua script: set the active key,
push the history record and ``PUBLISH`` the version on ``SharedKeys.model_channel()``.

Promotion gate (:meth:`ModelRegistry.promote`): a new version is activated only when its
holdout precision@k is not below the active version's by more than ``tolerance``, a
*relative* fraction (0.02: up to 2% lower still passes, because two runs on a day's more data
differ by noise). No active version: it passes. ``force`` skips the gate. Both numbers come
from the same protocol (latest order per customer held out), though on the data of their own
day.

Rollback activates the version that was active before the current one (the history's second
record); rolling back twice returns to where you started. :meth:`prune` deletes artifacts
and records beyond the ``keep`` newest, never the active or the previous version.

Every activation first verifies the artifact (sha256 of each file against the manifest,
whose own digest the registry pinned at registration), so a corrupt version is refused
before any worker is told about it.
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis

from core.keys import SharedKeys
from core.outbox import EMIT_LUA, Outbox
from recommend.errors import ArtifactError, ModelVersionNotFound, NoPreviousModel
from recommend.model.artifact import VERSION_NAME, Artifact, load_artifact, remove_artifact

HISTORY_LEN = 200

# KEYS: active version, history, the {models} slot's outbox stream. ARGV: version, record JSON,
# channel, history length, then the ``model.activated`` change event (``Outbox.args``).
_ACTIVATE = (
    EMIT_LUA
    + """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[3], ARGV[1])
rapport_emit(KEYS[3], nil, 5)
return 1
"""
)


@dataclass(frozen=True)
class Decision:
    version: str
    activated: bool
    reason: str
    active_before: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "activated": self.activated,
            "reason": self.reason,
            "active_before": self.active_before,
        }


class ModelRegistry:
    def __init__(
        self,
        client: redis.Redis,
        keys: SharedKeys,
        model_dir: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        tolerance: float = 0.02,
        keep: int = 5,
        metric: str = "precision",
    ):
        self.redis = client
        self.keys = keys
        self.model_dir = Path(model_dir)
        self.clock = clock
        self.tolerance = tolerance
        self.keep = keep
        self.metric = metric
        self.outbox = Outbox.for_client(client, keys, clock=clock)
        self._activate = client.register_script(_ACTIVATE)

    # -- versions -----------------------------------------------------------------------------
    def new_version(self) -> str:
        """A fresh, sortable version name: ``20261122T063400Z-1a2b``."""
        stamp = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{secrets.token_hex(2)}"

    def register(self, artifact: Artifact) -> dict[str, Any]:
        """Record a saved artifact (metrics, params, counts, manifest digest)."""
        meta = artifact.metadata
        record = {
            "version": artifact.version,
            "created_at": float(meta.get("created_at") or self.clock()),
            "registered_at": self.clock(),
            "metrics": meta.get("metrics", {}),
            "params": meta.get("params", {}),
            "counts": meta.get("counts", {}),
            "train_seconds": meta.get("train_seconds"),
            "manifest_sha256": artifact.manifest_sha256,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.model_version(artifact.version), json.dumps(record))
        pipe.zadd(self.keys.model_versions(), {artifact.version: record["created_at"]})
        pipe.execute()
        return record

    def get(self, version: str) -> dict[str, Any]:
        raw = (
            self.redis.get(self.keys.model_version(version))
            if VERSION_NAME.match(version)
            else None
        )
        if raw is None:
            raise ModelVersionNotFound(f"no model version {version}")
        return json.loads(raw)

    def list(self) -> list[dict[str, Any]]:
        """Every registered version, newest first, with ``active``/``previous`` flags."""
        versions = cast("list[str]", self.redis.zrevrange(self.keys.model_versions(), 0, -1))
        if not versions:
            return []
        raws = self.redis.mget([self.keys.model_version(v) for v in versions])
        active, previous = self.active_version(), self.previous_version()
        out = []
        for raw in raws:
            if raw is None:
                continue
            record = json.loads(raw)
            record["active"] = record["version"] == active
            record["previous"] = record["version"] == previous
            out.append(record)
        return out

    def active_version(self) -> str | None:
        return cast("str | None", self.redis.get(self.keys.model_active()))

    def active(self) -> dict[str, Any] | None:
        version = self.active_version()
        if version is None:
            return None
        try:
            return self.get(version)
        except ModelVersionNotFound:
            return None

    # ``builtins.list``: inside the class, ``list`` is the method above
    def history(self, limit: int = 20) -> builtins.list[dict[str, Any]]:
        return [json.loads(r) for r in self.redis.lrange(self.keys.model_history(), 0, limit - 1)]

    def previous_version(self) -> str | None:
        """The version active before the current one."""
        active = self.active_version()
        for record in self.history(HISTORY_LEN)[1:]:
            if record["version"] != active:
                return record["version"]
        return None

    def artifact_path(self, version: str) -> Path:
        return self.model_dir / version

    def load(self, version: str) -> Artifact:
        """Load and verify ``version``'s artifact against the digest pinned at registration."""
        record = self.get(version)
        return load_artifact(
            self.artifact_path(version), expected_manifest_sha256=record.get("manifest_sha256")
        )

    # -- activation ---------------------------------------------------------------------------
    def activate(self, version: str, *, action: str = "activate", reason: str = "") -> dict:
        """Make ``version`` active (after verifying its artifact) and announce it."""
        self.load(version)  # raises ModelVersionNotFound / ArtifactError: nothing changes
        before = self.active_version()
        record = {
            "version": version,
            "action": action,
            "at": self.clock(),
            "previous": before,
            "reason": reason,
        }
        active = self.keys.model_active()
        event = self.outbox.event("model.activated", "", {"activation": record})
        stream, tail = self.outbox.args(active, [event])
        self._activate(
            keys=[active, self.keys.model_history(), stream],
            args=[version, json.dumps(record), self.keys.model_channel(), HISTORY_LEN, *tail],
        )
        return record

    def gate(self, version: str, tolerance: float | None = None) -> tuple[bool, str]:
        """Whether ``version`` may replace the active one, and why."""
        tol = self.tolerance if tolerance is None else tolerance
        new = self.get(version)
        active = self.active()
        if active is None:
            return True, "no active model"
        if active["version"] == version:
            return True, "already active"
        new_p = float(new.get("metrics", {}).get("model", {}).get(self.metric, 0.0))
        old_p = float(active.get("metrics", {}).get("model", {}).get(self.metric, 0.0))
        floor = old_p * (1.0 - tol)
        if new_p + 1e-12 >= floor:
            return True, (
                f"{self.metric}@k {new_p:.4f} vs active {active['version']} {old_p:.4f} "
                f"(floor {floor:.4f} with tolerance {tol:.0%})"
            )
        return False, (
            f"{self.metric}@k {new_p:.4f} is below active {active['version']}'s {old_p:.4f} "
            f"by more than {tol:.0%} (floor {floor:.4f}); use --force to activate anyway"
        )

    def promote(
        self,
        version: str,
        *,
        force: bool = False,
        no_activate: bool = False,
        tolerance: float | None = None,
    ) -> Decision:
        """Activate ``version`` if the gate passes (or ``force``); ``no_activate`` only reports."""
        before = self.active_version()
        ok, why = self.gate(version, tolerance)
        if no_activate:
            return Decision(version, False, f"registered only (--no-activate); gate: {why}", before)
        if not ok and not force:
            return Decision(version, False, why, before)
        if not ok:
            why = f"forced: {why}"
        self.activate(version, action="promote", reason=why)
        return Decision(version, True, why, before)

    def rollback(self) -> dict:
        """Activate the previously active version."""
        previous = self.previous_version()
        if previous is None:
            raise NoPreviousModel("there is no earlier active version to roll back to")
        return self.activate(
            previous, action="rollback", reason=f"rollback from {self.active_version()}"
        )

    # -- pruning ------------------------------------------------------------------------------
    def prune(self, keep: int | None = None) -> builtins.list[str]:
        """Delete artifacts and records beyond the ``keep`` newest (never active or previous)."""
        keep = self.keep if keep is None else keep
        versions = cast("list[str]", self.redis.zrevrange(self.keys.model_versions(), 0, -1))
        protected = {self.active_version(), self.previous_version()}
        removed = []
        for version in versions[max(keep, 0) :]:
            if version in protected:
                continue
            remove_artifact(self.model_dir, version)
            pipe = self.redis.pipeline(transaction=False)
            pipe.delete(self.keys.model_version(version))
            pipe.zrem(self.keys.model_versions(), version)
            pipe.execute()
            removed.append(version)
        return removed

    def verify(self, version: str) -> str | None:
        """None when ``version``'s artifact verifies, else the reason it does not."""
        try:
            self.load(version)
        except ArtifactError as exc:
            return exc.detail
        return None
