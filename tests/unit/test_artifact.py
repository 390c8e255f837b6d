"""Artifacts: round trip, and every kind of damage refused with ArtifactError."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from recommend.errors import ArtifactError
from recommend.model.artifact import ARRAYS, MANIFEST, METADATA, load_artifact, save_artifact
from recommend.model.job import save_result
from recommend.model.training import artifact_arrays
from tests.recsys import trained


@pytest.fixture
def saved(tmp_path):
    return save_result(trained(), tmp_path, "v1", clock=lambda: 1_700_000_000.0)


def _rewrite_manifest(path):
    """Recompute the manifest after a change, so only the deeper checks can catch it."""
    manifest = json.loads((path / MANIFEST).read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_round_trip_keeps_every_array_and_the_metadata(saved):
    result = trained()
    loaded = load_artifact(saved.path, expected_manifest_sha256=saved.manifest_sha256)
    expected = artifact_arrays(result)
    assert set(loaded.arrays) == set(expected)
    for name, array in expected.items():
        assert np.array_equal(loaded.arrays[name], array), name
    assert loaded.arrays["item_ids"].dtype.kind == "U"
    meta = loaded.metadata
    assert meta["version"] == "v1"
    assert meta["created_at"] == 1_700_000_000.0
    assert meta["params"]["loss"] == "warp"
    assert meta["params"]["features"]["half_life_days"] == 90.0
    assert meta["metrics"]["model"]["precision"] == result.metrics["model"]["precision"]
    assert meta["counts"]["customers"] == 120
    assert set(meta["libraries"]) >= {"numpy", "lightfm", "scipy", "python"}
    assert meta["shapes"]["item_ids"] == [60]


def test_a_version_is_written_once(saved, tmp_path):
    with pytest.raises(ArtifactError, match="already exists"):
        save_result(trained(), tmp_path, "v1")


def test_tampered_arrays_fail_the_checksum(saved):
    data = bytearray((saved.path / ARRAYS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved.path / ARRAYS).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifact(saved.path)


def test_truncated_arrays_are_refused(saved):
    data = (saved.path / ARRAYS).read_bytes()
    (saved.path / ARRAYS).write_bytes(data[: len(data) // 3])
    with pytest.raises(ArtifactError):
        load_artifact(saved.path)
    _rewrite_manifest(saved.path)  # even with a matching checksum the zip is unreadable
    with pytest.raises(ArtifactError, match="unreadable"):
        load_artifact(saved.path)


@pytest.mark.parametrize("name", [ARRAYS, METADATA, MANIFEST])
def test_a_missing_file_is_refused(saved, name):
    (saved.path / name).unlink()
    with pytest.raises(ArtifactError):
        load_artifact(saved.path)


def test_manifest_rewritten_by_someone_else_fails_the_pinned_digest(saved):
    meta = json.loads((saved.path / METADATA).read_text())
    meta["metrics"]["model"]["precision"] = 0.99
    (saved.path / METADATA).write_text(json.dumps(meta))
    _rewrite_manifest(saved.path)
    load_artifact(saved.path)  # self-consistent again...
    with pytest.raises(ArtifactError, match="registry"):  # ...but not what was registered
        load_artifact(saved.path, expected_manifest_sha256=saved.manifest_sha256)


def test_pickled_objects_inside_are_refused(saved):
    arrays = dict(saved.arrays)
    arrays["item_ids"] = np.array(list(arrays["item_ids"]), dtype=object)
    np.savez(saved.path / ARRAYS, **arrays)  # np.savez pickles object arrays
    _rewrite_manifest(saved.path)
    with pytest.raises(ArtifactError, match="refused"):
        load_artifact(saved.path)


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("item_embeddings", lambda a: a[:-1]),
        ("user_biases", lambda a: a[:-2]),
        ("item_features_indices", lambda a: a + 10_000),
        ("item_popularity", lambda a: a[:5]),
        ("item_embeddings", lambda a: np.full_like(a, np.nan)),
    ],
)
def test_inconsistent_shapes_are_refused(saved, name, bad):
    arrays = dict(saved.arrays)
    arrays[name] = bad(arrays[name])
    np.savez(saved.path / ARRAYS, **arrays)
    _rewrite_manifest(saved.path)
    with pytest.raises(ArtifactError):
        load_artifact(saved.path)


def test_save_refuses_bad_arrays_and_leaves_nothing(tmp_path):
    arrays = artifact_arrays(trained())
    del arrays["item_biases"]
    with pytest.raises(ArtifactError, match="missing"):
        save_artifact(tmp_path, "v2", arrays, {})
    assert list(tmp_path.iterdir()) == []
