//! The data plane's lifecycle: bind, then run pingora on the bound listener until told to stop.

mod prebound;
mod shutdown;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock};

use pingora::proxy::http_proxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};

use gatehouse_bus::{ConfigBus, LogStream};
use gatehouse_shared::log::LogRecord;
use pingora::services::background::background_service;

use crate::config_sync::{ConfigSync, ConfigSyncSettings, StatusBoard};
use crate::error::DataPlaneError;
use crate::identity::JwksRefresher;
use crate::log_shipper::LogShipper;
use crate::logs::{LogCounterSource, LogSink};
use crate::metrics::{NodeMetrics, ScrapeSources};
use crate::otel::{ExportSettings, OtlpExporter};
use crate::proxy::prober::RouteProber;
use crate::proxy::{GatewayProxy, Outlets, PolicyStores};
use crate::readiness::ReadinessHandle;
use crate::route::UpstreamTable;
use crate::settings::{DataPlaneSettings, whole_seconds};
use crate::snapshot::default_gateway::DefaultGatewayRequests;
use crate::snapshot::{ConfigStore, DefaultGatewayRequester};
use gatehouse_bus::limits::{LimitStore, MemoryLimits};
use gatehouse_bus::replay::{MemoryReplayCache, ReplayCache};
use gatehouse_bus::response_cache::{MemoryResponseCache, ResponseCache};
use prebound::PreboundListenerService;
pub use shutdown::ShutdownMode;
use shutdown::{ShutdownWatcher, StopReason};

/// pingora names the service's worker threads after this (first 16 characters).
const SERVICE_NAME: &str = "gatehouse-dp";

/// A bound, not yet running data plane.
#[derive(Debug)]
pub struct DataPlane {
    listener: TcpListener,
    local_addr: SocketAddr,
    settings: DataPlaneSettings,
    readiness: ReadinessHandle,
    config: Arc<ConfigStore>,
    table: UpstreamTable,
    /// Where the node's config comes from; without one the node never becomes ready (unless told so).
    bus: Option<(Arc<dyn ConfigBus>, ConfigSyncSettings)>,
    default_gateways: DefaultGatewayRequester,
    /// The requester's queue, handed to the config sync at start.
    default_gateway_requests: DefaultGatewayRequests,
    /// Where log records go; disabled until the binary wires a writer or shipper.
    log_sink: LogSink,
    /// Split mode: the log stream and the sink's receiver, handed to the log shipper service at start.
    log_shipping: Option<(Arc<LogStream>, tokio::sync::mpsc::Receiver<LogRecord>)>,
    /// Where rate and spend counters, cached responses and DPoP proof ids live; this process's memory unless told
    /// otherwise.
    stores: PolicyStores,
}

impl DataPlane {
    /// Binds the listener now, so that port 0 resolves and errors (address in use) surface before anything runs.
    /// Connections that arrive before [`DataPlane::run`] wait in the kernel's accept queue.
    pub fn bind(settings: DataPlaneSettings) -> Result<DataPlane, DataPlaneError> {
        settings.validate()?;
        let listener =
            TcpListener::bind(settings.listen).map_err(|source| DataPlaneError::Bind {
                addr: settings.listen,
                source,
            })?;
        let setup_error = |source| DataPlaneError::ListenerSetup {
            addr: settings.listen,
            source,
        };
        let local_addr = listener.local_addr().map_err(setup_error)?;
        // pingora's runtime drives the socket through epoll and accepts until accept() would block; on a blocking
        // socket that last accept() would park a worker thread instead of returning.
        listener.set_nonblocking(true).map_err(setup_error)?;
        let table =
            UpstreamTable::new(&settings.provider_base_urls).map_err(DataPlaneError::Upstreams)?;
        let config = Arc::new(ConfigStore::new(settings.master_key.clone()));
        let settings_cache_bytes = settings.memory_cache_bytes;
        let (default_gateways, default_gateway_requests) =
            DefaultGatewayRequester::new(Arc::clone(&config));
        Ok(DataPlane {
            listener,
            local_addr,
            settings,
            readiness: ReadinessHandle::default(),
            config,
            table,
            bus: None,
            default_gateways,
            log_sink: LogSink::disabled(),
            log_shipping: None,
            default_gateway_requests,
            stores: PolicyStores {
                limits: Arc::new(MemoryLimits::new()),
                cache: Arc::new(MemoryResponseCache::new(settings_cache_bytes)),
                replay: Arc::new(MemoryReplayCache::new()),
            },
        })
    }

    /// Feeds the node from `bus`: a config sync service runs next to the listener, applies every document to
    /// the [`ConfigStore`], makes the node ready after its first full load and reports the node's status.
    pub fn with_config_bus(
        mut self,
        bus: Arc<dyn ConfigBus>,
        settings: ConfigSyncSettings,
    ) -> Self {
        self.bus = Some((bus, settings));
        self
    }

    /// Keeps rate and spend counters in `limits` and cached responses in `cache` (split mode: Redis, shared by
    /// every node). Without this call both live in this process's memory, which is right for one node only.
    pub fn with_policy_stores(
        mut self,
        limits: Arc<dyn LimitStore>,
        cache: Arc<dyn ResponseCache>,
    ) -> Self {
        self.stores.limits = limits;
        self.stores.cache = cache;
        self
    }

    /// Remembers DPoP proofs' `jti`s in `replay` (split mode: Redis, so a proof replayed to another node is
    /// refused too). Without this call they are remembered in this process's memory, which is right for one node.
    pub fn with_replay_cache(mut self, replay: Arc<dyn ReplayCache>) -> Self {
        self.stores.replay = replay;
        self
    }

    /// Sends finished requests' log records to `sink` (see [`LogSink`]).
    pub fn with_log_sink(mut self, sink: LogSink) -> Self {
        self.log_sink = sink;
        self.log_shipping = None;
        self
    }

    /// Split mode: records go into a sink of `capacity` records that a log shipper service drains in batches
    /// onto `stream` (see `log_shipper.rs`); when the stream is unreachable the sink fills and drops, counted.
    pub fn with_log_stream(mut self, stream: Arc<LogStream>, capacity: usize) -> Self {
        let (sink, records) = LogSink::channel(capacity);
        self.log_sink = sink;
        self.log_shipping = Some((stream, records));
        self
    }

    /// The sink requests hand their records to, and its counters (`submitted`, `dropped`).
    pub fn log_sink(&self) -> LogSink {
        self.log_sink.clone()
    }

    /// The request path's way to ask for an account's `default` gateway (spec §3.1). Without a bus, requests
    /// are dropped (and counted).
    pub fn default_gateway_requester(&self) -> DefaultGatewayRequester {
        self.default_gateways.clone()
    }

    /// The address the listener is bound to, with the real port when the settings asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's configuration. The config sync applies documents to it; every request loads one snapshot from it.
    pub fn config_store(&self) -> Arc<ConfigStore> {
        Arc::clone(&self.config)
    }

    /// The flag behind `/readyz`. It starts not ready; the config loader sets it after its first full load.
    pub fn readiness(&self) -> ReadinessHandle {
        self.readiness.clone()
    }

    /// Runs pingora on the calling thread until `shutdown` resolves (or SIGTERM/SIGINT, when
    /// `handle_os_signals` is set), then returns once pingora's runtimes have stopped.
    ///
    /// `shutdown` and SIGTERM stop gracefully: the listener closes, requests in flight get
    /// `grace_period`, then the runtimes get `shutdown_timeout`. SIGINT stops at once.
    ///
    /// Call it from a plain thread, not from inside a tokio runtime: pingora builds its own runtimes and blocks on
    /// one of them, which tokio forbids inside another runtime.
    pub fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DataPlaneError> {
        self.run_until(async move {
            shutdown.await;
            ShutdownMode::Graceful
        })
    }

    /// Like [`DataPlane::run`], but the `shutdown` future says how to stop: a binary that owns signal handling
    /// maps SIGTERM to [`ShutdownMode::Graceful`] and SIGINT to [`ShutdownMode::Immediate`].
    pub fn run_until(
        self,
        shutdown: impl Future<Output = ShutdownMode> + Send + 'static,
    ) -> Result<(), DataPlaneError> {
        let mut server = Server::new_with_opt_and_conf(None::<Opt>, server_conf(&self.settings));
        let shipper_counters = self.log_shipping.as_ref().map(|_| Arc::default());
        let log_counters = LogCounterSource {
            sink: self.log_sink.counters(),
            shipper: shipper_counters.clone(),
        };
        let board = self.bus.as_ref().map(|(_, sync_settings)| {
            Arc::new(StatusBoard::new(
                sync_settings.node_id.clone(),
                log_counters.clone(),
            ))
        });
        // Idle until a gateway names an OTLP collector.
        let (spans, exporter) = OtlpExporter::new(
            ExportSettings::default(),
            self.settings.upstream_ca_file.as_deref(),
        );
        server.add_service(background_service("otlp-export", exporter));
        let metrics = self.settings.metrics.then(|| {
            NodeMetrics::new(ScrapeSources {
                logs: log_counters,
                config: Arc::clone(&self.config),
                readiness: self.readiness.clone(),
                board: board.clone(),
                otlp: Some(Arc::clone(&spans)),
            })
        });
        if let (Some((bus, sync_settings)), Some(board)) = (self.bus, board) {
            server.add_service(background_service(
                "config-sync",
                ConfigSync::new(
                    bus,
                    Arc::clone(&self.config),
                    self.readiness.clone(),
                    sync_settings,
                    self.default_gateways.clone(),
                    self.default_gateway_requests,
                    board,
                ),
            ));
        } else {
            // Nobody forwards default-gateway requests: refuse (and count) them at once.
            drop(self.default_gateway_requests);
        }
        // Idle until a gateway names an identity provider's JWKS.
        server.add_service(background_service(
            "jwks-refresh",
            JwksRefresher::new(
                self.config.jwks_cache(),
                self.settings.upstream_ca_file.as_deref(),
            ),
        ));
        // Idle until a route's model element asks for active health checks.
        server.add_service(background_service(
            "route-prober",
            RouteProber::new(
                Arc::clone(&self.config),
                self.table.clone(),
                self.settings.upstream_ca_file.as_deref(),
            ),
        ));
        if let Some((stream, records)) = self.log_shipping {
            server.add_service(background_service(
                "log-shipper",
                LogShipper::new(stream, records, shipper_counters.unwrap_or_default()),
            ));
        }
        // The same `ServerConf` for the app as for the server: `HttpProxy` sizes its per-thread structures by it.
        let app = http_proxy(
            &server.configuration,
            GatewayProxy::new(
                self.readiness,
                Arc::clone(&self.config),
                &self.settings,
                self.table,
                self.default_gateways.clone(),
                self.stores,
                Outlets {
                    logs: self.log_sink.clone(),
                    metrics,
                    spans,
                },
            ),
        );
        // A second descriptor of the listening socket, to stop it listening the moment `run` returns: pingora
        // closes its own when the service's runtime has wound down, which a zero shutdown timeout does not wait for,
        // so without this the port could still accept for a moment after the node stopped.
        let closer = self.listener.try_clone().ok();
        let (service, service_exited) =
            PreboundListenerService::new(SERVICE_NAME, app, self.listener, self.local_addr);
        server.add_service(service);

        let reason = Arc::new(OnceLock::new());
        let watcher = ShutdownWatcher::new(
            Box::pin(shutdown),
            service_exited,
            self.settings.handle_os_signals,
            Arc::clone(&reason),
        );
        tracing::info!(listen = %self.local_addr, threads = self.settings.threads, "data plane serving");
        // `run`, not `run_forever`: the latter ends with `process::exit`, which would skip the binary's own
        // shutdown (flushing telemetry, stopping the control plane in standalone mode).
        server.run(RunArgs {
            shutdown_signal: Box::new(watcher),
        });
        if let Some(listener) = closer {
            // On a listening socket, shutting the read side down stops it listening for every descriptor of it.
            let _ = socket2::SockRef::from(&listener).shutdown(std::net::Shutdown::Read);
        }
        tracing::info!("data plane stopped");

        match reason.get() {
            Some(StopReason::ServiceStopped) => Err(DataPlaneError::ServiceStopped),
            _ => Ok(()),
        }
    }
}

fn server_conf(settings: &DataPlaneSettings) -> ServerConf {
    ServerConf {
        threads: settings.threads,
        // Never fork: threads started before `run` (telemetry exporters, the control plane in standalone mode)
        // would not survive it. `false` is the default; it is spelled out because it matters.
        daemon: false,
        // pingora's defaults are 300 s of grace and 5 s for runtimes; ours come from the settings.
        grace_period_seconds: Some(whole_seconds(settings.grace_period)),
        graceful_shutdown_timeout_seconds: Some(whole_seconds(settings.shutdown_timeout)),
        ..ServerConf::default()
    }
}
