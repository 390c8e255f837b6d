"""gunicorn settings for `rapport serve` (flags on the command line override these).

Environment: RAPPORT_BIND, RAPPORT_WORKERS, RAPPORT_THREADS, RAPPORT_TIMEOUT; the slow-client
limits of service/slow_clients.py (read by the worker class).
"""

import json
import os

from gunicorn.glogging import Logger

# One BLAS thread per worker. Serving does small products (one user vector against the item
# matrix); OpenBLAS's own threads only add spin-waiting and contention with the request
# threads: on a busy 2-core machine a (100k x 32) product took 17 ms with 2 BLAS threads and
# 3 ms with one (bench/serve.py). Set before any worker imports numpy; ops may override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

bind = os.environ.get("RAPPORT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("RAPPORT_WORKERS", "2"))
# Threads let one worker keep several keep-alive connections and overlap Redis round trips.
# gunicorn's gthread, except that each request is read whole by the worker's event loop, under
# deadlines, before a thread sees it: a slow or idle client holds no thread (issue 18;
# RAPPORT_HEADER_TIMEOUT, RAPPORT_BODY_TIMEOUT, RAPPORT_BODY_MIN_RATE,
# RAPPORT_MAX_CONNECTIONS_PER_ADDRESS; service/gunicorn_worker.py, docs/reliability.md).
# RAPPORT_WORKER_CLASS: another gunicorn worker class (benchmarks compare "gthread").
worker_class = os.environ.get(
    "RAPPORT_WORKER_CLASS", "service.gunicorn_worker.BufferingThreadWorker"
)
threads = int(os.environ.get("RAPPORT_THREADS", "4"))
timeout = int(os.environ.get("RAPPORT_TIMEOUT", "30"))
graceful_timeout = 20  # SIGTERM: stop accepting, finish in-flight requests for up to 20 s
keepalive = 5
# Hard limits on what a client may send before Flask sees it (8190: gunicorn's maximum for the
# request line). gunicorn's answer past them is problem+json (service/gunicorn_errors.py).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# No control socket: it lives in one per-user path, which several instances (tests, benchmarks)
# on one machine would fight over, and nothing here uses gunicornc.
control_socket_disable = True

accesslog = "-"
errorlog = "-"


class AccessLogger(Logger):
    """gunicorn's logger, with emails and phone numbers in the logged URL masked (docs/pii.md)."""

    def atoms(self, resp, req, environ, request_time):
        from service.logs import redact_access_atoms

        return redact_access_atoms(super().atoms(resp, req, environ, request_time))


logger_class = AccessLogger

loglevel = os.environ.get("RAPPORT_LOG_LEVEL", "info").lower()
# One JSON object per request. Never the Authorization header; the path redacted (AccessLogger).
access_log_format = json.dumps(
    {
        "ts": "%(t)s",
        "logger": "gunicorn.access",
        "remote": "%(h)s",
        "method": "%(m)s",
        "path": "%(U)s",
        "status": "%(s)s",
        "bytes": "%(B)s",
        "duration_ms": "%(M)s",
        "request_id": "%({x-request-id}o)s",
        "agent": "%(a)s",
    }
)

# gunicorn's own messages as JSON lines too (the access lines are JSON by their format).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "service.logs.JsonFormatter"},
        "raw": {"format": "%(message)s"},
    },
    "handlers": {
        "error": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "raw",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"handlers": ["error"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["error"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared Prometheus directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Answer gunicorn's own errors (414, 431, 400) as problem+json; load the active model
    before this worker takes requests, then keep polling for new versions in the background
    (service/model_holder.py)."""
    from service import gunicorn_errors
    from service.wiring import warm_up

    gunicorn_errors.install()

    warm_up(worker.wsgi)
