//! The control plane's Prometheus metrics (issue 16), served at `GET /metrics` on the management listener (outside
//! the v4 API and its OpenAPI document, like the front door): API requests by operation (the route's pattern, so
//! the label set is bounded by the routes) and status, their latency, the log ingest's counts, batch sizes and lag,
//! and the data-plane nodes the bus knows with how many of them have converged on the current config.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::log_ingest::LogIngestCounters;

/// API latency buckets, seconds.
const API_LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The operation label of a request no route matched (unknown paths must not become series).
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    operation: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    method: String,
    operation: String,
}

fn api_histogram() -> Histogram {
    Histogram::new(API_LATENCY_BUCKETS)
}

/// What `/metrics` shows of the nodes, read from the bus for each scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCounts {
    pub nodes: u64,
    pub ready: u64,
    pub converged: u64,
}

/// The management API's metrics.
#[derive(Debug)]
pub struct ApiMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
}

impl ApiMetrics {
    pub fn new(log_ingest: Arc<LogIngestCounters>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("gatehouse");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Management API requests, by method, operation (route pattern) and status",
            requests.clone(),
        );
        let duration: Family<OperationLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(api_histogram);
        registry.register(
            "api_request_duration_seconds",
            "Management API request latency, by method and operation",
            duration.clone(),
        );
        registry.register(
            "log_ingest_batch_size",
            "Log records per stored batch",
            log_ingest.batch_sizes.clone(),
        );
        registry.register(
            "log_ingest_lag_seconds",
            "Time from a request's start on a node to its log record being stored",
            log_ingest.lag.clone(),
        );
        registry.register_collector(Box::new(IngestCounts(log_ingest)));
        Arc::new(Self {
            registry,
            requests,
            duration,
        })
    }

    /// Counts one answered API request. `operation` is the matched route's pattern, `None` for no route.
    pub fn observe(&self, method: &str, operation: Option<&str>, status: u16, took: Duration) {
        let operation = operation.unwrap_or(UNMATCHED).to_owned();
        self.duration
            .get_or_create(&OperationLabels {
                method: method.to_owned(),
                operation: operation.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                operation,
                status,
            })
            .inc();
    }

    /// The text exposition, with the nodes as the bus reported them (`None`: the bus could not be read).
    pub fn render(&self, nodes: Option<NodeCounts>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut per_scrape = Registry::with_prefix("gatehouse");
        per_scrape.register_collector(Box::new(Nodes(nodes)));
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &per_scrape);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> std::fmt::Result {
    let metric = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The ingest's own counters, read at scrape time.
#[derive(Debug)]
struct IngestCounts(Arc<LogIngestCounters>);

impl Collector for IngestCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let c = &self.0;
        let e = &mut encoder;
        let read = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(
            e,
            "log_ingest_stored",
            "Log records stored (a redelivered record counts again)",
            read(&c.stored),
        )?;
        counter(
            e,
            "log_ingest_dropped",
            "Log records given up after every attempt to store their batch failed",
            read(&c.dropped),
        )?;
        counter(
            e,
            "log_ingest_rejected",
            "Log records the database refused on their own",
            read(&c.rejected),
        )?;
        counter(
            e,
            "log_ingest_unreadable",
            "Log stream entries that could not be decoded",
            read(&c.unreadable),
        )?;
        counter(
            e,
            "log_ingest_trimmed",
            "Log stream entries trimmed before any control plane stored them",
            read(&c.trimmed),
        )?;
        Ok(())
    }
}

/// The nodes of one scrape.
#[derive(Debug)]
struct Nodes(Option<NodeCounts>);

impl Collector for Nodes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut encoder;
        gauge(
            e,
            "bus_readable",
            "1 when this scrape could read the nodes' status from the bus",
            u64::from(self.0.is_some()),
        )?;
        let Some(nodes) = self.0 else {
            return Ok(());
        };
        gauge(e, "nodes", "Data-plane nodes reporting status", nodes.nodes)?;
        gauge(
            e,
            "nodes_ready",
            "Nodes that have loaded their first full config",
            nodes.ready,
        )?;
        gauge(
            e,
            "nodes_converged",
            "Nodes that serve every config document version the bus index holds",
            nodes.converged,
        )?;
        Ok(())
    }
}

/// The content type of the exposition (OpenMetrics text, which Prometheus asks for and parses).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the nodes' status on the bus before it answers without them.
const BUS_WAIT: Duration = Duration::from_secs(2);

/// `GET /metrics`.
pub async fn serve(
    state: actix_web::web::Data<crate::api::AppState>,
    metrics: actix_web::web::Data<ApiMetrics>,
) -> actix_web::HttpResponse {
    let bus = state.publisher.bus();
    let read = async { futures_util::try_join!(bus.node_statuses(), bus.index()) };
    let nodes = match tokio::time::timeout(BUS_WAIT, read).await {
        Ok(Ok((statuses, index))) => Some(NodeCounts {
            nodes: statuses.len() as u64,
            ready: statuses.iter().filter(|s| s.ready).count() as u64,
            converged: statuses
                .iter()
                .filter(|s| crate::propagation::is_converged(s, &index))
                .count() as u64,
        }),
        _ => None,
    };
    actix_web::HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_and_unknown_paths_share_one_series() {
        let metrics = ApiMetrics::new(Arc::default());
        let op = "/client/v4/accounts/{account_id}/ai-gateway/gateways";
        metrics.observe("GET", Some(op), 200, Duration::from_millis(3));
        metrics.observe("GET", Some(op), 200, Duration::from_millis(3));
        metrics.observe("GET", None, 404, Duration::from_millis(1));
        metrics.observe("GET", None, 404, Duration::from_millis(1));
        let text = metrics.render(Some(NodeCounts {
            nodes: 2,
            ready: 2,
            converged: 1,
        }));
        assert!(
            text.contains(&format!(
                r#"gatehouse_api_requests_total{{method="GET",operation="{op}",status="200"}} 2"#
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"operation="unmatched",status="404"} 2"#),
            "{text}"
        );
        assert!(text.contains("gatehouse_nodes_converged 1"), "{text}");
        assert!(text.contains("gatehouse_bus_readable 1"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        assert!(metrics.render(None).contains("gatehouse_bus_readable 0"));
    }
}
