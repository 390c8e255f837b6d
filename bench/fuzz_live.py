#!/usr/bin/env python3
"""Contract fuzzing against the real server: schemathesis over HTTP against ``rapport serve``
(gunicorn), longer than the suite's run (tests/fuzz/test_schemathesis.py).

    .venv/bin/python bench/fuzz_live.py                     # 100 examples per operation and mode
    .venv/bin/python bench/fuzz_live.py --examples 20 --workers 2

It starts its own redis-server and server (rate limits off: the fuzzer is one key sending as
fast as it can), creates an admin key, then for every operation of the served OpenAPI document
generates positive and negative cases (derandomised: the same run every time) and applies every
check, ``positive_data_acceptance`` included; the positive cases meet the rules JSON Schema
cannot state (tests/fuzz/domain_rules.py, as in the suite's test). It prints a summary
(operations, requests, failures) and writes ``bench/results/fuzz-live-<time>.json``; the exit
status is 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from profiles.keys import Keys  # noqa: E402
from service.auth import ApiKeyStore  # noqa: E402
from service.redis_server import RedisServer  # noqa: E402
from tests.conftest import start_live_server, stop_live_server  # noqa: E402
from tests.fuzz.domain_rules import satisfy  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def fuzz_operation(schema, label, mode, examples, token, session, counter) -> str | None:
    operation = schema.find_operation_by_label(label)
    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(satisfy)

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        counter[0] += 1
        case.call_and_validate(session=session, headers={"Authorization": f"Bearer {token}"})

    try:
        run()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return "".join(traceback.format_exception(exc))[-6000:]
    return None


_CURL_URL = re.compile(r"curl -X \w+ .*?'?(http://[^' ]+)'?\s*$", re.MULTILINE)


def is_artifact(error: str, declared_query: set[str]) -> bool:
    """A "schema-violating request accepted" whose request, as sent, was valid: schemathesis
    negated a query parameter into a value the HTTP client drops (so nothing undeclared
    reached the server) or negated the Authorization header this run always sends."""
    if "ST201" not in error or "5xx" in error.split("Expected:")[0]:
        return False
    urls = _CURL_URL.findall(error)
    if not urls:
        return False
    sent = {name for url in urls for name in parse_qs(urlsplit(url).query, True)}
    return sent <= declared_query


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100, help="per operation and mode")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="rapport-fuzz-"))
    server_redis = RedisServer(tmp / "redis")
    server_redis.start()
    live = None
    try:
        client = redis.Redis.from_url(server_redis.url, decode_responses=True)
        _, token = ApiKeyStore(client, Keys()).create("fuzz", ["admin"])
        live = start_live_server(
            server_redis.url,
            tmp / "live",
            workers=args.workers,
            env={
                "RAPPORT_RATE_LIMIT": "off",
                "RAPPORT_LOG_LEVEL": "WARNING",
                "RAPPORT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # domain_rules' webhook target
            },
        )
        schema = schemathesis.openapi.from_url(live.url("/openapi.json"))
        schema.config.update(base_url=live.base_url)
        # Over HTTP a negative case can outgrow gunicorn's limits (a request line over 8190
        # bytes, header fields): its 414 or 431 (problem+json, docs/errors.md) rejects it too.
        rejection = schema.config.checks.negative_data_rejection
        rejection.expected_statuses = [*rejection.expected_statuses, "414", "431"]
        spec = requests.get(live.url("/openapi.json"), timeout=10).json()
        session = requests.Session()
        counter = [0]
        failures: dict[str, str] = {}
        artifacts: dict[str, str] = {}
        started = time.monotonic()
        operations = 0
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                if method not in {"get", "post", "put", "patch", "delete"}:
                    continue
                label = f"{method.upper()} {path}"
                has_input = bool(op.get("parameters") or op.get("requestBody") or "{" in path)
                operations += 1
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if mode is GenerationMode.NEGATIVE and not has_input:
                        continue
                    error = fuzz_operation(
                        schema, label, mode, args.examples, token, session, counter
                    )
                    declared = {
                        q["name"] for q in op.get("parameters", []) if q.get("in") == "query"
                    }
                    if error and is_artifact(error, declared):
                        artifacts[f"{label} [{mode.value}]"] = error
                        error = None
                    status = "ok" if error is None else "FAILED"
                    print(f"{status:6} {label} [{mode.value}]", flush=True)
                    if error:
                        failures[f"{label} [{mode.value}]"] = error
        elapsed = time.monotonic() - started
        server_errors = live.logs().count('"level": "ERROR"')
        summary = {
            "operations": operations,
            "examples_per_operation_and_mode": args.examples,
            "requests": counter[0],
            "failures": len(failures),
            "fuzzer_artifacts": len(artifacts),
            "server_error_log_lines": server_errors,
            "seconds": round(elapsed, 1),
            "workers": args.workers,
            "failed": failures,
            "artifacts": artifacts,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"fuzz-live-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(summary, indent=2))
        print(
            json.dumps(
                {k: v for k, v in summary.items() if k not in ("failed", "artifacts")}, indent=2
            )
        )
        for name, error in failures.items():
            print(f"\n--- {name}\n{error}")
        print(f"written {out.relative_to(ROOT)}")
        return 1 if failures or server_errors else 0
    finally:
        if live is not None:
            stop_live_server(live)
        server_redis.stop()


if __name__ == "__main__":
    sys.exit(main())
