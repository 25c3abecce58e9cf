//! `gatehouse-bench-logs`: the log side of the benchmark, against PostgreSQL.
//!
//! - `ingest`: records/s through `log_ingest::store_batch` (the production path: caps, idempotency) in batches of
//!   500, from 1 and then 2 concurrent writers; with `--redis-url`, also through split mode's whole control-plane
//!   path (Redis log stream → `LogConsumer` → PostgreSQL) with 1 and 2 concurrent stores.
//! - `list`: seeds up to `--rows` logs into one gateway the same way, then measures the list API (the real actix app,
//!   in process, over HTTP on 127.0.0.1) at p50/p99 for the first page, a deep page and the common filters.
//!
//! Each run creates its own database (`gh_bench_…`) on the server of `--database-url` and drops it at the end
//! (`--keep` keeps it). See bench/README.md, section "Logs".

mod ingest;
mod list;
mod records;
mod setup;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use gatehouse_control_plane::db::Database;
use serde_json::Value;

use crate::ingest::{ingest, ingest_from_stream};
use crate::list::list;
use crate::setup::{Api, Scratch};

pub(crate) const ACCOUNT: &str = "bench";
pub(crate) const BATCH: usize = 500;

#[derive(Parser, Debug)]
#[command(about = "Log ingest rate and list latency against PostgreSQL")]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Records/s stored through log_ingest::store_batch, batches of 500, 1 then 2 writers.
    Ingest {
        #[command(flatten)]
        db: DbArgs,
        /// Records per writer count.
        #[arg(long, default_value_t = 50_000)]
        records: usize,
        /// Writer counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        writers: Vec<usize>,
        /// Also measure split mode's whole path: the records as entries of 500 in a Redis log stream, read,
        /// stored and acknowledged by the control plane's `LogConsumer`.
        #[arg(long, env = "BENCH_REDIS_URL")]
        redis_url: Option<String>,
        /// The consumer's concurrent stores to measure, comma-separated (production default: 2).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        concurrent_stores: Vec<usize>,
    },
    /// Seeds rows into one gateway, then measures list and filter latency through the HTTP API.
    List {
        #[command(flatten)]
        db: DbArgs,
        /// Rows to seed.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Stop seeding after this long and measure at the size reached.
        #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
        seed_budget: Duration,
        /// Concurrent writers while seeding.
        #[arg(long, default_value_t = 2)]
        seed_writers: usize,
        /// Measured requests per query (after `--warmup` unmeasured ones).
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct DbArgs {
    /// A PostgreSQL URL; the run creates and drops its own database on that server.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    pub(crate) database_url: String,
    /// Keep the database at the end (its name is printed).
    #[arg(long)]
    pub(crate) keep: bool,
}

fn run(args: Args) -> Result<Value> {
    let db_args = match &args.mode {
        Mode::Ingest { db, .. } | Mode::List { db, .. } => db,
    };
    let scratch = Scratch::create(db_args)?;
    let outcome = (|| {
        let db = Database::connect(&scratch.url)?;
        db.migrate()?;
        let api = Api::start(&db)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let result = runtime.block_on(async {
            match &args.mode {
                Mode::Ingest {
                    records,
                    writers,
                    redis_url,
                    concurrent_stores,
                    ..
                } => {
                    let mut summary = ingest(&db, &api, *records, writers).await?;
                    if let Some(url) = redis_url {
                        summary["stream"] =
                            ingest_from_stream(&db, &api, url, *records, concurrent_stores).await?;
                    }
                    Ok(summary)
                }
                Mode::List {
                    rows,
                    seed_budget,
                    seed_writers,
                    iterations,
                    warmup,
                    ..
                } => {
                    list(
                        &db,
                        &api,
                        *rows,
                        *seed_budget,
                        *seed_writers,
                        *iterations,
                        *warmup,
                    )
                    .await
                }
            }
        });
        drop(runtime);
        api.stop();
        drop(db);
        result
    })();
    scratch.drop_now();
    outcome
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gatehouse-bench-logs: {e:#}");
            ExitCode::from(2)
        }
    }
}
