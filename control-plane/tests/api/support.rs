//! The test harness: a real management API on port 0 with a fresh database per test (SQLite always; PostgreSQL
//! when `TEST_DATABASE_URL` is set, and required when `CI=true`).

use std::net::SocketAddr;
use std::time::Duration;

use diesel::{Connection as _, RunQueryDsl as _};
use gatehouse_bus::MemoryBus;
use gatehouse_control_plane::api::AppState;
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::keyring::{Keyring, TokenRequest};
use gatehouse_control_plane::propagation::ConfigPublisher;
use gatehouse_control_plane::server::{ApiSettings, ControlPlaneServer};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::token::Scope;
use serde_json::Value;

/// Body cap of the test servers: small, so oversized bodies are cheap to send.
pub const TEST_MAX_BODY: usize = 64 * 1024;

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: Database,
    pub keyring: Keyring,
    pub client: reqwest::Client,
    pub master_key: MasterKey,
    /// The in-process config bus the server publishes to (its `/admin/nodes` reads node statuses from it).
    pub bus: MemoryBus,
    /// A token for every account with every scope.
    pub admin_token: String,
    /// The log ingest counters `GET /admin/log-ingest` reads.
    pub log_ingest: std::sync::Arc<gatehouse_control_plane::log_ingest::LogIngestCounters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg_database: Option<(String, String)>,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.sqlite").display());
        Self::start(url, dir, None)
    }

    /// A fresh PostgreSQL database, or `None` when `TEST_DATABASE_URL` is unset outside CI.
    pub async fn postgres() -> Option<TestApp> {
        let base = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests must run in CI")
            }
            _ => {
                eprintln!("TEST_DATABASE_URL is not set: skipping the PostgreSQL variant");
                return None;
            }
        };
        let name = format!("gh_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            diesel::PgConnection::establish(&base).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .expect("create test database");
        let url = with_database(&base, &name);
        Some(Self::start(
            url,
            tempfile::tempdir().expect("temp dir"),
            Some((base, name)),
        ))
    }

    fn start(
        url: String,
        dir: tempfile::TempDir,
        pg_database: Option<(String, String)>,
    ) -> TestApp {
        let db = Database::connect(&url).expect("connect");
        db.migrate().expect("migrate");
        let master = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let keyring = Keyring::load_or_create(&db, &master).expect("keyring");
        let admin_token = mint(&db, &keyring, &["*"], &Scope::ALL, None);
        let bus = MemoryBus::new();
        let log_ingest = std::sync::Arc::default();
        let state = AppState {
            db: db.clone(),
            keyring: keyring.clone(),
            public_inference_url: "http://gateway.test:8787".into(),
            max_body_bytes: TEST_MAX_BODY,
            master_key: master.clone(),
            allow_http_custom_providers: false,
            publisher: ConfigPublisher::new(db.clone(), std::sync::Arc::new(bus.clone())),
            log_ingest: std::sync::Arc::clone(&log_ingest),
        };
        let server = ControlPlaneServer::bind(
            &ApiSettings {
                listen: "127.0.0.1:0".parse().unwrap(),
                workers: 1,
            },
            state,
        )
        .expect("bind");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .expect("server run");
        });
        TestApp {
            addr,
            db,
            keyring,
            master_key: master,
            bus,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_token,
            log_ingest,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
            pg_database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `/client/v4/accounts/{account}/ai-gateway` + `rest`.
    pub fn gw_url(&self, account: &str, rest: &str) -> String {
        self.url(&format!("/client/v4/accounts/{account}/ai-gateway{rest}"))
    }

    pub fn token(&self, accounts: &[&str], scopes: &[Scope]) -> String {
        mint(&self.db, &self.keyring, accounts, scopes, None)
    }

    pub fn token_with_ttl(&self, ttl: Duration) -> String {
        mint(&self.db, &self.keyring, &["*"], &Scope::ALL, Some(ttl))
    }

    /// Sends a request with `token` and returns status and parsed JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}) for {url}: {text}"));
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "content type of {url}"
        );
        (status, json)
    }

    pub async fn get(&self, url: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, url, Some(&self.admin_token), None)
            .await
    }

    pub async fn post(&self, url: &str, body: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            url,
            Some(&self.admin_token),
            Some(&body.to_string()),
        )
        .await
    }

    pub async fn put(&self, url: &str, body: &Value) -> (u16, Value) {
        self.send(
            reqwest::Method::PUT,
            url,
            Some(&self.admin_token),
            Some(&body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, url: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, url, Some(&self.admin_token), None)
            .await
    }

    /// Creates a gateway with the SDK's minimal body; panics unless it succeeds.
    pub async fn create_gateway(&self, account: &str, id: &str) -> Value {
        let (status, body) = self
            .post(&self.gw_url(account, "/gateways"), &minimal_gateway(id))
            .await;
        assert_eq!(status, 200, "{body}");
        body["result"].clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some((base, name)) = self.pg_database.take()
            && let Ok(mut admin) = diesel::PgConnection::establish(&base)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

fn mint(
    db: &Database,
    keyring: &Keyring,
    accounts: &[&str],
    scopes: &[Scope],
    ttl: Option<Duration>,
) -> String {
    keyring
        .mint(
            db,
            TokenRequest {
                accounts: accounts.iter().map(|s| (*s).to_owned()).collect(),
                scopes: scopes.to_vec(),
                ttl,
                description: "test".into(),
            },
        )
        .expect("mint")
        .token
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The SDK's canonical create body.
pub fn minimal_gateway(id: &str) -> Value {
    serde_json::json!({"id": id, "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
        "rate_limiting_interval": 0, "rate_limiting_limit": 0})
}

/// Asserts a v4 error envelope with `status` and `code`.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["result"], Value::Null, "{body}");
    assert_eq!(body["messages"], serde_json::json!([]), "{body}");
    let errors = body["errors"].as_array().expect("errors array");
    assert!(!errors.is_empty(), "{body}");
    assert!(
        errors
            .iter()
            .all(|e| e["code"] == want_code && e["message"].is_string()),
        "{body}"
    );
}

/// The paths of a validation error, joined with dots.
pub fn error_paths(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .map(|s| s.as_str().unwrap())
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Generates a SQLite and a PostgreSQL test for each `async fn name(app: TestApp)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::TestApp::sqlite().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::support::TestApp::postgres().await {
                        super::$name(app).await;
                    }
                }
            }
        )*
    };
}

#[test]
fn database_names_are_replaced_in_postgres_urls() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/postgres?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}
