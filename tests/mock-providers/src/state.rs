//! State shared by every connection of one mock: the default behaviour, the recorded requests, failure counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::behaviour::Behaviour;
use crate::record::RecordedRequest;

/// The state behind one mock server. [`crate::MockProvider`] owns one; the `mock-provider` binary makes its own.
#[derive(Debug)]
pub struct MockState {
    behaviour: Mutex<Behaviour>,
    /// `false` in benchmarks, where keeping every request would grow without bound.
    record: bool,
    requests: Mutex<Vec<RecordedRequest>>,
    failures: Mutex<HashMap<String, u32>>,
    sequence: AtomicU64,
}

/// A test that panicked while holding a lock must not turn every later request into a panic too.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MockState {
    pub fn new(behaviour: Behaviour, record: bool) -> MockState {
        MockState {
            behaviour: Mutex::new(behaviour),
            record,
            requests: Mutex::new(Vec::new()),
            failures: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Back to a well-behaved provider with no history.
    pub fn reset(&self) {
        self.set_behaviour(Behaviour::default());
        lock(&self.requests).clear();
        lock(&self.failures).clear();
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).clone()
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        if self.record {
            lock(&self.requests).push(request);
        }
    }

    /// A number unique to this mock, for response ids.
    pub(crate) fn next_id(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts this request against `key` and says whether it is one of the first `fail_first`.
    pub(crate) fn should_fail(&self, key: &str, fail_first: u32) -> bool {
        if fail_first == 0 {
            return false;
        }
        let mut failures = lock(&self.failures);
        let seen = failures.entry(key.to_owned()).or_insert(0);
        *seen = seen.saturating_add(1);
        *seen <= fail_first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_per_key_and_reset_clears_them() {
        let s = MockState::new(Behaviour::default(), true);
        assert!(s.should_fail("a", 2));
        assert!(s.should_fail("b", 1));
        assert!(s.should_fail("a", 2));
        assert!(!s.should_fail("a", 2));
        assert!(!s.should_fail("b", 1));
        s.reset();
        assert!(s.should_fail("a", 2));
    }
}
