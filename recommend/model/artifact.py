"""Model artifacts: one directory per version.

::

    <model_dir>/<version>/
        arrays.npz      embeddings, biases, feature matrices (CSR parts), id maps (np.str_),
                        popularity (overall and by country), item categories
        metadata.json   version, created time, hyper-parameters, data counts, metrics,
                        library versions, array shapes
        items.faiss     optional: the approximate nearest-neighbour index over the items
                        (``recommend.model.ann``, faiss's own format), built above
                        ``ann_min_items`` products
        manifest.json   {"files": {"arrays.npz": "<sha256>", "metadata.json": "<sha256>",
                        "items.faiss": "<sha256>" (when built)}}
        learning-curve.png   optional (``rapport train --plot``), not part of the manifest

:func:`save_artifact` writes into a temporary sibling directory and renames it into place, so
a reader never sees half a version. :func:`load_artifact` checks the manifest (and, when the
registry gives it, the manifest's own digest), every file's sha256, loads the arrays with
``allow_pickle=False`` and checks that names, dtypes and shapes agree. Any failure raises
:class:`ArtifactError` and nothing is returned, so a caller keeps what it had.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommend.errors import ArtifactError
from recommend.model.ann import INDEX_FILE, write_index

ARRAYS = "arrays.npz"
METADATA = "metadata.json"
MANIFEST = "manifest.json"
FORMAT = 1
VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# name -> (kind, rank): kind "f" float, "i" integer, "U" string
SPEC: dict[str, tuple[str, int]] = {
    "user_ids": ("U", 1),
    "item_ids": ("U", 1),
    "user_feature_names": ("U", 1),
    "item_feature_names": ("U", 1),
    "user_embeddings": ("f", 2),
    "user_biases": ("f", 1),
    "item_embeddings": ("f", 2),
    "item_biases": ("f", 1),
    "user_features_data": ("f", 1),
    "user_features_indices": ("i", 1),
    "user_features_indptr": ("i", 1),
    "item_features_data": ("f", 1),
    "item_features_indices": ("i", 1),
    "item_features_indptr": ("i", 1),
    "item_popularity": ("f", 1),
    "item_categories": ("U", 1),
    "country_names": ("U", 1),
    "country_popularity": ("f", 2),
}
# written by training since the ranking rules moved into serving; an artifact without them
# still loads (serving then ranks by the model alone and cold start needs model features)
OPTIONAL: dict[str, tuple[str, int]] = {
    "item_trend": ("f", 1),
    "item_descriptions": ("U", 1),
    "cold_user_feature_names": ("U", 1),
    "cold_user_feature_vectors": ("f", 2),
    "cold_user_feature_counts": ("f", 1),
    "cold_item_feature_names": ("U", 1),
    "cold_item_feature_vectors": ("f", 2),
    "cold_item_feature_biases": ("f", 1),
    "cold_item_feature_counts": ("f", 1),
}


@dataclass(frozen=True)
class Artifact:
    version: str
    path: Path
    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]
    manifest_sha256: str
    index_path: Path | None = None  # items.faiss, verified against the manifest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import lightfm
    import scipy

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "lightfm": getattr(lightfm, "__version__", "unknown"),
    }


_Checks = list[tuple[bool, str]]  # (condition holds, message when it does not)


def check_arrays(arrays: dict[str, np.ndarray]) -> None:
    """Raise :class:`ArtifactError` unless ``arrays`` has every array with a consistent shape."""
    missing = [n for n in SPEC if n not in arrays]
    if missing:
        raise ArtifactError(f"artifact arrays missing: {', '.join(missing)}")
    _check_kinds(arrays)
    checks = _size_checks(arrays)
    checks += _feature_csr_checks(arrays)
    checks += _optional_checks(arrays)
    for ok, message in checks:
        if not ok:
            raise ArtifactError(f"artifact arrays inconsistent: {message}")
    _check_finite(arrays)


def _check_kinds(arrays: dict[str, np.ndarray]) -> None:
    """Every required (and present optional) array has its dtype kind and rank."""
    specs = {**SPEC, **{k: v for k, v in OPTIONAL.items() if k in arrays}}
    for name, (kind, rank) in specs.items():
        a = arrays[name]
        if a.dtype.kind == "O":
            raise ArtifactError(f"array {name} holds Python objects")
        ok = a.dtype.kind == kind or (kind == "i" and a.dtype.kind == "u")
        if not ok or a.ndim != rank:
            raise ArtifactError(f"array {name} has dtype {a.dtype} and {a.ndim} dimensions")


def _size_checks(arrays: dict[str, np.ndarray]) -> _Checks:
    """Embeddings, biases and per-item arrays agree with the id and feature-name lists."""
    n_items = len(arrays["item_ids"])
    fu, fi = len(arrays["user_feature_names"]), len(arrays["item_feature_names"])
    ue, ie = arrays["user_embeddings"], arrays["item_embeddings"]
    return [
        (ue.shape[0] == fu, "user_embeddings rows != user features"),
        (ie.shape[0] == fi, "item_embeddings rows != item features"),
        (ue.shape[1] == ie.shape[1], "user and item embeddings differ in dimension"),
        (len(arrays["user_biases"]) == fu, "user_biases length != user features"),
        (len(arrays["item_biases"]) == fi, "item_biases length != item features"),
        (len(arrays["item_popularity"]) == n_items, "item_popularity length != items"),
        (len(arrays["item_categories"]) == n_items, "item_categories length != items"),
        (
            arrays["country_popularity"].shape == (len(arrays["country_names"]), n_items),
            "country_popularity shape != (countries, items)",
        ),
        (n_items > 0, "no items"),
    ]


def _feature_csr_checks(arrays: dict[str, np.ndarray]) -> _Checks:
    """The user and item feature CSR parts are well formed for their row and column counts."""
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
    fu, fi = len(arrays["user_feature_names"]), len(arrays["item_feature_names"])
    checks: _Checks = []
    for side, rows, cols in (("user", n_users, fu), ("item", n_items, fi)):
        indptr = arrays[f"{side}_features_indptr"]
        indices = arrays[f"{side}_features_indices"]
        data = arrays[f"{side}_features_data"]
        checks += [
            (len(indptr) == rows + 1, f"{side}_features_indptr length != {side}s + 1"),
            (len(indices) == len(data), f"{side}_features indices/data lengths differ"),
            (int(indptr[-1]) == len(data) if len(indptr) else False, f"{side}_features_indptr end"),
            (bool(np.all(np.diff(indptr) >= 0)), f"{side}_features_indptr not monotone"),
            (
                bool(len(indices) == 0 or (indices.min() >= 0 and indices.max() < cols)),
                f"{side}_features_indices out of range",
            ),
        ]
    return checks


def _optional_checks(arrays: dict[str, np.ndarray]) -> _Checks:
    """Cold-start tables, trend and descriptions (when present) match their names and items."""
    n_items = len(arrays["item_ids"])
    d = arrays["user_embeddings"].shape[1]
    checks: _Checks = []
    for side in ("user", "item"):
        names = arrays.get(f"cold_{side}_feature_names")
        if names is None:
            continue
        parts = [f"cold_{side}_feature_vectors", f"cold_{side}_feature_counts"]
        if side == "item":
            parts.append("cold_item_feature_biases")
        for part in parts:
            column = arrays.get(part)
            checks.append(
                (column is not None and len(column) == len(names), f"{part} length != names")
            )
        v = arrays.get(f"cold_{side}_feature_vectors")
        checks.append((v is None or v.shape[1] == d, f"cold_{side}_feature_vectors dimension"))
    for name in ("item_trend", "item_descriptions"):
        if name in arrays:
            checks.append((len(arrays[name]) == n_items, f"{name} length != items"))
    return checks


def _check_finite(arrays: dict[str, np.ndarray]) -> None:
    """The float arrays hold no NaN or infinite value."""
    floats = ["user_embeddings", "item_embeddings", "user_biases", "item_biases"]
    floats += [k for k, (kind, _) in OPTIONAL.items() if kind == "f" and k in arrays]
    for name in floats:
        if not np.all(np.isfinite(arrays[name])):
            raise ArtifactError(f"array {name} has NaN or infinite values")


def save_artifact(
    model_dir: str | Path,
    version: str,
    arrays: dict[str, np.ndarray],
    metadata: dict[str, Any],
    *,
    index: object | None = None,
) -> Artifact:
    """Write ``<model_dir>/<version>/`` atomically and return it (as loaded); ``index``, a
    faiss index from ``recommend.model.ann.build_index``, is written as ``items.faiss``."""
    if not VERSION_NAME.match(version):
        raise ArtifactError(f"bad version name {version!r}")
    check_arrays(arrays)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / version
    if final.exists():
        raise ArtifactError(f"version {version} already exists in {model_dir}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
    try:
        names = [*SPEC, *(k for k in OPTIONAL if k in arrays)]
        # allow_pickle=False as load_artifact reads it (check_arrays has refused object arrays)
        contiguous = {k: np.ascontiguousarray(arrays[k]) for k in names}
        np.savez(tmp / ARRAYS, allow_pickle=False, **contiguous)
        meta = {
            "format": FORMAT,
            "version": version,
            **metadata,
            "libraries": library_versions(),
            "shapes": {k: list(arrays[k].shape) for k in names},
        }
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True, default=_json))
        files = [ARRAYS, METADATA]
        if index is not None:
            write_index(index, tmp / INDEX_FILE)
            files.append(INDEX_FILE)
        manifest = {
            "version": version,
            "files": {name: sha256_file(tmp / name) for name in files},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for name in (*files, MANIFEST):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_artifact(final)


def _json(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_artifact(path: str | Path, *, expected_manifest_sha256: str | None = None) -> Artifact:
    """Load and verify one version directory; raise :class:`ArtifactError` on any defect."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"no artifact at {path}")
    manifest_path = path / MANIFEST
    try:
        manifest_bytes = manifest_path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"artifact {path.name}: manifest unreadable ({exc.strerror})") from None
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if expected_manifest_sha256 and digest != expected_manifest_sha256:
        raise ArtifactError(f"artifact {path.name}: manifest does not match the registry")
    try:
        manifest = json.loads(manifest_bytes)
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise ArtifactError(f"artifact {path.name}: manifest is not valid") from None
    if set(files) - {INDEX_FILE} != {ARRAYS, METADATA}:
        raise ArtifactError(f"artifact {path.name}: manifest lists unexpected files")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"artifact {path.name}: {name} is missing")
        if sha256_file(file) != expected:
            raise ArtifactError(f"artifact {path.name}: {name} fails its sha256 check")
    try:
        metadata = json.loads((path / METADATA).read_text())
    except ValueError:
        raise ArtifactError(f"artifact {path.name}: metadata.json is not JSON") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ArtifactError(f"artifact {path.name}: unknown artifact format")
    arrays: dict[str, np.ndarray] = {}
    try:
        # our own file handle: np.load leaks its handle when the zip is broken
        with open(path / ARRAYS, "rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ArtifactError(f"artifact {path.name}: arrays.npz is not an npz archive")
            with npz:
                for name in npz.files:
                    arrays[name] = npz[name]
    except ValueError as exc:  # object arrays refuse to load without pickle
        raise ArtifactError(f"artifact {path.name}: arrays.npz refused ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"artifact {path.name}: arrays.npz unreadable ({exc})") from None
    check_arrays(arrays)
    return Artifact(
        version=str(metadata.get("version") or path.name),
        path=path,
        arrays=arrays,
        metadata=metadata,
        manifest_sha256=digest,
        index_path=path / INDEX_FILE if INDEX_FILE in files else None,
    )


def manifest_digest(path: str | Path) -> str:
    """sha256 of a version's manifest.json (the registry keeps it to pin the artifact)."""
    return sha256_file(Path(path) / MANIFEST)


def remove_artifact(model_dir: str | Path, version: str) -> bool:
    if not VERSION_NAME.match(version):
        return False
    target = Path(model_dir) / version
    if target.is_dir():
        shutil.rmtree(target)
        return True
    return False
