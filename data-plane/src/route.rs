//! Where a request goes: from `/{provider}/{rest}` to an upstream scheme, host, port and path.
//!
//! Pure logic over the provider table (`gatehouse_shared::providers`), operator overrides and the gateway's custom
//! providers; no I/O. Placeholders in a base (`{resource}`, `{deployment}`, `{service}`, `{region}`,
//! `{account_id}`) are filled from the request path. Values that land in a host name are checked against a strict
//! alphabet first: a client must never be able to steer the gateway to a host of its choosing.

use std::collections::HashMap;

use gatehouse_shared::providers::{
    CredentialStyle, PROVIDERS, PathRule, ProviderSpec, custom_slug, provider,
};

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub tls: bool,
    /// Host name or IP literal (without brackets), for DNS, SNI and the `Host` header.
    pub host: String,
    pub port: u16,
    /// `Host` header value: the host, plus the port when it is not the scheme's default.
    pub authority: String,
    /// Path and query sent upstream, starting with `/`.
    pub path_and_query: String,
    pub credential: CredentialStyle,
}

impl UpstreamTarget {
    /// `http(s)://host[:port]/path?query` → where a request goes (an IPv6 host in brackets): the JWKS fetcher's
    /// and the OTLP exporter's URLs. No user info, no whitespace or control characters in the path.
    pub(crate) fn from_url(url: &str) -> Option<UpstreamTarget> {
        let (scheme, rest) = url.trim().split_once("://")?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let rest = rest.split('#').next()?;
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => default_port,
                None => return None,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() || port == 0 || path.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return None;
        }
        let path_and_query = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Some(UpstreamTarget {
            tls,
            host: host.to_ascii_lowercase(),
            port,
            authority: authority.to_ascii_lowercase(),
            path_and_query,
            credential: CredentialStyle::Bearer,
        })
    }
}

/// Why a request has no upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown provider")]
    UnknownProvider,
    #[error("{0}")]
    BadPath(&'static str),
}

/// A parsed `scheme://host[:port]/path` base that may hold placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BaseUrl {
    tls: bool,
    host: String,
    port: Option<u16>,
    /// Without a trailing slash; empty for the root.
    path: String,
}

impl BaseUrl {
    fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return None;
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (h.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.parse().ok()?)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            tls,
            host,
            port,
            path: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// One routable provider: its base and rules.
#[derive(Debug, Clone)]
struct ProviderRoute {
    base: BaseUrl,
    credential: CredentialStyle,
    path_rule: PathRule,
}

/// Built-in providers with operator overrides applied. Built once at start.
#[derive(Debug, Clone)]
pub struct UpstreamTable {
    providers: HashMap<&'static str, ProviderRoute>,
}

impl UpstreamTable {
    /// The built-in table with `overrides` (`slug` → base URL) applied. An override keeps the provider's credential
    /// style and placeholder rules; its path rule follows its own base (a base ending in `/v1` drops a duplicate
    /// `v1/`).
    pub fn new(overrides: &[(String, String)]) -> Result<Self, String> {
        let mut providers = HashMap::new();
        for spec in PROVIDERS {
            let base = BaseUrl::parse(spec.upstream_base)
                .ok_or_else(|| format!("bad built-in base {}", spec.slug))?;
            providers.insert(
                spec.slug,
                ProviderRoute {
                    base,
                    credential: spec.credential,
                    path_rule: spec.path_rule,
                },
            );
        }
        for (slug, url) in overrides {
            let spec: &ProviderSpec = provider(slug)
                .ok_or_else(|| format!("unknown provider {slug:?} in an override"))?;
            let base = BaseUrl::parse(url)
                .ok_or_else(|| format!("the override of {slug} is not an http(s) URL: {url}"))?;
            let path_rule = if spec.path_rule == PathRule::EnsureLeadingV1 {
                PathRule::EnsureLeadingV1
            } else if base.path.ends_with("/v1") {
                PathRule::DropLeadingV1
            } else {
                PathRule::Verbatim
            };
            providers.insert(
                spec.slug,
                ProviderRoute {
                    base,
                    credential: spec.credential,
                    path_rule,
                },
            );
        }
        Ok(Self { providers })
    }

    /// Resolves `provider` and the path after it (`rest`, without a leading `/`) plus the query (without `?`).
    /// `custom_base` is the gateway's custom provider base for `custom-{slug}` providers.
    pub fn route(
        &self,
        provider_slug: &str,
        rest: &str,
        query: Option<&str>,
        account_id: &str,
        custom_base: impl FnOnce(&str) -> Option<String>,
    ) -> Result<UpstreamTarget, RouteError> {
        if let Some(slug) = custom_slug(provider_slug) {
            let base = custom_base(slug).ok_or(RouteError::UnknownProvider)?;
            let base = BaseUrl::parse(&base).ok_or(RouteError::UnknownProvider)?;
            return Ok(target(
                &base,
                &base.host,
                &base.path,
                rest,
                query,
                CredentialStyle::Bearer,
            ));
        }
        let route = self
            .providers
            .get(provider_slug)
            .ok_or(RouteError::UnknownProvider)?;
        let (host, path, rest) = fill_placeholders(provider_slug, &route.base, rest, account_id)?;
        let rest = apply_path_rule(route.path_rule, rest);
        Ok(target(
            &route.base,
            &host,
            &path,
            &rest,
            query,
            route.credential,
        ))
    }
}

fn target(
    base: &BaseUrl,
    host: &str,
    base_path: &str,
    rest: &str,
    query: Option<&str>,
    credential: CredentialStyle,
) -> UpstreamTarget {
    let port = base.port.unwrap_or(if base.tls { 443 } else { 80 });
    let default_port = port == if base.tls { 443 } else { 80 };
    let host_part = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let authority = if default_port {
        host_part
    } else {
        format!("{host_part}:{port}")
    };
    let mut path_and_query =
        String::with_capacity(base_path.len() + rest.len() + query.map_or(0, str::len) + 2);
    path_and_query.push_str(base_path);
    path_and_query.push('/');
    path_and_query.push_str(rest);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    UpstreamTarget {
        tls: base.tls,
        host: host.to_owned(),
        port,
        authority,
        path_and_query,
        credential,
    }
}

fn apply_path_rule(rule: PathRule, rest: &str) -> std::borrow::Cow<'_, str> {
    match rule {
        PathRule::Verbatim => rest.into(),
        PathRule::DropLeadingV1 => rest.strip_prefix("v1/").unwrap_or(rest).into(),
        PathRule::EnsureLeadingV1 if rest.starts_with("v1/") || rest == "v1" => rest.into(),
        PathRule::EnsureLeadingV1 => format!("v1/{rest}").into(),
    }
}

/// A value that may become part of a host name: lower-case letters, digits and hyphens, not at the ends.
fn is_host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Splits the first `n` path segments off `rest`.
fn take_segments(rest: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut parts = Vec::with_capacity(n);
    let mut remaining = rest;
    for _ in 0..n {
        let (seg, after) = remaining.split_once('/').unwrap_or((remaining, ""));
        if seg.is_empty() {
            return None;
        }
        parts.push(seg);
        remaining = after;
    }
    Some((parts, remaining))
}

/// Fills the placeholders of templated providers; returns host, base path and the rest still to append.
fn fill_placeholders<'r>(
    slug: &str,
    base: &BaseUrl,
    rest: &'r str,
    account_id: &str,
) -> Result<(String, String, &'r str), RouteError> {
    let (mut host, mut path) = (base.host.clone(), base.path.clone());
    let mut rest = rest;
    match slug {
        "azure-openai" => {
            let (parts, after) = take_segments(rest, 2).ok_or(RouteError::BadPath(
                "expected /azure-openai/{resource}/{deployment}/...",
            ))?;
            if !is_host_label(parts[0]) {
                return Err(RouteError::BadPath(
                    "the Azure resource name must be lower-case letters, digits and hyphens",
                ));
            }
            host = host.replace("{resource}", parts[0]);
            path = path
                .replace("{deployment}", parts[1])
                .replace("{resource}", parts[0]);
            rest = after;
        }
        "aws-bedrock" => {
            let (parts, after) = take_segments(rest, 2).ok_or(RouteError::BadPath(
                "expected /aws-bedrock/{service}/{region}/...",
            ))?;
            if !matches!(
                parts[0],
                "bedrock-runtime" | "bedrock-mantle" | "bedrock-agent-runtime"
            ) || !is_host_label(parts[1])
            {
                return Err(RouteError::BadPath(
                    "expected /aws-bedrock/bedrock-runtime/{region}/...",
                ));
            }
            // The built-in host names the runtime service; Mantle and agents live on hosts of their own.
            host = host
                .replacen("bedrock-runtime", parts[0], 1)
                .replace("{region}", parts[1]);
            rest = after;
        }
        "google-vertex-ai" => {
            // /v1/projects/{project}/locations/{region}/... names its region inside the path, which stays as it is.
            let region = rest
                .split('/')
                .nth(4)
                .filter(|_| rest.split('/').nth(3) == Some("locations"));
            let region = region.ok_or(RouteError::BadPath(
                "expected /google-vertex-ai/v1/projects/{project}/locations/{region}/...",
            ))?;
            if region == "global" {
                host = host.replace("{region}-", "");
            } else if is_host_label(region) {
                host = host.replace("{region}", region);
            } else {
                return Err(RouteError::BadPath(
                    "the Vertex AI region must be lower-case letters, digits and hyphens",
                ));
            }
        }
        "workers-ai" => {
            path = path.replace("{account_id}", account_id);
        }
        _ => {}
    }
    if host.contains('{') || path.contains('{') {
        return Err(RouteError::BadPath(
            "this provider's base URL has placeholders the path does not fill",
        ));
    }
    Ok((host, path, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        table: &UpstreamTable,
        provider: &str,
        rest: &str,
        query: Option<&str>,
    ) -> Result<UpstreamTarget, RouteError> {
        table.route(provider, rest, query, "acct", |slug| {
            (slug == "my-llm").then(|| "https://llm.example.com/api/".to_owned())
        })
    }

    fn url(t: &UpstreamTarget) -> String {
        format!(
            "{}://{}{}",
            if t.tls { "https" } else { "http" },
            t.authority,
            t.path_and_query
        )
    }

    #[test]
    fn provider_paths_map_to_upstream_urls() {
        let table = UpstreamTable::new(&[]).unwrap();
        let cases = [
            (
                "openai",
                "chat/completions",
                None,
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "openai",
                "v1/chat/completions",
                None,
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "openai",
                "responses",
                Some("x=1&y=2"),
                "https://api.openai.com/v1/responses?x=1&y=2",
            ),
            (
                "anthropic",
                "v1/messages",
                None,
                "https://api.anthropic.com/v1/messages",
            ),
            (
                "groq",
                "chat/completions",
                None,
                "https://api.groq.com/openai/v1/chat/completions",
            ),
            (
                "openrouter",
                "chat/completions",
                None,
                "https://openrouter.ai/api/v1/chat/completions",
            ),
            (
                "openrouter",
                "v1/chat/completions",
                None,
                "https://openrouter.ai/api/v1/chat/completions",
            ),
            (
                "azure-openai",
                "myres/gpt4o/chat/completions",
                Some("api-version=2024-10-21"),
                "https://myres.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21",
            ),
            (
                "aws-bedrock",
                "bedrock-runtime/us-east-1/model/anthropic.claude-v2/invoke",
                None,
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/invoke",
            ),
            (
                "google-vertex-ai",
                "v1/projects/p1/locations/us-central1/publishers/google/models/gemini:generateContent",
                None,
                "https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/publishers/google/models/gemini:generateContent",
            ),
            (
                "google-vertex-ai",
                "v1/projects/p1/locations/global/publishers/google/models/g:generateContent",
                None,
                "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google/models/g:generateContent",
            ),
            (
                "workers-ai",
                "@cf/meta/llama-3.1-8b-instruct",
                None,
                "https://api.cloudflare.com/client/v4/accounts/acct/ai/run/@cf/meta/llama-3.1-8b-instruct",
            ),
            (
                "google-ai-studio",
                "v1beta/models/gemini-2.5-flash:generateContent",
                None,
                "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
            ),
            (
                "custom-my-llm",
                "v2/generate",
                None,
                "https://llm.example.com/api/v2/generate",
            ),
        ];
        for (provider, rest, query, expected) in cases {
            let t = route(&table, provider, rest, query)
                .unwrap_or_else(|e| panic!("{provider}/{rest}: {e}"));
            assert_eq!(url(&t), expected, "{provider}/{rest}");
        }
    }

    #[test]
    fn overrides_replace_a_base_and_keep_the_rules() {
        let table = UpstreamTable::new(&[
            ("openai".into(), "http://127.0.0.1:9000/v1".into()),
            ("anthropic".into(), "http://[::1]:9001".into()),
            (
                "azure-openai".into(),
                "http://127.0.0.1:9002/openai/deployments/{deployment}".into(),
            ),
        ])
        .unwrap();
        let t = route(&table, "openai", "v1/chat/completions", None).unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.authority.as_str()),
            (false, "127.0.0.1", 9000, "127.0.0.1:9000")
        );
        assert_eq!(t.path_and_query, "/v1/chat/completions");
        let t = route(&table, "anthropic", "v1/messages", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.authority.as_str()),
            ("::1", "[::1]:9001")
        );
        let t = route(&table, "azure-openai", "res/dep/chat/completions", None).unwrap();
        assert_eq!(
            url(&t),
            "http://127.0.0.1:9002/openai/deployments/dep/chat/completions"
        );
        assert!(UpstreamTable::new(&[("nope".into(), "http://x".into())]).is_err());
        assert!(UpstreamTable::new(&[("openai".into(), "ftp://x".into())]).is_err());
    }

    #[test]
    fn clients_cannot_steer_the_upstream_host() {
        let table = UpstreamTable::new(&[]).unwrap();
        for (provider, rest) in [
            ("azure-openai", "evil.com#/dep/chat"),
            ("azure-openai", "a.b/dep/x"),
            ("azure-openai", "only-one"),
            ("aws-bedrock", "bedrock-runtime/us-east-1.evil.com/x"),
            ("aws-bedrock", "s3/us-east-1/x"),
            ("google-vertex-ai", "v1/projects/p/locations/evil.com:443/x"),
            ("google-vertex-ai", "v1/models/x"),
        ] {
            assert!(
                matches!(
                    route(&table, provider, rest, None),
                    Err(RouteError::BadPath(_))
                ),
                "{provider}/{rest}"
            );
        }
        assert_eq!(
            route(&table, "nope", "x", None),
            Err(RouteError::UnknownProvider)
        );
        assert_eq!(
            route(&table, "custom-unknown", "x", None),
            Err(RouteError::UnknownProvider)
        );
    }
}
