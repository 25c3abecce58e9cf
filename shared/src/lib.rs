//! Types that both Gatehouse planes use.
//!
//! Invariant: this crate does no I/O. It holds wire shapes (config documents, token claims), the names both planes
//! must agree on (scopes, provider slugs), and the pure functions over them (token verification, secret sealing), so
//! that the control plane and every data-plane node decide the same way.

pub mod access;
pub mod config;
pub mod crypto;
pub mod front_door;
pub mod gateway;
pub mod ids;
pub mod log;
pub mod node;
pub mod otel;
pub mod pricing;
pub mod providers;
pub mod routes;
pub mod spend_limits;
pub mod token;
