"""The Redis key names that are not about one customer: API keys, the catalog, the model
registry, greeting templates, the action catalogue and its statistics, rate-limit counters.

Every room may use these. The per-customer keys (profile, identities, orders, events, contact
history) extend this class in ``profiles/keys.py``: only ``profiles/`` reads or writes them.
No call site formats a key string itself; Lua scripts receive keys through ``KEYS``.

Key schema (prefix ``rp`` by default, set with ``RAPPORT_KEY_PREFIX``):

=================================  =========  ====================================================
key                                type       what
=================================  =========  ====================================================
``rp:apikey:<key id>``             hash       one API key: name, scopes, salt, hash, created, ...
``rp:apikeys``                     set        ids of all API keys
``rp:greeting_templates``          hash       ``<locale>:<channel>`` -> greeting template JSON
``rp:actions``                     hash       action id -> next-best action JSON
``rp:actions_seeded``              string     set once the default actions were written
``rp:action_stats``                hash       ``<action id>:<counter>`` -> count
``rp:action_segments``             hash       ``<action>|<segment key>|<value>:<counter>``
``rp:action_outcomes:<day>``       hash       ``<group>:<action id>:<counter>``, one UTC day
``{rp:action_outcomes:<day>}:...`` string     a request whose impressions were counted (1 day)
``rp:action_experiment``           hash       admin override of control_share and salt
``rp:{catalog}:...``               various    products, category indexes, catalog version
``rp:{models}:...``                various    model versions, active version, history, popular
``rp:ratelimit:{key:ID}:...``      string     rate-limit windows of one caller
``rp:{TAG}:outbox``                stream     change events of the keys in TAG's slot (outbox)
``rp:{TAG}:trend:<day>``           hash       purchases per product (``p|ID``) and per country
                                              (``CC|ID``) on one UTC day (days since epoch), of
                                              the customers in TAG's slot (live trend)
``rp:outbox:wake``                 channel    pub/sub: shard number of an outbox with news
``rp:outbox:lease:<group>``        string     worker id holding one lease group of shards
``rp:outbox:workers``              zset       delivery worker id -> last heartbeat (epoch s)
``rp:{subs}:all``                  hash       subscription id -> subscription JSON (+ secret)
``rp:{s:SID}:...``                 various    one subscription's delivery state (see below)
=================================  =========  ====================================================

Keys of one kind share a hash tag (``{catalog}``, ``{models}``) so that one write over them is
one Lua script on one Redis Cluster slot.

The outbox (``profiles/outbox.py``) has one stream per *shard*. A change appends its event in the
same script or transaction as the write, so the stream must sit in the written keys' slot:
shard ``k`` is the stream whose hash tag hashes to slot ``k`` (``outbox_stream(tag)`` with the
tag from ``profiles.outbox.slot_tag(k)``), and a write in slot ``s`` uses shard ``s mod N``
(N = 16384 on Redis Cluster, 16 on one server).

One subscription's delivery state shares the tag ``{s:SID}`` (one slot, atomic scripts):
``:blocked`` (hash customer -> JSON, customers with an undelivered event), ``:q:<customer>``
(list: that customer's events waiting in order), ``:retry`` (zset customer -> next attempt),
``:dead`` (list: dead letters), ``:log`` (stream: the delivery log), ``:lock:<customer>``.
"""

from __future__ import annotations


class SharedKeys:
    """Builds the shared (not per-customer) key names under one prefix."""

    def __init__(self, prefix: str = "rp"):
        if not prefix or any(ch in prefix for ch in "{}: \t\r\n"):
            raise ValueError("key prefix must be non-empty without braces, colons or spaces")
        self.prefix = prefix

    # -- API keys (global) -------------------------------------------------------------------
    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_index(self) -> str:
        return f"{self.prefix}:apikeys"

    # -- greetings and next-best actions (recommend/engage/greetings.py, actions.py) ----------
    def greeting_templates(self) -> str:
        """Hash ``<locale>:<channel>`` -> template JSON (admin overrides of shipped defaults)."""
        return f"{self.prefix}:greeting_templates"

    def action_catalog(self) -> str:
        """Hash action id -> action JSON."""
        return f"{self.prefix}:actions"

    def action_catalog_seeded(self) -> str:
        """String set once the shipped default actions were written (so deletes stick)."""
        return f"{self.prefix}:actions_seeded"

    def action_stats(self) -> str:
        """Hash ``<action id>:<counter>`` -> count (shown, accepted, dismissed, completed)."""
        return f"{self.prefix}:action_stats"

    def action_segments(self) -> str:
        """Hash ``<action id>|<segment key>|<segment value>:<counter>`` -> count (shown,
        accepted): the adaptive propensity's counters (recommend/engage/adaptive.py)."""
        return f"{self.prefix}:action_segments"

    def action_outcomes(self, day: str) -> str:
        """Hash ``<group>:<action id>:<counter>`` -> count for one UTC day (``YYYY-MM-DD``):
        offers and outcomes per experiment group (adaptive, control); expires after 400 days."""
        return f"{self.prefix}:action_outcomes:{day}"

    def action_experiment(self) -> str:
        """Hash ``control_share``, ``salt``: the admin's experiment settings, overriding the
        configured ones (recommend/engage/learning_admin.py)."""
        return f"{self.prefix}:action_experiment"

    def action_impression_request(self, day: str, request_id: str) -> str:
        """String (expires after a day): the request whose impressions were counted in
        ``action_outcomes(day)``. Its hash tag is that key's whole name, so both share a slot
        and one Lua script counts a request once (Redis Cluster too)."""
        return f"{{{self.action_outcomes(day)}}}:request:{request_id}"

    # -- catalog (recommend/catalog/products.py): one hash tag, so a product write is one Lua script
    def product(self, product_id: str) -> str:
        """String: the product document (JSON)."""
        return f"{self.prefix}:{{catalog}}:product:{product_id}"

    def product_index(self) -> str:
        """Zset (all scores 0): every product id, paged with ZRANGEBYLEX."""
        return f"{self.prefix}:{{catalog}}:products"

    def category_index(self, category: str) -> str:
        """Zset (all scores 0): product ids of one category."""
        return f"{self.prefix}:{{catalog}}:category:{category}"

    def categories_index(self) -> str:
        """Zset: category -> number of products in it."""
        return f"{self.prefix}:{{catalog}}:categories"

    def catalog_version(self) -> str:
        """String: a counter every product write or delete increments (per-process caches of
        product documents compare it to know they are current)."""
        return f"{self.prefix}:{{catalog}}:version"

    # -- model registry (recommend/model/registry.py): one hash tag --------------------------------
    def model_version(self, version: str) -> str:
        """String: one registered model version (JSON: metrics, params, manifest digest)."""
        return f"{self.prefix}:{{models}}:version:{version}"

    def model_versions(self) -> str:
        """Zset: version -> created time (epoch s)."""
        return f"{self.prefix}:{{models}}:versions"

    def model_active(self) -> str:
        """String: the active version; serving workers poll it."""
        return f"{self.prefix}:{{models}}:active"

    def model_history(self) -> str:
        """List (newest first): activation records (JSON)."""
        return f"{self.prefix}:{{models}}:history"

    def model_channel(self) -> str:
        """Pub/sub channel announcing an activation (message: the version)."""
        return f"{self.prefix}:models:activated"

    def popular_products(self) -> str:
        """Zset: product id -> purchases, written by training; the fallback without a model."""
        return f"{self.prefix}:{{models}}:popular"

    def rate_limit_prefix(self) -> str:
        """Prefix of the rate-limit counters (``<prefix>:ratelimit:{key:ID}:...``, see
        ``service/ratelimit.py``): one hash tag per caller, so its windows share a slot."""
        return f"{self.prefix}:ratelimit"

    # -- change events out (core/outbox.py, service/webhooks/) -------------------------------
    def outbox_stream(self, tag: str) -> str:
        """Stream: change events written in the slot of hash tag ``tag`` (one outbox shard)."""
        return f"{self.prefix}:{{{tag}}}:outbox"

    def trend_counts(self, tag: str, day: int) -> str:
        """Hash ``p|<product id>`` / ``<country>|<product id>`` -> orders on UTC day ``day``
        (days since the epoch) of the customers whose keys are in hash tag ``tag``'s slot: one
        shard of the live purchase counters (``recommend/model/live_trend.py``), written by the
        purchase script in the customer's slot, summed over the shards by the reader."""
        return f"{self.prefix}:{{{tag}}}:trend:{day}"

    def outbox_wake(self) -> str:
        """Pub/sub channel: a write published the shard number of the outbox it appended to."""
        return f"{self.prefix}:outbox:wake"

    def outbox_lease(self, group: int) -> str:
        """String (expiring): the id of the delivery worker that reads this group of shards."""
        return f"{self.prefix}:outbox:lease:{group}"

    def outbox_workers(self) -> str:
        """Zset: delivery worker id -> last heartbeat (epoch s)."""
        return f"{self.prefix}:outbox:workers"

    def subscriptions(self) -> str:
        """Hash: subscription id -> subscription JSON (with its signing secret)."""
        return f"{self.prefix}:{{subs}}:all"

    def subscription_tag(self, subscription_id: str) -> str:
        return f"{self.prefix}:{{s:{subscription_id}}}"

    def subscription_blocked(self, subscription_id: str) -> str:
        """Hash customer id -> JSON: customers whose oldest event is not delivered yet."""
        return f"{self.subscription_tag(subscription_id)}:blocked"

    def subscription_queue(self, subscription_id: str, customer_id: str) -> str:
        """List: one customer's events waiting for this subscription, oldest first."""
        return f"{self.subscription_tag(subscription_id)}:q:{customer_id}"

    def subscription_queued(self, subscription_id: str) -> str:
        """String (integer): events waiting in all of this subscription's customer queues (kept
        by the queue scripts, read by the ``rapport_webhook_queued`` gauge)."""
        return f"{self.subscription_tag(subscription_id)}:queued"

    def subscription_retry(self, subscription_id: str) -> str:
        """Zset customer id -> time of the next delivery attempt of its oldest event."""
        return f"{self.subscription_tag(subscription_id)}:retry"

    def subscription_dead(self, subscription_id: str) -> str:
        """List (newest first, capped): events given up on (dead letters)."""
        return f"{self.subscription_tag(subscription_id)}:dead"

    def subscription_log(self, subscription_id: str) -> str:
        """Stream (capped): one entry per delivery attempt outcome."""
        return f"{self.subscription_tag(subscription_id)}:log"

    def subscription_lock(self, subscription_id: str, customer_id: str) -> str:
        """String (expiring): the worker retrying this customer's events now."""
        return f"{self.subscription_tag(subscription_id)}:lock:{customer_id}"
