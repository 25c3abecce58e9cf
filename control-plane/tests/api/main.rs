//! Integration tests of the management API: one test binary, modules per area. Each test starts a real server on
//! port 0 over a fresh database, and runs against SQLite and PostgreSQL.

mod support;

mod admin;
mod analytics;
mod auth;
mod custom_providers;
mod datasets;
mod evaluations;
mod front_door;
mod gateway_extensions;
mod gateways;
mod key_logs;
mod keys;
mod log_caps;
mod log_ingest;
mod log_search;
mod log_writer_cost;
mod logs;
mod metrics;
mod openapi;
mod pagination;
mod propagation;
mod provider_configs;
mod routes;
mod targets;
mod usage;
mod users_and_teams;
mod validation;
