//! A gateway's virtual keys, users and teams, compiled for the request path (issue 14): a key is found by the
//! SHA-256 of the presented secret in one hash-map lookup, with its user and team resolved, so admission does no
//! parsing and no string work beyond hashing the ~50-byte secret once. Users and teams are also found by what an
//! identity provider's token names them by (`identity.rs`): their id, or a name that exactly one of them has.
//!
//! Each key, user and team also carries the names of its limit-store counters (`counters.rs`), built once so
//! admission only clones them.

mod counters;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use gatehouse_shared::access::{AccessEntries, SubjectEntry, VirtualKeyEntry};
use sha2::Digest as _;

pub use counters::{BudgetName, CounterNames, ModelNames, Names, SubjectNames, tpm_kind_name};

/// Who a request is admitted as, when it is more than a gateway token or nobody: a virtual key (with its user
/// and team), or a caller an identity provider's token names.
#[derive(Debug, Clone)]
pub enum RequestSubject {
    Key(Arc<CompiledKey>),
    Identity(IdentitySubject),
}

/// A caller authenticated by an identity provider's token, with the user and team its claims name when the
/// document knows them (only their limits apply; an unknown name is admitted without subject limits).
#[derive(Debug, Clone)]
pub struct IdentitySubject {
    /// The token's issuer.
    pub issuer: Arc<str>,
    pub user: Option<Arc<CompiledSubject>>,
    pub team: Option<Arc<CompiledSubject>>,
}

impl RequestSubject {
    /// The virtual key, when the request came with one.
    pub fn key(&self) -> Option<&CompiledKey> {
        match self {
            RequestSubject::Key(key) => Some(key),
            RequestSubject::Identity(_) => None,
        }
    }

    /// The user whose limits apply, when the document lists it.
    pub fn user(&self) -> Option<&CompiledSubject> {
        match self {
            RequestSubject::Key(key) => key.user.as_deref(),
            RequestSubject::Identity(identity) => identity.user.as_deref(),
        }
    }

    /// The team whose limits apply, when the document lists it.
    pub fn team(&self) -> Option<&CompiledSubject> {
        match self {
            RequestSubject::Key(key) => key.team.as_deref(),
            RequestSubject::Identity(identity) => identity.team.as_deref(),
        }
    }

    /// The ids a log record carries: the key's own references (as its document names them), or the user and team
    /// an identity resolved to.
    pub fn log_ids(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            RequestSubject::Key(key) => (
                Some(key.entry.id.clone()),
                key.entry.user_id.clone(),
                key.entry.team_id.clone(),
            ),
            RequestSubject::Identity(identity) => (
                None,
                identity.user.as_ref().map(|u| u.entry.id.clone()),
                identity.team.as_ref().map(|t| t.entry.id.clone()),
            ),
        }
    }
}

/// A key, with its user and team as the same document describes them.
#[derive(Debug)]
pub struct CompiledKey {
    pub entry: VirtualKeyEntry,
    /// `None` when the key has no user, or the document does not list it (the control plane refuses to delete a
    /// user that keys name, so this is a document written mid-change; the key's own limits still apply).
    pub user: Option<Arc<CompiledSubject>>,
    pub team: Option<Arc<CompiledSubject>>,
    /// The key's own counter names.
    pub counters: SubjectNames,
}

impl CompiledKey {
    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.entry.expires_at_ms.is_some_and(|at| now_ms >= at)
    }

    /// The names of the key's counters in `account` (the account of the gateway whose document lists the key).
    pub fn counter_names(&self, account: &str) -> Names<'_> {
        self.counters
            .get(account, "key", &self.entry.id, &self.entry.limits)
    }
}

/// A user or team, with the names of its counters.
#[derive(Debug)]
pub struct CompiledSubject {
    pub entry: SubjectEntry,
    pub counters: SubjectNames,
}

impl CompiledSubject {
    pub fn new(entry: SubjectEntry) -> Self {
        Self {
            entry,
            counters: SubjectNames::default(),
        }
    }

    /// The names of its counters in `account`; `kind` is `user` or `team`.
    pub fn counter_names(&self, account: &str, kind: &'static str) -> Names<'_> {
        self.counters
            .get(account, kind, &self.entry.id, &self.entry.limits)
    }
}

/// The keys that may use one gateway, and the account's users and teams.
#[derive(Debug, Default)]
pub struct CompiledAccess {
    by_hash: HashMap<[u8; 32], Arc<CompiledKey>>,
    users: Subjects,
    teams: Subjects,
}

/// Users or teams, by id and by name.
#[derive(Debug, Default)]
struct Subjects {
    by_id: HashMap<String, Arc<CompiledSubject>>,
    /// Name → the one subject with that name; `None` when several share it (a name then finds nobody).
    by_name: HashMap<String, Option<Arc<CompiledSubject>>>,
}

impl Subjects {
    fn compile(entries: &[SubjectEntry]) -> Self {
        let mut subjects = Subjects::default();
        for entry in entries {
            let entry = Arc::new(CompiledSubject::new(entry.clone()));
            match subjects.by_name.entry(entry.entry.name.clone()) {
                Entry::Vacant(v) => {
                    v.insert(Some(Arc::clone(&entry)));
                }
                Entry::Occupied(mut o) => {
                    o.insert(None);
                }
            }
            subjects.by_id.insert(entry.entry.id.clone(), entry);
        }
        subjects
    }

    /// By id first (ids are UUIDs, which no name of another subject should be), then by a name only one has.
    fn find(&self, named: &str) -> Option<&Arc<CompiledSubject>> {
        self.by_id
            .get(named)
            .or_else(|| self.by_name.get(named)?.as_ref())
    }
}

impl CompiledAccess {
    /// `None` for a gateway whose document has no key, user or team, so the request path checks one `Option` for
    /// most gateways. Entries whose hash is not 64 hex digits are left out (such a key could never be presented).
    pub fn compile(entries: &AccessEntries) -> Option<Arc<Self>> {
        if entries.is_empty() {
            return None;
        }
        let users = Subjects::compile(&entries.users);
        let teams = Subjects::compile(&entries.teams);
        let by_hash = entries
            .keys
            .iter()
            .filter_map(|k| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&k.secret_hash, &mut hash).ok()?;
                let resolve = |id: &Option<String>, from: &Subjects| {
                    id.as_deref().and_then(|id| from.by_id.get(id)).cloned()
                };
                let compiled = CompiledKey {
                    user: resolve(&k.user_id, &users),
                    team: resolve(&k.team_id, &teams),
                    entry: k.clone(),
                    counters: SubjectNames::default(),
                };
                Some((hash, Arc::new(compiled)))
            })
            .collect();
        Some(Arc::new(Self {
            by_hash,
            users,
            teams,
        }))
    }

    /// The user an identity provider's claim names: its id, or the name of exactly one user.
    pub fn user(&self, named: &str) -> Option<&Arc<CompiledSubject>> {
        self.users.find(named)
    }

    /// The team a claim names, like [`CompiledAccess::user`].
    pub fn team(&self, named: &str) -> Option<&Arc<CompiledSubject>> {
        self.teams.find(named)
    }

    /// A team by id (a user's own team).
    pub fn team_by_id(&self, id: &str) -> Option<&Arc<CompiledSubject>> {
        self.teams.by_id.get(id)
    }

    /// The key whose secret is `secret`, if this gateway knows it.
    pub fn find(&self, secret: &str) -> Option<&Arc<CompiledKey>> {
        let hash: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
        self.by_hash.get(&hash)
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::access::{Limits, NewSecret, secret_hash};

    fn key(id: &str, secret: &str, user: Option<&str>) -> VirtualKeyEntry {
        VirtualKeyEntry {
            id: id.into(),
            name: id.into(),
            secret_hash: secret_hash(secret),
            models: vec![],
            user_id: user.map(Into::into),
            team_id: Some("t-missing".into()),
            expires_at_ms: Some(1_000),
            limits: Limits::default(),
        }
    }

    #[test]
    fn keys_are_found_by_their_secret_only_with_their_subjects_resolved() {
        let secret = NewSecret::generate();
        let mut bad = key("k-bad", "x", None);
        bad.secret_hash = "not hex".into();
        let entries = AccessEntries {
            keys: vec![key("k-1", &secret.secret, Some("u-1")), bad],
            users: vec![SubjectEntry {
                id: "u-1".into(),
                name: "Ada".into(),
                limits: Limits {
                    rpm: Some(5),
                    ..Limits::default()
                },
                team_id: None,
            }],
            teams: vec![],
        };
        let access = CompiledAccess::compile(&entries).unwrap();
        assert_eq!(access.len(), 1, "the unreadable hash is left out");
        let found = access.find(&secret.secret).unwrap();
        assert_eq!(found.entry.id, "k-1");
        assert_eq!(found.user.as_ref().unwrap().entry.limits.rpm, Some(5));
        assert!(found.team.is_none(), "an unknown team resolves to none");
        assert!(
            access.find(&secret.hash).is_none(),
            "the hash is not the key"
        );
        assert!(access.find("ghk_guess").is_none());
        assert!(!found.expired(999) && found.expired(1_000));
        assert!(CompiledAccess::compile(&AccessEntries::default()).is_none());
    }

    #[test]
    fn users_and_teams_are_found_by_id_or_by_a_name_only_one_has() {
        let subject = |id: &str, name: &str| SubjectEntry {
            id: id.into(),
            name: name.into(),
            limits: Limits::default(),
            team_id: None,
        };
        let entries = AccessEntries {
            keys: vec![],
            users: vec![
                subject("u-1", "ada@example.com"),
                subject("u-2", "twin"),
                subject("u-3", "twin"),
            ],
            teams: vec![subject("t-1", "research")],
        };
        let access = CompiledAccess::compile(&entries).expect("users alone compile");
        assert!(access.is_empty(), "no keys");
        assert_eq!(access.user("u-1").unwrap().entry.id, "u-1");
        assert_eq!(access.user("ada@example.com").unwrap().entry.id, "u-1");
        assert!(
            access.user("twin").is_none(),
            "an ambiguous name finds nobody"
        );
        assert_eq!(
            access.user("u-3").unwrap().entry.name,
            "twin",
            "its id still does"
        );
        assert_eq!(access.team("research").unwrap().entry.id, "t-1");
        assert_eq!(access.team_by_id("t-1").unwrap().entry.name, "research");
        assert!(access.team_by_id("research").is_none());
        assert!(access.user("nobody").is_none());
    }
}
