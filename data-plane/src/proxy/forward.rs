//! The upstream exchange, driven with pingora's HTTP connector (design §3), in two halves so the attempt loop
//! (`attempts.rs`) can decide between them: [`Upstreams::open`] takes a pooled session, sends the rewritten header
//! and the body and waits for the response header within the attempt's timeout; [`Upstreams::relay`] then sends
//! the response downstream chunk by chunk as it arrives and returns the session to the pool when it completed.
//! Until `relay` starts, nothing has reached the client, so a failed or refused attempt can still be retried.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use pingora::connectors::ConnectorOptions;
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;

use super::log_draft::ResponseCapture;
use crate::error::AiGatewayError;
use crate::resolver::Resolver;
use crate::route::UpstreamTarget;

/// Idle upstream connections kept per node (pingora's default is 128; providers are few and busy).
const UPSTREAM_POOL_SIZE: usize = 512;

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Headers that describe one hop, never forwarded in either direction (RFC 9110 §7.6.1), plus `host` and
/// `content-length`, which the gateway sets itself on the upstream request.
fn is_hop_by_hop(name: &str) -> bool {
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

/// Upstream connectivity shared by all requests: the connection pool and the DNS cache.
pub(crate) struct Upstreams {
    connector: Connector,
    resolver: Resolver,
    connect_timeout: Duration,
    response_timeout: Duration,
    total_timeout: Duration,
}

/// A provider's response whose header has arrived and whose body is still on the connection.
pub(crate) struct OpenedResponse {
    session: HttpSession,
    peer: HttpPeer,
    /// When the exchange must be over, body included (`--upstream-total-timeout` from the attempt's start).
    deadline: tokio::time::Instant,
}

impl OpenedResponse {
    pub(crate) fn status(&self) -> u16 {
        self.session
            .response_header()
            .map_or(0, |h| h.status.as_u16())
    }
}

/// Why an attempt produced no response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptFailure {
    /// Name resolution, connection or the exchange before the header failed.
    Unreachable,
    /// No response header within the attempt's wait.
    TimedOut,
}

impl AttemptFailure {
    pub(crate) fn error(self) -> AiGatewayError {
        match self {
            AttemptFailure::Unreachable => AiGatewayError::PROVIDER_UNREACHABLE,
            AttemptFailure::TimedOut => AiGatewayError::PROVIDER_TIMEOUT,
        }
    }
}

/// What relaying sends downstream besides the provider's response.
pub(crate) struct Relay<'a> {
    pub extra_response_headers: &'a [(&'static str, &'a str)],
    /// Provider slug and path after it, for reading usage in the provider's format.
    pub provider: &'a str,
    pub path: &'a str,
    /// How long the body may pause between chunks.
    pub read_timeout: Duration,
}

/// Why the exchange failed after the response had started: nothing more can be sent to the client, the
/// connection is closed.
#[derive(Debug)]
pub(crate) enum ForwardError {
    /// Nothing was sent downstream yet; the client gets this error.
    BeforeResponse(AiGatewayError),
    /// The response had started; the client's connection must be closed.
    AfterResponse(Box<pingora::Error>),
}

impl Upstreams {
    pub(crate) fn new(
        connect_timeout: Duration,
        response_timeout: Duration,
        total_timeout: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Self {
        let mut options = ConnectorOptions::new(UPSTREAM_POOL_SIZE);
        options.ca_file = ca_file.map(|p| p.to_string_lossy().into_owned());
        Self {
            connector: Connector::new(Some(options)),
            resolver: Resolver::new(Duration::from_secs(60)),
            connect_timeout,
            response_timeout,
            total_timeout,
        }
    }

    /// The node's longest wait for a response header (and between body chunks); every attempt ends by then.
    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Builds the upstream request header from the client's: same method, the target path, every header except
    /// hop-by-hop ones, `host`, `content-length` and the gateway's own controls.
    pub(crate) fn upstream_header(
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

    /// One attempt: sends the request and waits up to `wait` for the response header. Nothing is written
    /// downstream, so the caller may still retry or fall back.
    pub(crate) async fn open(
        &self,
        target: &UpstreamTarget,
        request: &RequestHeader,
        body: &Bytes,
        wait: Duration,
    ) -> Result<OpenedResponse, AttemptFailure> {
        let addr = self
            .resolver
            .resolve(&target.host, target.port)
            .await
            .map_err(|e| {
                tracing::debug!(host = %target.host, error = %e, "upstream name did not resolve");
                AttemptFailure::Unreachable
            })?;
        let mut peer = HttpPeer::new(addr, target.tls, target.host.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.total_connection_timeout = Some(self.connect_timeout);
        peer.options.idle_timeout = Some(POOL_IDLE_TIMEOUT);

        // A pooled connection may have been closed by the upstream while idle; that shows as an error before any
        // response byte. Such a failure is retried once on a fresh connection (the request never reached the
        // provider's application), any other failure ends the attempt.
        let deadline = tokio::time::Instant::now() + self.total_timeout;
        let wait = wait.min(self.total_timeout);
        let mut fresh_only = false;
        loop {
            let (mut session, reused) = match self.connector.get_http_session(&peer).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "upstream connection failed");
                    return Err(AttemptFailure::Unreachable);
                }
            };
            if fresh_only && reused {
                // Drop the stale pooled session and ask again; the pool hands out each idle session once.
                continue;
            }
            match send(&mut session, request.clone(), body.clone(), wait).await {
                Ok(()) if session.response_header().is_some() => {
                    return Ok(OpenedResponse {
                        session,
                        peer,
                        deadline,
                    });
                }
                Ok(()) => return Err(AttemptFailure::Unreachable),
                Err(SendError::Timeout) => return Err(AttemptFailure::TimedOut),
                Err(SendError::Failed(e)) if reused && !fresh_only => {
                    tracing::debug!(error = %e, "reused upstream connection failed; retrying on a new one");
                    fresh_only = true;
                }
                Err(SendError::Failed(e)) => {
                    tracing::debug!(error = %e, "upstream exchange failed before the response");
                    return Err(AttemptFailure::Unreachable);
                }
            }
        }
    }

    /// Sends an opened response downstream: its header (plus the gateway's), then each body chunk as it arrives.
    /// `capture` (when the request is logged) and `tee` (when the response may be cached) see every chunk. The
    /// connection returns to the pool when the body completed.
    pub(crate) async fn relay(
        &self,
        downstream: &mut Session,
        opened: OpenedResponse,
        relay: Relay<'_>,
        mut capture: Option<&mut ResponseCapture>,
        mut tee: Option<&mut super::cache::CacheTee>,
    ) -> Result<(), ForwardError> {
        let OpenedResponse {
            session: mut upstream,
            peer,
            deadline,
        } = opened;
        let Some(up_header) = upstream.response_header() else {
            return Err(ForwardError::BeforeResponse(
                AiGatewayError::PROVIDER_UNREACHABLE,
            ));
        };
        if let Some(c) = capture.as_deref_mut() {
            let content_type = up_header
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            c.begin(content_type, relay.provider, relay.path);
        }
        if let Some(t) = tee.as_deref_mut() {
            t.begin(up_header);
        }
        let downstream_header = response_header(
            up_header,
            downstream.is_http2(),
            relay.extra_response_headers,
        )
        .map_err(|e| {
            ForwardError::BeforeResponse(AiGatewayError::bad_request(format!(
                "provider response header: {e}"
            )))
        })?;
        downstream
            .write_response_header(Box::new(downstream_header), false)
            .await
            .map_err(ForwardError::AfterResponse)?;

        // Streamed responses may pause between events for a long time; the read timeout still bounds a stall.
        upstream.set_read_timeout(Some(relay.read_timeout));
        loop {
            let next = match tokio::time::timeout_at(deadline, upstream.read_response_body()).await
            {
                Ok(next) => next,
                Err(_) => {
                    tracing::debug!(
                        "upstream exchange exceeded the total timeout; cutting the response"
                    );
                    if let Some(t) = tee.as_deref_mut() {
                        t.abandon();
                    }
                    return Err(ForwardError::AfterResponse(pingora::Error::explain(
                        pingora::ErrorType::ReadTimedout,
                        "the upstream exchange exceeded --upstream-total-timeout",
                    )));
                }
            };
            match next {
                Ok(Some(chunk)) => {
                    if let Some(c) = capture.as_deref_mut() {
                        c.chunk(&chunk);
                    }
                    if let Some(t) = tee.as_deref_mut() {
                        t.chunk(&chunk);
                    }
                    downstream
                        .write_response_body(Some(chunk), false)
                        .await
                        .map_err(ForwardError::AfterResponse)?;
                }
                Ok(None) => break,
                Err(e) => {
                    if let Some(t) = tee.as_deref_mut() {
                        t.abandon();
                    }
                    return Err(ForwardError::AfterResponse(e));
                }
            }
        }
        downstream
            .write_response_body(None, true)
            .await
            .map_err(ForwardError::AfterResponse)?;
        if upstream.response_done() {
            if let Some(t) = tee.as_deref_mut() {
                t.complete();
            }
            self.connector
                .release_http_session(upstream, &peer, Some(POOL_IDLE_TIMEOUT))
                .await;
        } else if let Some(t) = tee {
            t.abandon();
        }
        Ok(())
    }
}

enum SendError {
    Timeout,
    Failed(Box<pingora::Error>),
}

async fn send(
    session: &mut HttpSession,
    request: RequestHeader,
    body: Bytes,
    wait: Duration,
) -> Result<(), SendError> {
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(SendError::Failed)?;
    if !body.is_empty() {
        session
            .write_request_body(body, true)
            .await
            .map_err(SendError::Failed)?;
    }
    session
        .finish_request_body()
        .await
        .map_err(SendError::Failed)?;
    match tokio::time::timeout(wait, session.read_response_header()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::Failed(e)),
        Err(_) => Err(SendError::Timeout),
    }
}

/// The client's response header: the provider's status and headers minus hop-by-hop ones, plus the gateway's.
fn response_header(
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
        let up = Upstreams::upstream_header(&client, &target, 42).unwrap();
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
        let h1 = response_header(&up, false, &[("cf-aig-request-id", "01J")]).unwrap();
        assert_eq!(h1.headers["content-type"], "text/event-stream");
        assert_eq!(h1.headers["transfer-encoding"], "chunked");
        assert_eq!(h1.headers["cf-aig-request-id"], "01J");
        assert!(!h1.headers.contains_key("connection"));
        let h2 = response_header(&up, true, &[]).unwrap();
        assert!(!h2.headers.contains_key("transfer-encoding"));
    }
}
