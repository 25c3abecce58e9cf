//! Builds the config documents nodes apply (design §2) from the database: one [`GatewayConfigDocument`] per
//! gateway and the [`DeploymentDocument`] (token verification keys and revocations).
//!
//! Builders take the version as an argument: the publisher takes it from the counter in the same transaction as
//! the reads (see `store/config_versions.rs`). The content hash covers everything but the version, so the
//! reconciler can compare what the bus holds with what the database would build without taking a version.

use std::collections::HashMap;

use gatehouse_bus::StoredDocument;
use gatehouse_shared::access::{AccessEntries, SubjectEntry, VirtualKeyEntry};
use gatehouse_shared::config::{
    CustomProviderEntry, DOCUMENT_SCHEMA, DeploymentDocument, GatewayConfigDocument, GatewayKey,
    ProviderConfigEntry, content_hash,
};
use gatehouse_shared::token::VerificationKey;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::store::{access, gateways as gateway_store, now_ms, tokens as token_store};

/// The gateway's stored provider keys, secrets still sealed.
pub fn provider_config_entries(
    conn: &mut AnyConnection,
    key: &GatewayKey,
) -> Result<Vec<ProviderConfigEntry>, Error> {
    let rows =
        crate::store::provider_configs::all_for_gateway(conn, &key.account_id, &key.gateway_id)?;
    Ok(rows
        .into_iter()
        .map(|r| ProviderConfigEntry {
            id: r.id,
            provider_slug: r.provider_slug,
            alias: r.alias,
            default_config: r.default_config,
            // Still sealed: only data-plane nodes open it, when they compile the document.
            sealed_secret: r.sealed_secret,
            rate_limit: r.rate_limit,
            rate_limit_period: r.rate_limit_period,
        })
        .collect())
}

/// The account's custom providers.
pub fn custom_provider_entries(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<CustomProviderEntry>, Error> {
    let rows = crate::store::custom_providers::enabled_for_account(conn, account_id)?;
    Ok(rows
        .into_iter()
        .map(|r| CustomProviderEntry {
            id: r.id,
            slug: r.slug,
            base_url: r.base_url,
            enable: r.enable,
        })
        .collect())
}

/// The document of one gateway at `version`, or `None` when the gateway does not exist (a tombstone).
pub fn gateway_document(
    conn: &mut AnyConnection,
    key: &GatewayKey,
    version: i64,
) -> Result<Option<GatewayConfigDocument>, Error> {
    let Some((record, cache_generation)) =
        gateway_store::get_with_cache_generation(conn, &key.account_id, &key.gateway_id)?
    else {
        return Ok(None);
    };
    Ok(Some(GatewayConfigDocument {
        schema: DOCUMENT_SCHEMA,
        key: key.clone(),
        version,
        internal_id: record.internal_id,
        is_default: record.is_default,
        settings: record.settings,
        provider_configs: provider_config_entries(conn, key)?,
        custom_providers: custom_provider_entries(conn, &key.account_id)?,
        cache_generation,
        access: access_entries(conn, key, now_ms())?,
        routes: crate::store::routes::deployed_entries(conn, key)?,
    }))
}

/// The account's subjects as the gateway `key`'s document carries them: the keys that work at `now_ms` (not
/// revoked, not expired) and may use this gateway (their `gateways` is empty or names it), and every user and team
/// of the account, each list by id so that the same state always hashes the same. A key that names no team of its
/// own carries its user's team, so the team's limits apply to the user's keys; each user carries its team too, for
/// callers an identity provider's token names (whose token may name no team). An expiry passing changes the
/// document (the key leaves it) without any write: the next reconciler pass republishes it, and nodes check
/// `expires_at_ms` themselves in the meantime.
pub fn access_entries(
    conn: &mut AnyConnection,
    key: &GatewayKey,
    now_ms: i64,
) -> Result<AccessEntries, Error> {
    let users = access::users::all_for_account(conn, &key.account_id)?;
    let teams = access::teams::all_for_account(conn, &key.account_id)?;
    let team_of_user: HashMap<&str, &str> = users
        .iter()
        .filter_map(|u| Some((u.id.as_str(), u.team_id.as_deref()?)))
        .collect();
    let keys = access::keys::live(conn, &key.account_id, now_ms)?
        .into_iter()
        .filter(|k| k.gateways.is_empty() || k.gateways.contains(&key.gateway_id))
        .map(|k| VirtualKeyEntry {
            team_id: k.team_id.or_else(|| {
                let user = k.user_id.as_deref()?;
                team_of_user.get(user).map(|t| (*t).to_owned())
            }),
            id: k.id,
            name: k.name,
            secret_hash: k.secret_hash,
            models: k.models,
            user_id: k.user_id,
            expires_at_ms: k.expires_at_ms,
            limits: k.limits,
        })
        .collect();
    Ok(AccessEntries {
        keys,
        users: users
            .into_iter()
            .map(|u| SubjectEntry {
                id: u.id,
                name: u.name,
                limits: u.limits,
                team_id: u.team_id,
            })
            .collect(),
        teams: teams
            .into_iter()
            .map(|t| SubjectEntry {
                id: t.id,
                name: t.name,
                limits: t.limits,
                team_id: None,
            })
            .collect(),
    })
}

/// The deployment document at `version`: every active signing key's public half, and the ids of revoked tokens
/// that have not expired at `now_ms`.
pub fn deployment_document(
    conn: &mut AnyConnection,
    version: i64,
    now_ms: i64,
) -> Result<DeploymentDocument, Error> {
    let mut verification_keys: Vec<VerificationKey> = token_store::active_signing_keys(conn)?
        .into_iter()
        .map(|row| VerificationKey {
            kid: row.kid,
            public_key: row.public_key,
        })
        .collect();
    // A stable order, so the same keys always hash the same.
    verification_keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    Ok(DeploymentDocument {
        schema: DOCUMENT_SCHEMA,
        version,
        verification_keys,
        revoked_tokens: token_store::revoked_unexpired_ids(conn, now_ms)?,
    })
}

/// A gateway document, serialised for the bus with its content hash.
pub fn stored_gateway(document: &GatewayConfigDocument) -> Result<StoredDocument, Error> {
    let versionless = GatewayConfigDocument {
        version: 0,
        ..document.clone()
    };
    Ok(StoredDocument {
        version: document.version,
        hash: hash_of(&versionless)?,
        body: to_json(document)?,
    })
}

/// The deployment document, serialised for the bus with its content hash.
pub fn stored_deployment(document: &DeploymentDocument) -> Result<StoredDocument, Error> {
    let versionless = DeploymentDocument {
        version: 0,
        ..document.clone()
    };
    Ok(StoredDocument {
        version: document.version,
        hash: hash_of(&versionless)?,
        body: to_json(document)?,
    })
}

fn to_json<T: serde::Serialize>(document: &T) -> Result<String, Error> {
    serde_json::to_string(document)
        .map_err(|e| Error::Internal(format!("a config document does not serialise: {e}")))
}

fn hash_of<T: serde::Serialize>(document: &T) -> Result<String, Error> {
    Ok(content_hash(to_json(document)?.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::gateway::GatewaySettings;

    fn document(version: i64, authentication: bool) -> GatewayConfigDocument {
        let mut settings = GatewaySettings::for_default_gateway();
        settings.authentication = authentication;
        GatewayConfigDocument {
            schema: DOCUMENT_SCHEMA,
            key: GatewayKey::new("acme", "prod"),
            version,
            internal_id: "i-1".into(),
            is_default: false,
            settings,
            provider_configs: vec![],
            custom_providers: vec![],
            cache_generation: 0,
            access: Default::default(),
            routes: Vec::new(),
        }
    }

    #[test]
    fn the_content_hash_ignores_the_version_and_follows_the_content() {
        let v1 = stored_gateway(&document(1, true)).unwrap();
        let v2 = stored_gateway(&document(2, true)).unwrap();
        let changed = stored_gateway(&document(3, false)).unwrap();
        assert_eq!(v1.hash, v2.hash, "same content, different version");
        assert_ne!(v1.hash, changed.hash);
        let invalidated = GatewayConfigDocument {
            cache_generation: 1,
            ..document(1, true)
        };
        assert_ne!(
            v1.hash,
            stored_gateway(&invalidated).unwrap().hash,
            "a new cache generation must reach the nodes"
        );
        assert_eq!((v1.version, v2.version), (1, 2));
        let parsed: GatewayConfigDocument = serde_json::from_str(&v2.body).unwrap();
        assert_eq!(parsed, document(2, true), "the body carries the version");
    }

    #[test]
    fn gateway_documents_carry_gatehouse_extensions_only_when_set() {
        use gatehouse_shared::gateway::{
            CatalogModel, CatalogModelLocation, CatalogModelType, CorsSettings,
        };
        let plain = stored_gateway(&document(1, true)).unwrap();
        let body: serde_json::Value = serde_json::from_str(&plain.body).unwrap();
        for field in [
            "models",
            "regional_only",
            "hostnames",
            "cors",
            "identity_providers",
        ] {
            assert!(
                body["settings"].get(field).is_none(),
                "{field} must be absent when unset: {body}"
            );
        }
        let mut extended = document(1, true);
        extended.settings.models = Some(vec![CatalogModel {
            name: "gpt-5".into(),
            target: "openai/gpt-5".into(),
            model_type: CatalogModelType::Chat,
            location: CatalogModelLocation::Global,
            routing: None,
        }]);
        extended.settings.regional_only = Some(true);
        extended.settings.hostnames = Some(vec!["ai.example.com".into()]);
        extended.settings.cors = Some(CorsSettings {
            allowed_origins: vec!["https://*.example.com".into()],
        });
        let stored = stored_gateway(&extended).unwrap();
        assert_ne!(stored.hash, plain.hash, "the extensions reach the nodes");
        let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
        assert_eq!(
            body["settings"]["models"],
            serde_json::json!([{"name": "gpt-5", "target": "openai/gpt-5", "type": "chat", "location": "global"}])
        );
        assert_eq!(body["settings"]["regional_only"], true);
        assert_eq!(
            body["settings"]["hostnames"],
            serde_json::json!(["ai.example.com"])
        );
        assert_eq!(
            body["settings"]["cors"]["allowed_origins"],
            serde_json::json!(["https://*.example.com"])
        );
        let parsed: GatewayConfigDocument = serde_json::from_str(&stored.body).unwrap();
        assert_eq!(parsed, extended);
    }

    #[test]
    fn access_entries_reach_the_hash_and_are_absent_when_empty() {
        use gatehouse_shared::access::{Limits, VirtualKeyEntry};
        let plain = stored_gateway(&document(1, true)).unwrap();
        let body: serde_json::Value = serde_json::from_str(&plain.body).unwrap();
        assert!(body.get("access").is_none(), "{body}");
        let with_key = |hash: &str| {
            let mut doc = document(1, true);
            doc.access.keys.push(VirtualKeyEntry {
                id: "k1".into(),
                name: "ci".into(),
                secret_hash: hash.into(),
                models: vec!["openai/*".into()],
                user_id: None,
                team_id: None,
                expires_at_ms: Some(1),
                limits: Limits {
                    rpm: Some(5),
                    ..Limits::default()
                },
            });
            doc
        };
        let a = stored_gateway(&with_key("h1")).unwrap();
        assert_ne!(a.hash, plain.hash, "a new key reaches the nodes");
        assert_ne!(
            a.hash,
            stored_gateway(&with_key("h2")).unwrap().hash,
            "so does a rotation"
        );
        let again = GatewayConfigDocument {
            version: 7,
            ..with_key("h1")
        };
        assert_eq!(a.hash, stored_gateway(&again).unwrap().hash);
        let parsed: GatewayConfigDocument = serde_json::from_str(&a.body).unwrap();
        assert_eq!(parsed, with_key("h1"));
    }

    #[test]
    fn deployment_hashes_follow_keys_and_revocations_not_the_version() {
        let doc = |version, revoked: &[&str]| DeploymentDocument {
            schema: DOCUMENT_SCHEMA,
            version,
            verification_keys: vec![VerificationKey {
                kid: "key-1".into(),
                public_key: "pk".into(),
            }],
            revoked_tokens: revoked.iter().map(|s| (*s).to_owned()).collect(),
        };
        let a = stored_deployment(&doc(1, &["t1"])).unwrap();
        let b = stored_deployment(&doc(9, &["t1"])).unwrap();
        let c = stored_deployment(&doc(9, &["t1", "t2"])).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_ne!(b.hash, c.hash);
    }
}
