//! Logs to stderr (stdout carries only what scripts read: listen lines, tokens, the OpenAPI document), and traces
//! over OTLP/HTTP when an endpoint is configured.

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Keeps the OTLP pipeline alive; dropping it flushes the last spans.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

/// Installs the subscriber. Call it from `main` before any runtime starts: the OTLP exporter uses a blocking HTTP
/// client, which must not be created inside a tokio runtime.
pub fn init(filter: &str, otlp_endpoint: Option<&str>) -> Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .context("log filter")?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    let Some(endpoint) = otlp_endpoint else {
        registry
            .try_init()
            .context("installing the log subscriber")?;
        return Ok(TelemetryGuard { provider: None });
    };
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .context("building the OTLP exporter")?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("gatehouse")
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("gatehouse"));
    registry
        .with(layer)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}
