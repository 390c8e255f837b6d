"""Configuration, read from environment variables with documented defaults.

Every setting is one row of ``SETTINGS``; the README's configuration table lists the same rows.
``create_app(config)`` takes a :class:`Config` or a mapping of field overrides (tests use that).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.pii import parse_regions
from service.ratelimit import parse_limits
from service.redis_connect import RedisUrlError, parse_redis_url


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    kind: type
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "REDIS_URL",
        "redis_url",
        str,
        "Redis to use: redis://, rediss://, unix:// (one server), "
        "redis+sentinel://host:port[,host:port]/service_name[/db] (Sentinel), "
        "redis+cluster://host:port[,host:port] (Cluster); see service/redis_connect.py. "
        "Unset: an embedded Redis under RAPPORT_DATA_DIR is started by `rapport serve`/`demo`.",
    ),
    Setting(
        "REDIS_CLUSTER_NODES",
        "redis_cluster_nodes",
        str,
        "host:port[,host:port...] of a Redis Cluster; the same as "
        "REDIS_URL=redis+cluster://host:port,... (REDIS_URL wins when both are set).",
    ),
    Setting(
        "RAPPORT_DATA_DIR",
        "data_dir",
        Path,
        "Local data directory: embedded Redis files, models, metrics scratch.",
    ),
    Setting(
        "RAPPORT_MODEL_DIR",
        "model_dir",
        Path,
        "Where model artifacts live (default: RAPPORT_DATA_DIR/models).",
    ),
    Setting("RAPPORT_KEY_PREFIX", "key_prefix", str, "Prefix of every Redis key."),
    Setting("RAPPORT_LOG_LEVEL", "log_level", str, "DEBUG, INFO, WARNING or ERROR."),
    Setting(
        "RAPPORT_MAX_BODY_BYTES",
        "max_body_bytes",
        int,
        "Largest request body accepted; larger ones get 413.",
    ),
    Setting(
        "RAPPORT_REDIS_TIMEOUT",
        "redis_timeout",
        float,
        "Seconds a Redis connect or command may take before the request fails with 503.",
    ),
    Setting(
        "RAPPORT_AUTH_CACHE_SECONDS",
        "auth_cache_seconds",
        float,
        "Seconds each worker keeps a verified API key in memory (keyed by a digest of the "
        "token); a revoked key stops working within this time. 0: verify every request.",
    ),
    Setting(
        "RAPPORT_SHARE_MODEL_ARRAYS",
        "share_model_arrays",
        int,
        "1: the workers memory-map the model's large arrays from .npy files beside the artifact, "
        "so the machine holds one copy for all workers; 0: each worker keeps its own.",
    ),
    Setting(
        "RAPPORT_ANN_MIN_ITEMS",
        "ann_min_items",
        int,
        "Catalog size from which `rapport train` builds the approximate nearest-neighbour index "
        "over the items (shipped in the artifact) and serving takes recommendations' candidates "
        "from it; below it every product is scored exactly. Default 200000.",
    ),
    Setting(
        "RAPPORT_RETRY_AFTER",
        "retry_after",
        int,
        "Seconds sent in Retry-After when Redis is unavailable.",
    ),
    Setting(
        "RAPPORT_MODEL_POLL_SECONDS",
        "model_poll_seconds",
        float,
        "How often each worker checks the active model version (0: never; tests load by hand).",
    ),
    Setting(
        "RAPPORT_PROMOTE_TOLERANCE",
        "promote_tolerance",
        float,
        "`rapport train` promotes a model whose precision@10 is at most this fraction below "
        "the active model's (0.02 = 2%).",
    ),
    Setting(
        "RAPPORT_MODELS_KEEP",
        "models_keep",
        int,
        "Model versions kept by `rapport models prune` (the active and previous always stay).",
    ),
    Setting(
        "RAPPORT_CONSOLE_FRAME_ANCESTORS",
        "console_frame_ancestors",
        str,
        "CSP frame-ancestors of the agent console: who may embed it in a frame, e.g. "
        "`'self' https://helpdesk.example.com`.",
    ),
    Setting(
        "RAPPORT_RATE_LIMIT",
        "rate_limit",
        str,
        "Requests allowed per API key (per client address without one) across `/v1` "
        "(`N per second|minute|hour|day`, `;` between windows; service/ratelimit.py), default "
        "`60000 per minute; 2000 per second`; `off` disables the limits.",
    ),
    Setting(
        "RAPPORT_KEY_CONCURRENCY",
        "key_concurrency",
        int,
        "Requests of one API key (or address) served at once per worker; past it 429 with "
        "`Retry-After: 1`. Default: RAPPORT_THREADS - 1 (3); 0 turns the bound off.",
    ),
    Setting(
        "RAPPORT_MAX_JSON_DEPTH",
        "max_json_depth",
        int,
        "Deepest nesting of a JSON request body; deeper bodies get 422 before parsing.",
    ),
    Setting(
        "RAPPORT_MAX_JSON_ITEMS",
        "max_json_items",
        int,
        "Most values a JSON request body may hold; more get 422 before parsing.",
    ),
    Setting(
        "RAPPORT_AUDIT_RETENTION_DAYS",
        "audit_retention_days",
        int,
        "Days the audit log keeps its entries.",
    ),
    Setting(
        "RAPPORT_AUDIT_FLUSH_MS",
        "audit_flush_ms",
        int,
        "Reads are audited write-behind: a worker appends its read entries at most this many "
        "ms later, in one pipeline (changes are written at once). `0`: every entry at once. "
        "A worker killed with SIGKILL loses the reads of its last interval.",
    ),
    Setting(
        "RAPPORT_NBA_CONTROL_SHARE",
        "nba_control_share",
        float,
        "Share of customers (0..1, by a stable hash of their id and RAPPORT_NBA_SALT) whose "
        "next-best actions use the global acceptance rate instead of the learned one (the "
        "control group), default 0.1. Unset in a test app (`testing`): 1, everyone.",
    ),
    Setting(
        "RAPPORT_NBA_EXPLORE_SHARE",
        "nba_explore_share",
        float,
        "Share of next-best-action decisions (0..1) that explore by Thompson sampling instead "
        "of ranking by the learned means, default 0.1. Unset in a test app: 0.",
    ),
    Setting(
        "RAPPORT_NBA_SALT",
        "nba_salt",
        str,
        "Experiment salt of the control group's hash; a new salt draws a new control group.",
    ),
    Setting(
        "RAPPORT_NBA_MODEL",
        "nba_model",
        str,
        "The learned propensity of next-best actions: `logistic` (an online Bayesian logistic "
        "model per action, default) or `beta` (Beta posteriors per segment with back-off); "
        "docs/greetings-and-actions.md.",
    ),
    Setting(
        "RAPPORT_NBA_IMPRESSION_WINDOW_S",
        "nba_impression_window_s",
        int,
        "Seconds after next-best actions are shown within which feedback on them matches the "
        "impression, default 86400; `accepted`/`dismissed` feedback on an action not shown in "
        "the window (nor answered before) is 422. `0`: no impression needed (unset in a test "
        "app: 0).",
    ),
    Setting(
        "RAPPORT_CORS_ORIGINS",
        "cors_origins",
        str,
        "Comma-separated origins allowed to call the API from a browser (CORS); empty: none.",
    ),
    Setting(
        "RAPPORT_PII_REGIONS",
        "pii_regions",
        str,
        "Comma-separated regions (ISO 3166 alpha-2) whose national phone spellings are masked in "
        "free text for keys without `pii:read`; international ones (+CC, 00CC) are masked from "
        "anywhere. See docs/pii.md.",
    ),
    Setting(
        "RAPPORT_PII_NAMES",
        "pii_names",
        int,
        "1: first_name, last_name and display_name are PII, shown as `J***` to keys without "
        "`pii:read`; 0: they are shown, with any email or phone in them masked.",
    ),
    Setting(
        "RAPPORT_OUTBOX_MAXLEN",
        "outbox_maxlen",
        int,
        "Change events kept per outbox stream (approximate), default 100000; see "
        "docs/integrations.md.",
    ),
    Setting(
        "RAPPORT_WEBHOOK_RETRY_SECONDS",
        "webhook_retry_seconds",
        int,
        "How long a webhook delivery is retried (exponential backoff with jitter) before it is "
        "a dead letter, default 86400.",
    ),
    Setting(
        "RAPPORT_WEBHOOK_MAX_BACKOFF_SECONDS",
        "webhook_max_backoff_seconds",
        float,
        "The longest wait between two attempts of a failed webhook delivery (the exponential "
        "backoff's cap), default 30; see docs/webhooks.md.",
    ),
    Setting(
        "RAPPORT_WEBHOOK_TIMEOUT",
        "webhook_timeout",
        float,
        "Seconds to connect to and hear back from a webhook target, default 10.",
    ),
    Setting(
        "RAPPORT_WEBHOOK_ALLOW_PRIVATE",
        "webhook_allow_private",
        int,
        "1: webhook targets may be private, loopback or link-local addresses (SSRF guard off); "
        "default 0.",
    ),
    Setting(
        "RAPPORT_WEBHOOK_ALLOWED_HOSTS",
        "webhook_allowed_hosts",
        str,
        "Comma-separated hosts, IP addresses or CIDR networks webhook targets may use even when "
        "private (e.g. `127.0.0.1,10.0.0.0/8`); empty: none.",
    ),
    Setting(
        "RAPPORT_WORKER_METRICS_PORT",
        "worker_metrics_port",
        int,
        "Port of the delivery worker's Prometheus /metrics (0: none), default 9464.",
    ),
)


@dataclass(frozen=True)
class Config:
    redis_url: str | None = None
    redis_cluster_nodes: str | None = None
    data_dir: Path = Path("var")
    model_dir: Path | None = None
    key_prefix: str = "rp"
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    redis_timeout: float = 2.0
    retry_after: int = 5
    auth_cache_seconds: float = 5.0
    share_model_arrays: int = 1
    ann_min_items: int = 200_000
    model_poll_seconds: float = 2.0
    promote_tolerance: float = 0.02
    models_keep: int = 5
    console_frame_ancestors: str = "'self'"
    rate_limit: str = "60000 per minute; 2000 per second"
    key_concurrency: int | None = None  # None: RAPPORT_THREADS - 1 (off when testing)
    max_json_depth: int = 32
    max_json_items: int = 50000
    audit_retention_days: int = 365
    audit_flush_ms: int = 20
    cors_origins: str = ""
    nba_control_share: float | None = None  # None: 0.1 (1.0 when testing)
    nba_explore_share: float | None = None  # None: 0.1 (0.0 when testing)
    nba_salt: str = "rapport"
    nba_model: str = "logistic"
    nba_impression_window_s: int | None = None  # None: 86400 (0 when testing)
    pii_regions: str = "AT,DE,GB,US,FR,ES"
    pii_names: int = 0
    outbox_maxlen: int = 100_000
    webhook_retry_seconds: int = 86400
    webhook_max_backoff_seconds: float = 30.0
    webhook_timeout: float = 10.0
    webhook_allow_private: int = 0
    webhook_allowed_hosts: str = ""
    worker_metrics_port: int = 9464
    testing: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"RAPPORT_LOG_LEVEL: unknown level {self.log_level!r}")
        if self.max_body_bytes < 1024:
            raise ConfigError("RAPPORT_MAX_BODY_BYTES: must be at least 1024")
        if self.redis_timeout <= 0:
            raise ConfigError("RAPPORT_REDIS_TIMEOUT: must be positive")
        if self.retry_after < 1:
            raise ConfigError("RAPPORT_RETRY_AFTER: must be at least 1")
        if not 0 <= self.auth_cache_seconds <= 300:
            raise ConfigError("RAPPORT_AUTH_CACHE_SECONDS: must be in [0, 300]")
        if self.share_model_arrays not in (0, 1):
            raise ConfigError("RAPPORT_SHARE_MODEL_ARRAYS: 0 or 1")
        if self.ann_min_items < 1:
            raise ConfigError("RAPPORT_ANN_MIN_ITEMS: must be at least 1")
        if self.model_poll_seconds < 0:
            raise ConfigError("RAPPORT_MODEL_POLL_SECONDS: must be 0 or more")
        if not 0 <= self.promote_tolerance < 1:
            raise ConfigError("RAPPORT_PROMOTE_TOLERANCE: must be in [0, 1)")
        if self.models_keep < 1:
            raise ConfigError("RAPPORT_MODELS_KEEP: must be at least 1")
        if not self.console_frame_ancestors.strip() or any(
            ch in self.console_frame_ancestors for ch in ";,\r\n"
        ):
            raise ConfigError("RAPPORT_CONSOLE_FRAME_ANCESTORS: one CSP source list, no ';'")
        if self.max_json_depth < 2:
            raise ConfigError("RAPPORT_MAX_JSON_DEPTH: must be at least 2")
        if self.max_json_items < 100:
            raise ConfigError("RAPPORT_MAX_JSON_ITEMS: must be at least 100")
        if self.audit_retention_days < 1:
            raise ConfigError("RAPPORT_AUDIT_RETENTION_DAYS: must be at least 1")
        if not 0 <= self.audit_flush_ms <= 10_000:
            raise ConfigError("RAPPORT_AUDIT_FLUSH_MS: must be in [0, 10000]")
        self._check_webhooks()
        if self.pii_names not in (0, 1):
            raise ConfigError("RAPPORT_PII_NAMES: 0 or 1")
        try:
            parse_regions(self.pii_regions)
        except ValueError as exc:
            raise ConfigError(f"RAPPORT_PII_REGIONS: {exc}") from None
        for name, share in (
            ("RAPPORT_NBA_CONTROL_SHARE", self.nba_control_share),
            ("RAPPORT_NBA_EXPLORE_SHARE", self.nba_explore_share),
        ):
            if share is not None and not 0 <= share <= 1:
                raise ConfigError(f"{name}: must be in [0, 1]")
        if self.nba_impression_window_s is not None and self.nba_impression_window_s < 0:
            raise ConfigError("RAPPORT_NBA_IMPRESSION_WINDOW_S: must be 0 or more")
        if not self.nba_salt:
            raise ConfigError("RAPPORT_NBA_SALT: must not be empty")
        if self.nba_model not in ("logistic", "beta"):
            raise ConfigError("RAPPORT_NBA_MODEL: logistic or beta")
        limit = self.rate_limit.strip()
        if limit and limit.lower() != "off":
            try:
                parse_limits(limit)
            except ValueError as exc:
                raise ConfigError(f"RAPPORT_RATE_LIMIT: {exc}") from None
        if self.key_concurrency is not None and self.key_concurrency < 0:
            raise ConfigError("RAPPORT_KEY_CONCURRENCY: must be 0 (off) or more")
        if self.redis_url or self.redis_cluster_nodes:
            try:
                parse_redis_url(self.effective_redis_url())
            except RedisUrlError as exc:
                name = "REDIS_URL" if self.redis_url else "REDIS_CLUSTER_NODES"
                raise ConfigError(f"{name}: {exc}") from None

    def _check_webhooks(self) -> None:
        if self.outbox_maxlen < 1000:
            raise ConfigError("RAPPORT_OUTBOX_MAXLEN: must be at least 1000")
        if self.webhook_retry_seconds < 0:
            raise ConfigError("RAPPORT_WEBHOOK_RETRY_SECONDS: must be 0 or more")
        if not 1 <= self.webhook_max_backoff_seconds <= 86400:
            raise ConfigError("RAPPORT_WEBHOOK_MAX_BACKOFF_SECONDS: must be in [1, 86400]")
        if not 0 < self.webhook_timeout <= 300:
            raise ConfigError("RAPPORT_WEBHOOK_TIMEOUT: must be in (0, 300]")
        if self.webhook_allow_private not in (0, 1):
            raise ConfigError("RAPPORT_WEBHOOK_ALLOW_PRIVATE: 0 or 1")
        if not 0 <= self.worker_metrics_port <= 65535:
            raise ConfigError("RAPPORT_WORKER_METRICS_PORT: must be a port number or 0")

    @property
    def nba_shares(self) -> tuple[float, float]:
        """(control share, explore share) with their defaults: 0.1 and 0.1; a test app
        (``testing``) ranks everyone by the global rate unless a test sets them."""
        control = self.nba_control_share
        explore = self.nba_explore_share
        if control is None:
            control = 1.0 if self.testing else 0.1
        if explore is None:
            explore = 0.0 if self.testing else 0.1
        return control, explore

    @property
    def nba_impression_window(self) -> int:
        """The impression window (s): 86400 by default, 0 (no impression needed) in a test app."""
        if self.nba_impression_window_s is not None:
            return self.nba_impression_window_s
        return 0 if self.testing else 86400

    @property
    def models_path(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Build a config from ``environ`` (default ``os.environ``), then apply ``overrides``."""
        environ = os.environ if environ is None else environ
        # field name -> value; each value has its field's type (Setting.kind, or the caller's)
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = environ.get(s.env)
            if raw is None or raw == "":
                continue
            try:
                values[s.field] = s.kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{s.env}: cannot read {raw!r} as {s.kind.__name__}") from exc
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(sorted(unknown))}")
        values.update(overrides)
        return cls(**values)

    def embedded_socket(self) -> Path:
        return (self.data_dir / "redis.sock").resolve()

    def in_flight_per_key(self) -> int:
        """Requests of one key served at once per worker (0: unbounded): the setting, else one
        fewer than the worker's threads, so one integration always leaves a thread free (off
        when ``testing``: the suite drives one key from many threads of one app)."""
        if self.key_concurrency is not None:
            return self.key_concurrency
        if self.testing:
            return 0
        return max(1, int(os.environ.get("RAPPORT_THREADS") or 4) - 1)

    def effective_redis_url(self) -> str:
        """The URL to connect to: ``REDIS_URL``, else ``REDIS_CLUSTER_NODES`` as a
        ``redis+cluster://`` URL, else the embedded server's unix socket."""
        if self.redis_url:
            return self.redis_url
        if self.redis_cluster_nodes:
            return "redis+cluster://" + self.redis_cluster_nodes.replace(" ", "")
        return f"unix://{self.embedded_socket()}"
