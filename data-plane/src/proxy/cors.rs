//! Cross-origin access per gateway (`cors: {allowed_origins: [..]}`, issue 13 item 8): which browser origins may
//! call a gateway's inference endpoints, the preflight answer, and the headers an allowed origin's answers carry.
//! An origin that is not allowed gets no CORS header at all, so the browser keeps the answer from the page.

use gatehouse_shared::gateway::GatewaySettings;

/// What a preflight allows beyond the origin.
pub(crate) const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Headers browsers may send when the preflight did not list any.
pub(crate) const DEFAULT_ALLOW_HEADERS: &str =
    "authorization, content-type, cf-aig-authorization, x-api-key, anthropic-version";
/// The gateway's answer headers a page may read.
pub(crate) const EXPOSE_HEADERS: &str = "cf-aig-request-id, cf-aig-log-id, cf-aig-event-id, cf-aig-step, \
     cf-aig-cache-status, cf-aig-model, cf-aig-provider, retry-after";
/// How long a browser may reuse a preflight answer (seconds).
pub(crate) const MAX_AGE: &str = "600";

/// Whether `origin` may call the gateway: an exact entry, `*`, or a wildcard entry `scheme://*.domain` matching
/// any sub-domain (one or more labels) of `domain` with that scheme.
pub(crate) fn allows(settings: &GatewaySettings, origin: &str) -> bool {
    let Some(cors) = &settings.cors else {
        return false;
    };
    cors.allowed_origins
        .iter()
        .any(|allowed| matches(allowed, origin))
}

fn matches(allowed: &str, origin: &str) -> bool {
    if allowed == "*" || allowed.eq_ignore_ascii_case(origin) {
        return true;
    }
    let Some((scheme, pattern)) = allowed.split_once("://*.") else {
        return false;
    };
    let Some(host) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    host.len() > pattern.len() + 1
        && host.ends_with(&pattern)
        && host.as_bytes()[host.len() - pattern.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::gateway::CorsSettings;

    #[test]
    fn exact_and_wildcard_origins() {
        let mut s = GatewaySettings::for_default_gateway();
        assert!(!allows(&s, "https://app.example.com"));
        s.cors = Some(CorsSettings {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.corp.dev".into(),
            ],
        });
        assert!(allows(&s, "https://app.example.com"));
        assert!(!allows(&s, "http://app.example.com"));
        assert!(!allows(&s, "https://evil.com"));
        assert!(allows(&s, "https://a.corp.dev"));
        assert!(allows(&s, "https://a.b.corp.dev"));
        assert!(!allows(&s, "https://corp.dev"));
        assert!(!allows(&s, "https://evilcorp.dev"));
        assert!(!allows(&s, "http://a.corp.dev"));
    }
}
