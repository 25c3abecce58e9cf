//! Integration tests: the real data plane on port 0, driven over TCP with a minimal HTTP/1.1 client.

mod client;
mod errors;
mod harness;
mod lifecycle;
mod probes;
