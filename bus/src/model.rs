//! What travels on the bus: stored documents, index entries and announcements, with their wire forms.

use std::collections::BTreeMap;

use gatehouse_shared::config::GatewayKey;
use serde::{Deserialize, Serialize};

use crate::error::BusError;

/// What a document or an announcement is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One gateway's document (or tombstone).
    Gateway(GatewayKey),
    /// The deployment document: token verification keys and revocations.
    Deployment,
    /// The index as a whole: a reconciler marked it complete, so nodes should re-read it.
    Index,
}

/// Wire names of the non-gateway targets. Gateway targets are `{account}/{gateway}` and always contain a `/`, so
/// these can never collide with one.
const DEPLOYMENT: &str = "deployment";
const INDEX: &str = "index";

impl Target {
    /// The wire form: the gateway path, `deployment` or `index`.
    pub fn as_wire(&self) -> String {
        match self {
            Target::Gateway(key) => key.as_path(),
            Target::Deployment => DEPLOYMENT.to_owned(),
            Target::Index => INDEX.to_owned(),
        }
    }

    pub fn parse_wire(text: &str) -> Option<Target> {
        match text {
            DEPLOYMENT => Some(Target::Deployment),
            INDEX => Some(Target::Index),
            path => GatewayKey::parse_path(path).map(Target::Gateway),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_wire())
    }
}

/// "Version `version` of `target` is on the bus": all a node needs to decide whether to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub target: Target,
    pub version: i64,
}

#[derive(Serialize, Deserialize)]
struct AnnouncementWire {
    key: String,
    version: i64,
}

impl Announcement {
    /// `{"key":"acme/prod","version":42}`.
    pub fn to_wire(&self) -> String {
        serde_json::to_string(&AnnouncementWire {
            key: self.target.as_wire(),
            version: self.version,
        })
        .unwrap_or_default()
    }

    pub fn parse_wire(text: &str) -> Result<Announcement, BusError> {
        let wire: AnnouncementWire =
            serde_json::from_str(text).map_err(|e| BusError::corrupt("announcement", e))?;
        let target = Target::parse_wire(&wire.key)
            .ok_or_else(|| BusError::corrupt("announcement", format!("bad key {:?}", wire.key)))?;
        Ok(Announcement {
            target,
            version: wire.version,
        })
    }
}

/// A document as the bus stores it: opaque text plus the version and content hash it was published with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    pub version: i64,
    /// The content hash the control plane computed; nodes report it and logs name it.
    pub hash: String,
    /// The serialised document. The bus never parses it.
    pub body: String,
}

/// One entry of the index: the version and hash of what the bus holds for a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub version: i64,
    #[serde(default)]
    pub hash: String,
    /// A tombstone: the gateway was deleted at `version`.
    #[serde(default)]
    pub deleted: bool,
}

impl IndexEntry {
    pub(crate) fn to_wire(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn parse_wire(field: &str, text: &str) -> Result<IndexEntry, BusError> {
        serde_json::from_str(text).map_err(|e| BusError::corrupt(field, e))
    }
}

/// What a gateway's slot on the bus holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEntry {
    Document(StoredDocument),
    Deleted { version: i64 },
}

impl GatewayEntry {
    pub fn version(&self) -> i64 {
        match self {
            GatewayEntry::Document(d) => d.version,
            GatewayEntry::Deleted { version } => *version,
        }
    }
}

/// The whole index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusIndex {
    pub gateways: BTreeMap<GatewayKey, IndexEntry>,
    pub deployment: Option<IndexEntry>,
    /// Set when a reconciler pass marked the index complete, at this version: every gateway ever published has
    /// an entry, so a node may drop a gateway that has none. Absent after the index was wiped, until a new pass.
    pub complete_at: Option<i64>,
    /// Index fields whose entry does not parse: `(field, reason)`.
    pub invalid: Vec<(String, String)>,
}

impl BusIndex {
    /// The highest version anywhere in the index, so the control plane can keep its counter above it.
    pub fn max_version(&self) -> Option<i64> {
        self.gateways
            .values()
            .map(|e| e.version)
            .chain(self.deployment.as_ref().map(|e| e.version))
            .chain(self.complete_at)
            .max()
    }
}

/// The small part of the index a frequent reconciler tick reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexSummary {
    pub deployment: Option<IndexEntry>,
    pub complete_at: Option<i64>,
}

/// What a compare-and-set publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Written and announced.
    Written,
    /// The bus already holds this version or a newer one (`current`); nothing was written.
    Superseded { current: i64 },
}

/// Index field names that are not gateway paths (gateway paths always contain a `/`).
pub(crate) mod fields {
    pub const DEPLOYMENT: &str = super::DEPLOYMENT;
    /// A random id created by the first reconciler pass after the index was (re)created.
    pub const EPOCH: &str = "~epoch";
    /// `{"epoch": …, "version": …}`, written by a reconciler pass that completed under that epoch.
    pub const COMPLETE: &str = "~complete";
}

/// The completeness marker's wire form.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CompleteMarker {
    pub epoch: String,
    pub version: i64,
}

/// Parses index fields (from Redis `HGETALL`, or the memory bus's map) into a [`BusIndex`].
pub(crate) fn parse_index<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> BusIndex {
    let mut index = BusIndex::default();
    for (field, value) in fields {
        match field {
            fields::EPOCH => {}
            fields::COMPLETE => match serde_json::from_str::<CompleteMarker>(value) {
                Ok(marker) => index.complete_at = Some(marker.version),
                Err(e) => index.invalid.push((field.to_owned(), e.to_string())),
            },
            fields::DEPLOYMENT => match IndexEntry::parse_wire(field, value) {
                Ok(entry) => index.deployment = Some(entry),
                Err(e) => index.invalid.push((field.to_owned(), e.to_string())),
            },
            path => match (
                GatewayKey::parse_path(path),
                IndexEntry::parse_wire(path, value),
            ) {
                (Some(key), Ok(entry)) => {
                    index.gateways.insert(key, entry);
                }
                (None, _) if path.starts_with('~') => {
                    // A marker from a newer control plane; ignored like an unknown document field.
                }
                (None, _) => index
                    .invalid
                    .push((path.to_owned(), "not a gateway path".into())),
                (Some(_), Err(e)) => index.invalid.push((path.to_owned(), e.to_string())),
            },
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_for_every_kind_of_target() {
        for target in [
            Target::Gateway(GatewayKey::new("acme", "prod")),
            Target::Deployment,
            Target::Index,
        ] {
            let a = Announcement {
                target,
                version: 42,
            };
            assert_eq!(Announcement::parse_wire(&a.to_wire()).unwrap(), a);
        }
        assert_eq!(
            Announcement {
                target: Target::Gateway(GatewayKey::new("acme", "prod")),
                version: 42
            }
            .to_wire(),
            r#"{"key":"acme/prod","version":42}"#
        );
    }

    #[test]
    fn malformed_announcements_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            r#"{"key":"nope","version":1}"#,
            r#"{"key":"a/b"}"#,
            r#"{"key":"a/b/c","version":1}"#,
        ] {
            assert!(Announcement::parse_wire(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_index_parses_gateways_the_deployment_and_markers_and_lists_what_does_not_parse() {
        let index = parse_index([
            ("acme/prod", r#"{"version":3,"hash":"h3","deleted":false}"#),
            ("acme/gone", r#"{"version":5,"hash":"","deleted":true}"#),
            ("deployment", r#"{"version":4,"hash":"d4"}"#),
            ("~epoch", "e1"),
            ("~complete", r#"{"epoch":"e1","version":6}"#),
            ("~from-the-future", "x"),
            ("acme/broken", "not json"),
            ("stray", "{}"),
        ]);
        assert_eq!(index.gateways.len(), 2);
        assert!(index.gateways[&GatewayKey::new("acme", "gone")].deleted);
        assert_eq!(index.deployment.as_ref().map(|d| d.version), Some(4));
        assert_eq!(index.complete_at, Some(6));
        assert_eq!(index.max_version(), Some(6));
        let invalid: Vec<_> = index.invalid.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(invalid, ["acme/broken", "stray"]);
    }
}
