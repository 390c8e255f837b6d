"""The approximate nearest-neighbour index over the item representations (issue 19).

Above ``ann_min_items`` products an exact request scores every product (one (n_items, d)
matrix-vector product, an argpartition over the catalog: ~40 ms at 1M products). Training then
builds this index and ships it in the artifact (``items.faiss``, faiss's own format, listed in
the manifest with its sha256 like every other file), and serving takes each request's
candidates from it (``recommend.model.ann_ranking``).

The library is faiss-cpu (``IndexHNSWFlat``), chosen by measurement against usearch (hnswlib
has no binary wheel for Python 3.11 on PyPI and its source build failed here); the numbers are
in docs/recommendations.md. LightFM's score is ``user . item + item bias``, an inner product
once the vectors carry the bias (items ``[v, b]``, queries ``[u, 1]``). HNSW finds inner
products less reliably than distances, so the items get one more column,
``sqrt(R^2 - |[v, b]|^2)`` with R the largest norm (Bachrach et al., RecSys 2014): all items
then have norm R and the nearest item to ``[u, 1, 0]`` in L2 is the one with the largest
inner product (measured: recall@10 0.998 against 0.983 for the inner-product index at the
same search cost).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recommend.errors import ArtifactError

INDEX_FILE = "items.faiss"
DEFAULT_MIN_ITEMS = 200_000
CONNECTIVITY = 16  # HNSW M: links per node
BUILD_EFFORT = 200  # efConstruction
SEARCH_EFFORT = 128  # efSearch at the first try (widened with k)


def augmented_items(vectors: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(n_items, d + 2) float32 ``[v, b, sqrt(R^2 - |[v, b]|^2)]``: equal norms, so the L2
    nearest neighbours of ``[u, 1, 0]`` are the largest ``u . v + b``."""
    a = np.hstack([np.asarray(vectors, np.float32), np.asarray(bias, np.float32)[:, None]])
    sq = np.einsum("ij,ij->i", a, a)
    pad = np.sqrt(np.maximum(sq.max() - sq, 0.0)).astype(np.float32)
    return np.ascontiguousarray(np.hstack([a, pad[:, None]]))


def build_index(vectors: np.ndarray, bias: np.ndarray, *, threads: int | None = None):
    """A faiss HNSW index over :func:`augmented_items` (row i is item i)."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    items = augmented_items(vectors, bias)
    index = faiss.IndexHNSWFlat(items.shape[1], CONNECTIVITY, faiss.METRIC_L2)
    index.hnsw.efConstruction = BUILD_EFFORT
    index.add(items)
    return index


def write_index(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


class ItemIndex:
    """A loaded index: :meth:`search` gives the items with the largest model scores."""

    def __init__(self, index, n_items: int):
        self.index = index
        self.n_items = n_items

    @classmethod
    def load(cls, path: Path, n_items: int, dim: int) -> ItemIndex:
        """Read ``path`` (already checked against the manifest); :class:`ArtifactError` when
        faiss cannot read it or it does not index ``n_items`` items of dimension ``dim``."""
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # faiss reports a damaged file this way
            raise ArtifactError(f"{path.name} unreadable ({str(exc).splitlines()[0]})") from None
        if index.ntotal != n_items or index.d != dim + 2:
            raise ArtifactError(f"{path.name} does not index this artifact's items")
        return cls(index, n_items)

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        """Item rows of (about) the ``k`` largest ``vector . item + bias``, best first.
        Single-threaded: a request uses one core."""
        import faiss

        k = min(k, self.n_items)
        query = np.zeros((1, self.index.d), dtype=np.float32)
        query[0, :-2] = vector
        query[0, -2] = 1.0
        params = faiss.SearchParametersHNSW(efSearch=max(SEARCH_EFFORT, k))  # type: ignore[attr-defined]
        _, rows = self.index.search(query, k, params=params)
        found = rows[0]
        return found[found >= 0]


def item_representations(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, d) vectors and (n_items,) biases of the artifact's items, as serving derives
    them (item feature matrix @ item embeddings / biases)."""
    import scipy.sparse as sp

    itf = sp.csr_matrix(
        (
            arrays["item_features_data"],
            arrays["item_features_indices"],
            arrays["item_features_indptr"],
        ),
        shape=(len(arrays["item_ids"]), len(arrays["item_feature_names"])),
    )
    vectors = np.asarray(itf @ arrays["item_embeddings"].astype(np.float32), dtype=np.float32)
    bias = np.asarray(itf @ arrays["item_biases"].astype(np.float32), dtype=np.float32).ravel()
    return vectors, bias


def index_for(arrays: dict[str, np.ndarray], min_items: int = DEFAULT_MIN_ITEMS):
    """The index an artifact with ``arrays`` ships: built when it has at least ``min_items``
    items (None below: exact scoring is cheap enough there)."""
    if len(arrays["item_ids"]) < min_items:
        return None
    return build_index(*item_representations(arrays))


def index_metadata() -> dict[str, object]:
    """What the artifact's metadata records of the index (``ann``)."""
    import faiss

    return {
        "library": f"faiss-cpu {faiss.__version__}",
        "kind": "IndexHNSWFlat, L2 over [v, b, sqrt(R^2 - |[v, b]|^2)]",
        "connectivity": CONNECTIVITY,
        "build_effort": BUILD_EFFORT,
    }
