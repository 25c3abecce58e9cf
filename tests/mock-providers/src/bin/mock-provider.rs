//! `mock-provider`: the mock as a process, for benchmarks and for tests that want it outside their own process.
//!
//! Prints `mock provider listening on http://ADDR` on stdout once it accepts connections, then serves until SIGINT
//! or SIGTERM. Steer it per request with `x-mock-*` headers. It also answers `POST /v1/traces` with 200 and discards
//! the body: an OTLP collector stand-in for load runs (`bench/run.sh --phases telemetry`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_mock_providers::{Behaviour, MockState, serve};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "A mock OpenAI/Anthropic provider")]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Runtime worker threads. 1 keeps the mock off the gateway's core in benchmarks.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Keep every request in memory (off by default: a benchmark would grow without bound).
    #[arg(long)]
    record: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("bind {}", args.listen))?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        println!(
            "mock provider listening on http://{}",
            listener.local_addr()?
        );
        let state = Arc::new(MockState::new(Behaviour::default(), args.record));
        serve(listener, state, async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await;
        Ok(())
    })
}
