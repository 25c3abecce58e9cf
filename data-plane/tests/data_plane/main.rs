//! Integration tests: the real data plane on port 0, driven over TCP with a minimal HTTP/1.1 client.

mod cache_limits;
mod client;
mod compat;
mod compat_embeddings;
mod compat_gemini;
mod compat_more;
mod compat_translated;
mod compat_workers_ai;
mod config_sync;
mod controlled_bus;
mod errors;
mod harness;
mod identity;
mod inference;
mod keys;
mod lifecycle;
mod logging;
mod node;
mod policy_node;
mod probes;
mod request_limits;
mod retries;
mod route_balance;
mod routes;
mod spend;
mod tls;
