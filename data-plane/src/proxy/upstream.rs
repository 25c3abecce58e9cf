//! The upstream exchange, driven with pingora's HTTP connector (design §3), in two halves so the attempt loop
//! (`phase/attempts.rs`) can decide between them: [`Upstreams::open`] takes a pooled session, sends the rewritten header
//! and the body and waits for the response header within the attempt's timeout; [`Upstreams::relay`] then sends
//! the response downstream chunk by chunk as it arrives and returns the session to the pool when it completed.
//! Until `relay` starts, nothing has reached the client, so a failed or refused attempt can still be retried.
//! The header rules (what crosses in each direction) are `upstream/header.rs`; what looks at the response on its
//! way is the caller's tap chain (`taps.rs`), which this module calls without knowing its members.

mod header;

pub(crate) use header::{is_gateway_control, upstream_request};

use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::ConnectorOptions;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::proxy::Session;

use super::taps::ResponseTap;
use crate::error::AiGatewayError;
use crate::resolver::Resolver;
use crate::route::UpstreamTarget;

/// Idle upstream connections kept per node (pingora's default is 128; providers are few and busy).
const UPSTREAM_POOL_SIZE: usize = 512;

/// How long an idle upstream connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

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

    /// Whether the answer is a stream of events (server-sent events, AWS event streams).
    pub(crate) fn is_event_stream(&self) -> bool {
        self.session
            .response_header()
            .and_then(|h| h.headers.get(http::header::CONTENT_TYPE))
            .is_some_and(|v| {
                let v = v.as_bytes();
                v.starts_with(b"text/event-stream")
                    || v.starts_with(b"application/vnd.amazon.eventstream")
            })
    }

    /// A response header's value, when it is present and text.
    pub(crate) fn header_value(&self, name: &str) -> Option<String> {
        let header = self.session.response_header()?;
        Some(header.headers.get(name)?.to_str().ok()?.to_owned())
    }

    /// The next piece of the body as it arrives, within the read timeout and the exchange's deadline; `None` at
    /// its end. For relays that rewrite the body (`proxy/translate.rs`).
    pub(crate) async fn next_chunk(
        &mut self,
        read_timeout: Duration,
    ) -> Result<Option<Bytes>, Box<pingora::Error>> {
        self.session.set_read_timeout(Some(read_timeout));
        match tokio::time::timeout_at(self.deadline, self.session.read_response_body()).await {
            Ok(next) => next,
            Err(_) => Err(pingora::Error::explain(
                pingora::ErrorType::ReadTimedout,
                "the upstream exchange exceeded --upstream-total-timeout",
            )),
        }
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

/// A connector of its own for traffic off the request path (token minting, JWKS fetches, probes), made on first
/// use: a connector loads the TLS roots when it is made (tens of milliseconds), which a node that never needs it
/// should not pay, and none should pay before its listener serves.
pub(crate) struct LazyUpstreams {
    timeout: Duration,
    ca_file: Option<std::path::PathBuf>,
    made: std::sync::OnceLock<std::sync::Arc<Upstreams>>,
}

impl LazyUpstreams {
    /// Connect, response and total timeouts all `timeout`.
    pub(crate) fn new(timeout: Duration, ca_file: Option<&std::path::Path>) -> Self {
        Self {
            timeout,
            ca_file: ca_file.map(std::path::Path::to_path_buf),
            made: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> &std::sync::Arc<Upstreams> {
        self.made.get_or_init(|| {
            std::sync::Arc::new(Upstreams::new(
                self.timeout,
                self.timeout,
                self.timeout,
                self.ca_file.as_deref(),
            ))
        })
    }
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
    /// Every tap of `taps`, in order, sees the header, each chunk before it is written and the end. The
    /// connection returns to the pool when the body completed.
    pub(crate) async fn relay(
        &self,
        downstream: &mut Session,
        opened: OpenedResponse,
        relay: Relay<'_>,
        taps: &mut [&mut dyn ResponseTap],
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
        for tap in taps.iter_mut() {
            tap.header(up_header);
        }
        let downstream_header = header::downstream_response(
            up_header,
            downstream.is_http2(),
            relay.extra_response_headers,
        )
        .map_err(|e| {
            ForwardError::BeforeResponse(AiGatewayError::bad_request(format!(
                "provider response header: {e}"
            )))
        })?;
        let end = |taps: &mut [&mut dyn ResponseTap], complete: bool| {
            for tap in taps.iter_mut() {
                tap.end(complete);
            }
        };
        if let Err(e) = downstream
            .write_response_header(Box::new(downstream_header), false)
            .await
        {
            end(taps, false);
            return Err(ForwardError::AfterResponse(e));
        }

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
                    end(taps, false);
                    return Err(ForwardError::AfterResponse(pingora::Error::explain(
                        pingora::ErrorType::ReadTimedout,
                        "the upstream exchange exceeded --upstream-total-timeout",
                    )));
                }
            };
            match next {
                Ok(Some(chunk)) => {
                    for tap in taps.iter_mut() {
                        tap.chunk(&chunk);
                    }
                    if let Err(e) = downstream.write_response_body(Some(chunk), false).await {
                        end(taps, false);
                        return Err(ForwardError::AfterResponse(e));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    end(taps, false);
                    return Err(ForwardError::AfterResponse(e));
                }
            }
        }
        if let Err(e) = downstream.write_response_body(None, true).await {
            end(taps, false);
            return Err(ForwardError::AfterResponse(e));
        }
        let complete = upstream.response_done();
        end(taps, complete);
        if complete {
            self.connector
                .release_http_session(upstream, &peer, Some(POOL_IDLE_TIMEOUT))
                .await;
        }
        Ok(())
    }
}

impl Upstreams {
    /// Returns a fully read response's connection to the pool; one whose body did not complete is closed.
    pub(crate) async fn release(&self, opened: OpenedResponse) {
        let OpenedResponse {
            mut session, peer, ..
        } = opened;
        if session.response_done() {
            self.connector
                .release_http_session(session, &peer, Some(POOL_IDLE_TIMEOUT))
                .await;
        }
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
