/**
 * The redis store's Lua scripts. Each runs atomically in the server, so a check and the change it guards
 * (room, then reserve) cannot interleave with another replica's. Keys are built from the prefix in ARGV[1]:
 * this targets one Redis or Valkey primary (with replicas or Sentinel), not Redis Cluster, whose scripts must
 * name every key up front.
 *
 *   {P}b:{backend}      hash  cap, used (newest completed poll), seq (polls begun), done (newest completed),
 *                             ver (bumped by every change: replies and messages can arrive out of order)
 *   {P}o:{backend}      hash  replica → Σ outstanding of its live reservations there
 *   {P}live:{backend}   set   reservation ids
 *   {P}r:{id}           hash  b rep user prompt pred res held vis w wout q
 *   {P}own:{replica}    set   reservation ids of a replica (what its lease covers)
 *   {P}replicas         set   replicas that heartbeat;  {P}lease:{replica} a key with the lease's TTL
 *   {P}m:{backend}:{seq} hash id → held, the snapshot a poll took when it began (60 s TTL)
 *   {P}vtc              hash  user → VTC counter;  {P}vtc:last  the counter "last left" (lift rule)
 *   {P}heads            hash  "replica|user" → need of that user's queue head on that replica
 *   {P}q:{user} zset, {P}qt:{user} / {P}qr:{user} hashes: the quota window's entries, tokens and requests
 *   {P}backends         set   backends ever seen;  {P}wake  the pub/sub channel of figures after a change
 *
 * Token figures are integers (HINCRBY); VTC counters are floats (HINCRBYFLOAT). Quota windows run on the
 * callers' wall clocks (passed in, milliseconds since the epoch): replicas must keep their clocks in step
 * (NTP), and a skew of s ms moves a window's edge by s ms.
 */

const COMMON = `
local P = ARGV[1]
local function num(v) return tonumber(v) or 0 end
local function figures(b)
  local f = redis.call('HMGET', P..'b:'..b, 'cap', 'used', 'done', 'ver')
  local o = redis.call('HGETALL', P..'o:'..b)
  local out = {}
  for i = 1, #o, 2 do out[o[i]] = num(o[i + 1]) end
  return {b = b, cap = num(f[1]), used = num(f[2]), seq = num(f[3]), ver = num(f[4]), o = out}
end
local function adjust(b, rep, delta)
  if delta ~= 0 then
    redis.call('HINCRBY', P..'b:'..b, 'ver', 1)
    local left = redis.call('HINCRBY', P..'o:'..b, rep, delta)
    if left <= 0 then redis.call('HDEL', P..'o:'..b, rep) end
  end
end
local function outstanding(res, vis)
  local o = num(res) - num(vis)
  if o < 0 then return 0 end
  return o
end
local function publish(touched)
  local list = {}
  for b, _ in pairs(touched) do list[#list + 1] = figures(b) end
  if #list > 0 then redis.call('PUBLISH', P..'wake', cjson.encode(list)) end
end
local function qexpire(user, now)
  local z = P..'q:'..user
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - 60000)
  for i = 1, #old do
    redis.call('HDEL', P..'qt:'..user, old[i])
    redis.call('HDEL', P..'qr:'..user, old[i])
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now - 60000) end
end
local function qentries(user)
  local e = redis.call('ZRANGE', P..'q:'..user, 0, -1, 'WITHSCORES')
  local list = {}
  for i = 1, #e, 2 do
    list[#list + 1] = {
      at = num(e[i + 1]),
      t = num(redis.call('HGET', P..'qt:'..user, e[i])),
      r = num(redis.call('HGET', P..'qr:'..user, e[i])),
    }
  end
  return list
end
local function qtouch(user)
  redis.call('PEXPIRE', P..'q:'..user, 61000)
  redis.call('PEXPIRE', P..'qt:'..user, 61000)
  redis.call('PEXPIRE', P..'qr:'..user, 61000)
end
local function headUser(field)
  return string.sub(field, string.find(field, '|', 1, true) + 1)
end
`

/** ARGV: P b id rep user prompt res headroomRatio weight wIn wOut tpm rpm nowMs (weight…rpm '' when unused). */
export const ADMIT = `${COMMON}
local b, id, rep, user = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prompt, res, hr = num(ARGV[6]), num(ARGV[7]), num(ARGV[8])
local weight, wIn, wOut = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local tpm, rpm = tonumber(ARGV[12]), tonumber(ARGV[13])
local rk = P..'r:'..id
if redis.call('EXISTS', rk) == 1 then return cjson.encode({r = 'ok', f = figures(b)}) end
local cap = num(redis.call('HGET', P..'b:'..b, 'cap'))
if cap <= 0 then return cjson.encode({r = 'no-poll', f = figures(b)}) end
local used = num(redis.call('HGET', P..'b:'..b, 'used'))
local sum = 0
local outs = redis.call('HVALS', P..'o:'..b)
for i = 1, #outs do sum = sum + num(outs[i]) end
local room = cap - used - hr * cap - sum
if res > room then return cjson.encode({r = 'kv', f = figures(b)}) end
if weight then
  local mine = num(redis.call('HGET', P..'vtc', user))
  local heads = redis.call('HGETALL', P..'heads')
  for i = 1, #heads, 2 do
    local u = headUser(heads[i])
    local need = num(heads[i + 1])
    if u ~= user and need <= room and room - res < need and num(redis.call('HGET', P..'vtc', u)) < mine then
      return cjson.encode({r = 'fairness', f = figures(b)})
    end
  end
end
local limited = tpm ~= nil or rpm ~= nil
local now = 0
if limited then
  now = num(ARGV[14])
  qexpire(user, now)
  local list = qentries(user)
  local tokens, requests = 0, 0
  for k = 1, #list do
    tokens = tokens + list[k].t
    requests = requests + list[k].r
  end
  local wait = 0
  if tpm and res > tpm then
    if #list > 0 then wait = list[#list].at + 60000 - now end
  elseif tpm then
    local excess = tokens + res - tpm
    local k = 1
    while excess > 0 and k <= #list do
      excess = excess - list[k].t
      if excess <= 0 then wait = math.max(wait, list[k].at + 60000 - now) end
      k = k + 1
    end
  end
  if rpm then
    local excess = requests + 1 - rpm
    local k = 1
    while excess > 0 and k <= #list do
      excess = excess - list[k].r
      if excess <= 0 then wait = math.max(wait, list[k].at + 60000 - now) end
      k = k + 1
    end
  end
  if wait > 0 then return cjson.encode({r = 'quota', w = math.max(1, math.ceil(wait))}) end
end
local pred = res - prompt
if pred < 0 then pred = 0 end
redis.call('HSET', rk, 'b', b, 'rep', rep, 'user', user, 'prompt', prompt, 'pred', pred, 'res', res,
  'held', 0, 'vis', 0, 'w', ARGV[9], 'wout', ARGV[11], 'q', limited and '1' or '0')
redis.call('SADD', P..'live:'..b, id)
redis.call('SADD', P..'own:'..rep, id)
redis.call('SADD', P..'backends', b)
adjust(b, rep, res)
if weight then redis.call('HINCRBYFLOAT', P..'vtc', user, (wIn * prompt + wOut * pred) / weight) end
if limited then
  redis.call('ZADD', P..'q:'..user, now, id)
  redis.call('HSET', P..'qt:'..user, id, res)
  redis.call('HSET', P..'qr:'..user, id, 1)
  qtouch(user)
end
return cjson.encode({r = 'ok', f = figures(b)})
`

/** ARGV: P id completionTokens nowMs. Returns {r = 1} the first time, {r = 0} after. */
export const RELEASE = `${COMMON}
local id = ARGV[2]
local actual = num(ARGV[3])
local rk = P..'r:'..id
if redis.call('EXISTS', rk) == 0 then return cjson.encode({r = 0}) end
local v = redis.call('HMGET', rk, 'b', 'rep', 'user', 'pred', 'res', 'vis', 'w', 'wout', 'q')
local b, rep, user, pred = v[1], v[2], v[3], num(v[4])
adjust(b, rep, -outstanding(v[5], v[6]))
redis.call('SREM', P..'live:'..b, id)
redis.call('SREM', P..'own:'..rep, id)
redis.call('DEL', rk)
local w, wout = tonumber(v[7]), tonumber(v[8])
if w and wout then redis.call('HINCRBYFLOAT', P..'vtc', user, wout * (actual - pred) / w) end
if v[9] == '1' then
  local now = num(ARGV[4])
  qexpire(user, now)
  local delta = actual - pred
  if delta > 0 then
    redis.call('ZADD', P..'q:'..user, now, id..':over')
    redis.call('HSET', P..'qt:'..user, id..':over', delta)
    redis.call('HSET', P..'qr:'..user, id..':over', 0)
    qtouch(user)
  elseif delta < 0 then
    local t = redis.call('HGET', P..'qt:'..user, id)
    if t then redis.call('HSET', P..'qt:'..user, id, math.max(0, num(t) + delta)) end
  end
end
publish({[b] = true})
return cjson.encode({r = 1})
`

/** ARGV: P rep b, then (id held res) per reservation of rep on b. Returns the poll's sequence number. */
export const BEGIN_POLL = `${COMMON}
local rep, b = ARGV[2], ARGV[3]
for i = 4, #ARGV, 3 do
  local rk = P..'r:'..ARGV[i]
  local v = redis.call('HMGET', rk, 'rep', 'held', 'res', 'vis', 'b')
  if v[1] == rep then
    local res = math.max(num(v[3]), num(ARGV[i + 2]))
    redis.call('HSET', rk, 'held', math.max(num(v[2]), num(ARGV[i + 1])), 'res', res)
    adjust(v[5], rep, outstanding(res, v[4]) - outstanding(v[3], v[4]))
  end
end
local seq = redis.call('HINCRBY', P..'b:'..b, 'seq', 1)
redis.call('SADD', P..'backends', b)
local mk = P..'m:'..b..':'..seq
redis.call('HSET', mk, '', 0)
local ids = redis.call('SMEMBERS', P..'live:'..b)
for i = 1, #ids do
  local h = num(redis.call('HGET', P..'r:'..ids[i], 'held'))
  if h > 0 then redis.call('HSET', mk, ids[i], h) end
end
redis.call('PEXPIRE', mk, 60000)
return seq
`

/** ARGV: P b seq cap used. Returns the backend's figures (JSON). */
export const COMPLETE_POLL = `${COMMON}
local b, seq = ARGV[2], num(ARGV[3])
local bk = P..'b:'..b
local done = num(redis.call('HGET', bk, 'done'))
local mk = P..'m:'..b..':'..seq
if seq <= done or redis.call('EXISTS', mk) == 0 then
  redis.call('DEL', mk)
  return cjson.encode(figures(b))
end
redis.call('HSET', bk, 'done', seq, 'cap', ARGV[4], 'used', ARGV[5])
redis.call('HINCRBY', bk, 'ver', 1)
local m = redis.call('HGETALL', mk)
for i = 1, #m, 2 do
  if m[i] ~= '' then
    local rk = P..'r:'..m[i]
    local v = redis.call('HMGET', rk, 'rep', 'res', 'vis', 'b')
    local h = num(m[i + 1])
    if v[1] and h > num(v[3]) then
      redis.call('HSET', rk, 'vis', h)
      adjust(v[4], v[1], outstanding(v[2], h) - outstanding(v[2], v[3]))
    end
  end
end
for s = seq, math.max(done + 1, seq - 64), -1 do redis.call('DEL', P..'m:'..b..':'..s) end
publish({[b] = true})
return cjson.encode(figures(b))
`

const REAP = `
local function reap(r, touched)
  local ids = redis.call('SMEMBERS', P..'own:'..r)
  for i = 1, #ids do
    local rk = P..'r:'..ids[i]
    local v = redis.call('HMGET', rk, 'b', 'res', 'vis')
    if v[1] then
      adjust(v[1], r, -outstanding(v[2], v[3]))
      redis.call('SREM', P..'live:'..v[1], ids[i])
      redis.call('DEL', rk)
      touched[v[1]] = true
    end
  end
  redis.call('DEL', P..'own:'..r)
  local heads = redis.call('HKEYS', P..'heads')
  for i = 1, #heads do
    if string.sub(heads[i], 1, #r + 1) == r..'|' then redis.call('HDEL', P..'heads', heads[i]) end
  end
  redis.call('SREM', P..'replicas', r)
  return #ids
end
`

/** ARGV: P rep leaseMs. Returns {live replicas, reservations reaped}. */
export const HEARTBEAT = `${COMMON}${REAP}
redis.call('SET', P..'lease:'..ARGV[2], '1', 'PX', ARGV[3])
redis.call('SADD', P..'replicas', ARGV[2])
local reps = redis.call('SMEMBERS', P..'replicas')
local alive, reaped = 0, 0
local touched = {}
for i = 1, #reps do
  if redis.call('EXISTS', P..'lease:'..reps[i]) == 1 then alive = alive + 1
  else reaped = reaped + reap(reps[i], touched) end
end
publish(touched)
return {alive, reaped}
`

/** ARGV: P rep leaseMs, then (id b user prompt res held) per live reservation of rep. */
export const RESYNC = `${COMMON}
local rep = ARGV[2]
redis.call('SET', P..'lease:'..rep, '1', 'PX', ARGV[3])
redis.call('SADD', P..'replicas', rep)
local want = {}
for i = 4, #ARGV, 6 do want[ARGV[i]] = true end
-- Its queue heads are re-noted after the resync: the ones it left behind may be long gone.
local hk = redis.call('HKEYS', P..'heads')
for i = 1, #hk do
  if string.sub(hk[i], 1, #rep + 1) == rep..'|' then redis.call('HDEL', P..'heads', hk[i]) end
end
local touched = {}
local own = redis.call('SMEMBERS', P..'own:'..rep)
for i = 1, #own do
  if not want[own[i]] then
    local rk = P..'r:'..own[i]
    local v = redis.call('HMGET', rk, 'b', 'res', 'vis')
    if v[1] then
      adjust(v[1], rep, -outstanding(v[2], v[3]))
      redis.call('SREM', P..'live:'..v[1], own[i])
      touched[v[1]] = true
    end
    redis.call('DEL', rk)
    redis.call('SREM', P..'own:'..rep, own[i])
  end
end
for i = 4, #ARGV, 6 do
  local id, b, user, prompt, res, held = ARGV[i], ARGV[i + 1], ARGV[i + 2], num(ARGV[i + 3]), num(ARGV[i + 4]), num(ARGV[i + 5])
  local rk = P..'r:'..id
  local v = redis.call('HMGET', rk, 'rep', 'held', 'res', 'vis')
  if v[1] == rep then
    local r2 = math.max(num(v[3]), res)
    redis.call('HSET', rk, 'held', math.max(num(v[2]), held), 'res', r2)
    adjust(b, rep, outstanding(r2, v[4]) - outstanding(v[3], v[4]))
  elseif not v[1] then
    local pred = res - prompt
    if pred < 0 then pred = 0 end
    redis.call('HSET', rk, 'b', b, 'rep', rep, 'user', user, 'prompt', prompt, 'pred', pred, 'res', res,
      'held', held, 'vis', 0, 'w', '', 'wout', '', 'q', '0')
    redis.call('SADD', P..'live:'..b, id)
    redis.call('SADD', P..'own:'..rep, id)
    redis.call('SADD', P..'backends', b)
    adjust(b, rep, res)
  end
  touched[b] = true
end
publish(touched)
return 1
`

/** ARGV: P rep user need ('' = the user's queue here emptied). */
export const NOTE_HEAD = `${COMMON}
local rep, user = ARGV[2], ARGV[3]
local field = rep..'|'..user
local heads = redis.call('HGETALL', P..'heads')
local elsewhere, here, floor = false, false, nil
for i = 1, #heads, 2 do
  local u = headUser(heads[i])
  if u == user then
    if heads[i] == field then here = true else elsewhere = true end
  else
    local c = num(redis.call('HGET', P..'vtc', u))
    if floor == nil or c < floor then floor = c end
  end
end
if ARGV[4] == '' then
  redis.call('HDEL', P..'heads', field)
  if here and not elsewhere and redis.call('HLEN', P..'heads') == 0 then
    redis.call('SET', P..'vtc:last', num(redis.call('HGET', P..'vtc', user)))
  end
  return 0
end
if not here and not elsewhere then
  if floor == nil then floor = num(redis.call('GET', P..'vtc:last')) end
  local own = redis.call('HGET', P..'vtc', user)
  if not own or num(own) < floor then redis.call('HSET', P..'vtc', user, floor) end
end
redis.call('HSET', P..'heads', field, ARGV[4])
return 0
`

/** ARGV: P. Every backend's figures (JSON list). */
export const FIGURES = `${COMMON}
local list = {}
local bs = redis.call('SMEMBERS', P..'backends')
for i = 1, #bs do list[#list + 1] = figures(bs[i]) end
return cjson.encode(list)
`

/** ARGV: P user nowMs. The user's shared sliding minute (JSON {tokens, requests}). */
export const QUOTA_USAGE = `${COMMON}
local now = num(ARGV[3])
qexpire(ARGV[2], now)
local list = qentries(ARGV[2])
local tokens, requests = 0, 0
for k = 1, #list do
  tokens = tokens + list[k].t
  requests = requests + list[k].r
end
return cjson.encode({tokens = tokens, requests = requests})
`

export const SCRIPTS = {
  kvgateAdmit: ADMIT,
  kvgateRelease: RELEASE,
  kvgateBeginPoll: BEGIN_POLL,
  kvgateCompletePoll: COMPLETE_POLL,
  kvgateHeartbeat: HEARTBEAT,
  kvgateResync: RESYNC,
  kvgateNoteHead: NOTE_HEAD,
  kvgateFigures: FIGURES,
  kvgateQuotaUsage: QUOTA_USAGE,
} as const

export type ScriptName = keyof typeof SCRIPTS
