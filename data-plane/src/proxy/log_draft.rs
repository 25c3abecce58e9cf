//! What a request gathers for its log record while it runs, turned into a [`LogRecord`] in the `logging` phase.
//!
//! Only requests to an existing gateway whose logging is on get a draft. The request body is kept as the `Bytes`
//! the request already holds (a reference count, no copy); the response is copied into a bounded buffer only when
//! payloads are collected.

use bytes::{Bytes, BytesMut};
use gatehouse_shared::log::{
    BODY_HEAD_CHARS, LogRecord, MAX_METADATA_ENTRIES, MAX_STORED_BODY_BYTES, body_head,
};
use gatehouse_shared::pricing::{self, CustomCost};
use serde_json::{Map, Value};

use crate::usage::{UsageScanner, choose_format};

/// The response as far as the log needs it.
#[derive(Default)]
pub(crate) struct ResponseCapture {
    pub content_type: Option<String>,
    pub size: u64,
    /// The body, while it fits in [`MAX_STORED_BODY_BYTES`]; `None` when payloads are not collected.
    pub body: Option<BytesMut>,
    pub body_too_large: bool,
    /// Reads token usage out of the response as it passes (started with the response header).
    usage: Option<UsageScanner>,
}

impl std::fmt::Debug for ResponseCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCapture")
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ResponseCapture {
    pub fn new(collect_payload: bool) -> Self {
        Self {
            body: collect_payload.then(BytesMut::new),
            ..Default::default()
        }
    }

    /// The response header arrived: remember it and start reading usage in the format it announces.
    pub fn begin(&mut self, content_type: Option<&str>, provider: &str, path: &str) {
        self.content_type = content_type.map(str::to_owned);
        self.usage = Some(UsageScanner::new(choose_format(
            provider,
            path,
            content_type,
        )));
    }

    /// Records one relayed chunk.
    pub fn chunk(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if let Some(scanner) = &mut self.usage {
            scanner.feed(chunk);
        }
        if let Some(body) = &mut self.body {
            if body.len() + chunk.len() <= MAX_STORED_BODY_BYTES {
                body.extend_from_slice(chunk);
            } else {
                self.body = None;
                self.body_too_large = true;
            }
        }
    }
}

/// A request's log record in the making.
#[derive(Debug)]
pub(crate) struct LogDraft {
    pub id: String,
    pub created_at_ms: i64,
    pub account_id: String,
    pub gateway_id: String,
    pub provider: String,
    pub path: String,
    pub event_id: String,
    pub metadata: Option<String>,
    pub collect_payload: bool,
    pub user_agent: Option<String>,
    pub authenticated: bool,
    pub request_content_type: Option<String>,
    pub request_body: Bytes,
    pub model: Option<String>,
    pub config_hash: String,
    /// `cf-aig-custom-cost`, when it parsed.
    pub custom_cost: Option<CustomCost>,
    /// The universal step this record is for (0 for the provider-native form).
    pub step: u32,
    /// Answered from the cache: no provider call, nothing paid.
    pub cached: bool,
    pub response: ResponseCapture,
}

impl LogDraft {
    /// The draft of another step of the same request: the request's facts, the step's own id, provider, path,
    /// model and body, and a fresh response capture.
    pub fn for_step(&self, id: String, step: &super::steps::Step) -> Self {
        Self {
            id,
            created_at_ms: self.created_at_ms,
            account_id: self.account_id.clone(),
            gateway_id: self.gateway_id.clone(),
            provider: step.provider.clone(),
            path: step.path.clone(),
            event_id: self.event_id.clone(),
            metadata: self.metadata.clone(),
            collect_payload: self.collect_payload,
            user_agent: self.user_agent.clone(),
            authenticated: self.authenticated,
            request_content_type: self.request_content_type.clone(),
            model: step.model.clone(),
            request_body: step.body.clone(),
            config_hash: self.config_hash.clone(),
            custom_cost: self.custom_cost,
            step: step.index,
            cached: false,
            response: ResponseCapture::new(self.collect_payload),
        }
    }

    /// The record, once the response is over. `status` and `duration_ms` come from the finished exchange.
    pub fn into_record(mut self, status: u16, duration_ms: u64) -> LogRecord {
        let usage = self
            .response
            .usage
            .take()
            .map(UsageScanner::finish)
            .unwrap_or_default();
        let model = self.model.take().or(usage.model);
        let (cost, custom_cost) = match (&self.custom_cost, model.as_deref()) {
            // A cache hit made no provider call.
            _ if self.cached => (Some(0.0), false),
            (Some(custom), _) => (custom.cost(usage.tokens_in, usage.tokens_out), true),
            (None, Some(m)) => (
                pricing::cost(
                    &self.provider,
                    m,
                    usage.tokens_in,
                    usage.tokens_out,
                    usage.cached_tokens_in,
                ),
                false,
            ),
            (None, None) => (None, false),
        };
        let (request_head, request_head_complete) = body_head(&self.request_body, BODY_HEAD_CHARS);
        let response_bytes: &[u8] = self.response.body.as_deref().unwrap_or(&[]);
        let (response_head, response_head_complete) = if self.collect_payload {
            body_head(response_bytes, BODY_HEAD_CHARS)
        } else {
            (String::new(), false)
        };
        let request_too_large = self.request_body.len() > MAX_STORED_BODY_BYTES;
        let bodies_stored =
            self.collect_payload && !request_too_large && !self.response.body_too_large;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        LogRecord {
            id: self.id,
            account_id: self.account_id,
            gateway_id: self.gateway_id,
            created_at_ms: self.created_at_ms,
            provider: self.provider,
            model,
            model_type: None,
            path: self.path,
            request_type: Some("provider".into()),
            request_content_type: self.request_content_type,
            response_content_type: self.response.content_type,
            status_code: status,
            success: (200..400).contains(&status),
            cached: self.cached,
            duration_ms,
            tokens_in: usage.tokens_in,
            tokens_out: usage.tokens_out,
            cached_tokens_in: usage.cached_tokens_in,
            cost,
            custom_cost: custom_cost && cost.is_some(),
            metadata: self.metadata,
            event_id: self.event_id,
            step: self.step,
            user_agent: self.user_agent,
            authenticated: self.authenticated,
            request_head: if self.collect_payload {
                request_head
            } else {
                String::new()
            },
            request_head_complete: self.collect_payload && request_head_complete,
            request_size: self.request_body.len() as u64,
            response_head,
            response_head_complete,
            response_size: self.response.size,
            request_body: bodies_stored.then(|| text(&self.request_body)),
            response_body: bodies_stored.then(|| text(response_bytes)),
            bodies_stored,
            config_hash: (!self.config_hash.is_empty()).then_some(self.config_hash),
        }
    }
}

/// `cf-aig-metadata`: a JSON object; the first five entries with string, number or boolean values are kept. A header
/// that is not such an object, or holds a nested value, is ignored as a whole (spec §3.7).
pub(crate) fn parse_metadata(raw: &[u8]) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(raw) else {
        return None;
    };
    if map.values().any(|v| v.is_object() || v.is_array()) {
        return None;
    }
    let kept: Map<String, Value> = map
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .take(MAX_METADATA_ENTRIES)
        .collect();
    (!kept.is_empty()).then(|| Value::Object(kept).to_string())
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

/// `true`/`false` header values (anything else is absent).
pub(crate) fn flag(raw: Option<&[u8]>) -> Option<bool> {
    match raw? {
        b"true" | b"1" => Some(true),
        b"false" | b"0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_keeps_five_flat_entries_and_ignores_anything_nested() {
        let kept =
            parse_metadata(br#"{"a":1,"b":"x","c":true,"d":2.5,"e":"y","f":"dropped"}"#).unwrap();
        let v: Value = serde_json::from_str(&kept).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 5);
        assert!(v.get("f").is_none());
        assert_eq!(parse_metadata(br#"{"a":{"b":1}}"#), None);
        assert_eq!(parse_metadata(br#"{"a":[1]}"#), None);
        assert_eq!(parse_metadata(b"[1]"), None);
        assert_eq!(parse_metadata(b"not json"), None);
    }

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

    #[test]
    fn a_large_response_is_measured_but_not_kept() {
        let mut c = ResponseCapture::new(true);
        c.chunk(&vec![b'x'; MAX_STORED_BODY_BYTES]);
        c.chunk(b"y");
        assert!(c.body.is_none() && c.body_too_large);
        assert_eq!(c.size, MAX_STORED_BODY_BYTES as u64 + 1);
    }
}
