//! The Gatehouse control plane: the Cloudflare v4-compatible management API over PostgreSQL or SQLite.
//!
//! Entry points: [`server::ControlPlaneServer`] serves the API; [`db::Database`] opens storage and runs migrations;
//! [`keyring::Keyring`] mints and verifies tokens; [`api::openapi_document`] generates the OpenAPI document;
//! [`propagation::ConfigPublisher`] publishes config documents to the data plane after every change.

pub mod api;
pub mod db;
pub mod documents;
pub mod error;
pub mod evaluations;
pub mod keyring;
pub mod log_consumer;
pub mod log_ingest;
pub mod metrics;
pub mod propagation;
pub mod schema;
pub mod server;
pub mod store;

pub use error::Error;
