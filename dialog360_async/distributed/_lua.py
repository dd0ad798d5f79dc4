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
-- Reserves the next permit of st (GCRA, burst permits at the configured rate); when it is due.
local function reserve(st, now, conf, burst)
  local interval = 1 / st.rate
  local tolerance = (math.max(1, burst * st.rate / conf) - 1) * interval
  local tat = st.tat or now
  st.tat = math.max(tat, now) + interval
  return math.max(now, tat - tolerance)
end
local function store(key, st, conf, ttl)
  redis.call('HSET', key, 'tat', fmt(st.tat), 'rate', fmt(st.rate), 'conf', fmt(conf))
  redis.call('PEXPIRE', key, ttl)
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
local at = reserve(st, now, conf, burst)
store(KEYS[1], st, conf, ARGV[4])
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

# Ledger entries are JSON: s(tate), o(wner token of the claim), c(hannel), t(ime), id, code, and
# the delivery facts of status webhooks: d (the highest status by rank) and f (the code of the
# first `failed` status, '' without one; never cleared). Counts live in a second hash:
# "<state>" and "<state>:<channel>", and the delivery counts of the messages that reached
# WhatsApp (sent, or unknown and settled by a status): "delivered", "read", "undelivered",
# "unknown_settled" (each also per channel) and "undelivered#<code>".
# A message id's hash (keys.wamid_key) holds "s:<status>" and "m" dedup marks, "k" (its
# "<campaign>:<message key>") and, while no ledger entry is known for it, orphan facts d and f.
_LEDGER_PRELUDE = """
local RANK = {sent = 1, delivered = 2, read = 3, played = 4}
-- A script over many entries sums its counts in `tally` and writes each field once (flush).
local tally = nil
local function count(key, state, channel, by)
  if tally then
    local f = state .. ':' .. channel
    tally[state] = (tally[state] or 0) + by
    tally[f] = (tally[f] or 0) + by
    return
  end
  redis.call('HINCRBY', key, state, by)
  redis.call('HINCRBY', key, state .. ':' .. channel, by)
end
local function flush(key)
  for field, by in pairs(tally) do redis.call('HINCRBY', key, field, by) end
  tally = nil
end
local function copy(e)
  local c = {}
  for k, v in pairs(e) do c[k] = v end
  return c
end
-- Delivery facts d, f (nil or false: none) folded into t; whether t changed.
local function fold(t, d, f)
  local changed = false
  if d and (RANK[d] or 0) > (RANK[t.d] or 0) then t.d = d; changed = true end
  if f and not t.f then t.f = f; changed = true end
  return changed
end
local function facts(e)
  local out = {}
  if not (e.d or e.f) then return out end
  if e.s == 'unknown' then out.unknown_settled = true end
  if e.s == 'unknown' or e.s == 'sent' then
    local r = RANK[e.d] or 0
    if r >= 2 then out.delivered = true end
    if r >= 3 then out.read = true end
    if e.f then out.undelivered = true end
  end
  return out
end
-- Moves the delivery counts of an entry from its state before to its state after a write.
local function retally(key, before, after)
  local old, new = facts(before), facts(after)
  local moved = before.c ~= after.c
  for name in pairs(old) do
    if moved or not new[name] then count(key, name, before.c, -1) end
  end
  for name in pairs(new) do
    if moved or not old[name] then count(key, name, after.c, 1) end
  end
  if old.undelivered and not new.undelivered then
    redis.call('HINCRBY', key, 'undelivered#' .. before.f, -1)
  elseif new.undelivered and not old.undelivered then
    redis.call('HINCRBY', key, 'undelivered#' .. after.f, 1)
  end
end
local function keep(key, ttl)
  if redis.call('TTL', key) < tonumber(ttl) then redis.call('EXPIRE', key, ttl) end
end
-- Moves the orphan facts of a message id's hash into entry e; whether e changed.
local function adopt(wamid, e)
  local o = redis.call('HMGET', wamid, 'd', 'f')
  if not (o[1] or o[2]) then return false end
  redis.call('HDEL', wamid, 'd', 'f')
  return fold(e, o[1], o[2])
end
"""

LEDGER = (
    _BUCKET_PRELUDE
    + _LEDGER_PRELUDE
    + """
-- One call for what a ledger asked for meanwhile: outcomes first (a `sent` one with its message
-- id: the id now names the key, and its orphan statuses are applied), then claims, each after
-- its rate permit (when paced), none before it is due.
-- KEYS: ledger, counts, campaign meta, tags, then the bucket when paced. ARGV: channel, now,
-- ttl, "<campaign>:", the prefix of a message id's hash, bucket now, configured rate ('' when
-- not paced), burst, bucket ttl ms, then two JSON arrays: the outcomes, as [message key,
-- owner token, state, message id, code], and the claims, as [key, owner token, tag digest,
-- paid] (paid: its permit was reserved by an earlier call). One argument per array and one
-- JSON reply, not an argument per field and a reply element per message: the client's
-- encoding and parsing of each was most of a message's ledger cost in a worker; and one call,
-- not one for each kind, halves the round trips. Not cluster-safe: the message ids' hashes
-- are named inside the script (as a key each in KEYS, their encoding was the dearest part of
-- a call), and they live in other slots than the campaign's anyway.
-- Returns a JSON array: per outcome 1, or 0 if the claim is not ours (any more); per claim a
-- verdict: '' claimed (go ahead); 'sent', 'unknown' or 'attempting' (refused, no permit
-- spent); 'w:<s>' (its permit is reserved, due in s seconds: call again then, paid); 'l:<s>'
-- (behind that one: no permit yet, call again in s seconds); then the current rate.
local settles, claims = cjson.decode(ARGV[10]), cjson.decode(ARGV[11])
if #claims > 0 and redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('CAMPAIGN_LOST campaign state is missing')
end
local channel, stamp, ttl = ARGV[1], ARGV[2], ARGV[3]
tally = {}
local out = {}
for _, r in ipairs(settles) do
  local key, token, state = r[1], r[2], r[3]
  local raw = redis.call('HGET', KEYS[1], key)
  local e = raw and cjson.decode(raw)
  if not e or e.o ~= token then
    out[#out + 1] = 0
  else
    local before = copy(e)
    if e.s ~= state then
      count(KEYS[2], e.s, e.c, -1)
      count(KEYS[2], state, e.c, 1)
    end
    e.s = state
    e.t = stamp
    if r[4] ~= '' then e.id = r[4] end
    if r[5] ~= '' then e.code = tonumber(r[5]) end
    if state == 'sent' and r[4] ~= '' then
      local wamid = ARGV[5] .. r[4]
      redis.call('HSET', wamid, 'k', ARGV[4] .. key)
      keep(wamid, ttl)
      adopt(wamid, e)
    end
    redis.call('HSET', KEYS[1], key, cjson.encode(e))
    retally(KEYS[2], before, e)
    out[#out + 1] = 1
  end
end
local bucket, st, now, conf, burst = nil, nil, nil, nil, nil
if ARGV[7] ~= '' and #claims > 0 then
  bucket = KEYS[5]
  now = now_or_server(ARGV[6])
  conf, burst = tonumber(ARGV[7]), tonumber(ARGV[8])
  st = state(bucket, conf, now)
end
local head, reserved, tagged = nil, false, false
for _, claim in ipairs(claims) do
  local key, token, digest, paid = claim[1], claim[2], claim[3], claim[4]
  local raw = redis.call('HGET', KEYS[1], key)
  local e = raw and cjson.decode(raw)
  local verdict = nil
  if e and e.s == 'attempting' and e.o == token then
    verdict = '' -- our own claim, retried after its reply was lost
  elseif e and (e.s == 'sent' or e.s == 'unknown') then
    verdict = e.s
  elseif e and e.s == 'attempting' then
    -- Claimed by a worker that never settled it: in doubt for good, unless that worker is
    -- still alive and settles it (it keeps its owner token for that).
    local before = copy(e)
    e.s = 'unknown'
    e.t = stamp
    redis.call('HSET', KEYS[1], key, cjson.encode(e))
    count(KEYS[2], 'attempting', e.c, -1)
    count(KEYS[2], 'unknown', e.c, 1)
    retally(KEYS[2], before, e)
    verdict = 'attempting'
  elseif bucket and not paid then
    if head then
      verdict = 'l:' .. fmt(head)
    else
      local at = reserve(st, now, conf, burst)
      reserved = true
      if at > now then
        head = at - now
        verdict = 'w:' .. fmt(head)
      end
    end
  end
  if verdict == nil then
    local entry = {s = 'attempting', o = token, c = channel, t = stamp}
    if e then
      count(KEYS[2], e.s, e.c, -1) -- failed or cancelled: free to try again
      entry.d = e.d
      entry.f = e.f
    end
    redis.call('HSET', KEYS[1], key, cjson.encode(entry))
    count(KEYS[2], 'attempting', channel, 1)
    redis.call('HSET', KEYS[4], digest, key)
    tagged = true
    verdict = ''
  end
  out[#out + 1] = verdict
end
flush(KEYS[2])
if tagged then keep(KEYS[4], ttl) end
if reserved then store(bucket, st, conf, ARGV[9]) end
out[#out + 1] = st and fmt(st.rate) or ''
return cjson.encode(out)
"""
)

# Not cluster-safe: the keys a status touches (its campaign's) are found inside the script.
RECORD = (
    _LEDGER_PRELUDE
    + """
-- ARGV: prefix, ttl, number of statuses n, then 5 values per status: message id, status, failure
-- code, tag campaign, tag digest ('' when absent), then the ids of inbound messages. Returns
-- 1 (first seen) or 0 (a duplicate) for each status, then for each message.
local P, ttl, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local function deliver(w, id, d, f, tag_campaign, digest)
  local k = redis.call('HGET', w, 'k')
  local campaign, key, learned
  if k then
    local at = string.find(k, ':', 1, true)
    campaign, key = string.sub(k, 1, at - 1), string.sub(k, at + 1)
  elseif tag_campaign ~= '' then
    key = redis.call('HGET', P .. ':campaign:' .. tag_campaign .. ':tags', digest)
    if key then campaign, learned = tag_campaign, true end
  end
  local ledger = campaign and P .. ':campaign:' .. campaign .. ':ledger'
  local raw = ledger and redis.call('HGET', ledger, key)
  local ok, e = false, nil
  if raw then ok, e = pcall(cjson.decode, raw) end
  if not ok then -- an orphan (or its campaign is gone): kept until its id names a key
    local o = redis.call('HMGET', w, 'd', 'f')
    local t = {d = o[1], f = o[2]}
    if fold(t, d, f) then
      if t.d then redis.call('HSET', w, 'd', t.d) end
      if t.f then redis.call('HSET', w, 'f', t.f) end
    end
    return
  end
  local before = copy(e)
  local changed = fold(e, d, f)
  if learned then -- the tag named the key: so does the id from now on
    redis.call('HSET', w, 'k', campaign .. ':' .. key)
    if not e.id then e.id = id; changed = true end
    if adopt(w, e) then changed = true end
  end
  if changed then
    redis.call('HSET', ledger, key, cjson.encode(e))
    retally(P .. ':campaign:' .. campaign .. ':counts', before, e)
  end
end
for i = 0, n - 1 do
  local b = 4 + 5 * i
  local id, status = ARGV[b], ARGV[b + 1]
  local w = P .. ':wamid:' .. id
  if redis.call('HSETNX', w, 's:' .. status, '1') == 1 then
    keep(w, ttl)
    out[#out + 1] = 1
    if status == 'failed' then
      deliver(w, id, nil, ARGV[b + 2], ARGV[b + 3], ARGV[b + 4])
    elseif RANK[status] then
      deliver(w, id, status, nil, ARGV[b + 3], ARGV[b + 4])
    end
  else
    out[#out + 1] = 0
  end
end
for j = 4 + 5 * n, #ARGV do
  local w = P .. ':wamid:' .. ARGV[j]
  if redis.call('HSETNX', w, 'm', '1') == 1 then
    keep(w, ttl)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
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
-- KEYS: campaign meta, done set, then the campaign's other keys; ARGV: batch id[, ttl]. Counts
-- each batch once; with a ttl, the campaign's keys (its tags too) expire that long after.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local new = redis.call('SADD', KEYS[2], ARGV[1])
if new == 1 then redis.call('HINCRBY', KEYS[1], 'batches_done', 1) end
if ARGV[2] then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
  redis.call('EXPIRE', (string.gsub(KEYS[1], ':meta$', ':tags')), ARGV[2])
end
return new
"""

ACK = """
-- KEYS[1] stream; ARGV: group, entry id. A finished batch's message: acknowledged and deleted.
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
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
