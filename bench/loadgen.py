"""Drive HTTP load at a fixed concurrency: wrk (Debian package ``wrk``), or a small Python
fallback when wrk cannot be installed.

Both take the same :class:`Target` (method, path and body templates with ``{id}`` for a rotating
customer id and ``{n}`` for a unique number) and return the same :class:`Result`. wrk runs with
one thread (it drives 64 connections easily from one core, which leaves the other core to the
server on a 2-core machine) and ``bench/wrk/rotate.lua``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk" / "rotate.lua"


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str  # template: {id} (each occurrence the next customer id), {n}, {k}
    body: str = ""  # template: the same placeholders
    auth: bool = True


@dataclass
class Result:
    name: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers + socket errors + timeouts
    tool: str

    def as_dict(self) -> dict:
        return asdict(self)


def ensure_wrk() -> str | None:
    """Path of wrk; install the Debian package when missing (we run as root). None if impossible."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        return shutil.which("wrk")
    return None


def run_wrk(
    wrk: str,
    base_url: str,
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    token: str,
    ids_file: Path,
) -> Result:
    env = {
        **os.environ,
        "BENCH_METHOD": target.method,
        "BENCH_PATH": target.path,
        "BENCH_BODY": target.body,
        "BENCH_TOKEN": token if target.auth else "",
        "BENCH_IDS": str(ids_file),
        "BENCH_NONCE": uuid.uuid4().hex[:10],
    }
    cmd = [
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        base_url,
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(
            f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}"
        )
    data = json.loads(line.removeprefix("BENCH_JSON "))
    secs = data["duration_us"] / 1e6
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        name=target.name,
        concurrency=concurrency,
        requests=data["requests"],
        seconds=round(secs, 3),
        rps=round(data["requests"] / secs, 1) if secs else 0.0,
        p50_ms=round(data["p50_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        errors=errors,
        tool="wrk",
    )


def fill(template: str, ids: list[str], counter: int, n: str) -> tuple[str, int]:
    """As bench/wrk/rotate.lua: each {id} takes the next id, {n} the request number, {k} the
    occurrence index. Returns the text and the advanced counter."""
    parts = template.split("{id}")
    out = [parts[0]]
    for part in parts[1:]:
        counter += 1
        out += [ids[counter % len(ids)], part]
    text = "".join(out).replace("{n}", n)
    k = 0
    while "{k}" in text:
        k += 1
        text = text.replace("{k}", str(k), 1)
    return text, counter


def run_python(
    base_url: str,
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    token: str,
    ids_file: Path,
) -> Result:
    """The fallback: one thread per connection, keep-alive, http.client. It is GIL-bound, so it
    under-drives a fast server; the table says which tool measured each row."""
    host_port = base_url.split("://", 1)[1].rstrip("/")
    host, _, port = host_port.partition(":")
    ids = [ln for ln in ids_file.read_text().splitlines() if ln] or ["none"]
    nonce = uuid.uuid4().hex[:10]
    headers = {"Authorization": f"Bearer {token}"} if target.auth and token else {}
    if target.body:
        headers["Content-Type"] = "application/json"
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop_at = time.perf_counter() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection(host, int(port or 80), timeout=5)
        counter = index * (len(ids) // 7 + 1)
        made = 0
        while time.perf_counter() < stop_at:
            made += 1
            n = f"{nonce}-{index}-{made}"
            path, counter = fill(target.path, ids, counter, n)
            body = None
            if target.body:
                body, counter = fill(target.body, ids, counter, n)
            started = time.perf_counter()
            try:
                conn.request(target.method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    errors[index] += 1
            except (OSError, http.client.HTTPException):
                errors[index] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port or 80), timeout=5)
            latencies[index].append(time.perf_counter() - started)
        conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    all_lat = sorted(x for lst in latencies for x in lst)
    count = len(all_lat)

    def pct(p: float) -> float:
        return round(all_lat[min(count - 1, int(p * count))] * 1000, 2) if count else 0.0

    return Result(
        name=target.name,
        concurrency=concurrency,
        requests=count,
        seconds=round(elapsed, 3),
        rps=round(count / elapsed, 1) if elapsed else 0.0,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        errors=sum(errors),
        tool="python",
    )


def run(
    wrk: str | None,
    base_url: str,
    target: Target,
    *,
    concurrency: int,
    seconds: float,
    token: str,
    ids_file: Path,
) -> Result:
    if wrk:
        return run_wrk(
            wrk,
            base_url,
            target,
            concurrency=concurrency,
            seconds=seconds,
            token=token,
            ids_file=ids_file,
        )
    return run_python(
        base_url, target, concurrency=concurrency, seconds=seconds, token=token, ids_file=ids_file
    )
