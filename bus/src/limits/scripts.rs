//! The Lua side of `window.rs`: the same arithmetic, run atomically in Redis so that nodes counting under one key
//! never interleave between reading and writing a counter.
//!
//! Every script takes the time as its first argument: milliseconds, or empty for the Redis server's `TIME` (the
//! default, so nodes with skewed clocks agree). `TIME` before a write is allowed because Redis 5+ replicates a
//! script's effects, not the script.

use std::sync::LazyLock;

use redis::Script;

/// Reads the time; every script starts with it.
const NOW: &str = r"
local function now_ms(arg)
  if arg ~= '' then return tonumber(arg) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Keys outlive their last window by this much, so a read at the edge still finds them.
local GRACE_MS = 1000
";

/// Grants admissions under a rate limit: one for the asking request (`own` 1) and up to `want` in all, as a lease
/// (`lease.rs`). A grant is at least one and never more than a sixteenth of what the window still has (so the
/// last admissions go one at a time), nor more than the node's pace can use before the lease ends.
///
/// KEYS: the counter. ARGV: now, kind (`fixed`, `log`, `slots`), limit, window (ms), want, own (`1` when the
/// asking request takes the first admission, `0` for a refill), pace (the node's requests per second), then for
/// `log` a member prefix unique to this call and how long the lease stays usable (ms), and for `slots` the slot
/// length (ms). Returns `{granted, valid_ms}` (the lease is usable for `valid_ms` from now) or
/// `{0, retry_after_ms}` when nothing is left.
pub(super) static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r"
local now = now_ms(ARGV[1])
local kind = ARGV[2]
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local want = tonumber(ARGV[5])
local own = ARGV[6] == '1'
local pace = tonumber(ARGV[7])
local function grant_of(room, valid)
  return math.max(1, math.min(want, math.floor(room / 16), math.ceil(pace * valid / 1000)))
end
if kind == 'fixed' then
  local start = now - (now % window)
  local stored = redis.call('HMGET', KEYS[1], 'b', 'n')
  local count = 0
  if tonumber(stored[1]) == start then count = tonumber(stored[2]) or 0 end
  if count >= limit then return {0, start + window - now} end
  local grant = grant_of(limit - count, start + window - now)
  redis.call('HSET', KEYS[1], 'b', string.format('%d', start), 'n', count + grant)
  redis.call('PEXPIRE', KEYS[1], start + window - now + GRACE_MS)
  return {grant, start + window - now}
elseif kind == 'log' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
  end
  local valid = tonumber(ARGV[9])
  local grant = grant_of(limit - count, valid)
  -- The asking request is admitted now; leased members may be used until now + valid, so they are scored then:
  -- each admission counts for at least a whole window after it happened.
  local members = {}
  for i = 1, grant do
    local at = now + valid
    if i == 1 and own then at = now end
    members[2 * i - 1] = string.format('%d', at)
    members[2 * i] = ARGV[8] .. ':' .. i
  end
  redis.call('ZADD', KEYS[1], unpack(members))
  redis.call('PEXPIRE', KEYS[1], window + valid + GRACE_MS)
  return {grant, valid}
else
  local slot = tonumber(ARGV[8])
  local first = math.floor((now - window + 1) / slot)
  local stored = redis.call('HGETALL', KEYS[1])
  local ids, counts, total = {}, {}, 0
  for i = 1, #stored, 2 do
    local id = tonumber(stored[i])
    if id < first then
      redis.call('HDEL', KEYS[1], stored[i])
    else
      local n = tonumber(stored[i + 1])
      table.insert(ids, id)
      counts[id] = n
      total = total + n
    end
  end
  if total >= limit then
    table.sort(ids)
    local left = total
    for _, id in ipairs(ids) do
      left = left - counts[id]
      if left < limit then return {0, (id + 1) * slot + window - 1 - now} end
    end
    return {0, window}
  end
  local id = math.floor(now / slot)
  local grant = grant_of(limit - total, (id + 1) * slot - now)
  redis.call('HINCRBY', KEYS[1], string.format('%d', id), grant)
  redis.call('PEXPIRE', KEYS[1], window + slot + GRACE_MS)
  -- Counted in this slot, so usable only while it lasts.
  return {grant, (id + 1) * slot - now}
end
"
    ))
});

/// The amount spent in each window.
///
/// KEYS: one counter per window. ARGV: now, then per window: kind (`fixed`, `sliding`), window (ms), slot (ms).
/// Returns one integer per key.
pub(super) static SPENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r"
local now = now_ms(ARGV[1])
local out = {}
for k = 1, #KEYS do
  local kind = ARGV[3 * k - 1]
  local window = tonumber(ARGV[3 * k])
  local slot = tonumber(ARGV[3 * k + 1])
  local sum = 0
  if kind == 'fixed' then
    local stored = redis.call('HMGET', KEYS[k], 'b', 'v')
    if tonumber(stored[1]) == now - (now % window) then sum = tonumber(stored[2]) or 0 end
  else
    local start = now - window
    local first = math.floor(start / slot)
    local fields = {}
    for id = first, math.floor(now / slot) do table.insert(fields, string.format('%d', id)) end
    local amounts = redis.call('HMGET', KEYS[k], unpack(fields))
    for i = 1, #fields do
      local amount = tonumber(amounts[i])
      if amount then
        if i == 1 then
          sum = sum + math.floor(amount * ((first + 1) * slot - start) / slot)
        else
          sum = sum + amount
        end
      end
    end
  end
  out[k] = sum
end
return out
"
    ))
});

/// Adds an amount to each window, dropping slots that have left it.
///
/// KEYS: one counter per window. ARGV: now, amount (nano-USD), then per window: kind, window (ms), slot (ms).
pub(super) static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r"
local now = now_ms(ARGV[1])
local amount = ARGV[2]
for k = 1, #KEYS do
  local kind = ARGV[3 * k]
  local window = tonumber(ARGV[3 * k + 1])
  local slot = tonumber(ARGV[3 * k + 2])
  if kind == 'fixed' then
    local start = now - (now % window)
    if tonumber(redis.call('HGET', KEYS[k], 'b')) == start then
      redis.call('HINCRBY', KEYS[k], 'v', amount)
    else
      redis.call('HSET', KEYS[k], 'b', string.format('%d', start), 'v', amount)
    end
    redis.call('PEXPIRE', KEYS[k], start + window - now + GRACE_MS)
  else
    local first = math.floor((now - window) / slot)
    for _, field in ipairs(redis.call('HKEYS', KEYS[k])) do
      if tonumber(field) < first then redis.call('HDEL', KEYS[k], field) end
    end
    redis.call('HINCRBY', KEYS[k], string.format('%d', math.floor(now / slot)), amount)
    redis.call('PEXPIRE', KEYS[k], window + slot + GRACE_MS)
  end
end
return 1
"
    ))
});
