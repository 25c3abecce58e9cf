//! Label values: reference-counted strings, so a request's label sets are built by cloning pointers, and a bounded
//! interner for values that come from the request (provider path segments, model names), so a client cannot grow
//! the number of series without bound.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// One label value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Label(Arc<str>);

impl Label {
    pub(crate) fn new(value: &str) -> Self {
        Self(Arc::from(value))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, &self.0)
    }
}

/// What a value past an interner's cap is reported as.
pub(crate) const OTHER: &str = "other";

/// The distinct values one label may take on a node, first come first kept; later ones are [`OTHER`].
#[derive(Debug)]
pub(crate) struct BoundedValues {
    cap: usize,
    known: RwLock<HashMap<Box<str>, Label>>,
    other: Label,
    empty: Label,
}

impl BoundedValues {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            known: RwLock::new(HashMap::new()),
            other: Label::new(OTHER),
            empty: Label::new(""),
        }
    }

    /// The label for `value`: a read lock and a lookup for a value seen before (no allocation), the one
    /// allocation of its entry the first time, [`OTHER`] once the cap is reached.
    pub(crate) fn get(&self, value: &str) -> Label {
        if value.is_empty() {
            return self.empty.clone();
        }
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        if let Some(label) = known.get(value) {
            return label.clone();
        }
        let full = known.len() >= self.cap;
        drop(known);
        if full {
            return self.other.clone();
        }
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= self.cap {
            return self.other.clone();
        }
        known
            .entry(value.into())
            .or_insert_with(|| Label::new(value))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_cap_are_other() {
        let values = BoundedValues::new(2);
        assert_eq!(values.get("a").as_str(), "a");
        assert_eq!(values.get("b").as_str(), "b");
        assert_eq!(values.get("c").as_str(), OTHER);
        assert_eq!(values.get("a").as_str(), "a");
        assert_eq!(values.get("").as_str(), "");
    }
}
