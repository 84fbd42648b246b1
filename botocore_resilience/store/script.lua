-- One circuit's fleet state, changed atomically on the store's own clock.
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

local h = redis.call('HMGET', state_key, 'st', 'seq', 'ver', 'fails', 'succ', 'opened', 'open_for',
  'period', 'cause')
local s = {
  st = h[1] or 'closed', seq = tonumber(h[2]) or 0, ver = tonumber(h[3]) or 0,
  fails = tonumber(h[4]) or 0, succ = tonumber(h[5]) or 0, opened = tonumber(h[6]) or 0,
  open_for = tonumber(h[7]) or 0, period = tonumber(h[8]) or 0, cause = h[9] or '',
}
local changed, from, granted, wait = false, false, 0, 0

local function move(to, cause)
  from = s.st
  s.st = to
  s.seq = s.seq + 1
  s.succ = 0
  s.cause = cause
  redis.call('DEL', probes_key)
  changed = true
end

-- period: the nominal open period (ms); jitter in [0, 0.1): the extra drawn by the caller.
local function open(period, jitter, cause)
  s.period = period
  s.open_for = math.floor(period * (1 + jitter))
  s.opened = now
  move('open', cause)
end

if op == 'fail' then
  -- ARGV: seq, failure_threshold, recovery_timeout ms, jitter, cause
  if s.st == 'closed' and s.seq == tonumber(ARGV[4]) then
    s.fails = s.fails + 1
    changed = true
    if s.fails >= tonumber(ARGV[5]) then open(tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]) end
  end
elseif op == 'succeed' then
  -- ARGV: seq
  if s.st == 'closed' and s.seq == tonumber(ARGV[4]) and s.fails > 0 then
    s.fails = 0
    changed = true
  end
elseif op == 'probe' then
  -- ARGV: half_open_max_calls, lease ms, token
  if s.st == 'open' and now >= s.opened + s.open_for then
    move('half_open', 'recovery timeout elapsed')
  end
  if s.st == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', probes_key, '-inf', now) -- leases of lost probes
    if redis.call('ZCARD', probes_key) < tonumber(ARGV[4]) then
      redis.call('ZADD', probes_key, now + tonumber(ARGV[5]), ARGV[6])
      redis.call('PEXPIRE', probes_key, tonumber(ARGV[5]))
      granted = 1
    else
      local first = redis.call('ZRANGE', probes_key, 0, 0, 'WITHSCORES')
      wait = math.max(0, tonumber(first[2]) - now)
    end
  end
elseif op == 'finish' then
  -- ARGV: seq, token, 'success' or 'failure', success_threshold,
  --       recovery_timeout ms, recovery_timeout_max ms, jitter, cause
  if s.st == 'half_open' and s.seq == tonumber(ARGV[4])
      and redis.call('ZREM', probes_key, ARGV[5]) == 1 then
    if ARGV[6] == 'failure' then
      s.fails = s.fails + 1
      local base = tonumber(ARGV[8])
      open(math.max(base, math.min(s.period * 2, tonumber(ARGV[9]))), tonumber(ARGV[10]), ARGV[11])
    else
      s.succ = s.succ + 1
      changed = true
      if s.succ >= tonumber(ARGV[7]) then
        s.fails = 0
        move('closed', ARGV[11])
      end
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
  -- ARGV: 'open' or 'closed', cause
  if ARGV[4] == 'open' then
    if s.st ~= 'forced_open' then
      s.opened = now
      move('forced_open', ARGV[5])
    end
  else
    s.fails = 0
    changed = true
    if s.st ~= 'closed' then move('closed', ARGV[5]) end
  end
elseif op ~= 'load' then
  return redis.error_reply('botocore_resilience: unknown operation ' .. tostring(op))
end

if changed then
  s.ver = math.max(s.ver + 1, now) -- keeps growing even after the key expired and came back
  redis.call('HSET', state_key, 'st', s.st, 'seq', s.seq, 'ver', string.format('%.0f', s.ver),
    'fails', s.fails, 'succ', s.succ, 'opened', string.format('%.0f', s.opened),
    'open_for', s.open_for, 'period', s.period, 'cause', s.cause)
  redis.call('PEXPIRE', state_key, math.max(IDLE_TTL, 4 * s.open_for))
end

local remaining = 0
if s.st == 'open' then remaining = math.max(0, s.opened + s.open_for - now) end
local reply = cjson.encode({
  n = name, st = s.st, seq = s.seq, ver = s.ver, fails = s.fails, succ = s.succ,
  rem = remaining, probes = redis.call('ZCOUNT', probes_key, '(' .. now, '+inf'), from = from, g = granted,
  wait = wait, cause = s.cause,
})
if changed then redis.call('PUBLISH', channel, reply) end
return reply
