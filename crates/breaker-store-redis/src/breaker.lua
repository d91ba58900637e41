-- One breaker's record-and-decide step, atomic in Redis. It mirrors breaker-core's
-- `Circuit` (circuit.rs) and `BucketWindow` (window.rs) decision for decision; the
-- differential test in tests/redis.rs drives both with the same events and demands
-- identical answers. Keep the two in step.
--
-- KEYS[1]  the breaker's hash: its packed state (fields `s` and `x`), probe leases (`pr`),
--          reporters (`rp`) and the window's buckets (`t<i>`, `c<i>`, `f<i>`).
-- KEYS[2]  the breaker's history: a stream of its transitions and operator actions.
--
-- The arguments, declared once: src/script/argv.rs builds them in this order, and a test
-- there checks that the names unpacked below are its names, in its order.
-- ARGV[ARG_OP]       acquire | record | batch | snapshot | window | trip | reset | override
-- ARGV[ARG_NUMBERS]  every number the script takes, as little-endian doubles (what Lua's
--                    tonumber would make of them, without parsing text on each call), then
--                    the text: for record and batch the reporter, for trip, reset and
--                    override the actor. Each argument costs Redis about a thousand
--                    instructions, so there are two. The numbers: now (ms; -1: the
--                    server's clock, TIME), what the closed path needs of the policy and the
--                    store (bucket_ms buckets idle_ttl), the op's own numbers (op1..op5):
--   record: generation kind(0 normal, 1 probe) ticket outcome(0 success, 1 failure,
--           2 ignored) retry_after_ms(0: none)
--   batch: generation successes failures
--   override: mode(0 auto, 1 forced-open, 2 forced-closed) duration_ms(-1 forever)
--                    then the rest of the policy (unpacked by the general way only).
local ARG_OP, ARG_NUMBERS = 1, 2
local now, bucket_ms, buckets, idle_ttl, op1, op2, op3, op4, op5 =
  struct.unpack('<ddddddddd', ARGV[ARG_NUMBERS])
--
-- Every reply starts with the op's own values and ends with the state the caller caches:
-- state(0 closed, 1 open, 2 half-open) + 4 * override + 16 * repaired, generation,
-- open_until, now, epoch, sequence, calls, failures, override_until(0: none),
-- closed_by_probes_at(0: not since the last close, which was a reset). A record or batch
-- that made no transition starts with a single 0. From the hot path, while closed, it is
-- short: generation now epoch sequence calls failures closed_by_probes_at (closed, no
-- override, nothing repaired, open_until left out: only an open breaker's is read), and its
-- length tells it apart. Every reply but the window's is one string: its values packed as
-- little-endian doubles ('d': the Lua numbers themselves, whole numbers below 2^53), in the
-- order above (src/script/argv.rs declares the same, src/script.rs reads it back): an array
-- reply costs Redis about 9k instructions, a packed one about 3k. The sequence
-- grows at each write, so a process can tell a newer reply from an older one whatever the
-- clocks say. The epoch names this life of the key: it is drawn when the key is created, so
-- a key lost (Redis restarted empty, FLUSHDB, eviction, expiry) comes back with another one
-- and processes know to take its state even though its generation went back to 0.
-- `repaired` counts the values that held garbage and were repaired in place.
-- `calls` and `failures` are the window's running totals as of the last write.
--
-- The state: two hash fields of little-endian whole numbers (struct.pack), each read and
-- written whole: unpacking them costs Redis far less than reading fields one by one and
-- turning text into numbers. Each stays within 64 bytes, so a hash of up to 512 fields
-- keeps Redis's compact encoding (a listpack).
--   s (HOT, what the closed path reads): flags (st + 4 * ov + 16 * k), gen, ou, ep, sq,
--     tc, tf, wb, xp, ca (whole numbers of 1 to 7 bytes: 60 in all)
--   x (COLD): om, sc, tk, ovu, qs (doubles)
-- st: 0 closed, 1 open, 2 half-open; ov, ovu: override (0 auto, 1 forced-open, 2
-- forced-closed) and its end (0: none); k: 1 when slot wb % buckets is known to hold bucket
-- wb (so counting in it needs no read of its tag); gen: generation; ou, om: open until and
-- the open period; sc: probe successes; tk: last ticket; ep: epoch; sq: sequence; tc, tf,
-- wb: running totals and the bucket they were brought to; xp: when the expiry was last set;
-- ca: closed by probes at; qs: bucket the quorum was last said short.
--
-- Cost: the window keeps running totals (tc, tf) of every bucket newer than the last bucket
-- synced (wb) minus `buckets`; each call expires only the buckets that left the window since
-- the last one, so the closed path is a handful of hash operations whatever `buckets` is.
-- Answers that change nothing (a rejection while open, probes busy, forced open, a report
-- from an earlier cycle) write nothing.

local key = KEYS[1]
local op = ARGV[ARG_OP]
local floor = math.floor

if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + floor(tonumber(t[2]) / 1000)
end

-- (tests/common/mod.rs reads the two lines below to read and corrupt the state.)
local HOT, HOT_BYTES = '<BI6I7I7I6I6I6I7I7I7', 60 -- s: flags gen ou ep sq tc tf wb xp ca
local COLD, COLD_BYTES = '<ddddd', 40 -- x: om sc tk ovu qs
local MAX_WHOLE = 9007199254740992
-- The hot path's replies, packed: while closed (SHORT), and otherwise (no transition, then
-- the tail).
local SHORT = '<ddddddd' -- gen now ep sq tc tf ca
local NO_TRANSITION = '<ddddddddddd'

-- The hot path: counting calls of the current cycle in the current bucket (a record of an
-- ordinary call's outcome, or a batch) when nothing trips makes no transition. It runs before
-- anything else is defined, reads the packed state and the bucket's counters with one HMGET,
-- and writes them with one HSET: each command, each value and each closure a script handles
-- costs Redis hundreds to thousands of instructions, so it does as little as it can. A failure
-- takes it when its reporter is the one the window already names for this bucket (so there is
-- nothing to note) and the trip rule is not met. Anything else (a bucket whose tag is not
-- known, an expiry to renew, an override, a trip, a value missing or unreadable, an error)
-- goes the general way below, which decides the same (the differential test checks both).
local calls, failures
if op == 'record' and op2 == 0 and op5 == 0 then
  calls, failures = 1, 0
  if op4 == 1 then failures = 1 elseif op4 == 2 then calls = 0 end
elseif op == 'batch' then
  calls, failures = op2 + op3, op3
end
if calls then
  local bucket = floor(now / bucket_ms)
  local slot = bucket % buckets
  local counter, v = string.format('c%d', slot), nil
  if failures > 0 then
    v = redis.pcall('HMGET', key, 's', counter, string.format('f%d', slot), 'rp')
  else
    v = redis.pcall('HMGET', key, 's', counter)
  end
  local hot = v[1]
  if type(hot) == 'string' and #hot == HOT_BYTES then
    local flags, gen, ou, ep, sq, tc, tf, wb, xp, ca = struct.unpack(HOT, hot)
    -- No override (its end is in x), and nothing the general way would repair (the values
    -- are whole numbers >= 0; their sum bounds each of them).
    local st = flags % 16
    if st <= 2 and flags <= 18 and ep ~= 0 and tc >= tf
        and ou + ep + wb + xp + ca < MAX_WHOLE then
      -- The reply: no transition, then the tail. While closed, the short form: what is
      -- implied (closed, no override, nothing repaired; the open time is not read) is left
      -- out, as each value of a reply costs Redis a few hundred instructions even packed.
      if gen ~= op1 or calls <= 0 then
        if st == 0 then return struct.pack(SHORT, gen, now, ep, sq, tc, tf, ca) end
        return struct.pack(NO_TRANSITION, 0, st, gen, ou, now, ep, sq, tc, tf, 0, ca)
      end
      -- A counter longer than any whole number below 2^53 is garbage, whatever it holds: it
      -- is never parsed (the general way repairs it).
      local c, f = v[2], 0
      if c and #c < 17 then c = tonumber(c) else c = nil end
      if failures > 0 then
        f = v[3]
        if f and #f < 17 then f = tonumber(f) else f = nil end
      end
      local known = flags >= 16 and bucket == wb and now + idle_ttl <= xp + idle_ttl / 64
        and c and c >= 0 and c % 1 == 0 and c + calls < MAX_WHOLE
        and f and f >= 0 and f % 1 == 0 and f + failures < MAX_WHOLE
      tc, tf = tc + calls, tf + failures
      if known and failures > 0 then
        local reporter = string.sub(ARGV[ARG_NUMBERS], 161)
        known = reporter ~= '' and v[4] == reporter .. string.format(':%d', bucket)
          and not string.find(reporter, '[:,]')
        if known and st == 0 then
          local rate, min_failures, min_calls = struct.unpack('<ddd', ARGV[ARG_NUMBERS], 73)
          known = not (tf >= min_failures and tc >= min_calls and tf * 100 >= rate * tc)
        end
      end
      if known then
        sq = sq + 1
        hot = struct.pack(HOT, flags, gen, ou, ep, sq, tc, tf, wb, xp, ca)
        if failures > 0 then
          redis.call('HSET', key, 's', hot, counter, string.format('%d', c + calls),
            string.format('f%d', slot), string.format('%d', f + failures))
        else
          redis.call('HSET', key, 's', hot, counter, string.format('%d', c + calls))
        end
        if st == 0 then return struct.pack(SHORT, gen, now, ep, sq, tc, tf, ca) end
        return struct.pack(NO_TRANSITION, 0, st, gen, ou, now, ep, sq, tc, tf, 0, ca)
      end
    end
  end
end

-- The general way: every op, every state.
local rate, min_failures, min_calls, open_ms_policy, max_probes, lease_ms, to_close, backoff,
  max_open_ms, history_len, minimum_reporters =
  struct.unpack('<ddddddddddd', ARGV[ARG_NUMBERS], 73)
local text = string.sub(ARGV[ARG_NUMBERS], 161)

-- The reporter of this call's outcomes, and the quorum the policy asks for.
local reporter, needed = nil, 1
if op == 'record' or op == 'batch' then
  reporter, needed = text, minimum_reporters
end

local CLOSED, OPEN, HALF = 0, 1, 2
local AUTO, FORCED_OPEN, FORCED_CLOSED = 0, 1, 2

local repaired = 0

-- Read-only ops (what operators read) never write, whatever they meet: garbage is reported
-- in the reply, and repaired by the next call that writes.
local readonly = op == 'snapshot' or op == 'window'

-- A value that is missing reads as 0; a whole number >= 0 below 2^53 (and at most `most`)
-- is read as is; anything else is garbage: it reads as nil and counts as repaired. Text
-- longer than any such number (16 digits) is garbage unread: the cost of a value never
-- grows with what a hostile writer stored in it.
local function whole(value, most)
  if not value then return 0 end
  local n = nil
  if type(value) == 'number' or #value < 17 then n = tonumber(value) end
  if n == nil or n ~= n or n < 0 or n ~= floor(n) or n >= 9007199254740992
      or (most and n > most) then
    repaired = repaired + 1
    return nil
  end
  return n
end

local function bucket_of(ms) return floor(ms / bucket_ms) end

-- The longest lists the state keeps: `pr` holds at most 100 probes (the policy's bound on
-- half_open_probes), `rp` at most 16 reporters (on minimum_reporters), each entry two parts
-- of at most 64 bytes (a reporter id) or 16 digits (a whole number below 2^53), a separator
-- and a comma.
local PROBES_MOST, PROBES_BYTES = 100, 100 * 34
local REPORTERS_MOST, REPORTERS_BYTES = 16, 16 * 82

-- The entries of a list `a:b,a:b,...` as {a, b} pairs, or nil when it holds more than `most`
-- entries or `bytes` bytes, or an entry does not parse. Its length is checked before
-- anything is parsed, and each entry is matched on its own, anchored: the cost is linear in
-- a bounded length (a pattern searched over the whole text backtracks quadratically on a
-- long value with no separator, and a 40 KB one would stall Redis for seconds).
local function entries(text, most, bytes)
  if #text > bytes then return nil end
  local list, from, length = {}, 1, #text
  while from <= length do
    local comma = string.find(text, ',', from, true) or length + 1
    local a, b = string.match(string.sub(text, from, comma - 1), '^([^:]+):([^:]+)$')
    if a == nil or #list >= most then return nil end
    list[#list + 1] = {a, b}
    from = comma + 1
  end
  return list
end

-- Who reported the window's failures: at most `minimum_reporters` reporters, each with the
-- bucket of its last failure, as `id:bucket,...`. Enough to tell whether the quorum is met,
-- and bounded whatever the number of processes.
local function reporters_text(reporters)
  local rp = {}
  for _, r in ipairs(reporters) do table.insert(rp, r[1] .. ':' .. r[2]) end
  return table.concat(rp, ',')
end

local function probes_text(probes)
  local pr = {}
  for _, p in ipairs(probes) do table.insert(pr, p[1] .. ':' .. p[2]) end
  return table.concat(pr, ',')
end

-- The state as its two fields.
local function pack(s)
  return struct.pack(HOT, s.st + 4 * s.ov + 16 * s.k, s.gen, s.ou, s.ep, s.sq, s.tc, s.tf,
    s.wb, s.xp, s.ca), struct.pack(COLD, s.om, s.sc, s.tk, s.ovu, s.qs)
end

-- The fields of the layout before the packed state (one value per field), in STATE order.
local OLD_FIELDS = {'st', 'gen', 'ou', 'om', 'sc', 'tk', 'ov', 'ovu', 'ep', 'sq', 'tc', 'tf',
  'wb', 'ca', 'qs', 'xp'}

-- Writes the state if anything changed (or garbage was repaired), and keeps the key while it
-- matters: at least idle_ttl after the last write, longer while an open period or an override
-- with an expiry lasts. Returns whether it wrote.
local function save(s)
  local pr, rp = probes_text(s.probes), reporters_text(s.reporters)
  if repaired == 0 and not s.window_written and pr == s.pr and rp == s.rp then
    local hot, cold = pack(s)
    if hot == s.hot and cold == s.cold then return false end
  end
  s.sq = s.sq + 1
  local ttl = idle_ttl
  if s.st ~= CLOSED and s.ou - now + lease_ms + idle_ttl > ttl then
    ttl = s.ou - now + lease_ms + idle_ttl
  end
  if s.ovu > now and s.ovu - now + idle_ttl > ttl then ttl = s.ovu - now + idle_ttl end
  -- Policies and overrides keep every duration at most 2^50 ms, so this bound never cuts a
  -- real deadline; it keeps PEXPIRE from refusing a value after the state was written.
  if ttl > 9007199254740991 then ttl = 9007199254740991 end
  -- The expiry is renewed when it has drifted by more than 1/64 of idle_ttl, not at each
  -- write: the key lives at least 63/64 of idle_ttl after the last call.
  local expiry = now + ttl
  local renew = expiry > s.xp + idle_ttl / 64 or expiry + idle_ttl < s.xp
  if renew then s.xp = expiry end
  local hot, cold = pack(s)
  local args = {'HSET', key, 's', hot}
  if cold ~= s.cold then
    table.insert(args, 'x')
    table.insert(args, cold)
  end
  if pr ~= s.pr then
    table.insert(args, 'pr')
    table.insert(args, pr)
  end
  if rp ~= s.rp then
    table.insert(args, 'rp')
    table.insert(args, rp)
  end
  -- The current bucket's counters, when they were read with the state (see window_add).
  if s.calls then
    table.insert(args, s.slot_calls)
    table.insert(args, string.format('%d', s.calls))
  end
  if s.failures then
    table.insert(args, s.slot_failures)
    table.insert(args, string.format('%d', s.failures))
  end
  -- HSET first: PEXPIRE on a key that does not exist yet does nothing.
  redis.call(unpack(args))
  if s.old then redis.call('HDEL', key, unpack(OLD_FIELDS)) end
  if renew then redis.call('PEXPIRE', key, floor(ttl)) end
  return true
end

local function free(s)
  if s.ov == AUTO then return s.st == CLOSED end
  return s.ov == FORCED_CLOSED and s.ovu == 0
end

-- A reply of the general way, packed as the hot path's are (at most 18 values).
local function packed(reply)
  return struct.pack('<' .. string.rep('d', #reply), unpack(reply))
end

local function tail(reply, s)
  local n = #reply
  reply[n + 1] = s.st + 4 * s.ov + 16 * repaired
  reply[n + 2] = s.gen
  reply[n + 3] = s.ou
  reply[n + 4] = now
  reply[n + 5] = s.ep
  reply[n + 6] = s.sq
  reply[n + 7] = s.tc
  reply[n + 8] = s.tf
  reply[n + 9] = s.ovu
  reply[n + 10] = s.ca
  return reply
end

-- The window: slot i holds t<i> (bucket + 1), c<i> (calls), f<i> (failures). A bucket counts
-- while `bucket_of(now) < bucket + buckets` (breaker-core's `bucket_is_live`).

-- Every bucket's fields, in slot order: t0 c0 f0 t1 c1 f1 ...
local function bucket_fields()
  local fields = {}
  for i = 0, buckets - 1 do
    table.insert(fields, 't' .. i)
    table.insert(fields, 'c' .. i)
    table.insert(fields, 'f' .. i)
  end
  return fields
end

-- The totals counted again from every bucket: after the clock stepped back or jumped past
-- the whole window, or after garbage.
local function window_recount(s)
  local v = redis.call('HMGET', key, unpack(bucket_fields()))
  local current = bucket_of(now)
  local oldest = current - buckets
  if s.wb ~= current then s.k = 0 end
  local calls, failures = 0, 0
  for i = 0, buckets - 1 do
    local t, c, f = whole(v[3 * i + 1]), whole(v[3 * i + 2]), whole(v[3 * i + 3])
    if t == nil or c == nil or f == nil then
      -- A bucket holding garbage loses its own counts, no more.
      if not readonly then redis.call('HDEL', key, 't' .. i, 'c' .. i, 'f' .. i) end
      if i == current % buckets then s.k = 0 end
    elseif t ~= 0 and t - 1 > oldest then
      calls = calls + c
      failures = failures + f
    end
  end
  s.tc, s.tf, s.wb = calls, failures, current
end

-- Brings the totals to now: only the buckets that left the window since the last sync
-- leave them (usually none or one).
local function window_sync(s)
  local current = bucket_of(now)
  if current < s.wb or current - s.wb >= buckets then
    if current ~= s.wb then window_recount(s) end
    return
  end
  for gone = s.wb - buckets + 1, current - buckets do
    local slot = gone % buckets
    local v = redis.call('HMGET', key, 't' .. slot, 'c' .. slot, 'f' .. slot)
    local t, c, f = whole(v[1]), whole(v[2]), whole(v[3])
    if t == nil or c == nil or f == nil then
      window_recount(s)
      return
    end
    if t == gone + 1 then
      s.tc = s.tc - c
      s.tf = s.tf - f
    end
  end
  if s.wb ~= current then s.wb, s.k = current, 0 end
  if s.tc < 0 or s.tf < 0 or s.tf > s.tc then window_recount(s) end
end

-- Notes that `reporter` reported a failure counted in `bucket`: its entry moves to that
-- bucket, or it takes a free place, or the place of the reporter whose last failure is oldest
-- (if older).
local function note_reporter(s, bucket)
  if not reporter or reporter == '' then return end
  local oldest
  for _, r in ipairs(s.reporters) do
    if r[1] == reporter then
      if bucket > r[2] then r[2] = bucket end
      return
    end
    if oldest == nil or r[2] < oldest[2] then oldest = r end
  end
  if #s.reporters < needed then
    table.insert(s.reporters, {reporter, bucket})
  elseif oldest and oldest[2] < bucket then
    oldest[1], oldest[2] = reporter, bucket
  end
end

-- Distinct reporters whose last failure is still in the window.
local function live_reporters(s)
  local live = 0
  for _, r in ipairs(s.reporters) do
    if bucket_of(now) < r[2] + buckets then live = live + 1 end
  end
  return live
end

-- Counts `calls` calls, `failures` of them failures, in the current bucket.
local function window_add(s, calls, failures)
  window_sync(s)
  local bucket = bucket_of(now)
  local slot = bucket % buckets
  local tag = bucket + 1
  local t = tag
  -- The state knows the slot holds this bucket when this script wrote or read it last (the
  -- totals were just brought to this bucket, so wb is this bucket).
  if s.k ~= 1 then t = whole(redis.call('HGET', key, 't' .. slot)) end
  local counted = false
  if s.k == 1 and s.slot_calls == string.format('c%d', slot) then
    -- The counters were read with the state: they are written with it. One that is not a
    -- whole number is garbage (whole() counts it): the bucket then starts again below.
    local c, f = whole(s.read_calls), 0
    if failures > 0 then f = whole(s.read_failures) end
    if c ~= nil and f ~= nil then
      counted = true
      s.calls = c + calls
      if failures > 0 then s.failures = f + failures end
    end
  elseif t ~= nil and t >= tag then
    -- A counter holding garbage refuses HINCRBY: the bucket then starts again below.
    counted = type(redis.pcall('HINCRBY', key, 'c' .. slot, calls)) == 'number'
    if counted and failures > 0 then
      counted = type(redis.pcall('HINCRBY', key, 'f' .. slot, failures)) == 'number'
    end
    if counted then
      if t == tag then s.k = 1 end
    else
      repaired = repaired + 1
    end
  end
  -- The reporter's failure lives as long as the bucket it was counted in: a newer one when
  -- the clock stepped back (see the test of t above).
  if failures > 0 then
    if counted then note_reporter(s, t - 1) else note_reporter(s, bucket) end
  end
  s.window_written = true
  if counted then
    s.tc = s.tc + calls
    s.tf = s.tf + failures
  else
    -- The slot held a bucket that already left the window (or garbage). A key without the
    -- packed state gets its fields first, so the closed path finds them first.
    if s.hot then
      redis.call('HSET', key, 't' .. slot, tag, 'c' .. slot, calls, 'f' .. slot, failures)
    else
      redis.call('HSET', key, 's', '', 'x', '', 't' .. slot, tag, 'c' .. slot, calls,
        'f' .. slot, failures)
    end
    s.k = 1
    if t == nil or t >= tag then
      window_recount(s)
    else
      s.tc = s.tc + calls
      s.tf = s.tf + failures
    end
  end
end

local history_key = KEYS[2]

-- A new epoch: the server's time in microseconds (below 2^53 until the year 2255).
local function new_epoch()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- One value of garbage costs only that value: each gets the value that keeps the breaker on
-- the safe side (a breaker that cannot say it is closed is treated as open, a probe list that
-- cannot be read frees its slots, unreadable totals are counted again), and the rest of the
-- state is kept. A packed state that cannot be unpacked at all is garbage in every value.
-- A key without the packed state is new, or was written by the layout before it (one field
-- per value): those fields are read this once, and dropped when the state is written.
local function load()
  -- With the current bucket's counters: when the state knows the bucket's tag, a call counts
  -- without another read.
  local slot = string.format('%d', bucket_of(now) % buckets)
  local v = redis.call('HMGET', key, 's', 'x', 'pr', 'rp', 'c' .. slot, 'f' .. slot)
  -- The values in the order of OLD_FIELDS, then k: numbers, text (old layout), 'garbage',
  -- or false (missing).
  local raw = {}
  local hot, cold = v[1], v[2]
  if hot and hot ~= '' then
    if #hot == HOT_BYTES then
      local flags
      flags, raw[2], raw[3], raw[9], raw[10], raw[11], raw[12], raw[13], raw[16], raw[14] =
        struct.unpack(HOT, hot)
      raw[1], raw[7], raw[17] = flags % 4, floor(flags / 4) % 4, floor(flags / 16)
    else
      for i = 1, 17 do
        if i < 4 or i == 7 or (i > 8 and i < 15) or i > 15 then raw[i] = 'garbage' end
      end
    end
    if cold and #cold == COLD_BYTES then
      raw[4], raw[5], raw[6], raw[8], raw[15] = struct.unpack(COLD, cold)
    elseif cold and cold ~= '' then
      for _, i in ipairs({4, 5, 6, 8, 15}) do raw[i] = 'garbage' end
    end
  else
    -- No packed state: a new key, or one written by the layout before it (one field per
    -- value), read this once.
    raw = redis.call('HMGET', key, unpack(OLD_FIELDS))
    for i = 1, #OLD_FIELDS do
      if raw[i] then
        v.old = true
        break
      end
    end
  end
  local s = {
    st = whole(raw[1], HALF), gen = whole(raw[2]), ou = whole(raw[3]), om = whole(raw[4]),
    sc = whole(raw[5]), tk = whole(raw[6]), ov = whole(raw[7], FORCED_CLOSED),
    ovu = whole(raw[8]), ep = whole(raw[9]), sq = whole(raw[10]), tc = whole(raw[11]),
    tf = whole(raw[12]), wb = whole(raw[13]), ca = whole(raw[14]), qs = whole(raw[15]),
    xp = whole(raw[16]), k = whole(raw[17], 1), probes = {}, reporters = {},
    hot = hot ~= '' and hot, cold = cold ~= '' and cold, pr = v[3] or '', rp = v[4] or '',
    old = v.old, slot_calls = 'c' .. slot, slot_failures = 'f' .. slot, read_calls = v[5],
    read_failures = v[6],
  }
  if s.st == nil then s.st = OPEN end
  if s.ou == nil then
    s.ou = 0
    if s.st ~= CLOSED then s.ou = now + open_ms_policy end
  end
  if s.om == nil then s.om = open_ms_policy end
  if s.gen == nil then s.gen = 0 end
  if s.sc == nil then s.sc = 0 end
  if s.tk == nil then s.tk = 0 end
  if s.ov == nil then s.ov = AUTO end
  if s.ovu == nil then s.ovu = now end
  if s.sq == nil then s.sq = 0 end
  if s.xp == nil then s.xp = 0 end
  if s.k == nil then s.k = 0 end
  -- An unreadable close time: no ramp (the breaker is closed either way).
  if s.ca == nil then s.ca = 0 end
  if s.qs == nil then s.qs = 0 end
  -- Unreadable lists: the quorum is counted again from the failures that follow, and the
  -- probes' slots are free.
  if s.rp ~= '' then
    local list = entries(s.rp, REPORTERS_MOST, REPORTERS_BYTES)
    if list == nil then repaired = repaired + 1 else
      for _, e in ipairs(list) do
        local bucket = whole(e[2])
        if bucket == nil then
          s.reporters = {}
          break
        end
        table.insert(s.reporters, {e[1], bucket})
      end
    end
  end
  if s.pr ~= '' then
    local list = entries(s.pr, PROBES_MOST, PROBES_BYTES)
    if list == nil then repaired = repaired + 1 else
      for _, e in ipairs(list) do
        local t, u = whole(e[1]), whole(e[2])
        if t == nil or u == nil then
          s.probes = {}
          break
        end
        table.insert(s.probes, {t, u})
      end
    end
  end
  if s.ep == nil or s.ep == 0 then
    -- A key made now: its window is empty.
    s.ep = new_epoch()
    s.tc, s.tf, s.wb, s.k = 0, 0, bucket_of(now), 0
  elseif s.tc == nil or s.tf == nil or s.wb == nil or (s.old and not raw[13]) then
    -- Totals unreadable or never written: counted again from the buckets.
    s.tc, s.tf, s.wb, s.k = 0, 0, bucket_of(now), 0
    window_recount(s)
  end
  return s
end

local function expire_override(s)
  if s.ovu ~= 0 and s.ovu <= now then
    s.ov = AUTO
    s.ovu = 0
  end
end

-- One entry in the breaker's history, written by the step that made it, and the change
-- published. The stream is capped (about history_len entries) and expires with the breaker.
local function history(event, s, fields)
  -- Every process using the breaker learns of the change at once (the async store subscribes
  -- to <prefix>:changes); polling within max_staleness stays the safety net.
  -- A user the ACL does not let publish (no `&<prefix>:changes`) still changes the breaker.
  local prefix = string.match(key, '^(.*):{=')
  if prefix then redis.pcall('PUBLISH', prefix .. ':changes', key) end
  if history_len <= 0 then return end
  local args = {'XADD', history_key, 'MAXLEN', '~', history_len, '*',
    'at', now, 'event', event, 'gen', s.gen}
  for _, value in ipairs(fields or {}) do table.insert(args, value) end
  local added = redis.pcall(unpack(args))
  if type(added) == 'table' and added.err then
    -- Any other failure (out of memory) fails the step as a failed command would.
    if not string.find(added.err, 'WRONGTYPE', 1, true) then error(added) end
    -- The history's key holds something else than a stream: it is garbage, dropped and
    -- written again (the breaker's own state is kept).
    repaired = repaired + 1
    redis.call('DEL', history_key)
    redis.call(unpack(args))
  end
  redis.call('PEXPIRE', history_key, idle_ttl)
end

local CAUSES = {'threshold', 'probe-failed', 'operator', 'retry-after'}
local OVERRIDES = {[0] = 'auto', [1] = 'forced-open', [2] = 'forced-closed'}

-- The live buckets, oldest first: {bucket number, calls, failures, ...}.
local function window_buckets()
  local v = redis.call('HMGET', key, unpack(bucket_fields()))
  local oldest = bucket_of(now) - buckets
  local live = {}
  for i = 0, buckets - 1 do
    local t, c, f = whole(v[3 * i + 1]), whole(v[3 * i + 2]), whole(v[3 * i + 3])
    if t and c and f and t ~= 0 and t - 1 > oldest then
      table.insert(live, {t - 1, c, f})
    end
  end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  local reply = {}
  for _, bucket in ipairs(live) do
    table.insert(reply, bucket[1])
    table.insert(reply, bucket[2])
    table.insert(reply, bucket[3])
  end
  return reply
end

local function window_clear(s)
  redis.call('HDEL', key, unpack(bucket_fields()))
  s.tc, s.tf, s.wb, s.k = 0, 0, bucket_of(now), 0
  s.calls, s.failures = nil, nil
  s.reporters = {}
end

-- Transitions: {kind(1 tripped, 2 half-opened, 3 closed), generation, open_until, open_ms,
-- cause(1 threshold, 2 probe failed, 3 operator, 4 retry-after), calls, failures}; or no
-- transition because the quorum of reporters is short: {4, reporters, needed, 0, 0, calls,
-- failures}; or none at all: {0}.
local NONE = {0}

local function open(s, ms, cause, calls, failures, actor)
  s.gen = s.gen + 1
  s.st = OPEN
  s.om = ms
  s.ou = now + ms
  s.sc = 0
  s.probes = {}
  history('tripped', s, {'cause', CAUSES[cause], 'open_until', s.ou, 'open_ms', ms,
    'calls', calls or 0, 'failures', failures or 0, 'by', actor or ''})
  return {1, s.gen, s.ou, ms, cause, calls or 0, failures or 0}
end

local function close(s, actor)
  local ended = s.gen
  -- A close starts a new cycle, as a trip does (see Circuit::close).
  s.gen = s.gen + 1
  s.st = CLOSED
  s.om = 0
  s.sc = 0
  s.probes = {}
  -- A reset does not ramp; a close by probes sets this to now (see record).
  s.ca = 0
  window_clear(s)
  history('closed', s, {'ended', ended, 'by', actor or ''})
  return {3, ended, 0, 0, 0, 0, 0}
end

local function acquire(s)
  -- {kind(0 rejected, 1 normal, 2 probe), ticket, half_opened, reason(1 open, 2 probes
  -- busy, 3 forced open), retry_after_ms}
  expire_override(s)
  if s.ov == FORCED_OPEN then
    local retry = open_ms_policy
    if s.ovu ~= 0 then retry = s.ovu - now end
    return {0, 0, 0, 3, retry}
  end
  if s.ov == FORCED_CLOSED or s.st == CLOSED then
    return {1, 0, 0, 0, 0}
  end
  local half_opened = 0
  if s.st == OPEN then
    if now < s.ou then return {0, 0, 0, 1, s.ou - now} end
    s.st = HALF
    s.sc = 0
    s.probes = {}
    half_opened = 1
    history('half-opened', s)
  end
  local live = {}
  for _, p in ipairs(s.probes) do
    if p[2] > now then table.insert(live, p) end
  end
  s.probes = live
  if #s.probes < max_probes then
    s.tk = s.tk + 1
    table.insert(s.probes, {s.tk, now + lease_ms})
    return {2, s.tk, half_opened, 0, 0}
  end
  local first = nil
  for _, p in ipairs(s.probes) do
    if first == nil or p[2] < first then first = p[2] end
  end
  return {0, 0, 0, 2, (first or now) - now}
end

local function trips(calls, failures)
  return failures >= min_failures and calls >= min_calls and failures * 100 >= rate * calls
end

-- Counts ordinary calls of the current cycle, and trips if a failure among them meets the
-- rule (checked once, after all of them: a batch is one step).
local function count(s, calls, failures)
  if calls == 0 then return NONE end
  window_add(s, calls, failures)
  if failures > 0 and s.st == CLOSED and s.ov ~= FORCED_CLOSED then
    if trips(s.tc, s.tf) then
      local live = live_reporters(s)
      if live >= needed then
        return open(s, math.min(open_ms_policy, max_open_ms), 1, s.tc, s.tf)
      end
      -- The quorum is short: the fleet stays closed. The history says so once per bucket.
      if s.qs ~= bucket_of(now) then
        s.qs = bucket_of(now)
        history('quorum-short', s, {'reporters', live, 'needed', needed})
      end
      return {4, live, needed, 0, 0, s.tc, s.tf}
    end
  end
  return NONE
end

-- A probe's slot, freed by its report.
local function release_probe(s, ticket)
  local kept = {}
  for _, p in ipairs(s.probes) do
    if p[1] ~= ticket then table.insert(kept, p) end
  end
  s.probes = kept
end

local function record(s)
  expire_override(s)
  local generation, kind, ticket, outcome, wait = op1, op2, op3, op4, op5
  if generation ~= s.gen then return NONE end
  if wait > 0 and s.ov ~= FORCED_CLOSED then
    -- The backend asked every caller to wait (a report with `retry_after`, as
    -- `Circuit::record` takes it): the call is counted (a probe frees its slot) and the
    -- breaker opens until then, unless it is open until later already.
    if kind == 0 then
      if outcome == 0 then window_add(s, 1, 0) elseif outcome == 1 then window_add(s, 1, 1) end
    else
      release_probe(s, ticket)
    end
    local ms = math.min(wait, max_open_ms)
    if s.st == OPEN and s.ou >= now + ms then return NONE end
    return open(s, ms, 4)
  end
  if kind == 0 then
    if outcome == 2 then return NONE end
    local failures = 0
    if outcome == 1 then failures = 1 end
    return count(s, 1, failures)
  end
  if s.st ~= HALF then return NONE end
  release_probe(s, ticket)
  if outcome == 2 then return NONE end
  if outcome == 0 then
    s.sc = s.sc + 1
    if s.sc >= to_close then
      local closed = close(s)
      s.ca = now
      return closed
    end
    return NONE
  end
  -- Forced closed never trips, whatever probe was in flight when it was set.
  if s.ov == FORCED_CLOSED then return NONE end
  local next_ms = math.floor(s.om * backoff)
  if next_ms >= max_open_ms then next_ms = max_open_ms end
  return open(s, next_ms, 2)
end

local function batch(s)
  expire_override(s)
  local generation, successes, failures = op1, op2, op3
  if generation ~= s.gen then return NONE end
  return count(s, successes + failures, failures)
end

local function snapshot(s)
  -- {state, override, override_until, generation, open_until(0 if not open), calls,
  -- failures, probes_in_flight}
  local ov, ovu = s.ov, s.ovu
  if ovu ~= 0 and ovu <= now then ov, ovu = AUTO, 0 end
  local state = s.st
  if state == OPEN and s.ou <= now then state = HALF end
  local open_until = 0
  if s.st == OPEN then open_until = s.ou end
  local live = 0
  for _, p in ipairs(s.probes) do
    if p[2] > now then live = live + 1 end
  end
  window_sync(s)
  return {state, ov, ovu, s.gen, open_until, s.tc, s.tf, live}
end

local function main()
  local s = load()
  local reply
  if op == 'acquire' then
    reply = acquire(s)
  elseif op == 'record' then
    reply = record(s)
  elseif op == 'batch' then
    reply = batch(s)
  elseif op == 'snapshot' then
    -- Read-only: garbage met on the way is counted in the reply, not repaired.
    return packed(tail(snapshot(s), s))
  elseif op == 'window' then
    -- An array: as long as the window is (a few values a live bucket).
    return tail(window_buckets(), s)
  elseif op == 'trip' then
    reply = open(s, math.min(open_ms_policy, max_open_ms), 3, 0, 0, text)
  elseif op == 'reset' then
    if s.st == CLOSED then
      close(s, text)
      reply = NONE
    else
      reply = close(s, text)
    end
  elseif op == 'override' then
    local mode, duration = op1, op2
    s.ov = mode
    s.ovu = 0
    if mode ~= AUTO and duration >= 0 then s.ovu = now + duration end
    history('override', s, {'mode', OVERRIDES[mode] or tostring(mode), 'until', s.ovu,
      'by', text})
    -- An override always writes, even one that changes nothing: operators see it done.
    s.window_written = true
    reply = {}
  else
    return redis.error_reply('BREAKER unknown op ' .. tostring(op))
  end
  -- Every repair is in the history, once: the step that made it says how many values it
  -- found unreadable (the state it wrote is what they were repaired to).
  if repaired > 0 then history('repaired', s, {'values', repaired}) end
  save(s)
  return packed(tail(reply, s))
end

local ok, result = pcall(main)
if ok then return result end
local message = tostring(result)
if type(result) == 'table' and result.err then message = result.err end
if string.find(message, 'WRONGTYPE', 1, true) then
  -- The key is not a hash: nothing in it can be read, so a call drops it and the breaker
  -- starts afresh on the next call (a read leaves it as it is, and says it is corrupt).
  if not readonly then redis.call('DEL', key) end
  return redis.error_reply('BREAKER_CORRUPT ' .. message)
end
return redis.error_reply('BREAKER ' .. message)
