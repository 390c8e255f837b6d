"""Crash and fault scenarios against real processes: ``rapport serve`` under gunicorn and a
private ``redis-server`` with ``appendonly yes`` / ``appendfsync always``.

Each scenario runs a load, injects one fault, and returns a dict of figures (requests tried,
failures, writes acknowledged, writes lost, latencies, recovery seconds). The suite
(``tests/faults/test_faults.py``) runs short variants and asserts on the figures;
``bench/faults.py`` runs longer ones and prints them for ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from profiles.keys import Keys
from service.auth import ApiKeyStore
from service.redis_server import RedisServer
from tests.conftest import LiveServer, start_live_server, stop_live_server

KEYS = Keys("rp")
REDIS_TIMEOUT = 1.0  # RAPPORT_REDIS_TIMEOUT of the served app, seconds
RETRY_AFTER = 2


# -- the rig: Redis + gunicorn --------------------------------------------------------------------
@dataclass
class Rig:
    redis: RedisServer
    server: LiveServer
    token: str
    base: Path
    customers: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return self.server.url(path)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True, socket_timeout=5)


def production_redis(directory: Path, port: int | None = None) -> RedisServer:
    """The documented production persistence: AOF with an fsync per write."""
    return RedisServer(
        directory,
        port=port,
        persistent=True,
        extra_args=("--appendfsync", "always"),
    )


@contextlib.contextmanager
def rig(base: Path, *, workers: int = 2, customers: int = 8, env=None) -> Iterator[Rig]:
    server_redis = production_redis(base / "redis").start()
    live = None
    try:
        client = redis.Redis.from_url(server_redis.url, decode_responses=True)
        _, token = ApiKeyStore(client, KEYS).create("faults", ["admin"])
        client.close()
        live = start_live_server(
            server_redis.url,
            base / "live",
            workers=workers,
            env={
                "RAPPORT_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
                "RAPPORT_RETRY_AFTER": str(RETRY_AFTER),
                "RAPPORT_RATE_LIMIT": "off",
                # the rig's client threads share one key: no per-key bound on their concurrency
                "RAPPORT_KEY_CONCURRENCY": "0",
                "RAPPORT_MODEL_POLL_SECONDS": "0.2",
                "RAPPORT_LOG_LEVEL": "WARNING",
                **(env or {}),
            },
        )
        r = Rig(server_redis, live, token, base)
        for i in range(customers):
            resp = requests.post(
                r.url("/v1/profiles"), json={"first_name": f"Crash{i}"}, headers=r.auth, timeout=10
            )
            assert resp.status_code == 201, resp.text
            r.customers.append(resp.json()["id"])
        yield r
    finally:
        if live is not None:
            stop_live_server(live)
        server_redis.stop()


# -- load ------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: str  # "purchase", "events", "recommend"
    ident: str  # order id / message id / ""
    customer: str
    status: int  # 0: no HTTP answer (connection error)
    seconds: float
    started: float  # monotonic
    retry_after: str | None = None
    body: dict | None = None
    error: str | None = None


class Load:
    """``threads`` clients calling ``work(thread, n, session) -> Outcome`` until stopped."""

    def __init__(self, threads: int, work: Callable[[int, int, requests.Session], Outcome]):
        self.work = work
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, i: int) -> None:
        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            out = self.work(i, n, session)
            with self._lock:
                self.outcomes.append(out)
            n += 1
        session.close()  # no idle keep-alive connection delays the server's shutdown

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def call(session, kind, ident, customer, method, url, **kw) -> Outcome:
    started = time.monotonic()
    try:
        resp = session.request(method, url, timeout=30, **kw)
    except requests.RequestException as exc:
        return Outcome(
            kind, ident, customer, 0, time.monotonic() - started, started, error=type(exc).__name__
        )
    try:
        body = resp.json()
    except ValueError:
        body = None
    return Outcome(
        kind,
        ident,
        customer,
        resp.status_code,
        time.monotonic() - started,
        started,
        resp.headers.get("Retry-After"),
        body,
    )


def purchase_body(order_id: str, n: int) -> dict:
    return {
        "order_id": order_id,
        "currency": "EUR",
        "purchased_at": "2026-11-01T10:00:00+00:00",
        "channel": "web",
        "lines": [{"product_id": f"P{n % 7}", "quantity": 1 + n % 3, "unit_price": "2.50"}],
    }


def event_body(message_id: str, customer: str) -> dict:
    return {
        "events": [
            {
                "message_id": message_id,
                "type": "view",
                "at": "2026-11-01T10:00:00+00:00",
                "customer": {"profile_id": customer},
                "product_id": "P1",
            }
        ]
    }


def write_work(r: Rig, tag: str) -> Callable[[int, int, requests.Session], Outcome]:
    """Alternate purchases and single-event batches over the rig's customers."""

    def work(i: int, n: int, session: requests.Session) -> Outcome:
        customer = r.customers[(i + n) % len(r.customers)]
        ident = f"{tag}-{i}-{n}"
        if n % 2 == 0:
            return call(
                session,
                "purchase",
                ident,
                customer,
                "POST",
                r.url(f"/v1/profiles/{customer}/purchases"),
                json=purchase_body(ident, n),
                headers=r.auth,
            )
        return call(
            session,
            "events",
            ident,
            customer,
            "POST",
            r.url("/v1/events"),
            json=event_body(ident, customer),
            headers=r.auth,
        )

    return work


def acknowledged(o: Outcome) -> bool:
    if o.kind == "purchase":
        return o.status in (200, 201)
    if o.kind == "events":
        return o.status == 200 and o.body["results"][0]["status"] in ("accepted", "duplicate")
    return o.status == 200


def retry_write(r: Rig, o: Outcome, session: requests.Session) -> Outcome:
    n = int(o.ident.rsplit("-", 1)[1])
    if o.kind == "purchase":
        return call(
            session,
            "purchase",
            o.ident,
            o.customer,
            "POST",
            r.url(f"/v1/profiles/{o.customer}/purchases"),
            json=purchase_body(o.ident, n),
            headers=r.auth,
        )
    return call(
        session,
        "events",
        o.ident,
        o.customer,
        "POST",
        r.url("/v1/events"),
        json=event_body(o.ident, o.customer),
        headers=r.auth,
    )


def stored_counts(r: Rig) -> dict[str, object]:
    """What Redis holds: order ids and message ids per customer, stream entries per message id,
    and whether each customer's order_count trait equals its number of orders."""
    client = r.client()
    try:
        orders: set[str] = set()
        messages: dict[str, int] = {}
        counts_agree = True
        for cid in r.customers:
            ids = client.hkeys(KEYS.orders(cid))
            orders |= set(ids)
            count = int(client.hget(KEYS.traits(cid), "order_count") or 0)
            counts_agree &= count == len(ids)
            for _, entry in client.xrange(KEYS.events(cid)):
                messages[entry["message_id"]] = messages.get(entry["message_id"], 0) + 1
        return {"orders": orders, "messages": messages, "counts_agree": counts_agree}
    finally:
        client.close()


def wait_ready(r: Rig, timeout: float = 30.0) -> float:
    """Seconds until a write answers 2xx again."""
    started = time.monotonic()
    session = requests.Session()
    cid = r.customers[0]
    n = 0
    while time.monotonic() - started < timeout:
        n += 1
        resp = session.post(
            r.url(f"/v1/profiles/{cid}/purchases"),
            json=purchase_body(f"probe-{n}-{time.time_ns()}", n),
            headers=r.auth,
            timeout=10,
        )
        if resp.status_code in (200, 201):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("the service did not recover")


# -- scenario 1: kill -9 Redis under writes ----------------------------------------------
def redis_crash(
    r: Rig, *, threads: int = 4, before: float = 1.5, down: float = 1.0, after: float = 1.5
) -> dict:
    """Writers run; Redis is SIGKILLed, stays down ``down`` s, restarts on its port and data
    directory (AOF replay); writers keep going. Then every acknowledged write must be stored,
    and every failed one is retried with its id (exactly once in the store)."""
    with Load(threads, write_work(r, "crash")) as load:
        time.sleep(before)
        killed_at = time.monotonic()
        r.redis.kill()
        time.sleep(down)
        restarting_at = time.monotonic()  # Redis may answer before start() returns
        r.redis.start()
        time.sleep(after)
    outcomes = load.outcomes
    acked = [o for o in outcomes if acknowledged(o)]
    failed = [o for o in outcomes if not acknowledged(o)]
    stored = stored_counts(r)
    lost = [o.ident for o in acked if not _stored(o, stored)]
    # retry every failed write with the same id: each must now succeed
    session = requests.Session()
    retries = [retry_write(r, o, session) for o in failed]
    after_retry = stored_counts(r)
    all_ids = {o.ident for o in outcomes}
    missing_after_retry = [i for i in all_ids if not _stored_id(i, outcomes, after_retry)]
    dup_messages = [m for m, c in after_retry["messages"].items() if c != 1 and m in all_ids]
    recovered = [o for o in outcomes if o.started >= restarting_at and acknowledged(o)]
    first_ok = min((o.started + o.seconds for o in recovered), default=None)
    during = [o for o in outcomes if killed_at <= o.started < restarting_at]
    return {
        "requests": len(outcomes),
        "acknowledged": len(acked),
        "acknowledged_purchases": sum(o.kind == "purchase" for o in acked),
        "acknowledged_events": sum(o.kind == "events" for o in acked),
        "failed": len(failed),
        "failed_statuses": sorted({o.status for o in failed}),
        "failed_without_retry_after": sum(o.retry_after is None for o in failed),
        "lost": len(lost),
        "lost_ids": lost[:5],
        "retried": len(retries),
        "retries_ok": sum(acknowledged(o) for o in retries),
        "retry_statuses": sorted({o.status for o in retries}),
        "missing_after_retry": len(missing_after_retry),
        "duplicate_events_after_retry": len(dup_messages),
        "order_counts_agree": after_retry["counts_agree"],
        "max_latency_s": round(max(o.seconds for o in outcomes), 3),
        "max_latency_while_down_s": round(max((o.seconds for o in during), default=0.0), 3),
        "recovery_s": round(first_ok - restarting_at, 3) if first_ok else None,
    }


def _stored(o: Outcome, stored: dict) -> bool:
    if o.kind == "purchase":
        return o.ident in stored["orders"]
    return stored["messages"].get(o.ident, 0) >= 1


def _stored_id(ident: str, outcomes: list[Outcome], stored: dict) -> bool:
    kind = next(o.kind for o in outcomes if o.ident == ident)
    return _stored(Outcome(kind, ident, "", 0, 0, 0), stored)


def mixed_work(r: Rig, tag: str) -> Callable[[int, int, requests.Session], Outcome]:
    """Even client threads write (purchases and events), odd ones read recommendations."""
    writes = write_work(r, tag)

    def work(i: int, n: int, session: requests.Session) -> Outcome:
        if i % 2 == 0:
            return writes(i, n, session)
        cid = r.customers[n % len(r.customers)]
        url = r.url(f"/v1/profiles/{cid}/recommendations?limit=5")
        return call(session, "recommend", "", cid, "GET", url, headers=r.auth)

    return work


# -- scenario 2: Redis down for a while under reads and writes -------------------------------------
def redis_outage(
    r: Rig, *, threads: int = 4, before: float = 1.0, down: float = 5.0, after: float = 2.0
) -> dict:
    """Redis stopped (SIGKILL) for ``down`` s while writers and recommendation readers run."""
    work = mixed_work(r, "outage")

    with Load(threads, work) as load:
        time.sleep(before)
        killed_at = time.monotonic()
        r.redis.kill()
        time.sleep(down)
        restarting_at = time.monotonic()  # Redis may answer before start() returns
        r.redis.start()
        restarted_at = time.monotonic()
        time.sleep(after)
    outcomes = load.outcomes
    during = [
        o
        for o in outcomes
        if killed_at + 0.05 <= o.started and o.started + o.seconds < restarting_at
    ]
    w_during = [o for o in during if o.kind != "recommend"]
    r_during = [o for o in during if o.kind == "recommend"]
    after_ok = [o for o in outcomes if o.started >= restarting_at and o.kind != "recommend"]
    first_ok = min((o.started + o.seconds for o in after_ok if acknowledged(o)), default=None)
    tail = [o for o in outcomes if o.started >= restarted_at + 1.0]
    return {
        "requests": len(outcomes),
        "writes_while_down": len(w_during),
        "writes_while_down_503": sum(o.status == 503 for o in w_during),
        "writes_while_down_with_retry_after": sum(o.retry_after is not None for o in w_during),
        "writes_while_down_other": sorted({o.status for o in w_during if o.status != 503}),
        "max_write_latency_while_down_s": round(max((o.seconds for o in w_during), default=0), 3),
        "max_latency_while_down_s": round(max((o.seconds for o in during), default=0), 3),
        "reads_while_down": len(r_during),
        "reads_while_down_200": sum(o.status == 200 for o in r_during),
        "reads_while_down_popularity": sum(
            o.status == 200 and o.body.get("basis") == "popularity" for o in r_during
        ),
        "errors_5xx_other_than_503": sum(o.status >= 500 and o.status != 503 for o in outcomes),
        "recovery_s": round(first_ok - restarting_at, 3) if first_ok else None,
        "failures_1s_after_restart": sum(not acknowledged(o) for o in tail),
        "requests_1s_after_restart": len(tail),
    }


# -- scenario 3: kill -9 a gunicorn worker ---------------------------------------------------------
def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def workers_of(r: Rig) -> list[int]:
    masters = children(r.server.proc.pid)  # rapport serve -> gunicorn master -> workers
    return sorted(w for m in masters for w in children(m))


def worker_kill(
    r: Rig, *, threads: int = 4, before: float = 1.0, after: float = 3.0, kills: int = 1
) -> dict:
    """SIGKILL a worker (``kills`` times, ``after`` s apart) under mixed reads and writes."""
    work = mixed_work(r, "wkill")

    before_pids = workers_of(r)
    killed: list[int] = []
    kill_times: list[float] = []
    replaced_s: list[float] = []
    with Load(threads, work) as load:
        time.sleep(before)
        for _ in range(kills):
            pids = workers_of(r)
            victim = pids[0]
            os.kill(victim, signal.SIGKILL)
            at = time.monotonic()
            kill_times.append(at)
            killed.append(victim)
            while time.monotonic() - at < 30:
                now = workers_of(r)
                if len(now) == len(before_pids) and victim not in now:
                    replaced_s.append(time.monotonic() - at)
                    break
                time.sleep(0.05)
            time.sleep(after)
    outcomes = load.outcomes
    failed = [o for o in outcomes if o.status == 0 or o.status >= 500]
    settled = [o for o in outcomes if kill_times and o.started >= kill_times[-1] + 1.0]
    # in flight: sent before a kill, answered (or failed) after it
    in_flight = [
        o for o in failed if any(o.started < k <= o.started + o.seconds for k in kill_times)
    ]
    return {
        "requests": len(outcomes),
        "workers": len(before_pids),
        "kills": len(killed),
        "failed": len(failed),
        "failed_in_flight_at_kill": len(in_flight),
        "max_latency_s": round(max(o.seconds for o in outcomes), 3),
        "failed_kinds": sorted({f"{o.kind}:{o.status}:{o.error}" for o in failed}),
        "max_in_flight": threads * len(killed),
        "replaced_in_s": [round(s, 3) for s in replaced_s],
        "workers_after": len(workers_of(r)),
        "requests_1s_after_last_kill": len(settled),
        "statuses_1s_after_last_kill": sorted({o.status for o in settled}),
    }


# -- scenario 4: corrupt model artifacts ----------------------------------------------------------
def model_faults(r: Rig, *, threads: int = 3, settle: float = 0.6) -> dict:
    """Serve a good model v1, then point the active version at each corrupt artifact in turn
    (a direct SET of the active key, as a bad artifact reaching the shared volume would);
    every response must still come from v1, without a 5xx."""
    from recommend.catalog.products import Catalog
    from recommend.model.job import save_result
    from recommend.model.registry import ModelRegistry
    from tests.faults.corrupt import CORRUPTIONS, make_corrupt
    from tests.recsys import products, trained

    client = r.client()
    Catalog(client, KEYS).upsert_many(list(products().values()))
    registry = ModelRegistry(client, KEYS, r.base / "live" / "models")
    good = trained()
    registry.register(save_result(good, registry.model_dir, "v1"))
    registry.activate("v1")
    session = requests.Session()
    deadline = time.monotonic() + 30
    streak = 0
    while streak < 10 and time.monotonic() < deadline:
        resp = session.get(r.url("/v1/recommendations/popular?limit=3"), headers=r.auth, timeout=10)
        streak = streak + 1 if resp.json().get("model_version") == "v1" else 0
        time.sleep(0.05)
    assert streak >= 10, "the good model did not load"

    def work(i: int, n: int, session: requests.Session) -> Outcome:
        cid = r.customers[n % len(r.customers)]
        path = (
            f"/v1/profiles/{cid}/recommendations?limit=5"
            if i % 2 == 0
            else "/v1/recommendations/popular?limit=5"
        )
        return call(session, "recommend", "", cid, "GET", r.url(path), headers=r.auth)

    refused: dict[str, bool] = {}
    with Load(threads, work) as load:
        for n, name in enumerate(CORRUPTIONS):
            version = f"bad{n:02d}"
            make_corrupt(name, registry, good, version)
            log_mark = len(r.server.logs())
            client.set(KEYS.model_active(), version)
            wait = time.monotonic() + 10
            while time.monotonic() < wait:
                logs = r.server.logs()[log_mark:]
                if logs.count(f"model {version} refused") >= 2:  # both workers tried it
                    break
                time.sleep(0.05)
            refused[name] = f"model {version} refused" in r.server.logs()
            time.sleep(settle)
        client.set(KEYS.model_active(), "v1")
    client.close()
    outcomes = load.outcomes
    versions = [o.body.get("model_version") for o in outcomes if o.status == 200]
    return {
        "corrupt_artifacts": len(CORRUPTIONS),
        "refused": sum(refused.values()),
        "not_refused": [k for k, v in refused.items() if not v],
        "requests": len(outcomes),
        "errors_5xx": sum(o.status >= 500 for o in outcomes),
        "non_200": sum(o.status != 200 for o in outcomes),
        "served_by_v1": versions.count("v1"),
        "served_by_other": len(versions) - versions.count("v1"),
    }


def as_json(figures: dict) -> str:
    return json.dumps(figures, sort_keys=True)
