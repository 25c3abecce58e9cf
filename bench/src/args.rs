//! The command line of `gatehouse-bench`.

use std::time::Duration;

use clap::Parser;
use gatehouse_bench::compare::parse_labelled_url;
use http::HeaderName;

#[derive(Parser, Debug)]
#[command(about = "Load benchmark: direct to a mock provider vs through the gateway")]
pub struct Args {
    /// OpenAI base URL of the mock, e.g. http://127.0.0.1:9000/v1 (`/chat/completions` is appended).
    #[arg(long)]
    pub direct: String,
    /// OpenAI base URL through the gateway, e.g. http://127.0.0.1:8787/v1/ACCOUNT/bench/openai. Without it only the
    /// direct half runs.
    #[arg(long)]
    pub through: Option<String>,
    /// OpenAI base URL through a second gateway that collects logs (`collect_logs: true`), e.g.
    /// http://127.0.0.1:8787/v1/ACCOUNT/bench-logged/openai. The chat phase then also runs through it, and the
    /// table compares the gateway's CPU per request with logging on and off.
    #[arg(long)]
    pub through_logged: Option<String>,
    /// The mock's Anthropic base URL, e.g. http://127.0.0.1:9000 (`/v1/messages` is appended): the compat phase's
    /// direct side. Without it the compat phase is skipped.
    #[arg(long)]
    pub anthropic_direct: Option<String>,
    /// Anthropic's provider-native base through the gateway, e.g. http://127.0.0.1:8787/v1/ACCOUNT/bench/anthropic
    /// (`/v1/messages` is appended): the compat phase's native side.
    #[arg(long)]
    pub anthropic_through: Option<String>,
    /// The gateway's OpenAI-compatible base, e.g. http://127.0.0.1:8787/v1/ACCOUNT/bench/compat
    /// (`/chat/completions` is appended): the compat phase's translated side.
    #[arg(long)]
    pub compat_through: Option<String>,
    /// The compat phase runs its sides through the gateway in turn, this many rounds each (each round a share of
    /// the schedule), so that the machine's drift falls on native and translated alike.
    #[arg(long, default_value_t = 4)]
    pub compat_rounds: u64,
    /// The model the compat phase asks for through `/compat` (`{provider}/{model}`); the native side asks for what
    /// follows the first `/`.
    #[arg(long, default_value = "anthropic/claude-sonnet-4-5")]
    pub compat_model: String,
    /// A virtual key (`ghk_…`) of the `--through` gateway's account for the keys phase: the same chat completion is
    /// sent with it (`Authorization: Bearer`) and without it (the client's own provider key), in alternating
    /// rounds. Without it the keys phase is skipped. `bench/split.sh` creates one and passes it.
    #[arg(long, env = "BENCH_VIRTUAL_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The keys phase runs its two sides in turn, this many rounds each for the open loop and for the closed loop
    /// (each round a share of `--duration` or `--closed-duration`), so the machine's drift falls on both alike.
    #[arg(long, default_value_t = 4)]
    pub keys_rounds: u64,
    /// The keys phase's sides, comma-separated: plain (the client's provider key), keyed (the virtual key). One
    /// alone is a load for a profiler (`BENCH_PERF` in `bench/split.sh`).
    #[arg(long, value_delimiter = ',', default_value = "plain,keyed")]
    pub keys_sides: Vec<String>,
    /// The keys phase's loads, comma-separated: open (at `--rate` for `--duration`), closed (`--concurrency`
    /// clients for `--closed-duration`).
    #[arg(long, value_delimiter = ',', default_value = "open,closed")]
    pub keys_loads: Vec<String>,
    /// The routes phase's dynamic route on the `--compat-through` gateway: the routed side asks for
    /// `model: "dynamic/{name}"`. `bench/run.sh` creates `bench10` (10 elements, two weighted targets).
    #[arg(long, default_value = "bench10")]
    pub routes_route: String,
    /// The routes phase runs its two sides (a model named directly, the route) in turn, this many rounds each for
    /// the open loop and for the closed loop (each round a share of `--duration` or `--closed-duration`), so the
    /// machine's drift falls on both alike.
    #[arg(long, default_value_t = 4)]
    pub routes_rounds: u64,
    /// After its rounds the routes phase sends this many unmeasured routed requests, one after the other, and counts
    /// the model each answer names (`cf-aig-model`): all must be the route's targets, split as their weights say.
    #[arg(long, default_value_t = 1000)]
    pub routes_check: u64,
    /// OpenAI base URL through the telemetry phase's `on` gateway: metrics on (the default) and the gateway's `otel`
    /// set to an exporter, e.g. http://127.0.0.1:8787/v1/ACCOUNT/bench-telemetry/openai, on the process of
    /// `--gateway-pid`. Its listener's `GET /metrics` is read before and after the phase. Without it (or
    /// `--telemetry-off`) the telemetry phase is skipped; `bench/run.sh` passes both when the phase is asked for.
    #[arg(long)]
    pub telemetry_on: Option<String>,
    /// OpenAI base URL through the telemetry phase's `off` gateway: the same gateway on a second gateway process
    /// started with `--metrics false`, without exporters. Its `GET /metrics` must answer 404.
    #[arg(long)]
    pub telemetry_off: Option<String>,
    /// Whether the `on` gateway has an OTLP exporter (`bench/run.sh` sets its `otel` unless `BENCH_TELEMETRY_OTEL=0`):
    /// with `false` the phase measures metrics alone, and the check wants no span exported.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub telemetry_otel: bool,
    /// The pid of the `off` gateway's process, for its CPU time.
    #[arg(long)]
    pub telemetry_off_pid: Option<u32>,
    /// The telemetry phase runs direct, off and on in turn, this many rounds for each load (each round a share of
    /// `--duration` or `--closed-duration`), so the machine's drift falls on all alike.
    #[arg(long, default_value_t = 4)]
    pub telemetry_rounds: u64,
    /// The telemetry phase's loads, comma-separated: open (non-streamed at `--rate` for `--duration`), stream
    /// (streamed at the same rate, `--stream-chunks` chunks `--chunk-delay-ms` apart), closed (`--concurrency`
    /// clients for `--closed-duration`).
    #[arg(long, value_delimiter = ',', default_value = "open,stream,closed")]
    pub telemetry_loads: Vec<String>,
    /// The pause after each gateway round of the telemetry phase before its process's CPU is read: longer than the
    /// OTLP exporter's batch interval (1 s), so a round's spans are exported (and their CPU counted) in it.
    #[arg(long, default_value = "1500ms", value_parser = humantime::parse_duration)]
    pub telemetry_settle: Duration,
    /// The management API's base URL, e.g. http://127.0.0.1:8080, with an operator token in `BENCH_ADMIN_TOKEN`:
    /// the logs-on phases then read the log writer's counter (`GET /admin/log-ingest`), wait until it has stored
    /// their records before reading the gateway's CPU, and report how many it stored.
    #[arg(long)]
    pub admin_api: Option<String>,
    #[arg(long, env = "BENCH_ADMIN_TOKEN", hide_env_values = true, hide = true)]
    pub admin_token: Option<String>,
    /// The longest a logs-on phase waits for the log writer to store its records.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// A further gateway to run the chat phase through with the same schedule, as LABEL=URL (repeatable), e.g.
    /// `cache-hit=http://127.0.0.1:8787/v1/ACCOUNT/cached/openai`. Each is compared with `--through`: latency and
    /// CPU per request, which is what a traffic policy (cache, rate limit) adds or saves (`bench/policies.sh`).
    #[arg(long = "through-also", value_parser = parse_labelled_url)]
    pub through_also: Vec<(String, String)>,
    /// A response header read from one unmeasured request through `--through` and each `--through-also` gateway
    /// after the phases, so the run shows whether the policy applied (e.g. `HIT` on a cached gateway).
    #[arg(long, default_value = "cf-aig-cache-status")]
    pub sample_header: HeaderName,
    /// Pause after the warm-up and after the measured run of the chat phases through a gateway before reading its
    /// CPU time, so the log writer's batches (100 ms linger) of the warm-up are not counted and those of the
    /// measured requests are.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// The gateway's pid, for its CPU time from /proc.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
    /// Open-loop request rate (requests/s).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Open-loop measured duration.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Open-loop warm-up before each measured run (not counted).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Streams per side in the time-to-first-byte phase.
    #[arg(long, default_value_t = 200)]
    pub streams: u64,
    /// Streams started per second (open loop).
    #[arg(long, default_value_t = 50.0)]
    pub stream_rate: f64,
    /// Content chunks per stream.
    #[arg(long, default_value_t = 10)]
    pub stream_chunks: usize,
    /// Content chunks per stream in the long-stream phase (CPU per chunk = the extra CPU of the extra chunks).
    #[arg(long, default_value_t = 50)]
    pub long_stream_chunks: usize,
    /// Milliseconds the mock waits between two stream events.
    #[arg(long, default_value_t = 5)]
    pub chunk_delay_ms: u64,
    /// Clients in the closed-loop phase.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Closed-loop measured duration (after a 1 s warm-up).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub closed_duration: Duration,
    /// Per-request timeout; a request over it counts as an error.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Streams open at once in the concurrent phase, comma-separated: each count is measured direct and then
    /// through.
    #[arg(long, value_delimiter = ',', default_value = "500,2000")]
    pub concurrent_streams: Vec<u64>,
    /// Content chunks per stream in the concurrent phase.
    #[arg(long, default_value_t = 50)]
    pub concurrent_chunks: usize,
    /// Milliseconds between two events of a stream in the concurrent phase: each stream must outlast the ramp for
    /// all of them to be open at once (50 chunks × 40 ms: about 2 s). 20 ms doubles the event rate, which on a
    /// 2-core machine is more than the client and the mock can send on their one core at 2,000 streams.
    #[arg(long, default_value_t = 40)]
    pub concurrent_chunk_delay_ms: u64,
    /// How long the concurrent phase takes to start its N streams, evenly spread (N / ramp per second). Shorter
    /// than one stream, so that all are open at once.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub concurrent_ramp: Duration,
    /// The mock's pid, for its CPU in the concurrent phase (near a whole core, it could not keep up).
    #[arg(long)]
    pub mock_pid: Option<u32>,
    /// Phases to run, comma-separated: chat, stream, closed, compat, keys, routes, telemetry, concurrent (they run
    /// in that order; `keys` is not in the default list: it needs `--key`, which `bench/split.sh` passes as
    /// `BENCH_VIRTUAL_KEY`; `routes` needs `--compat-through` and the route `bench/run.sh` creates; `telemetry` is
    /// not in the default list either: it needs a second gateway process, which `bench/run.sh` starts only when the
    /// phase is named).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "chat,stream,closed,compat,routes,concurrent"
    )]
    pub phases: Vec<String>,
    /// Client runtime threads. 1 leaves the most CPU to the gateway and the mock on a small machine.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print only the JSON line.
    #[arg(long)]
    pub json_only: bool,
}
