//! The node's configuration: one immutable [`ConfigSnapshot`], swapped atomically when a document is applied.
//!
//! Applying a document means: check its version (never go backwards), compile it into the runtime form the request
//! path uses (secrets opened, token verifier built), and publish a new snapshot with one pointer swap. A request
//! loads the snapshot once at its start and uses it to the end. A document that fails to compile is reported and
//! the previous one stays in service.

pub mod access;
pub mod default_gateway;
pub mod routes;
pub mod verified_tokens;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_shared::config::{DeploymentDocument, GatewayConfigDocument, GatewayKey};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::spend_limits::SpendLimits;
use gatehouse_shared::token::TokenVerifier;

use crate::health::HealthTable;
use crate::identity::{IdentityProviders, JwksCache};
pub use default_gateway::DefaultGatewayRequester;

/// Why a document was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("provider config {id} ({provider}/{alias}): {reason}")]
    ProviderSecret {
        id: String,
        provider: String,
        alias: String,
        reason: String,
    },
    #[error("custom provider {slug}: {reason}")]
    CustomProvider { slug: String, reason: String },
    #[error("document is invalid: {0}")]
    Invalid(String),
}

/// What applying a document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The snapshot now serves this version.
    Updated,
    /// The node already has this version or a newer one; nothing changed.
    Stale,
}

/// A provider key, opened. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSecret {
    pub id: String,
    pub alias: String,
    pub secret: String,
}

impl std::fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSecret")
            .field("id", &self.id)
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

/// The stored keys of one provider on one gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderKeys {
    /// The key marked `default_config` (or aliased `default`), used without `cf-aig-byok-alias`.
    pub default: Option<ProviderSecret>,
    pub by_alias: HashMap<String, ProviderSecret>,
}

/// A custom provider, ready to route to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomUpstream {
    pub slug: String,
    /// The base URL without a trailing slash.
    pub base_url: String,
}

/// One gateway, compiled.
#[derive(Debug, Clone)]
pub struct CompiledGateway {
    pub key: GatewayKey,
    pub version: i64,
    /// The content hash of the document that built this, for status reports and logs.
    pub hash: String,
    pub internal_id: String,
    pub is_default: bool,
    pub settings: GatewaySettings,
    /// Provider slug → its stored keys.
    pub provider_keys: HashMap<String, ProviderKeys>,
    /// Custom provider slug (without `custom-`) → upstream.
    pub custom_providers: HashMap<String, CustomUpstream>,
    /// Part of every cache key: raised by the control plane to make what was cached before unreachable.
    pub cache_generation: i64,
    /// The typed `spend_limits` settings; `None` when no rule can apply (absent, switched off, or every rule
    /// paused), so the request path checks one `Option` and nothing more for most gateways.
    pub spend_limits: Option<Arc<SpendLimits>>,
    /// The account's virtual keys that may use this gateway, and its users and teams (issue 14); `None` when
    /// the document has none.
    pub access: Option<Arc<access::CompiledAccess>>,
    /// The identity providers whose tokens authenticate callers (`identity_providers`); `None` when there are none.
    pub(crate) identity: Option<Arc<IdentityProviders>>,
    /// The deployed dynamic routes by name; `None` when the gateway has none.
    pub routes: Option<Arc<routes::CompiledRoutes>>,
    /// The gateway's labels in the node's metrics, made once here rather than per request.
    pub(crate) metric_labels: crate::metrics::GatewayLabels,
    /// The OTLP collectors that get a span per request (`otel`); `None` when there are none.
    pub(crate) otel: Option<Arc<[Arc<crate::otel::OtlpTarget>]>>,
}

/// Token verification for the whole deployment, compiled.
#[derive(Debug)]
pub struct CompiledDeployment {
    pub version: i64,
    pub hash: String,
    pub verifier: TokenVerifier,
    pub revoked_tokens: HashSet<String>,
    /// Tokens verified under these keys (`snapshot/verified_tokens.rs`).
    pub verified: verified_tokens::VerifiedTokens,
}

/// Everything a node serves from, at one moment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    /// account id → gateway id → gateway, so a request looks up with two `&str` and no allocation.
    gateways: HashMap<String, HashMap<String, Arc<CompiledGateway>>>,
    /// Versions of deletions, so a late, older document cannot bring a deleted gateway back.
    tombstones: HashMap<GatewayKey, i64>,
    pub deployment: Option<Arc<CompiledDeployment>>,
    /// Claimed host name (lower case) → its gateway (`hostnames`, issue 13 item 6), rebuilt whenever a gateway
    /// changes. The control plane keeps names unique; should two documents still claim one, the lexically first
    /// gateway key wins on every node alike.
    hosts: HashMap<String, GatewayKey>,
}

impl ConfigSnapshot {
    pub fn gateway(&self, account_id: &str, gateway_id: &str) -> Option<&Arc<CompiledGateway>> {
        self.gateways.get(account_id)?.get(gateway_id)
    }

    /// The gateway that claims `host` (a `Host` header value; a port is ignored), if any.
    pub fn gateway_for_host(&self, host: &str) -> Option<&Arc<CompiledGateway>> {
        if self.hosts.is_empty() {
            return None;
        }
        let name = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let key = self.hosts.get(name.to_ascii_lowercase().as_str())?;
        self.gateway(&key.account_id, &key.gateway_id)
    }

    fn reindex_hosts(&mut self) {
        let mut hosts: HashMap<String, GatewayKey> = HashMap::new();
        for g in self.gateways.values().flat_map(|m| m.values()) {
            for name in g.settings.hostnames.iter().flatten() {
                let name = name.to_ascii_lowercase();
                let keep = hosts.get(&name).is_some_and(|k| {
                    (&k.account_id, &k.gateway_id) < (&g.key.account_id, &g.key.gateway_id)
                });
                if !keep {
                    hosts.insert(name, g.key.clone());
                }
            }
        }
        self.hosts = hosts;
    }

    /// Every gateway's key and version, for status reports and resync comparisons.
    /// Every gateway the snapshot serves.
    pub fn all_gateways(&self) -> impl Iterator<Item = &Arc<CompiledGateway>> {
        self.gateways.values().flat_map(|m| m.values())
    }

    pub fn gateway_versions(&self) -> HashMap<GatewayKey, i64> {
        self.gateways
            .values()
            .flat_map(|m| m.values())
            .map(|g| (g.key.clone(), g.version))
            .collect()
    }

    /// The version a key is known at: applied, or deleted at.
    pub fn known_version(&self, key: &GatewayKey) -> Option<i64> {
        self.gateway(&key.account_id, &key.gateway_id)
            .map(|g| g.version)
            .or_else(|| self.tombstones.get(key).copied())
    }
}

/// The node's current snapshot and the key to open secrets with.
pub struct ConfigStore {
    current: ArcSwap<ConfigSnapshot>,
    master_key: Option<MasterKey>,
    /// The identity providers' keys, fetched in the background; compiling a gateway registers its JWKS URLs.
    jwks: Arc<JwksCache>,
    /// The health of routed targets, kept across documents (`health.rs`).
    health: Arc<HealthTable>,
}

impl std::fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigStore").finish_non_exhaustive()
    }
}

impl ConfigStore {
    /// `master_key` opens provider secrets; a node without one serves only gateways that have no stored keys.
    pub fn new(master_key: Option<MasterKey>) -> Self {
        Self {
            current: ArcSwap::from_pointee(ConfigSnapshot::default()),
            master_key,
            jwks: Arc::new(JwksCache::new()),
            health: Arc::new(HealthTable::default()),
        }
    }

    /// The health of the node's routed targets.
    pub fn health(&self) -> Arc<HealthTable> {
        Arc::clone(&self.health)
    }

    /// The JWKS cache the node's refresher fills (`identity/refresh.rs`).
    pub(crate) fn jwks_cache(&self) -> Arc<JwksCache> {
        Arc::clone(&self.jwks)
    }

    /// The snapshot to serve one request from. Lock-free.
    pub fn load(&self) -> Arc<ConfigSnapshot> {
        self.current.load_full()
    }

    /// Compiles and applies a gateway document unless the node already has that version or newer (or deleted the
    /// gateway at a newer version). On error the previous document stays in service.
    pub fn apply_gateway(
        &self,
        doc: &GatewayConfigDocument,
        hash: &str,
    ) -> Result<Applied, CompileError> {
        if self
            .load()
            .known_version(&doc.key)
            .is_some_and(|v| v >= doc.version)
        {
            return Ok(Applied::Stale);
        }
        let compiled = Arc::new(compile_gateway(
            doc,
            hash,
            self.master_key.as_ref(),
            &self.jwks,
            &self.health,
        )?);
        self.health.prune();
        let mut applied = Applied::Stale;
        // Documents are applied by one sync task, but rcu keeps a concurrent applier correct too.
        self.current.rcu(|old| {
            if old
                .known_version(&compiled.key)
                .is_some_and(|v| v >= compiled.version)
            {
                applied = Applied::Stale;
                return Arc::clone(old);
            }
            let mut next = ConfigSnapshot::clone(old);
            next.tombstones.remove(&compiled.key);
            next.gateways
                .entry(compiled.key.account_id.clone())
                .or_default()
                .insert(compiled.key.gateway_id.clone(), Arc::clone(&compiled));
            next.reindex_hosts();
            applied = Applied::Updated;
            Arc::new(next)
        });
        Ok(applied)
    }

    /// Removes a gateway deleted at `version`; an older delete than what the node serves is ignored.
    pub fn remove_gateway(&self, key: &GatewayKey, version: i64) -> Applied {
        let mut applied = Applied::Stale;
        self.current.rcu(|old| {
            if old.known_version(key).is_some_and(|v| v >= version) {
                applied = Applied::Stale;
                return Arc::clone(old);
            }
            let mut next = ConfigSnapshot::clone(old);
            if let Some(account) = next.gateways.get_mut(&key.account_id) {
                account.remove(&key.gateway_id);
                if account.is_empty() {
                    next.gateways.remove(&key.account_id);
                }
            }
            next.tombstones.insert(key.clone(), version);
            next.reindex_hosts();
            applied = Applied::Updated;
            Arc::new(next)
        });
        applied
    }

    /// Applies the deployment document unless the node has that version or newer.
    pub fn apply_deployment(&self, doc: &DeploymentDocument, hash: &str) -> Applied {
        let compiled = Arc::new(CompiledDeployment {
            version: doc.version,
            hash: hash.to_owned(),
            verifier: TokenVerifier::new(&doc.verification_keys),
            revoked_tokens: doc.revoked_tokens.iter().cloned().collect(),
            verified: Default::default(),
        });
        let mut applied = Applied::Stale;
        self.current.rcu(|old| {
            if old
                .deployment
                .as_ref()
                .is_some_and(|d| d.version >= compiled.version)
            {
                applied = Applied::Stale;
                return Arc::clone(old);
            }
            let mut next = ConfigSnapshot::clone(old);
            next.deployment = Some(Arc::clone(&compiled));
            applied = Applied::Updated;
            Arc::new(next)
        });
        applied
    }
}

fn compile_gateway(
    doc: &GatewayConfigDocument,
    hash: &str,
    master_key: Option<&MasterKey>,
    jwks: &JwksCache,
    health: &HealthTable,
) -> Result<CompiledGateway, CompileError> {
    let mut provider_keys: HashMap<String, ProviderKeys> = HashMap::new();
    for entry in &doc.provider_configs {
        let fail = |reason: String| CompileError::ProviderSecret {
            id: entry.id.clone(),
            provider: entry.provider_slug.clone(),
            alias: entry.alias.clone(),
            reason,
        };
        let key =
            master_key.ok_or_else(|| fail("this node has no master key to open it".into()))?;
        let opened = key
            .open(&entry.sealed_secret)
            .map_err(|e| fail(e.to_string()))?;
        let secret =
            String::from_utf8(opened).map_err(|_| fail("the secret is not UTF-8 text".into()))?;
        let secret = ProviderSecret {
            id: entry.id.clone(),
            alias: entry.alias.clone(),
            secret,
        };
        let keys = provider_keys
            .entry(entry.provider_slug.clone())
            .or_default();
        if entry.default_config || (entry.alias == "default" && keys.default.is_none()) {
            keys.default = Some(secret.clone());
        }
        keys.by_alias.insert(entry.alias.clone(), secret);
    }
    let mut custom_providers = HashMap::new();
    for cp in doc.custom_providers.iter().filter(|cp| cp.enable) {
        let base = cp.base_url.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(CompileError::CustomProvider {
                slug: cp.slug.clone(),
                reason: "base_url is not http(s)".into(),
            });
        }
        custom_providers.insert(
            cp.slug.clone(),
            CustomUpstream {
                slug: cp.slug.clone(),
                base_url: base.to_owned(),
            },
        );
    }
    let spend_limits = compile_spend_limits(&doc.settings)?;
    let identity = IdentityProviders::compile(doc.settings.identity_providers.as_deref(), jwks)
        .map_err(CompileError::Invalid)?;
    Ok(CompiledGateway {
        key: doc.key.clone(),
        version: doc.version,
        hash: hash.to_owned(),
        internal_id: doc.internal_id.clone(),
        is_default: doc.is_default,
        settings: doc.settings.clone(),
        provider_keys,
        custom_providers,
        cache_generation: doc.cache_generation,
        spend_limits,
        access: access::CompiledAccess::compile(&doc.access),
        identity,
        routes: routes::CompiledRoutes::compile(&doc.key, &doc.routes, &doc.settings, health),
        metric_labels: crate::metrics::GatewayLabels::new(&doc.key.account_id, &doc.key.gateway_id),
        otel: compile_otel(doc, master_key),
    })
}

/// The gateway's OTLP collectors. An exporter this node cannot use (a bad URL or header, an authorization it
/// cannot open) is left out with a warning, never the gateway: an exporter's config must not affect traffic.
fn compile_otel(
    doc: &GatewayConfigDocument,
    master_key: Option<&MasterKey>,
) -> Option<Arc<[Arc<crate::otel::OtlpTarget>]>> {
    use gatehouse_shared::otel::{OtelExporter, SEALED_AUTHORIZATION_PREFIX};
    let build = |exporter: OtelExporter| -> Result<crate::otel::OtlpTarget, String> {
        let authorization = match exporter.authorization {
            Some(stored) => match stored.strip_prefix(SEALED_AUTHORIZATION_PREFIX) {
                Some(sealed) => {
                    let key = master_key
                        .ok_or("this node has no master key to open its authorization")?;
                    let opened = key.open(sealed).map_err(|e| e.to_string())?;
                    Some(String::from_utf8(opened).map_err(|_| "the authorization is not text")?)
                }
                None => Some(stored),
            },
            None => None,
        };
        let encoding = crate::otel::OtlpEncoding::from_setting(exporter.content_type.as_deref())?;
        let headers: Vec<(String, String)> = exporter.headers.into_iter().collect();
        crate::otel::OtlpTarget::new(&exporter.url, &headers, authorization.as_deref(), encoding)
    };
    let mut targets = Vec::new();
    for (index, entry) in OtelExporter::list(doc.settings.otel.as_ref())
        .into_iter()
        .enumerate()
    {
        match entry.and_then(build) {
            Ok(target) => targets.push(Arc::new(target)),
            Err(reason) => tracing::warn!(
                gateway = %doc.key.as_path(),
                exporter = index,
                %reason,
                "OTLP exporter left out"
            ),
        }
    }
    (!targets.is_empty()).then(|| targets.into())
}

/// The gateway's spend limits when any rule can apply. Rules this node cannot read refuse the whole document: a
/// node that served it without them would let spending run past a limit the operator set.
fn compile_spend_limits(
    settings: &GatewaySettings,
) -> Result<Option<Arc<SpendLimits>>, CompileError> {
    let Some(raw) = settings.spend_limits.as_ref().filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let limits = SpendLimits::from_settings(raw).map_err(CompileError::Invalid)?;
    Ok(limits.is_active().then(|| Arc::new(limits)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::config::ProviderConfigEntry;

    fn doc(version: i64) -> GatewayConfigDocument {
        GatewayConfigDocument {
            schema: 1,
            key: GatewayKey::new("acme", "gw"),
            version,
            internal_id: "i".into(),
            is_default: false,
            settings: GatewaySettings::for_default_gateway(),
            provider_configs: vec![],
            custom_providers: vec![],
            cache_generation: 0,
            access: Default::default(),
            routes: Vec::new(),
        }
    }

    #[test]
    fn versions_never_go_backwards_and_deletes_are_remembered() {
        let store = ConfigStore::new(None);
        assert_eq!(
            store.apply_gateway(&doc(5), "h5").unwrap(),
            Applied::Updated
        );
        assert_eq!(store.apply_gateway(&doc(4), "h4").unwrap(), Applied::Stale);
        assert_eq!(store.apply_gateway(&doc(5), "h5").unwrap(), Applied::Stale);
        assert_eq!(store.load().gateway("acme", "gw").unwrap().hash, "h5");
        assert_eq!(
            store.remove_gateway(&GatewayKey::new("acme", "gw"), 6),
            Applied::Updated
        );
        assert!(store.load().gateway("acme", "gw").is_none());
        assert_eq!(
            store.apply_gateway(&doc(5), "late").unwrap(),
            Applied::Stale,
            "a late document stays dead"
        );
        assert_eq!(
            store.apply_gateway(&doc(7), "h7").unwrap(),
            Applied::Updated,
            "a newer create comes back"
        );
    }

    #[test]
    fn a_document_whose_secret_does_not_open_keeps_the_previous_one() {
        let key = MasterKey::from_bytes(&[3; 32]);
        let store = ConfigStore::new(Some(key.clone()));
        let mut good = doc(1);
        good.provider_configs.push(ProviderConfigEntry {
            id: "pc".into(),
            provider_slug: "openai".into(),
            alias: "default".into(),
            default_config: true,
            sealed_secret: key.seal(b"sk-live"),
            rate_limit: None,
            rate_limit_period: None,
        });
        store.apply_gateway(&good, "h1").unwrap();
        let mut bad = good.clone();
        bad.version = 2;
        bad.provider_configs[0].sealed_secret = MasterKey::from_bytes(&[4; 32]).seal(b"x");
        assert!(matches!(
            store.apply_gateway(&bad, "h2"),
            Err(CompileError::ProviderSecret { .. })
        ));
        let snapshot = store.load();
        let gw = snapshot.gateway("acme", "gw").unwrap();
        assert_eq!(gw.version, 1);
        assert_eq!(
            gw.provider_keys["openai"].default.as_ref().unwrap().secret,
            "sk-live"
        );
        assert!(
            !format!("{gw:?}").contains("sk-live"),
            "secrets never reach Debug output"
        );
    }

    #[test]
    fn spend_limits_and_the_cache_generation_compile_into_the_gateway() {
        let store = ConfigStore::new(None);
        let mut d = doc(1);
        d.cache_generation = 3;
        d.settings.spend_limits = Some(serde_json::json!({"enabled": true, "rules": [
            {"id": "team", "limit": 10, "limitType": "cost", "window": 3600,
             "provider": {"mode": "filter", "values": ["openai"]},
             "metadata": {"user": {"mode": "partition"}}},
            {"limit": 1, "limitType": "cost", "window": 60, "technique": "fixed", "enabled": false},
        ]}));
        store.apply_gateway(&d, "h1").unwrap();
        let snapshot = store.load();
        let gw = snapshot.gateway("acme", "gw").unwrap();
        assert_eq!(gw.cache_generation, 3);
        let limits = gw.spend_limits.as_ref().expect("an enabled rule");
        assert_eq!(limits.rules.len(), 2);
        assert_eq!(limits.rules[0].id, "team");
        assert_eq!(limits.rules[1].id.len(), 8, "a derived id");
        let metadata = serde_json::json!({"user": "ann"});
        let applicable = limits.applicable("openai", None, metadata.as_object().unwrap());
        assert_eq!(applicable.len(), 1);
        assert_eq!(applicable[0].bucket, "team:user=ann");
    }

    #[test]
    fn spend_limits_that_cannot_apply_compile_to_none() {
        for spend_limits in [
            serde_json::Value::Null,
            serde_json::json!({"enabled": false, "rules": [
                {"limit": 1, "limitType": "cost", "window": 60}]}),
            serde_json::json!({"enabled": true, "rules": []}),
            serde_json::json!({"enabled": true, "rules": [
                {"enabled": false, "limit": 1, "limitType": "cost", "window": 60}]}),
        ] {
            let mut d = doc(1);
            d.settings.spend_limits = Some(spend_limits.clone());
            let compiled =
                compile_gateway(&d, "h", None, &JwksCache::new(), &HealthTable::default()).unwrap();
            assert!(compiled.spend_limits.is_none(), "{spend_limits}");
        }
    }

    #[test]
    fn identity_providers_register_their_jwks_urls_and_an_unusable_one_refuses_the_document() {
        use gatehouse_shared::gateway::{DpopMode, IdentityProvider};
        let provider = |url: &str| IdentityProvider {
            issuer: "https://idp.example.com".into(),
            audience: vec!["gatehouse".into()],
            jwks_url: url.into(),
            algorithms: IdentityProvider::default_algorithms(),
            user_claim: "sub".into(),
            team_claim: None,
            dpop: DpopMode::Optional,
            leeway_seconds: 60,
        };
        let store = ConfigStore::new(None);
        let mut d = doc(1);
        d.settings.identity_providers = Some(vec![provider("https://idp.example.com/jwks")]);
        store.apply_gateway(&d, "h1").unwrap();
        let snapshot = store.load();
        let g = snapshot.gateway("acme", "gw").unwrap();
        assert!(g.identity.is_some());
        assert_eq!(store.jwks_cache().urls(), ["https://idp.example.com/jwks"]);
        let mut bad = doc(2);
        bad.settings.identity_providers = Some(vec![provider("ftp://idp.example.com/jwks")]);
        assert!(matches!(
            store.apply_gateway(&bad, "h2"),
            Err(CompileError::Invalid(_))
        ));
        assert_eq!(store.load().gateway("acme", "gw").unwrap().version, 1);
        assert!(
            store
                .load()
                .gateway("acme", "gw")
                .unwrap()
                .identity
                .is_some()
        );
        let mut none = doc(3);
        none.settings.identity_providers = Some(vec![]);
        store.apply_gateway(&none, "h3").unwrap();
        assert!(
            store
                .load()
                .gateway("acme", "gw")
                .unwrap()
                .identity
                .is_none()
        );
    }

    #[test]
    fn a_document_with_unreadable_spend_limits_keeps_the_previous_one() {
        let store = ConfigStore::new(None);
        store.apply_gateway(&doc(1), "h1").unwrap();
        let mut bad = doc(2);
        bad.settings.spend_limits = Some(serde_json::json!({"enabled": true, "rules": [
            {"limit": 1, "limitType": "tokens", "window": 60}]}));
        assert!(matches!(
            store.apply_gateway(&bad, "h2"),
            Err(CompileError::Invalid(reason)) if reason.contains("limitType")
        ));
        assert_eq!(store.load().gateway("acme", "gw").unwrap().version, 1);
    }
}
