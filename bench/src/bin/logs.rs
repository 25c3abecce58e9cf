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

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use diesel::{Connection as _, RunQueryDsl as _};
use gatehouse_bench::client::{HttpClient, http_client};
use gatehouse_bench::stats::Summary;
use gatehouse_bus::testing::{delete_prefix, unique_prefix};
use gatehouse_bus::{LogBatch, LogStream, MemoryBus, RedisBusSettings};
use gatehouse_control_plane::api::AppState;
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::keyring::{Keyring, TokenRequest};
use gatehouse_control_plane::log_consumer::{LogConsumer, LogConsumerSettings};
use gatehouse_control_plane::log_ingest::{LogIngestCounters, store_batch};
use gatehouse_control_plane::propagation::ConfigPublisher;
use gatehouse_control_plane::server::{ApiSettings, ControlPlaneServer};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::log::{BODY_HEAD_CHARS, LogRecord, body_head};
use gatehouse_shared::token::Scope;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

const ACCOUNT: &str = "bench";
const BATCH: usize = 500;

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
struct DbArgs {
    /// A PostgreSQL URL; the run creates and drops its own database on that server.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: String,
    /// Keep the database at the end (its name is printed).
    #[arg(long)]
    keep: bool,
}

/// A fresh database on the server of `base`, dropped on [`Scratch::drop_now`].
struct Scratch {
    base: String,
    name: String,
    url: String,
    keep: bool,
}

impl Scratch {
    fn create(args: &DbArgs) -> Result<Scratch> {
        ensure!(
            args.database_url.starts_with("postgres://")
                || args.database_url.starts_with("postgresql://"),
            "--database-url must be a PostgreSQL URL"
        );
        let name = format!(
            "gh_bench_{}",
            ulid::Ulid::from_parts(now_ms() as u64, u128::from(std::process::id()))
                .to_string()
                .to_lowercase()
        );
        let mut admin = diesel::PgConnection::establish(&args.database_url)
            .context("connecting to --database-url")?;
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin)?;
        let url = with_database(&args.database_url, &name);
        eprintln!("gatehouse-bench-logs: database {name}");
        Ok(Scratch {
            base: args.database_url.clone(),
            name,
            url,
            keep: args.keep,
        })
    }

    fn drop_now(&self) {
        if self.keep {
            eprintln!("gatehouse-bench-logs: kept database {}", self.name);
            return;
        }
        let dropped = diesel::PgConnection::establish(&self.base)
            .map_err(anyhow::Error::from)
            .and_then(|mut c| {
                diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .execute(&mut c)
                .map_err(anyhow::Error::from)
            });
        if let Err(e) = dropped {
            eprintln!(
                "gatehouse-bench-logs: could not drop database {}: {e}",
                self.name
            );
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The management API in process, as `gatehouse control-plane` serves it, with an all-scopes token.
struct Api {
    addr: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    fn start(db: &Database) -> Result<Api> {
        let master = MasterKey::from_base64(&MasterKey::generate_base64())?;
        let keyring = Keyring::load_or_create(db, &master)?;
        let token = keyring
            .mint(
                db,
                TokenRequest {
                    accounts: vec!["*".into()],
                    scopes: Scope::ALL.to_vec(),
                    ttl: None,
                    description: "gatehouse-bench-logs".into(),
                },
            )?
            .token;
        let state = AppState {
            db: db.clone(),
            keyring,
            public_inference_url: "http://127.0.0.1:8787".into(),
            max_body_bytes: 1024 * 1024,
            master_key: master,
            allow_http_custom_providers: false,
            publisher: ConfigPublisher::new(db.clone(), Arc::new(MemoryBus::new())),
            log_ingest: Arc::default(),
        };
        let server = ControlPlaneServer::bind(
            &ApiSettings {
                listen: "127.0.0.1:0".parse()?,
                workers: 2,
            },
            state,
        )?;
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(e) = server.run(async move {
                let _ = stopped.await;
            }) {
                eprintln!("gatehouse-bench-logs: management API: {e}");
            }
        });
        Ok(Api {
            addr,
            token,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    async fn send(
        &self,
        client: &HttpClient,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.addr))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let resp = client.request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    async fn create_gateway(&self, client: &HttpClient, id: &str) -> Result<()> {
        let (status, body) = self
            .send(
                client,
                Method::POST,
                &format!("/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways"),
                Some(
                    json!({"id": id, "cache_invalidate_on_update": false, "cache_ttl": 0,
                    "collect_logs": true, "rate_limiting_interval": 0, "rate_limiting_limit": 0}),
                ),
            )
            .await?;
        ensure!(
            status == StatusCode::OK,
            "creating gateway {id}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

const MODELS: [&str; 6] = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-nano",
    "o3-mini",
    "claude-3-5-haiku",
    "claude-sonnet-4",
];
const TOPICS: [&str; 8] = [
    "connection pooling",
    "TLS session resumption",
    "HTTP/2 flow control",
    "exponential backoff",
    "DNS caching",
    "idempotency keys",
    "rate limiting",
    "circuit breakers",
];

/// A deterministic 64-bit mix (splitmix64), so runs are repeatable without a random source.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d1_049b_d111_49eb);
    x ^ (x >> 31)
}

/// Record `i` of `n` for `gateway`, spread evenly over the 30 days before `now_ms`: a chat completion with a
/// ~1 KB request and response body, their heads, sizes, tokens, cost and metadata. About 1 in 20 failed (a 429 or
/// a 500); six models, two providers.
fn record(gateway: &str, i: u64, n: u64, now_ms: i64, salt: u64) -> LogRecord {
    const SPAN_MS: i64 = 30 * 24 * 3600 * 1000;
    let r = mix(i ^ salt.rotate_left(32));
    let created_at_ms = now_ms - SPAN_MS + (SPAN_MS as u128 * i as u128 / n.max(1) as u128) as i64;
    let model = MODELS[(r % MODELS.len() as u64) as usize];
    let provider = if model.starts_with("claude") {
        "anthropic"
    } else {
        "openai"
    };
    let topic = TOPICS[((r >> 8) % TOPICS.len() as u64) as usize];
    let failed = (r >> 16).is_multiple_of(20);
    let status_code: u16 = match (failed, (r >> 24) % 2) {
        (false, _) => 200,
        (true, 0) => 429,
        (true, _) => 500,
    };
    let tokens_in = 120 + (r >> 32) % 400;
    let tokens_out = if failed { 0 } else { 40 + (r >> 40) % 300 };
    let request_body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a terse, accurate assistant for network engineers. Answer in plain text, no lists, at most three sentences, and say so when you are unsure rather than guessing."},
            {"role": "user", "content": format!("Request {i}: explain {topic} to a backend engineer who already knows TCP and HTTP/1.1, with one concrete example of a failure it prevents in a service that calls a third-party API under load, and one way to observe it in production metrics or logs.")}
        ],
        "max_tokens": 256,
        "temperature": 0.2,
        "user": format!("user-{}", r % 5000),
    })
    .to_string();
    let response_body = if failed {
        json!({"error": {"message": if status_code == 429 { "Rate limit reached for requests per minute. Please try again in 20s." } else { "The server had an error while processing your request. Sorry about that!" },
            "type": if status_code == 429 { "requests" } else { "server_error" }, "param": null, "code": null}})
        .to_string()
    } else {
        json!({
            "id": format!("chatcmpl-{r:016x}"), "object": "chat.completion", "created": created_at_ms / 1000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{topic} keeps a slow or failing dependency from taking the caller down with it: without it, a burst of retries against a third-party API that is already struggling multiplies the load and every worker ends up blocked waiting. You can see it working when the error rate of the dependency rises but the latency of your own endpoints stays flat, and its counters (open, rejected, retried) move in your dashboards.")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
        })
        .to_string()
    };
    let (request_head, request_head_complete) = body_head(request_body.as_bytes(), BODY_HEAD_CHARS);
    let (response_head, response_head_complete) =
        body_head(response_body.as_bytes(), BODY_HEAD_CHARS);
    let id = ulid::Ulid::from_parts(created_at_ms as u64, (u128::from(r) << 64) | u128::from(i))
        .to_string();
    LogRecord {
        id: id.clone(),
        account_id: ACCOUNT.into(),
        gateway_id: gateway.into(),
        created_at_ms,
        provider: provider.into(),
        model: Some(model.into()),
        model_type: Some("chat".into()),
        path: "chat/completions".into(),
        request_type: Some("provider".into()),
        request_content_type: Some("application/json".into()),
        response_content_type: Some("application/json".into()),
        status_code,
        success: !failed,
        cached: (r >> 48).is_multiple_of(10) && !failed,
        duration_ms: 200 + (r >> 20) % 3000,
        tokens_in: Some(tokens_in),
        tokens_out: Some(tokens_out),
        cached_tokens_in: Some(0),
        cost: Some((tokens_in as f64 * 0.15 + tokens_out as f64 * 0.6) / 1e6),
        custom_cost: false,
        metadata: Some(
            json!({"team": format!("team-{}", r % 12), "env": "prod", "trace": i}).to_string(),
        ),
        event_id: id,
        step: 0,
        user_agent: Some("OpenAI/Python 1.82.0".into()),
        authenticated: true,
        request_size: request_body.len() as u64,
        response_size: response_body.len() as u64,
        request_head,
        request_head_complete,
        response_head,
        response_head_complete,
        request_body: Some(request_body),
        response_body: Some(response_body),
        bodies_stored: true,
        config_hash: Some("bench".into()),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Stores records `0..n` of `gateway` in batches of 500 from `writers` tasks, each taking the next batch number;
/// stops taking batches at `deadline`. Returns the rows inserted and the elapsed time. `pregenerated` batches are
/// used as they are (so generating them is not timed); otherwise each batch is generated by its writer.
async fn store_all(
    db: &Database,
    gateway: &str,
    n: usize,
    writers: usize,
    deadline: Option<Instant>,
    pregenerated: Option<Arc<Vec<Arc<Vec<LogRecord>>>>>,
    progress: bool,
) -> Result<(usize, Duration)> {
    let batches = n.div_ceil(BATCH) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let inserted = Arc::new(AtomicU64::new(0));
    let now = now_ms();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers.max(1) {
        let (db, next, inserted, gateway, pre) = (
            db.clone(),
            next.clone(),
            inserted.clone(),
            gateway.to_owned(),
            pregenerated.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok::<_, anyhow::Error>(());
                }
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return Ok(());
                }
                let batch = match &pre {
                    Some(pre) => pre[b as usize].clone(),
                    None => {
                        let from = b * BATCH as u64;
                        let to = (from + BATCH as u64).min(n as u64);
                        Arc::new(
                            (from..to)
                                .map(|i| record(&gateway, i, n as u64, now, 7))
                                .collect(),
                        )
                    }
                };
                let stored = store_batch(&db, batch).await?.inserted;
                let total = inserted.fetch_add(stored as u64, Ordering::Relaxed) + stored as u64;
                if progress && (b + 1).is_multiple_of(200) {
                    eprintln!(
                        "gatehouse-bench-logs: seeded {total} rows in {:.0} s",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((inserted.load(Ordering::Relaxed) as usize, started.elapsed()))
}

async fn ingest(
    db: &Database,
    api: &Api,
    records: usize,
    writer_counts: &[usize],
) -> Result<Value> {
    let client = http_client();
    let mut rows = Vec::new();
    println!(
        "ingest into PostgreSQL through log_ingest::store_batch, batches of {BATCH}, {records} records per run"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12}  target",
        "writers", "records", "seconds", "records/s"
    );
    for &writers in writer_counts {
        let gateway = format!("ingest-{writers}");
        api.create_gateway(&client, &gateway).await?;
        let now = now_ms();
        let pre: Vec<Arc<Vec<LogRecord>>> = (0..records.div_ceil(BATCH))
            .map(|b| {
                let from = (b * BATCH) as u64;
                let to = (from + BATCH as u64).min(records as u64);
                Arc::new(
                    (from..to)
                        .map(|i| record(&gateway, i, records as u64, now, writers as u64))
                        .collect(),
                )
            })
            .collect();
        let (inserted, elapsed) = store_all(
            db,
            &gateway,
            records,
            writers,
            None,
            Some(Arc::new(pre)),
            false,
        )
        .await?;
        ensure!(
            inserted == records,
            "{writers} writers stored {inserted} of {records}"
        );
        let rate = inserted as f64 / elapsed.as_secs_f64();
        println!(
            "{writers:>8} {inserted:>10} {:>10.2} {rate:>12.0}  >= 5,000/s: {}",
            elapsed.as_secs_f64(),
            if rate >= 5000.0 { "met" } else { "MISSED" }
        );
        rows.push(json!({"writers": writers, "records": inserted,
            "seconds": elapsed.as_secs_f64(), "records_per_s": rate}));
    }
    Ok(json!({"mode": "ingest", "batch": BATCH, "runs": rows}))
}

/// Split mode's ingest end to end on the control plane's side: `records` appended to a Redis log stream (under a
/// prefix of its own) as entries of 500, as nodes ship them (not timed), then the real `LogConsumer` started and
/// timed until it has acknowledged every entry, for each count of concurrent stores.
async fn ingest_from_stream(
    db: &Database,
    api: &Api,
    redis_url: &str,
    records: usize,
    concurrent_stores: &[usize],
) -> Result<Value> {
    let client = http_client();
    let mut rows = Vec::new();
    println!(
        "ingest from a Redis log stream through LogConsumer, entries of {BATCH}, {records} records per run"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12}  target",
        "stores", "records", "seconds", "records/s"
    );
    for &stores in concurrent_stores {
        let gateway = format!("stream-{stores}");
        api.create_gateway(&client, &gateway).await?;
        let prefix = unique_prefix("bench-logs");
        let stream = Arc::new(LogStream::new(
            &RedisBusSettings {
                url: redis_url.to_owned(),
                prefix: prefix.clone(),
            },
            tokio::runtime::Handle::current(),
        )?);
        stream.ensure_group().await?;
        let now = now_ms();
        let entries = records.div_ceil(BATCH);
        for b in 0..entries {
            let from = (b * BATCH) as u64;
            let to = (from + BATCH as u64).min(records as u64);
            let batch: Vec<LogRecord> = (from..to)
                .map(|i| record(&gateway, i, records as u64, now, 100 + stores as u64))
                .collect();
            stream.append(&LogBatch::encode(&batch)?).await?;
        }
        let counters = Arc::new(LogIngestCounters::default());
        let mut settings =
            LogConsumerSettings::new(format!("bench-{stores}"), Duration::from_secs(30));
        settings.concurrent_stores = stores;
        settings.block = Duration::from_millis(100);
        let started = Instant::now();
        let consumer = LogConsumer::spawn(
            db.clone(),
            Arc::clone(&stream),
            settings,
            Arc::clone(&counters),
            &tokio::runtime::Handle::current(),
        );
        let deadline = started + Duration::from_secs(600);
        while counters.acknowledged.load(Ordering::Relaxed) < entries as u64 {
            ensure!(
                Instant::now() < deadline,
                "the consumer acknowledged {:?} of {entries} entries in 600 s",
                counters.acknowledged
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        consumer.stop().await;
        delete_prefix(redis_url, &prefix);
        let stored = counters.stored.load(Ordering::Relaxed) as usize;
        ensure!(
            stored == records,
            "{stores} stores: stored {stored} of {records}"
        );
        let rate = stored as f64 / elapsed.as_secs_f64();
        println!(
            "{stores:>8} {stored:>10} {:>10.2} {rate:>12.0}  >= 5,000/s: {}",
            elapsed.as_secs_f64(),
            if rate >= 5000.0 { "met" } else { "MISSED" }
        );
        rows.push(json!({"concurrent_stores": stores, "records": stored,
            "seconds": elapsed.as_secs_f64(), "records_per_s": rate}));
    }
    Ok(json!({"entry_records": BATCH, "runs": rows}))
}

async fn list(
    db: &Database,
    api: &Api,
    rows: usize,
    seed_budget: Duration,
    seed_writers: usize,
    iterations: usize,
    warmup: usize,
) -> Result<Value> {
    let client = http_client();
    let gateway = "logs-1m";
    api.create_gateway(&client, gateway).await?;
    eprintln!(
        "gatehouse-bench-logs: seeding {rows} rows with {seed_writers} writers (budget {})",
        humantime::format_duration(seed_budget)
    );
    let (seeded, seed_time) = store_all(
        db,
        gateway,
        rows,
        seed_writers,
        Some(Instant::now() + seed_budget),
        None,
        true,
    )
    .await?;
    let analyze = Instant::now();
    db.run(|c| {
        diesel::sql_query("ANALYZE")
            .execute(c)
            .map_err(gatehouse_control_plane::error::Error::from)
    })
    .await?;
    let analyze = analyze.elapsed();
    println!(
        "seeded {seeded} rows in {:.0} s ({:.0} rows/s, {seed_writers} writers){}; ANALYZE {:.1} s",
        seed_time.as_secs_f64(),
        seeded as f64 / seed_time.as_secs_f64(),
        if seeded < rows {
            format!(" — seed budget reached before {rows}")
        } else {
            String::new()
        },
        analyze.as_secs_f64()
    );

    // The middle of the seeded time span: a created_at range covering one day of it.
    let now = now_ms();
    let day = 24 * 3600 * 1000_i64;
    let (from, to) = (now - 15 * day, now - 14 * day);
    let base = format!("/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways/{gateway}/logs");
    let queries: Vec<(&str, String)> = vec![
        ("first page", format!("{base}?per_page=20")),
        ("page 100", format!("{base}?per_page=20&page=100")),
        (
            "model eq",
            format!(
                "{base}?per_page=20&filters.key=model&filters.operator=eq&filters.value=gpt-4o"
            ),
        ),
        (
            "model eq, page 400",
            format!(
                "{base}?per_page=20&page=400&filters.key=model&filters.operator=eq&filters.value=gpt-4o"
            ),
        ),
        (
            "success=false",
            format!(
                "{base}?per_page=20&filters.key=success&filters.operator=eq&filters.value=false"
            ),
        ),
        (
            "created_at 1 day",
            format!(
                "{base}?per_page=20&filters.key=created_at&filters.operator=gt&filters.value={from}&filters.key=created_at&filters.operator=lt&filters.value={to}"
            ),
        ),
        ("search", format!("{base}?per_page=20&search=o3-mini")),
        ("meta_info", format!("{base}?per_page=20&meta_info=true")),
    ];
    println!(
        "list latency through the HTTP API at {seeded} rows, {iterations} requests each after {warmup} warm-up (ms)"
    );
    println!(
        "{:<18} {:>12} {:>9} {:>9} {:>9}",
        "query", "total_count", "p50", "p99", "max"
    );
    let mut results = Vec::new();
    for (label, pq) in &queries {
        let mut total_count = None;
        for _ in 0..warmup {
            let (status, body) = api.send(&client, Method::GET, pq, None).await?;
            if status != StatusCode::OK {
                bail!("{label}: {status} {}", String::from_utf8_lossy(&body));
            }
            let v: Value = serde_json::from_slice(&body)?;
            total_count = v["result_info"]["total_count"].as_i64();
        }
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let t = Instant::now();
            let (status, body) = api.send(&client, Method::GET, pq, None).await?;
            samples.push(t.elapsed());
            ensure!(
                status == StatusCode::OK,
                "{label}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        let s = Summary::of(&samples).context("no samples")?;
        let ms = |d: Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        println!(
            "{label:<18} {:>12} {:>9.1} {:>9.1} {:>9.1}",
            total_count.map_or("-".into(), |c| c.to_string()),
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
        results.push(json!({"query": label, "total_count": total_count,
            "p50_ms": ms(s.p50), "p99_ms": ms(s.p99), "max_ms": ms(s.max)}));
    }
    Ok(
        json!({"mode": "list", "rows": seeded, "rows_requested": rows,
        "seed_seconds": seed_time.as_secs_f64(), "seed_writers": seed_writers,
        "iterations": iterations, "queries": results}),
    )
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
