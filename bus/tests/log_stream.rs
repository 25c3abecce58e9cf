//! The log stream on Redis (`TEST_REDIS_URL`; required when `CI=true`): append, group reads, acknowledgement and
//! takeover of a dead consumer's entries. A prefix per test.

use std::time::Duration;

use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_bus::{LogBatch, LogStream, RedisBusSettings};
use gatehouse_shared::log::LogRecord;

fn record(id: &str) -> LogRecord {
    serde_json::from_value(serde_json::json!({"id": id, "account_id": "a", "gateway_id": "g", "created_at_ms": 0,
        "provider": "openai", "path": "x", "status_code": 200, "success": true, "duration_ms": 1, "event_id": "e",
        "request_head": "", "request_head_complete": true, "request_size": 0, "response_head": "",
        "response_head_complete": true, "response_size": 0}))
    .unwrap()
}

/// A stream under a fresh prefix; the keys go when dropped.
struct Fixture {
    url: String,
    prefix: String,
}

impl Fixture {
    fn start(label: &str) -> Option<Fixture> {
        let url = test_redis_url()?;
        Some(Fixture {
            url,
            prefix: unique_prefix(label),
        })
    }

    fn stream(&self) -> LogStream {
        LogStream::new(
            &RedisBusSettings {
                url: self.url.clone(),
                prefix: self.prefix.clone(),
            },
            tokio::runtime::Handle::current(),
        )
        .unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

fn ids(records: &[LogRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_read_once_by_the_group_and_acknowledged() {
    let Some(fx) = Fixture::start("logs-ack") else {
        return;
    };
    let stream = fx.stream();
    assert!(stream.key().starts_with(&fx.prefix));
    stream.ensure_group().await.unwrap();
    stream.ensure_group().await.unwrap(); // idempotent
    // Appended before anyone reads: still delivered (the group starts at the stream's beginning).
    let batch = LogBatch::encode(&[record("a"), record("b")]).unwrap();
    assert_eq!(batch.len(), 2);
    stream.append(&batch).await.unwrap();
    stream
        .append(&LogBatch::encode(&[record("c")]).unwrap())
        .await
        .unwrap();

    let got = stream
        .read_new("cp1", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(ids(got[0].records.as_ref().unwrap()), ["a", "b"]);
    assert_eq!(ids(got[1].records.as_ref().unwrap()), ["c"]);
    // A second consumer of the group gets nothing: each entry goes to one reader.
    let other = stream
        .read_new("cp2", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(other.is_empty());
    assert_eq!(stream.pending().await.unwrap(), 2);
    // Unacknowledged entries are there to retry.
    let again = stream.read_own_pending("cp1", 10).await.unwrap();
    assert_eq!(again.len(), 2);

    let entry_ids: Vec<String> = got.iter().map(|e| e.id.clone()).collect();
    assert_eq!(stream.ack(&entry_ids).await.unwrap(), 2);
    assert_eq!(
        stream.ack(&[]).await.unwrap(),
        0,
        "an empty ack sends nothing"
    );
    assert_eq!(stream.pending().await.unwrap(), 0);
    assert!(stream.read_own_pending("cp1", 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_blocked_past_half_a_second_still_gets_the_entry() {
    let Some(fx) = Fixture::start("logs-block") else {
        return;
    };
    let stream = std::sync::Arc::new(fx.stream());
    stream.ensure_group().await.unwrap();
    let writer = std::sync::Arc::clone(&stream);
    let append = tokio::spawn(async move {
        // Past redis-rs's default 500 ms response timeout.
        tokio::time::sleep(Duration::from_millis(900)).await;
        writer
            .append(&LogBatch::encode(&[record("late")]).unwrap())
            .await
            .unwrap();
    });
    let got = stream
        .read_new("cp1", 10, Duration::from_secs(3))
        .await
        .unwrap();
    append.await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(ids(got[0].records.as_ref().unwrap()), ["late"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_entries_are_claimed_after_they_idle_and_unreadable_ones_surface() {
    let Some(fx) = Fixture::start("logs-claim") else {
        return;
    };
    let stream = fx.stream();
    stream.ensure_group().await.unwrap();
    for id in ["a", "b", "c"] {
        stream
            .append(&LogBatch::encode(&[record(id)]).unwrap())
            .await
            .unwrap();
    }
    // A malformed entry from a broken peer.
    let client = redis::Client::open(fx.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(stream.key())
        .arg("*")
        .arg("records")
        .arg("not json")
        .query_async(&mut conn)
        .await
        .unwrap();

    // "dead" takes everything and never acknowledges.
    let taken = stream
        .read_new("dead", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(taken.len(), 4);
    assert!(taken[3].records.is_err());

    // Not idle long enough yet.
    let early = stream
        .claim_idle("live", Duration::from_secs(60), "0-0", 10)
        .await
        .unwrap();
    assert!(early.entries.is_empty());

    tokio::time::sleep(Duration::from_millis(300)).await;
    let claimed = stream
        .claim_idle("live", Duration::from_millis(200), "0-0", 10)
        .await
        .unwrap();
    assert_eq!(
        claimed.next, "0-0",
        "one call scanned the whole pending list"
    );
    assert_eq!(claimed.deleted, 0);
    assert_eq!(claimed.entries.len(), 4);
    let readable: Vec<&str> = claimed
        .entries
        .iter()
        .filter_map(|e| e.records.as_ref().ok())
        .flat_map(|r| ids(r))
        .collect();
    assert_eq!(readable, ["a", "b", "c"]);
    // They now belong to "live".
    assert_eq!(stream.read_own_pending("live", 10).await.unwrap().len(), 4);
    assert!(
        stream
            .read_own_pending("dead", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let all: Vec<String> = claimed.entries.iter().map(|e| e.id.clone()).collect();
    // A consumer with entries pending is never forgotten, however idle.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        stream
            .forget_idle_consumers("dead", Duration::from_millis(200))
            .await
            .unwrap(),
        Vec::<String>::new(),
        "live holds four entries; dead is the caller"
    );
    assert_eq!(stream.ack(&all).await.unwrap(), 4);
    assert_eq!(stream.pending().await.unwrap(), 0);
    // Nothing pending: the idle one that is not the caller goes, once.
    assert_eq!(
        stream
            .forget_idle_consumers("live", Duration::from_secs(60))
            .await
            .unwrap(),
        Vec::<String>::new(),
        "not idle long enough"
    );
    assert_eq!(
        stream
            .forget_idle_consumers("live", Duration::from_millis(200))
            .await
            .unwrap(),
        ["dead"]
    );
    assert!(
        stream
            .forget_idle_consumers("live", Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_before_the_group_exists_creates_it() {
    let Some(fx) = Fixture::start("logs-nogroup") else {
        return;
    };
    let stream = fx.stream();
    // The producer runs first: the stream exists without the group.
    stream
        .append(&LogBatch::encode(&[record("early")]).unwrap())
        .await
        .unwrap();
    let first = stream
        .read_new("cp1", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(first.is_empty(), "the group was missing; it is created now");
    let got = stream
        .read_new("cp1", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(
        got.len(),
        1,
        "an entry appended before the group existed is read"
    );
}
