//! End-to-end tests of the real `gatehouse` binary: started as a process on port 0, driven over HTTP and its CLI.

mod support;

mod cli;
mod cluster;
mod compat;
mod deploy;
mod inference;
mod keys;
mod log_pipeline;
mod log_writer;
mod logs;
mod metrics;
mod policies;
mod propagation;
mod routes;
mod sdk;
mod split;
mod standalone;
