"""Screenshots of the agent console for the README: ``docs/console.png`` (the main screen,
1280 px wide, full page) and ``docs/console-not-found.png``.

They come from the browser test itself (``tests/e2e/test_console.py::test_screenshots``), so
the pictures show exactly what the tests check: the real service under gunicorn, a private
Redis with the tests' demo data, Debian's headless Chromium.

    .venv/bin/python bench/console_screenshots.py [output directory, default docs/]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs").resolve()
    env = {**os.environ, "RAPPORT_CONSOLE_SCREENSHOTS": str(out)}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
           "tests/e2e/test_console.py::test_screenshots"]  # fmt: skip
    code = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    if code == 0:
        for name in ("console.png", "console-not-found.png"):
            print(out / name)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
