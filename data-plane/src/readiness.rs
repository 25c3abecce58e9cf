//! Whether this node may take traffic: the seam between config loading and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A shared flag that starts "not ready". The config loader calls [`ReadinessHandle::set_ready`] after its first
/// full load (design §2: a node answers `/readyz` only after that), and request handling reads it.
///
/// Clones share the flag. Readiness only ever goes from false to true: losing the config bus later does not make
/// a node unready, because it keeps serving its last good snapshot.
#[derive(Debug, Clone, Default)]
pub struct ReadinessHandle {
    ready: Arc<AtomicBool>,
}

impl ReadinessHandle {
    pub fn set_ready(&self) {
        // Release pairs with the Acquire in `is_ready`: whatever the loader published before calling this (the
        // config snapshot) is visible to a request that sees `true`.
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_handle_is_not_ready_and_clones_share_the_flag() {
        let handle = ReadinessHandle::default();
        let seen_by_requests = handle.clone();
        assert!(!seen_by_requests.is_ready());
        handle.set_ready();
        assert!(seen_by_requests.is_ready());
    }
}
