"""Model arrays shared between workers through memory-mapped .npy files
(recommend/model/shared_arrays.py): same answers, one file per array, refusals fall back safely."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recommend.model.job import save_result
from recommend.model.recommender import CustomerContext, Recommender
from recommend.model.shared_arrays import SHARED, cache_dir, share_arrays, shared_array
from tests.recsys import END, products, synthetic, trained


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return save_result(trained(), tmp_path_factory.mktemp("models"), "v1")


def _recommend(rec: Recommender, cid: str) -> dict:
    catalog = products()
    lines = [ln for ln in synthetic().lines if ln.customer_id == cid]
    return rec.recommend(
        CustomerContext(cid, purchases=lines),
        limit=10,
        lookup=lambda ids: {p: catalog[p] for p in ids if p in catalog},
    )


def test_two_workers_map_the_same_files_and_answer_the_same(artifact):
    clock = lambda: END  # noqa: E731
    private = Recommender(artifact, clock=clock)
    first, second = Recommender(artifact, clock=clock), Recommender(artifact, clock=clock)
    directory = cache_dir(artifact.path, artifact.manifest_sha256)
    shared = share_arrays(first, directory)
    assert shared > 0 and share_arrays(second, directory) == shared
    for name in SHARED:
        a, b = getattr(first, name), getattr(second, name)
        assert isinstance(a, np.memmap) and isinstance(b, np.memmap), name
        assert str(a.filename) == str(b.filename) == str(directory / f"{name}.npy")
        assert not a.flags.writeable
        assert np.array_equal(a, getattr(private, name))
    for cid in ("C001", "C002", "C003"):
        assert _recommend(first, cid) == _recommend(private, cid) == _recommend(second, cid)


def test_a_cache_file_that_differs_is_not_used(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "item_vectors.npy", array + 1)
    out = shared_array(tmp_path, "item_vectors", array)
    assert not isinstance(out, np.memmap) and np.array_equal(out, array)
    np.save(tmp_path / "other.npy", array.astype(np.float64))  # same values, other dtype
    assert not isinstance(shared_array(tmp_path, "other", array), np.memmap)


def test_an_unwritable_directory_shares_nothing_and_fails_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    holder = type("Holder", (), {})()
    holder.item_vectors = np.ones((4, 2), dtype=np.float32)
    assert share_arrays(holder, blocker / "cache") == 0
    assert not isinstance(holder.item_vectors, np.memmap)
    assert np.array_equal(holder.item_vectors, np.ones((4, 2)))


def test_the_cache_lives_in_the_version_directory_named_by_the_manifest(artifact):
    directory = cache_dir(artifact.path, artifact.manifest_sha256)
    assert directory.parent.parent == artifact.path
    assert directory.name == artifact.manifest_sha256[:16]


def test_the_model_holder_serves_from_shared_arrays_unless_told_not_to(redis_client, tmp_path):
    from profiles.keys import Keys
    from recommend.model.registry import ModelRegistry
    from service.model_holder import ModelHolder

    keys = Keys("rp")
    registry = ModelRegistry(redis_client, keys, tmp_path)
    artifact = save_result(trained(), tmp_path, registry.new_version())
    registry.register(artifact)
    registry.promote(artifact.version, force=True)
    for share, expect in ((True, True), (False, False)):
        holder = ModelHolder(redis_client, keys, tmp_path, poll_seconds=0, share_arrays=share)
        assert holder.refresh()
        rec = holder.current.recommender
        assert isinstance(rec.item_vectors, np.memmap) is expect
        assert isinstance(rec.user_vectors, np.memmap) is expect


def test_workers_racing_to_write_end_up_mapping_one_file(tmp_path):
    import threading

    array = np.arange(50_000, dtype=np.float32)
    results: list[np.ndarray] = []
    start = threading.Barrier(4)

    def worker():
        start.wait()
        results.append(shared_array(tmp_path, "item_vectors", array))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, np.memmap) for r in results)
    # every mapping in this process is of the one file under the name, none of a replaced one
    maps = [ln for ln in Path("/proc/self/maps").read_text().splitlines() if "item_vectors" in ln]
    assert maps and not any("(deleted)" in ln for ln in maps)
    assert {int(ln.split()[4]) for ln in maps} == {os.stat(tmp_path / "item_vectors.npy").st_ino}
    assert [p.name for p in tmp_path.iterdir()] == ["item_vectors.npy"]  # no temporary left
