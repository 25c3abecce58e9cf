//! Handing log records off the request path: a bounded channel that never blocks a request.
//!
//! The request's `logging` phase builds a [`LogRecord`] and calls [`LogSink::submit`], which is a `try_send`: when
//! the channel is full (the writer or the shipper behind it is slow or down) the record is dropped and counted, and
//! the request never waits. The receiving end is a plain `tokio::sync::mpsc::Receiver<LogRecord>`, so whatever ships
//! or stores records (standalone: the control plane's writer; split mode: a shipper to Redis) needs no type from
//! this crate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_shared::log::LogRecord;
use tokio::sync::mpsc;

/// Counters of what went through the sink; exposed for node status and metrics.
#[derive(Debug, Default)]
pub struct LogSinkCounters {
    pub submitted: AtomicU64,
    pub dropped: AtomicU64,
}

/// Where a node's log counters live, read for each status report.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogCounterSource {
    pub(crate) sink: Arc<LogSinkCounters>,
    pub(crate) shipper: Option<Arc<crate::log_shipper::LogShipperCounters>>,
}

impl LogCounterSource {
    pub(crate) fn snapshot(&self) -> gatehouse_shared::node::LogCounts {
        let (shipped, lost_after_channel) = self.shipper.as_ref().map_or((0, 0), |s| {
            (
                s.shipped.load(Ordering::Relaxed),
                s.dropped.load(Ordering::Relaxed),
            )
        });
        gatehouse_shared::node::LogCounts {
            submitted: self.sink.submitted.load(Ordering::Relaxed),
            dropped: self.sink.dropped.load(Ordering::Relaxed) + lost_after_channel,
            shipped,
        }
    }
}

/// The request path's end of the log channel. Cloning shares the channel and the counters.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: Option<mpsc::Sender<LogRecord>>,
    counters: Arc<LogSinkCounters>,
}

impl LogSink {
    /// A sink with room for `capacity` records, and the receiver its writer drains.
    pub fn channel(capacity: usize) -> (LogSink, mpsc::Receiver<LogRecord>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            LogSink {
                tx: Some(tx),
                counters: Arc::default(),
            },
            rx,
        )
    }

    /// A sink that keeps nothing (a node with logging not wired); every record counts as dropped.
    pub fn disabled() -> LogSink {
        LogSink {
            tx: None,
            counters: Arc::default(),
        }
    }

    /// Hands a record over without waiting; a full or closed channel drops it and counts the drop.
    pub fn submit(&self, record: LogRecord) {
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(record).is_ok());
        let counter = if sent {
            &self.counters.submitted
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counters(&self) -> Arc<LogSinkCounters> {
        Arc::clone(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> LogRecord {
        serde_json::from_value(serde_json::json!({"id": id, "account_id": "a", "gateway_id": "g", "created_at_ms": 0,
            "provider": "openai", "path": "x", "status_code": 200, "success": true, "duration_ms": 1, "event_id": "e",
            "request_head": "", "request_head_complete": true, "request_size": 0, "response_head": "",
            "response_head_complete": true, "response_size": 0}))
        .unwrap()
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_waiting() {
        let (sink, mut rx) = LogSink::channel(2);
        for i in 0..5 {
            sink.submit(record(&i.to_string()));
        }
        let c = sink.counters();
        assert_eq!(
            (
                c.submitted.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed)
            ),
            (2, 3)
        );
        assert_eq!(rx.try_recv().unwrap().id, "0");
        drop(rx);
        sink.submit(record("late"));
        assert_eq!(
            c.dropped.load(Ordering::Relaxed),
            4,
            "a closed channel drops too"
        );
        let off = LogSink::disabled();
        off.submit(record("x"));
        assert_eq!(off.counters().dropped.load(Ordering::Relaxed), 1);
    }
}
