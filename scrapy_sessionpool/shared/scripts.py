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
* ``B:procs``   set of the processes that hold hand-outs
* ``B:hb:<p>``  process ``p``'s heartbeat: it expires unless ``p`` renews it (the lease TTL)
* ``B:lease:<p>`` hash: session id -> hand-outs of process ``p`` not answered yet
* ``B:done:<p>`` hash: ``batch`` (the id of ``p``'s last batch of writes applied), ``replies`` (their
  replies as JSON)
* ``B:picks:<p>`` sorted set: "<pick id>:<n>:<session id>" by pick id (n: the hand-out's rank in its pick),
  ``p``'s picks not known answered

``handed`` counts hand-outs (``usage`` counts answers), so ``handed - usage``
is the number of requests in flight. Each hand-out is also leased to its
process: a process whose heartbeat lapsed (it crashed, froze or lost Redis) has
its hand-outs given back by the next heartbeat of another process. A batch of
writes carries an id, so a batch sent again after its reply was lost is applied
once; a pick whose reply was lost is given back by the process's next call.
"""

#: The tags that begin the scripts' replies, as the Lua below writes them (a test checks it).
REPLY_OK = "ok"
REPLY_RETIRED = "retired"  # then the reason: one of reasons.COMPUTED, or the one the process gave
REPLY_GONE = "gone"  # retired already (by another process, or by an earlier write)
REPLY_TALLIED = "tallied"  # a session made and retired while Redis was away, counted

COMMON = r"""
local live, ready, meta, proxies, asleep, condemned = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local procs = KEYS[7]
local base = ARGV[1]
local NOW = 0  -- set by each script that reads the time
local PROC = ''  -- the calling process, set by each script that has one

local function lease_key(p) return base .. ':lease:' .. p end

-- one hand-out of id to the calling process ended (answered or released); false if the process held
-- no lease on it (given back already, its heartbeat having lapsed, or a hand-out made while Redis was away)
local function unlease(id)
  if PROC == '' then return true end
  local key = lease_key(PROC)
  local left = redis.call('HINCRBY', key, id, -1)
  if left <= 0 then redis.call('HDEL', key, id) end
  return left >= 0
end

-- may a session be made now? sessions sitting out leave their room to fresh ones meanwhile (twice
-- max_pool at most), condemned ones always (three times at most)
local function has_room(max_pool)
  local alive = redis.call('ZCARD', live)
  local condemned_count = redis.call('SCARD', condemned)
  local held = alive - condemned_count - math.min(math.max(redis.call('ZCARD', asleep) - condemned_count, 0), max_pool)
  return held < max_pool and alive < 3 * max_pool
end

local function retire(id)
  if PROC ~= '' then redis.call('HDEL', lease_key(PROC), id) end
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
  local leased = unlease(id)
  if code == 'r' then
    local handed = tonumber(redis.call('HGET', key, 'handed'))
    if leased then handed = redis.call('HINCRBY', key, 'handed', -1) end
    local usage = tonumber(redis.call('HGET', key, 'usage'))
    if handed < usage then handed = redis.call('HINCRBY', key, 'handed', usage - handed) end
    refresh(id, usage, handed, max_usage, warm_up, strategy)
    return {'ok', usage, redis.call('HGET', key, 'errors')}
  end
  local usage = redis.call('HINCRBY', key, 'usage', 1)
  local handed
  if leased then handed = tonumber(redis.call('HGET', key, 'handed'))
  else handed = redis.call('HINCRBY', key, 'handed', 1) end  -- an answer for a hand-out not counted as out
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
-- fields; refused when the pool is full), tally (a = how many sessions a process made and retired
-- while Redis was away), suspect (a = JSON {since, until, strikes, cond}), clear and acquit (of a suspicion).
local function apply_ops(first, last, max_pool, max_usage, max_error, decrement, warm_up, strategy)
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
      reply = {'ok'}
      if redis.call('EXISTS', key) == 1 then
        -- made already
      elseif not has_room(max_pool) then  -- made while Redis was away: the pool filled up meanwhile
        redis.call('HINCRBY', meta, 'created', 1)
        redis.call('HINCRBY', meta, 'retired', 1)
        reply = {'retired', 'pool_full'}
      else
        local f = cjson.decode(a)
        redis.call('HSET', key, 'created_at', f.created_at, 'usage', f.usage, 'handed', f.usage, 'errors', f.errors,
                   'proxy', f.proxy, 'ua', f.ua, 'ud', f.ud, 'cv', 0, 'uv', 0)
        redis.call('ZADD', live, f.created_at, id)
        redis.call('HINCRBY', proxies, f.proxy, 1)
        redis.call('HINCRBY', meta, 'created', 1)
        refresh(id, tonumber(f.usage), tonumber(f.usage), max_usage, warm_up, strategy)
      end
    elseif redis.call('EXISTS', key) == 0 then
      if kind == 'good' or kind == 'bad' or kind == 'release' or kind == 'marks' then  -- its hand-outs end
        if PROC ~= '' then redis.call('HDEL', lease_key(PROC), id) end
      end
    else
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
        reply = {'ok', redis.call('HINCRBY', key, 'cv', 1)}  -- the new version: the writer has it already
      elseif kind == 'ud' then
        redis.call('HSET', key, 'ud', a)
        reply = {'ok', redis.call('HINCRBY', key, 'uv', 1)}
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

-- apply_ops for a batch with an id: a batch applied already (its reply was lost) is not applied
-- again; its replies are given once more
local function apply_batch(batch, first, last, max_pool, max_usage, max_error, decrement, warm_up, strategy)
  local done = base .. ':done:' .. PROC
  if batch ~= '' and redis.call('HGET', done, 'batch') == batch then
    return cjson.decode(redis.call('HGET', done, 'replies'))
  end
  local replies = apply_ops(first, last, max_pool, max_usage, max_error, decrement, warm_up, strategy)
  if batch ~= '' then
    redis.call('HSET', done, 'batch', batch, 'replies', cjson.encode(replies))
    redis.call('EXPIRE', done, 86400)
  end
  return replies
end

-- give back the hand-outs of the calling process's picks whose replies were lost (lost: their ids,
-- comma-separated)
local function settle_picks(lost, max_usage, max_error, decrement, warm_up, strategy)
  local picks = base .. ':picks:' .. PROC
  for pick in string.gmatch(lost, '[^,]+') do
    for _, record in ipairs(redis.call('ZRANGEBYSCORE', picks, pick, pick)) do
      local id = string.match(record, '^%d+:%d+:(.+)$') or string.sub(record, #pick + 2)
      local key = base .. ':s:' .. id
      if redis.call('EXISTS', key) == 1 then use(id, key, 'r', max_usage, max_error, decrement, warm_up, strategy)
      else redis.call('HDEL', lease_key(PROC), id) end
      redis.call('ZREM', picks, record)
    end
  end
end

-- forget the calling process's picks below pick id low: their replies arrived (called last: a
-- script's first write decides whether Redis, out of memory, refuses it)
local function prune_picks(low)
  if low ~= '' then redis.call('ZREMRANGEBYSCORE', base .. ':picks:' .. PROC, '-inf', '(' .. low) end
end

-- give back every hand-out of process p (it left, or its heartbeat lapsed); returns how many
local function give_back(p, max_usage, warm_up, strategy)
  local key = lease_key(p)
  local held, n = redis.call('HGETALL', key), 0
  for j = 1, #held, 2 do
    local id, count = held[j], tonumber(held[j + 1]) or 0
    local s = base .. ':s:' .. id
    local f = redis.call('HMGET', s, 'usage', 'handed')
    if f[1] and count > 0 then
      local usage, handed = tonumber(f[1]), tonumber(f[2])
      local back = math.min(count, handed - usage)
      if back > 0 then
        handed = redis.call('HINCRBY', s, 'handed', -back)
        n = n + back
      end
      refresh(id, usage, handed, max_usage, warm_up, strategy)
    end
  end
  redis.call('DEL', key, base .. ':hb:' .. p, base .. ':picks:' .. p)
  redis.call('SREM', procs, p)
  return n
end
"""

#: Apply the queued writes, then pick a session, in one round trip; and up to ``want - 1`` more of
#: the ready sessions for the process's next requests (taken ahead: see ``hand``), unless this pick
#: made a session.
#: ARGV: base, now, max_pool_size, max_usage, max_age, warm_up, strategy, max_error, decrement,
#: pinned id or "", new id, user agent, process id, lease TTL (ms), pick id, lost picks, lowest pick id
#: still unanswered (see settle_picks), batch id or "", want, n excluded proxies, ...excluded, n candidate
#: proxies, ...candidates, then the queued writes (see apply_ops) to the end.
#: Reply: {write replies, {status, id, usage, errors, cv, uv, live sessions, retired count, sus, until,
#: strikes, cond}, ids of the sessions this call retired for their age, {the hand-outs taken ahead, each
#: as the pick}}; fetch a session's hashes only when its cv (cookies) or uv (user data) is new to the
#: process.
ACQUIRE = (
    COMMON
    + r"""
local now, max_pool = tonumber(ARGV[2]), tonumber(ARGV[3])
NOW = now
local max_usage, max_age = tonumber(ARGV[4]), tonumber(ARGV[5])
local warm_up, strategy = tonumber(ARGV[6]), ARGV[7]
local max_error, decrement = tonumber(ARGV[8]), tonumber(ARGV[9])
local pinned, new_id, agent = ARGV[10], ARGV[11], ARGV[12]
PROC = ARGV[13]
local lease_ttl, pick_id, batch, want = ARGV[14], ARGV[15], ARGV[18], tonumber(ARGV[19])
local excluded, i = {}, 20
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do excluded[ARGV[i]] = true; i = i + 1 end
local candidates = {}
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  if not excluded[ARGV[i]] then table.insert(candidates, ARGV[i]) end
  i = i + 1
end
settle_picks(ARGV[16], max_usage, max_error, decrement, warm_up, strategy)
local writes = apply_batch(batch, i, #ARGV, max_pool, max_usage, max_error, decrement, warm_up, strategy)

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

local picks, rank = base .. ':picks:' .. PROC, 0

-- one hand-out of id to the calling process: its fields as the reply gives them
local function hand_out(id, status)
  local key = base .. ':s:' .. id
  local handed = redis.call('HINCRBY', key, 'handed', 1)
  -- leased to this process, which must be alive (a heartbeat) for the lease to last
  redis.call('HINCRBY', lease_key(PROC), id, 1)
  rank = rank + 1
  redis.call('ZADD', picks, pick_id, pick_id .. ':' .. rank .. ':' .. id)
  local f = redis.call('HMGET', key, 'usage', 'errors', 'cv', 'uv', 'sus', 'until', 'strikes', 'cond')
  local usage = tonumber(f[1])
  if strategy == 'round_robin' then
    if redis.call('ZSCORE', ready, id) then redis.call('ZADD', ready, redis.call('HINCRBY', meta, 'seq', 1), id) end
  end
  refresh(id, usage, handed, max_usage, warm_up, strategy)
  return {status, id, f[1], f[2], f[3] or '0', f[4] or '0', 0, 0, f[5] or '', f[6] or '0', f[7] or '0', f[8] or '0'}
end

-- a ready session whose proxy is not excluded, handed out; nil when there is none
local function from_ready(status)
  local ids
  if strategy == 'random' then
    ids = redis.call('ZRANDMEMBER', ready, -8)  -- 8 independent picks (a positive count is not shuffled)
  else
    ids = redis.call('ZRANGE', ready, 0, 7)
  end
  for _, id in ipairs(ids) do
    local proxy = redis.call('HGET', base .. ':s:' .. id, 'proxy') or ''
    if not excluded[proxy] then return hand_out(id, status) end
  end
  return nil
end

-- the reply: the pick (or none), and when it made no session, up to want - 1 more taken ahead
local function reply(pick, status)
  local ahead = {}
  if pick == nil then
    pick = {status, '', '0', '0', '0', '0', 0, 0, '', '0', '0', '0'}
  elseif not string.find(pick[1], 'created', 1, true) then
    for _ = 2, want do
      local more = from_ready('picked')
      if more == nil then break end
      table.insert(ahead, more)
    end
  end
  if rank > 0 then
    redis.call('SADD', procs, PROC)
    redis.call('SET', base .. ':hb:' .. PROC, '1', 'PX', lease_ttl, 'NX')
    redis.call('EXPIRE', picks, 86400)
  end
  prune_picks(ARGV[17])
  pick[7], pick[8] = counts()
  return {writes, pick, expired, ahead}
end

local status = 'new'
if pinned ~= '' then
  if redis.call('ZSCORE', live, pinned) then return reply(hand_out(pinned, 'pinned')) end
  status = 'missing'
end

if #candidates > 0 and has_room(max_pool) then
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
  return reply(hand_out(new_id, status == 'missing' and 'missing_created' or 'created'))
end

local missing = status == 'missing'
return reply(from_ready(missing and 'missing_picked' or 'picked'), missing and 'missing_wait' or 'wait')
"""
)

#: Apply queued writes on their own (when no pick carries them).
#: ARGV: base, now, max_pool_size, max_usage, max_error, decrement, warm_up, strategy, process id,
#: lost picks, lowest pick id still unanswered, batch id or "", then the writes.
APPLY = (
    COMMON
    + r"""
NOW = tonumber(ARGV[2])
PROC = ARGV[9]
local max_pool, max_usage = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_error, decrement, warm_up, strategy = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
settle_picks(ARGV[10], max_usage, max_error, decrement, warm_up, strategy)
local replies = apply_batch(ARGV[12], 13, #ARGV, max_pool, max_usage, max_error, decrement, warm_up, strategy)
prune_picks(ARGV[11])
return replies
"""
)

#: Renew the calling process's heartbeat; give back the hand-outs of every process whose heartbeat
#: lapsed. ARGV: base, now, process id, lease TTL (ms), max_usage, warm_up, strategy.
#: Reply: {processes whose hand-outs were given back, hand-outs given back}.
HEARTBEAT = (
    COMMON
    + r"""
NOW = tonumber(ARGV[2])
PROC = ARGV[3]
local max_usage, warm_up, strategy = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
redis.call('SET', base .. ':hb:' .. PROC, '1', 'PX', ARGV[4])
redis.call('SADD', procs, PROC)
local dead, back = 0, 0
for _, p in ipairs(redis.call('SMEMBERS', procs)) do
  if redis.call('EXISTS', base .. ':hb:' .. p) == 0 then
    dead = dead + 1
    back = back + give_back(p, max_usage, warm_up, strategy)
  end
end
return {dead, back}
"""
)

#: The calling process leaves: its hand-outs are given back, its heartbeat and records deleted.
#: ARGV: base, now, process id, max_usage, warm_up, strategy. Reply: hand-outs given back.
LEAVE = (
    COMMON
    + r"""
NOW = tonumber(ARGV[2])
PROC = ARGV[3]
local back = give_back(PROC, tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6])
redis.call('DEL', base .. ':done:' .. PROC)
return back
"""
)

#: ARGV: base, ttl seconds. Sets the TTL of every key of the pool.
TOUCH = (
    COMMON
    + r"""
local ttl = tonumber(ARGV[2])
for _, k in ipairs({live, ready, meta, proxies, asleep, condemned, procs}) do redis.call('EXPIRE', k, ttl) end
for _, p in ipairs(redis.call('SMEMBERS', procs)) do redis.call('EXPIRE', lease_key(p), ttl) end
for _, id in ipairs(redis.call('ZRANGE', live, 0, -1)) do
  redis.call('EXPIRE', base .. ':s:' .. id, ttl)
  redis.call('EXPIRE', base .. ':c:' .. id, ttl)
end
return 1
"""
)
