//! A node's Prometheus metrics (issue 16), served at `GET /metrics` in the text exposition format (OpenMetrics
//! 1.0, which Prometheus negotiates and parses).
//!
//! What a request costs here: at its end (pingora's `logging` phase, after the last byte went out) a handful of
//! counter and histogram updates, each a read lock and a hash lookup on a family keyed by reference-counted
//! labels (`labels.rs`): no allocation once a series exists, nothing on the client's time. The gauges of what is
//! in flight are guards that move an atomic. Everything else (log records, config, OTLP export) is read at scrape
//! time from the counters its owner keeps anyway (`scrape.rs`).
//!
//! Labels are bounded: account and gateway only for requests to a gateway the node serves (else empty); the
//! provider and model as the request's record names them, each through an interner with a cap per node
//! ([`MAX_PROVIDERS`], [`MAX_MODELS`]; later values are `other`); status as a class (`2xx`…); never a request id or
//! free-form metadata.

mod labels;
mod scrape;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use labels::BoundedValues;
pub(crate) use labels::Label;
pub(crate) use scrape::ScrapeSources;

/// Distinct provider label values a node keeps (slugs are few; the cap only stops made-up path segments).
pub(crate) const MAX_PROVIDERS: usize = 256;
/// Distinct model label values a node keeps.
pub(crate) const MAX_MODELS: usize = 1_000;

/// Request latency buckets, seconds: from a cache hit to a long generation.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The gateway labels of a request, made once per compiled gateway (`snapshot.rs`), cloned per request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct GatewayLabels {
    pub account: Label,
    pub gateway: Label,
}

impl GatewayLabels {
    pub(crate) fn new(account: &str, gateway: &str) -> Self {
        Self {
            account: Label::new(account),
            gateway: Label::new(gateway),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    account: Label,
    gateway: Label,
    provider: Label,
    model: Label,
    status: &'static str,
    cache: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProviderLabels {
    account: Label,
    gateway: Label,
    provider: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ModelLabels {
    account: Label,
    gateway: Label,
    provider: Label,
    model: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    account: Label,
    gateway: Label,
    provider: Label,
    model: Label,
    direction: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RejectionLabels {
    account: Label,
    gateway: Label,
    kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

type LatencyFamily = Family<ProviderLabels, Histogram, fn() -> Histogram>;

/// Whether the response cache was consulted, and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CacheUse {
    /// The request was not cacheable (caching off, or skipped).
    #[default]
    None,
    Hit,
    Miss,
}

impl CacheUse {
    fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}

/// What a request tells the metrics as it runs; kept in its context (`proxy/ctx.rs`).
#[derive(Debug, Default)]
pub(crate) struct RequestMeter {
    /// An inference request (probes, `/metrics` and the front door are not counted).
    pub inference: bool,
    /// The request's gateway, once admission found it.
    pub gateway: Option<GatewayLabels>,
    /// Upstream attempts made (retries included).
    pub attempts: u32,
    /// Steps that handed over to the next one (universal fallbacks, routed fallbacks).
    pub fallbacks: u32,
    pub cache: CacheUse,
    /// Which limit refused the request, when one did.
    pub rejection: Option<&'static str>,
    /// The provider and model the request went to, for a request without a record draft (which names them
    /// otherwise): set as the pipeline learns them (`NodeMetrics::name_target`).
    pub target: Option<(Label, Label)>,
    /// Counts the request in `gatehouse_requests_in_flight` until the context is dropped.
    pub in_flight: Option<InFlight>,
    /// Counts a streamed answer in `gatehouse_streams_open` until the context is dropped.
    pub stream: Option<InFlight>,
}

/// One request's end, as the account phase knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FinishedRequest<'a> {
    pub provider: &'a str,
    pub model: Option<&'a str>,
    /// The status the client saw (499 when none was sent).
    pub status: u16,
    pub duration: Duration,
    /// From the request's start to the first response body byte sent downstream.
    pub first_byte: Option<Duration>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cost: Option<f64>,
}

impl FinishedRequest<'_> {
    /// A request that ended before it had a provider (refused at admission, unknown gateway, probe-less 404).
    pub(crate) fn bare(status: u16, duration: Duration) -> FinishedRequest<'static> {
        FinishedRequest {
            provider: "",
            model: None,
            status,
            duration,
            first_byte: None,
            tokens_in: None,
            tokens_out: None,
            cost: None,
        }
    }
}

/// A node's metrics: the families requests update, and the registry a scrape encodes.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: LatencyFamily,
    first_byte: LatencyFamily,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<ModelLabels, Counter<f64, AtomicU64>>,
    attempts: Family<ProviderLabels, Counter>,
    retries: Family<GatewayLabels, Counter>,
    fallbacks: Family<GatewayLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    in_flight: Gauge,
    streams: Gauge,
    providers: BoundedValues,
    models: BoundedValues,
    no_gateway: GatewayLabels,
}

impl NodeMetrics {
    pub(crate) fn new(sources: ScrapeSources) -> Arc<Self> {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Inference requests finished, by gateway, provider, model, status class and cache use",
            requests.clone(),
        );
        let duration: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its last response byte",
            duration.clone(),
        );
        let first_byte: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Time from a request's arrival to the first response body byte sent to the client (the first token of a stream)",
            first_byte.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens in (prompt) and out (completion), as the providers' usage reports them",
            tokens.clone(),
        );
        let cost = Family::<ModelLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Cost of answered requests in US dollars (price table or cf-aig-custom-cost)",
            cost.clone(),
        );
        let attempts = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "upstream_attempts",
            "Upstream attempts made, retries and fallbacks included",
            attempts.clone(),
        );
        let retries = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "upstream_retries",
            "Upstream attempts that repeated a step (retries)",
            retries.clone(),
        );
        let fallbacks = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "upstream_fallbacks",
            "Steps that handed over to the next one (universal steps, route fallbacks)",
            fallbacks.clone(),
        );
        let rejections = Family::<RejectionLabels, Counter>::default();
        registry.register(
            "limit_rejections",
            "Requests refused by a limit, by kind: rate_limit, spend_limit, key_rate_limit, budget",
            rejections.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Inference and probe requests being served now",
            in_flight.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "streams_open",
            "Streamed responses (server-sent events, AWS event streams) being relayed now",
            streams.clone(),
        );
        registry.register_collector(Box::new(sources));
        Arc::new(Self {
            registry,
            requests,
            duration,
            first_byte,
            tokens,
            cost,
            attempts,
            retries,
            fallbacks,
            rejections,
            in_flight,
            streams,
            providers: BoundedValues::new(MAX_PROVIDERS),
            models: BoundedValues::new(MAX_MODELS),
            no_gateway: GatewayLabels::new("", ""),
        })
    }

    /// The text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a request until the returned guard is dropped.
    pub(crate) fn in_flight(self: &Arc<Self>) -> InFlight {
        self.in_flight.inc();
        InFlight(Arc::clone(self), GaugeKind::Requests)
    }

    /// Counts an open stream until the returned guard is dropped.
    pub(crate) fn stream_opened(self: &Arc<Self>) -> InFlight {
        self.streams.inc();
        InFlight(Arc::clone(self), GaugeKind::Streams)
    }

    /// Names the provider and model of a request that has no record draft.
    pub(crate) fn name_target(
        &self,
        meter: &mut RequestMeter,
        provider: &str,
        model: Option<&str>,
    ) {
        meter.target = Some((
            self.providers.get(provider),
            self.models.get(model.unwrap_or("")),
        ));
    }

    /// Records one finished request.
    pub(crate) fn observe(&self, meter: &RequestMeter, done: &FinishedRequest<'_>) {
        if !meter.inference {
            return;
        }
        let gateway = meter.gateway.as_ref().unwrap_or(&self.no_gateway);
        let provider = self.providers.get(done.provider);
        let model = self.models.get(done.model.unwrap_or(""));
        let by_provider = ProviderLabels {
            account: gateway.account.clone(),
            gateway: gateway.gateway.clone(),
            provider: provider.clone(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                account: gateway.account.clone(),
                gateway: gateway.gateway.clone(),
                provider: provider.clone(),
                model: model.clone(),
                status: status_class(done.status),
                cache: meter.cache.label(),
            })
            .inc();
        self.duration
            .get_or_create(&by_provider)
            .observe(done.duration.as_secs_f64());
        if let Some(first) = done.first_byte {
            self.first_byte
                .get_or_create(&by_provider)
                .observe(first.as_secs_f64());
        }
        if meter.attempts > 0 {
            self.attempts
                .get_or_create(&by_provider)
                .inc_by(u64::from(meter.attempts));
            let retries = meter.attempts.saturating_sub(1 + meter.fallbacks);
            if retries > 0 {
                self.retries
                    .get_or_create(gateway)
                    .inc_by(u64::from(retries));
            }
            if meter.fallbacks > 0 {
                self.fallbacks
                    .get_or_create(gateway)
                    .inc_by(u64::from(meter.fallbacks));
            }
        }
        if let Some(kind) = meter.rejection {
            self.rejections
                .get_or_create(&RejectionLabels {
                    account: gateway.account.clone(),
                    gateway: gateway.gateway.clone(),
                    kind,
                })
                .inc();
        }
        let with_model = |direction| TokenLabels {
            account: gateway.account.clone(),
            gateway: gateway.gateway.clone(),
            provider: provider.clone(),
            model: model.clone(),
            direction,
        };
        if let Some(n) = done.tokens_in.filter(|n| *n > 0) {
            self.tokens.get_or_create(&with_model("in")).inc_by(n);
        }
        if let Some(n) = done.tokens_out.filter(|n| *n > 0) {
            self.tokens.get_or_create(&with_model("out")).inc_by(n);
        }
        if let Some(cost) = done.cost.filter(|c| *c > 0.0 && c.is_finite()) {
            self.cost
                .get_or_create(&ModelLabels {
                    account: by_provider.account,
                    gateway: by_provider.gateway,
                    provider: by_provider.provider,
                    model,
                })
                .inc_by(cost);
        }
    }
}

/// The limit a refusal's error code names, for `gatehouse_limit_rejections_total{kind}`.
pub(crate) fn rejection_kind(code: u32) -> Option<&'static str> {
    use crate::error::code;
    match code {
        code::RATE_LIMITED => Some("rate_limit"),
        code::SPEND_LIMIT_EXCEEDED => Some("spend_limit"),
        code::KEY_RATE_LIMITED => Some("key_rate_limit"),
        code::BUDGET_EXCEEDED => Some("budget"),
        _ => None,
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[derive(Debug, Clone, Copy)]
enum GaugeKind {
    Requests,
    Streams,
}

/// Holds one unit of a gauge (a request or a stream in progress) and gives it back when dropped, however the
/// request ends.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<NodeMetrics>, GaugeKind);

impl Drop for InFlight {
    fn drop(&mut self) {
        match self.1 {
            GaugeKind::Requests => self.0.in_flight.dec(),
            GaugeKind::Streams => self.0.streams.dec(),
        };
    }
}

#[cfg(test)]
mod tests;
