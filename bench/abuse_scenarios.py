"""The scenarios of issue 18 for ``bench/abuse.py``: slow and idle sockets, the biggest
history the caps allow, the template bomb, parse errors on every JSON route; and Redis'
SLOWLOG around each. Loopback only, bounded in time and count."""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from bench.abuse_hog import one_key_hog

ATTACKER = "127.0.0.2"  # the hostile sockets' address; the good clients use 127.0.0.1
SLOW_HEAD = b"GET /v1/profiles/c_nope HTTP/1.1\r\nHost: x\r\nX-Slow: "
SLOW_BODY = (
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 99999\r\n\r\n"
)


# -- Redis SLOWLOG -------------------------------------------------------------------------------
class SlowLog:
    """Redis' SLOWLOG over one scenario: commands over 10 ms are logged, the longest reported."""

    def __init__(self, client: redis.Redis):
        self.client = client
        client.config_set("slowlog-log-slower-than", 10_000)
        client.config_set("slowlog-max-len", 10_000)

    def reset(self) -> None:
        self.client.slowlog_reset()

    def summary(self) -> dict[str, Any]:
        entries = self.client.slowlog_get(10_000)
        if not entries:
            return {"max_ms": 0.0, "over_50ms": 0, "slowest": None}
        worst = max(entries, key=lambda e: e["duration"])
        command = worst["command"]
        command = command.decode(errors="replace") if isinstance(command, bytes) else command
        return {
            "max_ms": round(worst["duration"] / 1000, 1),
            "over_50ms": sum(e["duration"] > 50_000 for e in entries),
            "slowest": command[:60],
        }


# -- slow and idle sockets -----------------------------------------------------------------------
class SlowSockets:
    """``idle`` sockets that send nothing, ``heads`` that send a request head and ``bodies`` a
    body one byte every ``interval`` s, all from :data:`ATTACKER`; each one the server closes
    is opened again (after 0.2 s), as an attacker keeping up the pressure would."""

    def __init__(self, port: int, idle: int, heads: int, bodies: int, interval: float):
        self.port, self.interval = port, interval
        self.kinds = ["idle"] * idle + ["head"] * heads + ["body"] * bodies
        self.socks: list[socket.socket | None] = [None] * len(self.kinds)
        self.opened_at = [0.0] * len(self.kinds)
        self.closed: Counter = Counter()
        self.answers: Counter = Counter()
        self.lifetimes: dict[str, list[float]] = {"idle": [], "head": [], "body": []}
        self.refused = 0
        self.stop = threading.Event()

    def _open(self, i: int) -> None:
        try:
            sock = socket.create_connection(
                ("127.0.0.1", self.port), timeout=5, source_address=(ATTACKER, 0)
            )
        except OSError:
            self.refused += 1
            self.socks[i] = None
            return
        sock.setblocking(False)
        kind = self.kinds[i]
        if kind != "idle":
            sock.send(SLOW_HEAD if kind == "head" else SLOW_BODY)
        self.socks[i], self.opened_at[i] = sock, time.monotonic()

    def run(self, seconds: float) -> dict[str, Any]:
        for i in range(len(self.kinds)):
            self._open(i)
        sel = selectors.DefaultSelector()
        for i, sock in enumerate(self.socks):
            if sock is not None:
                sel.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + seconds
        next_byte = time.monotonic() + self.interval
        reopen: list[tuple[float, int]] = []
        while time.monotonic() < deadline and not self.stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                i = key.data
                sock = self.socks[i]
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                status = data[9:12].decode(errors="replace") if data else "closed"
                self.answers[status] += 1
                self.closed[self.kinds[i]] += 1
                self.lifetimes[self.kinds[i]].append(time.monotonic() - self.opened_at[i])
                sel.unregister(sock)
                sock.close()
                self.socks[i] = None
                reopen.append((time.monotonic() + 0.2, i))
            now = time.monotonic()
            for when, i in [r for r in reopen if r[0] <= now]:
                reopen.remove((when, i))
                self._open(i)
                if self.socks[i] is not None:
                    sel.register(self.socks[i], selectors.EVENT_READ, i)
            if now >= next_byte:
                next_byte += self.interval
                for i, sock in enumerate(self.socks):
                    if sock is not None and self.kinds[i] != "idle":
                        try:
                            sock.send(b"a")
                        except OSError:
                            pass
        for sock in self.socks:
            if sock is not None:
                sock.close()
        return {
            "sockets": Counter(self.kinds),
            "closed_by_server": dict(self.closed),
            "answers": dict(self.answers),
            "refused_connects": self.refused,
            "median_lifetime_s": {
                k: round(statistics.median(v), 1) for k, v in self.lifetimes.items() if v
            },
        }


# -- the biggest history -------------------------------------------------------------------------
def _post(conn: http.client.HTTPConnection, path: str, body: Any, token: str) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request(
        "POST",
        path,
        body=data,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    resp = conn.getresponse()
    raw = resp.read()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, None


def _get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[int, int, float]:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    size = len(resp.read())
    return resp.status, size, time.perf_counter() - started


def biggest_history(port: int, token: str, orders: int, lines: int, deadline_s: float) -> dict:
    """Two customers with ``orders`` purchases of ``lines`` lines each, one writer on one
    connection as fast as it goes; then the merge (resumed until done) and recommendations,
    greeting and export of the merged customer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out: dict[str, Any] = {"orders": orders, "lines": lines, "statuses": Counter()}
    cids = [_post(conn, "/v1/profiles", {"first_name": f"Big{i}"}, token)[1]["id"] for i in (0, 1)]
    line = [{"product_id": f"P{j}", "quantity": 1, "unit_price": "1.25"} for j in range(lines)]
    started = time.monotonic()
    slowest = 0.0
    for n in range(orders):
        if time.monotonic() - started > deadline_s:
            out["stopped_at_order"] = n
            break
        for cid in cids:
            when = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z"
            body = {"order_id": f"o{n}", "lines": line, "currency": "EUR", "purchased_at": when,
                    "channel": "web"}  # fmt: skip
            t = time.perf_counter()
            status, answer = _post(conn, f"/v1/profiles/{cid}/purchases", body, token)
            slowest = max(slowest, time.perf_counter() - t)
            out["statuses"][status] += 1
            if status >= 400 and "first_refusal" not in out:
                out["first_refusal"] = answer
    out["build_s"] = round(time.monotonic() - started, 1)
    out["slowest_write_s"] = round(slowest, 3)
    t = time.perf_counter()
    tries = 0
    while True:
        tries += 1
        status, body = _post(conn, f"/v1/profiles/{cids[0]}/merge", {"source_id": cids[1]}, token)
        if status != 503 or tries >= 20:
            break
    out["merge"] = {"status": status, "tries": tries, "s": round(time.perf_counter() - t, 2)}
    for name, path in (
        ("recommendations", f"/v1/profiles/{cids[0]}/recommendations"),
        ("greeting", f"/v1/profiles/{cids[0]}/greeting"),
        ("next_best_actions", f"/v1/profiles/{cids[0]}/next-best-actions"),
        ("export", f"/v1/profiles/{cids[0]}/export"),
    ):
        status, size, took = _get(conn, path, token)
        out[name] = {"status": status, "bytes": size, "s": round(took, 3)}
    out["statuses"] = dict(out["statuses"])
    conn.close()
    return out


# -- the template bomb ---------------------------------------------------------------------------
BOMBS = (
    "{{ '%999999999s' % name }}",
    "{% if name == 'boom' %}{{ '%300000000s' % name }}{% endif %}Hello {{ name }}",
    "{{ name * 100000000 }}",
    "{{ '{:>999999999}'.format(name) }}",
)


def template_bomb(port: int, token: str, redis_url: str, prefix_key: str, seconds: float) -> dict:
    """Each bomb PUT through the API (must be refused quickly), the branch bomb then stored
    behind validation's back, and greetings for a customer named "boom" asked for
    ``seconds`` as fast as one connection goes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    saves = []
    for source in BOMBS:
        conn.request(
            "PUT",
            "/v1/greeting-templates/en/chat",
            body=json.dumps({"source": source}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        t = time.perf_counter()
        resp = conn.getresponse()
        resp.read()
        saves.append({"status": resp.status, "s": round(time.perf_counter() - t, 3)})
    client = redis.Redis.from_url(redis_url)
    client.hset(prefix_key, "en:chat", json.dumps({"source": BOMBS[1]}))
    cid = _post(conn, "/v1/profiles", {"first_name": "boom", "locale": "en-GB"}, token)[1]["id"]
    times, statuses = [], Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _, took = _get(conn, f"/v1/profiles/{cid}/greeting?channel=chat", token)
        statuses[status] += 1
        times.append(took)
    client.hdel(prefix_key, "en:chat")
    conn.close()
    times.sort()
    return {
        "saves": saves,
        "greetings": dict(statuses),
        "greeting_p50_ms": round(times[len(times) // 2] * 1000, 1),
        "greeting_max_ms": round(times[-1] * 1000, 1),
    }


# -- parse errors on every JSON route ------------------------------------------------------------
HUGE_INT = b"1" * 5000
TIME_FIELDS = ("at", "from", "to", "since", "until")
YEAR_10000 = "10000-01-01T00:00:00Z"


def _json_operations(spec: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            content = (op.get("requestBody") or {}).get("content", {})
            if "application/json" in content:
                out.append((method.upper(), path, content["application/json"].get("schema", {})))
    return out


def _properties(spec: dict, schema: dict) -> dict:
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema.get("properties", {})


def parse_errors(port: int, token: str, fill: Callable[[str], str]) -> dict:
    """A 5,000-digit integer in the body of every JSON operation of the spec (under each of
    its top-level fields, and under an unknown one), and year-10000 times in every time-like
    field and in event items (ISO, 253402300800, 1e20); counts the answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/openapi.json")
    spec = json.loads(conn.getresponse().read())
    statuses: Counter = Counter()
    sent = slowest = 0.0
    bad: list[str] = []

    def send(method: str, path: str, body: bytes) -> None:
        nonlocal sent, slowest
        conn.request(
            method,
            fill(path),
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        t = time.perf_counter()
        resp = conn.getresponse()
        resp.read()
        slowest = max(slowest, time.perf_counter() - t)
        sent += 1
        statuses[resp.status] += 1
        if resp.status >= 500:
            bad.append(f"{method} {path} -> {resp.status}")

    operations = _json_operations(spec)
    for method, path, schema in operations:
        names = list(_properties(spec, schema)) or ["x"]
        for name in [*names, "unknown_field"]:
            send(method, path, b'{"' + name.encode() + b'": ' + HUGE_INT + b"}")
        for name in names:
            if name in TIME_FIELDS or name.endswith("_at"):
                send(method, path, json.dumps({name: YEAR_10000}).encode())
    for at in (253402300800, 1e20, YEAR_10000):
        item = {"type": "view", "customer_id": fill("{customer_id}"), "at": at,
                "message_id": f"m-{at}", "payload": {"product_id": "P1"}}  # fmt: skip
        send("POST", "/v1/events", json.dumps({"events": [item]}).encode())
    conn.close()
    return {
        "json_operations": len(operations),
        "requests": int(sent),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": bad,
        "slowest_ms": round(slowest * 1000, 1),
    }


# -- running them -------------------------------------------------------------------------------
def during(good_load, port, tokens, ids, rate, work) -> tuple[dict, object]:
    """The good load (``tokens``' clients at ``rate``) while ``work()`` runs; both results."""
    stop = threading.Event()
    box: dict = {}
    load = threading.Thread(
        target=lambda: box.update(good=good_load(port, tokens, ids, rate, 3600, stop))
    )
    load.start()
    time.sleep(0.5)
    try:
        outcome = work()
    finally:
        stop.set()
        load.join()
    return box["good"], outcome


def issue18_scenarios(port: int, ctx: dict, args, good_load: Callable) -> dict:
    """Each scenario of issue 18 after its own quiet baseline, with Redis' SLOWLOG around it."""
    slowlog = SlowLog(ctx["redis"])
    admin, tokens, ids = ctx["admin"], ctx["good_tokens"], ctx["ids"]
    work = {
        "slow": lambda: SlowSockets(
            port, args.idle, args.slow_heads, args.slow_bodies, args.interval
        ).run(args.slow_seconds),
        "history": lambda: biggest_history(
            port, admin, args.history_orders, args.history_lines, args.history_deadline
        ),
        "bomb": lambda: template_bomb(
            port, admin, ctx["redis_url"], ctx["templates_key"], args.bomb_seconds
        ),
        "parse": lambda: parse_errors(port, admin, ctx["fill"]),
        "hog": lambda: one_key_hog(
            port, ctx["hog"], ids, args.hog_connections, args.hog_seconds, args.flood_nice
        ),
    }
    out = {}
    for name in [n for n in args.scenarios if n in work]:
        baseline = good_load(port, tokens, ids, args.rate, args.seconds)
        slowlog.reset()
        good, outcome = during(good_load, port, tokens, ids, args.rate, work[name])
        out[name] = {
            "baseline": baseline,
            "good": good,
            "p99_ratio": round(good["p99_ms"] / baseline["p99_ms"], 2),
            "outcome": outcome,
            "slowlog": slowlog.summary(),
        }
        print(f"{name}: {json.dumps(out[name], default=str)}", flush=True)
    return out


def issue18_markdown(result: dict) -> str:
    lines = [
        "| scenario | good p99 quiet → during (ratio) | good requests, non-200 | Redis SLOWLOG max "
        "(> 50 ms) | what the scenario got |",
        "|---|---|---|---|---|",
    ]
    for name, row in result.items():
        b, g, log = row["baseline"], row["good"], row["slowlog"]
        lines.append(
            f"| {name} | {b['p99_ms']} → {g['p99_ms']} ms ({row['p99_ratio']}) "
            f"| {g['requests']:,}, {g['non_200'] or 'none'} | {log['max_ms']} ms "
            f"({log['over_50ms']}) | `{json.dumps(row['outcome'], default=str)[:400]}` |"
        )
    return "\n".join(lines)
