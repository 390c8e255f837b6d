#!/usr/bin/env python3
"""Summarise py-spy collapsed stacks (``--format raw``): where the workers' time goes.

    .venv/bin/python bench/pyspy_summary.py bench/results/profile-profile-10000.txt [--top 30]

Prints the share of samples per function, self (the frame on top) and inclusive (anywhere in
the stack), idle samples (threads waiting for a connection) left out.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = ("wait (threading.py", "select (selectors.py", "_worker (concurrent", "accept (socket.py",
        "sleep (gunicorn", "poll (selectors.py", "run_for_one", "_run (service/model_holder.py",
        "_bootstrap (threading.py", "murder_keepalived")  # fmt: skip


def frame_name(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)" with the package dir kept
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    parts = path.split("/")
    short = "/".join(parts[-2:])
    return f"{func} ({short})"


def summarise(path: Path, top: int = 30) -> str:
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames or any(frames[-1].startswith(i) for i in IDLE):
            continue
        n = int(count)
        total += n
        self_counts[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return f"{path}: no busy samples"
    out = [f"{path.name}: {total} busy samples", "", "self:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_counts.most_common(top)]
    out += ["", "inclusive:"]
    out += [f"  {100 * c / total:5.1f}%  {f}" for f, c in incl.most_common(top * 2)]
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    for f in args.files:
        print(summarise(f, args.top))
        print()


if __name__ == "__main__":
    main()
