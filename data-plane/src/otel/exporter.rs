//! The exporter: a background service that drains the span queue, groups spans by collector and POSTs each group's
//! batch (up to [`ExportSettings::batch_spans`] spans, or whatever a group holds after
//! [`ExportSettings::batch_interval`]) as one `ExportTraceServiceRequest`.
//!
//! Bounds, so a dead or slow collector costs neither time nor unbounded memory: each export is one task with a
//! deadline ([`ExportSettings::export_timeout`]); a collector has at most
//! [`ExportSettings::in_flight_per_target`] exports in flight and one batch waiting, and spans for it beyond that
//! are dropped and counted; the node has at most [`ExportSettings::in_flight_total`] exports in flight. A failed
//! batch is counted and dropped, never retried, and logged at `warn` at most once a minute per collector. Exports
//! go over a connector of their own, so they never take a connection meant for inference.
//!
//! At shutdown the queue is closed, what it holds is batched and sent, and the service waits for its exports at
//! most one export timeout.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::queue::{Counters, Queued, SpanQueue};
use super::span::ExportSpan;
use super::target::{OtlpEncoding, OtlpTarget};
use super::{json, protobuf};
use crate::proxy::upstream::{AttemptFailure, LazyUpstreams, Upstreams};

/// The exporter's own `User-Agent` (a configured one replaces it).
const USER_AGENT: &str = concat!("gatehouse/", env!("CARGO_PKG_VERSION"));
/// A collector's answer is read up to this size, so its connection can be reused; a longer one is not read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// At most one `warn` per collector per this interval; the failures in between are counted in the next one.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// A collector no span has named for this long, with nothing pending or in flight, is forgotten.
const GROUP_IDLE: Duration = Duration::from_secs(300);
/// How long the loop sleeps with nothing pending.
const IDLE: Duration = Duration::from_secs(60);
/// How often the exporter takes what the request path queued while spans flow.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// With no span for this long the exporter stops ticking and waits for the next one.
const STOP_TICKING_AFTER: Duration = Duration::from_secs(2);

/// The exporter's bounds and timings. The defaults are the node's; tests shorten them.
#[derive(Debug, Clone)]
pub(crate) struct ExportSettings {
    /// Spans the queue holds before `submit` drops.
    pub queue_capacity: usize,
    /// Bytes of spans held between `submit` and the end of their export before `submit` drops (a span with a
    /// prompt attribute can be large).
    pub max_held_bytes: usize,
    /// A batch is sent when it has this many spans…
    pub batch_spans: usize,
    /// …or about this many bytes of spans…
    pub batch_bytes: usize,
    /// …or when its oldest span has waited this long.
    pub batch_interval: Duration,
    /// One export, from connecting to the end of the answer.
    pub export_timeout: Duration,
    pub in_flight_per_target: usize,
    pub in_flight_total: usize,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 8_192,
            max_held_bytes: 64 * 1024 * 1024,
            batch_spans: 512,
            batch_bytes: 4 * 1024 * 1024,
            batch_interval: Duration::from_secs(1),
            export_timeout: Duration::from_secs(5),
            in_flight_per_target: 2,
            in_flight_total: 32,
        }
    }
}

/// The node's OTLP exporter service.
pub(crate) struct OtlpExporter {
    /// Taken by `start` (a service starts once).
    receiver: Mutex<Option<mpsc::Receiver<Queued>>>,
    counters: Arc<Counters>,
    settings: ExportSettings,
    /// Its own connector, made on the first export.
    http: LazyUpstreams,
}

impl OtlpExporter {
    /// The queue request threads submit to, and the service that drains it (to be added to the server's
    /// background services).
    pub(crate) fn new(
        settings: ExportSettings,
        ca_file: Option<&Path>,
    ) -> (Arc<SpanQueue>, OtlpExporter) {
        let (queue, receiver, counters) =
            SpanQueue::new(settings.queue_capacity, settings.max_held_bytes);
        let exporter = OtlpExporter {
            receiver: Mutex::new(Some(receiver)),
            counters,
            http: LazyUpstreams::new(settings.export_timeout, ca_file),
            settings,
        };
        (queue, exporter)
    }
}

#[cfg(test)]
impl OtlpExporter {
    pub(super) fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }
}

#[async_trait]
impl BackgroundService for OtlpExporter {
    async fn start(&self, shutdown: ShutdownWatch) {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(receiver) = receiver else {
            return;
        };
        let batcher = Batcher {
            settings: &self.settings,
            counters: &self.counters,
            http: &self.http,
            groups: HashMap::new(),
            exports: JoinSet::new(),
        };
        batcher.run(receiver, shutdown).await;
    }
}

/// The exporter's loop state.
struct Batcher<'a> {
    settings: &'a ExportSettings,
    counters: &'a Arc<Counters>,
    http: &'a LazyUpstreams,
    groups: HashMap<Arc<OtlpTarget>, Group>,
    exports: JoinSet<Finished>,
}

/// One collector's spans waiting to be sent, and what the exporter remembers of it.
struct Group {
    /// The latest `Arc` seen for this collector.
    target: Arc<OtlpTarget>,
    /// At most one batch: spans for a group that is full and cannot send are dropped.
    pending: Vec<ExportSpan>,
    pending_bytes: usize,
    /// When the oldest pending span arrived.
    since: Option<Instant>,
    /// Exports of this group's batches still running (decremented by the export's [`InFlight`] guard).
    in_flight: Arc<AtomicUsize>,
    last_span_at: Instant,
    warned_at: Option<Instant>,
    failures_since_warn: u64,
}

/// What an export task reports back: for the `warn`, the counters are already counted.
struct Finished {
    target: Arc<OtlpTarget>,
    outcome: Result<(), String>,
}

impl Batcher<'_> {
    async fn run(mut self, mut receiver: mpsc::Receiver<Queued>, mut shutdown: ShutdownWatch) {
        let mut pruned_at = Instant::now();
        // While spans flow, the queue is drained on a tick and never awaited: a receiver waiting in `recv` makes
        // every request's `submit` wake this thread, and that wake-up per span was the largest cost of export in
        // the profile (bench/README.md "Telemetry"). A span waits at most one tick more; the queue holds many.
        // With nothing arriving for a while the loop awaits `recv` again, so an idle node does not tick.
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_span = Instant::now();
        let mut ticking = false;
        loop {
            let wake = self.next_due().unwrap_or_else(|| Instant::now() + IDLE);
            tokio::select! {
                first = receiver.recv(), if !ticking => match first {
                    Some(queued) => {
                        let now = Instant::now();
                        self.add(queued, now);
                        (last_span, ticking) = (now, true);
                        drain.reset();
                    }
                    // Every `SpanQueue` is gone: nothing more will come.
                    None => break,
                },
                _ = drain.tick(), if ticking => {
                    let now = Instant::now();
                    let mut gone = false;
                    loop {
                        match receiver.try_recv() {
                            Ok(queued) => {
                                self.add(queued, now);
                                last_span = now;
                            }
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => {
                                gone = true;
                                break;
                            }
                        }
                    }
                    if gone {
                        break;
                    }
                    ticking = now.duration_since(last_span) < STOP_TICKING_AFTER;
                }
                Some(joined) = self.exports.join_next(), if !self.exports.is_empty() => {
                    self.finished(joined);
                }
                () = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => break,
            }
            let now = Instant::now();
            self.launch_due(now, false);
            if now.duration_since(pruned_at) >= IDLE {
                self.prune(now);
                pruned_at = now;
            }
        }
        self.flush(receiver).await;
    }

    /// Adds one span to its collector's batch; a full batch is sent first when it can be, else the span is dropped.
    fn add(&mut self, queued: Queued, now: Instant) {
        let Queued {
            target,
            span,
            bytes,
        } = queued;
        let group = self
            .groups
            .entry(Arc::clone(&target))
            .or_insert_with(|| Group {
                target: Arc::clone(&target),
                pending: Vec::new(),
                pending_bytes: 0,
                since: None,
                in_flight: Arc::new(AtomicUsize::new(0)),
                last_span_at: now,
                warned_at: None,
                failures_since_warn: 0,
            });
        group.target = target;
        group.last_span_at = now;
        if group.is_full(self.settings) {
            launch(
                group,
                self.settings,
                self.counters,
                self.http,
                &mut self.exports,
                now,
                false,
            );
        }
        if group.is_full(self.settings) {
            self.counters.release(bytes);
            self.counters.dropped(1);
            return;
        }
        group.since.get_or_insert(now);
        group.pending.push(span);
        group.pending_bytes += bytes;
    }

    /// Sends every batch that is due (all of them when `force`), within the in-flight bounds.
    fn launch_due(&mut self, now: Instant, force: bool) {
        for group in self.groups.values_mut() {
            launch(
                group,
                self.settings,
                self.counters,
                self.http,
                &mut self.exports,
                now,
                force,
            );
        }
    }

    /// When the next batch that could be sent falls due. A group at its in-flight bound is left out: an export's
    /// end wakes the loop anyway.
    fn next_due(&self) -> Option<Instant> {
        if self.exports.len() >= self.settings.in_flight_total {
            return None;
        }
        self.groups
            .values()
            .filter(|g| g.in_flight.load(Ordering::Relaxed) < self.settings.in_flight_per_target)
            .filter_map(|g| g.since)
            .min()
            .map(|since| since + self.settings.batch_interval)
    }

    fn finished(&mut self, joined: Result<Finished, tokio::task::JoinError>) {
        let Finished { target, outcome } = match joined {
            Ok(finished) => finished,
            Err(e) => {
                tracing::warn!(error = %e, "an OTLP export task ended abnormally");
                return;
            }
        };
        let Err(reason) = outcome else {
            return;
        };
        let Some(group) = self.groups.get_mut(&target) else {
            return;
        };
        group.failures_since_warn += 1;
        let now = Instant::now();
        if group
            .warned_at
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            // The collector's URL without its query, and why: never a header value.
            tracing::warn!(
                collector = %target.log_name(),
                error = %reason,
                failed_batches = group.failures_since_warn,
                "OTLP export failed; its spans are dropped"
            );
            group.warned_at = Some(now);
            group.failures_since_warn = 0;
        }
    }

    /// Forgets collectors that no span has named for a while.
    fn prune(&mut self, now: Instant) {
        self.groups.retain(|_, g| {
            !g.pending.is_empty()
                || g.in_flight.load(Ordering::Relaxed) > 0
                || now.duration_since(g.last_span_at) < GROUP_IDLE
        });
    }

    /// At shutdown: takes what the queue holds, sends every batch, and waits for the exports at most one export
    /// timeout. What is still unsent then is counted as dropped.
    async fn flush(mut self, mut receiver: mpsc::Receiver<Queued>) {
        receiver.close();
        let now = Instant::now();
        while let Ok(queued) = receiver.try_recv() {
            self.add(queued, now);
        }
        let deadline = now + self.settings.export_timeout;
        loop {
            self.launch_due(Instant::now(), true);
            if self.exports.is_empty() {
                break;
            }
            tokio::select! {
                Some(joined) = self.exports.join_next() => self.finished(joined),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        for group in self.groups.values_mut() {
            self.counters.dropped(group.pending.len() as u64);
            self.counters.release(group.pending_bytes);
            group.pending.clear();
            group.pending_bytes = 0;
        }
        // Exports still running are aborted with the set; their guards count their spans as failed.
    }
}

impl Group {
    fn is_full(&self, settings: &ExportSettings) -> bool {
        self.pending.len() >= settings.batch_spans || self.pending_bytes >= settings.batch_bytes
    }
}

/// Sends `group`'s batch when it is due (or `force`) and the in-flight bounds allow.
fn launch(
    group: &mut Group,
    settings: &ExportSettings,
    counters: &Arc<Counters>,
    http: &LazyUpstreams,
    exports: &mut JoinSet<Finished>,
    now: Instant,
    force: bool,
) {
    let Some(since) = group.since else {
        return;
    };
    let due =
        force || group.is_full(settings) || now.duration_since(since) >= settings.batch_interval;
    if !due
        || group.in_flight.load(Ordering::Relaxed) >= settings.in_flight_per_target
        || exports.len() >= settings.in_flight_total
    {
        return;
    }
    let spans = std::mem::take(&mut group.pending);
    let guard = InFlight::new(
        &group.in_flight,
        counters,
        spans.len() as u64,
        std::mem::take(&mut group.pending_bytes),
    );
    group.since = None;
    let target = Arc::clone(&group.target);
    let http = Arc::clone(http.get());
    let timeout = settings.export_timeout;
    // One task per batch, never per span or request.
    exports.spawn(async move {
        let body = match target.encoding() {
            OtlpEncoding::Json => json::encode(&spans),
            OtlpEncoding::Protobuf => protobuf::encode(&spans),
        };
        drop(spans);
        let outcome =
            tokio::time::timeout(timeout, post(&http, &target, Bytes::from(body), timeout))
                .await
                .unwrap_or_else(|_| Err("no answer in time".to_owned()));
        guard.finish(outcome.is_ok());
        Finished { target, outcome }
    });
}

/// One export in flight: holds its collector's in-flight slot and its spans' bytes, and gives both back however
/// the task ends (an aborted one counts its spans as failed).
struct InFlight {
    in_flight: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    spans: u64,
    bytes: usize,
    counted: bool,
}

impl InFlight {
    fn new(
        in_flight: &Arc<AtomicUsize>,
        counters: &Arc<Counters>,
        spans: u64,
        bytes: usize,
    ) -> Self {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            in_flight: Arc::clone(in_flight),
            counters: Arc::clone(counters),
            spans,
            bytes,
            counted: false,
        }
    }

    fn finish(mut self, exported: bool) {
        if exported {
            self.counters.exported(self.spans);
        } else {
            self.counters.failed(self.spans);
        }
        self.counted = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.counted {
            self.counters.failed(self.spans);
        }
        self.counters.release(self.bytes);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One POST of an encoded batch; `Ok` when the collector answered 2xx. The error says why, never with a header.
async fn post(
    http: &Upstreams,
    target: &OtlpTarget,
    body: Bytes,
    timeout: Duration,
) -> Result<(), String> {
    let upstream = target.upstream();
    let mut header = RequestHeader::build("POST", upstream.path_and_query.as_bytes(), None)
        .map_err(|e| e.to_string())?;
    let mut user_agent = true;
    for (name, value) in target.headers() {
        user_agent &= name != http::header::USER_AGENT;
        header
            .append_header(name.clone(), value.clone())
            .map_err(|_| format!("header '{name}' refused"))?;
    }
    let own = [
        ("host", upstream.authority.clone()),
        ("content-type", target.encoding().content_type().to_owned()),
        ("content-length", body.len().to_string()),
    ];
    for (name, value) in own {
        header
            .insert_header(name, value)
            .map_err(|e| e.to_string())?;
    }
    if user_agent {
        header
            .insert_header("user-agent", USER_AGENT)
            .map_err(|e| e.to_string())?;
    }
    let mut opened = http
        .open(upstream, &header, &body, timeout)
        .await
        .map_err(|e| match e {
            AttemptFailure::Unreachable => "unreachable".to_owned(),
            AttemptFailure::TimedOut => "no answer in time".to_owned(),
        })?;
    let status = opened.status();
    // The answer (an `ExportTraceServiceResponse`, usually empty) is read only to reuse the connection.
    let mut read = 0;
    loop {
        match opened.next_chunk(timeout).await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                if read > MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => {
                http.release(opened).await;
                break;
            }
            Err(_) => break,
        }
    }
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
