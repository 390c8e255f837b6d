"""A customer's activity: purchases, events and the traits computed from them.

Keys (all in the customer's ``{c:ID}`` slot; see ``profiles.keys``)::

    orders        hash    order id -> canonical purchase JSON (activity_input.normalise_purchase)
    order_times   zset    order id -> purchase time (epoch ms); newest-first paging
    traits        hash    counters kept current on write (below)
    categories    zset    category -> items bought (favourite categories)
    events        stream  message_id, type, at, at_ms, payload (JSON); MAXLEN ~ EVENTS_CAP
    message_ids   zset    event message id -> receive time (ms); dedup window MESSAGE_WINDOW_S
    support       hash    open support contact id -> {contact_id, channel, topic, opened_at}
    absorbed      hash    source id -> what a merge added ({orders, message_ids, events, support})

Caps (docs/profiles.md "Limits"): at most ``MAX_ORDERS`` (2,000) purchases per customer (the
next one is :class:`TooManyOrders`, 422 on ``order_id``; the record script counts, so racing
writers cannot pass it), each of at most ``activity_input.MAX_LINES`` (600) lines; about
``EVENTS_CAP`` (1,000) events per customer (approximate ``MAXLEN ~`` trimming; a merge trims
exactly); message ids are remembered for ``MESSAGE_WINDOW_S`` (7 days) and at most
``MESSAGE_IDS_CAP`` (10,000) of them, so a retry within a week is a duplicate; purchases are
kept in full (idempotency needs them). A merged customer holds both histories (up to twice the
cap); it takes no new purchase until under the cap again. Page size of ``list_purchases``: 1
to ``MAX_PAGE`` (100).

Traits (``traits()``, listed in ``profiles/traits.py``) are kept current by the write scripts,
never by scanning on read; a snapshot's shape is in ``profiles/activity_snapshot.py``.

Every write is one Lua script in the customer's slot (no WATCH/MULTI; Cluster-safe). A purchase
replay with the same body changes nothing; another body under the same order id is
:class:`~profiles.errors.OrderConflict`. ``snapshot``/``absorb``/``remove`` (export, merge,
unmerge) and ``recompute_traits`` work in pages (``profiles/activity_paged.py``: each Redis call
a page of at most 200 orders, so none blocks Redis for long whatever the history size); absorb
and remove are idempotent and inverse: ``absorb`` records what it added under
``absorbed[source]``, ``remove`` takes out exactly that; both keep the traits current
incrementally.
An order id present on both sides with different bodies is kept twice: the incoming one under
``<order id>~<source id>``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import redis
from redis.cluster import ClusterPipeline

from core.errors import InvalidInput, RapportError
from core.outbox import Outbox, slot_tag
from profiles import activity_lua as lua
from profiles import activity_paged as paged
from profiles.activity_input import (
    canonical_json,
    normalise_event,
    normalise_purchase,
    to_epoch_ms,
    total_units,
)
from profiles.activity_snapshot import event_from
from profiles.errors import OrderConflict
from profiles.keys import Keys
from profiles.traits import queue_trait_reads, traits_from

MAX_ORDERS = 2_000  # purchases one customer may hold (docs/profiles.md "Limits")
EVENTS_CAP = 1_000
MESSAGE_WINDOW_S = 7 * 86_400
MESSAGE_IDS_CAP = 10_000
DEFAULT_PAGE = 20
MAX_PAGE = 100
# how long a day's live purchase counters stay (recommend/model/live_trend.py reads 35 days)
TREND_TTL_S = 40 * 86_400

CategoryOf = Callable[[list[str]], Mapping[str, str]]


class TooManyOrders(InvalidInput):
    """The customer already holds :data:`MAX_ORDERS` purchases (422 on ``order_id``)."""


class ActivityStore:
    """Purchases, events and traits of customers, in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        clock: Callable[[], float] = time.time,
        category_of: CategoryOf | None = None,
    ):
        self.redis = client
        self.keys = keys
        self.clock = clock
        self.category_of = category_of
        self.outbox = Outbox.for_client(client, keys, clock=clock)
        self._record = client.register_script(lua.RECORD_PURCHASE)
        self._events = client.register_script(lua.RECORD_EVENTS)
        self.paged = paged.PagedScripts(client)

    def script_keys(self, cid: str) -> list[str]:
        """The eight KEYS every activity script takes (``profiles/activity_lua.py``)."""
        k = self.keys
        return [
            k.orders(cid),
            k.order_times(cid),
            k.events(cid),
            k.message_ids(cid),
            k.support_contacts(cid),
            k.absorbed(cid),
            k.traits(cid),
            k.categories(cid),
        ]

    def _keys(self, cid: str) -> list[str]:
        """The record scripts' KEYS: :meth:`script_keys`, the slot's outbox stream and the
        customer's outbox ids."""
        stream = self.outbox.stream_for(self.keys.orders(cid))
        return [*self.script_keys(cid), stream, self.keys.outbox_ids(cid)]

    # -- purchases -----------------------------------------------------------------------------
    def record_purchase(
        self, customer_id: str, purchase: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Store a purchase once per order id; return ``(stored purchase, created?)``.

        A replay with the same content returns the stored purchase and changes nothing; the
        same order id with other content raises :class:`OrderConflict`."""
        (result,) = self.record_purchases([(customer_id, purchase)])
        if isinstance(result, RapportError):
            raise result
        return result

    def record_purchases(
        self, items: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[tuple[dict[str, Any], bool] | RapportError]:
        """Many purchases in one round trip (:meth:`_run_script`), the catalog's categories read
        once for all. Per item ``(stored, created?)`` or the domain error (invalid input, order
        conflict)."""
        out: list[Any] = [None] * len(items)
        queued: dict[int, dict[str, Any]] = {}  # index -> normalised purchase
        for i, (_, purchase) in enumerate(items):
            try:
                queued[i] = normalise_purchase(purchase, self.clock())
            except RapportError as exc:
                out[i] = exc
        cats = self._categories(list(queued.values()))
        calls, extra = [], []
        for i, stored in queued.items():
            cid = items[i][0]
            tail = self.outbox.raw_tail(self.keys.orders(cid), cid)
            products = list(dict.fromkeys(ln["product_id"] for ln in stored["lines"]))
            counters = [str(TREND_TTL_S), str(len(products)), *products]
            calls.append((cid, self._purchase_args(stored, cats) + tail + counters))
            extra.append(self._trend_keys(cid, stored))
        replies = self._run_script(self._record, calls, extra)
        for i, result in zip(queued, replies, strict=True):
            try:
                out[i] = self.purchase_result(result)
            except RapportError as exc:
                out[i] = exc
        return out

    def _trend_keys(self, cid: str, stored: Mapping[str, Any]) -> list[str]:
        """The purchase script's KEYS 11 and 12: the live purchase counters of the purchase's
        UTC day in the customer's slot (``Keys.trend_counts``), the profile hash."""
        day = to_epoch_ms(stored["purchased_at"]) // 86_400_000
        tag = slot_tag(self.outbox.shard_of(self.keys.orders(cid)))
        return [self.keys.trend_counts(tag, day), self.keys.profile(cid)]

    def _run_script(
        self,
        script: Any,
        calls: list[tuple[str, list[Any]]],
        extra: list[list[str]] | None = None,
    ) -> list[Any]:
        """``script`` once per ``(customer id, args)`` (keys: :meth:`_keys`, then that call's
        ``extra`` keys), the replies in order: one pipeline for all, or one call each on a
        Cluster (no pipelined scripts there) and for a single call (a scripted pipeline costs a
        SCRIPT EXISTS round trip on top). A Redis error in any reply is raised."""
        if not calls:
            return []
        more = extra or [[] for _ in calls]
        pipe = self.redis.pipeline(transaction=False)
        if isinstance(pipe, ClusterPipeline) or len(calls) == 1:
            return [
                script(keys=self._keys(cid) + ks, args=args)
                for (cid, args), ks in zip(calls, more, strict=True)
            ]
        for (cid, args), ks in zip(calls, more, strict=True):
            script(keys=self._keys(cid) + ks, args=args, client=pipe)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    @staticmethod
    def purchase_result(result: list[Any]) -> tuple[dict[str, Any], bool]:
        """Turn the record script's reply into ``(stored purchase, created?)`` or raise."""
        code, value = int(result[0]), result[1]
        if code == 2:
            stored = json.loads(value)
            raise OrderConflict(
                f"order {stored['order_id']} was recorded with other content",
                field="order_id",
                order_id=stored["order_id"],
            )
        if code == 3:
            raise InvalidInput("the customer's total spend would overflow", field="lines")
        if code == 4:
            raise TooManyOrders(
                f"the customer already holds {value} purchases, the most one customer may have "
                "(see Limits in docs/profiles.md)",
                field="order_id",
            )
        return json.loads(value), code == 1

    def _categories(self, purchases: list[dict[str, Any]]) -> Mapping[str, str]:
        """Product id -> category for the products of normalised purchases ({} without a map)."""
        if self.category_of is None or not purchases:
            return {}
        products = {ln["product_id"] for p in purchases for ln in p["lines"]}
        return self.category_of(sorted(products)) or {}

    @staticmethod
    def _purchase_args(stored: dict[str, Any], cats: Mapping[str, str]) -> list[Any]:
        """The record script's arguments for a normalised purchase (``cats``: its categories)."""
        args: list[Any] = [
            stored["order_id"],
            canonical_json(stored),
            stored["currency"],
            str(total_units(stored)),
            str(stored["item_count"]),
            str(to_epoch_ms(stored["purchased_at"])),
            stored["purchased_at"],
            str(MAX_ORDERS),
        ]
        items: dict[str, int] = {}  # category -> units bought
        for line in stored["lines"]:
            category = cats.get(line["product_id"])
            if category:
                items[category] = items.get(category, 0) + line["quantity"]
        args.append(str(len(items)))
        for category, count in items.items():
            args += [category, str(count)]
        return args

    def list_purchases(
        self, customer_id: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Purchases newest first (ties by order id, descending); ``(items, next cursor)``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"must be 1 to {MAX_PAGE}", field="limit")
        after = _decode_cursor(cursor) if cursor else None
        key = self.keys.order_times(customer_id)
        top = "+inf" if after is None else str(after[0])
        found: list[tuple[str, float]] = []
        offset = 0
        while len(found) <= limit:
            batch = cast(  # (member, score) pairs; the client decodes responses
                "list[tuple[str, float]]",
                self.redis.zrange(
                    key, top, "-inf", desc=True, byscore=True, offset=offset, num=limit + 1,
                    withscores=True,
                ),
            )  # fmt: skip
            if not batch:
                break
            offset += len(batch)
            for member, score in batch:
                if after and score == after[0] and member >= after[1]:
                    continue  # at or before the cursor within the same millisecond
                found.append((member, score))
        page = found[:limit]
        fields = [m for m, _ in page]
        bodies = self.redis.hmget(self.keys.orders(customer_id), fields) if page else []
        items = [json.loads(b) for b in bodies if b]
        more = len(found) > limit
        return items, (_encode_cursor(int(page[-1][1]), page[-1][0]) if more else None)

    def queue_latest_order_id(
        self, pipe: Any, customer_id: str
    ) -> Callable[[list[Any]], str | None]:
        """Queue the read of the newest purchase's order id (the first of
        :meth:`list_purchases`) on ``pipe``; returns the function that turns the reply into
        that id, or None without purchases. :meth:`get_purchase` then reads the purchase."""
        key = self.keys.order_times(customer_id)
        pipe.zrange(key, "+inf", "-inf", desc=True, byscore=True, offset=0, num=1)
        return lambda replies: replies[0][0] if replies[0] else None

    def get_purchase(self, customer_id: str, order_id: str) -> dict[str, Any] | None:
        """One stored purchase by the order id it is stored under, or None."""
        raw = self.redis.hget(self.keys.orders(customer_id), order_id)
        return json.loads(raw) if raw else None

    # -- events --------------------------------------------------------------------------------
    def record_events(self, customer_id: str, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Record a batch for one customer; per item ``accepted``, ``duplicate``, ``conflict``
        or ``invalid``.

        Items are raw events (``{message_id, type, at, ...payload}``; invalid ones raise
        :class:`InvalidInput` before anything is written) or the output of
        :func:`profiles.activity_input.normalise_event`. A ``purchase`` event records its
        purchase through :meth:`record_purchase` first; ``conflict`` means its order id holds
        another purchase, ``invalid`` that the purchase cannot be stored (the customer's total
        would overflow), ``full`` that the customer holds :data:`MAX_ORDERS` purchases; such
        events are not recorded."""
        return self.record_events_many({customer_id: events})[customer_id]

    def record_events_many(
        self, batches: Mapping[str, Iterable[Mapping[str, Any]]]
    ) -> dict[str, list[str]]:
        """:meth:`record_events` for many customers at once: ``{customer id: per-item results}``.

        A few round trips whatever the number of customers: the message ids of ``purchase``
        events (ZSCORE), their purchases (:meth:`record_purchases`), then every customer's
        events script, each step one pipeline (on a Cluster, where scripts cannot be pipelined,
        one script call per customer). Each customer's steps run in the same order as alone."""
        now = self.clock()
        items = {
            cid: [e if "at_ms" in e else normalise_event(e, now) for e in events]
            for cid, events in batches.items()
        }
        results: dict[str, list[str | None]] = {cid: [None] * len(e) for cid, e in items.items()}
        self._record_event_purchases(items, results)
        calls = []  # (customer id, indexes of its events to record, script args)
        for cid, events in items.items():
            todo = [i for i, r in enumerate(results[cid]) if r is None]
            if todo:
                calls.append((cid, todo, self._events_args(now, [events[i] for i in todo])))
        replies = self._run_script(self._events, [(cid, args) for cid, _, args in calls])
        for (cid, todo, _), flags in zip(calls, replies, strict=True):
            for i, flag in zip(todo, flags, strict=True):
                results[cid][i] = "accepted" if int(flag) else "duplicate"
        return {cid: [r or "duplicate" for r in rs] for cid, rs in results.items()}

    def _record_event_purchases(
        self, items: dict[str, list[Mapping[str, Any]]], results: dict[str, list[str | None]]
    ) -> None:
        """Store the purchases of ``purchase`` events whose message id is new: the result is
        set to ``conflict``/``invalid`` when it cannot be stored, else the event carries the
        stored purchase. A seen message id is left to the events script (a duplicate)."""
        purchases = [
            (cid, i) for cid, events in items.items()
            for i, e in enumerate(events) if e["type"] == "purchase"
        ]  # fmt: skip
        if not purchases:
            return
        pipe = self.redis.pipeline(transaction=False)
        for cid, i in purchases:
            pipe.zscore(self.keys.message_ids(cid), items[cid][i]["message_id"])
        new = [ref for ref, score in zip(purchases, pipe.execute(), strict=True) if score is None]
        stored = self.record_purchases([(c, items[c][i]["payload"]["purchase"]) for c, i in new])
        for (cid, i), outcome in zip(new, stored, strict=True):
            if isinstance(outcome, OrderConflict):
                results[cid][i] = "conflict"
            elif isinstance(outcome, TooManyOrders):
                results[cid][i] = "full"
            elif isinstance(outcome, InvalidInput):  # the spend counter would overflow
                results[cid][i] = "invalid"
            elif isinstance(outcome, RapportError):
                raise outcome
            else:
                items[cid][i] = {**items[cid][i], "payload": {"purchase": outcome[0]}}

    @staticmethod
    def _events_args(now: float, events: list[Mapping[str, Any]]) -> list[Any]:
        """The events script's arguments for one customer's (normalised) events."""
        args: list[Any] = [
            str(int(now * 1000)),
            str(int((now - MESSAGE_WINDOW_S) * 1000)),
            str(EVENTS_CAP),
            str(MESSAGE_IDS_CAP),
        ]
        for e in events:
            payload = e["payload"]
            contact_id = status = contact = ""
            if e["type"] == "support_contact":
                contact_id, status = payload["contact_id"], payload["status"]
                contact = canonical_json({**payload, "opened_at": e["at"]})
            args += [
                e["message_id"], e["type"], e["at"], str(e["at_ms"]), canonical_json(payload),
                contact_id, status, contact,
            ]  # fmt: skip
        return args

    def list_events(self, customer_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The latest events, newest first (by arrival)."""
        entries = cast(  # the client decodes responses (service.redis_connect builds it so)
            "list[tuple[str, dict[str, str]]]",
            self.redis.xrevrange(self.keys.events(customer_id), count=limit),
        )
        return [event_from(entry_id, fields) for entry_id, fields in entries]

    def open_support_contacts(self, customer_id: str) -> list[dict[str, Any]]:
        raw = self.redis.hvals(self.keys.support_contacts(customer_id))
        return sorted((json.loads(v) for v in raw), key=lambda c: c.get("opened_at", ""))

    # -- traits --------------------------------------------------------------------------------
    def traits(self, customer_id: str) -> dict[str, Any]:
        """The computed traits (listed in ``profiles/traits.py``)."""
        pipe = self.redis.pipeline(transaction=False)
        read = self.queue_traits(pipe, customer_id)
        return read(pipe.execute())

    def queue_traits(self, pipe: Any, customer_id: str) -> Callable[[list[Any]], dict[str, Any]]:
        """Queue the reads of :meth:`traits` on ``pipe`` (three commands in the customer's slot);
        returns the function that turns their replies into the traits."""
        queue_trait_reads(pipe, self.keys, customer_id)
        return lambda replies: traits_from(replies, self.clock())

    def recompute_traits(self, customer_id: str) -> None:
        """Rebuild the traits from the customer's own data (e.g. once the catalog knows more),
        a page of orders per Redis call (``profiles/activity_paged.py``)."""
        paged.recompute_traits(self, customer_id)

    # -- whole-customer operations (export, merge, unmerge) ------------------------------------
    def snapshot(self, customer_id: str) -> dict[str, Any]:
        """Everything held about one customer, JSON-able; ``absorb``/``remove`` take it back.
        Read in pages (not one atomic read; see ``profiles/activity_paged.py``)."""
        return paged.snapshot(self, customer_id)

    def absorb(self, target_id: str, snapshot: Mapping[str, Any]) -> None:
        """Add a snapshot's content to ``target_id`` (a merge); idempotent, in pages (a run that
        stopped half-way is finished by running it again).

        From another customer, what is added is recorded so :meth:`remove` can take out exactly
        that. A customer's own snapshot (``snapshot["customer_id"] == target_id``) restores it.
        The events stream is trimmed to :data:`EVENTS_CAP` (the oldest go)."""
        if snapshot:
            paged.absorb(self, target_id, snapshot, EVENTS_CAP)

    def remove(self, target_id: str, snapshot: Mapping[str, Any]) -> None:
        """Take out of ``target_id`` exactly what ``absorb(target_id, snapshot)`` added (an
        unmerge); with the customer's own snapshot, take out that content (a drain). Idempotent,
        in pages."""
        if snapshot:
            paged.remove(self, target_id, snapshot)

    def iter_all_purchases(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(customer id, purchase)`` over every customer (SCAN; for batch jobs)."""
        for key in self.redis.scan_iter(match=self.keys.all_orders_pattern(), count=1000):
            cid = self.keys.customer_of_orders_key(key)
            if cid is None:
                continue
            for body in self.redis.hvals(key):
                yield cid, json.loads(body)


# -- paging cursors of list_purchases ------------------------------------------------------------
def _encode_cursor(ms: int, field: str) -> str:
    raw = json.dumps([ms, field], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ms, field = json.loads(raw)
        if isinstance(ms, bool) or not isinstance(ms, int) or not isinstance(field, str):
            raise ValueError
        return ms, field
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("is not a cursor from a previous page", field="cursor") from None
