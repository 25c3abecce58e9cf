//! The universal endpoint's request body (spec §2.1 form 3): a JSON array of steps (a single object is accepted,
//! as the Workers binding sends it), each `{provider, endpoint, headers?, query?, config?}`. As in Cloudflare's
//! docs, `query` is the JSON body sent to the provider.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::StepConfig;
use crate::error::AiGatewayError;
use crate::proxy::retry::{Backoff, MAX_ATTEMPTS, MAX_RETRY_DELAY_MS};

/// Most steps one request may carry [inferred: Cloudflare documents no maximum; a fallback chain longer than this
/// is a mistake, and each step may cost a provider call].
pub(crate) const MAX_STEPS: usize = 16;

/// One parsed step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UniversalStep {
    pub provider: String,
    /// The provider path, without a leading slash.
    pub endpoint: String,
    /// The query string, when `endpoint` carries one.
    pub query_string: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The body sent to the provider (`query`, serialised); empty when the step has none.
    pub body: Bytes,
    pub config: StepConfig,
}

/// Parses and checks the whole body; the error names the step and field.
pub(crate) fn parse(body: &[u8]) -> Result<Vec<UniversalStep>, AiGatewayError> {
    let document: Value = serde_json::from_slice(body).map_err(|e| {
        AiGatewayError::bad_request(format!(
            "the universal endpoint expects a JSON array of steps: {e}"
        ))
    })?;
    let items = match document {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(AiGatewayError::bad_request(
                "the universal endpoint expects a JSON array of steps",
            ));
        }
    };
    if items.is_empty() {
        return Err(AiGatewayError::bad_request(
            "the universal endpoint needs at least one step",
        ));
    }
    if items.len() > MAX_STEPS {
        return Err(AiGatewayError::bad_request(format!(
            "the universal endpoint takes at most {MAX_STEPS} steps, got {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            step(item).map_err(|m| AiGatewayError::bad_request(format!("step {i}: {m}")))
        })
        .collect()
}

fn step(item: Value) -> Result<UniversalStep, String> {
    let Value::Object(mut object) = item else {
        return Err(format!("expected an object, got {}", kind(&item)));
    };
    let provider = match object.remove("provider") {
        Some(Value::String(p)) if !p.is_empty() => p,
        Some(other) => {
            return Err(format!(
                "provider must be a non-empty string, got {}",
                kind(&other)
            ));
        }
        None => return Err("provider is required".into()),
    };
    let endpoint = match object.remove("endpoint") {
        Some(Value::String(e)) => e,
        Some(other) => return Err(format!("endpoint must be a string, got {}", kind(&other))),
        None => return Err("endpoint is required".into()),
    };
    let endpoint = endpoint.trim_start_matches('/');
    let (endpoint, query_string) = match endpoint.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (endpoint.to_owned(), None),
    };
    let headers = match object.remove("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                Value::Number(n) => Ok((k, n.to_string())),
                Value::Bool(b) => Ok((k, b.to_string())),
                other => Err(format!(
                    "headers.{k} must be a string, got {}",
                    kind(&other)
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("headers must be an object, got {}", kind(&other))),
    };
    let body = match object.remove("query") {
        None | Some(Value::Null) => Bytes::new(),
        Some(query) => Bytes::from(serde_json::to_vec(&query).map_err(|e| e.to_string())?),
    };
    let config = match object.remove("config") {
        None | Some(Value::Null) => StepConfig::default(),
        Some(Value::Object(map)) => config(&map)?,
        Some(other) => return Err(format!("config must be an object, got {}", kind(&other))),
    };
    Ok(UniversalStep {
        provider,
        endpoint,
        query_string,
        headers,
        body,
        config,
    })
}

fn config(map: &serde_json::Map<String, Value>) -> Result<StepConfig, String> {
    let whole = |name: &str, max: u64, min: u64| -> Result<Option<u64>, String> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| (min..=max).contains(n))
                .map(Some)
                .ok_or_else(|| format!("config.{name} must be a whole number from {min} to {max}")),
        }
    };
    let backoff =
        match map.get("backoff") {
            None | Some(Value::Null) => None,
            Some(Value::String(raw)) => Some(Backoff::parse(raw).ok_or_else(|| {
                "config.backoff must be constant, linear or exponential".to_owned()
            })?),
            Some(_) => return Err("config.backoff must be constant, linear or exponential".into()),
        };
    Ok(StepConfig {
        request_timeout: whole("requestTimeout", u64::from(u32::MAX), 1)?
            .map(Duration::from_millis),
        max_attempts: whole("maxAttempts", u64::from(MAX_ATTEMPTS), 1)?.map(|n| n as u32),
        retry_delay: whole("retryDelay", MAX_RETRY_DELAY_MS, 0)?.map(Duration::from_millis),
        backoff,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_steps_parses_with_headers_body_and_config() {
        let steps = parse(
            br#"[{"provider":"workers-ai","endpoint":"@cf/meta/llama-3.1-8b-instruct",
                  "headers":{"Authorization":"Bearer x"},"query":{"prompt":"hi"},
                  "config":{"requestTimeout":1000,"maxAttempts":3,"retryDelay":100,"backoff":"linear"}},
                 {"provider":"openai","endpoint":"/chat/completions?x=1","query":{"model":"gpt-4o-mini"}}]"#,
        )
        .unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].provider, "workers-ai");
        assert_eq!(
            steps[0].headers,
            [("Authorization".to_owned(), "Bearer x".to_owned())]
        );
        assert_eq!(&steps[0].body[..], br#"{"prompt":"hi"}"#);
        assert_eq!(
            steps[0].config,
            StepConfig {
                request_timeout: Some(Duration::from_millis(1000)),
                max_attempts: Some(3),
                retry_delay: Some(Duration::from_millis(100)),
                backoff: Some(Backoff::Linear),
            }
        );
        assert_eq!(steps[1].endpoint, "chat/completions");
        assert_eq!(steps[1].query_string.as_deref(), Some("x=1"));
        assert_eq!(steps[1].config, StepConfig::default());
    }

    #[test]
    fn a_single_object_is_one_step() {
        let steps =
            parse(br#"{"provider":"openai","endpoint":"chat/completions","query":{}}"#).unwrap();
        assert_eq!(steps.len(), 1);
    }

    #[test]
    fn bad_bodies_are_refused_with_the_step_and_field_named() {
        let cases: [(&[u8], &str); 10] = [
            (b"not json", "JSON array"),
            (b"42", "JSON array"),
            (b"[]", "at least one step"),
            (br#"[1]"#, "step 0: expected an object"),
            (br#"[{"endpoint":"x"}]"#, "step 0: provider is required"),
            (
                br#"[{"provider":"openai"}]"#,
                "step 0: endpoint is required",
            ),
            (
                br#"[{"provider":"openai","endpoint":"x"},{"provider":7,"endpoint":"x"}]"#,
                "step 1: provider",
            ),
            (
                br#"[{"provider":"openai","endpoint":"x","headers":{"a":{}}}]"#,
                "headers.a",
            ),
            (
                br#"[{"provider":"openai","endpoint":"x","config":{"maxAttempts":9}}]"#,
                "config.maxAttempts",
            ),
            (
                br#"[{"provider":"openai","endpoint":"x","config":{"backoff":"soon"}}]"#,
                "config.backoff",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(body).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains(expected),
                "{:?}: {}",
                String::from_utf8_lossy(body),
                err.message
            );
        }
        let many = format!(
            "[{}]",
            vec![r#"{"provider":"openai","endpoint":"x"}"#; MAX_STEPS + 1].join(",")
        );
        assert!(
            parse(many.as_bytes())
                .unwrap_err()
                .message
                .contains("at most")
        );
    }
}
