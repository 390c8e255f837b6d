"""The delivery worker's lease scripts and its takeover of a newly held shard
(``service/webhooks/worker.py``)."""

from __future__ import annotations

import logging
from typing import Any

from core.outbox import Outbox

log = logging.getLogger("rapport.worker")

GROUP = "rapport-webhooks"

# KEYS[1] lease; ARGV[1] owner, ARGV[2] ms: renew only a lease still ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] lease; ARGV[1] owner, ARGV[2] ms: take a free lease, or one this id held before a
# restart (a worker started again with the same --id resumes at once instead of waiting).
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim_left_pending(client: Any, outbox: Outbox, shards: list[int], consumer: str) -> None:
    """Before a fresh shard's first read: its consumer group (when the stream exists) and the
    entries other consumers left pending there, claimed for ``consumer`` (``XAUTOCLAIM``)."""
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.xgroup_create(outbox.stream(shard), GROUP, id="0")
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
            text = str(reply).lower()
            if "requires the key to exist" not in text and "no such key" not in text:
                raise reply
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        stream = outbox.stream(shard)
        pipe.xautoclaim(stream, GROUP, consumer, 0, "0-0", count=1000, justid=True)
    claimed = sum(len(r) for r in pipe.execute(raise_on_error=False) if isinstance(r, list))
    if claimed:
        log.info("worker %s claimed %d entries others left pending", consumer, claimed)
