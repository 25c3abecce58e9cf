//! The hand-over from request threads to the exporter: a bounded channel and a byte budget, both checked without
//! waiting. What does not fit is dropped and counted, so a dead collector never costs a request any time and never
//! costs the node more than the bounds in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::span::ExportSpan;
use super::target::OtlpTarget;

/// The node's span queue; request threads call [`SpanQueue::submit`], the exporter drains it.
pub(crate) struct SpanQueue {
    sender: mpsc::Sender<Queued>,
    counters: Arc<Counters>,
    /// Spans held anywhere between `submit` and the end of their export, in bytes (`ExportSpan::approximate_bytes`).
    max_bytes: usize,
}

/// A span on its way, with the collector it goes to.
pub(super) struct Queued {
    pub target: Arc<OtlpTarget>,
    pub span: ExportSpan,
    /// Its share of `held_bytes`, given back when the exporter is done with it.
    pub bytes: usize,
}

/// What the queue and the exporter count, shared between them.
#[derive(Debug, Default)]
pub(super) struct Counters {
    exported_spans: AtomicU64,
    dropped_spans: AtomicU64,
    failed_spans: AtomicU64,
    exported_batches: AtomicU64,
    failed_batches: AtomicU64,
    held_bytes: AtomicUsize,
}

/// A reading of the counters, for `/metrics`. Every count is since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OtlpCounters {
    /// Spans in batches a collector accepted (2xx).
    pub exported_spans: u64,
    /// Spans never sent: the queue or the byte budget was full, or their collector had a batch waiting already.
    pub dropped_spans: u64,
    /// Spans in batches that failed (no connection, timeout, non-2xx); they are not retried.
    pub failed_spans: u64,
    pub exported_batches: u64,
    pub failed_batches: u64,
    /// Spans waiting in the queue now (a gauge).
    pub queued_spans: u64,
}

impl SpanQueue {
    pub(super) fn new(
        capacity: usize,
        max_bytes: usize,
    ) -> (Arc<SpanQueue>, mpsc::Receiver<Queued>, Arc<Counters>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        let queue = Arc::new(SpanQueue {
            sender,
            counters: Arc::clone(&counters),
            max_bytes,
        });
        (queue, receiver, counters)
    }

    /// Hands `span` to the exporter for `target`. Never blocks or awaits: when the queue or the byte budget is
    /// full (or the exporter has stopped), the span is dropped and counted.
    pub(crate) fn submit(&self, target: &Arc<OtlpTarget>, span: ExportSpan) {
        let bytes = span.approximate_bytes();
        let held = self.counters.held_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if held > self.max_bytes {
            self.counters.release(bytes);
            self.counters.dropped(1);
            return;
        }
        let queued = Queued {
            target: Arc::clone(target),
            span,
            bytes,
        };
        if self.sender.try_send(queued).is_err() {
            self.counters.release(bytes);
            self.counters.dropped(1);
        }
    }

    pub(crate) fn counters(&self) -> OtlpCounters {
        let c = &self.counters;
        OtlpCounters {
            exported_spans: c.exported_spans.load(Ordering::Relaxed),
            dropped_spans: c.dropped_spans.load(Ordering::Relaxed),
            failed_spans: c.failed_spans.load(Ordering::Relaxed),
            exported_batches: c.exported_batches.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            queued_spans: (self.sender.max_capacity() - self.sender.capacity()) as u64,
        }
    }
}

impl Counters {
    pub(super) fn release(&self, bytes: usize) {
        self.held_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(super) fn dropped(&self, spans: u64) {
        self.dropped_spans.fetch_add(spans, Ordering::Relaxed);
    }

    pub(super) fn exported(&self, spans: u64) {
        self.exported_spans.fetch_add(spans, Ordering::Relaxed);
        self.exported_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn failed(&self, spans: u64) {
        self.failed_spans.fetch_add(spans, Ordering::Relaxed);
        self.failed_batches.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(super) fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }
}
