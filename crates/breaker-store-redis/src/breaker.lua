-- One breaker's record-and-decide step, atomic in Redis. It mirrors breaker-core's
-- `Circuit` (circuit.rs) and `BucketWindow` (window.rs) decision for decision; the
-- differential test in tests/redis.rs drives both with the same events and demands
-- identical answers. Keep the two in step.
--
-- KEYS[1]  the breaker's hash: state fields and window buckets.
-- KEYS[2]  the breaker's history: a stream of its transitions and operator actions.
-- ARGV[1]  op: acquire | record | batch | snapshot | window | trip | reset | override
-- ARGV[2]  now in ms, or "" for the server's clock (TIME)
-- ARGV[3..13] policy: bucket_ms buckets rate min_failures min_calls open_ms probes
--          lease_ms successes backoff max_open_ms
-- ARGV[14] idle TTL in ms
-- ARGV[15] history length (entries kept, about; 0: no history)
-- ARGV[16..] op arguments: record: generation kind(0 normal, 1 probe) ticket
--          outcome(0 success, 1 failure, 2 ignored) retry_after_ms(0: none) reporter
--          minimum_reporters; batch: generation successes failures reporter minimum_reporters; override: mode(0 auto, 1 forced-open, 2 forced-closed)
--          duration_ms(-1 forever) actor; trip, reset: actor
--
-- Every reply starts with the op's own values and ends with the state the caller caches:
-- state(0 closed, 1 open, 2 half-open) generation open_until free(0/1) now override epoch
-- sequence repaired calls failures override_until(0: none) closed_by_probes_at(0: not since
-- the last close, which was a reset). The sequence grows by one at each write, so a process can
-- tell a newer reply from an older one whatever the clocks say. The epoch names this life of
-- the key: it is drawn when the key is created, so a key lost (Redis restarted empty,
-- FLUSHDB, eviction, expiry) comes back with another one and processes know to take its
-- state even though its generation went back to 0. `repaired` counts the fields that held
-- garbage and were repaired in place. `calls` and `failures` are the window's running
-- totals as of the last write.
--
-- Cost: the window keeps running totals (tc, tf) of every bucket newer than the last bucket
-- synced (wb) minus `buckets`; each call expires only the buckets that left the window since
-- the last one, so the closed path is a handful of hash operations whatever `buckets` is.
-- Answers that change nothing (a rejection while open, probes busy, forced open, a report
-- from an earlier cycle) write nothing, and a write sends only the fields that changed.

local key = KEYS[1]
local op = ARGV[1]

local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The hot path: counting successes of the current cycle in the current bucket (a record of
-- an ordinary call's success, or a batch with no failure) makes no transition and changes
-- three fields. It runs before anything else is defined, reads what it needs in one HMGET,
-- and writes with one HINCRBY and one HSET: Lua's own work (closures, tables, strings) costs
-- Redis more than the commands, so it does as little as it can. Anything else (a new bucket,
-- an expiry to renew, an override that expired, a field missing or unreadable, an error)
-- goes the general way below, which decides the same (the differential test checks both).
if (op == 'record' and ARGV[17] == '0' and ARGV[19] == '0' and ARGV[20] == '0')
    or (op == 'batch' and ARGV[18] == '0') then
  local done, reply = pcall(function()
    local v = redis.call('HMGET', key, 'st', 'gen', 'ou', 'ov', 'ovu', 'ep', 'sq', 'tc', 'tf',
      'wb', 'xp', 'ca')
    local st, gen, ou, ov, ovu = tonumber(v[1]), tonumber(v[2]), tonumber(v[3]),
      tonumber(v[4]), tonumber(v[5])
    local ep, sq, tc, tf, wb, xp = tonumber(v[6]), tonumber(v[7]), tonumber(v[8]),
      tonumber(v[9]), tonumber(v[10]), tonumber(v[11])
    local ca = tonumber(v[12] or 0)
    if not (st and gen and ou and ov and ovu and ep and sq and tc and tf and wb and xp and ca)
    then
      return nil
    end
    if (st ~= 0 and st ~= 1 and st ~= 2) or (ov ~= 0 and ov ~= 1 and ov ~= 2) or ep <= 0
        or (ovu ~= 0 and ovu <= now) or tc < tf or tf < 0 or sq < 0 or sq % 1 ~= 0 then
      return nil
    end
    local bucket = math.floor(now / tonumber(ARGV[3]))
    local successes = 1
    if op == 'batch' then successes = tonumber(ARGV[17]) end
    if gen == tonumber(ARGV[16]) and successes > 0 then
      local idle_ttl = tonumber(ARGV[14])
      if bucket ~= wb or now + idle_ttl > xp + idle_ttl / 64 then return nil end
      local slot = bucket % tonumber(ARGV[4])
      if tonumber(redis.call('HGET', key, 't' .. slot)) ~= bucket + 1 then return nil end
      if type(redis.pcall('HINCRBY', key, 'c' .. slot, successes)) ~= 'number' then
        return nil
      end
      tc = tc + successes
      sq = sq + 1
      redis.call('HSET', key, 'tc', tc, 'sq', sq)
    end
    local free = 0
    if (ov == 0 and st == 0) or (ov == 2 and ovu == 0) then free = 1 end
    -- NONE, then the tail (see tail() below).
    return {0, 0, 0, 0, 0, 0, 0, st, gen, ou, free, now, ov, ep, sq, 0, tc, tf, ovu, ca}
  end)
  if done and reply then return reply end
end

local bucket_ms = tonumber(ARGV[3])
local buckets = tonumber(ARGV[4])
local lease_ms = tonumber(ARGV[10])
local idle_ttl = tonumber(ARGV[14])

-- The reporter of this call's outcomes, and the quorum the policy asks for.
local reporter, needed = nil, 1
if op == 'record' then
  reporter, needed = ARGV[21], tonumber(ARGV[22]) or 1
elseif op == 'batch' then
  reporter, needed = ARGV[19], tonumber(ARGV[20]) or 1
end

local CLOSED, OPEN, HALF = 0, 1, 2
local AUTO, FORCED_OPEN, FORCED_CLOSED = 0, 1, 2

local repaired = 0

-- A field that is missing reads as 0; a whole number >= 0 below 2^53 (and at most `most`)
-- is read as is; anything else is garbage: it reads as nil and counts as repaired.
local function whole(value, most)
  if not value then return 0 end
  local n = tonumber(value)
  if n == nil or n ~= n or n < 0 or n ~= math.floor(n) or n >= 9007199254740992
      or (most and n > most) then
    repaired = repaired + 1
    return nil
  end
  return n
end

local function bucket_of(ms) return math.floor(ms / bucket_ms) end

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

-- Writes the fields that changed, if any did (or garbage was repaired), and keeps the key
-- while it matters: at least idle_ttl after the last write, longer while an open period or
-- an override with an expiry lasts. Returns whether it wrote.
local function save(s)
  local changed = {}
  for _, field in ipairs(s.saved) do
    local value = s[field]
    -- Compared as read (numbers with numbers: formatting each one would cost more than the
    -- rest of the call); Redis writes numbers exactly.
    if field == 'pr' then value = probes_text(s.probes) end
    if field == 'rp' then value = reporters_text(s.reporters) end
    -- Totals waiting to be counted again are left for the step that counts them.
    local totals = field == 'tc' or field == 'tf' or field == 'wb'
    if field ~= 'sq' and value ~= s.loaded[field] and not (totals and s.recount) then
      table.insert(changed, field)
      table.insert(changed, value)
    end
  end
  if #changed == 0 and repaired == 0 and not s.window_written then return false end
  s.sq = s.sq + 1
  table.insert(changed, 'sq')
  table.insert(changed, s.sq)
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
  if renew then
    table.insert(changed, 'xp')
    table.insert(changed, expiry)
  end
  -- HSET first: PEXPIRE on a key that does not exist yet does nothing.
  redis.call('HSET', key, unpack(changed))
  if renew then redis.call('PEXPIRE', key, math.floor(ttl)) end
  return true
end

local function free(s)
  if s.ov == AUTO then return s.st == CLOSED end
  return s.ov == FORCED_CLOSED and s.ovu == 0
end

local function tail(reply, s)
  local is_free = 0
  if free(s) then is_free = 1 end
  table.insert(reply, s.st)
  table.insert(reply, s.gen)
  table.insert(reply, s.ou)
  table.insert(reply, is_free)
  table.insert(reply, now)
  table.insert(reply, s.ov)
  table.insert(reply, s.ep)
  table.insert(reply, s.sq)
  table.insert(reply, repaired)
  table.insert(reply, s.tc)
  table.insert(reply, s.tf)
  table.insert(reply, s.ovu)
  table.insert(reply, s.ca)
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

-- The totals counted again from every bucket: when a key is first read with this layout,
-- after the clock stepped back or jumped past the whole window, or after garbage.
local function window_recount(s)
  local v = redis.call('HMGET', key, unpack(bucket_fields()))
  local oldest = bucket_of(now) - buckets
  local calls, failures = 0, 0
  for i = 0, buckets - 1 do
    local t, c, f = whole(v[3 * i + 1]), whole(v[3 * i + 2]), whole(v[3 * i + 3])
    if t == nil or c == nil or f == nil then
      -- A bucket holding garbage loses its own counts, no more.
      redis.call('HDEL', key, 't' .. i, 'c' .. i, 'f' .. i)
    elseif t ~= 0 and t - 1 > oldest then
      calls = calls + c
      failures = failures + f
    end
  end
  s.tc, s.tf, s.wb, s.recount = calls, failures, bucket_of(now), false
end

-- Brings the totals to now: only the buckets that left the window since the last sync
-- leave them (usually none or one).
local function window_sync(s)
  local current = bucket_of(now)
  if s.recount or current < s.wb or current - s.wb >= buckets then
    if current ~= s.wb or s.recount then window_recount(s) end
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
  s.wb = current
  if s.tc < 0 or s.tf < 0 or s.tf > s.tc then window_recount(s) end
end

-- Counts `calls` calls, `failures` of them failures, in the current bucket.
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

local function window_add(s, calls, failures)
  window_sync(s)
  local bucket = bucket_of(now)
  local slot = bucket % buckets
  local tag = bucket + 1
  local t = whole(redis.call('HGET', key, 't' .. slot))
  local counted = false
  if t ~= nil and t >= tag then
    -- A counter holding garbage refuses HINCRBY: the bucket then starts again below.
    counted = type(redis.pcall('HINCRBY', key, 'c' .. slot, calls)) == 'number'
    if counted and failures > 0 then
      counted = type(redis.pcall('HINCRBY', key, 'f' .. slot, failures)) == 'number'
    end
    if not counted then repaired = repaired + 1 end
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
    -- The slot held a bucket that already left the window (or garbage).
    redis.call('HSET', key, 't' .. slot, tag, 'c' .. slot, calls, 'f' .. slot, failures)
    if t == nil or t >= tag then
      window_recount(s)
    else
      s.tc = s.tc + calls
      s.tf = s.tf + failures
    end
  end
end

-- The general way: every op, every state.

local rate = tonumber(ARGV[5])
local min_failures = tonumber(ARGV[6])
local min_calls = tonumber(ARGV[7])
local open_ms_policy = tonumber(ARGV[8])
local max_probes = tonumber(ARGV[9])
local to_close = tonumber(ARGV[11])
local backoff = tonumber(ARGV[12])
local max_open_ms = tonumber(ARGV[13])
local history_len = tonumber(ARGV[15])
local history_key = KEYS[2]

local FIELDS = {'st', 'gen', 'ou', 'om', 'sc', 'tk', 'ov', 'ovu', 'pr', 'ep', 'sq', 'tc',
  'tf', 'wb', 'ca', 'rp', 'qs', 'xp'}
-- The fields save() writes, in order: the first ones of FIELDS.
local SAVED = {'st', 'gen', 'ou', 'om', 'sc', 'tk', 'ov', 'ovu', 'pr', 'ep', 'sq', 'tc', 'tf',
  'wb', 'ca', 'rp', 'qs'}


-- A new epoch: the server's time in microseconds (below 2^53 until the year 2255).
local function new_epoch()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- One field of garbage costs only that field: each gets the value that keeps the breaker on
-- the safe side (a breaker that cannot say it is closed is treated as open, a probe list that
-- cannot be read frees its slots, unreadable totals are counted again), and the rest of the
-- state is kept.
local function load()
  local v = redis.call('HMGET', key, unpack(FIELDS))
  local s = {
    st = whole(v[1], HALF), gen = whole(v[2]), ou = whole(v[3]), om = whole(v[4]),
    sc = whole(v[5]), tk = whole(v[6]), ov = whole(v[7], FORCED_CLOSED), ovu = whole(v[8]),
    ep = whole(v[10]), sq = whole(v[11]), tc = whole(v[12]), tf = whole(v[13]),
    wb = whole(v[14]), ca = whole(v[15]), qs = whole(v[17]), xp = whole(v[18]), probes = {},
    reporters = {}, loaded = {}, saved = SAVED,
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
  -- An unreadable close time: no ramp (the breaker is closed either way).
  if s.ca == nil then s.ca = 0 end
  if s.qs == nil then s.qs = 0 end
  if v[16] and v[16] ~= '' then
    for id, b in string.gmatch(v[16], '([^:,]+):([^,]+)') do
      local bucket = whole(b)
      if bucket == nil then
        -- Unreadable: the quorum is counted again from the failures that follow.
        s.reporters = {}
        break
      end
      table.insert(s.reporters, {id, bucket})
    end
  end
  if s.ep == nil or s.ep == 0 then
    -- A key made now: its window is empty.
    s.ep = new_epoch()
    s.tc, s.tf, s.wb = 0, 0, bucket_of(now)
  elseif s.tc == nil or s.tf == nil or s.wb == nil or not v[14] then
    -- Totals unreadable or never written: counted again from the buckets.
    s.recount = true
    s.tc, s.tf, s.wb = 0, 0, bucket_of(now)
  end
  if v[9] and v[9] ~= '' then
    local ok = true
    for ticket, untl in string.gmatch(v[9], '([^:,]+):([^,]+)') do
      local t, u = whole(ticket), whole(untl)
      if t == nil or u == nil then ok = false else table.insert(s.probes, {t, u}) end
    end
    if not ok then s.probes = {} end
  end
  -- As read, to tell what changed: numbers as numbers, the probe list as text, nil if missing.
  for i, field in ipairs(SAVED) do
    local raw = v[i]
    if raw and field ~= 'pr' and field ~= 'rp' then raw = tonumber(raw) end
    s.loaded[field] = raw or nil
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
  redis.call(unpack(args))
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
  s.tc, s.tf, s.wb, s.recount = 0, 0, bucket_of(now), false
  s.reporters = {}
end

-- Transitions: {kind(1 tripped, 2 half-opened, 3 closed), generation, open_until, open_ms,
-- cause(1 threshold, 2 probe failed, 3 operator, 4 retry-after), calls, failures}; or no
-- transition because the quorum of reporters is short: {4, reporters, needed, 0, 0, calls,
-- failures}.
local NONE = {0, 0, 0, 0, 0, 0, 0}

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
  local generation, kind, ticket = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
  local outcome, wait = tonumber(ARGV[19]), tonumber(ARGV[20]) or 0
  if generation ~= s.gen then return NONE end
  if wait > 0 and s.ov ~= FORCED_CLOSED then
    -- The backend asked every caller to wait (Circuit::record_retry_after): the call is
    -- counted (a probe frees its slot) and the breaker opens until then, unless it is open
    -- until later already.
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
  local generation, successes, failures = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
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
    -- Read-only, but garbage met on the way is repaired for good.
    reply = snapshot(s)
    if repaired > 0 then save(s) end
    return tail(reply, s)
  elseif op == 'window' then
    return tail(window_buckets(), s)
  elseif op == 'trip' then
    reply = open(s, math.min(open_ms_policy, max_open_ms), 3, 0, 0, ARGV[16])
  elseif op == 'reset' then
    if s.st == CLOSED then
      close(s, ARGV[16])
      reply = NONE
    else
      reply = close(s, ARGV[16])
    end
  elseif op == 'override' then
    local mode = tonumber(ARGV[16])
    local duration = tonumber(ARGV[17])
    s.ov = mode
    s.ovu = 0
    if mode ~= AUTO and duration >= 0 then s.ovu = now + duration end
    history('override', s, {'mode', OVERRIDES[mode] or tostring(mode), 'until', s.ovu,
      'by', ARGV[18] or ''})
    -- An override always writes, even one that changes nothing: operators see it done.
    s.window_written = true
    reply = {}
  else
    return redis.error_reply('BREAKER unknown op ' .. tostring(op))
  end
  save(s)
  return tail(reply, s)
end

local ok, result = pcall(main)
if ok then return result end
local message = tostring(result)
if type(result) == 'table' and result.err then message = result.err end
if string.find(message, 'WRONGTYPE', 1, true) then
  -- The key is not a hash: nothing in it can be read, so it is dropped and the breaker
  -- starts afresh on the next call.
  redis.call('DEL', key)
  return redis.error_reply('BREAKER_CORRUPT ' .. message)
end
return redis.error_reply('BREAKER ' .. message)
