//! The long-running modes: standalone (both planes, one process), control plane, data plane.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use gatehouse_bus::limits::{
    FallbackLimits, LimitStore, MemoryLimits, RedisLimits, RedisLimitsSettings,
};
use gatehouse_bus::replay::RedisReplayCache;
use gatehouse_bus::response_cache::{RedisResponseCache, ResponseCache};
use gatehouse_bus::{ConfigBus, LogStream, MemoryBus, RedisBusSettings};
use gatehouse_control_plane::api::AppState;
use gatehouse_control_plane::keyring::Keyring;
use gatehouse_control_plane::propagation::{self, ConfigPublisher};
use gatehouse_control_plane::server::{ApiSettings, ControlPlaneServer};
use gatehouse_data_plane::{DataPlane, DataPlaneSettings};

use crate::bus;
use crate::cli::GlobalOptions;
use crate::setup::{self, KeyPolicy};
use crate::signals::ProcessSignals;
use crate::tokens;
use gatehouse_control_plane::log_consumer::{LogConsumer, LogConsumerSettings};
use gatehouse_control_plane::log_ingest::{LogIngestCounters, LogWriter, LogWriterSettings};
use gatehouse_data_plane::logs::LogSink;

/// Both planes in one process on SQLite in the data dir (or `--database-url`), with the in-process bus.
pub fn standalone(opts: &GlobalOptions) -> Result<()> {
    let signals = ProcessSignals::install()?;
    setup::ensure_data_dir(&opts.data_dir)?;
    let master = setup::master_key(opts, KeyPolicy::CreateInDataDir)?;
    let db = setup::open_database(opts)?;
    let keyring = Keyring::load_or_create(&db, &master)?;
    let bus_runtime = bus::runtime()?;
    let config_bus: Arc<dyn ConfigBus> = Arc::new(MemoryBus::new());
    let publisher = ConfigPublisher::new(db.clone(), Arc::clone(&config_bus));

    let mut dp_settings = data_plane_settings(opts);
    dp_settings.master_key = Some(master.clone());
    // Logs go straight from the data plane's bounded channel to the batch writer.
    let (log_sink, log_records) = LogSink::channel(opts.log_queue_capacity);
    let data_plane = DataPlane::bind(dp_settings)?
        .with_config_bus(Arc::clone(&config_bus), bus::sync_settings(opts))
        .with_log_sink(log_sink);
    let log_ingest = Arc::new(LogIngestCounters::default());
    // On a thread of its own, with a connection of its own: nothing of it runs where requests are served.
    let log_writer = LogWriter::spawn(
        db.clone(),
        log_records,
        LogWriterSettings::default(),
        Arc::clone(&log_ingest),
    )?;
    let inference_addr = data_plane.local_addr();
    let public_inference_url = opts
        .public_inference_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", display_addr(inference_addr)));
    let state = AppState {
        db: db.clone(),
        keyring: keyring.clone(),
        public_inference_url,
        max_body_bytes: opts.api_max_body_bytes,
        master_key: master.clone(),
        allow_http_custom_providers: opts.allow_http_custom_providers,
        publisher: publisher.clone(),
        log_ingest,
    };
    let api = ControlPlaneServer::bind(
        &ApiSettings {
            listen: opts.api_listen,
            workers: opts.api_workers,
        },
        state,
    )?;
    let api = if opts.metrics {
        api
    } else {
        api.without_metrics()
    };
    let api_addr = api.local_addr();
    // The reconciler publishes everything at start; the node becomes ready after loading it.
    let propagation = propagation::spawn_background(
        &publisher,
        bus::reconciler_settings(opts),
        bus_runtime.handle(),
    );

    tokens::print_first_admin_token(&db, &keyring, api_addr)?;
    println!(
        "management API listening on http://{}",
        display_addr(api_addr)
    );
    println!(
        "inference listening on http://{}",
        display_addr(inference_addr)
    );

    // actix runs on its own thread and system; pingora owns the main thread and its signals. When pingora returns,
    // the API is told to stop and finishes its in-flight requests.
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_thread = std::thread::Builder::new()
        .name("management-api".into())
        .spawn(move || {
            api.run(async move {
                let _ = api_stopped.await;
            })
        })?;

    let served = data_plane.run_until(signals.wait());
    tracing::info!("shutting down");
    let _ = stop_api.send(());
    api_thread
        .join()
        .map_err(|_| anyhow::anyhow!("management API thread panicked"))??;
    bus_runtime.block_on(propagation.stop());
    // The data plane has stopped: what it queued is written before the process ends.
    bus_runtime.block_on(log_writer.stop());
    served?;
    Ok(())
}

/// The management API alone.
pub fn control_plane(opts: &GlobalOptions) -> Result<()> {
    let signals = ProcessSignals::install()?;
    let master = setup::master_key(opts, KeyPolicy::MustExist)?;
    let db = setup::open_database(opts)?;
    let keyring = Keyring::load_or_create(&db, &master)?;
    let bus_runtime = bus::runtime()?;
    let config_bus = bus::redis(opts, "control-plane", bus_runtime.handle())?;
    let log_stream = log_stream(opts, bus_runtime.handle())?;
    let publisher = ConfigPublisher::new(db.clone(), config_bus);
    // Records the data-plane nodes ship through Redis; the consumer name is this process's node id.
    let log_ingest = Arc::new(LogIngestCounters::default());
    let log_consumer = LogConsumer::spawn(
        db.clone(),
        log_stream,
        LogConsumerSettings::new(
            opts.node_id
                .clone()
                .unwrap_or_else(gatehouse_data_plane::generated_node_id),
            opts.log_claim_idle,
        ),
        Arc::clone(&log_ingest),
        bus_runtime.handle(),
    );
    let public_inference_url = opts
        .public_inference_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", display_addr(opts.proxy_listen)));
    let state = AppState {
        db,
        keyring,
        public_inference_url,
        max_body_bytes: opts.api_max_body_bytes,
        master_key: master.clone(),
        allow_http_custom_providers: opts.allow_http_custom_providers,
        publisher: publisher.clone(),
        log_ingest,
    };
    let api = ControlPlaneServer::bind(
        &ApiSettings {
            listen: opts.api_listen,
            workers: opts.api_workers,
        },
        state,
    )?;
    let api = if opts.metrics {
        api
    } else {
        api.without_metrics()
    };
    let propagation = propagation::spawn_background(
        &publisher,
        bus::reconciler_settings(opts),
        bus_runtime.handle(),
    );
    println!(
        "management API listening on http://{}",
        display_addr(api.local_addr())
    );
    let stop = signals.wait();
    let served = api.run(async move {
        stop.await;
        tracing::info!("shutting down");
    });
    bus_runtime.block_on(propagation.stop());
    bus_runtime.block_on(log_consumer.stop());
    served?;
    Ok(())
}

/// A data-plane node alone.
pub fn data_plane(opts: &GlobalOptions) -> Result<()> {
    let signals = ProcessSignals::install()?;
    let bus_runtime = bus::runtime()?;
    let config_bus = bus::redis(opts, "data-plane", bus_runtime.handle())?;
    let mut settings = data_plane_settings(opts);
    settings.master_key = bus::data_plane_master_key(opts)?;
    let log_stream = log_stream(opts, bus_runtime.handle())?;
    let (limits, cache) = policy_stores(opts, bus_runtime.handle())?;
    // Records go from the bounded channel to the Redis log stream, in batches, on a background service.
    let data_plane = DataPlane::bind(settings)?
        .with_config_bus(config_bus, bus::sync_settings(opts))
        .with_log_stream(log_stream, opts.log_queue_capacity)
        .with_policy_stores(limits, cache)
        .with_replay_cache(replay_cache(opts, bus_runtime.handle())?);
    println!(
        "inference listening on http://{}",
        display_addr(data_plane.local_addr())
    );
    data_plane.run_until(signals.wait())?;
    Ok(())
}

/// The Redis log stream of split mode, on the bus's Redis and prefix (`bus::redis` has checked the URL is set).
fn log_stream(opts: &GlobalOptions, runtime: &tokio::runtime::Handle) -> Result<Arc<LogStream>> {
    let url = opts
        .redis_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("split mode needs --redis-url for the log stream"))?;
    let stream = LogStream::new(
        &RedisBusSettings {
            url,
            prefix: opts.redis_prefix.clone(),
        },
        runtime.clone(),
    )?;
    Ok(Arc::new(stream))
}

/// Split mode's shared policy state on the bus's Redis and prefix: rate and spend counters (falling back to this
/// node's own counters while Redis is unreachable) and the response cache that every node reads and fills.
fn policy_stores(
    opts: &GlobalOptions,
    runtime: &tokio::runtime::Handle,
) -> Result<(Arc<dyn LimitStore>, Arc<dyn ResponseCache>)> {
    let settings = RedisBusSettings {
        url: opts.redis_url.clone().ok_or_else(|| {
            anyhow::anyhow!("split mode needs --redis-url for shared limits and cache")
        })?,
        prefix: opts.redis_prefix.clone(),
    };
    let limit_settings = RedisLimitsSettings {
        max_lease: opts.rate_limit_max_lease,
        ..RedisLimitsSettings::default()
    };
    let limits = FallbackLimits::new(
        RedisLimits::with_settings(&settings, &limit_settings, runtime.clone())?,
        MemoryLimits::new(),
    );
    let cache = RedisResponseCache::new(&settings, runtime.clone())?;
    Ok((Arc::new(limits), Arc::new(cache)))
}

/// Split mode's DPoP replay cache on the bus's Redis and prefix, so a proof replayed to another node is refused
/// too (this node's memory answers while Redis is unreachable).
fn replay_cache(
    opts: &GlobalOptions,
    runtime: &tokio::runtime::Handle,
) -> Result<Arc<RedisReplayCache>> {
    let settings = RedisBusSettings {
        url: opts.redis_url.clone().ok_or_else(|| {
            anyhow::anyhow!("split mode needs --redis-url for the DPoP replay cache")
        })?,
        prefix: opts.redis_prefix.clone(),
    };
    Ok(Arc::new(RedisReplayCache::new(&settings, runtime.clone())?))
}

fn data_plane_settings(opts: &GlobalOptions) -> DataPlaneSettings {
    let mut settings = DataPlaneSettings::new(opts.proxy_listen);
    settings.threads = opts.proxy_threads;
    settings.grace_period = opts.shutdown_grace_period;
    settings.provider_base_urls = opts.provider_base_urls.clone();
    settings.max_body_bytes = opts.proxy_max_body_bytes;
    settings.memory_cache_bytes = opts.memory_cache_bytes;
    settings.max_header_bytes = opts.proxy_max_header_bytes;
    settings.upstream_total_timeout = opts.upstream_total_timeout;
    settings.upstream_connect_timeout = opts.upstream_connect_timeout;
    settings.upstream_response_timeout = opts.upstream_response_timeout;
    settings.upstream_ca_file = opts.upstream_ca_file.clone();
    settings.trust_forwarded_proto = opts.proxy_trust_forwarded_proto;
    settings.metrics = opts.metrics;
    // The binary owns signals (installed before anything is printed) and passes them on through `run_until`.
    settings.handle_os_signals = false;
    settings
}

/// An address as a URL host: IPv6 in brackets.
fn display_addr(addr: SocketAddr) -> String {
    addr.to_string()
}
