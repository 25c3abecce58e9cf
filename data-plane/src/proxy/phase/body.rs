//! Reading the request body: under the node's cap (checked against `Content-Length` first, then while reading),
//! with a lingering drain after a 413, and one pass over a JSON body for what the gateway needs of it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use serde_json::Value;

use crate::error::AiGatewayError;

/// The request body and what it says of itself.
pub(crate) struct RequestBody {
    pub bytes: Bytes,
    pub peek: RequestPeek,
}

/// Reads the body; `peek` says whether the body is one provider request whose JSON is read for its model and
/// stream flag (the provider-native form) or not (universal steps read their own).
pub(crate) async fn read(
    session: &mut Session,
    cap: usize,
    peek: bool,
) -> Result<RequestBody, AiGatewayError> {
    let bytes = read_body(session, cap).await?;
    let peek = if peek {
        RequestPeek::of(&bytes)
    } else {
        RequestPeek::default()
    };
    Ok(RequestBody { bytes, peek })
}

/// What the gateway reads out of a JSON request body, in one pass that skips every other field: the `model`
/// (logs, spend rules) and whether it asks for a stream (never cached).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestPeek {
    pub model: Option<String>,
    pub stream: bool,
}

impl RequestPeek {
    pub(crate) fn of(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Peek<'a> {
            #[serde(borrow)]
            model: Option<std::borrow::Cow<'a, str>>,
            // Any JSON value, so a body with an odd `stream` still yields its model.
            stream: Option<Value>,
        }
        match serde_json::from_slice::<Peek<'_>>(body) {
            Ok(p) => Self {
                model: p.model.map(std::borrow::Cow::into_owned),
                stream: matches!(p.stream, Some(Value::Bool(true))),
            },
            Err(_) => Self::default(),
        }
    }
}

/// How much of a refused body is read and thrown away, and for how long, after the 413 is sent.
const DRAIN_LIMIT_BYTES: usize = 64 * 1024 * 1024;
const DRAIN_LIMIT_TIME: Duration = Duration::from_secs(2);

/// A lingering close: after answering 413 while the client is still sending, read and discard what it sends for a
/// bounded time. Closing at once would leave unread bytes in the socket, which makes the kernel reset the
/// connection and destroy the 413 before the client reads it.
pub(crate) async fn drain_rejected_body(session: &mut Session) {
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT_TIME;
    let mut drained = 0usize;
    while drained < DRAIN_LIMIT_BYTES {
        match tokio::time::timeout_at(deadline, session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => drained += chunk.len(),
            _ => break,
        }
    }
}

/// Reads the whole request body, refusing more than `cap` bytes (checked against `Content-Length` first, then
/// while reading). A body that arrives in one chunk is passed on without a copy.
async fn read_body(session: &mut Session, cap: usize) -> Result<Bytes, AiGatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    let read_error = |e: Box<pingora::Error>| {
        AiGatewayError::bad_request(format!("reading the request body failed: {e}"))
    };
    let Some(first) = session.read_request_body().await.map_err(read_error)? else {
        return Ok(Bytes::new());
    };
    if first.len() > cap {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    let Some(second) = session.read_request_body().await.map_err(read_error)? else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(first.len() + second.len()).min(cap));
    body.extend_from_slice(&first);
    body.extend_from_slice(&second);
    while let Some(chunk) = session.read_request_body().await.map_err(read_error)? {
        if body.len() + chunk.len() > cap {
            return Err(AiGatewayError::BODY_TOO_LARGE);
        }
        body.extend_from_slice(&chunk);
    }
    if body.len() > cap {
        return Err(AiGatewayError::BODY_TOO_LARGE);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_and_stream_flag_are_read_from_a_json_body_and_nothing_else_is_needed() {
        let model = |b: &[u8]| RequestPeek::of(b).model;
        assert_eq!(
            model(br#"{"messages":[{"a":1}],"model":"gpt-4o"}"#).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            model(br#"{"model":"esc\u0061ped"}"#).as_deref(),
            Some("escaped")
        );
        assert_eq!(model(b"{}"), None);
        assert_eq!(model(b"binary\xff"), None);
        assert!(RequestPeek::of(br#"{"model":"m","stream":true}"#).stream);
        assert!(!RequestPeek::of(br#"{"model":"m","stream":false}"#).stream);
        assert!(!RequestPeek::of(br#"{"model":"m"}"#).stream);
        assert!(!RequestPeek::of(b"not json").stream);
        assert_eq!(
            model(br#"{"model":"m","stream":"yes"}"#).as_deref(),
            Some("m")
        );
    }
}
