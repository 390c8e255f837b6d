"""Lua scripts of ``profiles.activity``: every write to one customer's activity is one script.

All scripts take the same KEYS, all in the customer's hash-tag slot:

    1 orders  2 order_times  3 events  4 message_ids  5 support  6 absorbed  7 traits  8 categories

Money totals reach Lua as decimal strings (``"12.3450"``) and are turned into integer
``1e-4`` units by string surgery, then summed by ``HINCRBY``: Lua never does float arithmetic on
money.
"""

from __future__ import annotations

# Shared helpers, prepended to the scripts that need them.
_HELPERS = r"""
local function units(s)
  local i, f = string.match(s, '^(%d+)%.?(%d*)$')
  if not i then return '0' end
  local u = string.gsub(i .. string.sub(f .. '0000', 1, 4), '^0+', '')
  if u == '' then return '0' end
  return u
end

local function id_parts(id)
  local a, b = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(a), tonumber(b)
end

local function field_value(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- Recompute every trait from the customer's own data (orders hash, order times, events).
-- catmap_json: {product_id: category|null} or the string 'null' when there is no catalog.
-- Returns the product ids found in orders but absent from catmap (the caller retries).
local function recompute(catmap_json)
  local use_cats = catmap_json ~= 'null'
  local catmap = {}
  if use_cats then catmap = cjson.decode(catmap_json) end
  redis.call('DEL', KEYS[7], KEYS[8])
  local missing, seen = {}, {}
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local p = cjson.decode(all[i + 1])
    redis.call('HINCRBY', KEYS[7], 'order_count', 1)
    redis.call('HINCRBY', KEYS[7], 'orders:' .. p.currency, 1)
    redis.call('HINCRBY', KEYS[7], 'spend:' .. p.currency, units(p.total))
    redis.call('HINCRBY', KEYS[7], 'item_count', p.item_count)
    if use_cats then
      for _, line in ipairs(p.lines) do
        local c = catmap[line.product_id]
        if c == nil then
          if not seen[line.product_id] then
            seen[line.product_id] = true
            missing[#missing + 1] = line.product_id
          end
        elseif c ~= cjson.null then
          redis.call('ZINCRBY', KEYS[8], line.quantity, c)
        end
      end
    end
  end
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first > 0 then
    local p = cjson.decode(redis.call('HGET', KEYS[1], first[1]))
    redis.call('HSET', KEYS[7], 'first_purchase_ms', first[2], 'first_purchase_at', p.purchased_at)
    local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    p = cjson.decode(redis.call('HGET', KEYS[1], last[1]))
    redis.call('HSET', KEYS[7], 'last_purchase_ms', last[2], 'last_purchase_at', p.purchased_at)
  end
  local best_ms, best_at = nil, nil
  for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
    local ms = tonumber(field_value(entry[2], 'at_ms'))
    if ms and (not best_ms or ms > best_ms) then
      best_ms, best_at = ms, field_value(entry[2], 'at')
    end
  end
  if best_ms then
    redis.call('HSET', KEYS[7], 'last_event_ms', string.format('%d', best_ms),
      'last_event_at', best_at)
  end
  return missing
end
"""

# ARGV: order_id, purchase JSON, currency, total units, item count, time ms, time ISO,
#       then (category, items) pairs.  Returns {code, stored JSON}: 1 created, 0 replay,
#       2 conflict (another body under this order id), 3 the spend counter would overflow.
RECORD_PURCHASE = r"""
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  if existing == ARGV[2] then return {0, existing} end
  return {2, existing}
end
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
for i = 8, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[8], ARGV[i + 1], ARGV[i])
end
return {1, ARGV[2]}
"""

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

# Atomic read of everything held: orders, order times, events, message ids, support, absorbed.
SNAPSHOT = r"""
return {
  redis.call('HGETALL', KEYS[1]),
  redis.call('XRANGE', KEYS[3], '-', '+'),
  redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES'),
  redis.call('HGETALL', KEYS[5]),
  redis.call('HGETALL', KEYS[6]),
}
"""

# ARGV: source id, own ('1' when restoring a customer's own snapshot), orders
#       {field: [json, ms]}, events [[id, message_id, type, at, at_ms, payload]], message ids
#       {id: ms}, support {contact id: json}, absorbed {source: json}, category map JSON.
# Adds what the target lacks; unless ``own``, records what it added under absorbed[source]
# (accumulating over several snapshots of one source), so REMOVE can take exactly that out.
ABSORB = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local rec = {orders = {}, message_ids = {}, events = {}, support = {}}
if not own then
  local prev = redis.call('HGET', KEYS[6], src)
  if prev then
    local old = cjson.decode(prev)
    for k, _ in pairs(rec) do if type(old[k]) == 'table' then rec[k] = old[k] end end
  end
end
local added = 0
for field, item in pairs(cjson.decode(ARGV[3])) do
  local body, ms = item[1], item[2]
  local target = field
  local cur = redis.call('HGET', KEYS[1], target)
  if cur and cur ~= body then
    target = field .. '~' .. src  -- same order id, another body: keep both
    cur = redis.call('HGET', KEYS[1], target)
  end
  if not cur then
    redis.call('HSET', KEYS[1], target, body)
    redis.call('ZADD', KEYS[2], ms, target)
    table.insert(rec.orders, target)
    added = added + 1
  end
end
for mid, ms in pairs(cjson.decode(ARGV[5])) do
  if redis.call('ZADD', KEYS[4], 'NX', ms, mid) == 1 then
    table.insert(rec.message_ids, mid)
  end
end
local have, taken = {}, {}
local existing = redis.call('XRANGE', KEYS[3], '-', '+')
for _, entry in ipairs(existing) do
  local m = field_value(entry[2], 'message_id')
  if m then have[m] = true end
  taken[entry[1]] = true
end
local fresh = {}
for _, ev in ipairs(cjson.decode(ARGV[4])) do
  if not have[ev[2]] then
    have[ev[2]] = true
    -- keep the original id unless the target holds it: then the next free sequence number
    local ms, seq = id_parts(ev[1])
    local id = ev[1]
    while taken[id] do
      seq = seq + 1
      id = string.format('%d-%d', ms, seq)
    end
    taken[id] = true
    fresh[#fresh + 1] = {id, {'message_id', ev[2], 'type', ev[3], 'at', ev[4], 'at_ms', ev[5],
      'payload', ev[6]}}
    table.insert(rec.events, ev[2])
  end
end
if #fresh > 0 then  -- rebuild the stream in id order; the target's entries keep their ids
  for _, entry in ipairs(existing) do fresh[#fresh + 1] = entry end
  table.sort(fresh, function(x, y)
    local a1, b1 = id_parts(x[1])
    local a2, b2 = id_parts(y[1])
    if a1 ~= a2 then return a1 < a2 end
    return b1 < b2
  end)
  redis.call('DEL', KEYS[3])
  for _, entry in ipairs(fresh) do
    redis.call('XADD', KEYS[3], entry[1], unpack(entry[2]))
  end
end
for cid, body in pairs(cjson.decode(ARGV[6])) do
  if redis.call('HSETNX', KEYS[5], cid, body) == 1 then table.insert(rec.support, cid) end
end
if own then
  for s, body in pairs(cjson.decode(ARGV[7])) do redis.call('HSETNX', KEYS[6], s, body) end
elseif #rec.orders + #rec.message_ids + #rec.events + #rec.support > 0 then
  redis.call('HSET', KEYS[6], src, cjson.encode(rec))
end
return recompute(ARGV[8])
"""
)

# Same ARGV as ABSORB. Not ``own``: takes out what absorbed[source] records, then forgets the
# record. ``own``: takes out the snapshot's own content (what equals it), e.g. draining a source.
REMOVE = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local fields, mids, events, contacts = {}, {}, {}, {}
if own then
  for field, item in pairs(cjson.decode(ARGV[3])) do
    if redis.call('HGET', KEYS[1], field) == item[1] then fields[#fields + 1] = field end
  end
  for mid, _ in pairs(cjson.decode(ARGV[5])) do mids[#mids + 1] = mid end
  for _, ev in ipairs(cjson.decode(ARGV[4])) do events[ev[2]] = true end
  for cid, body in pairs(cjson.decode(ARGV[6])) do
    if redis.call('HGET', KEYS[5], cid) == body then contacts[#contacts + 1] = cid end
  end
  for s, body in pairs(cjson.decode(ARGV[7])) do
    if redis.call('HGET', KEYS[6], s) == body then redis.call('HDEL', KEYS[6], s) end
  end
else
  local prev = redis.call('HGET', KEYS[6], src)
  if not prev then return recompute(ARGV[8]) end
  local rec = cjson.decode(prev)
  if type(rec.orders) == 'table' then fields = rec.orders end
  if type(rec.message_ids) == 'table' then mids = rec.message_ids end
  if type(rec.support) == 'table' then contacts = rec.support end
  if type(rec.events) == 'table' then for _, m in ipairs(rec.events) do events[m] = true end end
  redis.call('HDEL', KEYS[6], src)
end
for _, field in ipairs(fields) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
for _, mid in ipairs(mids) do redis.call('ZREM', KEYS[4], mid) end
for _, cid in ipairs(contacts) do redis.call('HDEL', KEYS[5], cid) end
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
  if events[field_value(entry[2], 'message_id')] then redis.call('XDEL', KEYS[3], entry[1]) end
end
if redis.call('XLEN', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end  -- no empty stream left
return recompute(ARGV[8])
"""
)

# ARGV: category map JSON. Returns the product ids missing from it.
RECOMPUTE = _HELPERS + "\nreturn recompute(ARGV[1])\n"
