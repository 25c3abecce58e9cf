//! Which provider credential a request carries upstream (spec §3.14).
//!
//! A key the client sent passes through untouched (the request wins over stored keys, our reading of an
//! undocumented precedence). Otherwise the gateway injects the stored key named by `cf-aig-byok-alias`, or the
//! default one. With neither, the request goes as it came and the provider answers for itself.

use gatehouse_shared::providers::CredentialStyle;
use http::HeaderName;
use pingora::http::RequestHeader;

use crate::error::AiGatewayError;
use crate::snapshot::{ProviderKeys, ProviderSecret};

/// A header to set on the upstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InjectedCredential {
    pub name: HeaderName,
    pub value: String,
}

/// The header a credential style uses.
pub(crate) fn credential_header(style: CredentialStyle) -> Option<HeaderName> {
    match style {
        CredentialStyle::Bearer | CredentialStyle::Token | CredentialStyle::Key => {
            Some(http::header::AUTHORIZATION)
        }
        CredentialStyle::Header(name) => HeaderName::from_bytes(name.as_bytes()).ok(),
        CredentialStyle::ClientSigned => None,
    }
}

/// The stored key named by `cf-aig-byok-alias` (400 2040 listing the configured aliases when there is none), or
/// the default one.
pub(crate) fn stored<'k>(
    provider: &str,
    keys: Option<&'k ProviderKeys>,
    alias: Option<&str>,
) -> Result<Option<&'k ProviderSecret>, AiGatewayError> {
    match alias {
        Some(alias) => match keys.and_then(|k| k.by_alias.get(alias)) {
            Some(s) => Ok(Some(s)),
            None => {
                let mut configured: Vec<&str> = keys
                    .map(|k| k.by_alias.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                configured.sort_unstable();
                Err(AiGatewayError::byok_alias_not_found(
                    provider,
                    alias,
                    &configured,
                ))
            }
        },
        None => Ok(keys.and_then(|k| k.default.as_ref())),
    }
}

/// Decides the credential. `keys` are the gateway's stored keys for this provider; `alias` is
/// `cf-aig-byok-alias`.
pub(crate) fn choose(
    provider: &str,
    style: CredentialStyle,
    request: &RequestHeader,
    keys: Option<&ProviderKeys>,
    alias: Option<&str>,
) -> Result<Option<InjectedCredential>, AiGatewayError> {
    let Some(name) = credential_header(style) else {
        // Client-signed requests (AWS SigV4) are signed over their own headers; the gateway must not touch them.
        return Ok(None);
    };
    // A client key in the provider's own header, or in `Authorization` (which every provider's newer SDKs may use,
    // e.g. Anthropic's Python SDK 2.x sends `Authorization: Bearer` instead of `x-api-key`), means "use mine".
    if request.headers.contains_key(&name)
        || request.headers.contains_key(http::header::AUTHORIZATION)
    {
        return Ok(None);
    }
    let Some(secret) = stored(provider, keys, alias)? else {
        return Ok(None);
    };
    let value = match style {
        CredentialStyle::Bearer => format!("Bearer {}", secret.secret),
        CredentialStyle::Token => format!("Token {}", secret.secret),
        CredentialStyle::Key => format!("Key {}", secret.secret),
        CredentialStyle::Header(_) | CredentialStyle::ClientSigned => secret.secret.clone(),
    };
    Ok(Some(InjectedCredential { name, value }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ProviderSecret;

    fn keys() -> ProviderKeys {
        let s = |alias: &str, secret: &str| ProviderSecret {
            id: alias.into(),
            alias: alias.into(),
            secret: secret.into(),
        };
        let mut k = ProviderKeys {
            default: Some(s("default", "sk-default")),
            ..Default::default()
        };
        k.by_alias
            .insert("default".into(), s("default", "sk-default"));
        k.by_alias.insert("prod".into(), s("prod", "sk-prod"));
        k
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/v1/chat/completions", None).unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn a_client_key_wins_over_stored_keys() {
        let got = choose(
            "openai",
            CredentialStyle::Bearer,
            &request(&[("authorization", "Bearer sk-client")]),
            Some(&keys()),
            None,
        );
        assert_eq!(got.unwrap(), None);
        let got = choose(
            "anthropic",
            CredentialStyle::Header("x-api-key"),
            &request(&[("x-api-key", "k")]),
            Some(&keys()),
            Some("prod"),
        );
        assert_eq!(
            got.unwrap(),
            None,
            "even with an alias, the client's key goes"
        );
        let got = choose(
            "anthropic",
            CredentialStyle::Header("x-api-key"),
            &request(&[("authorization", "Bearer sk-ant")]),
            Some(&keys()),
            None,
        );
        assert_eq!(
            got.unwrap(),
            None,
            "a key in Authorization counts for header-style providers too"
        );
    }

    #[test]
    fn stored_keys_are_injected_by_alias_or_default_in_the_providers_style() {
        let got = choose(
            "openai",
            CredentialStyle::Bearer,
            &request(&[]),
            Some(&keys()),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (got.name.as_str(), got.value.as_str()),
            ("authorization", "Bearer sk-default")
        );
        let got = choose(
            "anthropic",
            CredentialStyle::Header("x-api-key"),
            &request(&[]),
            Some(&keys()),
            Some("prod"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (got.name.as_str(), got.value.as_str()),
            ("x-api-key", "sk-prod")
        );
        let got = choose(
            "replicate",
            CredentialStyle::Token,
            &request(&[]),
            Some(&keys()),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(got.value, "Token sk-default");
    }

    #[test]
    fn an_unknown_alias_is_2040_listing_the_configured_ones() {
        let err = choose(
            "openai",
            CredentialStyle::Bearer,
            &request(&[]),
            Some(&keys()),
            Some("staging"),
        )
        .unwrap_err();
        assert_eq!(err.code, 2040);
        assert!(
            err.message.contains("'staging'") && err.message.contains("default, prod"),
            "{}",
            err.message
        );
        let err = choose(
            "openai",
            CredentialStyle::Bearer,
            &request(&[]),
            None,
            Some("x"),
        )
        .unwrap_err();
        assert!(
            err.message.ends_with("Configured aliases: none"),
            "{}",
            err.message
        );
    }

    #[test]
    fn without_any_key_the_request_goes_as_it_came() {
        assert_eq!(
            choose("openai", CredentialStyle::Bearer, &request(&[]), None, None).unwrap(),
            None
        );
        assert_eq!(
            choose(
                "aws-bedrock",
                CredentialStyle::ClientSigned,
                &request(&[]),
                Some(&keys()),
                None
            )
            .unwrap(),
            None
        );
    }
}
