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

/// The rate-limit arithmetic both admission scripts share: `rate_look` sees whether a counter has room,
/// `rate_take` counts a grant under it. Each takes `now` and the counter's kind (`fixed`, `log`, `slots`).
const RATE: &str = r"
-- The room left in a rate counter now, and when it is full (room 0) how long until the next admission. Drops
-- what has left the window. `slot` is the slot length of a `slots` counter.
local function rate_look(key, now, kind, limit, window, slot)
  if kind == 'fixed' then
    local start = now - (now % window)
    local stored = redis.call('HMGET', key, 'b', 'n')
    local count = 0
    if tonumber(stored[1]) == start then count = tonumber(stored[2]) or 0 end
    if count >= limit then return 0, start + window - now end
    return limit - count, 0
  elseif kind == 'log' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit then
      local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      return 0, tonumber(oldest[2]) + window - now
    end
    return limit - count, 0
  else
    slot = tonumber(slot)
    local first = math.floor((now - window + 1) / slot)
    local stored = redis.call('HGETALL', key)
    local ids, counts, total = {}, {}, 0
    for i = 1, #stored, 2 do
      local id = tonumber(stored[i])
      if id < first then
        redis.call('HDEL', key, stored[i])
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
        if left < limit then return 0, (id + 1) * slot + window - 1 - now end
      end
      return 0, window
    end
    return limit - total, 0
  end
end

-- Counts a grant under a counter `rate_look` found `room` (> 0) in: one admission for the asking request (`own`)
-- and up to `want` in all, never more than a sixteenth of the room (so the last admissions go one at a time) nor
-- more than the node's `pace` (requests a second) can use before the grant ends. `a`, `b`: for `log` a member
-- prefix unique to this call and how long leased members stay usable (ms); for `slots` the slot length.
-- Returns the grant and how long it is usable (ms from now).
local function rate_take(key, now, kind, limit, window, room, want, own, pace, a, b)
  local function grant_of(valid)
    return math.max(1, math.min(want, math.floor(room / 16), math.ceil(pace * valid / 1000)))
  end
  if kind == 'fixed' then
    local start = now - (now % window)
    local grant = grant_of(start + window - now)
    redis.call('HSET', key, 'b', string.format('%d', start), 'n', limit - room + grant)
    redis.call('PEXPIRE', key, start + window - now + GRACE_MS)
    return grant, start + window - now
  elseif kind == 'log' then
    local valid = tonumber(b)
    local grant = grant_of(valid)
    -- The asking request is admitted now; leased members may be used until now + valid, so they are scored then:
    -- each admission counts for at least a whole window after it happened.
    local members = {}
    for i = 1, grant do
      local at = now + valid
      if i == 1 and own then at = now end
      members[2 * i - 1] = string.format('%d', at)
      members[2 * i] = a .. ':' .. i
    end
    redis.call('ZADD', key, unpack(members))
    redis.call('PEXPIRE', key, window + valid + GRACE_MS)
    return grant, valid
  else
    local slot = tonumber(a)
    local id = math.floor(now / slot)
    local grant = grant_of((id + 1) * slot - now)
    redis.call('HINCRBY', key, string.format('%d', id), grant)
    redis.call('PEXPIRE', key, window + slot + GRACE_MS)
    -- Counted in this slot, so usable only while it lasts.
    return grant, (id + 1) * slot - now
  end
end
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
        "{NOW}{RATE}{}",
        r"
local now = now_ms(ARGV[1])
local kind = ARGV[2]
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local room, wait = rate_look(KEYS[1], now, kind, limit, window, ARGV[8])
if room <= 0 then return {0, wait} end
local grant, valid = rate_take(KEYS[1], now, kind, limit, window, room, tonumber(ARGV[5]), ARGV[6] == '1',
  tonumber(ARGV[7]), ARGV[8], ARGV[9])
return {grant, valid}
"
    ))
});

/// Admits one request under several rate limits at once, or under none: every counter is looked at first, and
/// only when each has room is the request counted (with a lease on top where `want` > 1) under all of them.
///
/// KEYS: the counters (distinct). ARGV: now, then seven per counter: kind (`fixed`, `log`, `slots`, or `zero`
/// for a limit of 0, which is never looked up), limit, window (ms), want, pace, and the two kind-specific
/// arguments of [`LEASE`] (empty when unused). Returns `{1, granted, valid_ms, …}` (a pair per counter, the
/// request's own admission included), or `{0, wait_ms, …}` with one wait per counter (-1: it had room) when any
/// had none; then nothing was counted.
pub(super) static ADMIT_ALL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{RATE}{}",
        r"
local now = now_ms(ARGV[1])
local rooms, waits, refused = {}, {}, false
for k = 1, #KEYS do
  local at = 1 + 7 * (k - 1)
  local kind = ARGV[at + 1]
  local room, wait = 0, tonumber(ARGV[at + 3])
  if kind ~= 'zero' then
    room, wait = rate_look(KEYS[k], now, kind, tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), ARGV[at + 6])
  end
  rooms[k] = room
  if room <= 0 then
    waits[k] = wait
    refused = true
  else
    waits[k] = -1
  end
end
if refused then
  local out = {0}
  for k = 1, #KEYS do out[k + 1] = waits[k] end
  return out
end
local out = {1}
for k = 1, #KEYS do
  local at = 1 + 7 * (k - 1)
  local grant, valid = rate_take(KEYS[k], now, ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]),
    rooms[k], tonumber(ARGV[at + 4]), true, tonumber(ARGV[at + 5]), ARGV[at + 6], ARGV[at + 7])
  out[2 * k] = grant
  out[2 * k + 1] = valid
end
return out
"
    ))
});

/// Adds a node's pending spend entries to each window and reads its sum (`spend_view.rs`): the write-behind
/// flush and the read-through of `spent` are one script, so a sum read after the entries it carried holds them.
///
/// KEYS: one counter per window. ARGV: now, then per window: kind (`fixed`, `sliding`), window (ms), slot (ms),
/// read (`1` to read the sum), the number of entries `n`, then `n` pairs of age (ms before now it was recorded)
/// and amount (nano-USD). An entry counts at the time it was recorded: in a sliding window's slot of that time (if
/// still inside the window), in a fixed window only if that time is in the current bucket (an ended bucket is read
/// by no one). Returns two integers per window: the sum (0 when not read) and, for a fixed window, the ms left in
/// its bucket (-1 otherwise).
pub(super) static FLUSH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r"
local now = now_ms(ARGV[1])
local out = {}
local at = 2
for k = 1, #KEYS do
  local key = KEYS[k]
  local fixed = ARGV[at] == 'fixed'
  local window = tonumber(ARGV[at + 1])
  local slot = tonumber(ARGV[at + 2])
  local read = ARGV[at + 3] == '1'
  local n = tonumber(ARGV[at + 4])
  at = at + 5
  if fixed then
    local start = now - (now % window)
    local add = 0
    for i = 0, n - 1 do
      if now - tonumber(ARGV[at + 2 * i]) >= start then add = add + tonumber(ARGV[at + 2 * i + 1]) end
    end
    if add > 0 then
      if tonumber(redis.call('HGET', key, 'b')) == start then
        redis.call('HINCRBY', key, 'v', string.format('%d', add))
      else
        redis.call('HSET', key, 'b', string.format('%d', start), 'v', string.format('%d', add))
      end
      redis.call('PEXPIRE', key, start + window - now + GRACE_MS)
    end
    local sum = 0
    if read then
      local stored = redis.call('HMGET', key, 'b', 'v')
      if tonumber(stored[1]) == start then sum = tonumber(stored[2]) or 0 end
    end
    out[2 * k - 1] = sum
    out[2 * k] = start + window - now
  else
    local first = math.floor((now - window) / slot)
    local added = false
    for i = 0, n - 1 do
      local id = math.floor((now - tonumber(ARGV[at + 2 * i])) / slot)
      if id >= first then
        redis.call('HINCRBY', key, string.format('%d', id), ARGV[at + 2 * i + 1])
        added = true
      end
    end
    if added then
      for _, field in ipairs(redis.call('HKEYS', key)) do
        if tonumber(field) < first then redis.call('HDEL', key, field) end
      end
      redis.call('PEXPIRE', key, window + slot + GRACE_MS)
    end
    local sum = 0
    if read then
      local start = now - window
      local fields = {}
      for id = first, math.floor(now / slot) do table.insert(fields, string.format('%d', id)) end
      local amounts = redis.call('HMGET', key, unpack(fields))
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
    out[2 * k - 1] = sum
    out[2 * k] = -1
  end
  at = at + 2 * n
end
return out
"
    ))
});

/// Drops the holds of a budget counter whose deadline has come (`budget.rs` is the same in Rust). A budget
/// counter is a hash (`s` spent, `h` the sum of the holds in the sorted set, kept as the set changes so that no
/// call sums the holds; `n:{node}:{incarnation}` one field per node block, below) and the holds (member
/// `{id}:{amount}`, scored by deadline; the blocks of `blocks.rs` are such holds, `b:{node}:{incarnation}:{size}`).
fn budget_lib() -> String {
    format!(
        r"
local BUDGET_GRACE_MS = {grace}
-- Drops the holds whose deadline has come (their amounts leave `h`); returns what was spent and what is held now.
local function budget_look(hash, holds, now)
  local sums = redis.call('HMGET', hash, 's', 'h')
  local spent = tonumber(sums[1]) or 0
  local stored = tonumber(sums[2]) or 0
  local held = stored
  local lapsed = redis.call('ZRANGEBYSCORE', holds, '-inf', now)
  if #lapsed > 0 then
    for _, member in ipairs(lapsed) do
      held = held - (tonumber(string.match(member, ':(%d+)$')) or 0)
    end
    redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
    -- No holds left means nothing is held, whatever the sum says, so it cannot drift for long.
    if held ~= 0 and redis.call('ZCARD', holds) == 0 then held = 0 end
  end
  if held < 0 then held = 0 end
  if held ~= stored then redis.call('HSET', hash, 'h', string.format('%d', held)) end
  return spent, held
end
-- How long a key written now lives: a little past its period's end (within a century: a period end far away is
-- a caller's never, and PEXPIRE takes integers only).
local function budget_ttl(now, period_end)
  return string.format('%d', math.min(math.max(period_end - now, 0), 3.2e12) + BUDGET_GRACE_MS)
end
",
        grace = super::budget::BUDGET_GRACE_MS,
    )
}

/// Syncs a node's blocks of budget counters (`blocks.rs`), and grows them for a request, all or none.
///
/// Each block has a field `n:{node}:{incarnation}` in its counter's hash, `{version}:{spent}:{size}`: the last
/// message applied, the node's cumulative spend counted in `s`, and the size of its hold
/// `b:{node}:{incarnation}:{size}` (absent once it lapsed). A message older than the stored version changes
/// nothing. Otherwise the spend not counted yet joins `s`, and the block takes its new size: `keep` (capped by the
/// room left when the block had lapsed and must be held anew), plus a growth. With `need` > 0 the growth is at
/// least `need`, and when any block of the call has less room than that none grows (the call is refused); the
/// growth is otherwise at most `want` and a quarter of the room left. `retire`: the block and its field go.
///
/// KEYS: two per block (hash, holds). ARGV: now, the block TTL (ms), then eleven per block: limit, period end (ms),
/// field, member prefix, version, spent, used (what the node holds, for a refusal's `held`), keep, need, want,
/// retire (`1`/`0`). Returns `{refused, …}` then five per block: stale (1/0), size, spent in the counter now, held
/// by others plus the node's own holds, and (stale) the spend the stored field counts.
pub(super) static BLOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}{}",
        budget_lib(),
        r"
local now = now_ms(ARGV[1])
local ttl = tonumber(ARGV[2])
local n = #KEYS / 2
local seen = {}
local refused = false
for k = 1, n do
  local a = 3 + 11 * (k - 1)
  local hash, holds = KEYS[2 * k - 1], KEYS[2 * k]
  local limit = tonumber(ARGV[a])
  local version, spent_sent = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local keep, need = tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
  local spent, held = budget_look(hash, holds, now)
  local sv, sc, sk = 0, 0, 0
  local stored = redis.call('HGET', hash, ARGV[a + 2])
  if stored then
    local v, c, s = string.match(stored, '^(%d+):(%d+):(%d+)$')
    sv, sc, sk = tonumber(v) or 0, tonumber(c) or 0, tonumber(s) or 0
  end
  local live = 0
  if sk > 0 and redis.call('ZSCORE', holds, ARGV[a + 3] .. ':' .. string.format('%d', sk)) then live = sk end
  local b = {stale = version <= sv, stored_spent = sc, live = live}
  if b.stale then
    b.spent, b.held, b.size = spent, held, live
  else
    b.spent = spent + math.max(spent_sent - sc, 0)
    b.others = math.max(held - live, 0)
    local avail = limit - b.spent - b.others
    b.base = keep
    if keep > live then b.base = math.max(live, math.min(keep, avail)) end
    local extra = avail - b.base
    b.growth = 0
    if need > 0 then
      if extra < need then
        refused = true
      else
        b.growth = math.max(need, math.min(tonumber(ARGV[a + 9]), math.floor(extra / 4)))
      end
    elseif extra > 0 then
      b.growth = math.min(tonumber(ARGV[a + 9]), math.floor(extra / 4))
    end
    b.held = b.others + tonumber(ARGV[a + 6])
  end
  seen[k] = b
end
local out = {refused and 1 or 0}
for k = 1, n do
  local a = 3 + 11 * (k - 1)
  local hash, holds = KEYS[2 * k - 1], KEYS[2 * k]
  local b = seen[k]
  if not b.stale then
    local retire = ARGV[a + 10] == '1'
    local size = b.base
    if not refused then size = size + b.growth end
    if retire then size = 0 end
    local prefix = ARGV[a + 3]
    local spent_sent = tonumber(ARGV[a + 5])
    if spent_sent > b.stored_spent then
      redis.call('HINCRBY', hash, 's', string.format('%d', spent_sent - b.stored_spent))
    end
    if b.live > 0 and b.live ~= size then
      redis.call('ZREM', holds, prefix .. ':' .. string.format('%d', b.live))
    end
    if size > 0 then
      redis.call('ZADD', holds, string.format('%d', now + ttl), prefix .. ':' .. string.format('%d', size))
    end
    redis.call('HSET', hash, 'h', string.format('%d', b.others + size))
    if retire then
      redis.call('HDEL', hash, ARGV[a + 2])
    else
      redis.call('HSET', hash, ARGV[a + 2],
        string.format('%d:%d:%d', tonumber(ARGV[a + 4]), math.max(spent_sent, b.stored_spent), size))
    end
    local ttl_key = budget_ttl(now, tonumber(ARGV[a + 1]))
    redis.call('PEXPIRE', hash, ttl_key)
    redis.call('PEXPIRE', holds, ttl_key)
    b.size = size
  end
  local base = 2 + 5 * (k - 1)
  out[base] = b.stale and 1 or 0
  out[base + 1] = b.size
  out[base + 2] = b.spent
  out[base + 3] = b.held
  out[base + 4] = b.stored_spent
end
return out
"
    ))
});
