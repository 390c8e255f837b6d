"""The product catalog in Redis.

A product is one JSON string (``SharedKeys.product``); the ids sit in a lexically ordered zset
(``SharedKeys.product_index``) for cursor paging, and in one zset per category
(``SharedKeys.category_index``). All catalog keys share the ``{catalog}`` hash tag, so each
write is one Lua script that keeps the document and both indexes in step (also on Redis
Cluster). The script checks that the product's category is still the one the caller read, and
the caller retries when it changed underneath (optimistic, no WATCH).

The document format and its validation are ``recommend/catalog/product_document.py``'s.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import redis

from core.errors import InvalidInput, RapportError
from core.keys import SharedKeys
from recommend.catalog.product_document import PRODUCT_ID, normalise_product
from recommend.errors import ProductNotFound

__all__ = ["CachedCatalog", "Catalog", "MAX_BATCH", "MAX_PAGE", "normalise_product"]

MAX_BATCH = 500
MAX_PAGE = 200

_UPSERT = """
local old = redis.call('GET', KEYS[1])
local oldcat = ''
if old then oldcat = cjson.decode(old)['category'] or '' end
if oldcat ~= ARGV[3] then return {-1, oldcat} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[6])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
if oldcat ~= ARGV[4] then
  if oldcat ~= '' then
    redis.call('ZREM', KEYS[4], ARGV[2])
    if tonumber(redis.call('ZINCRBY', KEYS[5], -1, oldcat)) <= 0 then
      redis.call('ZREM', KEYS[5], oldcat)
    end
  end
  redis.call('ZADD', KEYS[3], 0, ARGV[2])
  redis.call('ZINCRBY', KEYS[5], 1, ARGV[4])
end
if old then return {0, ''} end
return {1, ''}
"""

_DELETE = """
local old = redis.call('GET', KEYS[1])
if not old then return {0, ''} end
local oldcat = cjson.decode(old)['category'] or ''
if oldcat ~= ARGV[2] then return {-1, oldcat} end
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if tonumber(redis.call('ZINCRBY', KEYS[4], -1, oldcat)) <= 0 then
  redis.call('ZREM', KEYS[4], oldcat)
end
return {1, ''}
"""


class Catalog:
    """Products: upsert (one or a batch), get, list with filters, delete, category lookup.

    ``client`` decodes responses (``decode_responses=True``, as ``service.redis_connect``
    builds it); redis-py types replies as ``bytes | str``, hence the casts to ``str``."""

    def __init__(
        self, client: redis.Redis, keys: SharedKeys, clock: Callable[[], float] = time.time
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self._upsert = client.register_script(_UPSERT)
        self._delete = client.register_script(_DELETE)

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, product: dict[str, Any], product_id: str | None = None) -> tuple[dict, bool]:
        """Store a product; return it and whether it was created (False: replaced)."""
        doc = normalise_product(product, product_id)
        doc["updated_at"] = self.clock()
        old = self.redis.get(self.keys.product(doc["product_id"]))
        expected = json.loads(old).get("category", "") if old else ""
        return doc, self._write(doc, expected)

    def upsert_many(self, products: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Upsert each product; one result per input, in order:
        ``{"product_id", "status": "created"|"updated"|"invalid", "error"?, "field"?}``."""
        if len(products) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} products per batch", field="items")
        results: list[dict[str, Any]] = []
        valid: list[tuple[int, dict]] = []
        seen: set[str] = set()
        for i, item in enumerate(products):
            pid = item.get("product_id") if isinstance(item, dict) else None
            try:
                doc = normalise_product(item)
            except InvalidInput as exc:
                results.append(
                    {
                        "product_id": pid,
                        "status": "invalid",
                        "error": exc.detail,
                        "field": exc.field,
                    }
                )
                continue
            if doc["product_id"] in seen:
                results.append(
                    {
                        "product_id": pid,
                        "status": "invalid",
                        "error": "the same product_id appears twice in this batch",
                        "field": "product_id",
                    }
                )
                continue
            seen.add(doc["product_id"])
            doc["updated_at"] = self.clock()
            results.append({"product_id": pid, "status": "pending"})
            valid.append((i, doc))
        olds = (
            self.redis.mget([self.keys.product(d["product_id"]) for _, d in valid]) if valid else []
        )
        for (i, doc), old in zip(valid, olds, strict=True):
            expected = json.loads(old).get("category", "") if old else ""
            created = self._write(doc, expected)
            results[i]["status"] = "created" if created else "updated"
        return results

    def _write(self, doc: dict, expected_category: str) -> bool:
        pid, category = doc["product_id"], doc["category"]
        body = json.dumps(doc, separators=(",", ":"))
        for _ in range(10):
            code, current = self._upsert(
                keys=[
                    self.keys.product(pid),
                    self.keys.product_index(),
                    self.keys.category_index(category),
                    self.keys.category_index(expected_category or category),
                    self.keys.categories_index(),
                    self.keys.catalog_version(),
                ],
                args=[body, pid, expected_category, category],
            )
            if int(code) >= 0:
                return int(code) == 1
            expected_category = current
        raise RapportError(f"product {pid} kept changing during the write; retry")

    def delete(self, product_id: str) -> None:
        if not PRODUCT_ID.match(product_id):
            raise ProductNotFound(f"no product with id {product_id}")
        for _ in range(10):
            old = self.redis.get(self.keys.product(product_id))
            if old is None:
                raise ProductNotFound(f"no product with id {product_id}")
            category = json.loads(old).get("category", "")
            code, _current = self._delete(
                keys=[
                    self.keys.product(product_id),
                    self.keys.product_index(),
                    self.keys.category_index(category),
                    self.keys.categories_index(),
                    self.keys.catalog_version(),
                ],
                args=[product_id, category],
            )
            if int(code) == 1:
                return
            if int(code) == 0:
                raise ProductNotFound(f"no product with id {product_id}")
        raise RapportError(f"product {product_id} kept changing during the delete; retry")

    # -- reads --------------------------------------------------------------------------------
    def get(self, product_id: str) -> dict[str, Any]:
        raw = (
            self.redis.get(self.keys.product(product_id)) if PRODUCT_ID.match(product_id) else None
        )
        if raw is None:
            raise ProductNotFound(f"no product with id {product_id}")
        return json.loads(raw)

    def get_many(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The products among ``product_ids`` that exist (one MGET: one slot)."""
        ids = [p for p in dict.fromkeys(product_ids) if PRODUCT_ID.match(p)]
        if not ids:
            return {}
        raws = self.redis.mget([self.keys.product(p) for p in ids])
        return {p: json.loads(r) for p, r in zip(ids, raws, strict=True) if r is not None}

    def category_of(self, product_ids: Iterable[str]) -> dict[str, str]:
        """product id -> category for the known products (the favourite-category trait)."""
        return {p: d.get("category") or "other" for p, d in self.get_many(product_ids).items()}

    def list(
        self,
        *,
        category: str | None = None,
        in_stock: bool | None = None,
        active: bool | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Products in id order, filtered; returns ``(items, next_cursor)`` (None at the end).

        The cursor is the last product id scanned, so pages stay stable while products are
        added or removed.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
        if cursor is not None and not PRODUCT_ID.match(cursor):
            raise InvalidInput("not a cursor from this API", field="cursor")
        index = self.keys.category_index(category) if category else self.keys.product_index()
        items: list[dict] = []
        start = f"({cursor}" if cursor else "-"
        last = cursor
        while len(items) < limit:
            batch = cast(
                "list[str]",
                self.redis.zrangebylex(index, start, "+", start=0, num=max(limit * 2, 50)),
            )
            if not batch:
                return items, None
            docs = self.get_many(batch)
            for pid in batch:
                last = pid
                doc = docs.get(pid)
                if doc is None:
                    continue
                if in_stock is not None and doc.get("in_stock") is not in_stock:
                    continue
                if active is not None and doc.get("active") is not active:
                    continue
                items.append(doc)
                if len(items) == limit:
                    break
            start = f"({last}"
        more = self.redis.zrangebylex(index, f"({last}", "+", start=0, num=1)
        return items, (last if more else None)

    def iter_all(self, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Every product, in id order (training reads the catalog this way)."""
        start = "-"
        while True:
            ids = cast(
                "list[str]",
                self.redis.zrangebylex(self.keys.product_index(), start, "+", start=0, num=batch),
            )
            if not ids:
                return
            docs = self.get_many(ids)
            for pid in ids:
                if pid in docs:
                    yield docs[pid]
            start = f"({ids[-1]}"

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.product_index()))

    def product_ids(self, limit: int | None = None) -> builtins.list[str]:
        """Every product id (or the first ``limit``), in id order, without the documents."""
        index, page = self.keys.product_index(), {} if limit is None else {"start": 0, "num": limit}
        return cast("list[str]", self.redis.zrangebylex(index, "-", "+", **page))

    def version(self) -> str | None:
        """The write counter (``SharedKeys.catalog_version``): moves on every product write."""
        return cast("str | None", self.redis.get(self.keys.catalog_version()))

    def categories(self) -> dict[str, int]:
        """category -> number of products."""
        pairs = cast(
            "list[tuple[str, float]]",
            self.redis.zrange(self.keys.categories_index(), 0, -1, withscores=True),
        )
        return {c: int(n) for c, n in pairs}


class CachedCatalog:
    """Product documents cached in this process, for serving (recommendations, similar
    products, next-best actions), so a request costs no MGET for products seen before.

    Every product write and delete increments ``SharedKeys.catalog_version`` in the same script,
    so the cache is dropped whenever the catalog changed: :meth:`lookup` reads the counter at most
    every ``check_seconds`` (0: on every call, exact) and documents are never older than that.
    Documents are shared between requests: callers must not modify them."""

    MAX_DOCS = 250_000  # the cache is dropped when it grows past this

    def __init__(
        self,
        catalog: Catalog,
        *,
        check_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.catalog = catalog
        self.check_seconds = check_seconds
        self.monotonic = monotonic
        self._docs: dict[str, dict[str, Any] | None] = {}
        self._version: str | None = None
        self._checked = float("-inf")

    def _current(self) -> dict[str, dict[str, Any] | None]:
        now = self.monotonic()
        if self.check_seconds > 0 and now - self._checked < self.check_seconds:
            return self._docs
        version = cast("str | None", self.catalog.redis.get(self.catalog.keys.catalog_version()))
        if version != self._version or len(self._docs) > self.MAX_DOCS:
            self._docs = {}  # a new dict: requests holding the old one finish with it
            self._version = version
        self._checked = now
        return self._docs

    def lookup(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """As :meth:`Catalog.get_many`, from the cache where it can."""
        docs = self._current()
        ids = list(dict.fromkeys(product_ids))
        missing = [p for p in ids if p not in docs]
        if missing:
            found = self.catalog.get_many(missing)
            for p in missing:
                docs[p] = found.get(p)  # None: known not to exist (until the next change)
        return {p: d for p in ids if (d := docs.get(p)) is not None}
