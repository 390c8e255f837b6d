"""The nearest-neighbour index (issue 19) on a small catalog with the threshold set low:
its recommendations against exact scoring, filters still exact, a damaged index refused."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import numpy as np
import pytest

from recommend.errors import ArtifactError
from recommend.model.ann import INDEX_FILE, ItemIndex, item_representations
from recommend.model.artifact import MANIFEST, load_artifact
from recommend.model.dataset import DAY
from recommend.model.job import save_result
from recommend.model.recommender import CustomerContext, Filters, Recommender
from recommend.model.training import train
from tests.recsys import END, FAST, products, synthetic

NOW = END + 10 * DAY
PER_CATEGORY = 300  # 1,200 products: the first try fetches 100 of them


@pytest.fixture(scope="module")
def data():
    return synthetic(n_customers=240, per_category=PER_CATEGORY, seed=5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data):
    result = train(data, FAST, progress=False)
    return save_result(result, tmp_path_factory.mktemp("ann"), "a1", ann_min_items=10)


@pytest.fixture(scope="module")
def pair(saved):
    """(recommender with the index, the same model scoring exactly)."""
    indexed = Recommender(saved, clock=lambda: NOW, ann_min_items=10)
    exact = copy.copy(indexed)
    exact.ann = None
    return indexed, exact


@pytest.fixture(scope="module")
def catalog():
    docs = products(PER_CATEGORY)
    for n, doc in enumerate(docs.values()):
        doc["in_stock"] = n % 3 != 0  # a third out of stock: the filter has work to do
    return docs


def lookup_of(catalog):
    return lambda ids: {p: catalog[p] for p in ids if p in catalog}


def customers(data, n=40):
    by = {}
    for ln in data.lines:
        by.setdefault(ln.customer_id, []).append(ln)
    return [
        CustomerContext(c, purchases=lines, has_profile=True) for c, lines in list(by.items())[:n]
    ]


def test_the_index_ships_in_the_artifact_under_its_checksum(saved):
    assert saved.index_path is not None and saved.index_path.name == INDEX_FILE
    manifest = json.loads((saved.path / MANIFEST).read_text())
    assert INDEX_FILE in manifest["files"]
    assert saved.metadata["ann"]["library"].startswith("faiss-cpu")


def test_index_recall_against_exact_scores(saved):
    vectors, bias = item_representations(saved.arrays)
    index = ItemIndex.load(saved.index_path, len(bias), vectors.shape[1])
    users = saved.arrays["user_embeddings"][:50]
    hits = 0
    for u in users:
        exact = set(np.argsort(-(vectors @ u + bias), kind="stable")[:10].tolist())
        hits += len(exact & set(index.search(u, 10).tolist()))
    assert hits / (10 * len(users)) >= 0.95


@pytest.mark.parametrize("strategy", ["discover", "blend"])
def test_recommendations_from_the_index_equal_exact_scoring(pair, data, catalog, strategy):
    indexed, exact = pair
    lookup = lookup_of(catalog)
    same = total = 0
    for ctx in customers(data):
        a = indexed.recommend(ctx, strategy=strategy, limit=10, lookup=lookup)["items"]
        b = exact.recommend(ctx, strategy=strategy, limit=10, lookup=lookup)["items"]
        assert len(a) == len(b) == 10
        same += len({i["product_id"] for i in a} & {i["product_id"] for i in b})
        total += 10
    assert same / total >= 0.98  # recall@10 of the served lists against exact scoring


def test_filters_stay_exact(pair, data, catalog):
    indexed, exact = pair
    lookup = lookup_of(catalog)
    filters = Filters(category="bags", min_price=Decimal("2"), max_price=Decimal("4"))
    for ctx in customers(data, 10):
        got = indexed.recommend(ctx, strategy="discover", limit=8, filters=filters, lookup=lookup)
        want = exact.recommend(ctx, strategy="discover", limit=8, filters=filters, lookup=lookup)
        assert [i["product_id"] for i in got["items"]] == [i["product_id"] for i in want["items"]]
        bought = {ln.product_id for ln in ctx.purchases}
        for item in got["items"]:
            doc = catalog[item["product_id"]]
            assert filters.accepts(doc) and item["product_id"] not in bought


def test_a_filter_few_items_pass_widens_the_search(pair, data, catalog):
    """Only 12 products pass: the index's first 100 candidates hold few of them, so the
    search widens (or falls back to exact scoring) and still fills the list exactly."""
    indexed, exact = pair
    rare = {pid for n, pid in enumerate(sorted(catalog)) if n % 100 == 7}
    docs = {p: {**d, "in_stock": p in rare} for p, d in catalog.items()}
    lookup = lookup_of(docs)
    ctx = customers(data, 1)[0]
    got = indexed.recommend(ctx, strategy="discover", limit=10, lookup=lookup)["items"]
    want = exact.recommend(ctx, strategy="discover", limit=10, lookup=lookup)["items"]
    assert [i["product_id"] for i in got] == [i["product_id"] for i in want]
    assert {i["product_id"] for i in got} <= rare


def test_below_the_threshold_nothing_is_indexed(tmp_path, data):
    result = train(data, FAST, progress=False)
    plain = save_result(result, tmp_path, "p1")  # default threshold: 200k products
    assert plain.index_path is None
    assert Recommender(plain).ann is None
    assert Recommender(plain, ann_min_items=10).ann is None


def _rewrite_manifest(path):
    import hashlib

    manifest = json.loads((path / MANIFEST).read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_a_damaged_index_is_refused(tmp_path, saved):
    import shutil

    copy_dir = tmp_path / "a1"
    shutil.copytree(saved.path, copy_dir)
    index = copy_dir / INDEX_FILE
    index.write_bytes(index.read_bytes()[: len(index.read_bytes()) // 2])
    with pytest.raises(ArtifactError, match="items.faiss fails its sha256"):
        load_artifact(copy_dir)
    # past the checksum (the manifest rewritten to match), faiss itself refuses the file
    _rewrite_manifest(copy_dir)
    artifact = load_artifact(copy_dir)
    with pytest.raises(ArtifactError, match="items.faiss"):
        Recommender(artifact, ann_min_items=10)


def test_an_index_of_other_items_is_refused(tmp_path, saved, data):
    import shutil

    other = save_result(
        train(synthetic(n_customers=60, per_category=40), FAST, progress=False),
        tmp_path / "other",
        "o1",
        ann_min_items=10,
    )
    copy_dir = tmp_path / "a1"
    shutil.copytree(saved.path, copy_dir)
    shutil.copy(other.index_path, copy_dir / INDEX_FILE)
    _rewrite_manifest(copy_dir)
    with pytest.raises(ArtifactError, match="does not index"):
        Recommender(load_artifact(copy_dir), ann_min_items=10)
