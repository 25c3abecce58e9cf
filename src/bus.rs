//! The config bus of each mode: the in-process bus in standalone, Redis for separate control planes and nodes, and
//! the runtime the bus's I/O (and the control plane's reconciler) runs on.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use gatehouse_bus::{ConfigBus, RedisBus, RedisBusSettings};
use gatehouse_control_plane::propagation::ReconcilerSettings;
use gatehouse_data_plane::{ConfigSyncSettings, generated_node_id};
use gatehouse_shared::crypto::MasterKey;

use crate::cli::GlobalOptions;
use crate::setup::{self, KeyPolicy};

/// A small runtime of its own for bus I/O and propagation work, so neither depends on actix's or pingora's
/// runtimes (which stop in their own order at shutdown). One thread: the work is a few messages per change.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gatehouse-bus")
        .enable_all()
        .build()
        .context("cannot start the config bus runtime")
}

/// The Redis bus from `--redis-url` and `--redis-prefix`; required in the `mode` that calls it.
pub fn redis(
    opts: &GlobalOptions,
    mode: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<Arc<dyn ConfigBus>> {
    let Some(url) = &opts.redis_url else {
        bail!(
            "{mode} mode needs Redis for the config bus: set --redis-url or GATEHOUSE_REDIS_URL \
             (for example redis://127.0.0.1:6379/)"
        );
    };
    let bus = RedisBus::new(
        &RedisBusSettings {
            url: url.clone(),
            prefix: opts.redis_prefix.clone(),
        },
        runtime.clone(),
    )?;
    Ok(Arc::new(bus))
}

pub fn reconciler_settings(opts: &GlobalOptions) -> ReconcilerSettings {
    ReconcilerSettings {
        deployment_interval: opts.deployment_reconcile_interval,
        gateway_interval: opts.reconcile_interval,
    }
}

pub fn sync_settings(opts: &GlobalOptions) -> ConfigSyncSettings {
    let node_id = opts.node_id.clone().unwrap_or_else(generated_node_id);
    let mut settings = ConfigSyncSettings::new(node_id);
    settings.resync_interval = opts.config_resync_interval;
    settings
}

/// A data-plane node opens stored provider keys with the master key when one is configured; without one it runs
/// and serves only gateways without stored keys.
pub fn data_plane_master_key(opts: &GlobalOptions) -> Result<Option<MasterKey>> {
    if opts.master_key.is_some() || opts.master_key_file.is_some() {
        return setup::master_key(opts, KeyPolicy::MustExist).map(Some);
    }
    tracing::warn!(
        "no master key (GATEHOUSE_MASTER_KEY or --master-key-file): this node cannot open stored provider keys \
         and refuses gateways that have them"
    );
    Ok(None)
}
