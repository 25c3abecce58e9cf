//! What a scrape reads from the counters and state their owners keep anyway: the log sink's and shipper's counts,
//! the config the node serves and what it refused, its readiness. Nothing here is touched by a request.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::config_sync::StatusBoard;
use crate::logs::LogCounterSource;
use crate::readiness::ReadinessHandle;
use crate::snapshot::ConfigStore;

/// The state a scrape reads.
pub(crate) struct ScrapeSources {
    pub logs: LogCounterSource,
    pub config: Arc<ConfigStore>,
    pub readiness: ReadinessHandle,
    /// What the config sync applied and refused; `None` on a node without a bus (tests).
    pub board: Option<Arc<StatusBoard>>,
    /// Spans handed to the gateways' OTLP exporters.
    pub otlp: Option<Arc<crate::otel::SpanQueue>>,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl std::fmt::Debug for ScrapeSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeSources").finish_non_exhaustive()
    }
}

impl Collector for ScrapeSources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let logs = self.logs.snapshot();
        let e = &mut encoder;
        counter(
            e,
            "log_records_queued",
            "Log records handed to the node's log channel",
            logs.submitted,
        )?;
        counter(
            e,
            "log_records_dropped",
            "Log records lost: the channel was full, or the shipper gave up on them",
            logs.dropped,
        )?;
        if self.logs.shipper.is_some() {
            counter(
                e,
                "log_records_shipped",
                "Log records written to the Redis log stream (split mode)",
                logs.shipped,
            )?;
        }
        let snapshot = self.config.load();
        let versions = snapshot.gateway_versions();
        gauge(
            e,
            "config_gateways",
            "Gateways the node serves",
            i64::try_from(versions.len()).unwrap_or(i64::MAX),
        )?;
        gauge(
            e,
            "config_version",
            "Highest config document version the node has applied (gateways and deployment)",
            versions
                .values()
                .copied()
                .chain(snapshot.deployment.as_ref().map(|d| d.version))
                .max()
                .unwrap_or(0),
        )?;
        gauge(
            e,
            "ready",
            "1 once the node has loaded its first full config and takes traffic",
            i64::from(self.readiness.is_ready()),
        )?;
        if let Some(board) = &self.board {
            let failures = board.failures();
            gauge(
                e,
                "config_documents_failing",
                "Config documents the node refused and still serves an older version of",
                i64::try_from(failures.failing).unwrap_or(i64::MAX),
            )?;
            gauge(
                e,
                "config_last_apply_error_timestamp_seconds",
                "When the node last failed to apply config or read the bus (Unix seconds; 0: never)",
                failures.last_error_at_ms.map_or(0, |ms| ms / 1000),
            )?;
        }
        if let Some(otlp) = &self.otlp {
            let c = otlp.counters();
            counter(
                e,
                "otlp_spans_exported",
                "Spans the gateways' OTLP collectors accepted",
                c.exported_spans,
            )?;
            counter(
                e,
                "otlp_spans_dropped",
                "Spans never sent: the export queue was full",
                c.dropped_spans,
            )?;
            counter(
                e,
                "otlp_spans_failed",
                "Spans in batches a collector refused or did not answer (not retried)",
                c.failed_spans,
            )?;
            gauge(
                e,
                "otlp_spans_queued",
                "Spans waiting for export",
                i64::try_from(c.queued_spans).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}
