"""Tables, goals and the docs/benchmarks.md sections written by the benchmarks.

``update_docs`` replaces only the section it owns (from its ``## <title>`` heading to the next
``## `` heading) and appends it when missing, so sections written by other benchmarks stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GOAL_LEVEL = 32
P99_LIMIT_MS = 25.0
NAMES = {
    "bare": "bare Flask, no I/O (ceiling)",
    "redis_read": "Flask + 1 HGETALL (ceiling)",
    "profile": "profile read",
    "recommendations": "recommendations",
    "next_best_actions": "next-best actions",
    "greeting": "greeting",
    "purchase": "purchase write",
}
CEILINGS = ("bare", "redis_read")


def _row(phase: dict, endpoint: str, level: int) -> dict | None:
    return next(
        (r for r in phase["rows"] if r.get("endpoint") == endpoint and r["concurrency"] == level),
        None,
    )


def _phase(result: dict, products: int) -> dict | None:
    return next((p for p in result["phases"] if p["products"] == products), None)


def goals_for(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of issue 7 with the measured value and met / not met / not measured."""
    goals: list[dict[str, Any]] = []

    def ratio_goal(endpoint: str, products: int, minimum: float) -> None:
        phase = _phase(result, products)
        row = _row(phase, endpoint, GOAL_LEVEL) if phase else None
        text = (
            f"{NAMES[endpoint]} at {products:,} products >= {minimum}x the single-read "
            f"ceiling ({GOAL_LEVEL} connections)"
        )
        if row is None:
            goals.append({"goal": text, "value": None, "status": "not measured"})
        else:
            ok = row["ratio"] is not None and row["ratio"] >= minimum
            goals.append(
                {"goal": text, "value": f"{row['ratio']}x", "status": "met" if ok else "not met"}
            )

    ratio_goal("recommendations", 10_000, 0.6)
    ratio_goal("recommendations", 100_000, 0.4)
    for phase in result["phases"]:
        row = _row(phase, "profile", GOAL_LEVEL)
        text = f"profile read >= 0.8x the single-read ceiling ({phase['products']:,} products)"
        if row is None:
            goals.append({"goal": text, "value": None, "status": "not measured"})
        else:
            ok = row["ratio"] is not None and row["ratio"] >= 0.8
            goals.append(
                {"goal": text, "value": f"{row['ratio']}x", "status": "met" if ok else "not met"}
            )
    worst = None
    for phase in result["phases"]:
        for r in phase["rows"]:
            if r["concurrency"] == GOAL_LEVEL and r.get("endpoint") not in CEILINGS:
                if worst is None or r["p99_ms"] > worst[0]:
                    worst = (r["p99_ms"], r.get("endpoint"), phase["products"])
    text = f"p99 <= {P99_LIMIT_MS:g} ms for every endpoint at {GOAL_LEVEL} connections"
    if worst is None:
        goals.append({"goal": text, "value": None, "status": "not measured"})
    else:
        value = f"worst {worst[0]} ms ({NAMES.get(worst[1], worst[1])}, {worst[2]:,} products)"
        status = "met" if worst[0] <= P99_LIMIT_MS else "not met"
        goals.append({"goal": text, "value": value, "status": status})
    errors = sum(r["errors"] for p in result["phases"] for r in p["rows"])
    requests = sum(r["requests"] for p in result["phases"] for r in p["rows"])
    goals.append(
        {
            "goal": "zero errors",
            "value": f"{errors} of {requests:,} requests",
            "status": "met" if errors == 0 else "not met",
        }
    )
    return goals


def _table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for phase in result["phases"]:
        for r in phase["rows"]:
            rows.append(
                [
                    f"{phase['products']:,}",
                    NAMES.get(r.get("endpoint"), r["name"]),
                    str(r["concurrency"]),
                    f"{r['rps']:,.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    str(r["errors"]),
                    f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-",
                ]
            )
    return rows


HEADER = ["products", "endpoint", "conns", "req/s", "p50 ms", "p99 ms", "errors", "x read ceiling"]


def text_table(result: dict[str, Any]) -> str:
    rows = [HEADER, *_table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) if i != 1 else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    goals = "\n".join(f"[{g['status']}] {g['goal']}: {g['value']}" for g in result.get("goals", []))
    return "\n".join(lines) + ("\n\n" + goals if goals else "")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def markdown_section(result: dict[str, Any], notes: str = "") -> str:
    m = result["machine"]
    s = result["settings"]
    memory_rows = []
    for phase in result["phases"]:
        for key, mode in (("memory_private", "private (RAPPORT_SHARE_MODEL_ARRAYS=0)"),
                          ("memory", "shared (memory-mapped .npy, the default)")):  # fmt: skip
            workers = phase.get(key) or []
            for w in workers:
                memory_rows.append(
                    [f"{phase['products']:,}", mode, str(w["pid"]), f"{w['rss_mib']}",
                     f"{w['pss_mib']}", f"{w['private_dirty_mib']}"]
                )  # fmt: skip
            if workers:
                memory_rows.append(
                    [f"{phase['products']:,}", f"**{mode}: all workers**", "",
                     f"{sum(w['rss_mib'] for w in workers):.1f}",
                     f"**{sum(w['pss_mib'] for w in workers):.1f}**",
                     f"{sum(w['private_dirty_mib'] for w in workers):.1f}"]
                )  # fmt: skip
    goal_rows = [[g["goal"], str(g["value"]), f"**{g['status']}**"] for g in result["goals"]]
    parts = [
        "## Serving",
        "",
        f"Measured {result['started']} on {m['cores']} cores ({m['cpu'] or 'unknown CPU'}, "
        f"{m['memory']} RAM, Python {m['python']}), load average "
        f"{m['load_average_at_start'][0]:.1f} at the start and "
        f"{m.get('load_average_at_end', [0])[0]:.1f} at the end (the benchmark's own load "
        "generator, servers and Redis included; the machine is a shared virtual one): absolute "
        "numbers are noisy, the ratios against the ceilings measured in the same run are what "
        "to compare.",
        "",
        "```",
        result["command"],
        "```",
        "",
        f"{s['customers']:,} customers with {s['orders_seeded']:,} orders; gunicorn with the "
        f"shipped `gunicorn.conf.py` (workers {s['workers']}, threads {s['threads']}) for both "
        f"Rapport and the ceiling app (`bench/ceiling_app.py`); load from {s['load_generator']} "
        f"in its own process, {s['warmup_s']:g} s warm-up then {s['duration_s']:g} s per row; "
        "customer ids rotate over every seeded customer; the API key is sent on every request. "
        "The single-read ceiling is measured before and after each concurrency level; ratios use "
        "the mean.",
        "",
        "### Goals",
        "",
        md_table(["goal", "measured", "status"], goal_rows),
        "",
        "### Throughput and latency",
        "",
        md_table(HEADER, _table_rows(result)),
        "",
    ]
    if memory_rows:
        parts += [
            "### Worker memory after the load (model loaded)",
            "",
            "RSS counts shared pages in every process that maps them; PSS divides them among "
            "the processes, so the sum of PSS is what the workers cost the machine.",
            "",
            md_table(
                [
                    "products",
                    "model arrays",
                    "worker pid",
                    "RSS MiB",
                    "PSS MiB",
                    "private dirty MiB",
                ],
                memory_rows,
            ),  # fmt: skip
            "",
        ]
    for phase in result["phases"]:
        shared, private = phase.get("memory") or [], phase.get("memory_private") or []
        if shared and private:
            a = sum(w["pss_mib"] for w in private)
            b = sum(w["pss_mib"] for w in shared)
            pa = sum(w["private_dirty_mib"] for w in private) / len(private)
            pb = sum(w["private_dirty_mib"] for w in shared) / len(shared)
            parts += [
                f"At {phase['products']:,} products the {len(shared)} workers cost {a:.0f} MiB "
                f"(PSS) with private arrays and {b:.0f} MiB with shared ones ({a - b:.0f} MiB, "
                f"{100 * (a - b) / a:.0f}% less; private memory per worker {pa:.0f} -> {pb:.0f} "
                "MiB). The saving grows with the number of workers: each extra worker no longer "
                "holds its own copy of the model's float arrays. What stays per worker is "
                "Python: the id lists and dicts of the model (item, user and feature indexes), "
                "Flask and the libraries.",
                "",
            ]
    if notes:
        parts += [notes.strip(), ""]
    return "\n".join(parts)


def update_docs(path: Path, section: str) -> None:
    """Replace (or append) the section whose first line is ``section``'s heading."""
    heading = section.splitlines()[0].strip()
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new = "\n".join([*lines[:start], *section.rstrip("\n").splitlines(), *lines[end:]])
        new = new.rstrip("\n") + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
