"""Every Redis key Rapport uses, in one place.

Per-customer keys carry the hash tag ``{c:<customer id>}`` so that all of one customer's keys
hash to one Redis Cluster slot: a MULTI/EXEC or a Lua script over them stays on one node and is
atomic. Keys that are not about one customer (API keys, indexes, the model registry) have no
customer tag; code never writes to one of those and a customer key in the same transaction.

No call site formats a key string itself; Lua scripts receive keys through ``KEYS``.

Key schema (prefix ``rp`` by default, set with ``RAPPORT_KEY_PREFIX``):

=================================  =========  ====================================================
key                                type       what
=================================  =========  ====================================================
``rp:apikey:<key id>``             hash       one API key: name, scopes, salt, hash, created, ...
``rp:apikeys``                     set        ids of all API keys
=================================  =========  ====================================================
"""

from __future__ import annotations


class Keys:
    """Builds key names under one prefix."""

    def __init__(self, prefix: str = "rp"):
        if not prefix or any(ch in prefix for ch in "{}: \t\r\n"):
            raise ValueError("key prefix must be non-empty without braces, colons or spaces")
        self.prefix = prefix

    # -- API keys (global) -------------------------------------------------------------------
    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_index(self) -> str:
        return f"{self.prefix}:apikeys"

    # -- per customer ------------------------------------------------------------------------
    def customer_tag(self, customer_id: str) -> str:
        """The hash-tagged stem shared by every key of one customer."""
        return f"{self.prefix}:{{c:{customer_id}}}"

    def customer_pattern(self, customer_id: str) -> str:
        """A SCAN ``MATCH`` pattern for every key of one customer (tests and audits only)."""
        stem = self.customer_tag(customer_id)
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in stem)
        return escaped + ":*"
