//! The bus contract, run against both implementations: every case in `cases.rs` runs once on a [`MemoryBus`] and
//! once on a [`RedisBus`] with a prefix of its own (on `TEST_REDIS_URL`; required when `CI=true`). Redis-only
//! behaviour (reconnects, key prefixes, blocking reads) is in `redis_only.rs`.

mod cases;
mod redis_only;

use std::sync::Arc;
use std::time::Duration;

use gatehouse_bus::testing::delete_prefix;
use gatehouse_bus::{BusEvent, ConfigBus, MemoryBus, RedisBus, RedisBusSettings, Subscription};

/// Makes handles to one bus: cases that need two participants (two control planes) ask for a second one.
pub trait BusFactory: Send + Sync {
    fn handle(&self) -> Arc<dyn ConfigBus>;
}

struct MemoryFactory(MemoryBus);

impl BusFactory for MemoryFactory {
    fn handle(&self) -> Arc<dyn ConfigBus> {
        Arc::new(self.0.clone())
    }
}

/// Handles to one Redis prefix; the keys are deleted when the test ends.
pub struct RedisFactory {
    pub url: String,
    pub prefix: String,
}

impl BusFactory for RedisFactory {
    fn handle(&self) -> Arc<dyn ConfigBus> {
        Arc::new(
            RedisBus::new(
                &RedisBusSettings {
                    url: self.url.clone(),
                    prefix: self.prefix.clone(),
                },
                tokio::runtime::Handle::current(),
            )
            .expect("valid settings"),
        )
    }
}

impl Drop for RedisFactory {
    fn drop(&mut self) {
        delete_prefix(&self.url, &self.prefix);
    }
}

pub const EVENT_DEADLINE: Duration = Duration::from_secs(5);

/// The next event, failing the test after [`EVENT_DEADLINE`].
pub async fn next_event(sub: &mut Subscription) -> BusEvent {
    tokio::time::timeout(EVENT_DEADLINE, sub.next())
        .await
        .expect("an event within the deadline")
        .expect("the subscription is open")
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    let factory = crate::MemoryFactory(gatehouse_bus::MemoryBus::new());
                    crate::cases::$case(&factory).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(url) = gatehouse_bus::testing::test_redis_url() else { return };
                    let factory = crate::RedisFactory {
                        url,
                        prefix: gatehouse_bus::testing::unique_prefix(stringify!($case)),
                    };
                    crate::cases::$case(&factory).await;
                }
            )*
        }
    };
}

conformance!(
    a_published_gateway_document_is_indexed_fetchable_and_announced,
    an_older_or_equal_version_never_replaces_a_newer_one,
    a_tombstone_replaces_the_document_stays_in_the_index_and_a_newer_document_revives_it,
    the_deployment_document_round_trips_and_is_never_replaced_by_an_older_one,
    announcements_arrive_after_connected_in_publish_order,
    bodies_are_stored_verbatim_even_when_they_are_not_json,
    fetching_many_gateways_answers_each_key_in_order,
    an_index_is_complete_only_when_marked_under_its_current_epoch,
    node_statuses_are_listed_until_their_ttl_runs_out_or_they_are_removed,
    each_default_gateway_request_reaches_exactly_one_consumer,
    waiting_for_default_gateway_requests_returns_empty_after_the_wait,
);
