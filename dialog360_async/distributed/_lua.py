"""The Lua scripts that keep the shared state consistent: each runs atomically inside Redis.

Times are seconds as decimal strings. A script given an empty time reads the Redis server's
clock (``TIME``), so every worker paces against one clock whatever its own says; tests pass the
time explicitly. Floats are stored with ``%.17g`` so that a value read back is the value written.
"""

from __future__ import annotations

# Shared by the bucket scripts: the clock, and the adaptive rate recovered by time (CUBIC, as in
# the local RateLimiter: concave back to the rate before the last cut, then convex above it).
_BUCKET_PRELUDE = """
local function now_or_server(arg)
  local now = tonumber(arg)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.17g', x) end
local C = 0.4
local function state(key, conf, now)
  local s = redis.call('HMGET', key, 'tat', 'rate', 'cut', 'wmax', 'k', 'conf')
  local st = {tat = tonumber(s[1]), rate = tonumber(s[2]), cut = tonumber(s[3]),
              wmax = tonumber(s[4]), k = tonumber(s[5])}
  if tonumber(s[6]) ~= conf or not st.rate then
    st.rate = conf; st.cut = nil; st.wmax = nil; st.k = nil
  end
  if st.cut and st.rate < conf and now > st.cut then
    local target = C * (now - st.cut - st.k) ^ 3 + st.wmax
    if target > st.rate then st.rate = math.min(conf, target) end
  end
  return st
end
"""

RESERVE = (
    _BUCKET_PRELUDE
    + """
-- KEYS[1] bucket; ARGV: now, configured rate, burst at that rate, ttl ms
-- Reserves the next permit (GCRA) and returns {seconds to wait for it, current rate}.
local now = now_or_server(ARGV[1])
local conf = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local st = state(KEYS[1], conf, now)
local interval = 1 / st.rate
local tolerance = (math.max(1, burst * st.rate / conf) - 1) * interval
local tat = st.tat or now
local at = math.max(now, tat - tolerance)
redis.call('HSET', KEYS[1], 'tat', fmt(math.max(tat, now) + interval), 'rate', fmt(st.rate),
           'conf', fmt(conf))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {fmt(at - now), fmt(st.rate)}
"""
)

CUT = (
    _BUCKET_PRELUDE
    + """
-- KEYS[1] bucket; ARGV: now, configured rate, factor, min rate, window s, ttl ms
-- Multiplies the rate by factor, at most once per window; returns {1 if cut, current rate}.
local now = now_or_server(ARGV[1])
local conf = tonumber(ARGV[2])
local st = state(KEYS[1], conf, now)
if st.cut and now - st.cut < tonumber(ARGV[5]) then
  return {0, fmt(st.rate)}
end
local floor = math.min(tonumber(ARGV[4]), conf)
local rate = math.max(floor, st.rate * tonumber(ARGV[3]))
local k = ((st.rate - rate) / C) ^ (1 / 3)
redis.call('HSET', KEYS[1], 'rate', fmt(rate), 'cut', fmt(now), 'wmax', fmt(st.rate),
           'k', fmt(k), 'conf', fmt(conf))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {1, fmt(rate)}
"""
)

# Ledger entries are JSON: s(tate), o(wner token of the claim), c(hannel), t(ime), id, code.
# Counts live in a second hash: "<state>" and "<state>:<channel>".
_LEDGER_PRELUDE = """
local function count(key, state, channel, by)
  redis.call('HINCRBY', key, state, by)
  redis.call('HINCRBY', key, state .. ':' .. channel, by)
end
"""

CLAIM = (
    _LEDGER_PRELUDE
    + """
-- KEYS: ledger, counts, campaign meta; ARGV: message key, owner token, channel, now
-- Returns nil to go ahead, else the state that forbids sending.
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('CAMPAIGN_LOST campaign state is missing')
end
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  local e = cjson.decode(raw)
  if e.s == 'attempting' and e.o == ARGV[2] then
    return false -- our own claim, retried after its reply was lost
  end
  if e.s == 'sent' or e.s == 'unknown' then return e.s end
  if e.s == 'attempting' then
    -- Claimed by a worker that never settled it: in doubt for good, unless that worker is
    -- still alive and settles it (it keeps its owner token for that).
    e.s = 'unknown'
    e.t = ARGV[4]
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
    count(KEYS[2], 'attempting', e.c, -1)
    count(KEYS[2], 'unknown', e.c, 1)
    return 'attempting'
  end
  count(KEYS[2], e.s, e.c, -1) -- failed or cancelled: free to try again
end
local entry = {s = 'attempting', o = ARGV[2], c = ARGV[3], t = ARGV[4]}
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(entry))
count(KEYS[2], 'attempting', ARGV[3], 1)
return false
"""
)

SETTLE = (
    _LEDGER_PRELUDE
    + """
-- KEYS: ledger, counts; ARGV: message key, owner token, state, message id, code, now
-- Records the outcome of our claim; returns 0 if the claim is not ours (any more).
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local e = cjson.decode(raw)
if e.o ~= ARGV[2] then return 0 end
if e.s ~= ARGV[3] then
  count(KEYS[2], e.s, e.c, -1)
  count(KEYS[2], ARGV[3], e.c, 1)
end
e.s = ARGV[3]
e.t = ARGV[6]
if ARGV[4] ~= '' then e.id = ARGV[4] end
if ARGV[5] ~= '' then e.code = tonumber(ARGV[5]) end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
return 1
"""
)

REGISTER_BATCH = """
-- KEYS: campaign meta, batches; ARGV: batch id, message count
-- Returns 1 for a new batch, 0 if it was registered before (a reattached producer).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply('CAMPAIGN_LOST campaign state is missing')
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'messages', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'batches', 1)
return 1
"""

FINISH_BATCH = """
-- KEYS: campaign meta, done set; ARGV: batch id. Counts each batch once.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'batches_done', 1)
  return 1
end
return 0
"""

# Resets the idle time of the stream entries this consumer still owns, so that no other worker
# reclaims a batch that is merely long-running. XPENDING with a consumer filter makes sure an
# entry someone else has reclaimed meanwhile is left with them.
TOUCH = """
-- KEYS[1] stream; ARGV: group, consumer, entry ids...
local touched = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""
