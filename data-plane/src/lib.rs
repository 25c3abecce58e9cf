//! Gatehouse data plane: serves client traffic with pingora.
//!
//! The binary binds a [`DataPlane`] (so the address is known and bind errors surface early), hands the
//! [`ReadinessHandle`] to its config loader, and calls [`DataPlane::run`] with a shutdown future.
//!
//! Code map:
//! - `server`: lifecycle. `server/prebound.rs` feeds our bound listener to pingora; `server/shutdown.rs` decides
//!   when and how pingora stops.
//! - `proxy`: the HTTP entry point (`ProxyHttp::request_filter`), endpoint classification, response writing.
//! - `error`: the crate's error enum, the table of gateway error codes and the one `AiGatewayError` renderer.
//! - `identity`: identity providers' JWTs and DPoP proofs, and the JWKS cache a background service keeps fresh.
//!
//! Invariant: gateway-made errors are rendered only by `AiGatewayError::body`.
//! Unix only: pingora takes over pre-bound sockets through its Unix listen-fd table.

#[cfg(not(unix))]
compile_error!("the Gatehouse data plane runs on Unix only");

mod balance;
mod config_sync;
pub mod dialect;
mod error;
pub mod health;
mod identity;
mod log_shipper;
pub mod logs;
mod metrics;
mod otel;
mod proxy;
mod readiness;
mod resolver;
mod route;
mod server;
mod settings;
pub mod snapshot;
pub mod usage;

pub use config_sync::{ConfigSyncSettings, generated_node_id};
pub use error::{AiGatewayError, DataPlaneError, code};
pub use readiness::ReadinessHandle;
pub use server::{DataPlane, ShutdownMode};
pub use settings::DataPlaneSettings;
