//! The identity providers whose JWTs authenticate a gateway's callers (`identity_providers`): issuer, audience,
//! JWKS URL, algorithms, claims, DPoP mode and leeway.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use gatehouse_shared::gateway::{DpopMode, IdentityProvider, JwtAlgorithm};
use serde_json::Value;

use super::extensions::{bounded_array, check_dns_name, parse_wire_name, split_port};
use crate::api::validation::{Field, FieldReader, type_name};

/// Most identity providers per gateway.
pub const MAX_IDENTITY_PROVIDERS: usize = 8;
/// Longest issuer and audience value, in characters.
const MAX_ISSUER_CHARS: usize = 512;
/// Most audience values of one provider.
const MAX_AUDIENCES: usize = 16;
/// Longest JWKS URL, in characters.
const MAX_JWKS_URL_CHARS: usize = 2048;
/// Longest claim name, in characters.
const MAX_CLAIM_CHARS: usize = 128;
/// Largest clock-skew allowance, in seconds (a DPoP proof stays usable, and remembered, for twice this).
pub const MAX_LEEWAY_SECONDS: i64 = 300;
const DPOP_MODES: &[&str] = &["off", "optional", "required"];

/// `identity_providers`: at most [`MAX_IDENTITY_PROVIDERS`] `{issuer, audience, jwks_url, algorithms, user_claim,
/// team_claim, dpop, leeway_seconds}`, issuers unique. Defaults: algorithms `["RS256", "ES256"]`, user claim
/// `sub`, no team claim, DPoP `optional`, 60 s of leeway.
pub fn read_identity_providers(r: &mut FieldReader<'_>) -> Field<Vec<IdentityProvider>> {
    const FIELD: &str = "identity_providers";
    let items = match bounded_array(r, FIELD, MAX_IDENTITY_PROVIDERS, "identity providers") {
        Field::Set(items) => items,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut providers = Vec::with_capacity(items.len());
    let mut first_index_of: HashMap<String, usize> = HashMap::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(object) = item.as_object() else {
            r.error_at(
                &[FIELD, &index],
                format!("Expected object, received {}", type_name(item)),
            );
            ok = false;
            continue;
        };
        let mut ir = r.nested_at(&[FIELD, &index], object);
        let issuer = ir.required_string("issuer", 1, MAX_ISSUER_CHARS);
        if let Some(issuer) = &issuer {
            if let Err(message) = check_issuer(issuer) {
                ir.error("issuer", message);
            } else if let Some(first) = first_index_of.get(issuer.as_str()) {
                ir.error(
                    "issuer",
                    format!(
                        "Duplicate issuer '{issuer}': identity_providers.{first} has it already"
                    ),
                );
            } else {
                first_index_of.insert(issuer.clone(), i);
            }
        }
        let audience = read_audience(&mut ir);
        let jwks_url = ir.required_string("jwks_url", 1, MAX_JWKS_URL_CHARS);
        if let Some(url) = &jwks_url
            && let Err(message) = check_jwks_url(url)
        {
            ir.error("jwks_url", format!("'{url}': {message}"));
        }
        let algorithms = read_algorithms(&mut ir);
        let user_claim = read_claim(&mut ir, "user_claim");
        let team_claim = read_claim(&mut ir, "team_claim");
        let dpop = match ir.enumeration("dpop", DPOP_MODES) {
            Field::Set(s) => parse_wire_name::<DpopMode>(&s),
            _ => Some(DpopMode::default()),
        };
        let leeway_seconds = match ir.int("leeway_seconds", 0, MAX_LEEWAY_SECONDS) {
            Field::Set(n) => u64::try_from(n).ok(),
            _ => Some(IdentityProvider::DEFAULT_LEEWAY_SECONDS),
        };
        let errors = ir.into_errors();
        if !errors.is_empty() {
            r.extend(errors);
            ok = false;
            continue;
        }
        if let (Some(issuer), Some(audience), Some(jwks_url), Some(dpop), Some(leeway_seconds)) =
            (issuer, audience, jwks_url, dpop, leeway_seconds)
        {
            providers.push(IdentityProvider {
                issuer,
                audience,
                jwks_url,
                algorithms: algorithms.unwrap_or_else(IdentityProvider::default_algorithms),
                user_claim: user_claim
                    .unwrap_or_else(|| IdentityProvider::DEFAULT_USER_CLAIM.to_owned()),
                team_claim,
                dpop,
                leeway_seconds,
            });
        }
    }
    if ok {
        Field::Set(providers)
    } else {
        Field::Absent
    }
}

/// `audience`: a string, or an array of 1 to [`MAX_AUDIENCES`] strings; required.
fn read_audience(r: &mut FieldReader<'_>) -> Option<Vec<String>> {
    let values: Vec<&Value> = match r.raw("audience") {
        Field::Set(Value::Array(items)) if items.is_empty() || items.len() > MAX_AUDIENCES => {
            r.error(
                "audience",
                format!(
                    "Expected 1 to {MAX_AUDIENCES} audiences, received {}",
                    items.len()
                ),
            );
            return None;
        }
        Field::Set(Value::Array(items)) => items.iter().collect(),
        Field::Set(one @ Value::String(_)) => vec![one],
        Field::Set(other) => {
            r.error(
                "audience",
                format!(
                    "Expected string or array of strings, received {}",
                    type_name(other)
                ),
            );
            return None;
        }
        Field::Null | Field::Absent => {
            r.error(
                "audience",
                "Required: expected the token audience ('aud') as a string or an array of strings",
            );
            return None;
        }
    };
    let mut audience = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        match value.as_str() {
            Some(a)
                if !a.is_empty()
                    && a.chars().count() <= MAX_ISSUER_CHARS
                    && !a.chars().any(char::is_control) =>
            {
                audience.push(a.to_owned());
            }
            Some(_) => r.error_at(
                &["audience", &i.to_string()],
                format!(
                    "An audience has 1 to {MAX_ISSUER_CHARS} characters, without control characters"
                ),
            ),
            None => r.error_at(
                &["audience", &i.to_string()],
                format!("Expected string, received {}", type_name(value)),
            ),
        }
    }
    Some(audience)
}

/// `algorithms`: 1 to 7 distinct names of [`JwtAlgorithm`]; absent or null keeps the default.
fn read_algorithms(r: &mut FieldReader<'_>) -> Option<Vec<JwtAlgorithm>> {
    let items = match r.array("algorithms") {
        Field::Set(items) => items,
        _ => return None,
    };
    let allowed: Vec<&str> = JwtAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
    if items.is_empty() {
        r.error(
            "algorithms",
            format!("Expected at least one of {}", allowed.join(", ")),
        );
        return None;
    }
    let mut algorithms = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        match item.as_str().map(|name| (name, JwtAlgorithm::from_name(name))) {
            Some((_, Some(a))) if algorithms.contains(&a) => r.error_at(
                &["algorithms", &index],
                format!("Duplicate algorithm '{}'", a.as_str()),
            ),
            Some((_, Some(a))) => algorithms.push(a),
            Some((name, None)) => r.error_at(
                &["algorithms", &index],
                format!(
                    "Unsupported algorithm '{name}': expected one of {} (asymmetric only: keys come from the JWKS)",
                    allowed.join(", ")
                ),
            ),
            None => r.error_at(
                &["algorithms", &index],
                format!("Expected string, received {}", type_name(item)),
            ),
        }
    }
    Some(algorithms)
}

/// A claim name (`user_claim`, `team_claim`): 1 to 128 characters, no whitespace. `None` when absent or null.
fn read_claim(r: &mut FieldReader<'_>, name: &str) -> Option<String> {
    match r.string(name, 1, MAX_CLAIM_CHARS) {
        Field::Set(claim) if claim.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            r.error(name, "A claim name has no whitespace");
            None
        }
        Field::Set(claim) => Some(claim),
        _ => None,
    }
}

/// An issuer is compared with a token's `iss` exactly: no whitespace, and not Gatehouse's own token issuer.
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    if issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("An issuer has no whitespace (it must equal the tokens' 'iss' exactly)".into());
    }
    if issuer == gatehouse_shared::token::TOKEN_ISSUER {
        return Err(format!(
            "'{issuer}' is the issuer of Gatehouse's own tokens, which every gateway verifies already"
        ));
    }
    Ok(())
}

/// A JWKS URL: `https://host[:port]/path[?query]`, or `http://` to a loopback host (`localhost`, `127.0.0.0/8`,
/// `[::1]`) for a provider on the same machine. No user info, no fragment, no whitespace.
pub fn check_jwks_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL has no whitespace".into());
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(
            "expected an https:// URL, e.g. 'https://idp.example.com/.well-known/jwks.json'".into(),
        );
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err("the scheme is https (or http to a loopback address)".into()),
    };
    if rest.contains('#') {
        return Err("a JWKS URL has no fragment".into());
    }
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("a JWKS URL has no user name or password".into());
    }
    let (host, _port) = split_port(authority)?;
    let host = host.to_ascii_lowercase();
    let loopback = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("'{host}' is not an IPv6 address"))?
            .is_loopback()
    } else if let Ok(v4) = host.parse::<Ipv4Addr>() {
        v4.is_loopback()
    } else {
        check_dns_name(&host, 1)?;
        host == "localhost"
    };
    if !https && !loopback {
        return Err(
            "plain http is allowed only to a loopback address (localhost, 127.0.0.1, [::1]); use https".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        for ok in [
            "https://idp.example.com/.well-known/jwks.json",
            "https://idp.example.com:8443/realms/x/protocol/openid-connect/certs",
            "https://login.example.com/keys?appid=1",
            "HTTPS://IdP.Example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9000/jwks",
            "https://keycloak/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "idp.example.com/jwks",
            "ftp://idp.example.com/jwks",
            "http://idp.example.com/jwks",
            "http://10.0.0.1/jwks",
            "https://user:pw@idp.example.com/jwks",
            "https://idp.example.com/jwks#keys",
            "https://idp.example.com:0/jwks",
            "https:///jwks",
            "https://idp example.com/jwks",
            "https://[zz]/jwks",
        ] {
            assert!(check_jwks_url(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn issuers_are_exact_and_not_gatehouses_own() {
        assert!(check_issuer("https://idp.example.com/realms/acme").is_ok());
        assert!(check_issuer("https://idp.example.com/ x").is_err());
        assert!(check_issuer(gatehouse_shared::token::TOKEN_ISSUER).is_err());
    }
}
