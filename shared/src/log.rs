//! The log record: one per request through the data plane (spec §1.5, §3.6). The data plane builds it after the
//! response, ships it off the request path, and the control plane stores it for the logs API.
//!
//! Wire rules as for config documents: unknown fields are ignored, new fields get `#[serde(default)]`.

use serde::{Deserialize, Serialize};

/// How many characters of a body the searchable row keeps (`request_head` / `response_head`).
pub const BODY_HEAD_CHARS: usize = 512;
/// Bodies larger than this are not stored; the row is kept and says so (`*_body_stored: false`).
pub const MAX_STORED_BODY_BYTES: usize = 10 * 1024 * 1024;
/// `cf-aig-metadata` keeps at most this many entries (the first ones).
pub const MAX_METADATA_ENTRIES: usize = 5;

/// One request, as logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// A ULID; also `cf-aig-log-id` (and `cf-aig-request-id` for single-step requests).
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    /// Epoch milliseconds when the request arrived.
    pub created_at_ms: i64,
    /// Provider slug (`openai`, `custom-my-llm`, …).
    pub provider: String,
    /// From the request body, else the response.
    #[serde(default)]
    pub model: Option<String>,
    /// `chat`, `completion`, `embedding`, `responses`, … when the path tells.
    #[serde(default)]
    pub model_type: Option<String>,
    /// The path after the provider slug, as the client sent it.
    pub path: String,
    /// `universal`, `provider` (native form), `compat`, …
    #[serde(default)]
    pub request_type: Option<String>,
    #[serde(default)]
    pub request_content_type: Option<String>,
    #[serde(default)]
    pub response_content_type: Option<String>,
    pub status_code: u16,
    pub success: bool,
    #[serde(default)]
    pub cached: bool,
    /// Milliseconds to the last byte of the response.
    pub duration_ms: u64,
    #[serde(default)]
    pub tokens_in: Option<u64>,
    #[serde(default)]
    pub tokens_out: Option<u64>,
    /// Input tokens served from the provider's prompt cache (part of `tokens_in`).
    #[serde(default)]
    pub cached_tokens_in: Option<u64>,
    /// USD.
    #[serde(default)]
    pub cost: Option<f64>,
    /// Whether `cost` came from `cf-aig-custom-cost`.
    #[serde(default)]
    pub custom_cost: bool,
    /// `cf-aig-metadata` kept as a JSON object string (first five entries; string, number or boolean values).
    #[serde(default)]
    pub metadata: Option<String>,
    /// `cf-aig-event-id`, else generated.
    pub event_id: String,
    /// Universal-endpoint step that served it (0 for the primary).
    #[serde(default)]
    pub step: u32,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Whether a valid `cf-aig-authorization` came with the request.
    #[serde(default)]
    pub authenticated: bool,
    pub request_head: String,
    pub request_head_complete: bool,
    pub request_size: u64,
    pub response_head: String,
    pub response_head_complete: bool,
    pub response_size: u64,
    /// The full request body when it was collected and not over [`MAX_STORED_BODY_BYTES`].
    #[serde(default)]
    pub request_body: Option<String>,
    #[serde(default)]
    pub response_body: Option<String>,
    /// False when payload collection was off (`cf-aig-collect-log-payload: false`) or a body was too large.
    #[serde(default)]
    pub bodies_stored: bool,
    /// The content hash of the gateway config that served the request.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// The virtual key that authenticated the request (its id, never its secret), and the key's user and team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// The dynamic route (`model: "dynamic/<name>"`) that chose the model: its id, the deployed version's id, and
    /// the element ids walked, joined by `>` (`start>tier>gold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_path: Option<String>,
}

/// The first `max_chars` characters of a body as text, and whether that is all of it. Bytes that are not UTF-8
/// are replaced, so a binary body still gets a readable head.
pub fn body_head(body: &[u8], max_chars: usize) -> (String, bool) {
    // Only the first `max_chars` characters matter, and a character (or the U+FFFD that replaces an invalid
    // sequence) takes at most 4 bytes: decoding a window of 4 × (max_chars + 1) bytes finds the cut without
    // validating (or copying) the rest of a body that may be megabytes long.
    let window = &body[..body
        .len()
        .min(max_chars.saturating_add(1).saturating_mul(4))];
    let text = String::from_utf8_lossy(window);
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => (text[..cut].to_owned(), false),
        None => (text.into_owned(), window.len() == body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_cut_by_characters_and_say_whether_they_are_complete() {
        assert_eq!(body_head(b"hello", 10), ("hello".into(), true));
        assert_eq!(body_head(b"hello", 3), ("hel".into(), false));
        assert_eq!(body_head("héllo".as_bytes(), 2), ("hé".into(), false));
        assert_eq!(body_head(&[0xff, b'a'], 5), ("\u{fffd}a".into(), true));
        assert_eq!(body_head(b"abc", 3), ("abc".into(), true));
        assert_eq!(body_head(b"", 3), (String::new(), true));
        // Four-byte characters up to the cut and past the decoded window.
        let emoji = "😀".repeat(1000);
        assert_eq!(body_head(emoji.as_bytes(), 512), ("😀".repeat(512), false));
        assert_eq!(body_head(emoji.as_bytes(), 1000), (emoji.clone(), true));
        assert_eq!(
            body_head(&vec![0xff; 5000], 512),
            ("\u{fffd}".repeat(512), false)
        );
    }

    #[test]
    fn records_tolerate_unknown_fields_and_missing_optionals() {
        let json = r#"{"id":"01J","account_id":"a","gateway_id":"g","created_at_ms":1,"provider":"openai",
            "path":"chat/completions","status_code":200,"success":true,"duration_ms":5,"event_id":"e",
            "request_head":"","request_head_complete":true,"request_size":0,"response_head":"",
            "response_head_complete":true,"response_size":0,"a_future_field":1}"#;
        let r: LogRecord = serde_json::from_str(json).unwrap();
        assert_eq!(r.tokens_in, None);
        assert!(!r.cached);
    }
}
