//! The HTTP client and one measured exchange.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// HTTP/1.1 with a keep-alive pool and `TCP_NODELAY`: the way the gateway's real clients connect, and without
/// NODELAY a small request can wait ~40 ms for a delayed ACK, which would drown what is being measured.
pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

/// One kind of request, sent many times.
#[derive(Debug, Clone)]
pub struct Target {
    pub uri: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// Expect an SSE body ending in [`Target::stream_end`].
    pub stream: bool,
    /// The last event of a complete stream: [`OPENAI_STREAM_END`] or [`ANTHROPIC_STREAM_END`].
    pub stream_end: &'static [u8],
}

/// How an OpenAI stream ends (chat completions, and `/compat` whatever the provider behind it).
pub const OPENAI_STREAM_END: &[u8] = b"data: [DONE]\n\n";
/// How an Anthropic Messages stream ends: its `message_stop` event.
pub const ANTHROPIC_STREAM_END: &[u8] =
    b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// What one exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        /// From sending to the last body byte.
        latency: Duration,
        /// From sending to the first body frame (for a stream: its first event).
        first_byte: Duration,
        /// SSE events received (`\n\n`-terminated); 0 for a JSON answer.
        events: usize,
    },
    /// A failure, by kind: `status 404`, `timeout`, `connect`, `incomplete stream`, ….
    Failed(String),
}

fn request(target: &Target) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(target.uri.clone())
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in &target.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(target.body.clone()))
}

/// Sends `target` once; a request not complete within `timeout` fails as `timeout`.
pub async fn exchange(client: &HttpClient, target: &Target, timeout: Duration) -> Outcome {
    let request = match request(target) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("bad request: {e}")),
    };
    let started = Instant::now();
    let end = target.stream.then_some(target.stream_end);
    match tokio::time::timeout(timeout, run(client, request, end, started)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed("timeout".into()),
    }
}

/// `end`: the stream's expected last event, `None` for a JSON answer.
async fn run(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    end: Option<&[u8]>,
    started: Instant,
) -> Outcome {
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => return Outcome::Failed("connect".into()),
        Err(_) => return Outcome::Failed("transport".into()),
    };
    let status = response.status();
    let mut body = response.into_body();
    let mut first_byte = None;
    // Only the tail is kept: enough to see the last event and count event ends across frame boundaries.
    let mut tail: Vec<u8> = Vec::new();
    let mut events = 0;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Outcome::Failed("body".into());
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        len += data.len();
        if let Some(end) = end {
            let prev = tail.last().copied();
            events += count_event_ends(prev, &data);
            tail.extend_from_slice(&data);
            let keep = tail.len().saturating_sub(end.len());
            tail.drain(..keep);
        }
    }
    let latency = started.elapsed();
    if !status.is_success() {
        return Outcome::Failed(format!("status {}", status.as_u16()));
    }
    if len == 0 || end.is_some_and(|end| tail != end) {
        return Outcome::Failed("incomplete body".into());
    }
    Outcome::Ok {
        latency,
        first_byte: first_byte.unwrap_or(latency),
        events,
    }
}

/// Sends `target` once, unmeasured, and says what the response's header `name` was: its value, `absent`, or why
/// there was no answer. A check that a policy applied, e.g. `cf-aig-cache-status: HIT` on a cached gateway.
pub async fn sample_header(
    client: &HttpClient,
    target: &Target,
    name: &HeaderName,
    timeout: Duration,
) -> String {
    let request = match request(target) {
        Ok(r) => r,
        Err(e) => return format!("bad request: {e}"),
    };
    let answer = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        body.collect().await.map_err(|e| e.to_string())?;
        let value = parts.headers.get(name).map_or_else(
            || "absent".to_owned(),
            |v| String::from_utf8_lossy(v.as_bytes()).into_owned(),
        );
        Ok::<_, String>(if parts.status.is_success() {
            value
        } else {
            format!("{value} (status {})", parts.status.as_u16())
        })
    })
    .await;
    match answer {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => format!("failed: {e}"),
        Err(_) => "failed: timeout".into(),
    }
}

/// Sends `target` once, unmeasured, and returns the response's status (`None` when there was no answer within
/// `timeout`). The body is read to its end, so the connection goes back to the pool.
pub async fn status_of(client: &HttpClient, target: &Target, timeout: Duration) -> Option<u16> {
    let request = request(target).ok()?;
    tokio::time::timeout(timeout, async {
        let response = client.request(request).await.ok()?;
        let (parts, body) = response.into_parts();
        body.collect().await.ok()?;
        Some(parts.status.as_u16())
    })
    .await
    .ok()
    .flatten()
}

/// Counts `\n\n` in `data`, including one that straddles the previous frame (`prev` is its last byte).
fn count_event_ends(prev: Option<u8>, data: &[u8]) -> usize {
    let straddles = prev == Some(b'\n') && data.first() == Some(&b'\n');
    usize::from(straddles) + data.windows(2).filter(|w| w == b"\n\n").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ends_are_counted_within_and_across_frames() {
        assert_eq!(count_event_ends(None, b"data: a\n\ndata: b\n\n"), 2);
        assert_eq!(count_event_ends(Some(b'\n'), b"\ndata: c"), 1);
        assert_eq!(count_event_ends(Some(b'x'), b"\ndata: c"), 0);
    }
}
