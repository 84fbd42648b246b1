-- One circuit's fleet state, changed atomically on the store's own clock. Policy-free: the
-- breaker (in each process) decides when to move; this script only counts, leases probe
-- slots, and makes a transition if the caller's seq is still current (compare-and-set).
-- KEYS[1]: the state hash; KEYS[2]: the probe leases (sorted set: token -> expiry, ms).
-- ARGV[1]: operation; ARGV[2]: pub/sub channel; ARGV[3]: circuit name; then per operation.
-- Every change is written back, given a higher version, and published as one JSON message
-- that is also the reply, so a caller and every subscriber learn the same thing.
if redis.replicate_commands then pcall(redis.replicate_commands) end -- Redis < 5: TIME, then writes

local state_key, probes_key = KEYS[1], KEYS[2]
local op, channel, name = ARGV[1], ARGV[2], ARGV[3]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local IDLE_TTL = 7 * 24 * 3600 * 1000 -- an untouched circuit is forgotten after a week

local h = redis.call('HMGET', state_key, 'st', 'seq', 'ver', 'fails', 'succ', 'reop', 'opened',
  'open_for', 'cause')
local s = {
  st = h[1] or 'closed', seq = tonumber(h[2]) or 0, ver = tonumber(h[3]) or 0,
  fails = tonumber(h[4]) or 0, succ = tonumber(h[5]) or 0, reop = tonumber(h[6]) or 0,
  opened = tonumber(h[7]) or 0, open_for = tonumber(h[8]) or 0, cause = h[9] or '',
}
-- applied: the operation did what it asks (its seq was current; a probe's outcome counted).
local changed, from, granted, wait, applied = false, false, 0, 0, 0

-- to: 'closed', 'open', 'half_open' or 'forced_open'; open_for: the open period (ms).
local function move(to, cause, open_for)
  from = s.st
  if to == 'open' and from == 'half_open' then s.reop = s.reop + 1 end
  if to == 'closed' then
    s.fails = 0
    s.reop = 0
  end
  if to == 'open' or to == 'forced_open' then
    s.opened = now
    s.open_for = open_for
  end
  s.st = to
  s.seq = s.seq + 1
  s.succ = 0
  s.cause = cause
  changed = true
end

local function is_current(seq) return s.seq == tonumber(seq) end

if op == 'add_failure' then
  -- ARGV: seq. One more consecutive failure while closed; never a transition.
  if s.st == 'closed' and is_current(ARGV[4]) then
    s.fails = s.fails + 1
    changed, applied = true, 1
  end
elseif op == 'clear_failures' then
  -- ARGV: seq
  if is_current(ARGV[4]) and s.fails > 0 then
    s.fails = 0
    changed, applied = true, 1
  end
elseif op == 'move' then
  -- ARGV: seq, to ('closed', 'open', 'half_open'), cause, open period ms, forced (0 or 1)
  if is_current(ARGV[4]) then
    local to = ARGV[5]
    if to == 'open' and ARGV[8] == '1' then to = 'forced_open' end
    move(to, ARGV[6], tonumber(ARGV[7]))
    applied = 1
  end
elseif op == 'admit' then
  -- ARGV: half_open_max_calls, lease ms, token
  if s.st == 'open' and now >= s.opened + s.open_for then
    move('half_open', 'recovery timeout elapsed', 0)
  end
  if s.st == 'half_open' then
    -- Slots belong to calls, not periods: a probe of an earlier period keeps its slot.
    redis.call('ZREMRANGEBYSCORE', probes_key, '-inf', now) -- leases of lost probes
    if redis.call('ZCARD', probes_key) < tonumber(ARGV[4]) then
      redis.call('ZADD', probes_key, now + tonumber(ARGV[5]), ARGV[6])
      redis.call('PEXPIRE', probes_key,
        math.max(tonumber(ARGV[5]), redis.call('PTTL', probes_key)))
      granted = 1
      changed = true -- every process learns that a slot is taken
    else
      local first = redis.call('ZRANGE', probes_key, 0, 0, 'WITHSCORES')
      wait = math.max(0, tonumber(first[2]) - now)
    end
  end
elseif op == 'finish_probe' then
  -- ARGV: seq, token, 'success', 'failure' or 'none'. Frees the slot; the outcome counts
  -- only in the half-open period that admitted it, and only if it still held its slot.
  if redis.call('ZREM', probes_key, ARGV[5]) == 1 then
    changed = true
    if s.st == 'half_open' and is_current(ARGV[4]) then
      applied = 1
      if ARGV[6] == 'success' then s.succ = s.succ + 1 end
      if ARGV[6] == 'failure' then s.fails = s.fails + 1 end
    end
  end
elseif op == 'lease' then
  -- ARGV: token, lease ms from now: a probe's caller says how long its call may take
  redis.call('ZADD', probes_key, 'XX', now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', probes_key, math.max(tonumber(ARGV[5]), redis.call('PTTL', probes_key)))
elseif op == 'release' then
  -- ARGV: token: a probe's call ended without an outcome; its slot is free again
  if redis.call('ZREM', probes_key, ARGV[4]) == 1 then changed = true end
elseif op == 'force' then
  -- ARGV: 'open' or 'closed', cause: an operator's override, whatever the seq
  applied = 1
  if ARGV[4] == 'open' then
    if s.st ~= 'forced_open' then move('forced_open', ARGV[5], 0) end
  elseif s.st ~= 'closed' then
    move('closed', ARGV[5], 0)
  elseif s.fails > 0 then
    s.fails = 0
    changed = true
  end
elseif op ~= 'load' then
  return redis.error_reply('botocore_resilience: unknown operation ' .. tostring(op))
end

if changed then
  s.ver = math.max(s.ver + 1, now) -- keeps growing even after the key expired and came back
  redis.call('HSET', state_key, 'st', s.st, 'seq', s.seq, 'ver', string.format('%.0f', s.ver),
    'fails', s.fails, 'succ', s.succ, 'reop', s.reop, 'opened', string.format('%.0f', s.opened),
    'open_for', s.open_for, 'cause', s.cause)
  redis.call('PEXPIRE', state_key, math.max(IDLE_TTL, 4 * s.open_for))
end

local remaining = 0
if s.st == 'open' then remaining = math.max(0, s.opened + s.open_for - now) end
local reply = cjson.encode({
  n = name, st = s.st, seq = s.seq, ver = s.ver, fails = s.fails, succ = s.succ, reop = s.reop,
  rem = remaining, probes = redis.call('ZCOUNT', probes_key, '(' .. now, '+inf'), from = from,
  g = granted, wait = wait, ok = applied, cause = s.cause,
})
if changed then redis.call('PUBLISH', channel, reply) end
return reply
