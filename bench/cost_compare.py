#!/usr/bin/env python3
"""bench/request_cost.py for two source trees, run alternately on the same machine: per row
the median, min and max CPU per request over the runs, and the change.

    .venv/bin/python bench/cost_compare.py --before /tmp/before17 --after . --runs 3

``--before`` is typically ``git archive HEAD | tar -x -C /tmp/before17``; both trees run with
this interpreter (the same packages), each importing its own code (``request_cost.py`` puts
its tree first on ``sys.path``). Alternating A, B, A, B... spreads the machine's noise (other
work on a shared 2-core machine) over both; the ``x read ceiling`` ratio of each run, taken
against the ``flask + 1 HGETALL`` ceiling of the same run, is the figure least disturbed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(tree: Path, out: Path, extra: list[str]) -> list[dict]:
    cmd = [sys.executable, str(tree / "bench" / "request_cost.py"), "--json", str(out), *extra]
    subprocess.run(cmd, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, default=Path("."))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--products", type=int, default=10000)
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--requests", type=int, default=300)
    args = p.parse_args(argv)
    extra = ["--products", str(args.products), "--customers", str(args.customers),
             "--requests", str(args.requests)]  # fmt: skip
    results: dict[str, list[list[dict]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            for name, tree in (("before", args.before), ("after", args.after)):
                rows = run(tree.resolve(), Path(tmp) / f"{name}{i}.json", extra)
                results[name].append(rows)
                print(f"run {i + 1}/{args.runs} {name} done", file=sys.stderr)
    labels = [r["endpoint"] for r in results["before"][0]]
    print(f"\n{args.products:,} products, {args.customers:,} customers; {args.runs} runs of each "
          f"tree, alternating; median (min-max) CPU ms/request; command: python3 "
          f"bench/cost_compare.py --before {args.before} --runs {args.runs} "
          f"--products {args.products}\n")  # fmt: skip
    print(
        "| endpoint | before | after | after/before "
        "| before ÷ read ceiling | after ÷ read ceiling |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def cpu(name: str, label: str, key: str = "cpu_ms") -> list[float]:
        return [next(r[key] for r in rows if r["endpoint"] == label) for rows in results[name]]

    for label in labels:
        before, after = cpu("before", label), cpu("after", label)
        ratio = statistics.median(after) / statistics.median(before)
        ceil_b = [b / c for b, c in zip(before, cpu("before", labels[1]), strict=True)]
        ceil_a = [a / c for a, c in zip(after, cpu("after", labels[1]), strict=True)]
        print(f"| {label} | {spread(before)} | {spread(after)} | {ratio:.2f} | "
              f"{spread(ceil_b)} | {spread(ceil_a)} |")  # fmt: skip
    print("\nwith the rate limits off:\n")
    print("| endpoint | before | after |")
    print("|---|---:|---:|")
    for label in labels[2:]:
        before = cpu("before", label, "cpu_ms_limits_off")
        after = cpu("after", label, "cpu_ms_limits_off")
        print(f"| {label} | {spread(before)} | {spread(after)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
