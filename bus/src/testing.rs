//! Test support shared by the bus, data-plane and end-to-end tests (feature `testing`): the Redis to test against,
//! a unique key prefix per test, and a private `redis-server` that a test may stop and restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Redis URL from `TEST_REDIS_URL`. Outside CI a missing one skips the Redis variant (`None`); with
/// `CI=true` it fails the test, so CI can never pass by skipping.
pub fn test_redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TEST_REDIS_URL is not set: the Redis tests must run in CI")
        }
        _ => {
            eprintln!("TEST_REDIS_URL is not set: skipping the Redis variant");
            None
        }
    }
}

/// A key prefix no other test uses, so tests can share one Redis.
pub fn unique_prefix(label: &str) -> String {
    format!("gh-test-{label}-{}:", uuid::Uuid::new_v4().simple())
}

/// Deletes every key under `prefix` (best effort; used when a test ends).
pub fn delete_prefix(url: &str, prefix: &str) {
    let keys = keys_under(url, prefix);
    if let (false, Some(mut conn)) = (keys.is_empty(), connect(url)) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}

/// The keys under `prefix` (for a test to wait until a write reached Redis); empty when Redis cannot be reached.
pub fn keys_under(url: &str, prefix: &str) -> Vec<String> {
    let Some(mut conn) = connect(url) else {
        return Vec::new();
    };
    redis::cmd("KEYS")
        .arg(format!("{}*", glob_escape(prefix)))
        .query(&mut conn)
        .unwrap_or_default()
}

fn connect(url: &str) -> Option<redis::Connection> {
    redis::Client::open(url)
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()
}

/// Escapes Redis glob characters so a prefix matches literally.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `redis-server` of the test's own on a free port, without persistence, so it can be killed and restarted
/// (never the shared one). Killed on drop.
pub struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Picks a free port and starts a server on it.
    pub fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = PrivateRedis { port, child: None };
        redis.restart();
        redis
    }

    /// A server on this port is not running yet: for tests of a bus that starts before Redis.
    pub fn reserve() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        PrivateRedis { port, child: None }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: no save, no goodbye to clients) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the server on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).expect("a valid URL");
        loop {
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
