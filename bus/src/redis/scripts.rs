//! Lua scripts: each runs atomically in Redis, which is what makes a publish a compare-and-set of document, index
//! entry and announcement together.

use std::sync::LazyLock;

use redis::Script;

/// Writes a document (or tombstone) and its index entry if the indexed version is older, then announces it.
///
/// KEYS: index hash, document key. ARGV: index field, version, index entry JSON, body, `1` for a tombstone,
/// announcement channel, announcement. Returns `{1}` when written, `{0, current}` when superseded.
///
/// An index entry that does not parse counts as absent, so a hand-broken entry is repaired by the next publish.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and type(entry.version) == 'number'
     and entry.version >= tonumber(ARGV[2]) then
    return {0, entry.version}
  end
end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {1}
",
    )
});

/// Sets the completeness marker if the index still has the epoch the reconciler pass began with, then announces
/// it.
///
/// KEYS: index hash. ARGV: epoch, marker JSON, announcement channel, announcement. Returns 1 when set, else 0.
pub(crate) static MARK_COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], '~epoch') ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], '~complete', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
",
    )
});
