//! The one pass over a JSON object body that yields both the peek (`model`, `stream`) and the output cap, so
//! admission does not parse the body a second time for its budgets' worst case.
//!
//! It must answer exactly what [`RequestPeek::of`] and [`super::output_cap`] answer apart. Its struct has their
//! fields with the same types, except that a cap is a [`Count`], which takes any JSON value (so an odd cap cannot
//! fail the peek): where [`super::output_cap`] would have failed on a non-count, the cap is then `None`, which is
//! what that failure gives. Whatever else fails this pass (a repeated field, a config that is not an object) makes
//! the caller fall back to the two separate reads.

use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::RequestPeek;

#[derive(serde::Deserialize)]
pub(super) struct PeekAndCaps<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<Value>,
    max_tokens: Option<Count>,
    max_completion_tokens: Option<Count>,
    max_output_tokens: Option<Count>,
    #[serde(rename = "generationConfig")]
    generation_config: Option<GenerationConfig>,
    #[serde(rename = "inferenceConfig")]
    inference_config: Option<InferenceConfig>,
}

#[derive(serde::Deserialize)]
struct GenerationConfig {
    #[serde(rename = "maxOutputTokens")]
    max_output_tokens: Option<Count>,
}

#[derive(serde::Deserialize)]
struct InferenceConfig {
    #[serde(rename = "maxTokens")]
    max_tokens: Option<Count>,
}

impl PeekAndCaps<'_> {
    pub(super) fn into_parts(self) -> (RequestPeek, Option<u64>) {
        let peek = RequestPeek {
            model: self.model.map(Cow::into_owned),
            stream: matches!(self.stream, Some(Value::Bool(true))),
        };
        let fields = [
            self.max_completion_tokens,
            self.max_tokens,
            self.max_output_tokens,
            self.generation_config.and_then(|g| g.max_output_tokens),
            self.inference_config.and_then(|i| i.max_tokens),
        ];
        // A field that is not a count fails a typed read of the caps as a whole: no cap.
        let cap = if fields.contains(&Some(Count::Other)) {
            None
        } else {
            fields.into_iter().find_map(|f| match f {
                Some(Count::Tokens(n)) => Some(n),
                _ => None,
            })
        };
        (peek, cap)
    }
}

/// A cap field's value: a count (what a `u64` accepts: a non-negative JSON integer that fits), or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Tokens(u64),
    Other,
}

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Count;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count::Tokens(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                Ok(u64::try_from(n).map_or(Count::Other, Count::Tokens))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Count, E> {
                Ok(Count::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count::Other)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count::Other)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RequestPeek, output_cap};

    /// The one pass answers what the two reads answer, on every body (falling back on the odd ones).
    #[test]
    fn one_pass_answers_what_the_two_reads_answer() {
        let bodies: &[&[u8]] = &[
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":10}"#,
            br#"{"max_completion_tokens":20,"max_tokens":10,"model":"m","stream":true}"#,
            br#"{"max_output_tokens":30}"#,
            br#"{"generationConfig":{"maxOutputTokens":40,"temperature":1}}"#,
            br#"{"inferenceConfig":{"maxTokens":50}}"#,
            br#"{"max_tokens":0}"#,
            br#"{"max_tokens":-0}"#,
            br#"{"max_tokens":18446744073709551615}"#,
            br#"{"max_tokens":18446744073709551616}"#,
            br#"{"max_tokens":-1,"max_completion_tokens":5}"#,
            br#"{"max_tokens":1.5}"#,
            br#"{"max_tokens":1e3}"#,
            br#"{"max_tokens":"10"}"#,
            br#"{"max_tokens":null,"max_output_tokens":7}"#,
            br#"{"max_tokens":[1],"model":"m"}"#,
            br#"{"max_tokens":{"a":1},"model":"m"}"#,
            br#"{"max_tokens":true}"#,
            br#"{"max_tokens":1,"max_tokens":2,"model":"m"}"#,
            br#"{"model":"a","model":"b","max_tokens":3}"#,
            br#"{"model":5,"max_tokens":3}"#,
            br#"{"model":null,"stream":"yes","max_tokens":3}"#,
            br#"{"generationConfig":5,"model":"m"}"#,
            br#"{"generationConfig":[6],"model":"m"}"#,
            br#"{"generationConfig":[6,7],"model":"m"}"#,
            br#"{"generationConfig":null,"inferenceConfig":{"maxTokens":"x"},"max_tokens":4}"#,
            br#"{"inferenceConfig":{"maxTokens":1,"maxTokens":2}}"#,
            br#"{"generationConfig":{"maxOutputTokens":-3}}"#,
            br#"  {"model":"esc\u0061ped","max_tokens":9}  "#,
            br#"["m",true,1]"#,
            br#"{"model":"m"} trailing"#,
            br#"{"model":"m""#,
            b"{}",
            b"",
            b"not json",
            b"binary\xff",
            b"\n\t[]",
        ];
        for body in bodies {
            let shown = String::from_utf8_lossy(body);
            let (peek, cap) = RequestPeek::with_output_cap(body);
            assert_eq!(peek, RequestPeek::of(body), "{shown}");
            let cap = cap.map_or_else(|| output_cap(body), |c| c.for_body(body).unwrap());
            assert_eq!(cap, output_cap(body), "{shown}");
        }
    }

    #[test]
    fn a_cap_holds_only_for_the_bytes_it_was_read_from() {
        let body = bytes::Bytes::from_static(br#"{"model":"m","max_tokens":12}"#);
        let (peek, cap) = RequestPeek::with_output_cap(&body);
        assert_eq!(peek.model.as_deref(), Some("m"));
        let cap = cap.expect("a plain object is read in one pass");
        assert_eq!(
            cap.for_body(&body.clone()),
            Some(Some(12)),
            "a clone shares the bytes"
        );
        let copy = bytes::Bytes::copy_from_slice(&body);
        assert_eq!(
            cap.for_body(&copy),
            None,
            "the same text elsewhere (a rewritten body) is read again"
        );
        assert_eq!(cap.for_body(&body[..body.len() - 1]), None);
        let (_, none) = RequestPeek::with_output_cap(br#"{"messages":[]}"#);
        assert_eq!(none.unwrap().cap, None);
        assert!(RequestPeek::with_output_cap(b"not json").1.is_none());
    }
}
