"""The Redis limiter's scripts (limits/redis.py runs them): the GCRA of limits.MemoryLimiter in Lua.

Each script runs atomically in Redis and reads Redis's clock, not the replicas'. Times are µs, except
where a name says ms. All keys of one script share a {hash tag} (one cluster slot), except ADMIT's
optional fifth key: the failed-request block of the credential, which it checks in the same step.
"""

from __future__ import annotations

# GCRA over three dimensions + an in-flight sorted set, committed only if every check passes.
# KEYS: rpm tat, rpd tat, tpm tat, slots zset[, failed-request block]. ARGV: rpm, rpd, tpm,
# concurrency (0 = none), tokens, slot id, slot ttl (µs), tolerance (µs). Returns {allowed, refused
# index (5: the block), retry µs, then remaining and reset µs per GCRA dimension (-1 when it has no
# limit)}. A blocked credential is refused before anything else is looked at, and changes nothing.
ADMIT = """
if KEYS[5] then
  local left = redis.call('PTTL', KEYS[5])
  if left > 0 then return {0, 5, left * 1000, -1, -1, -1, -1, -1, -1} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local periods = {60000000, 86400000000, 60000000}
local tol = tonumber(ARGV[8])
local out = {1, 0, 0, -1, -1, -1, -1, -1, -1}
local cur = {1, 0, 0, -1, -1, -1, -1, -1, -1}
local commit = {}
for i = 1, 3 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local cost = 1
    if i == 3 then cost = math.min(math.max(tonumber(ARGV[5]), 0), limit) end
    local interval = periods[i] / limit
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat == nil or tat < now then tat = now end
    local new = tat + cost * interval
    local excess = new - now - periods[i]
    cur[2 + 2 * i] = math.max(0, math.floor((periods[i] - (tat - now)) / interval + 1e-9))
    cur[3 + 2 * i] = math.ceil(tat - now)
    if excess > tol then
      out[1] = 0
      if excess > out[3] then out[2] = i; out[3] = math.ceil(excess) end
      out[2 + 2 * i] = math.max(0, math.floor((periods[i] - (tat - now)) / interval + 1e-9))
      out[3 + 2 * i] = math.ceil(tat - now)
    else
      commit[i] = new
      out[2 + 2 * i] = math.max(0, math.floor((periods[i] - (new - now)) / interval + 1e-9))
      out[3 + 2 * i] = math.ceil(new - now)
    end
  end
end
local conc = tonumber(ARGV[4])
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= conc then
    out[1] = 0
    if 1000000 > out[3] then out[2] = 4; out[3] = 1000000 end
  end
end
if out[1] == 0 then
  -- a refused request changes nothing, so it reports things as they stand
  cur[1] = 0; cur[2] = out[2]; cur[3] = out[3]
  return cur
end
for i = 1, 3 do
  if commit[i] then
    redis.call('SET', KEYS[i], string.format('%.3f', commit[i]), 'PX', math.ceil((commit[i] - now) / 1000) + 1000)
  end
end
if conc > 0 then
  local ttl = tonumber(ARGV[7])
  redis.call('ZADD', KEYS[4], now + ttl, ARGV[6])
  redis.call('PEXPIRE', KEYS[4], math.ceil(ttl / 1000))
end
return out
"""

# KEYS: tpm tat, slots zset. ARGV: token correction (actual − admitted), µs per token, slot id ('' = none).
FINISH = """
local delta = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
if delta ~= 0 and per > 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]))
  if tat then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local new = tat + delta * per
    if new <= now then
      redis.call('DEL', KEYS[1])
    else
      redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
    end
  end
end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[2], ARGV[3]) end
return 1
"""

# Renew one in-flight slot's lease, if it is still there. KEYS: slots zset. ARGV: slot id, slot ttl (µs).
RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl / 1000))
return 1
"""

# A plain GCRA hit (key creation). ARGV: limit, period µs, tolerance µs. Returns {allowed, retry µs}.
HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new = tat + interval
local excess = new - now - period
if excess > tonumber(ARGV[3]) then
  return {0, math.ceil(excess)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, 0}
"""

# The failed-request limiter: an exact "more than ARGV[1] in the window" over a ring of the last
# ARGV[1]+1 failure times (bounded), then a block. KEYS: ring, block. ARGV: limit, window ms, check
# ('1': a blocked subject's response is not counted, and the block's ms left are returned), count
# ('1': count this response as a failure), block ms. Returns the ms left of the block that refused it, else 0.
FAILED = """
if ARGV[3] == '1' then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then return left end
end
if ARGV[4] ~= '1' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit)
redis.call('PEXPIRE', KEYS[1], window)
local oldest = tonumber(redis.call('LINDEX', KEYS[1], limit))
if oldest and now - oldest <= window then
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[5]), 'NX')
end
return 0
"""
