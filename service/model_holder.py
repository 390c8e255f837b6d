"""The model holder: each worker's loaded recommender, swapped in off the request path.

One :class:`ModelHolder` per app, built by ``service/wiring.py`` (``state().models``). A daemon
thread (started on first use in each process, so a fork gets its own) checks the active
version key every ``RAPPORT_MODEL_POLL_SECONDS`` (a ``GET``: cheaper and more robust than a
pub/sub connection per worker; activations are also published for other listeners). When the
version changed it loads and verifies the artifact and builds a :class:`Recommender` in that
thread, then swaps it in with one reference assignment, so a request sees either the old
model or the new one, never half of one, and never waits for a load.

A corrupt or missing artifact is refused: the old model keeps serving, the error is logged
and shown by ``/readyz``, and the same version is retried only after ``RETRY_FAILED_S``. With
no active model, serving falls back to popularity (``SharedKeys.popular_products``, written by
every training run) or, before any training, to catalog order.

Products added to the catalog after training are recommendable too: at load, and then every
``NEW_ITEMS_EVERY_S``, the holder reads the catalog's ids and extends the loaded model with
the active products it lacks, placed by their features (``Recommender.with_new_items``),
swapping the extended copy in the same way.

While Redis is unreachable, recommendations are served from an in-memory popular list: every
``SNAPSHOT_EVERY_S`` the poller copies the top ``SNAPSHOT_SIZE`` popular products (ids and
catalog documents) into the worker (:meth:`ModelHolder.offline_fallback`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from core.keys import SharedKeys
from recommend.catalog.products import Catalog
from recommend.errors import ArtifactError, ModelVersionNotFound
from recommend.model.ann import DEFAULT_MIN_ITEMS
from recommend.model.fallback import PopularSnapshot, load_fallback
from recommend.model.live_trend import LiveCounts
from recommend.model.recommender import PopularityFallback, Recommender
from recommend.model.registry import ModelRegistry
from recommend.model.serving import RecommendationSource
from recommend.model.shared_arrays import cache_dir, release_free_memory, share_arrays

log = logging.getLogger("rapport.models")
RETRY_FAILED_S = 60.0
FALLBACK_SIZE = 500
NEW_ITEMS_EVERY_S = 30.0  # how often a worker looks for catalog products the model lacks
SNAPSHOT_EVERY_S = 30.0  # how often a worker copies the popular list for serving without Redis
SNAPSHOT_SIZE = 200


@dataclass(frozen=True)
class Loaded:
    recommender: RecommendationSource  # a Recommender, or the PopularityFallback
    version: str | None  # None: the popularity fallback
    loaded_at: float


class ModelHolder:
    def __init__(
        self,
        client: redis.Redis,
        keys: SharedKeys,
        model_dir: str | Path,
        *,
        poll_seconds: float = 2.0,
        tolerance: float = 0.02,
        keep: int = 5,
        clock: Callable[[], float] = time.time,
        share_arrays: bool = True,
        ann_min_items: int = DEFAULT_MIN_ITEMS,
    ):
        self.redis = client
        self.ann_min_items = ann_min_items
        self.keys = keys
        self.share_arrays = share_arrays
        self.registry = ModelRegistry(
            client, keys, model_dir, clock=clock, tolerance=tolerance, keep=keep
        )
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._current = Loaded(PopularityFallback([], "catalog"), None, 0.0)
        self.last_error: str | None = None
        self._failed: tuple[str, float] | None = None
        self._refresh_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._checked = False
        self._base: Recommender | None = None  # the loaded model without new catalog items
        self._new_ids: frozenset[str] = frozenset()
        self._catalog_checked_at = 0.0
        self._catalog_seen: tuple[str | None, str | None] | None = None  # (catalog, model)
        self._snapshot: PopularSnapshot | None = None

    # -- what requests use --------------------------------------------------------------------
    @property
    def current(self) -> Loaded:
        """The loaded model (or fallback). Read it once per request and use that reference."""
        self.ensure_started()
        return self._current

    def status(self) -> dict[str, object]:
        loaded = self._current
        out: dict[str, object] = {
            "state": f"loaded: {loaded.version}" if loaded.version else "fallback: popularity",
            "version": loaded.version,
            "loaded_at": loaded.loaded_at or None,
        }
        if self.last_error:
            out["last_error"] = self.last_error
        return out

    # -- loading ------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Check the active version; load and swap when it changed. True when swapped.
        Never raises for a bad artifact (it is logged and kept out)."""
        with self._refresh_lock:
            self._checked = True
            active = self.registry.active_version()
            current = self._current
            if active is None:
                if current.version is not None:
                    log.warning("no active model any more; serving popularity")
                self._current = Loaded(self._fallback(), None, self.clock())
                return current.version is not None
            if active == current.version:
                if self.clock() - self._catalog_checked_at >= NEW_ITEMS_EVERY_S:
                    self._add_new_items()
                return False
            if self._failed and self._failed[0] == active:
                if self.clock() - self._failed[1] < RETRY_FAILED_S:
                    return False
            try:
                artifact = self.registry.load(active)
                recommender = Recommender(artifact, ann_min_items=self.ann_min_items)
                recommender.live = LiveCounts(self.redis, self.keys)  # live trend, popularity
                if self.share_arrays:  # one copy of the big arrays for all workers
                    share_arrays(recommender, cache_dir(artifact.path, artifact.manifest_sha256))
            except (ArtifactError, ModelVersionNotFound) as exc:
                self._failed = (active, self.clock())
                self.last_error = f"version {active} refused: {exc}"
                log.error(
                    "model %s refused; still serving %s: %s",
                    active,
                    current.version or "popularity",
                    exc,
                    extra={"version": active},
                )
                return False
            self._base = recommender
            self._new_ids = frozenset()
            recommender = self._with_new_items(recommender)
            self._current = Loaded(recommender, active, self.clock())  # the swap: one assignment
            self._failed = None
            self.last_error = None
            log.info("model %s loaded", active, extra={"version": active})
            if self.share_arrays:
                del artifact, current  # the raw arrays and the old model: back to the OS
                release_free_memory()
            return True

    def refresh_new_items(self) -> int:
        """Make catalog products the model has not seen recommendable (placed by their
        features); runs every ``NEW_ITEMS_EVERY_S`` in the poller. Returns how many there are."""
        with self._refresh_lock:
            self._add_new_items()
            rec = self._current.recommender
            return rec.new_items if isinstance(rec, Recommender) else 0

    def _add_new_items(self) -> None:
        current = self._current
        if self._base is None or current.version is None:
            return
        recommender = self._with_new_items(self._base)
        if recommender is not current.recommender:
            self._current = Loaded(recommender, current.version, current.loaded_at)

    def _with_new_items(self, base: Recommender) -> Recommender:
        """``base`` extended with the active catalog products it does not know (or the
        current extension when that set has not changed)."""
        self._catalog_checked_at = self.clock()
        try:
            # every product write moves the catalog version: unchanged since the last scan for
            # this model, skip reading every product id (100k ids hold the GIL for ~50 ms)
            # the client decodes responses (redis_connect.connect): str, not bytes
            catalog = Catalog(self.redis, self.keys)
            catalog_version = catalog.version()
            seen = (catalog_version, base.version)
            if catalog_version is not None and seen == self._catalog_seen:
                return self._extension_of(base)
            ids = catalog.product_ids()
            new_ids = frozenset(p for p in ids if p not in base.item_index)
            if new_ids == self._new_ids:
                self._catalog_seen = seen
                return self._extension_of(base)
            docs = catalog.get_many(sorted(new_ids))
        except redis.RedisError as exc:
            log.warning("catalog read for new products failed: %s", exc.__class__.__name__)
            return self._extension_of(base)
        self._new_ids = new_ids
        self._catalog_seen = seen
        products = [d for d in docs.values() if d.get("active", True)]
        return base.with_new_items(products)

    def _extension_of(self, base: Recommender) -> Recommender:
        """The model serving now when it is ``base`` (or ``base`` extended), else ``base``."""
        current = self._current.recommender
        if isinstance(current, Recommender) and current.version == base.version:
            return current
        return base

    def offline_fallback(self) -> PopularSnapshot | None:
        """The in-memory popular list (None before the first successful copy)."""
        return self._snapshot

    def refresh_popular_snapshot(self) -> PopularSnapshot:
        """Copy the popular list and its catalog documents into memory (raises RedisError)."""
        fallback = self._fallback(SNAPSHOT_SIZE)
        docs = Catalog(self.redis, self.keys).get_many(fallback.ranked)
        self._snapshot = PopularSnapshot(fallback, docs, self.clock())
        return self._snapshot

    def _fallback(self, size: int = FALLBACK_SIZE) -> PopularityFallback:
        return load_fallback(self.redis, self.keys, size)

    # -- the background thread ----------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the polling thread in this process (once; again after a fork)."""
        if self.poll_seconds <= 0:
            if not self._checked:
                self.refresh_safely()
            return
        pid = os.getpid()
        thread = self._thread
        if thread is not None and self._pid == pid and thread.is_alive():
            return
        with self._refresh_lock:
            if self._thread is not None and self._pid == pid and self._thread.is_alive():
                return
            self._pid = pid
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, name="rapport-model-holder", daemon=True
            )
            self._thread.start()

    def refresh_safely(self) -> None:
        try:
            self.refresh()
        except redis.RedisError as exc:
            log.warning("model check failed: %s", exc.__class__.__name__)
        except Exception:  # the poller must survive anything
            log.exception("model check failed")
        snapshot = self._snapshot
        if snapshot is None or self.clock() - snapshot.taken_at >= SNAPSHOT_EVERY_S:
            try:
                self.refresh_popular_snapshot()
            except redis.RedisError as exc:
                log.warning("popular list copy failed: %s", exc.__class__.__name__)
            except Exception:  # the poller must survive anything
                log.exception("popular list copy failed")

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            self.refresh_safely()
            stop.wait(self.poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
