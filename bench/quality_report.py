"""The quality benchmark's test table and its goal lines (bench/quality.py)."""

from __future__ import annotations


def print_table(results: dict) -> None:
    head = (
        f"{'method':<22}| {'new items: p@10':>15} {'r@10':>7} {'cov':>6} "
        f"| {'all items: p@10':>15} {'r@10':>7} {'cov':>6} | train s"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        cells = []
        for which in ("new", "all"):
            x = r.get(which)
            cells.append(
                f" {x['precision']:>15.4f} {x['recall']:>7.4f} {x['coverage']:>6.3f} "
                if x
                else f" {'-':>15} {'-':>7} {'-':>6} "
            )
        ms = f"  ({r['ms_per_request']} ms/request)" if "ms_per_request" in r else ""
        print(f"{name:<22}|{cells[0]}|{cells[1]}| {r['train_seconds']:.1f}{ms}")
    print()
    for line in goal_lines(results):
        print(line)


REFERENCES = ("Rapport", "LightFM", "batch rules", "ALS + trend")
NEW_BASELINES = ("recent popularity", "EASE^R")  # issue 19's stronger baselines


def goal_lines(results: dict) -> list[str]:
    """Issue 19's goals: discover >= 1.10x the best new baseline (new items), blend >= 1.05x the
    best baseline (all items), buy_again >= 1.0x the naive buy-again (all items)."""

    def best(which: str, prefixes: tuple[str, ...] = ()) -> tuple[str, float]:
        rows = [
            (name, r[which]["precision"])
            for name, r in results.items()
            if which in r and not name.startswith(REFERENCES) and name.startswith(prefixes)
        ]
        return max(rows, key=lambda row: row[1])

    out = []
    for label, name, which, (peer, y), need in (
        ("discover vs the best new baseline", "Rapport discover", "new",
         best("new", NEW_BASELINES), 1.10),
        ("discover vs the best baseline", "Rapport discover", "new", best("new"), 1.10),
        ("blend vs the best baseline", "Rapport blend", "all", best("all"), 1.05),
        ("buy_again vs naive buy-again", "Rapport buy_again", "all",
         ("buy-again", results["buy-again"]["all"]["precision"]), 1.0),
    ):  # fmt: skip
        x = results[name][which]["precision"]
        verdict = "MET" if x >= need * y else "NOT MET"
        out.append(
            f"{label} ({peer}), {which} items: p@10 {x:.4f} vs {y:.4f} = {x / y:.3f}x "
            f"(goal >= {need:.2f}x): {verdict}"
        )
    return out
