//! A gateway's `otel` exporters (spec §1.2, §3.16) as both planes read them from the stored settings.
//!
//! Cloudflare's `authorization` names a Secrets Store secret that holds the `Authorization` header's value.
//! Gatehouse has no secrets store of its own, so the value itself is given and kept as a stored secret is
//! [inferred]: the control plane seals it with the master key before it is stored (`sealed:` + `MasterKey::seal`),
//! keeps a masked preview beside it (`authorization_preview`), and answers the preview in its place; the nodes open
//! it when they compile the gateway. A PUT that sends the preview back (a client that read the gateway and writes
//! it again) keeps the sealed value of the exporter with the same URL.

use std::collections::BTreeMap;

use serde_json::Value;

/// Marks a sealed `authorization` in stored settings and config documents.
pub const SEALED_AUTHORIZATION_PREFIX: &str = "sealed:";
/// The stored masked preview of a sealed `authorization` (Gatehouse's, never sent by clients).
pub const AUTHORIZATION_PREVIEW: &str = "authorization_preview";

/// One exporter of the `otel` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelExporter {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// As stored: sealed (see [`SEALED_AUTHORIZATION_PREFIX`]) or, in settings written before sealing, plain.
    pub authorization: Option<String>,
    /// `json` (the default) or `protobuf`.
    pub content_type: Option<String>,
}

impl OtelExporter {
    /// One entry of the list; `Err` says why it is unusable (the control plane refuses such bodies; a node skips
    /// such entries, so an exporter's config never affects traffic).
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let entry = value.as_object().ok_or("an exporter is not an object")?;
        let url = entry
            .get("url")
            .and_then(Value::as_str)
            .ok_or("an exporter has no url")?
            .to_owned();
        let headers = match entry.get("headers") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|v| (k.clone(), v.to_owned()))
                        .ok_or_else(|| format!("header '{k}' is not a string"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("headers is not an object".into()),
        };
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            url,
            headers,
            authorization: text("authorization").filter(|a| !a.is_empty()),
            content_type: text("content_type"),
        })
    }

    /// Every entry of an `otel` setting, in order; a setting that is not a list has none.
    pub fn list(setting: Option<&Value>) -> Vec<Result<Self, String>> {
        setting
            .and_then(Value::as_array)
            .map(|items| items.iter().map(Self::from_value).collect())
            .unwrap_or_default()
    }
}

/// What the API shows instead of a secret header value: its first characters up to a space (the scheme, e.g.
/// `Bearer`) and its last four, never more than a quarter of it.
pub fn preview(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let tail = if chars.len() >= 16 { 4 } else { 0 };
    let scheme: String = secret
        .split_once(' ')
        .map_or(String::new(), |(s, _)| format!("{s} "));
    let last: String = chars[chars.len() - tail..].iter().collect();
    format!("{scheme}****{last}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_are_read_and_unusable_ones_say_why() {
        let list = OtelExporter::list(Some(&json!([
            {"url": "http://c:4318/v1/traces", "headers": {"x-team": "ml"}, "authorization": "sealed:v1.abc"},
            {"url": "http://c", "headers": {"x": 1}},
            "nope"
        ])));
        let first = list[0].as_ref().unwrap();
        assert_eq!(first.headers["x-team"], "ml");
        assert_eq!(first.authorization.as_deref(), Some("sealed:v1.abc"));
        assert_eq!(first.content_type, None);
        assert!(list[1].is_err() && list[2].is_err());
        assert!(OtelExporter::list(Some(&json!({"url": "x"}))).is_empty());
    }

    #[test]
    fn previews_show_the_scheme_and_little_else() {
        assert_eq!(preview("Bearer abcdefghijklmnop1234"), "Bearer ****1234");
        assert_eq!(preview("short"), "****");
        assert_eq!(preview("Basic dXNlcjpwYXNz"), "Basic ****YXNz");
    }
}
