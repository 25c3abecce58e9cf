//! Active health checks of routed targets (issue 15): a background service that, for every `model` element with
//! `health_check`, sends each of its targets a one-token chat completion every `interval`, off the request path,
//! and feeds the outcome to the target's health (`health.rs`). A probe that is answered closes an open circuit at
//! once (the target is back without waiting out the cooldown); one that fails counts like a failed attempt.
//!
//! A probe is built as a `/compat` request for the target would be (`plan/compat.rs`: translation, the gateway's
//! stored key, Vertex and Bedrock credentials), over a connector of its own, so it never takes a connection meant
//! for traffic. A target answering 4xx other than 429 is up (the request was refused, the target works). At most
//! one probe per target runs at a time; each is one task, bounded by [`PROBE_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use gatehouse_shared::routes::Element;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::cloud_auth::{self, CloudTokens};
use super::phase::body::RequestBody;
use super::phase::plan::{CloudAuth, compat};
use super::upstream::{LazyUpstreams, Upstreams};
use crate::error::AiGatewayError;
use crate::health::TargetPolicy;
use crate::route::UpstreamTable;
use crate::snapshot::{CompiledGateway, ConfigStore};

/// How long one probe may take, from connecting to the response header.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the service looks for due probes.
const TICK: Duration = Duration::from_secs(1);

/// The node's active prober.
pub(crate) struct RouteProber {
    config: Arc<ConfigStore>,
    table: UpstreamTable,
    /// Its own connector, made on the first probe.
    http: LazyUpstreams,
    cloud_tokens: Arc<CloudTokens>,
}

impl RouteProber {
    pub(crate) fn new(
        config: Arc<ConfigStore>,
        table: UpstreamTable,
        ca_file: Option<&std::path::Path>,
    ) -> Self {
        Self {
            config,
            table,
            http: LazyUpstreams::new(PROBE_TIMEOUT, ca_file),
            cloud_tokens: CloudTokens::new(ca_file),
        }
    }

    /// Starts every probe that is due.
    fn probe_due(&self) {
        let snapshot = self.config.load();
        for gateway in snapshot.all_gateways() {
            let Some(routes) = gateway.routes.as_ref() else {
                continue;
            };
            for route in routes.iter() {
                for (i, element) in route.graph.elements.iter().enumerate() {
                    let (Element::Model { model, .. }, Some(state)) =
                        (element, route.targets[i].as_ref())
                    else {
                        continue;
                    };
                    let Some(check) = model.health_check else {
                        continue;
                    };
                    let interval_ms = (check.interval_seconds * 1000.0) as i64;
                    for (target, policy) in model.targets.iter().zip(&state.policies) {
                        if !policy.health.claim_probe(interval_ms) {
                            continue;
                        }
                        let probe = Probe {
                            gateway: Arc::clone(gateway),
                            target: target.name(),
                            policy: Arc::clone(policy),
                            table: self.table.clone(),
                            upstreams: Arc::clone(self.http.get()),
                            cloud_tokens: Arc::clone(&self.cloud_tokens),
                        };
                        // One task per due probe, never per request.
                        tokio::spawn(probe.run());
                    }
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for RouteProber {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.probe_due(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// One probe of one target.
struct Probe {
    gateway: Arc<CompiledGateway>,
    /// `{provider}/{model}`.
    target: String,
    policy: Arc<TargetPolicy>,
    table: UpstreamTable,
    upstreams: Arc<Upstreams>,
    cloud_tokens: Arc<CloudTokens>,
}

impl Probe {
    async fn run(self) {
        let began = Instant::now();
        let outcome = self.send().await;
        let ttft_ms = began.elapsed().as_secs_f64() * 1000.0;
        let up = match &outcome {
            Ok(status) => *status != 429 && *status < 500,
            Err(_) => false,
        };
        tracing::debug!(target = %self.policy.health.key, ?outcome, up, "route target probed");
        self.policy
            .health
            .probed(up, up.then_some(ttft_ms), self.policy.breaker.as_ref());
    }

    /// The probe's status, or why it got none.
    async fn send(&self) -> Result<u16, String> {
        let key = &self.gateway.key;
        let path = format!(
            "/v1/{}/{}/compat/chat/completions",
            key.account_id, key.gateway_id
        );
        let mut client =
            RequestHeader::build("POST", path.as_bytes(), None).map_err(|e| e.to_string())?;
        client
            .insert_header(http::header::CONTENT_TYPE, "application/json")
            .map_err(|e| e.to_string())?;
        let body = serde_json::json!({
            "model": self.target,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
        })
        .to_string();
        let bytes = Bytes::from(body);
        let (peek, output_cap) = super::phase::body::RequestPeek::with_output_cap(&bytes);
        let body = RequestBody {
            bytes,
            peek,
            output_cap,
        };
        let cx = compat::BuildContext {
            table: &self.table,
            gateway: &self.gateway,
            client: &client,
            account: &key.account_id,
            operation: compat::Operation::Chat,
            bearer_is_gateway_token: false,
        };
        let (mut steps, _) = compat::build(cx, body, None, false).map_err(|e| describe(&e))?;
        let mut step = steps.pop().ok_or("no step")?;
        match step.cloud_auth.take() {
            None => {}
            Some(CloudAuth::Vertex { secret }) => {
                let token = self
                    .cloud_tokens
                    .vertex(&secret)
                    .await
                    .map_err(|e| describe(&e))?;
                step.header
                    .insert_header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .map_err(|e| e.to_string())?;
            }
            Some(CloudAuth::Bedrock {
                credentials,
                region,
            }) => cloud_auth::sign_bedrock(&mut step, &credentials, &region)
                .map_err(|e| describe(&e))?,
        }
        let opened = self
            .upstreams
            .open(&step.target, &step.header, &step.body, PROBE_TIMEOUT)
            .await
            .map_err(|e| format!("no answer ({e:?})"))?;
        // The answer's body is not read: the connection is closed with it, never pooled.
        Ok(opened.status())
    }
}

fn describe(e: &AiGatewayError) -> String {
    format!("{} {}", e.status.as_u16(), e.message)
}
