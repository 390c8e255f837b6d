"""Twenty ways a model artifact can reach the shared volume broken.

Each starts from a good, registered artifact. Some break a file under its checksum (the
manifest catches them); the "sealed" ones rewrite the manifest and the registry's pinned digest
to match the damage, as a buggy trainer would, so the deeper checks (zip, ``allow_pickle=False``,
names, dtypes, shapes, finiteness) are what must refuse them.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np

from recommend.model.artifact import ARRAYS, MANIFEST, METADATA, sha256_file


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path / ARRAYS, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _write_npz(path: Path, arrays: dict, *, allow_pickle: bool = False) -> None:
    buf = io.BytesIO()
    if allow_pickle:  # np.savez pickles object arrays
        np.savez(buf, **arrays)
    else:
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    (path / ARRAYS).write_bytes(buf.getvalue())


def _reseal(path: Path, registry, version: str) -> None:
    files = {n: sha256_file(path / n) for n in (ARRAYS, METADATA) if (path / n).exists()}
    (path / MANIFEST).write_text(json.dumps({"version": version, "files": files}))
    _pin(registry, version, hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest())


def _pin(registry, version: str, digest: str) -> None:
    key = registry.keys.model_version(version)
    record = json.loads(registry.redis.get(key))
    record["manifest_sha256"] = digest
    registry.redis.set(key, json.dumps(record))


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x10
    return bytes(b)


def _change(name: str, fn):
    def apply(path: Path) -> None:
        arrays = _arrays(path)
        fn(arrays)
        _write_npz(path, arrays)

    apply.__name__ = name
    return apply


def _nan(arrays):
    arrays["item_embeddings"] = arrays["item_embeddings"].copy()
    arrays["item_embeddings"][0, 0] = np.nan


def _inf(arrays):
    arrays["user_biases"] = arrays["user_biases"].copy()
    arrays["user_biases"][-1] = np.inf


# name -> (damage to the version directory, sealed: manifest + registry digest rewritten)
CORRUPTIONS: dict[str, tuple] = {
    "truncated npz": (lambda p: (p / ARRAYS).write_bytes((p / ARRAYS).read_bytes()[:999]), False),
    "truncated npz, sealed": (
        lambda p: (p / ARRAYS).write_bytes((p / ARRAYS).read_bytes()[:999]),
        True,
    ),
    "bit flip in npz": (
        lambda p: (p / ARRAYS).write_bytes(_flip((p / ARRAYS).read_bytes(), 500)),
        False,
    ),
    "bit flip in npz data, sealed": (
        lambda p: (p / ARRAYS).write_bytes(_flip((p / ARRAYS).read_bytes(), 2000)),
        True,
    ),
    "empty npz, sealed": (lambda p: (p / ARRAYS).write_bytes(b""), True),
    "npz missing": (lambda p: (p / ARRAYS).unlink(), False),
    "metadata missing": (lambda p: (p / METADATA).unlink(), False),
    "manifest missing": (lambda p: (p / MANIFEST).unlink(), False),
    "manifest not JSON": (lambda p: (p / MANIFEST).write_text("{not json"), False),
    "metadata not JSON, sealed": (lambda p: (p / METADATA).write_text("{oops"), True),
    "unknown format, sealed": (
        lambda p: (p / METADATA).write_text(json.dumps({"format": 99, "version": p.name})),
        True,
    ),
    "registry digest mismatch": (lambda p: None, "wrong-digest"),
    "pickle as npz, sealed": (
        lambda p: (p / ARRAYS).write_bytes(pickle.dumps({"item_ids": ["x"]})),
        True,
    ),
    "object array inside, sealed": (
        lambda p: _write_npz(
            p,
            {**_arrays(p), "item_ids": np.array([{"a": 1}] * 3, dtype=object)},
            allow_pickle=True,
        ),
        True,
    ),
    "wrong shape, sealed": (
        _change("shape", lambda a: a.update(item_embeddings=a["item_embeddings"][:, :-1])),
        True,
    ),
    "short biases, sealed": (
        _change("biases", lambda a: a.update(item_biases=a["item_biases"][:-2])),
        True,
    ),
    "array missing, sealed": (_change("missing", lambda a: a.pop("user_embeddings")), True),
    "strings for floats, sealed": (
        _change(
            "dtype",
            lambda a: a.update(item_biases=np.array(["x"] * len(a["item_biases"]))),
        ),
        True,
    ),
    "NaN embedding, sealed": (_change("nan", _nan), True),
    "inf bias, sealed": (_change("inf", _inf), True),
    "feature index out of range, sealed": (
        _change(
            "indices",
            lambda a: a.update(
                item_features_indices=a["item_features_indices"] + len(a["item_feature_names"])
            ),
        ),
        True,
    ),
}


def make_corrupt(name: str, registry, good_result, version: str) -> Path:
    """Save ``good_result`` as ``version``, register it, then damage it as ``name`` says."""
    from recommend.model.job import save_result

    artifact = save_result(good_result, registry.model_dir, version)
    registry.register(artifact)
    damage, sealed = CORRUPTIONS[name]
    damage(artifact.path)
    if sealed == "wrong-digest":
        _pin(registry, version, "0" * 64)
    elif sealed:
        _reseal(artifact.path, registry, version)
    return artifact.path


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path / ARRAYS) as z:
        return z.namelist()
