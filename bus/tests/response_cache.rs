//! The response cache stores: the same behaviour from the memory store and the Redis store (`TEST_REDIS_URL`;
//! required when `CI=true`), then what only Redis has: sharing between nodes, the key layout, outages.
//!
//! The Redis store's connections live on a runtime of their own here, as on a node (pingora calls from its
//! runtimes), so every test also checks that calls from another runtime work.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gatehouse_bus::RedisBusSettings;
use gatehouse_bus::response_cache::{
    CacheKey, MAX_CACHED_BYTES, MemoryResponseCache, RedisResponseCache, ResponseCache,
};
use gatehouse_bus::testing::{PrivateRedis, delete_prefix, test_redis_url, unique_prefix};

const MINUTE: Duration = Duration::from_secs(60);

fn key(n: u8) -> CacheKey {
    let mut bytes = [n; 32];
    bytes[1] = 0xa5;
    CacheKey(bytes)
}

/// The runtime a Redis cache's connections live on; stopped without blocking, so it may be dropped in a test.
struct CacheRuntime(Option<tokio::runtime::Runtime>);

impl CacheRuntime {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cache-io")
            .enable_all()
            .build()
            .unwrap();
        Self(Some(runtime))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0.as_ref().unwrap().handle().clone()
    }
}

impl Drop for CacheRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Keys under a fresh prefix on the test Redis, deleted when dropped.
struct RedisPrefix {
    url: String,
    prefix: String,
}

impl RedisPrefix {
    fn settings(&self) -> RedisBusSettings {
        RedisBusSettings {
            url: self.url.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

fn redis_prefix(label: &str) -> Option<RedisPrefix> {
    Some(RedisPrefix {
        url: test_redis_url()?,
        prefix: unique_prefix(label),
    })
}

/// One store under test, with what it needs kept alive (fields drop in order: the cache before its runtime).
struct Subject {
    name: &'static str,
    cache: Box<dyn ResponseCache>,
    _runtime: Option<CacheRuntime>,
    _keys: Option<RedisPrefix>,
}

/// The memory store, and the Redis store when there is a test Redis.
fn subjects(label: &str) -> Vec<Subject> {
    let mut all = vec![Subject {
        name: "memory",
        cache: Box::new(MemoryResponseCache::new(64 << 20)),
        _runtime: None,
        _keys: None,
    }];
    if let Some(keys) = redis_prefix(label) {
        let runtime = CacheRuntime::start();
        let cache = RedisResponseCache::new(&keys.settings(), runtime.handle()).unwrap();
        all.push(Subject {
            name: "redis",
            cache: Box::new(cache),
            _runtime: Some(runtime),
            _keys: Some(keys),
        });
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_value_is_returned_and_an_unknown_key_misses() {
    for s in subjects("rc-hit") {
        let value = Bytes::from_static(b"HTTP/1.1 200\r\n\r\n{\"ok\":true}");
        assert!(
            s.cache.put(&key(1), value.clone(), MINUTE).await.unwrap(),
            "{}",
            s.name
        );
        assert_eq!(
            s.cache.get(&key(1)).await.unwrap(),
            Some(value),
            "{}",
            s.name
        );
        assert_eq!(s.cache.get(&key(2)).await.unwrap(), None, "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_gone_after_its_ttl() {
    for s in subjects("rc-ttl") {
        let ttl = Duration::from_millis(150);
        assert!(
            s.cache
                .put(&key(1), Bytes::from_static(b"short"), ttl)
                .await
                .unwrap()
        );
        assert!(
            s.cache
                .put(&key(2), Bytes::from_static(b"long"), MINUTE)
                .await
                .unwrap()
        );
        assert!(s.cache.get(&key(1)).await.unwrap().is_some(), "{}", s.name);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(s.cache.get(&key(1)).await.unwrap(), None, "{}", s.name);
        assert!(s.cache.get(&key(2)).await.unwrap().is_some(), "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_replaces_the_value_and_its_ttl() {
    for s in subjects("rc-overwrite") {
        let short = Duration::from_millis(150);
        s.cache
            .put(&key(1), Bytes::from_static(b"old"), short)
            .await
            .unwrap();
        s.cache
            .put(&key(1), Bytes::from_static(b"new"), MINUTE)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            s.cache.get(&key(1)).await.unwrap().as_deref(),
            Some(&b"new"[..]),
            "{}",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_values_and_zero_ttls_are_refused_and_not_stored() {
    for s in subjects("rc-refuse") {
        let too_large = Bytes::from(vec![0u8; MAX_CACHED_BYTES + 1]);
        assert!(
            !s.cache.put(&key(1), too_large, MINUTE).await.unwrap(),
            "{}",
            s.name
        );
        assert_eq!(s.cache.get(&key(1)).await.unwrap(), None, "{}", s.name);
        let zero = Duration::ZERO;
        assert!(
            !s.cache
                .put(&key(2), Bytes::from_static(b"x"), zero)
                .await
                .unwrap()
        );
        assert_eq!(s.cache.get(&key(2)).await.unwrap(), None, "{}", s.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5_mb_value_round_trips() {
    for s in subjects("rc-large") {
        let value: Bytes = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        assert!(
            s.cache.put(&key(1), value.clone(), MINUTE).await.unwrap(),
            "{}",
            s.name
        );
        assert_eq!(
            s.cache.get(&key(1)).await.unwrap(),
            Some(value),
            "{}",
            s.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_and_puts_from_many_tasks_all_complete() {
    for s in subjects("rc-concurrent") {
        let cache: Arc<dyn ResponseCache> = Arc::from(s.cache);
        let name = s.name;
        // Every task has keys of its own (32 × 8 = all 256 of `key`'s): a reader racing another task's overwrite
        // of the same key may miss for a moment (the old entry is removed before the new one goes in), which a
        // cache may do but this test's "just written" could not tell from a lost write.
        let tasks: Vec<_> = (0..32u8)
            .map(|t| {
                let cache = Arc::clone(&cache);
                tokio::spawn(async move {
                    for i in 0..8u8 {
                        let k = key(t * 8 + i);
                        let stored = cache
                            .put(&k, Bytes::from(vec![t; 2048]), MINUTE)
                            .await
                            .unwrap();
                        assert!(stored, "{name}: put refused");
                        let got =
                            cache.get(&k).await.unwrap().unwrap_or_else(|| {
                                panic!("{name}: just written, task {t} item {i}")
                            });
                        assert_eq!(got.len(), 2048);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
}

// ---- Redis only ----

fn redis_cache(keys: &RedisPrefix, runtime: &CacheRuntime) -> RedisResponseCache {
    RedisResponseCache::new(&keys.settings(), runtime.handle()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_the_same_prefix_share_entries_and_another_prefix_does_not() {
    let Some(keys) = redis_prefix("rc-shared") else {
        return;
    };
    let Some(other_keys) = redis_prefix("rc-shared-other") else {
        return;
    };
    let runtime = CacheRuntime::start();
    let node_a = redis_cache(&keys, &runtime);
    let node_b = redis_cache(&keys, &runtime);
    let other = redis_cache(&other_keys, &runtime);
    node_a
        .put(&key(1), Bytes::from_static(b"from a"), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        node_b.get(&key(1)).await.unwrap().as_deref(),
        Some(&b"from a"[..])
    );
    node_b
        .put(&key(1), Bytes::from_static(b"from b"), MINUTE)
        .await
        .unwrap();
    assert_eq!(
        node_a.get(&key(1)).await.unwrap().as_deref(),
        Some(&b"from b"[..])
    );
    assert_eq!(other.get(&key(1)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_a_redis_string_under_the_prefix_with_a_millisecond_ttl() {
    let Some(keys) = redis_prefix("rc-layout") else {
        return;
    };
    let runtime = CacheRuntime::start();
    let cache = redis_cache(&keys, &runtime);
    cache
        .put(&key(7), Bytes::from_static(b"v"), MINUTE)
        .await
        .unwrap();

    let client = redis::Client::open(keys.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let redis_key = format!("{}cache:{}", keys.prefix, key(7).to_hex());
    assert_eq!(redis_key.len(), keys.prefix.len() + "cache:".len() + 64);
    let (value, ttl_ms): (Vec<u8>, i64) = redis::pipe()
        .get(&redis_key)
        .pttl(&redis_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, b"v");
    assert!(ttl_ms > 59_000 && ttl_ms <= 60_000, "PTTL {ttl_ms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_working_after_a_runtime_that_called_it_stops() {
    let Some(keys) = redis_prefix("rc-runtimes") else {
        return;
    };
    let runtime = CacheRuntime::start();
    let cache = Arc::new(redis_cache(&keys, &runtime));
    // A caller on a runtime of its own (like a pingora worker) that then stops.
    let first = Arc::clone(&cache);
    std::thread::spawn(move || {
        let caller = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        caller.block_on(async {
            first
                .put(&key(1), Bytes::from_static(b"v"), MINUTE)
                .await
                .unwrap();
            assert!(first.get(&key(1)).await.unwrap().is_some());
        });
    })
    .join()
    .unwrap();
    // The connections did not live on that runtime, so they still work.
    assert!(cache.get(&key(1)).await.unwrap().is_some());
    cache
        .put(&key(2), Bytes::from_static(b"w"), MINUTE)
        .await
        .unwrap();
    assert!(!cache.is_degraded());
}

/// Polls `attempt` until it succeeds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if attempt().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_dies_calls_fail_fast_then_at_once_and_recover_after_a_restart() {
    // Needs a redis-server binary, which the test Redis implies; skipped with it.
    if test_redis_url().is_none() {
        return;
    }
    let mut server = PrivateRedis::start();
    let runtime = CacheRuntime::start();
    let settings = RedisBusSettings {
        url: server.url(),
        prefix: unique_prefix("rc-outage"),
    };
    let cache = RedisResponseCache::new(&settings, runtime.handle()).unwrap();
    cache
        .put(&key(1), Bytes::from_static(b"v"), MINUTE)
        .await
        .unwrap();
    assert!(cache.get(&key(1)).await.unwrap().is_some());
    assert!(!cache.is_degraded());

    server.kill();
    let started = Instant::now();
    assert!(cache.get(&key(1)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.is_degraded());
    let started = Instant::now();
    assert!(
        cache
            .put(&key(2), Bytes::from_static(b"w"), MINUTE)
            .await
            .is_err()
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // The back-off: no call touches Redis, each fails at once.
    let started = Instant::now();
    for _ in 0..100 {
        assert!(cache.get(&key(1)).await.is_err());
        assert!(
            cache
                .put(&key(1), Bytes::from_static(b"v"), MINUTE)
                .await
                .is_err()
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.is_degraded());

    // Still down after the back-off: the probe fails fast too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    assert!(cache.get(&key(1)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let recovered = eventually(Duration::from_secs(4), || async {
        cache
            .put(&key(3), Bytes::from_static(b"x"), MINUTE)
            .await
            .is_ok()
            && cache.get(&key(3)).await.is_ok_and(|v| v.is_some())
    })
    .await;
    assert!(recovered, "the cache works again after Redis restarts");
    assert!(!cache.is_degraded());
    // The restarted server is empty: what was cached before is a miss, not an error.
    assert_eq!(cache.get(&key(1)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_created_before_redis_starts_works_once_it_is_up() {
    if test_redis_url().is_none() {
        return;
    }
    let mut server = PrivateRedis::reserve();
    let runtime = CacheRuntime::start();
    let settings = RedisBusSettings {
        url: server.url(),
        prefix: unique_prefix("rc-late"),
    };
    let cache = RedisResponseCache::new(&settings, runtime.handle()).unwrap();
    let started = Instant::now();
    assert!(cache.get(&key(1)).await.is_err());
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(cache.is_degraded());

    server.restart();
    let up = eventually(Duration::from_secs(4), || async {
        cache.get(&key(1)).await.is_ok()
    })
    .await;
    assert!(up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_one_timeout_then_calls_fail_at_once() {
    // A port that accepts connections (the kernel's backlog) and never says a word: a hung Redis or a host whose
    // replies are lost, where nothing is refused and only timeouts tell.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let runtime = CacheRuntime::start();
    let settings = RedisBusSettings {
        url: format!("redis://{}/", silent.local_addr().unwrap()),
        prefix: unique_prefix("rc-silent"),
    };
    let cache = RedisResponseCache::new(&settings, runtime.handle()).unwrap();
    let started = Instant::now();
    assert!(cache.get(&key(1)).await.is_err());
    let first = started.elapsed();
    assert!(
        first >= Duration::from_millis(90) && first < Duration::from_millis(300),
        "{first:?}"
    );
    assert!(cache.is_degraded());
    let started = Instant::now();
    for _ in 0..100 {
        assert!(cache.get(&key(1)).await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_empty_prefix_or_a_bad_url_is_refused() {
    let runtime = CacheRuntime::start();
    let empty = RedisBusSettings {
        url: "redis://127.0.0.1:6379".into(),
        prefix: String::new(),
    };
    assert!(RedisResponseCache::new(&empty, runtime.handle()).is_err());
    let bad = RedisBusSettings {
        url: "http://nowhere".into(),
        prefix: "p:".into(),
    };
    assert!(RedisResponseCache::new(&bad, runtime.handle()).is_err());
}

/// Rough latencies of a 2 KB value, for the record (not a benchmark; run with `--ignored --nocapture`, ideally
/// with `--release`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn measure_2_kb_get_and_put_latency() {
    const ROUNDS: u32 = 2_000;
    for s in subjects("rc-measure") {
        let value = Bytes::from(vec![b'x'; 2048]);
        let started = Instant::now();
        for i in 0..ROUNDS {
            let k = key((i % 200) as u8);
            s.cache.put(&k, value.clone(), MINUTE).await.unwrap();
        }
        let put = started.elapsed() / ROUNDS;
        let started = Instant::now();
        for i in 0..ROUNDS {
            let k = key((i % 200) as u8);
            assert!(s.cache.get(&k).await.unwrap().is_some());
        }
        let get = started.elapsed() / ROUNDS;
        println!(
            "{}: put {put:?}, get {get:?} (mean of {ROUNDS}, one caller)",
            s.name
        );
    }
}
