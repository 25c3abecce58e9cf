//! `gatehouse-bench`: runs every phase direct to the mock and through the gateway, prints a table and a JSON line.
//!
//! Exit status: 0 when every request of the run succeeded, 1 when some failed (missing a target is not a failure),
//! 2 when the run could not start.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod args;
mod bodies;
mod compat_phase;
mod keys_phase;
mod routes_phase;
mod telemetry_phase;

use anyhow::{Context as _, Result};
use clap::Parser;
use gatehouse_bench::client::{
    ANTHROPIC_STREAM_END, HttpClient, OPENAI_STREAM_END, Target, http_client, sample_header,
};
use gatehouse_bench::compare::Labelled;
use gatehouse_bench::concurrent::{
    self, Concurrent, Probe, measure_side, nominal_stream, open_files_needed,
};
use gatehouse_bench::cpu::{clock_ticks, process_cpu, threads_cpu};
use gatehouse_bench::ingest::Admin;
use gatehouse_bench::load::{PhaseResult, closed_loop, open_loop};
use gatehouse_bench::measure::{Pair, Side};
use gatehouse_bench::report::{Results, json_summary, table};
use gatehouse_bench::resources::open_files_limit;
use gatehouse_bench::stats::Schedule;
use http::{HeaderName, HeaderValue, Uri};
use serde_json::json;

use args::Args;
use bodies::{OPENAI_MODEL, chat_body, messages_body, native_model};

/// Which API a target speaks.
#[derive(Debug, Clone, Copy)]
enum Api<'a> {
    /// OpenAI chat completions: `{base}/chat/completions`, `Authorization: Bearer`, this model.
    OpenAi(&'a str),
    /// Anthropic Messages: `{base}/v1/messages`, `x-api-key` and `anthropic-version`, this model.
    Anthropic(&'a str),
}

/// A request sent many times: `api`'s path on `base`, streamed with `chunks` events `delay_ms` apart from the
/// mock (`x-mock-chunks`, `x-mock-chunk-delay-ms`) when `chunks` is given.
fn api_target(
    base: &str,
    api: Api<'_>,
    stream: bool,
    chunks: Option<usize>,
    delay_ms: u64,
) -> Result<Arc<Target>> {
    let path = match api {
        Api::OpenAi(_) => "/chat/completions",
        Api::Anthropic(_) => "/v1/messages",
    };
    let uri: Uri = format!("{}{path}", base.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("not a URL: {base}"))?;
    anyhow::ensure!(
        uri.host()
            .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]"),
        "the benchmark only sends to this machine, not to {uri}"
    );
    let (mut headers, body, stream_end) = match api {
        Api::OpenAi(model) => (
            vec![(
                HeaderName::from_static("authorization"),
                HeaderValue::from_static("Bearer sk-test"),
            )],
            chat_body(model, stream),
            OPENAI_STREAM_END,
        ),
        Api::Anthropic(model) => (
            vec![
                (
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_static("sk-test"),
                ),
                (
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static("2023-06-01"),
                ),
            ],
            messages_body(model, stream),
            ANTHROPIC_STREAM_END,
        ),
    };
    if let Some(chunks) = chunks {
        headers.push((
            HeaderName::from_static("x-mock-chunks"),
            HeaderValue::from(chunks),
        ));
        headers.push((
            HeaderName::from_static("x-mock-chunk-delay-ms"),
            HeaderValue::from(delay_ms),
        ));
    }
    Ok(Arc::new(Target {
        uri,
        headers,
        body,
        stream,
        stream_end,
    }))
}

/// The OpenAI chat completion of the chat, stream, closed and concurrent phases.
fn target(base: &str, stream: bool, chunks: Option<usize>, delay_ms: u64) -> Result<Arc<Target>> {
    api_target(base, Api::OpenAi(OPENAI_MODEL), stream, chunks, delay_ms)
}

/// What a phase waits for after its warm-up and after its measured run, before reading the gateway's CPU.
#[derive(Debug, Clone, Copy)]
enum Settle {
    None,
    /// A pause.
    Pause(Duration),
    /// A logs-on phase: at least this long, then until the log writer has stored everything (with
    /// `--admin-api`; a plain pause without).
    Logs(Duration),
}

/// The name prefix of the data plane's (pingora's) threads in the gatehouse process.
const DATA_PLANE_THREADS: &str = "gatehouse-dp";

struct Bench {
    args: Args,
    client: HttpClient,
    ticks: u64,
    /// Where the log writer's counter is read (`--admin-api` with `BENCH_ADMIN_TOKEN`).
    admin: Option<Admin>,
}

impl Bench {
    /// Waits as `settle` says; for a logs-on phase read through the management API, returns the log writer's
    /// `stored` counter once it has stopped moving.
    async fn settle(&self, settle: Settle) -> Option<u64> {
        match (settle, &self.admin) {
            (Settle::None, _) => None,
            (Settle::Logs(min), Some(admin)) => {
                admin
                    .drain(&self.client, min, self.args.drain_timeout)
                    .await
            }
            (Settle::Pause(d) | Settle::Logs(d), _) => {
                tokio::time::sleep(d).await;
                None
            }
        }
    }

    /// Runs `phase`, reading the gateway's CPU time around it (after `settle` for the second read). Before a
    /// logs-on phase the caller has drained the writer, so what it stores meanwhile is the phase's.
    async fn measured<F: Future<Output = PhaseResult>>(
        &self,
        label: &str,
        phase: F,
        settle: Settle,
    ) -> Side {
        self.measured_at(label, self.args.gateway_pid, phase, settle)
            .await
    }

    /// [`Bench::measured`] with the CPU of the gateway process `pid` (none: no CPU figures, e.g. direct).
    async fn measured_at<F: Future<Output = PhaseResult>>(
        &self,
        label: &str,
        pid: Option<u32>,
        phase: F,
        settle: Settle,
    ) -> Side {
        eprintln!("gatehouse-bench: {label}");
        let cpu = || pid.and_then(|pid| process_cpu(pid, self.ticks));
        let dp_cpu = || pid.and_then(|pid| threads_cpu(pid, self.ticks, DATA_PLANE_THREADS));
        let stored_before = match (settle, &self.admin) {
            (Settle::Logs(_), Some(admin)) => admin.stored(&self.client).await,
            _ => None,
        };
        let before = cpu();
        let dp_before = dp_cpu();
        let result = phase.await;
        let stored_after = self.settle(settle).await;
        let gateway_cpu = before.zip(cpu()).map(|(b, a)| a.saturating_sub(b));
        let data_plane_cpu = dp_before.zip(dp_cpu()).map(|(b, a)| a.saturating_sub(b));
        if result.error_count() > 0 {
            eprintln!("gatehouse-bench: {label}: {:?}", result.errors);
        }
        Side {
            result,
            gateway_cpu,
            data_plane_cpu,
            log_records: stored_before
                .zip(stored_after)
                .map(|(b, a)| a.saturating_sub(b)),
        }
    }

    async fn open(
        &self,
        label: &str,
        t: &Arc<Target>,
        schedule: Schedule,
        warmup: Schedule,
        settle: Settle,
    ) -> Side {
        if warmup.count() > 0 {
            eprintln!("gatehouse-bench: {label} (warm-up)");
            open_loop(&self.client, t, warmup, self.args.timeout).await;
            self.settle(settle).await;
        }
        self.measured(
            label,
            open_loop(&self.client, t, schedule, self.args.timeout),
            settle,
        )
        .await
    }

    async fn sample(&self, t: &Target) -> String {
        sample_header(&self.client, t, &self.args.sample_header, self.args.timeout).await
    }

    async fn closed(&self, label: &str, t: &Arc<Target>, settle: Settle) -> Side {
        let a = &self.args;
        eprintln!("gatehouse-bench: {label} (warm-up)");
        closed_loop(
            &self.client,
            t,
            a.concurrency,
            Duration::from_secs(1),
            a.timeout,
        )
        .await;
        self.settle(settle).await;
        self.measured(
            label,
            closed_loop(&self.client, t, a.concurrency, a.closed_duration, a.timeout),
            settle,
        )
        .await
    }

    /// Checks before any phase runs that every process can hold the concurrent phase's sockets: an error for this
    /// client (it would fail half-way through), a warning for the gateway and the mock.
    fn check_open_files(&self) -> Result<()> {
        let a = &self.args;
        let most = a.concurrent_streams.iter().copied().max().unwrap_or(0);
        let need = open_files_needed(most, 1);
        if let Some(limit) = open_files_limit(std::process::id()) {
            anyhow::ensure!(
                limit >= need,
                "{most} concurrent streams need about {need} open files, the limit is {limit}: raise `ulimit -n` \
                 (bench/run.sh raises the soft limit to the hard one)"
            );
        }
        for (name, pid, sockets) in [("gateway", a.gateway_pid, 2), ("mock", a.mock_pid, 1)] {
            let need = open_files_needed(most, sockets);
            if let Some(limit) = pid.and_then(open_files_limit).filter(|&l| l < need) {
                eprintln!(
                    "gatehouse-bench: WARNING: the {name}'s open files limit is {limit}, {most} concurrent streams \
                     need about {need}"
                );
            }
        }
        let delay = Duration::from_millis(a.concurrent_chunk_delay_ms);
        if a.concurrent_ramp >= nominal_stream(a.concurrent_chunks, delay) {
            eprintln!(
                "gatehouse-bench: WARNING: the {} ramp is longer than one stream: the streams will not all be open \
                 at once (shorten --concurrent-ramp or raise --concurrent-chunk-delay-ms)",
                humantime::format_duration(a.concurrent_ramp)
            );
        }
        Ok(())
    }

    /// The concurrent-streams phase: for each count, direct and then through.
    async fn concurrent(&self, results: &mut Results) -> Result<()> {
        let a = &self.args;
        let probe = Probe {
            gateway_pid: a.gateway_pid,
            mock_pid: a.mock_pid,
            ticks: self.ticks,
            data_plane_threads: DATA_PLANE_THREADS,
        };
        let delay = Duration::from_millis(a.concurrent_chunk_delay_ms);
        let streams = |base| {
            target(
                base,
                true,
                Some(a.concurrent_chunks),
                a.concurrent_chunk_delay_ms,
            )
        };
        for &n in &a.concurrent_streams {
            let settings = concurrent::Settings {
                streams: n,
                ramp: a.concurrent_ramp,
                // A stream lasts its chunks × delay whatever the timeout: never less than twice that.
                timeout: a
                    .timeout
                    .max(nominal_stream(a.concurrent_chunks, delay) * 2),
                settle: Duration::ZERO,
                sample_rss: false,
            };
            let label = format!("{n} concurrent streams");
            let direct = measure_side(
                &format!("{label} direct"),
                &streams(&a.direct)?,
                settings,
                probe,
            )
            .await;
            let through = match a.through.as_deref() {
                Some(base) => {
                    let settings = concurrent::Settings {
                        settle: a.settle,
                        sample_rss: true,
                        ..settings
                    };
                    Some(
                        measure_side(
                            &format!("{label} through"),
                            &streams(base)?,
                            settings,
                            probe,
                        )
                        .await,
                    )
                }
                None => None,
            };
            results.concurrent.push(Concurrent {
                streams: n,
                nominal: nominal_stream(a.concurrent_chunks, delay),
                direct,
                through,
            });
        }
        Ok(())
    }

    /// Each phase direct then through, so both halves see the same warm state of the mock.
    async fn run(&self) -> Result<Results> {
        let a = &self.args;
        let through = a.through.as_deref();
        let mut results = Results::default();
        let wants = |p: &str| a.phases.iter().any(|x| x == p);
        if wants("concurrent") {
            self.check_open_files()?;
        }

        if wants("chat") {
            let schedule = Schedule::for_duration(a.rate, a.duration);
            let warmup = Schedule::for_duration(a.rate, a.warmup);
            let direct = self
                .open(
                    "chat direct",
                    &target(&a.direct, false, None, 0)?,
                    schedule,
                    warmup,
                    Settle::None,
                )
                .await;
            let through = match through {
                Some(base) => Some(
                    self.open(
                        "chat through",
                        &target(base, false, None, 0)?,
                        schedule,
                        warmup,
                        Settle::Pause(a.settle),
                    )
                    .await,
                ),
                None => None,
            };
            results.chat = Some(Pair { direct, through });
            for (label, base) in &a.through_also {
                let t = target(base, false, None, 0)?;
                let side = self
                    .open(
                        &format!("chat through {label}"),
                        &t,
                        schedule,
                        warmup,
                        Settle::Pause(a.settle),
                    )
                    .await;
                let sample = self.sample(&t).await;
                results.chat_also.push(Labelled {
                    label: label.clone(),
                    side,
                    sample: Some(sample),
                });
            }
            if let (Some(base), false) = (a.through.as_deref(), a.through_also.is_empty()) {
                results.through_sample = Some(self.sample(&*target(base, false, None, 0)?).await);
            }
            if let Some(base) = a.through_logged.as_deref() {
                results.chat_logged = Some(
                    self.open(
                        "chat through, logs on",
                        &target(base, false, None, 0)?,
                        schedule,
                        warmup,
                        Settle::Logs(a.settle),
                    )
                    .await,
                );
            }
        }
        if wants("stream") {
            let schedule = Schedule::new(a.stream_rate, a.streams);
            let warmup = Schedule::new(a.stream_rate, a.streams.min(20));
            let short = |base| target(base, true, Some(a.stream_chunks), a.chunk_delay_ms);
            let direct = self
                .open(
                    "stream direct",
                    &short(&a.direct)?,
                    schedule,
                    warmup,
                    Settle::None,
                )
                .await;
            let mut pair = Pair {
                direct,
                through: None,
            };
            if let Some(base) = through {
                pair.through = Some(
                    self.open(
                        "stream through",
                        &short(base)?,
                        schedule,
                        warmup,
                        Settle::None,
                    )
                    .await,
                );
                let long = target(base, true, Some(a.long_stream_chunks), a.chunk_delay_ms)?;
                results.long_stream = Some(
                    self.open(
                        "long streams through",
                        &long,
                        schedule,
                        warmup,
                        Settle::None,
                    )
                    .await,
                );
            }
            results.stream = Some(pair);
        }
        if wants("closed") {
            let direct = self
                .closed(
                    "closed loop direct",
                    &target(&a.direct, false, None, 0)?,
                    Settle::None,
                )
                .await;
            let through = match through {
                Some(base) => Some(
                    self.closed(
                        "closed loop through",
                        &target(base, false, None, 0)?,
                        Settle::None,
                    )
                    .await,
                ),
                None => None,
            };
            results.closed = Some(Pair { direct, through });
            if let Some(base) = a.through_logged.as_deref() {
                results.closed_logged = Some(
                    self.closed(
                        "closed loop through, logs on",
                        &target(base, false, None, 0)?,
                        Settle::Logs(a.settle),
                    )
                    .await,
                );
            }
        }
        if wants("compat") {
            results.compat = self.compat().await?;
        }
        if wants("keys") {
            results.keys = self.keys().await?;
        }
        if wants("routes") {
            results.routes = self.routes().await?;
        }
        if wants("telemetry") {
            results.telemetry = self.telemetry().await?;
        }
        if wants("concurrent") {
            self.concurrent(&mut results).await?;
        }
        Ok(results)
    }

    fn title(&self) -> String {
        let a = &self.args;
        format!(
            "gatehouse-bench: open loop {} req/s for {} after {} warm-up, {}-byte body; {} streams per side at {}/s, \
             {} chunks {} ms apart (long: {}); closed loop c={} for {}; {} concurrent streams of {} chunks {} ms apart \
             started over {}",
            a.rate,
            humantime::format_duration(a.duration),
            humantime::format_duration(a.warmup),
            chat_body(OPENAI_MODEL, false).len(),
            a.streams,
            a.stream_rate,
            a.stream_chunks,
            a.chunk_delay_ms,
            a.long_stream_chunks,
            a.concurrency,
            humantime::format_duration(a.closed_duration),
            a.concurrent_streams
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            a.concurrent_chunks,
            a.concurrent_chunk_delay_ms,
            humantime::format_duration(a.concurrent_ramp),
        )
    }

    fn settings(&self) -> serde_json::Value {
        let a = &self.args;
        let mut settings = self.phase_settings();
        // Apart: one `json!` of every key passes the macro's recursion limit.
        for (key, value) in [
            (
                "telemetry",
                json!(a.telemetry_on.is_some() && a.telemetry_off.is_some()),
            ),
            ("telemetry_off_pid", json!(a.telemetry_off_pid)),
            ("telemetry_otel", json!(a.telemetry_otel)),
            ("telemetry_rounds", json!(a.telemetry_rounds)),
            ("telemetry_loads", json!(a.telemetry_loads)),
            (
                "telemetry_settle_s",
                json!(a.telemetry_settle.as_secs_f64()),
            ),
        ] {
            settings[key] = value;
        }
        settings
    }

    fn phase_settings(&self) -> serde_json::Value {
        let a = &self.args;
        json!({
            "rate": a.rate, "duration_s": a.duration.as_secs_f64(), "warmup_s": a.warmup.as_secs_f64(),
            "body_bytes": chat_body(OPENAI_MODEL, false).len(), "streams": a.streams, "stream_rate": a.stream_rate,
            "stream_chunks": a.stream_chunks, "long_stream_chunks": a.long_stream_chunks,
            "chunk_delay_ms": a.chunk_delay_ms, "concurrency": a.concurrency,
            "closed_duration_s": a.closed_duration.as_secs_f64(), "client_threads": a.threads,
            "gateway_pid": a.gateway_pid, "logged_gateway": a.through_logged.is_some(),
            "settle_s": a.settle.as_secs_f64(),
            "through_also": a.through_also.iter().map(|(l, _)| l).collect::<Vec<_>>(),
            "sample_header": a.sample_header.as_str(),
            "phases": a.phases, "concurrent_streams": a.concurrent_streams,
            "concurrent_chunks": a.concurrent_chunks, "concurrent_chunk_delay_ms": a.concurrent_chunk_delay_ms,
            "concurrent_ramp_s": a.concurrent_ramp.as_secs_f64(), "mock_pid": a.mock_pid,
            "compat_model": a.compat_model, "compat_rounds": a.compat_rounds,
            "virtual_key": a.key.is_some(), "keys_rounds": a.keys_rounds, "keys_sides": a.keys_sides,
            "keys_loads": a.keys_loads,
            "routes_route": a.routes_route, "routes_rounds": a.routes_rounds, "routes_check": a.routes_check,
            "anthropic_body_bytes": messages_body(native_model(&a.compat_model), false).len(),
            "compat_body_bytes": chat_body(&a.compat_model, false).len(),
            "admin_api": a.admin_api.is_some() && a.admin_token.is_some(),
            "drain_timeout_s": a.drain_timeout.as_secs_f64(),
        })
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse-bench: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let admin = match (args.admin_api.as_deref(), args.admin_token.clone()) {
        (Some(api), Some(token)) => match Admin::new(api, token) {
            Ok(admin) => Some(admin),
            Err(e) => {
                eprintln!("gatehouse-bench: --admin-api: {e}");
                return ExitCode::from(2);
            }
        },
        (Some(_), None) => {
            eprintln!("gatehouse-bench: --admin-api needs an operator token in BENCH_ADMIN_TOKEN");
            return ExitCode::from(2);
        }
        _ => None,
    };
    let bench = Bench {
        args,
        client: runtime.block_on(async { http_client() }),
        ticks: clock_ticks(),
        admin,
    };
    let results = match runtime.block_on(bench.run()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    let settings = bench.settings();
    if !bench.args.json_only {
        print!(
            "{}",
            table(&results, &bench.title(), bench.args.sample_header.as_str())
        );
    }
    println!("{}", json_summary(&results, &settings));
    if results.errors() > 0 {
        eprintln!("gatehouse-bench: {} requests failed", results.errors());
        ExitCode::from(1)
    } else if results.telemetry.as_ref().is_some_and(|t| !t.checked()) {
        eprintln!(
            "gatehouse-bench: telemetry: the on gateway's spans were not as expected (none exported with an \
             exporter, some without one), or the off gateway serves /metrics"
        );
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
