//! What a request gathers for its log record while it runs, turned into a [`LogRecord`] by `phase/account.rs` in
//! pingora's `logging` phase.
//!
//! Only requests to an existing gateway whose logging is on get a draft, or requests whose cost or tokens some
//! limit charges: spend limits get a full draft without bodies (their rules read its metadata), a virtual key's or
//! identity's limits a draft with only what the usage and cost need ([`LogDraft::for_usage`]), and such drafts
//! end as a [`Settlement`], never as a record. The request body is kept as the `Bytes` the request already holds
//! (a reference count, no copy); the response is copied into a bounded buffer only when payloads are collected.

use bytes::{Bytes, BytesMut};
use gatehouse_shared::log::{
    BODY_HEAD_CHARS, LogRecord, MAX_METADATA_ENTRIES, MAX_STORED_BODY_BYTES, body_head,
};
use gatehouse_shared::pricing::{self, CustomCost};
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use serde_json::{Map, Value};

use super::controls::{self, Controls};
use super::taps::ResponseTap;
use crate::dialect::Dialect;
use crate::usage::{Framing, ResponseFormat, Usage, UsageScanner};

/// The response as far as the log needs it.
#[derive(Default)]
pub(crate) struct ResponseCapture {
    pub content_type: Option<String>,
    pub size: u64,
    /// The body, while it fits in [`MAX_STORED_BODY_BYTES`]; `None` when payloads are not collected.
    pub body: Option<BytesMut>,
    pub body_too_large: bool,
    /// The answering target's dialect, set before the response header arrives.
    dialect: Option<Dialect>,
    /// Reads token usage out of the response as it passes (started with the response header).
    usage: Option<UsageScanner>,
    /// When the first body byte went downstream (time to first token).
    pub first_byte: Option<std::time::Instant>,
    /// Usage known without scanning: a translated answer's, decoded by its codec (`proxy/translate.rs`). It wins
    /// over the scanner, which sees only what the client got (a stream without `include_usage` has none).
    pub known_usage: Option<Usage>,
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

    /// The dialect of the target whose response comes next; its usage is read in that family's fields.
    pub fn expect(&mut self, dialect: Dialect) {
        self.dialect = Some(dialect);
    }
}

impl ResponseTap for ResponseCapture {
    /// Remembers the content type and starts reading usage in the format it announces.
    fn header(&mut self, head: &ResponseHeader) {
        let content_type = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        self.content_type = content_type.map(str::to_owned);
        self.usage = Some(UsageScanner::new(ResponseFormat {
            dialect: self.dialect.unwrap_or(Dialect::Auto),
            framing: Framing::of(content_type),
        }));
    }

    fn chunk(&mut self, chunk: &[u8]) {
        if self.first_byte.is_none() && !chunk.is_empty() {
            self.first_byte = Some(std::time::Instant::now());
        }
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

    /// A cut response is logged as far as it went (the status tells the rest).
    fn end(&mut self, _complete: bool) {}
}

/// What the record needs of the step it describes (universal requests: each step has a record of its own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepFacts<'a> {
    pub index: u32,
    pub provider: &'a str,
    pub path: &'a str,
    pub model: Option<&'a str>,
    pub body: &'a Bytes,
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
    /// The request came through `/compat` (its record says `request_type: "compat"`).
    pub compat: bool,
    /// The virtual key that authenticated the request, its user and its team (ids).
    pub key_id: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    /// The dynamic route that chose the model, when one did.
    pub route: Option<Box<RouteFacts>>,
    pub response: ResponseCapture,
}

/// What a record says of the dynamic route that chose its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteFacts {
    pub id: String,
    pub version_id: String,
    /// The element ids walked, joined by `>`.
    pub path: String,
}

impl LogDraft {
    /// The draft of another step of the same request: the request's facts, the step's own id, provider, path,
    /// model and body, and a fresh response capture.
    pub fn for_step(&self, id: String, step: StepFacts<'_>) -> Self {
        Self {
            id,
            created_at_ms: self.created_at_ms,
            account_id: self.account_id.clone(),
            gateway_id: self.gateway_id.clone(),
            provider: step.provider.to_owned(),
            path: step.path.to_owned(),
            event_id: self.event_id.clone(),
            metadata: self.metadata.clone(),
            collect_payload: self.collect_payload,
            user_agent: self.user_agent.clone(),
            authenticated: self.authenticated,
            request_content_type: self.request_content_type.clone(),
            model: step.model.map(str::to_owned),
            request_body: step.body.clone(),
            config_hash: self.config_hash.clone(),
            custom_cost: self.custom_cost,
            step: step.index,
            cached: false,
            compat: self.compat,
            key_id: self.key_id.clone(),
            user_id: self.user_id.clone(),
            team_id: self.team_id.clone(),
            route: self.route.clone(),
            response: ResponseCapture::new(self.collect_payload),
        }
    }

    /// The answer's usage (decoded by a translator, else scanned), the model the record names and the cost.
    fn usage_and_cost(&mut self) -> (Usage, Option<String>, Option<f64>, bool) {
        let scanned = self.response.usage.take().map(UsageScanner::finish);
        let mut usage = match (self.response.known_usage.take(), scanned) {
            (Some(known), _) => known,
            (None, scanned) => scanned.unwrap_or_default(),
        };
        let model = self.model.take().or_else(|| usage.model.take());
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
        (usage, model, cost, custom_cost)
    }

    /// What the request's limits are charged, for a draft that is not logged: its record's tokens and cost,
    /// without building the record; and the provider and model the metrics name.
    pub fn into_usage(mut self) -> UsageOutcome {
        let (usage, model, cost, _) = self.usage_and_cost();
        UsageOutcome {
            settlement: Settlement {
                tokens_in: usage.tokens_in,
                tokens_out: usage.tokens_out,
                cost,
            },
            provider: self.provider,
            model,
        }
    }

    /// The record, once the response is over. `status` and `duration_ms` come from the finished exchange.
    pub fn into_record(mut self, status: u16, duration_ms: u64) -> LogRecord {
        let (usage, model, cost, custom_cost) = self.usage_and_cost();
        let (request_head, request_head_complete) = if self.collect_payload {
            body_head(&self.request_body, BODY_HEAD_CHARS)
        } else {
            (String::new(), false)
        };
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
            request_type: Some(if self.compat { "compat" } else { "provider" }.into()),
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
            request_head,
            request_head_complete,
            request_size: self.request_body.len() as u64,
            response_head,
            response_head_complete,
            response_size: self.response.size,
            request_body: bodies_stored.then(|| text(&self.request_body)),
            response_body: bodies_stored.then(|| text(response_bytes)),
            bodies_stored,
            config_hash: (!self.config_hash.is_empty()).then_some(self.config_hash),
            key_id: self.key_id,
            user_id: self.user_id,
            team_id: self.team_id,
            route_id: self.route.as_ref().map(|r| r.id.clone()),
            // A catalog model's routing has no versions of its own.
            route_version_id: self
                .route
                .as_ref()
                .map(|r| r.version_id.clone())
                .filter(|v| !v.is_empty()),
            route_path: self.route.map(|r| r.path),
        }
    }
}

/// What an unlogged draft ends as.
#[derive(Debug)]
pub(crate) struct UsageOutcome {
    pub settlement: Settlement,
    pub provider: String,
    pub model: Option<String>,
}

/// What a request's limits are charged once it is over (its record's `tokens_in`, `tokens_out` and `cost`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settlement {
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cost: Option<f64>,
}

impl Settlement {
    pub fn of(record: &LogRecord) -> Self {
        Self {
            tokens_in: record.tokens_in,
            tokens_out: record.tokens_out,
            cost: record.cost,
        }
    }
}

/// What is known of a request before its body is read, for its draft.
pub(crate) struct RequestFacts<'a> {
    pub request_id: ulid::Ulid,
    pub account: &'a str,
    pub gateway_id: &'a str,
    /// The provider slug and the path after it (`universal` and `""` for the universal endpoint).
    pub provider: &'a str,
    pub path: &'a str,
    pub config_hash: &'a str,
    pub authenticated: bool,
}

impl LogDraft {
    /// The draft of a request's log record, from what is known before the body is read.
    pub fn begin(client: &RequestHeader, facts: RequestFacts<'_>) -> LogDraft {
        let controls = Controls::of_request(client);
        let text = |name: &str| {
            client
                .headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let collect_payload = controls.flag(controls::COLLECT_PAYLOAD).unwrap_or(true);
        let request_id = facts.request_id.to_string();
        LogDraft {
            created_at_ms: i64::try_from(facts.request_id.timestamp_ms()).unwrap_or(i64::MAX),
            account_id: facts.account.to_owned(),
            gateway_id: facts.gateway_id.to_owned(),
            provider: facts.provider.to_owned(),
            path: facts.path.to_owned(),
            // A client-chosen event id is kept within a sane length; otherwise the request id serves.
            event_id: text(controls::EVENT_ID)
                .filter(|e| !e.is_empty() && e.len() <= 256)
                .unwrap_or_else(|| request_id.clone()),
            id: request_id,
            metadata: controls.get(controls::METADATA).and_then(parse_metadata),
            collect_payload,
            user_agent: text("user-agent"),
            authenticated: facts.authenticated,
            request_content_type: text("content-type"),
            request_body: Bytes::new(),
            model: None,
            config_hash: facts.config_hash.to_owned(),
            // A malformed header is ignored (the provider's prices apply), as a malformed metadata header is.
            custom_cost: controls
                .text(controls::CUSTOM_COST)
                .and_then(|v| CustomCost::parse(v).ok()),
            step: 0,
            cached: false,
            compat: false,
            key_id: None,
            user_id: None,
            team_id: None,
            route: None,
            response: ResponseCapture::new(collect_payload),
        }
    }
}

impl LogDraft {
    /// The draft of a request that is not logged and whose only use is its usage and cost (a virtual key's or an
    /// identity's token and budget limits): the provider (re-pointed at the step that answers), the client's
    /// `cf-aig-custom-cost`, and later the model and the response's usage scan. Nothing else a record holds is
    /// gathered; [`LogDraft::into_usage`] reads it.
    pub fn for_usage(controls: &Controls<'_>, provider: &str) -> LogDraft {
        LogDraft {
            id: String::new(),
            created_at_ms: 0,
            account_id: String::new(),
            gateway_id: String::new(),
            provider: provider.to_owned(),
            path: String::new(),
            event_id: String::new(),
            metadata: None,
            collect_payload: false,
            user_agent: None,
            authenticated: false,
            request_content_type: None,
            request_body: Bytes::new(),
            model: None,
            config_hash: String::new(),
            custom_cost: controls
                .text(controls::CUSTOM_COST)
                .and_then(|v| CustomCost::parse(v).ok()),
            step: 0,
            cached: false,
            compat: false,
            key_id: None,
            user_id: None,
            team_id: None,
            route: None,
            response: ResponseCapture::new(false),
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
    fn a_usage_only_draft_settles_what_the_record_would_say() {
        let answer =
            br#"{"model":"gpt-4o-2024-08-06","usage":{"prompt_tokens":12,"completion_tokens":30}}"#;
        let mut response = ResponseHeader::build(200, None).unwrap();
        response
            .insert_header("content-type", "application/json")
            .unwrap();
        for (custom, model) in [
            (None, Some("gpt-4o")),
            (None, None),
            (
                Some(r#"{"per_token_in":0.001,"per_token_out":0.002}"#),
                None,
            ),
            (Some("not json"), Some("gpt-4o-mini")),
        ] {
            let mut client =
                RequestHeader::build("POST", b"/v1/a/g/openai/chat/completions", None).unwrap();
            if let Some(custom) = custom {
                client.insert_header(controls::CUSTOM_COST, custom).unwrap();
            }
            let facts = RequestFacts {
                request_id: ulid::Ulid::generate(),
                account: "a",
                gateway_id: "g",
                provider: "openai",
                path: "chat/completions",
                config_hash: "h",
                authenticated: true,
            };
            let mut full = LogDraft::begin(&client, facts);
            full.collect_payload = false;
            full.response = ResponseCapture::new(false);
            let mut usage = LogDraft::for_usage(&Controls::of_request(&client), "openai");
            for draft in [&mut full, &mut usage] {
                draft.model = model.map(str::to_owned);
                draft.response.expect(Dialect::OpenAiChat);
                draft.response.header(&response);
                draft.response.chunk(answer);
                draft.response.end(true);
            }
            let record = full.into_record(200, 5);
            assert!(record.cost.is_some_and(|c| c > 0.0), "{custom:?} {model:?}");
            assert_eq!(
                usage.into_usage().settlement,
                Settlement::of(&record),
                "{custom:?} {model:?}"
            );
            assert_eq!((record.tokens_in, record.tokens_out), (Some(12), Some(30)));
        }
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
