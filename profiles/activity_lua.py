"""Lua scripts of ``profiles.activity``: every write to one customer's activity is one script
(the paged merge and rebuild scripts are in ``profiles/activity_lua_paged.py``).

All scripts take the same KEYS, all in the customer's hash-tag slot:

    1 orders  2 order_times  3 events  4 message_ids  5 support  6 absorbed  7 traits  8 categories
    and the record scripts 9 the outbox stream of the slot, 10 the customer's outbox ids
    (``core/outbox.py``); the purchase script also 11 the live purchase counters of the
    purchase's day in the slot (``Keys.trend_counts``) and 12 the profile hash (its country)

Money totals reach Lua as decimal strings (``"12.3450"``) and are turned into integer
``1e-4`` units by string surgery, then summed by ``HINCRBY``: Lua never does float arithmetic on
money.
"""

from __future__ import annotations

from core.outbox import EMIT_LUA

# ARGV: order_id, purchase JSON, currency, total units, item count, time ms, time ISO,
#       orders cap, n, then n (category, items) pairs, then ``Outbox.raw_tail`` (a new
#       purchase appends ``purchase.recorded`` with the stored purchase), then the counters'
#       expiry (s), m, then the purchase's m distinct product ids: each counts 1 in KEYS[11]
#       (``p|ID``, and ``CC|ID`` when the profile has a country CC). Returns {code, stored
#       JSON}: 1 created, 0 replay, 2 conflict (another body under this order id), 3 the spend
#       counter would overflow, 4 the customer already holds the orders cap (the count checked
#       here, so two racing purchases cannot both pass it).
RECORD_PURCHASE = (
    EMIT_LUA
    + r"""
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if existing == ARGV[2] then return {0, existing} end
  return {2, existing}
end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[8]) then return {4, ARGV[8]} end
-- the one write that can fail goes first, so a failure leaves nothing half done
local ok = redis.pcall('HINCRBY', KEYS[7], 'spend:' .. ARGV[3], ARGV[4])
if type(ok) == 'table' and ok.err then
  if string.find(ok.err, 'overflow', 1, true) then return {3, ok.err} end
  return ok  -- any other error (NOREPLICAS, READONLY, OOM) goes back as it came
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('HINCRBY', KEYS[7], 'order_count', 1)
redis.call('HINCRBY', KEYS[7], 'orders:' .. ARGV[3], 1)
redis.call('HINCRBY', KEYS[7], 'item_count', ARGV[5])
local ms = tonumber(ARGV[6])
local first = redis.call('HGET', KEYS[7], 'first_purchase_ms')
if not first or ms < tonumber(first) then
  redis.call('HSET', KEYS[7], 'first_purchase_ms', ARGV[6], 'first_purchase_at', ARGV[7])
end
local last = redis.call('HGET', KEYS[7], 'last_purchase_ms')
if not last or ms >= tonumber(last) then
  redis.call('HSET', KEYS[7], 'last_purchase_ms', ARGV[6], 'last_purchase_at', ARGV[7])
end
local cats = tonumber(ARGV[9])
for i = 10, 9 + 2 * cats, 2 do
  redis.call('ZINCRBY', KEYS[8], ARGV[i + 1], ARGV[i])
end
rapport_emit_raw(KEYS[9], KEYS[10], 10 + 2 * cats, 'purchase.recorded', ARGV[2])
local t = 15 + 2 * cats
local np = tonumber(ARGV[t + 1]) or 0
if np > 0 then
  local country = ''
  local doc = redis.call('HGET', KEYS[12], 'doc')
  if doc then
    local ok, d = pcall(cjson.decode, doc)
    if ok and type(d) == 'table' and type(d.country) == 'string' then country = d.country end
  end
  for i = t + 2, t + 1 + np do
    redis.call('HINCRBY', KEYS[11], 'p|' .. ARGV[i], 1)
    if country ~= '' then redis.call('HINCRBY', KEYS[11], country .. '|' .. ARGV[i], 1) end
  end
  redis.call('EXPIRE', KEYS[11], ARGV[t])
end
return {1, ARGV[2]}
"""
)

# ARGV: now ms, dedup cutoff ms, stream MAXLEN, max message ids, then per event 8 values:
#       message id, type, at ISO, at ms, payload JSON, contact id|'', status|'', contact JSON.
# Returns one integer per event: 1 accepted, 0 duplicate.
RECORD_EVENTS = r"""
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[2])
local out = {}
for i = 5, #ARGV, 8 do
  local mid = ARGV[i]
  if redis.call('ZSCORE', KEYS[4], mid) then
    out[#out + 1] = 0
  else
    redis.call('ZADD', KEYS[4], ARGV[1], mid)
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'message_id', mid, 'type', ARGV[i + 1],
      'at', ARGV[i + 2], 'at_ms', ARGV[i + 3], 'payload', ARGV[i + 4])
    local last = redis.call('HGET', KEYS[7], 'last_event_ms')
    if not last or tonumber(ARGV[i + 3]) > tonumber(last) then
      redis.call('HSET', KEYS[7], 'last_event_ms', ARGV[i + 3], 'last_event_at', ARGV[i + 2])
    end
    if ARGV[i + 5] ~= '' then
      if ARGV[i + 6] == 'opened' then
        redis.call('HSETNX', KEYS[5], ARGV[i + 5], ARGV[i + 7])
      else
        redis.call('HDEL', KEYS[5], ARGV[i + 5])
      end
    end
    out[#out + 1] = 1
  end
end
local n = redis.call('ZCARD', KEYS[4])
local cap = tonumber(ARGV[4])
if n > cap then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, n - cap - 1) end
return out
"""
