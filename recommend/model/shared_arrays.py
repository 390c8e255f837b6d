"""Read-only model arrays shared by every gunicorn worker through memory-mapped ``.npy`` files.

Each worker loads the artifact and builds its :class:`recommend.model.recommender.Recommender`
(``arrays.npz`` members cannot be memory-mapped: they are zip members, possibly compressed).
:func:`share_arrays` then swaps the recommender's large float arrays for read-only memory maps
of ``.npy`` files in a cache directory beside the artifact: the first worker writes each file
(atomically: a temporary file renamed into place), every worker maps it, and the kernel keeps
one copy in the page cache for all of them. The private copies are dropped, so N workers hold
the arrays once, not N times.

The cache is derived data and is trusted no more than needed: a file is used only when its
shape, dtype and contents equal what this worker computed from the verified artifact (a
comparison, no pickle, ``allow_pickle=False``); otherwise the worker keeps its private array.
When the directory cannot be written (a read-only model volume) nothing is shared and
nothing fails.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger("rapport.models")

# Recommender attributes worth sharing: the (items x d) and (users x d) float matrices and the
# per-item vectors. Python-object attributes (id lists, dicts) cannot be shared this way.
SHARED = (
    "user_embeddings",
    "user_biases",
    "item_embeddings",
    "item_biases",
    "user_vectors",
    "item_vectors",
    "item_bias",
    "item_unit",
    "popularity",
    "country_popularity",
)


def cache_dir(artifact_path: Path, manifest_sha256: str) -> Path:
    """Where one artifact's shared arrays live: inside its version directory (so pruning the
    version removes them), named by the manifest digest (so no other artifact matches)."""
    return Path(artifact_path) / "serving-cache" / manifest_sha256[:16]


def shared_array(directory: Path, name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as a read-only memory map of ``directory/name.npy`` (written when missing);
    ``array`` itself when the file cannot be written or does not hold the same values."""
    array = np.ascontiguousarray(array)
    path = directory / f"{name}.npy"
    if not path.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, array, allow_pickle=False)
                # link, not rename: workers start together, and a second rename would put a
                # new file under the name after the first worker mapped the old one (two
                # copies in memory). The first link wins; the others map the winner's file.
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            log.info("model arrays not shared (%s): %s", directory, exc.strerror or exc)
            return array
    try:
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("shared array %s unreadable (%s); keeping a private copy", path, exc)
        return array
    if (
        mapped.shape != array.shape
        or mapped.dtype != array.dtype
        or not np.array_equal(mapped, array)
    ):
        log.warning("shared array %s differs from the artifact; keeping a private copy", path)
        return array
    return mapped


def share_arrays(obj: object, directory: Path, names: Iterable[str] = SHARED) -> int:
    """Replace ``obj``'s numpy attributes ``names`` with shared memory maps; return the bytes
    now shared (0 when nothing could be)."""
    shared = 0
    for name in names:
        array = getattr(obj, name, None)
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu" or not array.size:
            continue
        result = shared_array(Path(directory), name, array)
        if isinstance(result, np.memmap):
            setattr(obj, name, result)
            shared += result.nbytes
    return shared


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``). The private arrays that
    :func:`share_arrays` replaced, and the artifact's own arrays, are freed into the heap, and
    glibc keeps large freed blocks unless asked; without this, sharing saves little RSS."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
