//! A node for the traffic-policy tests: providers pointed at one mock, log records captured, and optionally the
//! policy stores of split mode (Redis) so that two nodes share them.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_bus::limits::LimitStore;
use gatehouse_bus::response_cache::ResponseCache;
use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::logs::LogSink;
use gatehouse_data_plane::snapshot::ConfigStore;
use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::log::LogRecord;
use tokio::sync::mpsc::Receiver;

use crate::harness::{RunningDataPlane, test_settings};

pub const ACCOUNT: &str = "acme";

pub struct PolicyNode {
    pub plane: RunningDataPlane,
    pub store: Arc<ConfigStore>,
    pub logs: Receiver<LogRecord>,
    pub http: reqwest::Client,
}

impl PolicyNode {
    /// A ready node with in-process stores.
    pub fn start(mock: &MockProvider) -> PolicyNode {
        Self::start_with(mock, None)
    }

    /// A ready node with the given stores (split mode's Redis ones).
    pub fn start_with(
        mock: &MockProvider,
        stores: Option<(Arc<dyn LimitStore>, Arc<dyn ResponseCache>)>,
    ) -> PolicyNode {
        Self::start_tweaked(mock, stores, |_| {})
    }

    /// [`PolicyNode::start_with`], with the node's settings adjusted by `tweak`.
    pub fn start_tweaked(
        mock: &MockProvider,
        stores: Option<(Arc<dyn LimitStore>, Arc<dyn ResponseCache>)>,
        tweak: impl FnOnce(&mut gatehouse_data_plane::DataPlaneSettings),
    ) -> PolicyNode {
        let mut settings = test_settings();
        settings.provider_base_urls = vec![
            ("openai".into(), mock.url("/v1")),
            ("anthropic".into(), mock.base_url()),
        ];
        settings.upstream_response_timeout = Duration::from_secs(10);
        tweak(&mut settings);
        let (sink, logs) = LogSink::channel(1024);
        let mut dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
        if let Some((limits, cache)) = stores {
            dp = dp.with_policy_stores(limits, cache);
        }
        let store = dp.config_store();
        dp.readiness().set_ready();
        PolicyNode {
            plane: RunningDataPlane::run(dp),
            store,
            logs,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.plane.addr, path)
    }

    /// Sends a chat request with `content` and these headers to `path`.
    pub async fn chat(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content: &str,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).body(chat(content));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.unwrap()
    }

    pub fn apply(&self, doc: &GatewayConfigDocument) {
        self.store.apply_gateway(doc, "test").unwrap();
    }

    /// The next log record, or a failed test after 5 s.
    pub async fn next_log(&mut self) -> LogRecord {
        tokio::time::timeout(Duration::from_secs(5), self.logs.recv())
            .await
            .expect("a log record within 5 s")
            .expect("the log channel is open")
    }

    /// Every record already submitted, waiting briefly for stragglers.
    pub async fn drain_logs(&mut self) -> Vec<LogRecord> {
        let mut out = Vec::new();
        while let Ok(Some(r)) =
            tokio::time::timeout(Duration::from_millis(300), self.logs.recv()).await
        {
            out.push(r);
        }
        out
    }
}

/// A gateway without authentication, logging on, with `tweak` applied to its settings.
pub fn gateway(
    id: &str,
    version: i64,
    tweak: impl FnOnce(&mut GatewaySettings),
) -> GatewayConfigDocument {
    let mut settings = GatewaySettings::for_default_gateway();
    settings.authentication = false;
    tweak(&mut settings);
    GatewayConfigDocument {
        schema: 1,
        key: GatewayKey::new(ACCOUNT, id),
        version,
        internal_id: format!("{ACCOUNT}-{id}"),
        is_default: false,
        settings,
        provider_configs: vec![],
        custom_providers: vec![],
        cache_generation: 0,
        access: Default::default(),
        routes: Vec::new(),
    }
}

/// A chat body whose content makes it distinct from every other test's.
pub fn chat(content: &str) -> String {
    serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// A key unique to this run, for the mock's per-key failure counters.
pub fn unique(label: &str) -> String {
    format!("{label}-{}", ulid::Ulid::generate())
}

/// Split mode's stores (rate and spend counters with their local fallback, and the response cache) on `prefix` of
/// the Redis at `url`; two nodes given the same prefix share them.
pub fn redis_stores(url: &str, prefix: &str) -> (Arc<dyn LimitStore>, Arc<dyn ResponseCache>) {
    let settings = gatehouse_bus::RedisBusSettings {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
    };
    let runtime = tokio::runtime::Handle::current();
    let limits = gatehouse_bus::limits::FallbackLimits::new(
        gatehouse_bus::limits::RedisLimits::new(&settings, runtime.clone()).unwrap(),
        gatehouse_bus::limits::MemoryLimits::new(),
    );
    let cache = gatehouse_bus::response_cache::RedisResponseCache::new(&settings, runtime).unwrap();
    (Arc::new(limits), Arc::new(cache))
}
