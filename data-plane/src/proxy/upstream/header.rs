//! The header rules of a proxied exchange: what of the client's request header goes upstream, and what of the
//! provider's response header comes back. Pure functions over pingora's header types.

use http::header;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::route::UpstreamTarget;

/// Headers that describe one hop, never forwarded in either direction (RFC 9110 §7.6.1), plus `host` and
/// `content-length`, which the gateway sets itself on the upstream request.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// The gateway's own control headers (`cf-aig-*`) and the deprecated aliases; never sent to a provider.
pub(crate) fn is_gateway_control(name: &str) -> bool {
    name.starts_with("cf-aig-") || name == "cf-cache-ttl" || name == "cf-skip-cache"
}

/// Builds the upstream request header from the client's: same method, the target path, every header except
/// hop-by-hop ones, `host`, `content-length` and the gateway's own controls.
pub(crate) fn upstream_request(
    client: &RequestHeader,
    target: &UpstreamTarget,
    body_len: usize,
) -> pingora::Result<RequestHeader> {
    let mut up = RequestHeader::build(
        client.method.clone(),
        target.path_and_query.as_bytes(),
        Some(client.headers.len() + 2),
    )?;
    for (name, value) in client.headers.iter() {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || is_gateway_control(n)
            || n == "host"
            || n == "content-length"
            || n == "transfer-encoding"
        {
            continue;
        }
        up.append_header(name.clone(), value.clone())?;
    }
    up.insert_header(header::HOST, target.authority.as_str())?;
    up.insert_header(header::CONTENT_LENGTH, body_len)?;
    Ok(up)
}

/// The client's response header: the provider's status and headers minus hop-by-hop ones, plus the gateway's.
pub(crate) fn downstream_response(
    upstream: &ResponseHeader,
    downstream_is_h2: bool,
    extra: &[(&'static str, &str)],
) -> pingora::Result<ResponseHeader> {
    let mut h = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + extra.len()))?;
    for (name, value) in upstream.headers.iter() {
        let n = name.as_str();
        // HTTP/2 has no transfer-encoding; HTTP/1.1 keeps it so pingora frames the body the same way.
        if is_hop_by_hop(n) || (downstream_is_h2 && n == "transfer-encoding") {
            continue;
        }
        h.append_header(name.clone(), value.clone())?;
    }
    for (name, value) in extra {
        h.insert_header(*name, *value)?;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::providers::CredentialStyle;

    #[test]
    fn the_upstream_header_drops_hop_by_hop_and_gateway_headers_and_sets_host_and_length() {
        let mut client =
            RequestHeader::build("POST", b"/v1/acct/gw/openai/chat/completions", None).unwrap();
        for (k, v) in [
            ("host", "gateway.local"),
            ("authorization", "Bearer sk"),
            ("cf-aig-authorization", "Bearer gw-token"),
            ("cf-aig-metadata", "{}"),
            ("cf-skip-cache", "true"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("content-length", "999"),
            ("x-custom", "kept"),
        ] {
            client.append_header(k, v).unwrap();
        }
        let target = UpstreamTarget {
            tls: true,
            host: "api.openai.com".into(),
            port: 443,
            authority: "api.openai.com".into(),
            path_and_query: "/v1/chat/completions?x=1".into(),
            credential: CredentialStyle::Bearer,
        };
        let up = upstream_request(&client, &target, 42).unwrap();
        assert_eq!(up.uri.to_string(), "/v1/chat/completions?x=1");
        assert_eq!(up.headers["host"], "api.openai.com");
        assert_eq!(up.headers["content-length"], "42");
        assert_eq!(up.headers["authorization"], "Bearer sk");
        assert_eq!(up.headers["x-custom"], "kept");
        for gone in [
            "cf-aig-authorization",
            "cf-aig-metadata",
            "cf-skip-cache",
            "connection",
            "transfer-encoding",
        ] {
            assert!(
                !up.headers.contains_key(gone),
                "{gone} must not reach the provider"
            );
        }
    }

    #[test]
    fn the_client_response_keeps_the_providers_headers_and_adds_the_gateways() {
        let mut up = ResponseHeader::build(200, None).unwrap();
        for (k, v) in [
            ("content-type", "text/event-stream"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("x-request-id", "r"),
        ] {
            up.append_header(k, v).unwrap();
        }
        let h1 = downstream_response(&up, false, &[("cf-aig-request-id", "01J")]).unwrap();
        assert_eq!(h1.headers["content-type"], "text/event-stream");
        assert_eq!(h1.headers["transfer-encoding"], "chunked");
        assert_eq!(h1.headers["cf-aig-request-id"], "01J");
        assert!(!h1.headers.contains_key("connection"));
        let h2 = downstream_response(&up, true, &[]).unwrap();
        assert!(!h2.headers.contains_key("transfer-encoding"));
    }
}
