//! Which endpoint a request is for, decided from the method and path alone.

use http::Method;

/// The endpoints the data plane knows. Inference (`/v1/{account}/{gateway}/{provider}/...`, `/compat/...`, the
/// universal endpoint) joins this list with provider routing; until then those paths are `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Liveness: the process is up and its listener answers.
    Healthz,
    /// Readiness: the node has loaded its first full config and may take traffic.
    Readyz,
    Unknown,
}

/// Probes answer GET only. Load balancers and Kubernetes probe with GET, and refusing everything else keeps a
/// stray POST with a body from being treated as a probe.
pub(crate) fn classify(method: &Method, path: &str) -> Endpoint {
    match (method, path) {
        (&Method::GET, "/healthz") => Endpoint::Healthz,
        (&Method::GET, "/readyz") => Endpoint::Readyz,
        _ => Endpoint::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_map_to_endpoints() {
        let cases = [
            (Method::GET, "/healthz", Endpoint::Healthz),
            (Method::GET, "/readyz", Endpoint::Readyz),
            (Method::POST, "/healthz", Endpoint::Unknown),
            (Method::HEAD, "/readyz", Endpoint::Unknown),
            (Method::GET, "/healthz/", Endpoint::Unknown),
            (Method::GET, "/", Endpoint::Unknown),
            (
                Method::GET,
                "/v1/account/gateway/openai/chat/completions",
                Endpoint::Unknown,
            ),
            (Method::POST, "/compat/chat/completions", Endpoint::Unknown),
        ];
        for (method, path, expected) in cases {
            assert_eq!(classify(&method, path), expected, "{method} {path}");
        }
    }
}
