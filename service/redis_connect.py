"""Build the Redis client from a URL: one server, Sentinel, or Cluster.

``REDIS_URL`` forms (every client decodes responses to ``str`` and uses the configured
``RAPPORT_REDIS_TIMEOUT`` for connecting and for each command):

``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path?db=N``
    One Redis server (:class:`redis.Redis`), as ``redis.Redis.from_url`` reads it. A failed
    command is retried for at most the timeout; while the server stays unreachable, later
    commands fail at once (:class:`DeadlineRetry`), so requests get 503 fast.

``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster://`` for TLS)
    A Redis Cluster (:class:`redis.cluster.RedisCluster`). The nodes are startup nodes: one
    reachable node is enough, the client learns the rest (and the slot map) from it. No
    database number: a cluster has only database 0. ``REDIS_CLUSTER_NODES=host:port,...`` is
    the same as ``REDIS_URL=redis+cluster://host:port,...``.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]``
    The master of ``service_name`` as Redis Sentinel names it (``sentinel monitor
    service_name ...``), through :meth:`redis.sentinel.Sentinel.master_for`;
    ``rediss+sentinel://`` for TLS to the data nodes. The password is the data nodes'
    password; add ``?sentinel_password=...`` when the sentinels have their own. On a failover
    the client asks the sentinels for the new master and retries the command (a connection
    error, or ``READONLY`` from a demoted master, is retried with backoff for a few seconds);
    a request that still fails gets 503 and the caller retries it with the same order or
    message id, which the write paths de-duplicate.

Every key of one customer carries the hash tag ``{c:<id>}`` (``profiles.keys``), so Lua scripts
and pipelines over one customer stay in one cluster slot; see ``docs/scale.md``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.connection import Encoder, SSLConnection
from redis.exceptions import RedisClusterException, ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

__all__ = [
    "LazyRedisCluster",
    "RedisTarget",
    "RedisUrlError",
    "connect",
    "parse_redis_url",
    "redact",
]

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
PLAIN_SCHEMES = {"redis", "rediss", "unix"}

# Retry budget for a command whose connection failed (a restart, a failover): about
# 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1 s of backoff at most, enough for Sentinel to promote a
# replica, short enough that a request fails with 503 well before a proxy gives up on it.
RETRIES = 6
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0
# How often (at most, in seconds) a Sentinel client re-asks who the master is.
MASTER_RECHECK = 0.5


class RedisUrlError(ValueError):
    """A ``REDIS_URL`` we cannot use; the message says what is wrong."""


@dataclass(frozen=True)
class RedisTarget:
    """What a URL points at. ``mode``: ``"single"``, ``"cluster"`` or ``"sentinel"``."""

    mode: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    options: dict[str, str] = field(default_factory=dict)


def _nodes(netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    out = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisUrlError(f"{scheme}:// needs host:port pairs, got {item!r}")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise RedisUrlError(f"{scheme}:// needs at least one host:port")
    return tuple(out)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def parse_redis_url(url: str) -> RedisTarget:
    """Read a ``REDIS_URL`` (see the module docstring for the forms)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise RedisUrlError(f"not a URL: {redact(url)!r}")
    if scheme in PLAIN_SCHEMES:
        return RedisTarget("single", url)
    if scheme not in CLUSTER_SCHEMES and scheme not in SENTINEL_SCHEMES:
        known = sorted(PLAIN_SCHEMES | set(CLUSTER_SCHEMES) | set(SENTINEL_SCHEMES))
        raise RedisUrlError(f"unknown Redis URL scheme {scheme!r}; known: {', '.join(known)}")
    # urlsplit rejects "h1:1,h2:2" as a port, so split the authority ourselves.
    parts = urlsplit("x://" + rest)
    netloc = rest.split("/", 1)[0].split("?", 1)[0]
    username, password = _credentials(netloc)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    nodes = _nodes(netloc, scheme)
    path = [p for p in parts.path.split("/") if p]
    if scheme in CLUSTER_SCHEMES:
        if path:
            raise RedisUrlError("a redis+cluster:// URL has no path: a cluster has only db 0")
        return RedisTarget(
            "cluster",
            url,
            nodes=nodes,
            username=username,
            password=password,
            ssl=CLUSTER_SCHEMES[scheme],
            options=options,
        )
    if not path or len(path) > 2:
        raise RedisUrlError("redis+sentinel:// needs /service_name or /service_name/db")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise RedisUrlError(f"redis+sentinel:// database must be a number, got {path[1]!r}")
        db = int(path[1])
    return RedisTarget(
        "sentinel",
        url,
        nodes=nodes,
        service_name=unquote(path[0]),
        db=db,
        username=username,
        password=password,
        ssl=SENTINEL_SCHEMES[scheme],
        options=options,
    )


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs and error messages)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hosts}{slash}{tail}"


def _retry() -> Retry:
    return Retry(ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), RETRIES)


class _Outage:
    """Shared by every connection of one client: when the server was last found unreachable.
    ``deepcopy`` (redis-py copies the retry into each connection) keeps the one instance."""

    def __init__(self) -> None:
        self.since: float | None = None

    def __deepcopy__(self, memo: dict) -> _Outage:
        return self


class DeadlineRetry(Retry):
    """Backoff retries that give up once ``deadline`` seconds have passed, and that make a
    single attempt while the server is known to be down (the last call found it unreachable
    and nothing has succeeded since).

    A plain :class:`Retry` retries each command (and, nested inside it, each connect) for
    about 2.5 s, so a request making a few commands against a dead server took 5-7 s. With
    this, the first call that finds the server down waits at most ``deadline`` (the socket
    timeout); later calls fail at once (connection refused) or within one connect timeout,
    and the first that succeeds ends the outage: the app recovers by itself.
    """

    def __init__(self, deadline: float):
        super().__init__(ExponentialWithJitterBackoff(base=BACKOFF_BASE, cap=BACKOFF_CAP), RETRIES)
        self.deadline = deadline
        self.outage = _Outage()

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        started = time.monotonic()
        self._backoff.reset()
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                backoff = self._backoff.compute(failures)
                if (
                    self.outage.since is not None
                    or failures > self._retries
                    or time.monotonic() - started + backoff > self.deadline
                ):
                    if self.outage.since is None:
                        self.outage.since = time.monotonic()
                    raise error
                if backoff > 0:
                    time.sleep(backoff)
            else:
                self.outage.since = None
                return result


class LazyRedisCluster:
    """A :class:`RedisCluster` built on first use.

    ``RedisCluster()`` asks a node for the slot map in its constructor, so building it in
    ``create_app`` would stop a worker from booting while the cluster is unreachable. This
    stand-in builds it on first use instead (as a plain client connects on first command);
    until the cluster answers, every use raises :class:`redis.ConnectionError` (503, and
    ``/readyz`` says unavailable) and the next use tries again. Everything else is the
    cluster client's own attribute.
    """

    def __init__(self, url: str, **kwargs: Any):
        self._url = url
        self._kwargs = kwargs
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def cluster(self) -> RedisCluster:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = RedisCluster(**self._kwargs)
                    except (RedisClusterException, redis.RedisError) as exc:
                        raise redis.ConnectionError(
                            f"cannot reach the Redis Cluster at {redact(self._url)}: {exc}"
                        ) from exc
                client = self._client
        return client

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in {"_url", "_kwargs", "_client", "_lock"}:
            raise AttributeError(name)
        return getattr(self.cluster, name)

    # Stores register their Lua scripts in their constructors (in create_app): hashing a
    # script needs only the encoder, so neither of these builds the cluster client.
    def get_encoder(self) -> Encoder:
        return Encoder(
            self._kwargs.get("encoding", "utf-8"),
            self._kwargs.get("encoding_errors", "strict"),
            self._kwargs.get("decode_responses", False),
        )

    def register_script(self, script: str) -> Script:
        # Script wants a Redis or RedisCluster; it only calls get_encoder() here and, when a
        # script runs without an explicit client, evalsha/script_load, which __getattr__ forwards.
        return Script(cast(RedisCluster, self), script)

    def __enter__(self) -> LazyRedisCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"<LazyRedisCluster {redact(self._url)} built={self._client is not None}>"


class SentinelMasterConnection(SentinelManagedConnection):
    """A connection to the Sentinel-managed master that re-asks the sentinels for the master
    on every reconnect, and treats ``NOREPLICAS`` like ``READONLY``.

    redis-py asks the sentinels only in ``connect()``; a command that reconnects after an
    error goes through ``connect_check_health()`` and so retried against the old master
    until its retries ran out (redis/redis-py#3874). ``NOREPLICAS`` is what a master with
    ``min-replicas-to-write`` says once its replica has been promoted away from it.
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if self.connection_pool.is_master and str(exc).startswith("NOREPLICAS"):
                self.disconnect()
                raise redis.ConnectionError("the master has no replica to write to") from exc
            raise


class SentinelMasterSSLConnection(SentinelMasterConnection, SSLConnection):
    pass


class SentinelMasterPool(SentinelConnectionPool):
    """The master's connection pool, which re-asks the sentinels who the master is at most
    every ``MASTER_RECHECK`` seconds when a connection is taken.

    redis-py's pool asks only when it opens a connection, so after a failover whose old
    master stays up and writable (``SENTINEL FAILOVER``, a partition) pooled connections keep
    writing to the old master until the sentinels demote it (up to ~10 s) and every one of
    those acknowledged writes is lost. Here a changed address closes the idle connections
    and busy ones are closed when they come back, so the switch is seen within half a second.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any):
        self._master_checked = time.monotonic()
        super().__init__(service_name, sentinel_manager, **kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self.is_master and now - self._master_checked >= MASTER_RECHECK:
            self._master_checked = now
            try:
                self.get_master_address()
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # sentinels unreachable: keep using the master we know
        return super().get_connection(*args, **kwargs)


def connect(url: str, *, timeout: float = 2.0) -> redis.Redis:
    """A client for ``url`` with ``decode_responses=True``; ``timeout`` in seconds bounds
    connecting and each command. Nothing is sent to Redis until the first command.

    Typed as ``redis.Redis`` for every mode: the stores use the command API that
    :class:`LazyRedisCluster` forwards to ``RedisCluster`` (one slot per customer)."""
    target = parse_redis_url(url)
    common = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": True,
    }
    if target.mode == "single":
        return redis.Redis.from_url(
            url, health_check_interval=30, retry=DeadlineRetry(timeout), **common
        )
    auth = {"username": target.username, "password": target.password}
    if target.mode == "cluster":
        lazy = LazyRedisCluster(
            url,
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
            ssl=target.ssl,
            retry=_retry(),
            **auth,
            **common,
        )
        return cast(redis.Redis, lazy)
    sentinel_kwargs: dict[str, float | str] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if "sentinel_password" in target.options:
        sentinel_kwargs["password"] = target.options["sentinel_password"]
        if "sentinel_username" in target.options:
            sentinel_kwargs["username"] = target.options["sentinel_username"]
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    # One Any-typed mapping: redis-py 8 types master_for's keywords, and the
    # auth and socket options are only known to be str/float here.
    options: dict[str, Any] = {
        "connection_pool_class": SentinelMasterPool,
        "connection_class": SentinelMasterSSLConnection if target.ssl else SentinelMasterConnection,
        "db": target.db,
        "health_check_interval": 30,
        "retry": _retry(),
        **auth,
        **common,
    }
    return sentinel.master_for(cast(str, target.service_name), **options)
