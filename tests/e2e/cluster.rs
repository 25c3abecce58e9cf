//! A split deployment for end-to-end tests: a `control-plane` on a fresh PostgreSQL database and `data-plane`
//! nodes, all real processes sharing one Redis (a prefix per test, or a private `redis-server` the test restarts).

use std::time::{Duration, Instant};

use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use serde_json::{Value, json};

use crate::support::{FreshDatabase, Gatehouse, MASTER_KEY, cli, test_database_url};

/// A control plane, its database and Redis settings, and the data-plane nodes started against them.
pub struct Cluster {
    pub env: Vec<(String, String)>,
    pub control_plane: Gatehouse,
    pub nodes: Vec<(String, Gatehouse)>,
    pub token: String,
    pub http: reqwest::Client,
    pub redis_url: String,
    pub prefix: String,
    /// When set, every process writes its stderr to `{dir}/{name}.log`.
    log_dir: Option<std::path::PathBuf>,
    _db: FreshDatabase,
    /// Declared last: fields drop in order, so the processes are gone before their keys are deleted.
    _keys: PrefixCleanup,
}

/// Deletes the test's Redis keys when dropped.
struct PrefixCleanup {
    redis_url: String,
    prefix: String,
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        delete_prefix(&self.redis_url, &self.prefix);
    }
}

impl Cluster {
    /// `None` when PostgreSQL or Redis is not configured outside CI (the helpers fail in CI).
    pub fn start(redis_url: Option<String>, control_plane_flags: &[&str]) -> Option<Cluster> {
        Self::start_logged(redis_url, control_plane_flags, None, &[])
    }

    /// Like [`Cluster::start`], writing each process's stderr to `log_dir` (when given) and adding `env` to every
    /// process (for example a more verbose `GATEHOUSE_LOG`).
    pub fn start_logged(
        redis_url: Option<String>,
        control_plane_flags: &[&str],
        log_dir: Option<&std::path::Path>,
        extra_env: &[(&str, &str)],
    ) -> Option<Cluster> {
        let admin_url = test_database_url()?;
        let redis_url = match redis_url {
            Some(url) => url,
            None => test_redis_url()?,
        };
        let db = FreshDatabase::create(&admin_url);
        let prefix = unique_prefix("e2e");
        let env: Vec<(String, String)> = [
            ("GATEHOUSE_DATABASE_URL", db.url.as_str()),
            ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
            ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
            ("GATEHOUSE_REDIS_PREFIX", prefix.as_str()),
        ]
        .into_iter()
        .chain(extra_env.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cli(&["migrate"], &envs);
        let token = String::from_utf8(
            cli(
                &[
                    "token",
                    "create",
                    "--account",
                    "*",
                    "--scope",
                    "admin",
                    "--scope",
                    "ai-gateway:edit",
                ],
                &envs,
            )
            .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        let mut args = vec!["control-plane", "--api-listen", "127.0.0.1:0"];
        args.extend_from_slice(control_plane_flags);
        let log = log_dir.map(|d| d.join("control-plane.log"));
        let control_plane = Gatehouse::start_with_log(&args, &envs, log.as_deref());
        Some(Cluster {
            env,
            control_plane,
            nodes: Vec::new(),
            token,
            http: reqwest::Client::new(),
            _keys: PrefixCleanup {
                redis_url: redis_url.clone(),
                prefix: prefix.clone(),
            },
            redis_url,
            prefix,
            log_dir: log_dir.map(std::path::Path::to_path_buf),
            _db: db,
        })
    }

    pub fn envs(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    pub fn start_node(&mut self, node_id: &str) {
        self.start_node_with(node_id, &[]);
    }

    /// Starts a node with extra flags (for example `--provider-base-url` pointing at a mock provider).
    pub fn start_node_with(&mut self, node_id: &str, extra: &[&str]) {
        let mut args = vec![
            "data-plane",
            "--proxy-listen",
            "127.0.0.1:0",
            "--shutdown-grace-period",
            "0s",
            "--node-id",
            node_id,
        ];
        args.extend_from_slice(extra);
        let log = self
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{node_id}.log")));
        let node = Gatehouse::start_with_log(&args, &self.envs(), log.as_deref());
        self.nodes.push((node_id.to_owned(), node));
    }

    /// A running node by id.
    pub fn node(&self, node_id: &str) -> &Gatehouse {
        &self
            .nodes
            .iter()
            .find(|(id, _)| id == node_id)
            .expect("a running node")
            .1
    }

    pub fn stop_node(&mut self, node_id: &str) {
        let at = self
            .nodes
            .iter()
            .position(|(id, _)| id == node_id)
            .expect("a running node");
        let (_, node) = self.nodes.remove(at);
        assert!(node.terminate().success());
    }

    pub fn gateways_url(&self, rest: &str) -> String {
        self.control_plane.api_url(&format!(
            "/client/v4/accounts/acme/ai-gateway/gateways{rest}"
        ))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        body
    }

    pub async fn create(&self, id: &str) {
        let body = json!({"id": id, "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
            "rate_limiting_interval": 0, "rate_limiting_limit": 0});
        self.send(self.http.post(self.gateways_url("")).json(&body))
            .await;
    }

    pub async fn set_authentication(&self, id: &str, on: bool) {
        let body = json!({"cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
            "rate_limiting_interval": 0, "rate_limiting_limit": 0, "authentication": on});
        self.send(
            self.http
                .put(self.gateways_url(&format!("/{id}")))
                .json(&body),
        )
        .await;
    }

    pub async fn delete(&self, id: &str) {
        self.send(self.http.delete(self.gateways_url(&format!("/{id}"))))
            .await;
    }

    /// `GET /admin/nodes`: the nodes' reports, or `None` while the control plane cannot read the bus.
    pub async fn node_reports(&self) -> Option<Vec<Value>> {
        let response = self
            .http
            .get(self.control_plane.api_url("/admin/nodes"))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["result"].as_array().cloned()
    }

    /// Polls `/admin/nodes` until `check` holds for every running node's report; returns how long it took.
    pub async fn until_every_node(
        &self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            if let Some(reports) = self.node_reports().await {
                let all = self.nodes.iter().all(|(id, _)| {
                    reports
                        .iter()
                        .find(|r| r["node_id"] == id.as_str())
                        .is_some_and(&check)
                });
                if all {
                    return started.elapsed();
                }
                assert!(
                    started.elapsed() < deadline,
                    "{what}: not on every node within {deadline:?}; nodes report {reports:#?}"
                );
            } else {
                assert!(
                    started.elapsed() < deadline,
                    "{what}: /admin/nodes unavailable"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The version of `acme/{id}` a node report shows.
    pub fn version(report: &Value, id: &str) -> Option<i64> {
        report["gateways"][format!("acme/{id}")].as_i64()
    }

    /// The gateway's document as the bus holds it.
    pub async fn bus_document(&self, id: &str) -> Option<Value> {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let body: Option<String> = redis::cmd("GET")
            .arg(format!("{}config:gateway:acme/{id}", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        body.map(|b| serde_json::from_str(&b).unwrap())
    }
}
