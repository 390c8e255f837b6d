"""The delivery worker's lease scripts and its pending-entries estimate
(``service/webhooks/worker.py``)."""

from __future__ import annotations

from typing import Any

from core.outbox import Outbox

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


def pending_estimate(client: Any, outbox: Outbox, shards: list[int]) -> int:
    """Entries read by no one yet or not acknowledged, over ``shards`` (XINFO GROUPS lag +
    pending; the first 64 of them only, so it stays cheap on a Cluster)."""
    total = 0
    pipe = client.pipeline(transaction=False)
    for shard in shards[:64]:
        pipe.xinfo_groups(outbox.stream(shard))
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, list):
            for group in reply:
                if group.get("name") == GROUP:
                    total += int(group.get("pending") or 0) + int(group.get("lag") or 0)
    return total
