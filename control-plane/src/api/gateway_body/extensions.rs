//! Gatehouse's own gateway fields, unknown to Cloudflare's schema and all optional: the model catalog and
//! `regional_only` of the OpenAI-compatible endpoint, the host names whose requests reach the gateway, CORS, the
//! gateway-wide token limit `tpm_limit`. The identity providers (`identity_providers`) are read by the sibling
//! module `identity`, which shares this module's array, enum-name, host-name and port helpers.
//!
//! Values are normalised where the data plane compares them as text: host names and origins are lower-cased, and
//! an origin's default port is dropped (browsers never send it in `Origin`). Model names are kept as written,
//! since a catalog name must match the client's `model` exactly.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use gatehouse_shared::gateway::{
    CatalogModel, CatalogModelLocation, CatalogModelType, CorsSettings,
};
use gatehouse_shared::providers::{COMPAT_PROVIDER, is_routable_slug};
use serde_json::Value;

use crate::api::validation::{Field, FieldReader, type_name};

/// Most catalog entries per gateway.
pub const MAX_MODELS: usize = 1000;
/// Longest catalog name, in characters.
pub const MAX_MODEL_NAME_CHARS: usize = 128;
/// Longest catalog target, in characters (Bedrock and Vertex model ids are long, but not this long).
pub const MAX_TARGET_CHARS: usize = 512;
/// Most host names per gateway.
pub const MAX_HOSTNAMES: usize = 32;
/// Most allowed origins per gateway.
pub const MAX_ORIGINS: usize = 64;
/// The compat name of a provider whose native slug differs (`perplexity` is `perplexity-ai`, spec §2.1).
const COMPAT_ONLY_PREFIXES: &[&str] = &["perplexity"];

const CHAT_OR_EMBEDDING: &[&str] = &["chat", "embedding"];
const REGIONAL_OR_GLOBAL: &[&str] = &["regional", "global"];

/// `models`: an array of at most [`MAX_MODELS`] `{name, target, type, location, routing?}`, names unique; `routing`
/// (Gatehouse's, issue 15) spreads the name over several targets with a dynamic route `model` element's properties,
/// checked as a route's would be.
pub fn read_models(r: &mut FieldReader<'_>) -> Field<Vec<CatalogModel>> {
    let items = match bounded_array(r, "models", MAX_MODELS, "models") {
        Field::Set(items) => items,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut models = Vec::with_capacity(items.len());
    let mut first_index_of: HashMap<String, usize> = HashMap::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(object) = item.as_object() else {
            r.error_at(
                &["models", &index],
                format!("Expected object, received {}", type_name(item)),
            );
            ok = false;
            continue;
        };
        let mut ir = r.nested_at(&["models", &index], object);
        let name = ir.required_string("name", 1, MAX_MODEL_NAME_CHARS);
        if let Some(name) = &name {
            if let Err(message) = check_model_name(name) {
                ir.error("name", message);
            } else if let Some(first) = first_index_of.get(name.as_str()) {
                ir.error(
                    "name",
                    format!("Duplicate model name '{name}': models.{first} has it already"),
                );
            } else {
                first_index_of.insert(name.clone(), i);
            }
        }
        let target = ir.required_string("target", 1, MAX_TARGET_CHARS);
        if let Some(target) = &target
            && let Err(message) = check_target(target)
        {
            ir.error("target", message);
        }
        let routing = match object.get("routing") {
            None | Some(Value::Null) => None,
            Some(raw) => match &target {
                Some(target) => {
                    match gatehouse_shared::routes::RouteGraph::single_model(
                        target,
                        raw,
                        &is_compat_provider,
                    ) {
                        Ok(_) => Some(raw.clone()),
                        Err(e) => {
                            ir.error("routing", e.message);
                            None
                        }
                    }
                }
                None => None,
            },
        };
        let model_type = ir
            .required_enumeration("type", CHAT_OR_EMBEDDING)
            .and_then(|s| parse_wire_name::<CatalogModelType>(&s));
        let location = ir
            .required_enumeration("location", REGIONAL_OR_GLOBAL)
            .and_then(|s| parse_wire_name::<CatalogModelLocation>(&s));
        let errors = ir.into_errors();
        if !errors.is_empty() {
            r.extend(errors);
            ok = false;
            continue;
        }
        if let (Some(name), Some(target), Some(model_type), Some(location)) =
            (name, target, model_type, location)
        {
            models.push(CatalogModel {
                name,
                target,
                model_type,
                location,
                routing,
            });
        }
    }
    if ok {
        Field::Set(models)
    } else {
        Field::Absent
    }
}

/// `hostnames`: at most [`MAX_HOSTNAMES`] DNS host names, lower-cased, unique.
pub fn read_hostnames(r: &mut FieldReader<'_>) -> Field<Vec<String>> {
    let items = match bounded_array(r, "hostnames", MAX_HOSTNAMES, "host names") {
        Field::Set(items) => items,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut hostnames: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(raw) = item.as_str() else {
            r.error_at(
                &["hostnames", &index],
                format!("Expected string, received {}", type_name(item)),
            );
            ok = false;
            continue;
        };
        match hostname(raw) {
            Ok(host) => {
                if let Some(first) = hostnames.iter().position(|h| *h == host) {
                    r.error_at(
                        &["hostnames", &index],
                        format!("Duplicate host name '{host}': hostnames.{first} has it already"),
                    );
                    ok = false;
                }
                hostnames.push(host);
            }
            Err(message) => {
                r.error_at(&["hostnames", &index], format!("'{raw}': {message}"));
                ok = false;
                // Keeps the indexes of later duplicates right.
                hostnames.push(String::new());
            }
        }
    }
    if ok {
        Field::Set(hostnames)
    } else {
        Field::Absent
    }
}

/// `cors`: `{allowed_origins: [..]}` with at most [`MAX_ORIGINS`] origins (see [`origin`]).
pub fn read_cors(r: &mut FieldReader<'_>) -> Field<CorsSettings> {
    let object = match r.object("cors") {
        Field::Set(object) => object,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut cr = r.nested("cors", object);
    let items: &[Value] = match bounded_array(&mut cr, "allowed_origins", MAX_ORIGINS, "origins") {
        Field::Set(items) => items,
        Field::Null => {
            cr.error(
                "allowed_origins",
                "Expected array of origins, received null",
            );
            &[]
        }
        Field::Absent => {
            // A present value was refused already (wrong type, too many); only a missing one is reported here.
            if !object.contains_key("allowed_origins") {
                cr.error(
                    "allowed_origins",
                    "Required: expected array of origins, e.g. [\"https://app.example.com\"]",
                );
            }
            &[]
        }
    };
    let mut allowed_origins = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        match item.as_str().map(origin) {
            Some(Ok(o)) => allowed_origins.push(o),
            Some(Err(message)) => cr.error_at(
                &["allowed_origins", &index],
                format!("'{}': {message}", item.as_str().unwrap_or_default()),
            ),
            None => cr.error_at(
                &["allowed_origins", &index],
                format!("Expected string, received {}", type_name(item)),
            ),
        }
    }
    let errors = cr.into_errors();
    if errors.is_empty() {
        Field::Set(CorsSettings { allowed_origins })
    } else {
        r.extend(errors);
        Field::Absent
    }
}

/// Largest `tpm_limit` (a bound keeps the counters' arithmetic safe; no deployment comes near it).
pub const MAX_TPM_LIMIT: i64 = 1_000_000_000_000;

/// `tpm_limit`: tokens per minute across every caller of the gateway, a whole number from 1, or null (no limit).
pub fn read_tpm_limit(r: &mut FieldReader<'_>) -> Field<u64> {
    match r.int("tpm_limit", 1, MAX_TPM_LIMIT) {
        Field::Set(n) => u64::try_from(n).map_or(Field::Absent, Field::Set),
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

/// An array of at most `max` items; more is an error naming the field.
pub(super) fn bounded_array<'a>(
    r: &mut FieldReader<'a>,
    name: &str,
    max: usize,
    what: &str,
) -> Field<&'a Vec<Value>> {
    match r.array(name) {
        Field::Set(items) if items.len() > max => {
            r.error(
                name,
                format!("At most {max} {what} per gateway, received {}", items.len()),
            );
            Field::Absent
        }
        other => other,
    }
}

/// An enum value from its serde name (already checked against the allowed names).
pub(super) fn parse_wire_name<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(Value::String(s.to_owned())).ok()
}

/// A catalog name is what a client sends as `model`: a plain name, not a `{provider}/{model}` pair.
pub fn check_model_name(name: &str) -> Result<(), String> {
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("A model name must not contain whitespace".into());
    }
    if name.contains('/') {
        return Err(
            "A model name is a plain name without '/' (the provider goes in 'target')".into(),
        );
    }
    Ok(())
}

/// A catalog target: `{provider}/{model}` with a provider the compat endpoint can route (a built-in slug,
/// `custom-{slug}`, or a compat-only prefix such as `perplexity`) and a non-empty model.
pub fn check_target(target: &str) -> Result<(), String> {
    let Some((provider, model)) = target.split_once('/') else {
        return Err(format!(
            "Expected '{{provider}}/{{model}}' (e.g. 'openai/gpt-4o-mini'), received '{target}'"
        ));
    };
    if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("A target must not contain whitespace".into());
    }
    if !is_compat_provider(provider) {
        return Err(format!(
            "Unknown provider '{provider}': expected a provider slug such as 'openai', 'anthropic' or \
             'custom-{{slug}}'"
        ));
    }
    if model.is_empty() {
        return Err(format!(
            "The model after '{provider}/' is missing (e.g. '{provider}/model-name')"
        ));
    }
    Ok(())
}

/// Whether `/compat` routes `{prefix}/…`: every routable slug but `compat` itself, and the compat-only names.
fn is_compat_provider(prefix: &str) -> bool {
    COMPAT_ONLY_PREFIXES.contains(&prefix)
        || (prefix != COMPAT_PROVIDER && is_routable_slug(prefix))
}

/// A host name a gateway may claim, lower-cased: at least two labels of letters, digits and hyphens (1 to 63 each,
/// no hyphen at either end), 253 characters at most, no port, no wildcard, not an IP address.
pub fn hostname(raw: &str) -> Result<String, String> {
    if raw.contains('/') {
        return Err("expected a host name such as 'ai.example.com', not a URL".into());
    }
    if raw.contains(':') {
        return Err("a host name has no port".into());
    }
    if raw.contains('*') {
        return Err("wildcard host names are not supported".into());
    }
    let host = raw.to_ascii_lowercase();
    check_dns_name(&host, 2)?;
    Ok(host)
}

/// The labels rule of [`hostname`], with at least `min_labels` labels.
pub(super) fn check_dns_name(host: &str, min_labels: usize) -> Result<(), String> {
    if host.is_empty() || host.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < min_labels {
        return Err(format!(
            "a host name has at least {min_labels} labels (e.g. 'ai.example.com')"
        ));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("each label has 1 to 63 characters".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(
                "labels hold only letters, digits and hyphens (internationalised names in their xn-- form)"
                    .into(),
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label does not begin or end with a hyphen".into());
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("an IP address is not a host name".into());
    }
    Ok(())
}

/// An allowed origin, normalised: `*`; `http(s)://host[:port]` (a host name, `localhost`, an IPv4 address or a
/// bracketed IPv6 address); or `http(s)://*.example.com[:port]`, one leading wildcard label over a name of at least
/// two labels. No path (not even `/`), query, fragment or user info. Lower-cased; a default port is dropped.
pub fn origin(raw: &str) -> Result<String, String> {
    if raw == "*" {
        return Ok(raw.to_owned());
    }
    let lower = raw.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(
            "expected an origin such as 'https://app.example.com', 'https://*.example.com' or '*'"
                .into(),
        );
    };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return Err("an origin's scheme is http or https".into()),
    };
    if rest.contains(['/', '?', '#']) {
        return Err("an origin has no path, query or fragment (not even a trailing '/')".into());
    }
    if rest.contains('@') {
        return Err("an origin has no user name or password".into());
    }
    let (host, port) = split_port(rest)?;
    if let Some(base) = host.strip_prefix("*.") {
        if base.contains('*') {
            return Err("a wildcard is one leading label only: 'https://*.example.com'".into());
        }
        check_dns_name(base, 2)
            .map_err(|e| format!("after '*.': {e} (a wildcard covers subdomains of a domain)"))?;
    } else if host.contains('*') {
        return Err("a wildcard is one leading label only: 'https://*.example.com'".into());
    } else if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>()
            .map_err(|_| format!("'{host}' is not an IPv6 address"))?;
    } else if host.parse::<Ipv4Addr>().is_err() {
        check_dns_name(host, 1)?;
    }
    Ok(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// `host[:port]` → host and port; a bracketed IPv6 host keeps its brackets.
pub(super) fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => match &authority[end + 1..] {
                "" => (&authority[..=end], None),
                tail => match tail.strip_prefix(':') {
                    Some(port) => (&authority[..=end], Some(port)),
                    None => return Err("expected ':port' after an IPv6 address".into()),
                },
            },
            None => return Err("an IPv6 address is closed by ']'".into()),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(format!("'{p}' is not a port (1 to 65535)")),
        },
    };
    if host.is_empty() {
        return Err("an origin names a host".into());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_lower_cased_and_checked_label_by_label() {
        assert_eq!(hostname("AI.Example.COM").unwrap(), "ai.example.com");
        assert_eq!(hostname("a-1.b2.example").unwrap(), "a-1.b2.example");
        assert_eq!(
            hostname("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        let long_label = format!("{}.example.com", "a".repeat(64));
        let long_name = format!("{}.com", vec!["a".repeat(63); 4].join("."));
        for bad in [
            "",
            "localhost",
            "example.com.",
            ".example.com",
            "a..example.com",
            "-a.example.com",
            "a-.example.com",
            "a_b.example.com",
            "ai.example.com:8443",
            "*.example.com",
            "https://ai.example.com",
            "ai.example.com/v1",
            "10.0.0.1",
            "ai example.com",
            "bücher.example",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(hostname(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn origins_are_exact_one_leading_wildcard_or_the_literal_star() {
        for (raw, normal) in [
            ("*", "*"),
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.com", "https://app.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://app.example.com:443", "http://app.example.com:443"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://[::1]:5173", "http://[::1]:5173"),
            ("https://*.example.com", "https://*.example.com"),
        ] {
            assert_eq!(origin(raw).as_deref(), Ok(normal), "{raw}");
        }
        for bad in [
            "",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q",
            "https://user@app.example.com",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://",
            "https://*.com",
            "https://*",
            "https://a.*.example.com",
            "https://*.*.example.com",
            "https://app*.example.com",
            "https://[::1",
            "https://[zz]",
            "*.example.com",
        ] {
            assert!(origin(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn targets_name_a_routable_provider_and_a_model() {
        for ok in [
            "openai/gpt-4o-mini",
            "google-vertex-ai/google/gemini-2.5-pro",
            "aws-bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "workers-ai/@cf/meta/llama-3.1-8b-instruct",
            "perplexity/sonar",
            "perplexity-ai/sonar",
            "custom-my-llm/model",
        ] {
            assert_eq!(check_target(ok), Ok(()), "{ok}");
        }
        for bad in [
            "gpt-4o",
            "openai/",
            "/gpt-4o",
            "nope/gpt-4o",
            "compat/openai/gpt-4o",
            "custom-/x",
            "openai/gpt 4o",
        ] {
            assert!(check_target(bad).is_err(), "{bad:?} should be refused");
        }
    }
    #[test]
    fn model_names_are_plain() {
        assert!(check_model_name("gpt-5").is_ok());
        assert!(check_model_name("claude-sonnet-4.5:latest").is_ok());
        assert!(check_model_name("openai/gpt-5").is_err());
        assert!(check_model_name("gpt 5").is_err());
    }
}
