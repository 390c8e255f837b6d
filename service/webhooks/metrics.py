"""The delivery worker's Prometheus metrics (served by ``rapport worker`` on
``RAPPORT_WORKER_METRICS_PORT``, default 9464; 0: not served)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

attempts = Counter(
    "rapport_webhook_attempts_total", "Webhook delivery attempts, by result", ["result"]
)
delivered = Counter("rapport_webhook_delivered_total", "Webhook deliveries answered 2xx")
failures = Counter("rapport_webhook_failures_total", "Webhook attempts that failed")
dead_letters = Counter("rapport_webhook_dead_letters_total", "Events given up on (dead letters)")
lag = Histogram(
    "rapport_webhook_lag_seconds",
    "From the change being accepted to its delivery's 2xx",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
outbox_pending = Gauge(
    "rapport_outbox_pending",
    "Outbox entries not yet handled in every shard this worker holds (service/webhooks/"
    "worker_gauges.py)",
)
queued = Gauge(
    "rapport_webhook_queued",
    "Events waiting in a subscription's customer queues (failed, paused or behind one)",
    ["subscription"],
)
