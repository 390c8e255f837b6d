"""The per-customer Redis keys (and the audit log): the storage only ``profiles/`` touches.

The keys that are not about one customer are in ``core/keys.py`` (``SharedKeys``, which this
``Keys`` extends, so one ``Keys`` object names every key).

Per-customer keys carry the hash tag ``{c:<customer id>}`` so that all of one customer's keys
hash to one Redis Cluster slot: a MULTI/EXEC or a Lua script over them stays on one node and is
atomic. Keys that are not about one customer (API keys, indexes, the model registry) have no
customer tag; code never writes to one of those and a customer key in the same transaction.

No call site formats a key string itself; Lua scripts receive keys through ``KEYS``.

Key schema (prefix ``rp`` by default, set with ``RAPPORT_KEY_PREFIX``):

=================================  =========  ====================================================
key                                type       what
=================================  =========  ====================================================
``rp:{c:ID}:profile``              hash       the profile document (see profiles/store.py)
``rp:{c:ID}:merges``               list       merge record ids this customer took part in
``rp:{i:KIND:VALUE}:owner``        string     identity claim: customer id owning the identity
``rp:merge:<merge id>``            string     merge record (JSON): who, when, what moved
``rp:merge:<merge id>:unmerge``    string     who is undoing the merge now (60 s expiry)
``rp:{c:ID}:orders``               hash       order id -> purchase JSON
``rp:{c:ID}:order_times``          zset       order id -> purchase time (epoch s), for paging
``rp:{c:ID}:traits``               hash       computed traits kept current on write
``rp:{c:ID}:categories``           zset       category -> items bought (favourite categories)
``rp:{c:ID}:events``               stream     recent interaction events (capped)
``rp:{c:ID}:message_ids``          zset       event message id -> receive time (dedup window)
``rp:{c:ID}:support``              hash       open support contact id -> contact JSON
``rp:{c:ID}:absorbed``             hash       source id -> what a merge added (for unmerge)
``rp:{c:ID}:<key>:rebuild``        (as key)   a paged rebuild of events/traits/categories
``rp:{c:ID}:action_feedback``      hash       client feedback id -> feedback JSON
``rp:{c:ID}:action_state``         hash       action id -> last feedback (cooldown)
``rp:{c:ID}:contacts``             zset       offers made -> time (daily contact budget)
``rp:{c:ID}:offered_products``     zset       product id -> time last offered
``rp:{c:ID}:impressions``          zset       action id -> time last shown (feedback window)
``rp:{c:ID}:outbox_ids``           zset       the customer's change events in the outbox (erasure)
``rp:audit``                       stream     audit log: key id/name, action, profile id (no PII)
=================================  =========  ====================================================

Identity claims live in their own slot (tag ``{i:...}``), so attaching an identity is a claim
(``SET NX`` on the owner key) followed by a write in the customer's slot; the profile's own
identity list is the source of truth and a claim whose profile does not list the identity is
stale (see ``profiles/identity_index.py``). No operation needs a cross-slot transaction.
"""

from __future__ import annotations

from core.keys import SharedKeys


class Keys(SharedKeys):
    """Every key name under one prefix: the shared ones and those of one customer."""

    # -- per customer ------------------------------------------------------------------------
    def customer_tag(self, customer_id: str) -> str:
        """The hash-tagged stem shared by every key of one customer."""
        return f"{self.prefix}:{{c:{customer_id}}}"

    def profile(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:profile"

    def customer_merges(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:merges"

    def identity_owner(self, kind: str, value: str) -> str:
        """Claim key of one normalised identity (``kind`` email, phone or ext:<system>)."""
        return f"{self.prefix}:{{i:{kind}:{value}}}:owner"

    def merge_record(self, merge_id: str) -> str:
        return f"{self.prefix}:merge:{merge_id}"

    def unmerge_claim(self, merge_id: str) -> str:
        """String (60 s expiry): who is undoing this merge now (one unmerge at a time)."""
        return f"{self.merge_record(merge_id)}:unmerge"

    # -- per customer activity (profiles/activity.py) ------------------------------------------
    def orders(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:orders"

    def order_times(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:order_times"

    def traits(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:traits"

    def categories(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:categories"

    def events(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:events"

    def message_ids(self, customer_id: str) -> str:
        return f"{self.customer_tag(customer_id)}:message_ids"

    def support_contacts(self, customer_id: str) -> str:
        """Hash support contact id -> JSON of the open contact (open_support_contacts trait)."""
        return f"{self.customer_tag(customer_id)}:support"

    def absorbed(self, customer_id: str) -> str:
        """Hash source customer id -> JSON of what a merge added here (undone by unmerge)."""
        return f"{self.customer_tag(customer_id)}:absorbed"

    def rebuild(self, key: str) -> str:
        """The side key a paged rebuild writes before swapping it in for ``key`` (one of this
        customer's ``events``, ``traits`` or ``categories``: same slot)."""
        return f"{key}:rebuild"

    def all_orders_pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for every customer's orders hash (batch jobs)."""
        return f"{self.prefix}:{{c:*}}:orders"

    def customer_of_orders_key(self, key: str) -> str | None:
        """The customer id in an ``orders`` key name, or None when it is not one."""
        stem, suffix = f"{self.prefix}:{{c:", "}:orders"
        if key.startswith(stem) and key.endswith(suffix):
            return key[len(stem) : -len(suffix)] or None
        return None

    def action_feedback(self, customer_id: str) -> str:
        """Hash client feedback id -> feedback JSON (idempotency and history)."""
        return f"{self.customer_tag(customer_id)}:action_feedback"

    def action_state(self, customer_id: str) -> str:
        """Hash action id -> JSON of the last feedback (cooldowns)."""
        return f"{self.customer_tag(customer_id)}:action_state"

    def contacts(self, customer_id: str) -> str:
        """Zset ``<channel>|<what>|<feedback id>`` -> time: offers made (contact budget)."""
        return f"{self.customer_tag(customer_id)}:contacts"

    def offered_products(self, customer_id: str) -> str:
        """Zset product id -> time it was last offered (not pushed again for N days)."""
        return f"{self.customer_tag(customer_id)}:offered_products"

    def impressions(self, customer_id: str) -> str:
        """Zset action id -> time the next-best actions last showed it (feedback on it is
        matched within the impression window; expires with the window)."""
        return f"{self.customer_tag(customer_id)}:impressions"

    def outbox_ids(self, customer_id: str) -> str:
        """Zset outbox entry id -> at ms: this customer's change events (``core/outbox.py``), so
        erasing them deletes their events from the outbox stream in the same script."""
        return f"{self.customer_tag(customer_id)}:outbox_ids"

    def customer_keys(self, customer_id: str) -> list[str]:
        """Every per-customer key: erasure deletes exactly these (add new ones here)."""
        return [
            self.profile(customer_id),
            self.customer_merges(customer_id),
            self.orders(customer_id),
            self.order_times(customer_id),
            self.traits(customer_id),
            self.categories(customer_id),
            self.events(customer_id),
            self.message_ids(customer_id),
            self.support_contacts(customer_id),
            self.absorbed(customer_id),
            self.action_feedback(customer_id),
            self.action_state(customer_id),
            self.contacts(customer_id),
            self.offered_products(customer_id),
            self.impressions(customer_id),
            self.outbox_ids(customer_id),
            self.rebuild(self.events(customer_id)),  # left only by a rebuild stopped half-way
            self.rebuild(self.traits(customer_id)),
            self.rebuild(self.categories(customer_id)),
        ]

    # -- audit log (profiles/audit.py): global, not per customer, so erasure keeps it --------
    def audit_log(self) -> str:
        """Stream: who read/changed/exported/merged/erased which profile (ids only, no PII)."""
        return f"{self.prefix}:audit"

    def erased_ids(self) -> str:
        """Zset SHA-256 digest of an erased customer id -> erased at (epoch s), global: a model
        trained before an erasure still knows the id, and answers for it must be 404 as the
        profile's are. Digests, not ids: nothing of an erased person stays readable."""
        return f"{self.prefix}:erased"

    def customer_pattern(self, customer_id: str) -> str:
        """A SCAN ``MATCH`` pattern for every key of one customer (tests and audits only)."""
        stem = self.customer_tag(customer_id)
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in stem)
        return escaped + ":*"
