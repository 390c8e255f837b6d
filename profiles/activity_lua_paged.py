"""Lua scripts of ``profiles.activity_paged``: merges, unmerges and trait rebuilds in pages.

Each call handles at most one page (``activity_paged.PAGE`` orders, ``MID_PAGE`` message ids,
the events stream, which the cap bounds), so no call blocks Redis for long whatever the history
size; every call is idempotent, so a run that stops half-way is resumed by running it again.
Traits are kept current incrementally (counters added or taken out per order, the first/last
purchase re-read from ``order_times``), never recomputed by scanning every order in one call.

KEYS as in ``profiles/activity_lua.py`` (1 orders 2 order_times 3 events 4 message_ids
5 support 6 absorbed 7 traits 8 categories), and 9 (10): the key a stream rebuild writes, or
the trait rebuild's traits and categories keys (all in the same slot).

A category map (``catmap``) is ``{product id: category|null}`` for the products of the page, or
the string ``'null'`` without a catalog; an order script that meets a product the map lacks
writes nothing and returns the missing ids (the caller looks them up and calls again).
"""

from __future__ import annotations

_HELPERS = r"""
local function units(s)
  local i, f = string.match(s, '^(%d+)%.?(%d*)$')
  if not i then return '0' end
  local u = string.gsub(i .. string.sub(f .. '0000', 1, 4), '^0+', '')
  if u == '' then return '0' end
  return u
end

local function field_value(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function decode_catmap(arg)
  if arg == 'null' then return nil end
  return cjson.decode(arg)
end

-- the products of decoded orders ``ps`` that ``catmap`` lacks
local function missing_of(ps, catmap)
  local missing, seen = {}, {}
  if not catmap then return missing end
  for _, p in ipairs(ps) do
    for _, line in ipairs(p.lines) do
      if catmap[line.product_id] == nil and not seen[line.product_id] then
        seen[line.product_id] = true
        missing[#missing + 1] = line.product_id
      end
    end
  end
  return missing
end

-- add (sign 1) or take out (sign -1) one order's counters: the spend at once (exact integer
-- units, HINCRBY), the counts summed into ``acc`` and written by ``flush`` (a few calls a page)
local function new_acc() return {orders = 0, items = 0, cur = {}, cats = {}} end

local function count_order(p, sign, catmap, tk, acc)
  local u = units(p.total)
  if u ~= '0' then
    if sign < 0 then u = '-' .. u end
    redis.call('HINCRBY', tk, 'spend:' .. p.currency, u)
  elseif sign > 0 then
    redis.call('HINCRBY', tk, 'spend:' .. p.currency, 0)
  end
  acc.orders = acc.orders + sign
  acc.items = acc.items + sign * p.item_count
  acc.cur[p.currency] = (acc.cur[p.currency] or 0) + sign
  if catmap then
    for _, line in ipairs(p.lines) do
      local c = catmap[line.product_id]
      if c and c ~= cjson.null then acc.cats[c] = (acc.cats[c] or 0) + sign * line.quantity end
    end
  end
end

local function flush(acc, tk, ck)
  if acc.orders ~= 0 then
    redis.call('HINCRBY', tk, 'order_count', string.format('%d', acc.orders))
  end
  if acc.items ~= 0 then
    redis.call('HINCRBY', tk, 'item_count', string.format('%d', acc.items))
  end
  for cur, n in pairs(acc.cur) do
    local left = redis.call('HINCRBY', tk, 'orders:' .. cur, string.format('%d', n))
    if left <= 0 then redis.call('HDEL', tk, 'orders:' .. cur, 'spend:' .. cur) end
  end
  for c, n in pairs(acc.cats) do
    if n ~= 0 then
      local score = redis.call('ZINCRBY', ck, string.format('%d', n), c)
      if tonumber(score) <= 0 then redis.call('ZREM', ck, c) end
    end
  end
end

-- first/last purchase from order_times (two O(log n) reads); no orders: no order traits
local function purchase_bounds(tk)
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('HDEL', tk, 'first_purchase_ms', 'first_purchase_at', 'last_purchase_ms',
      'last_purchase_at', 'order_count', 'item_count')
    return
  end
  local p = cjson.decode(redis.call('HGET', KEYS[1], first[1]))
  redis.call('HSET', tk, 'first_purchase_ms', first[2], 'first_purchase_at', p.purchased_at)
  local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  p = cjson.decode(redis.call('HGET', KEYS[1], last[1]))
  redis.call('HSET', tk, 'last_purchase_ms', last[2], 'last_purchase_at', p.purchased_at)
end

-- the latest event time from the stream (bounded by the events cap)
local function event_bounds(tk)
  local best_ms, best_at = nil, nil
  for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+')) do
    local ms = tonumber(field_value(entry[2], 'at_ms'))
    if ms and (not best_ms or ms > best_ms) then
      best_ms, best_at = ms, field_value(entry[2], 'at')
    end
  end
  if best_ms then
    redis.call('HSET', tk, 'last_event_ms', string.format('%d', best_ms), 'last_event_at', best_at)
  else
    redis.call('HDEL', tk, 'last_event_ms', 'last_event_at')
  end
end

-- what a merge added from ``src`` (absorbed[src]); a customer's own snapshot records nothing
local function load_rec(src, own)
  local rec = {orders = {}, message_ids = {}, events = {}, support = {}}
  if own then return rec end
  local prev = redis.call('HGET', KEYS[6], src)
  if prev then
    local old = cjson.decode(prev)
    for k, _ in pairs(rec) do if type(old[k]) == 'table' then rec[k] = old[k] end end
  end
  return rec
end

local function save_rec(src, own, rec)
  if own then return end
  if #rec.orders + #rec.message_ids + #rec.events + #rec.support > 0 then
    redis.call('HSET', KEYS[6], src, cjson.encode(rec))
  else
    redis.call('HDEL', KEYS[6], src)
  end
end
"""

# ARGV: source id, own ('1': the customer's own snapshot), orders {field: [json, ms]} (one
# page), catmap. Adds the orders the target lacks (same order id with another body: kept
# under ``<field>~<source>``), counts them in the traits, records them under absorbed[source].
ABSORB_ORDERS = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local catmap = decode_catmap(ARGV[4])
local todo, ps = {}, {}
for field, item in pairs(cjson.decode(ARGV[3])) do
  local body, ms = item[1], item[2]
  local target = field
  local cur = redis.call('HGET', KEYS[1], target)
  if cur and cur ~= body then
    target = field .. '~' .. src  -- same order id, another body: keep both
    cur = redis.call('HGET', KEYS[1], target)
  end
  if not cur then
    local p = cjson.decode(body)
    todo[#todo + 1] = {target, body, ms}
    ps[#ps + 1] = p
  end
end
local missing = missing_of(ps, catmap)
if #missing > 0 then return missing end
if #todo == 0 then return {} end
local rec, acc = load_rec(src, own), new_acc()
for i, t in ipairs(todo) do
  redis.call('HSET', KEYS[1], t[1], t[2])
  redis.call('ZADD', KEYS[2], t[3], t[1])
  count_order(ps[i], 1, catmap, KEYS[7], acc)
  if not own then table.insert(rec.orders, t[1]) end
end
flush(acc, KEYS[7], KEYS[8])
purchase_bounds(KEYS[7])
save_rec(src, own, rec)
return {}
"""
)

# ARGV: source id, own, message ids {id: ms} (one page), support {contact id: json}, absorbed
#       {source: json}. Adds what the target lacks and records it (not own).
ABSORB_REST = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local rec = load_rec(src, own)
for mid, ms in pairs(cjson.decode(ARGV[3])) do
  if redis.call('ZADD', KEYS[4], 'NX', ms, mid) == 1 then table.insert(rec.message_ids, mid) end
end
for cid, body in pairs(cjson.decode(ARGV[4])) do
  if redis.call('HSETNX', KEYS[5], cid, body) == 1 then table.insert(rec.support, cid) end
end
if own then
  for s, body in pairs(cjson.decode(ARGV[5])) do redis.call('HSETNX', KEYS[6], s, body) end
end
save_rec(src, own, rec)
return 0
"""
)

# The events stream is rebuilt in id order (the caller merges the target's entries with the
# incoming ones) into KEYS[9], a page per call, then swapped in.
# ARGV: '1' on the first page (KEYS[9] starts empty), entries [[id, [field, value, ...]]].
EVENTS_PAGE = r"""
if ARGV[1] == '1' then redis.call('DEL', KEYS[9]) end
for _, e in ipairs(cjson.decode(ARGV[2])) do redis.call('XADD', KEYS[9], e[1], unpack(e[2])) end
return 0
"""

# ARGV: source id, own, the last target entry id the caller read ('0-0': none), message ids
#       added [..], their latest at_ms|'' and at, events cap. Copies the entries that arrived
#       since the caller read the stream, swaps the rebuilt stream in, trims it to the cap and
#       records what was added (not own).
EVENTS_SWAP = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
if redis.call('EXISTS', KEYS[9]) == 0 then return 0 end
for _, e in ipairs(redis.call('XRANGE', KEYS[3], '(' .. ARGV[3], '+')) do
  local ok = redis.pcall('XADD', KEYS[9], e[1], unpack(e[2]))
  if type(ok) == 'table' and ok.err then redis.call('XADD', KEYS[9], '*', unpack(e[2])) end
end
redis.call('RENAME', KEYS[9], KEYS[3])
redis.call('XTRIM', KEYS[3], 'MAXLEN', tonumber(ARGV[7]))
local last = redis.call('HGET', KEYS[7], 'last_event_ms')
if ARGV[5] ~= '' and (not last or tonumber(ARGV[5]) > tonumber(last)) then
  redis.call('HSET', KEYS[7], 'last_event_ms', ARGV[5], 'last_event_at', ARGV[6])
end
local rec = load_rec(src, own)
for _, m in ipairs(cjson.decode(ARGV[4])) do table.insert(rec.events, m) end
save_rec(src, own, rec)
return 1
"""
)

# ARGV: entry ids [..] (one page), '1' on the last page, then the latest at_ms|'' and at of
# the entries left (the caller read them). Deletes those entries of the events stream.
EVENTS_DELETE = r"""
local ids = cjson.decode(ARGV[1])
if #ids > 0 then redis.call('XDEL', KEYS[3], unpack(ids)) end
if ARGV[2] == '1' then
  if redis.call('XLEN', KEYS[3]) == 0 then redis.call('DEL', KEYS[3]) end
  if ARGV[3] ~= '' then
    redis.call('HSET', KEYS[7], 'last_event_ms', ARGV[3], 'last_event_at', ARGV[4])
  else
    redis.call('HDEL', KEYS[7], 'last_event_ms', 'last_event_at')
  end
end
return 0
"""

# ARGV: source id, own, fields [..] (one page), bodies {field: json} (own: only a field that
# still holds this body is taken out), catmap. Not own: only fields absorbed[source] lists are
# taken out, and dropped from that record (forgotten once empty).
REMOVE_ORDERS = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local catmap = decode_catmap(ARGV[5])
local rec = load_rec(src, own)
local listed = {}
for i, f in ipairs(rec.orders) do listed[f] = true end
local expect = cjson.decode(ARGV[4])
local todo, ps, drop = {}, {}, {}
for _, field in ipairs(cjson.decode(ARGV[3])) do
  local cur = redis.call('HGET', KEYS[1], field)
  local ok
  if own then ok = cur ~= false and cur == expect[field] else ok = listed[field] end
  if ok then
    drop[field] = true
    if cur then
      todo[#todo + 1] = field
      ps[#ps + 1] = cjson.decode(cur)
    end
  end
end
local missing = missing_of(ps, catmap)
if #missing > 0 then return missing end
local acc = new_acc()
for i, field in ipairs(todo) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
  count_order(ps[i], -1, catmap, KEYS[7], acc)
end
flush(acc, KEYS[7], KEYS[8])
if not own then
  local keep = {}
  for _, f in ipairs(rec.orders) do if not drop[f] then keep[#keep + 1] = f end end
  rec.orders = keep
  save_rec(src, own, rec)
end
if #todo > 0 then purchase_bounds(KEYS[7]) end
return {}
"""
)

# ARGV: source id, own, message ids [..] (own; one page), support {contact id: json} (own),
#       absorbed {source: json} (own), page size (not own). Not own: takes out the support
#       contacts absorbed[source] lists, forgets its events (the caller deleted them), and
#       takes out up to a page of its message ids. Returns how many recorded message ids are
#       left (call again while > 0).
REMOVE_REST = (
    _HELPERS
    + r"""
local src, own = ARGV[1], ARGV[2] == '1'
local mids, contacts, more = {}, {}, 0
if own then
  mids = cjson.decode(ARGV[3])
  for cid, body in pairs(cjson.decode(ARGV[4])) do
    if redis.call('HGET', KEYS[5], cid) == body then contacts[#contacts + 1] = cid end
  end
  for s, body in pairs(cjson.decode(ARGV[5])) do
    if redis.call('HGET', KEYS[6], s) == body then redis.call('HDEL', KEYS[6], s) end
  end
else
  local rec = load_rec(src, false)
  local limit, rest = tonumber(ARGV[6]), {}
  for i, m in ipairs(rec.message_ids) do
    if i <= limit then mids[#mids + 1] = m else rest[#rest + 1] = m end
  end
  contacts = rec.support
  rec.message_ids, rec.events, rec.support = rest, {}, {}
  more = #rest
  save_rec(src, false, rec)
end
for _, mid in ipairs(mids) do redis.call('ZREM', KEYS[4], mid) end
for _, cid in ipairs(contacts) do redis.call('HDEL', KEYS[5], cid) end
return more
"""
)

# ARGV: fields [..] (one page of order_times, read by the caller), catmap. Counts those
# orders into the rebuild keys 9/10 (the caller empties them first).
RECOMPUTE_PAGE = (
    _HELPERS
    + r"""
local catmap = decode_catmap(ARGV[2])
local fields = cjson.decode(ARGV[1])
local ps = {}
if #fields > 0 then
  for _, body in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
    if body then ps[#ps + 1] = cjson.decode(body) end
  end
end
local missing = missing_of(ps, catmap)
if #missing > 0 then return missing end
local acc = new_acc()
for _, p in ipairs(ps) do count_order(p, 1, catmap, KEYS[9], acc) end
flush(acc, KEYS[9], KEYS[10])
redis.call('HSETNX', KEYS[9], 'rebuild', '1')
return {}
"""
)

# The rebuilt counters replace the traits (bounds re-read); no ARGV.
RECOMPUTE_FINISH = (
    _HELPERS
    + r"""
redis.call('DEL', KEYS[7], KEYS[8])
if redis.call('EXISTS', KEYS[9]) == 1 then redis.call('RENAME', KEYS[9], KEYS[7]) end
if redis.call('EXISTS', KEYS[10]) == 1 then redis.call('RENAME', KEYS[10], KEYS[8]) end
redis.call('HDEL', KEYS[7], 'rebuild')
purchase_bounds(KEYS[7])
event_bounds(KEYS[7])
return 0
"""
)
