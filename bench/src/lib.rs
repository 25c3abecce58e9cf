//! The gateway load benchmark: the same requests direct to a mock provider and through the data plane, with the
//! added latency, the throughput ratio and the gateway's CPU per request and per streamed chunk. `bench/run.sh`
//! starts the processes; `bench/README.md` says what is measured and how to read it.

pub mod client;
pub mod compare;
pub mod compat;
pub mod concurrent;
pub mod cpu;
pub mod duo;
pub mod format;
pub mod ingest;
pub mod keys;
pub mod load;
pub mod measure;
pub mod report;
pub mod resources;
pub mod routes;
pub mod stats;
pub mod telemetry;
