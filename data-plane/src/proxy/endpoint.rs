//! Which endpoint a request is for, decided from the method and path alone.

use http::Method;

/// The endpoints the data plane knows, borrowing from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    /// Liveness: the process is up and its listener answers.
    Healthz,
    /// Readiness: the node has loaded its first full config and may take traffic.
    Readyz,
    /// `GET /metrics`: the node's Prometheus metrics.
    Metrics,
    /// `GET /`: what this service is, its version, where its probes and docs are.
    FrontDoor,
    /// `/v1/{account}/{gateway}/{provider}/{rest}`: the provider-native form (spec §2.1 form 1).
    Provider(ProviderPath<'a>),
    /// `POST /v1/{account}/{gateway}`: the universal endpoint (spec §2.1 form 3).
    Universal {
        account: &'a str,
        gateway: &'a str,
    },
    Unknown,
}

/// The parts of a provider-native path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProviderPath<'a> {
    pub account: &'a str,
    pub gateway: &'a str,
    pub provider: &'a str,
    /// Everything after `{provider}/`, without the leading slash; may be empty.
    pub rest: &'a str,
}

/// Probes answer GET only. Load balancers and Kubernetes probe with GET, and refusing everything else keeps a
/// stray POST with a body from being treated as a probe.
pub(crate) fn classify<'a>(method: &Method, path: &'a str) -> Endpoint<'a> {
    match (method, path) {
        (&Method::GET, "/healthz") => return Endpoint::Healthz,
        (&Method::GET, "/readyz") => return Endpoint::Readyz,
        (&Method::GET, "/metrics") => return Endpoint::Metrics,
        (&Method::GET, "/") => return Endpoint::FrontDoor,
        _ => {}
    }
    let Some(tail) = path.strip_prefix("/v1/") else {
        return Endpoint::Unknown;
    };
    let mut parts = tail.splitn(4, '/');
    let (Some(account), Some(gateway)) = (parts.next(), parts.next()) else {
        return Endpoint::Unknown;
    };
    let provider = parts.next();
    if provider.is_none_or(str::is_empty) && parts.next().is_none() {
        // `/v1/{account}/{gateway}` (a trailing slash allowed): the universal endpoint takes POST only.
        return if method == Method::POST && !account.is_empty() && !gateway.is_empty() {
            Endpoint::Universal { account, gateway }
        } else {
            Endpoint::Unknown
        };
    }
    let Some(provider) = provider else {
        return Endpoint::Unknown;
    };
    if account.is_empty() || gateway.is_empty() || provider.is_empty() {
        return Endpoint::Unknown;
    }
    Endpoint::Provider(ProviderPath {
        account,
        gateway,
        provider,
        rest: parts.next().unwrap_or(""),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(
        account: &'static str,
        gateway: &'static str,
        provider: &'static str,
        rest: &'static str,
    ) -> Endpoint<'static> {
        Endpoint::Provider(ProviderPath {
            account,
            gateway,
            provider,
            rest,
        })
    }

    #[test]
    fn paths_and_methods_map_to_endpoints() {
        let cases = [
            (Method::GET, "/healthz", Endpoint::Healthz),
            (Method::GET, "/readyz", Endpoint::Readyz),
            (Method::POST, "/healthz", Endpoint::Unknown),
            (Method::HEAD, "/readyz", Endpoint::Unknown),
            (Method::GET, "/healthz/", Endpoint::Unknown),
            (Method::GET, "/", Endpoint::FrontDoor),
            (Method::POST, "/", Endpoint::Unknown),
            (
                Method::POST,
                "/v1/acct/gw/openai/chat/completions",
                provider("acct", "gw", "openai", "chat/completions"),
            ),
            (
                Method::POST,
                "/v1/acct/gw/openai/v1/chat/completions",
                provider("acct", "gw", "openai", "v1/chat/completions"),
            ),
            (
                Method::GET,
                "/v1/acct/gw/openai",
                provider("acct", "gw", "openai", ""),
            ),
            (
                Method::POST,
                "/v1/acct/gw/workers-ai/@cf/meta/llama",
                provider("acct", "gw", "workers-ai", "@cf/meta/llama"),
            ),
            (
                Method::POST,
                "/v1/acct/gw",
                Endpoint::Universal {
                    account: "acct",
                    gateway: "gw",
                },
            ),
            (
                Method::POST,
                "/v1/acct/gw/",
                Endpoint::Universal {
                    account: "acct",
                    gateway: "gw",
                },
            ),
            (Method::GET, "/v1/acct/gw", Endpoint::Unknown),
            (Method::POST, "/v1/acct", Endpoint::Unknown),
            (Method::POST, "/v1//gw", Endpoint::Unknown),
            (Method::POST, "/v1//gw/openai/x", Endpoint::Unknown),
            (Method::POST, "/v1/acct//openai/x", Endpoint::Unknown),
            (Method::POST, "/v2/acct/gw/openai/x", Endpoint::Unknown),
            (Method::POST, "/compat/chat/completions", Endpoint::Unknown),
        ];
        for (method, path, expected) in cases {
            assert_eq!(classify(&method, path), expected, "{method} {path}");
        }
    }
}
