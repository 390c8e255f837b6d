"""What ``rapport demo`` prints and keeps (its command is in ``service/cli.py``).

The demo's admin key is kept in ``<data dir>/demo-key`` (mode 0600) so that it does not scroll
away under the access log, and a restart on the same data directory reuses it while that Redis
still accepts it, so an open console stays signed in. A missing file or a key that no longer
verifies (revoked, another Redis) gets a new key and a rewritten file.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

from profiles.importer import DEMO_DIR, Summary
from service.auth import ApiKeyNotFound, ApiKeyStore

DEMO_KEY_NAME = "demo"
DEMO_KEY_SCOPE = "admin"
DEMO_KEY_FILE = "demo-key"


def demo_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / DEMO_KEY_FILE


def demo_key(store: ApiKeyStore, path: Path) -> tuple[str, bool]:
    """The demo key's token and whether it was reused.

    The token in ``path`` is reused when it still verifies as the demo's admin key; otherwise
    the other keys named "demo" are revoked (their tokens are lost), a new one is created and
    ``path`` is rewritten. The file is mode 0600 either way."""
    token = _read_token(path)
    key = store.verify(token) if token else None
    if key is not None and key.name == DEMO_KEY_NAME and DEMO_KEY_SCOPE in key.scopes:
        os.chmod(path, 0o600)
        return token, True
    for old in store.list():
        if old.name == DEMO_KEY_NAME:
            with contextlib.suppress(ApiKeyNotFound):  # another demo start revoked it first
                store.revoke(old.key_id)
    _, token = store.create(DEMO_KEY_NAME, DEMO_KEY_SCOPE)
    _write_private(path, token + "\n")
    return token, False


def _read_token(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return ""


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the start, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def demo_example_email() -> str:
    """The first demo customer's email, the one the banner and the README suggest."""
    with open(DEMO_DIR / "customers.csv", newline="") as f:
        return next(csv.DictReader(f)).get("email", "")


def demo_banner(address: str, token: str, key_file: Path, *, reused: bool) -> str:
    """The lines ``rapport demo`` prints before gunicorn's log starts."""
    email = demo_example_email()
    where = shown_path(key_file)
    kept = (
        f"kept from the last start, in {where}"
        if reused
        else f"saved in {where}, reused by the next start"
    )
    return (
        f"\nRapport demo on http://{address}  (API docs: http://{address}/docs)\n"
        f"Agent console: http://{address}/console  (sign in with the key below; look up "
        f"e.g. {email})\n"
        f"Demo API key (scope admin; {kept}):\n"
        f"  {token}\n"
        "Try:\n"
        f"  curl -H 'Authorization: Bearer {token}' "
        f"'http://{address}/v1/profiles?email={quote(email, safe='@')}'\n"
        "On the first start the demo data loads and a first model trains in the background.\n"
    )


def demo_load_report(summary: Summary) -> dict[str, object]:
    """The counts of a first demo load that mean what they say.

    ``load_demo`` imports the customers file, then the orders file in a second pass that finds
    the customers the first pass created and counts them as "existing"; that count is left
    out here."""
    report = summary.as_dict()
    return {
        "customers_created": report["customers_created"],
        "orders_created": report["orders_created"],
        "rows_read": report["rows_read"],
        "rows_skipped": report["rows_skipped"],
        "skipped_by_reason": report["skipped_by_reason"],
        "seconds": report["seconds"],
    }
