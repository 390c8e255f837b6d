#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine with only Python 3.11+ and a C compiler.

    python3 dev.py demo     # venv + install, then the service with demo data on an embedded Redis
    python3 dev.py test     # venv + install, then the whole test suite
    python3 dev.py lint | spec | bench-<name> (see BENCHMARKS below)

The virtual environment lives in .venv and is (re)installed only when setup.cfg or
pyproject.toml change. Extra arguments go to the underlying command.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".install-stamp"
# dev.py bench-<name> -> the script (each prints its table and the command that reproduces it)
BENCHMARKS = {
    "bench-quality": "bench/quality.py",  # recommendation quality on Online Retail
    "bench-serve": "bench/serve.py",  # HTTP throughput/latency vs the bare-Flask ceilings
    "bench-openloop": "bench/openloop.py",  # latency at fixed arrival rates (25/50/75% of max)
    "bench-cost": "bench/request_cost.py",  # CPU and Redis round trips of one request, in process
    "bench-ingest": "bench/ingest.py",  # POST /v1/events and rapport import rates
    "bench-segment": "bench/segment_ingest.py",  # Segment ingest vs POST /v1/events
    "bench-greetings": "bench/greeting_nba.py",  # greeting and next-best-action latency
    "bench-profiles": "bench/profiles_store.py",  # profile store operations
    "bench-fuzz": "bench/fuzz_live.py",  # schemathesis against gunicorn
    "bench-abuse": "bench/abuse.py",  # hostile requests and a bad-request flood
    "bench-faults": "bench/faults.py",  # kill -9 Redis/workers, outage, corrupt models
    "bench-nba": "bench/nba_adaptive.py",  # adaptive next-best actions vs global rate, oracle
    "bench-connect": "bench/connect.py",  # webhook delivery lag, worker kill -9, outage
    "bench-ann": "bench/ann.py",  # 1M products: the nearest-neighbour index vs exact scoring
}


def ensure_env(extras: str = "test") -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run under any python3
        sys.exit(f"Rapport needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    wanted = f"{digest.hexdigest()} {extras}"
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"installing rapport-service[{extras}] into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-q", "-e", f".[{extras}]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


# the house spelling (British -ise) for our own names and prose: "normalise" spelt with a z fails
# `dev.py lint` in code and docs, except a library's own method or keyword (``x.normali?e(``,
# ``normali?e=``: Decimal, unicodedata, LightFM)
AVOID_SPELLINGS = re.compile(r"(?<!\w)normaliz\w*", re.I)


def spelling() -> list[str]:
    """``path:line: word`` for every tracked .py/.md line that uses an avoided spelling."""
    listed = subprocess.run(["git", "ls-files", "*.py", "*.md"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    found = []
    for name in listed:
        path = ROOT / name
        if name == "dev.py" or not path.is_file():  # this file spells the pattern out
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in AVOID_SPELLINGS.finditer(line):
                before, after = line[match.start() - 1 : match.start()], line[match.end() :][:1]
                if match.group(0).lower() == "normalize" and (before == "." or after == "="):
                    continue
                found.append(f"{name}:{number}: {match.group(0)}")
    return found


def customer_keys_outside_profiles() -> list[str]:
    """``path:line: key`` for every use of a per-customer key name (a method of
    ``profiles/keys.py``'s ``Keys`` that ``core/keys.py`` does not have) outside profiles/:
    only profiles/ reads or writes customer storage."""

    def methods(path: str) -> set[str]:
        return set(re.findall(r"^    def (\w+)\(self", (ROOT / path).read_text(), re.M))

    names = methods("profiles/keys.py") - methods("core/keys.py") - {"__init__"}
    used = re.compile(r"\bkeys\.(" + "|".join(sorted(names)) + r")\(")
    found = []
    for room in ("core", "recommend", "service"):
        for path in sorted((ROOT / room).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for match in used.finditer(line):
                    found.append(f"{path.relative_to(ROOT)}:{number}: keys.{match.group(1)}")
    return found


def lint() -> None:
    """ruff (rules and format), the import contracts, mypy, the house spelling and customer
    storage only in profiles/; the first failing step stops with its own output."""
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "lint-imports")],
        [str(BIN / "mypy")],
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for step in steps:
        print("+", " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)),
              flush=True)  # fmt: skip
        if subprocess.run(step, cwd=ROOT, env=env).returncode != 0:
            sys.exit(f"lint failed: {Path(step[0]).name}")
    bad = spelling()
    if bad:
        sys.exit("lint failed: spelling (the house writes -ise):\n" + "\n".join(bad))
    bad = customer_keys_outside_profiles()
    if bad:
        sys.exit("lint failed: customer keys outside profiles/ (use its read API):\n"
                 + "\n".join(bad))  # fmt: skip
    print("lint passed", flush=True)


def run(*cmd: str) -> None:
    os.chdir(ROOT)
    os.execv(cmd[0], list(cmd))


def main(argv: list[str]) -> None:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return
    command, rest = argv[0], argv[1:]
    if command == "demo":
        ensure_env("test")
        run(str(BIN / "rapport"), "demo", *rest)
    elif command == "test":
        ensure_env("test")
        run(str(BIN / "python"), "-m", "pytest", "-n", "2", "-q", *rest)
    elif command == "lint":
        ensure_env("test")
        lint()
    elif command == "spec":
        ensure_env("test")
        run(str(BIN / "rapport"), "spec", "--write")
    elif command in BENCHMARKS:
        ensure_env("test,bench")
        run(str(BIN / "python"), BENCHMARKS[command], *rest)
    else:
        sys.exit(f"unknown command {command!r}; see 'python3 dev.py --help'")


if __name__ == "__main__":
    main(sys.argv[1:])
