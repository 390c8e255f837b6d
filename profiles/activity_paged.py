"""Whole-customer activity operations in pages: snapshot, absorb, remove, trait rebuild.

A customer's history is bounded (``profiles.activity.MAX_ORDERS`` orders of at most
``activity_input.MAX_LINES`` lines, ``EVENTS_CAP`` events, ``MESSAGE_IDS_CAP`` message ids),
but a merged customer holds two histories, so nothing here reads or writes a whole history in
one Redis call: orders go :data:`PAGE` at a time, message ids :data:`MID_PAGE` at a time, the
events stream (bounded by its cap) in one call. Every call is idempotent (the scripts are in
``profiles/activity_lua_paged.py``), so a merge that stops half-way resumes by running the step
again (``profiles/merge.py``).

A snapshot is read page by page, so it is not one atomic read: a purchase recorded while it is
read may or may not be in it. Merges do not need more: the source is drained with the snapshot
it was moved with, and whatever it received meanwhile is moved by a further snapshot. A trait
rebuild (:func:`recompute_traits`) is paged the same way; a purchase recorded while it runs may
be missed by the rebuilt counters until the next rebuild (the purchase itself is kept).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

from profiles import activity_lua_paged as lua
from profiles.activity_snapshot import snapshot_from, snapshot_parts
from profiles.keys import Keys


class ActivityStore(Protocol):
    """What the paged operations use of ``profiles.activity.ActivityStore`` (typed here as a
    protocol so this module, which that store imports, does not import it back)."""

    redis: Any
    keys: Keys
    paged: PagedScripts
    category_of: Callable[[list[str]], Mapping[str, str]] | None

    def script_keys(self, cid: str) -> list[str]: ...

    def traits(self, customer_id: str) -> dict[str, Any]: ...


PAGE = 200  # orders per script call at most ...
PAGE_LINES = 500  # ... and purchase lines (a page of big orders is fewer orders)
MID_PAGE = 1_000  # message ids per script call


class PagedScripts:
    """The paged scripts, registered once per :class:`~profiles.activity.ActivityStore`."""

    def __init__(self, client: Any):
        self.absorb_orders = client.register_script(lua.ABSORB_ORDERS)
        self.absorb_rest = client.register_script(lua.ABSORB_REST)
        self.remove_orders = client.register_script(lua.REMOVE_ORDERS)
        self.remove_rest = client.register_script(lua.REMOVE_REST)
        self.events_page = client.register_script(lua.EVENTS_PAGE)
        self.events_swap = client.register_script(lua.EVENTS_SWAP)
        self.events_delete = client.register_script(lua.EVENTS_DELETE)
        self.recompute_page = client.register_script(lua.RECOMPUTE_PAGE)
        self.recompute_finish = client.register_script(lua.RECOMPUTE_FINISH)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _order_pages(fields: Sequence[str], lines: Mapping[str, int]) -> Iterator[list[str]]:
    """``fields`` in pages of at most :data:`PAGE` orders and :data:`PAGE_LINES` lines (one
    order of more lines alone); ``lines``: field -> its number of lines."""
    page: list[str] = []
    total = 0
    for field in fields:
        n = lines.get(field, 0)
        if page and (len(page) >= PAGE or total + n > PAGE_LINES):
            yield page
            page, total = [], 0
        page.append(field)
        total += n
    if page:
        yield page


def _products(purchases: Sequence[Mapping[str, Any]]) -> set[str]:
    return {ln["product_id"] for p in purchases for ln in p.get("lines") or ()}


def _with_cats(
    store: ActivityStore, script: Any, keys: list[str], args: list[Any], products: set[str]
) -> None:
    """Run an order script with the category map of ``products`` (``'null'`` without a
    catalog); when it names products the map lacks (a page changed meanwhile), again."""
    if store.category_of is None:
        script(keys=keys, args=[*args, "null"])
        return
    for _ in range(5):
        cats = dict(store.category_of(sorted(products)) or {}) if products else {}
        missing = script(keys=keys, args=[*args, json.dumps({p: cats.get(p) for p in products})])
        if not missing:
            return
        products = products | set(missing)


# -- snapshot ----------------------------------------------------------------------------------
def snapshot(store: ActivityStore, cid: str) -> dict[str, Any]:
    """Everything held about ``cid`` (the ``activity_snapshot`` shape), read in pages."""
    r, k = store.redis, store.keys
    orders: dict[str, str] = {}
    for ids in _pages_by_rank(r, k.order_times(cid)):
        bodies = cast("list[str | None]", r.hmget(k.orders(cid), ids))
        orders.update((f, b) for f, b in zip(ids, bodies, strict=True) if b)
    entries = _read_stream(r, k.events(cid))
    mids: dict[str, float] = {}
    offset = 0
    while True:
        batch = cast(
            "list[tuple[str, float]]",
            r.zrange(k.message_ids(cid), offset, offset + MID_PAGE - 1, withscores=True),
        )
        mids.update(batch)
        if len(batch) < MID_PAGE:
            break
        offset += MID_PAGE
    reply = [
        [x for pair in orders.items() for x in pair],
        entries,
        [x for pair in mids.items() for x in pair],
        _flat(cast("dict[str, str]", r.hgetall(k.support_contacts(cid)))),
        _flat(cast("dict[str, str]", r.hgetall(k.absorbed(cid)))),
    ]
    return snapshot_from(cid, reply, store.traits(cid))


def _pages_by_rank(r: Any, key: str) -> Iterator[list[str]]:
    start = 0
    while True:
        ids = cast("list[str]", r.zrange(key, start, start + PAGE - 1))
        if ids:
            yield ids
        if len(ids) < PAGE:
            return
        start += PAGE


def _read_stream(r: Any, key: str) -> list[tuple[str, dict[str, str]]]:
    """A whole events stream (bounded by the cap), :data:`PAGE` entries per read."""
    entries: list[tuple[str, dict[str, str]]] = []
    start = "-"
    while True:
        page = cast("list[tuple[str, dict[str, str]]]", r.xrange(key, start, "+", PAGE))
        entries += page
        if len(page) < PAGE:
            return entries
        start = "(" + page[-1][0]


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _flat(mapping: Mapping[str, str]) -> list[str]:
    return [x for pair in mapping.items() for x in pair]


# -- absorb / remove ---------------------------------------------------------------------------
def absorb(store: ActivityStore, target_id: str, snap: Mapping[str, Any], events_cap: int) -> None:
    """``ActivityStore.absorb`` in pages: the orders, the events, then message ids and the
    rest."""
    parts = snapshot_parts(target_id, snap)
    keys, head = store.script_keys(target_id), [parts.source, "1" if parts.own else "0"]
    sizes = {f: len(p["lines"]) for f, p in parts.purchases.items()}
    for page in _order_pages(list(parts.orders), sizes):
        products = _products([parts.purchases[f] for f in page])
        args = [*head, json.dumps({f: parts.orders[f] for f in page})]
        _with_cats(store, store.paged.absorb_orders, keys, args, products)
    if parts.events:
        _absorb_events(store, target_id, parts.events, head, events_cap)
    mid_pages = list(_chunks(list(parts.message_ids.items()), MID_PAGE)) or [[]]
    for n, mids in enumerate(mid_pages):
        first = n == 0
        args = [
            *head,
            json.dumps(dict(mids)),
            json.dumps(parts.contacts if first else {}),
            json.dumps(parts.absorbed if first else {}),
        ]
        store.paged.absorb_rest(keys=keys, args=args)


def _absorb_events(
    store: ActivityStore, target_id: str, incoming: list[list[str]], head: list[str], cap: int
) -> None:
    """Merge ``incoming`` events into the target's stream in id order: the caller reads the
    stream (paged reads), merges, and writes the result into a rebuild key a page per call; the
    last call copies what arrived meanwhile and swaps it in. An event whose message id the
    target holds is skipped; an id the target holds takes the next free sequence number."""
    key = store.keys.events(target_id)
    existing = _read_stream(store.redis, key)
    have = {fields.get("message_id") for _, fields in existing}
    taken = {entry_id for entry_id, _ in existing}
    fresh: list[tuple[str, list[str]]] = []
    added: list[str] = []
    best: tuple[int, str] | None = None
    for eid, mid, etype, at, at_ms, payload in sorted(incoming, key=lambda e: _id_key(e[0])):
        if mid in have:
            continue
        have.add(mid)
        ms, seq = _id_key(eid)
        while eid in taken:
            seq += 1
            eid = f"{ms}-{seq}"
        taken.add(eid)
        fields = ["message_id", mid, "type", etype, "at", at, "at_ms", at_ms, "payload", payload]
        fresh.append((eid, fields))
        added.append(mid)
        if best is None or int(at_ms) > best[0]:
            best = (int(at_ms), at)
    if not fresh:
        return
    own = [(eid, [x for pair in fields.items() for x in pair]) for eid, fields in existing]
    merged = sorted(own + fresh, key=lambda e: _id_key(e[0]))[-cap:]  # the newest are kept
    keys = [*store.script_keys(target_id), store.keys.rebuild(key)]
    for n, page in enumerate(_chunks(merged, PAGE)):
        store.paged.events_page(keys=keys, args=["1" if n == 0 else "0", json.dumps(page)])
    last_read = existing[-1][0] if existing else "0-0"
    best_ms, best_at = (str(best[0]), best[1]) if best else ("", "")
    args = [*head, last_read, json.dumps(added), best_ms, best_at, str(cap)]
    store.paged.events_swap(keys=keys, args=args)


def _delete_events(store: ActivityStore, target_id: str, message_ids: set[str]) -> None:
    """Delete the entries of ``message_ids`` from the target's stream, a page per call; the
    last call sets the latest event time from what is left."""
    if not message_ids:
        return
    entries = _read_stream(store.redis, store.keys.events(target_id))
    doomed = [eid for eid, fields in entries if fields.get("message_id") in message_ids]
    if not doomed:
        return
    left = [fields for _, fields in entries if fields.get("message_id") not in message_ids]
    best = max(left, key=lambda f: int(f.get("at_ms") or 0), default=None)
    tail = [best["at_ms"], best.get("at", "")] if best else ["", ""]
    keys = store.script_keys(target_id)
    pages = list(_chunks(doomed, PAGE))
    for n, page in enumerate(pages):
        last = "1" if n == len(pages) - 1 else "0"
        store.paged.events_delete(keys=keys, args=[json.dumps(list(page)), last, *tail])


def remove(store: ActivityStore, target_id: str, snap: Mapping[str, Any]) -> None:
    """``ActivityStore.remove`` in pages (see there for what is taken out)."""
    parts = snapshot_parts(target_id, snap)
    keys, head = store.script_keys(target_id), [parts.source, "1" if parts.own else "0"]
    script = store.paged.remove_orders
    if parts.own:
        _delete_events(store, target_id, {e[1] for e in parts.events})
        mid_pages = list(_chunks(list(parts.message_ids), MID_PAGE)) or [[]]
        for n, mids in enumerate(mid_pages):
            first = n == 0
            args = [
                *head, json.dumps(list(mids)), json.dumps(parts.contacts if first else {}),
                json.dumps(parts.absorbed if first else {}), str(MID_PAGE),
            ]  # fmt: skip
            store.paged.remove_rest(keys=keys, args=args)
        sizes = {f: len(p["lines"]) for f, p in parts.purchases.items()}
        for page in _order_pages(list(parts.orders), sizes):
            bodies = {f: parts.orders[f][0] for f in page}
            args = [*head, json.dumps(list(page)), json.dumps(bodies)]
            _with_cats(store, script, keys, args, _products([parts.purchases[f] for f in page]))
        return
    absorbed_key = store.keys.absorbed(target_id)
    raw = store.redis.hget(absorbed_key, parts.source)
    recorded = json.loads(raw) if raw else {}
    _delete_events(store, target_id, set(recorded.get("events") or []))
    rest = [*head, "[]", "{}", "{}", str(MID_PAGE)]
    while int(store.paged.remove_rest(keys=keys, args=rest)) > 0:
        pass
    for _ in range(100_000):  # each call drops its page from the record: it ends
        raw = store.redis.hget(absorbed_key, parts.source)
        fields = (json.loads(raw).get("orders") or [])[:PAGE] if raw else []
        if not fields:
            return
        raws = cast("list[str | None]", store.redis.hmget(store.keys.orders(target_id), fields))
        found = {f: json.loads(b) for f, b in zip(fields, raws, strict=True) if b}
        page = next(_order_pages(fields, {f: len(p["lines"]) for f, p in found.items()}))
        products = _products([found[f] for f in page if f in found])
        _with_cats(store, script, keys, [*head, json.dumps(page), "{}"], products)


# -- trait rebuild -----------------------------------------------------------------------------
def recompute_traits(store: ActivityStore, cid: str) -> None:
    """Rebuild the traits from the customer's own orders and events, a page per call."""
    k = store.keys
    keys = [*store.script_keys(cid), k.rebuild(k.traits(cid)), k.rebuild(k.categories(cid))]
    store.redis.delete(*keys[8:])  # what a rebuild that stopped half-way left
    for ids in _pages_by_rank(store.redis, k.order_times(cid)):
        bodies = cast("list[str | None]", store.redis.hmget(k.orders(cid), ids))
        found = {f: json.loads(b) for f, b in zip(ids, bodies, strict=True) if b}
        for page in _order_pages(ids, {f: len(p["lines"]) for f, p in found.items()}):
            products = _products([found[f] for f in page if f in found])
            _with_cats(store, store.paged.recompute_page, keys, [json.dumps(page)], products)
    store.paged.recompute_finish(keys=keys, args=[])
