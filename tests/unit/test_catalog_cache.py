"""The per-process product cache used by serving (recommend/catalog/products.py CachedCatalog): no
MGET
for documents already seen, and never behind the catalog by more than its check interval."""

from __future__ import annotations

import pytest

from profiles.keys import Keys
from recommend.catalog.products import CachedCatalog, Catalog

KEYS = Keys("rp")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _product(pid: str, *, in_stock: bool = True, name: str = "MUG") -> dict:
    return {"product_id": pid, "name": name, "category": "kitchen", "price": "2.50",
            "currency": "GBP", "in_stock": in_stock}  # fmt: skip


def _mgets(redis_client) -> int:
    return int(redis_client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))


@pytest.fixture
def catalog(redis_client):
    c = Catalog(redis_client, KEYS)
    c.upsert(_product("P1"))
    c.upsert(_product("P2"))
    return c


def test_seen_documents_cost_no_mget_until_the_catalog_changes(redis_client, catalog):
    clock = Clock()
    cache = CachedCatalog(catalog, check_seconds=1.0, monotonic=clock)
    assert set(cache.lookup(["P1", "P2", "NOPE"])) == {"P1", "P2"}
    before = _mgets(redis_client)
    assert set(cache.lookup(["P2", "P1", "NOPE"])) == {"P1", "P2"}
    clock.now += 5  # the version is read again, unchanged: still no MGET
    assert cache.lookup(["P1"])["P1"]["name"] == "MUG"
    assert _mgets(redis_client) == before


def test_a_write_shows_within_the_check_interval(redis_client, catalog):
    clock = Clock()
    cache = CachedCatalog(catalog, check_seconds=1.0, monotonic=clock)
    assert cache.lookup(["P1"])["P1"]["in_stock"] is True
    catalog.upsert(_product("P1", in_stock=False))
    clock.now += 1.01
    assert cache.lookup(["P1"])["P1"]["in_stock"] is False


def test_exact_with_no_interval_after_upsert_and_delete(redis_client, catalog):
    cache = CachedCatalog(catalog, check_seconds=0)
    assert set(cache.lookup(["P1", "P2", "P3"])) == {"P1", "P2"}
    catalog.upsert(_product("P3", name="NEW"))
    assert cache.lookup(["P3"])["P3"]["name"] == "NEW"  # an unknown id is not stuck as missing
    catalog.delete("P2")
    assert set(cache.lookup(["P1", "P2", "P3"])) == {"P1", "P3"}
    catalog.upsert_many([_product("P1", name="RENAMED")])
    assert cache.lookup(["P1"])["P1"]["name"] == "RENAMED"


def test_every_write_moves_the_version(redis_client, catalog):
    version = lambda: int(redis_client.get(KEYS.catalog_version()))  # noqa: E731
    start = version()
    catalog.upsert(_product("P9"))
    catalog.upsert_many([_product("P8"), _product("P9", name="AGAIN")])
    catalog.delete("P8")
    assert version() == start + 4


def test_the_holder_skips_the_catalog_scan_while_the_catalog_is_unchanged(redis_client, tmp_path):
    from recommend.model.job import save_result
    from recommend.model.registry import ModelRegistry
    from service.model_holder import ModelHolder
    from tests.recsys import products, trained

    catalog = Catalog(redis_client, KEYS)
    catalog.upsert_many(list(products().values()))
    registry = ModelRegistry(redis_client, KEYS, tmp_path)
    artifact = save_result(trained(), tmp_path, registry.new_version())
    registry.register(artifact)
    registry.promote(artifact.version, force=True)
    holder = ModelHolder(redis_client, KEYS, tmp_path, poll_seconds=0)
    assert holder.refresh()

    def scans() -> int:
        stats = redis_client.info("commandstats")
        return int(stats.get("cmdstat_zrangebylex", {}).get("calls", 0))

    before = scans()
    assert holder.refresh_new_items() == 0
    assert holder.refresh_new_items() == 0
    assert scans() == before  # the version did not move since the load's scan
    catalog.upsert({**products()["P200"], "product_id": "FRESH1", "name": "BAGS NEW ONE"})
    assert holder.refresh_new_items() == 1
    assert scans() == before + 1
    assert "FRESH1" in holder.current.recommender.item_index
