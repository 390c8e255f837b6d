"""Everything a Redis holds, as one text: erasure tests look for personal data in it."""

from __future__ import annotations

from profiles.keys import Keys

KEYS = Keys()


def all_redis_text(client) -> str:
    """Every key name and every value held (SCAN; the customer data types), except the audit
    log (it keeps profile ids by design, tests/api/test_audit.py) and the change events that
    announce an erasure (they carry the erased ids by design: subscribers need them, see
    :func:`erased_events`)."""
    parts = []
    for key in client.scan_iter(count=1000):
        if key == KEYS.audit_log():
            continue
        parts.append(key)
        kind = client.type(key)
        if kind == "string":
            parts.append(client.get(key))
        elif kind == "hash":
            parts += [f"{k}={v}" for k, v in client.hgetall(key).items()]
        elif kind == "set":
            parts += list(client.smembers(key))
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "zset":
            parts += client.zrange(key, 0, -1)
        elif kind == "stream":
            for _, fields in client.xrange(key):
                if fields.get("type") != "profile.erased":
                    parts += [f"{k}={v}" for k, v in fields.items()]
    return "\n".join(parts)


def erased_events(client) -> list[dict]:
    """The ``profile.erased`` change events in every outbox stream."""
    out = []
    for key in client.scan_iter(match="*:outbox", count=1000):
        out += [f for _, f in client.xrange(key) if f.get("type") == "profile.erased"]
    return out
