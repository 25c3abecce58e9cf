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
    /// The output cap `bytes` asks for, read in the same pass as `peek` (`None`: not read; see [`OutputCap`]).
    pub output_cap: Option<OutputCap>,
}

/// Reads the body; `peek` says whether the body is one provider request whose JSON is read for its model, stream
/// flag and output cap (the provider-native form, and `/compat`'s client body) or not (universal steps read
/// their own).
pub(crate) async fn read(
    session: &mut Session,
    cap: usize,
    peek: bool,
) -> Result<RequestBody, AiGatewayError> {
    let bytes = read_body(session, cap).await?;
    let (peek, output_cap) = if peek {
        RequestPeek::with_output_cap(&bytes)
    } else {
        (RequestPeek::default(), None)
    };
    Ok(RequestBody {
        bytes,
        peek,
        output_cap,
    })
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

    /// The peek and the body's output cap (what budgets hold for the answer, `access.rs`) in one pass, used for the
    /// client's body. The cap is `None` when the pass cannot vouch for it; [`output_cap`] then reads it. A body
    /// the pass cannot read exactly as [`RequestPeek::of`] and [`output_cap`] would (not a JSON object, a
    /// repeated field, a config that is not an object) is left to them, so the answers never differ (`caps.rs`).
    pub(crate) fn with_output_cap(body: &[u8]) -> (Self, Option<OutputCap>) {
        let is_object = body
            .iter()
            .find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
            == Some(&b'{');
        let read = is_object
            .then(|| serde_json::from_slice::<caps::PeekAndCaps<'_>>(body).ok())
            .flatten();
        match read {
            Some(read) => {
                let (peek, cap) = read.into_parts();
                (peek, Some(OutputCap::of(body, cap)))
            }
            None => (Self::of(body), None),
        }
    }
}

/// The output cap a body asks for, tied to the body it was read from: budgets hold a request's worst case for the
/// body the provider gets, which is this one only when the step forwards these very bytes (the provider-native
/// form). A `/compat` step sends a translated body (whose cap may be spelled otherwise, or added by the
/// translator, as Anthropic's default `max_tokens`) and a universal step its own: those are other buffers, and
/// [`OutputCap::for_body`] leaves them to [`output_cap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputCap {
    /// Where the bytes it was read from are, and how many (a `Bytes` clone shares them).
    at: usize,
    len: usize,
    cap: Option<u64>,
}

impl OutputCap {
    fn of(body: &[u8], cap: Option<u64>) -> Self {
        Self {
            at: body.as_ptr() as usize,
            len: body.len(),
            cap,
        }
    }

    /// The cap, when `body` is the body it was read from (the same bytes in memory); `None` for any other body.
    pub(crate) fn for_body(&self, body: &[u8]) -> Option<Option<u64>> {
        (body.as_ptr() as usize == self.at && body.len() == self.len).then_some(self.cap)
    }
}

/// The output cap a request body asks for, in any of the providers' spellings (`max_completion_tokens`, then
/// `max_tokens`, `max_output_tokens`, Gemini's `generationConfig.maxOutputTokens`, Bedrock's
/// `inferenceConfig.maxTokens`); `None` when it names none or one of them is not a count.
pub(crate) fn output_cap(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Caps {
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
        #[serde(rename = "generationConfig")]
        generation_config: Option<GenerationConfig>,
        #[serde(rename = "inferenceConfig")]
        inference_config: Option<InferenceConfig>,
    }
    #[derive(serde::Deserialize)]
    struct GenerationConfig {
        #[serde(rename = "maxOutputTokens")]
        max_output_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct InferenceConfig {
        #[serde(rename = "maxTokens")]
        max_tokens: Option<u64>,
    }
    let caps: Caps = serde_json::from_slice(body).ok()?;
    caps.max_completion_tokens
        .or(caps.max_tokens)
        .or(caps.max_output_tokens)
        .or(caps.generation_config.and_then(|g| g.max_output_tokens))
        .or(caps.inference_config.and_then(|i| i.max_tokens))
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

mod caps;

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
