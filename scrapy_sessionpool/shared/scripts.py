"""The Lua scripts behind the shared Redis pool: each runs atomically inside Redis.

Keys of a pool whose base is ``B`` (``<prefix>:{<key>}``, the braces keep a
pool on one cluster slot):

* ``B:live``    sorted set, session id -> created_at (expiry is created_at + max_age)
* ``B:ready``   sorted set of the sessions that may be handed out, scored for the reuse strategy
* ``B:meta``    hash: ``created``, ``retired`` (over the pool's life), ``seq``
* ``B:proxies`` hash: proxy URL ("" for a direct connection) -> live sessions
* ``B:asleep``  sorted set: suspect sessions sitting out, by the end of their wait
* ``B:condemned`` set: suspect sessions awaiting their control (they hold no room in the pool)
* ``B:s:<id>``  hash: created_at, usage, handed, errors, proxy, ua, ud, cv, uv, and while suspect
  sus (when it became suspect), until (the end of its wait), strikes, cond (1: condemned)
* ``B:c:<id>``  hash: "domain;path;name" -> cookie as JSON

``handed`` counts hand-outs (``usage`` counts answers), so ``handed - usage``
is the number of requests in flight; a crashed process can only make its
sessions look a little more used, never block the pool.
"""

#: The tags that begin the scripts' replies, as the Lua below writes them (a test checks it).
REPLY_OK = "ok"
REPLY_RETIRED = "retired"  # then the reason: one of reasons.COMPUTED, or the one the process gave
REPLY_GONE = "gone"  # retired already (by another process, or by an earlier write)
REPLY_TALLIED = "tallied"  # a session made and retired while Redis was away, counted

COMMON = r"""
local live, ready, meta, proxies, asleep, condemned = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local base = ARGV[1]
local NOW = 0  -- set by each script that reads the time

local function retire(id)
  if redis.call('ZREM', live, id) == 0 then return 0 end
  redis.call('ZREM', ready, id)
  redis.call('ZREM', asleep, id)
  redis.call('SREM', condemned, id)
  local proxy = redis.call('HGET', base .. ':s:' .. id, 'proxy') or ''
  if redis.call('HINCRBY', proxies, proxy, -1) <= 0 then redis.call('HDEL', proxies, proxy) end
  redis.call('HINCRBY', meta, 'retired', 1)
  redis.call('DEL', base .. ':s:' .. id, base .. ':c:' .. id)
  return 1
end

local function refresh(id, usage, handed, max_usage, warm_up, strategy)
  local s = redis.call('HMGET', base .. ':s:' .. id, 'sus', 'until')
  local suspect, untl = s[1] and s[1] ~= '', tonumber(s[2] or '0') or 0
  if untl > NOW then  -- a suspect sitting out: not handed out before its wait ends
    redis.call('ZREM', ready, id)
    redis.call('ZADD', asleep, untl, id)
    return
  end
  redis.call('ZREM', asleep, id)
  -- a new or a suspect session serves one request until its answer
  if handed < max_usage and not ((warm_up == 1 and usage == 0 or suspect) and handed > usage) then
    if redis.call('ZSCORE', ready, id) == false then
      local score = 0
      if strategy ~= 'random' then score = redis.call('HINCRBY', meta, 'seq', 1) end
      redis.call('ZADD', ready, score, id)
    end
  else
    redis.call('ZREM', ready, id)
  end
end

-- One answer (code 'g' good, 'b' bad) or release ('r') of a live session; retires it when its
-- counts say so. Returns the op's reply: {'ok' or 'retired', [reason,] usage, errors}.
local function use(id, key, code, max_usage, max_error, decrement, warm_up, strategy)
  if code == 'r' then
    local handed = redis.call('HINCRBY', key, 'handed', -1)
    local usage = tonumber(redis.call('HGET', key, 'usage'))
    if handed < usage then handed = redis.call('HINCRBY', key, 'handed', usage - handed) end
    refresh(id, usage, handed, max_usage, warm_up, strategy)
    return {'ok', usage, redis.call('HGET', key, 'errors')}
  end
  local usage = redis.call('HINCRBY', key, 'usage', 1)
  local handed = tonumber(redis.call('HGET', key, 'handed'))
  if handed < usage then handed = redis.call('HINCRBY', key, 'handed', usage - handed) end
  local errors = tonumber(redis.call('HGET', key, 'errors'))
  if code == 'g' then errors = math.max(0, errors - decrement) else errors = errors + 1 end
  redis.call('HSET', key, 'errors', tostring(errors))
  if errors >= max_error then
    retire(id)
    return {'retired', 'error_score', usage, tostring(errors)}
  elseif usage >= max_usage then
    retire(id)
    return {'retired', 'max_usage_count', usage, tostring(errors)}
  end
  if code == 'b' and strategy == 'use_until_failure' and redis.call('ZSCORE', ready, id) then
    redis.call('ZADD', ready, redis.call('HINCRBY', meta, 'seq', 1), id)
  end
  refresh(id, usage, handed, max_usage, warm_up, strategy)
  return {'ok', usage, tostring(errors)}
end

-- Apply queued writes: ops of 4 values each (kind, session id, a, b) from ARGV[first];
-- kinds: good, bad, release, marks (a = their letters in order, e.g. "ggrb"), retire (a = reason),
-- cookie (a = field, b = JSON or "" to delete), ud (a = JSON), create (a = JSON of the session's
-- fields), tally (a = how many sessions a process made and retired while Redis was away),
-- suspect (a = JSON {since, until, strikes, cond}), clear and acquit (of a suspicion).
local function apply_ops(first, last, max_usage, max_error, decrement, warm_up, strategy)
  local replies = {}
  for i = first, last, 4 do
    local kind, id, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local key = base .. ':s:' .. id
    local reply = {'gone'}
    if kind == 'tally' then
      redis.call('HINCRBY', meta, 'created', tonumber(a))
      redis.call('HINCRBY', meta, 'retired', tonumber(a))
      reply = {'tallied'}
    elseif kind == 'create' then
      if redis.call('EXISTS', key) == 0 then
        local f = cjson.decode(a)
        redis.call('HSET', key, 'created_at', f.created_at, 'usage', f.usage, 'handed', f.usage, 'errors', f.errors,
                   'proxy', f.proxy, 'ua', f.ua, 'ud', f.ud, 'cv', 0, 'uv', 0)
        redis.call('ZADD', live, f.created_at, id)
        redis.call('HINCRBY', proxies, f.proxy, 1)
        redis.call('HINCRBY', meta, 'created', 1)
        refresh(id, tonumber(f.usage), tonumber(f.usage), max_usage, warm_up, strategy)
      end
      reply = {'ok'}
    elseif redis.call('EXISTS', key) == 1 then
      if kind == 'retire' then
        retire(id)
        reply = {'retired', a}
      elseif kind == 'good' or kind == 'bad' or kind == 'release' then
        reply = use(id, key, string.sub(kind, 1, 1), max_usage, max_error, decrement, warm_up, strategy)
      elseif kind == 'marks' then
        reply = {'ok'}
        for j = 1, #a do
          reply = use(id, key, string.sub(a, j, j), max_usage, max_error, decrement, warm_up, strategy)
          if reply[1] == 'retired' then break end
        end
      elseif kind == 'cookie' then
        if b == '' then redis.call('HDEL', base .. ':c:' .. id, a)
        else redis.call('HSET', base .. ':c:' .. id, a, b) end
        redis.call('HINCRBY', key, 'cv', 1)
        reply = {'ok'}
      elseif kind == 'ud' then
        redis.call('HSET', key, 'ud', a)
        redis.call('HINCRBY', key, 'uv', 1)
        reply = {'ok'}
      elseif kind == 'suspect' or kind == 'clear' or kind == 'acquit' then
        if kind == 'suspect' then  -- a = JSON {since, until, strikes, cond}
          local f = cjson.decode(a)
          redis.call('HSET', key, 'sus', tostring(f.since), 'until', tostring(f['until']), 'strikes', f.strikes,
                     'cond', f.cond)
          if f.cond == 1 then redis.call('SADD', condemned, id) else redis.call('SREM', condemned, id) end
        elseif kind == 'clear' then
          redis.call('HSET', key, 'sus', '', 'until', '0', 'strikes', 0, 'cond', 0)
          redis.call('SREM', condemned, id)
        else
          redis.call('HSET', key, 'cond', 0)
          redis.call('SREM', condemned, id)
        end
        local f = redis.call('HMGET', key, 'usage', 'handed')
        refresh(id, tonumber(f[1]), tonumber(f[2]), max_usage, warm_up, strategy)
        reply = {'ok'}
      end
    end
    table.insert(replies, reply)
  end
  return replies
end
"""

#: Apply the queued writes, then pick a session, in one round trip.
#: ARGV: base, now, max_pool_size, max_usage, max_age, warm_up, strategy, max_error, decrement,
#: pinned id or "", new id, user agent, n excluded proxies, ...excluded, n candidate proxies, ...candidates,
#: then the queued writes (see apply_ops) to the end.
#: Reply: {write replies, {status, id, usage, errors, cv, uv, live sessions, retired count, sus, until,
#: strikes, cond}, ids of the
#: sessions this call retired for their age}; fetch a session's hashes only when its cv (cookies) or uv
#: (user data) is new to the process.
ACQUIRE = (
    COMMON
    + r"""
local now, max_pool = tonumber(ARGV[2]), tonumber(ARGV[3])
NOW = now
local max_usage, max_age = tonumber(ARGV[4]), tonumber(ARGV[5])
local warm_up, strategy = tonumber(ARGV[6]), ARGV[7]
local max_error, decrement = tonumber(ARGV[8]), tonumber(ARGV[9])
local pinned, new_id, agent = ARGV[10], ARGV[11], ARGV[12]
local excluded, i = {}, 13
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do excluded[ARGV[i]] = true; i = i + 1 end
local candidates = {}
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if not excluded[ARGV[i]] then table.insert(candidates, ARGV[i]) end
  i = i + 1
end
local writes = apply_ops(i, #ARGV, max_usage, max_error, decrement, warm_up, strategy)

for _, id in ipairs(redis.call('ZRANGEBYSCORE', asleep, '-inf', now, 'LIMIT', 0, 100)) do  -- their wait is over
  local f = redis.call('HMGET', base .. ':s:' .. id, 'usage', 'handed')
  if f[1] then refresh(id, tonumber(f[1]), tonumber(f[2]), max_usage, warm_up, strategy)
  else redis.call('ZREM', asleep, id) end
end

local expired = redis.call('ZRANGEBYSCORE', live, '-inf', now - max_age, 'LIMIT', 0, 100)
for _, id in ipairs(expired) do
  retire(id)
end

local function counts()
  return redis.call('ZCARD', live), tonumber(redis.call('HGET', meta, 'retired') or '0')
end

local function hand_out(id, status)
  local key = base .. ':s:' .. id
  local handed = redis.call('HINCRBY', key, 'handed', 1)
  local f = redis.call('HMGET', key, 'usage', 'errors', 'cv', 'uv', 'sus', 'until', 'strikes', 'cond')
  local usage = tonumber(f[1])
  if strategy == 'round_robin' then
    if redis.call('ZSCORE', ready, id) then redis.call('ZADD', ready, redis.call('HINCRBY', meta, 'seq', 1), id) end
  end
  refresh(id, usage, handed, max_usage, warm_up, strategy)
  local alive, retired = counts()
  return {writes, {status, id, f[1], f[2], f[3] or '0', f[4] or '0', alive, retired,
                   f[5] or '', f[6] or '0', f[7] or '0', f[8] or '0'}, expired}
end

local status = 'new'
if pinned ~= '' then
  if redis.call('ZSCORE', live, pinned) then return hand_out(pinned, 'pinned') end
  status = 'missing'
end

-- sessions sitting out leave their room to fresh ones meanwhile (twice max_pool at most), condemned ones
-- always (three times at most)
local alive, held = redis.call('ZCARD', live), 0
local condemned_count = redis.call('SCARD', condemned)
held = alive - condemned_count - math.min(math.max(redis.call('ZCARD', asleep) - condemned_count, 0), max_pool)
if held < max_pool and alive < 3 * max_pool and #candidates > 0 then
  local best, fewest = nil, nil
  for _, proxy in ipairs(candidates) do
    local count = tonumber(redis.call('HGET', proxies, proxy) or '0')
    if fewest == nil or count < fewest then best, fewest = proxy, count end
  end
  local key = base .. ':s:' .. new_id
  redis.call('HSET', key, 'created_at', ARGV[2], 'usage', 0, 'handed', 0, 'errors', '0', 'proxy', best,
             'ua', agent, 'ud', '', 'cv', 0, 'uv', 0)
  redis.call('ZADD', live, now, new_id)
  redis.call('HINCRBY', proxies, best, 1)
  redis.call('HINCRBY', meta, 'created', 1)
  return hand_out(new_id, status == 'missing' and 'missing_created' or 'created')
end

local picks
if strategy == 'random' then
  picks = redis.call('ZRANDMEMBER', ready, -8)  -- 8 independent picks (a positive count is not shuffled)
else
  picks = redis.call('ZRANGE', ready, 0, 7)
end
for _, id in ipairs(picks) do
  local proxy = redis.call('HGET', base .. ':s:' .. id, 'proxy') or ''
  if not excluded[proxy] then
    return hand_out(id, status == 'missing' and 'missing_picked' or 'picked')
  end
end
local retired
alive, retired = counts()
return {writes, {status == 'missing' and 'missing_wait' or 'wait', '', '0', '0', '0', '0', alive, retired,
                 '', '0', '0', '0'}, expired}
"""
)

#: Apply queued writes on their own (when no pick carries them).
#: ARGV: base, now, max_usage, max_error, decrement, warm_up, strategy, then the writes.
APPLY = (
    COMMON
    + r"""
NOW = tonumber(ARGV[2])
return apply_ops(8, #ARGV, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7])
"""
)

#: ARGV: base, ttl seconds. Sets the TTL of every key of the pool.
TOUCH = (
    COMMON
    + r"""
local ttl = tonumber(ARGV[2])
for _, k in ipairs({live, ready, meta, proxies, asleep, condemned}) do redis.call('EXPIRE', k, ttl) end
for _, id in ipairs(redis.call('ZRANGE', live, 0, -1)) do
  redis.call('EXPIRE', base .. ':s:' .. id, ttl)
  redis.call('EXPIRE', base .. ':c:' .. id, ttl)
end
return 1
"""
)
