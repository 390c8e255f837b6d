"""Change events out: subscriptions, signing (Standard Webhooks), the SSRF-guarded sender and the
delivery worker that reads the outbox (``core/outbox.py``). See docs/webhooks.md."""
