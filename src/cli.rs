//! Command-line settings. Every flag has a `GATEHOUSE_*` environment twin, so the same binary is configured by
//! flags on a laptop and by environment in a container.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "A self-hostable AI gateway, wire-compatible with Cloudflare AI Gateway"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    /// What to run; without one, both planes run in one process (standalone).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Control plane and data plane in one process, SQLite in the data dir, in-process config bus.
    Standalone,
    /// The management API alone, on PostgreSQL (`--database-url`) and Redis (`--redis-url`).
    ControlPlane,
    /// A data-plane node alone, fed through Redis (`--redis-url`).
    DataPlane,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document of the management API.
    Openapi,
    /// Manage API tokens in the same database the server uses.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a token and print only the token on stdout.
    Create {
        /// An account the token may act on (repeatable); `*` for all accounts.
        #[arg(long = "account", required = true)]
        accounts: Vec<String>,
        /// A scope: ai-gateway:read, ai-gateway:edit, ai-gateway:run or admin (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime, e.g. `30d`, `12h`, `90s`; without it the token does not expire.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// A note to recognise the token by in `token list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List tokens (never their text).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

/// Options every command understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Where standalone keeps its SQLite database, master key and state.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATA_DIR",
        default_value = "./gatehouse-data"
    )]
    pub data_dir: PathBuf,
    /// postgres://… or sqlite://PATH. Default: SQLite in the data dir (standalone and the CLI commands).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Redis for the config bus, log stream and shared limits (control-plane and data-plane modes).
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// Every Redis key and channel starts with this, so deployments and test runs can share one Redis.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_REDIS_PREFIX",
        default_value = "gatehouse:"
    )]
    pub redis_prefix: String,
    /// How this data-plane node appears in `GET /admin/nodes`. Default: the host name and a random suffix.
    #[arg(long, global = true, env = "GATEHOUSE_NODE_ID")]
    pub node_id: Option<String>,
    /// How often a data-plane node re-reads the whole config index (the most a lost announcement can delay a
    /// change).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG_RESYNC_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub config_resync_interval: std::time::Duration,
    /// How often the control plane compares every gateway's published document with the database and republishes
    /// what differs.
    #[arg(long, global = true, env = "GATEHOUSE_RECONCILE_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub reconcile_interval: std::time::Duration,
    /// How often the control plane compares the published deployment document (token keys and revocations) with
    /// the database: the delay before a `gatehouse token revoke` reaches the nodes.
    #[arg(long, global = true, env = "GATEHOUSE_DEPLOYMENT_RECONCILE_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub deployment_reconcile_interval: std::time::Duration,
    /// A file holding the 32-byte master key as base64. Standalone creates `master.key` in the data dir.
    #[arg(long, global = true, env = "GATEHOUSE_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, base64 (environment only: a flag would show in the process list).
    #[arg(
        long = "master-key",
        global = true,
        env = "GATEHOUSE_MASTER_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub master_key: Option<String>,
    /// Management API listener; port 0 picks a free port.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_API_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub api_listen: SocketAddr,
    /// Inference listener; port 0 picks a free port.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_PROXY_LISTEN",
        default_value = "127.0.0.1:8787"
    )]
    pub proxy_listen: SocketAddr,
    /// The inference base URL clients use (for `GET .../url/{provider}`). Default: http:// and the bound inference
    /// address in standalone, the `--proxy-listen` address otherwise.
    #[arg(long, global = true, env = "GATEHOUSE_PUBLIC_INFERENCE_URL")]
    pub public_inference_url: Option<String>,
    /// Largest management API request body, in bytes.
    #[arg(long, global = true, env = "GATEHOUSE_API_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub api_max_body_bytes: usize,
    /// Allow `http://` base URLs for custom providers (Cloudflare requires `https://`).
    #[arg(long, global = true, env = "GATEHOUSE_ALLOW_HTTP_CUSTOM_PROVIDERS")]
    pub allow_http_custom_providers: bool,
    /// Management API worker threads.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_API_WORKERS",
        default_value_t = 2
    )]
    pub api_workers: usize,
    /// Data-plane worker threads.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_PROXY_THREADS",
        default_value_t = 2
    )]
    pub proxy_threads: usize,
    /// Replace a provider's upstream base, e.g. `openai=http://127.0.0.1:9000/v1` (repeatable). The environment
    /// twin takes a comma-separated list.
    #[arg(long = "provider-base-url", global = true, env = "GATEHOUSE_PROVIDER_BASE_URLS", value_delimiter = ',', value_parser = parse_base_url_override)]
    pub provider_base_urls: Vec<(String, String)>,
    /// Largest inference request body, in bytes (413 beyond it).
    #[arg(long, global = true, env = "GATEHOUSE_PROXY_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub proxy_max_body_bytes: usize,
    /// How long to wait for an upstream connection.
    #[arg(long, global = true, env = "GATEHOUSE_UPSTREAM_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_connect_timeout: std::time::Duration,
    /// How long to wait for an upstream's response header when the request sets no `cf-aig-request-timeout`.
    #[arg(long, global = true, env = "GATEHOUSE_UPSTREAM_RESPONSE_TIMEOUT", default_value = "600s", value_parser = humantime::parse_duration)]
    pub upstream_response_timeout: std::time::Duration,
    /// A PEM bundle of CA certificates for upstream TLS, used instead of the system roots (private CAs).
    #[arg(long, global = true, env = "GATEHOUSE_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Largest inference request header (every field's name and value together), in bytes (431 beyond it).
    #[arg(long, global = true, env = "GATEHOUSE_PROXY_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub proxy_max_header_bytes: usize,
    /// Trust `X-Forwarded-Proto` on inference requests as the scheme clients used (set it behind a TLS-terminating
    /// proxy that sets the header): DPoP proofs name the URL the client called, `https://…` there.
    #[arg(long, global = true, env = "GATEHOUSE_PROXY_TRUST_FORWARDED_PROTO")]
    pub proxy_trust_forwarded_proto: bool,
    /// Keep Prometheus metrics and serve them at `GET /metrics` on both listeners (`--metrics false` turns them off).
    #[arg(long, global = true, env = "GATEHOUSE_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// The longest one upstream exchange may take, from the request to the last response byte (streams included).
    #[arg(long, global = true, env = "GATEHOUSE_UPSTREAM_TOTAL_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub upstream_total_timeout: std::time::Duration,
    /// Standalone mode: memory the in-process response cache may hold, in bytes (split mode caches in Redis).
    #[arg(long, global = true, env = "GATEHOUSE_MEMORY_CACHE_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub memory_cache_bytes: usize,
    /// Split mode: the most admissions of one rate limit a data plane takes from Redis at once and admits
    /// locally (a lease; see ARCHITECTURE.md "Rate-limit leases"). 1 makes every admission a Redis round trip.
    #[arg(long, global = true, env = "GATEHOUSE_RATE_LIMIT_MAX_LEASE", default_value_t = gatehouse_bus::limits::DEFAULT_MAX_LEASE, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate_limit_max_lease: u64,
    /// Log records a data plane holds for its writer before it drops (and counts) new ones.
    #[arg(
        long,
        global = true,
        env = "GATEHOUSE_LOG_QUEUE_CAPACITY",
        default_value_t = 10_000
    )]
    pub log_queue_capacity: usize,
    /// Split mode: a log batch read by a control plane and not stored this long (the control plane died, or its
    /// database failed) is taken over by another control plane (`XAUTOCLAIM`).
    #[arg(long, global = true, env = "GATEHOUSE_LOG_CLAIM_IDLE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub log_claim_idle: std::time::Duration,
    /// On SIGTERM, how long in-flight inference requests may run before the data plane stops (whole seconds;
    /// pingora waits this long even when idle). SIGINT stops at once.
    #[arg(long, global = true, env = "GATEHOUSE_SHUTDOWN_GRACE_PERIOD", default_value = "5s", value_parser = humantime::parse_duration)]
    pub shutdown_grace_period: std::time::Duration,
    /// Log filter in `tracing` syntax; `RUST_LOG` wins when set.
    #[arg(long, global = true, env = "GATEHOUSE_LOG", default_value = "info")]
    pub log: String,
    /// Export traces over OTLP/HTTP to this endpoint (e.g. http://127.0.0.1:4318/v1/traces).
    #[arg(long, global = true, env = "GATEHOUSE_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Parses `slug=url` for `--provider-base-url`.
fn parse_base_url_override(text: &str) -> Result<(String, String), String> {
    let (slug, url) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SLUG=URL, got {text:?}"))?;
    let (slug, url) = (slug.trim(), url.trim());
    if !gatehouse_shared::providers::is_routable_slug(slug)
        || slug == gatehouse_shared::providers::COMPAT_PROVIDER
    {
        return Err(format!("unknown provider {slug:?}"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "the base URL of {slug} must start with http:// or https://"
        ));
    }
    Ok((slug.to_owned(), url.trim_end_matches('/').to_owned()))
}
