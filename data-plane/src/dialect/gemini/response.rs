//! A Gemini `GenerateContentResponse` → the unified answer (`notes/translation.md` §5.3, §8.3, §8.4). The same
//! borrowed wire types read each stream chunk ([`super::stream`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::super::chat::{ChatResponse, FinishReason, FunctionCall, ToolCall, Usage};
use super::super::codec::TranslateError;
use super::error::GoogleError;
use super::{SIGNATURE_SEPARATOR, opt_cow};

/// One answer, or one chunk of a streamed answer. Fields Gemini sends that the unified model has no place for
/// (safety ratings, citations, grounding) are skipped by the parser.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GenerateContentResponse<'a> {
    #[serde(default, borrow)]
    pub candidates: Vec<Candidate<'a>>,
    #[serde(default, borrow)]
    pub prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub model_version: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub response_id: Option<Cow<'a, str>>,
    /// A stream can end in an error object instead of a chunk.
    #[serde(default, borrow)]
    pub error: Option<GoogleError<'a>>,
}

impl<'a> GenerateContentResponse<'a> {
    /// The first candidate (the codec never asks for more than one).
    pub fn candidate(&self) -> Option<&Candidate<'a>> {
        self.candidates
            .iter()
            .find(|c| c.index.unwrap_or(0) == 0)
            .or(self.candidates.first())
    }

    /// Whether the prompt itself was blocked (no candidate at all, `promptFeedback.blockReason` set).
    pub fn prompt_blocked(&self) -> bool {
        self.candidates.is_empty()
            && self
                .prompt_feedback
                .as_ref()
                .is_some_and(|f| f.block_reason.is_some())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate<'a> {
    /// Absent on a `SAFETY` stop.
    #[serde(default, borrow)]
    pub content: Option<CandidateContent<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub index: Option<u32>,
}

impl<'a> Candidate<'a> {
    pub fn parts(&self) -> &[ResponsePart<'a>] {
        self.content.as_ref().map_or(&[], |c| c.parts.as_slice())
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CandidateContent<'a> {
    #[serde(default, borrow)]
    pub parts: Vec<ResponsePart<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponsePart<'a> {
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub text: Option<Cow<'a, str>>,
    /// A thought summary rather than answer text.
    #[serde(default)]
    pub thought: bool,
    #[serde(default, borrow)]
    pub function_call: Option<ResponseFunctionCall<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub thought_signature: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ResponseFunctionCall<'a> {
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub args: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PromptFeedback<'a> {
    #[serde(default, borrow, deserialize_with = "opt_cow")]
    pub block_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's convention: the prompt includes the cached part (Gemini counts it in already) and the tool-use
    /// prompt; the completion includes the thoughts, which Gemini counts apart from the candidates.
    pub fn to_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count + self.tool_use_prompt_token_count,
            completion_tokens: self.candidates_token_count + self.thoughts_token_count,
            cached_tokens: self.cached_content_token_count,
            cache_creation_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

/// Gemini's `finishReason` in OpenAI's vocabulary; Gemini has no tool-call reason, so `with_calls` (the answer
/// holds function calls) turns a normal stop into `tool_calls`.
pub(super) fn finish_reason(reason: &str, with_calls: bool) -> FinishReason {
    let mapped = match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "LANGUAGE"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        // STOP, and the malformed/unexpected tool-call and OTHER reasons: the answer simply ended (§8.3).
        _ => FinishReason::Stop,
    };
    if with_calls && mapped != FinishReason::ContentFilter {
        FinishReason::ToolCalls
    } else {
        mapped
    }
}

/// A `functionCall` part as OpenAI's tool call: Gemini's id (minted as `call_<n>` when absent, `n` its position
/// among the answer's calls) with the thought signature appended, and the arguments as compact JSON.
pub(super) fn tool_call(
    call: &ResponseFunctionCall<'_>,
    signature: Option<&str>,
    n: u32,
) -> ToolCall {
    let mut id = match call.id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("call_{n}"),
    };
    if let Some(signature) = signature.filter(|s| !s.is_empty()) {
        id.push_str(SIGNATURE_SEPARATOR);
        id.push_str(signature);
    }
    let arguments = match &call.args {
        Some(args) => args.to_string(),
        None => "{}".to_owned(),
    };
    ToolCall {
        id,
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.name.clone().into_owned(),
            arguments,
        },
    }
}

/// A whole `generateContent` answer.
pub(super) fn decode(body: &[u8]) -> Result<ChatResponse, TranslateError> {
    let answer: GenerateContentResponse<'_> =
        serde_json::from_slice(body).map_err(|e| TranslateError::BadResponse(e.to_string()))?;
    let mut resp = ChatResponse {
        id: answer.response_id.as_deref().map(str::to_owned),
        model: answer.model_version.as_deref().map(str::to_owned),
        usage: answer.usage_metadata.map(UsageMetadata::to_usage),
        ..ChatResponse::default()
    };
    // A blocked prompt is a 200 without candidates: an empty, filtered answer, never an error.
    if answer.prompt_blocked() {
        resp.finish_reason = Some(FinishReason::ContentFilter);
        return Ok(resp);
    }
    let Some(candidate) = answer.candidate() else {
        return Err(TranslateError::BadResponse(
            "Gemini answered without candidates".to_owned(),
        ));
    };
    let (mut text, mut reasoning) = (String::new(), String::new());
    for part in candidate.parts() {
        if let Some(call) = &part.function_call {
            let n = resp.tool_calls.len() as u32;
            resp.tool_calls
                .push(tool_call(call, part.thought_signature.as_deref(), n));
        } else if let Some(t) = &part.text {
            if part.thought {
                &mut reasoning
            } else {
                &mut text
            }
            .push_str(t);
        }
    }
    resp.text = (!text.is_empty()).then_some(text);
    resp.reasoning = (!reasoning.is_empty()).then_some(reasoning);
    resp.finish_reason = Some(finish_reason(
        candidate.finish_reason.as_deref().unwrap_or("STOP"),
        !resp.tool_calls.is_empty(),
    ));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoded(v: Value) -> ChatResponse {
        decode(v.to_string().as_bytes()).expect("decodes")
    }

    #[test]
    fn text_thoughts_and_usage() {
        let resp = decoded(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Thinking about it.", "thought": true},
                {"text": "Hello"}, {"text": " world", "thoughtSignature": "c2ln"},
            ]}, "finishReason": "STOP", "index": 0, "safetyRatings": []}],
            "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 40,
                "candidatesTokenCount": 10, "thoughtsTokenCount": 25, "toolUsePromptTokenCount": 5,
                "totalTokenCount": 140},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
        }));
        assert_eq!(
            resp,
            ChatResponse {
                id: Some("resp-1".into()),
                model: Some("gemini-2.5-flash".into()),
                text: Some("Hello world".into()),
                reasoning: Some("Thinking about it.".into()),
                tool_calls: vec![],
                finish_reason: Some(FinishReason::Stop),
                usage: Some(Usage {
                    prompt_tokens: 105,
                    completion_tokens: 35,
                    cached_tokens: 40,
                    cache_creation_tokens: 0,
                    reasoning_tokens: 25,
                }),
            }
        );
    }

    #[test]
    fn function_calls_become_tool_calls_with_minted_ids_and_signatures() {
        let resp = decoded(json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Paris", "unit": "c"}},
             "thoughtSignature": "U0lH"},
            {"functionCall": {"name": "get_weather", "args": {"location": "London"}}},
            {"functionCall": {"id": "given", "name": "ping"}},
        ]}, "finishReason": "STOP"}]}));
        assert_eq!(resp.finish_reason, Some(FinishReason::ToolCalls));
        assert_eq!(resp.text, None);
        let calls: Vec<(&str, &str, &str)> = resp
            .tool_calls
            .iter()
            .map(|c| {
                (
                    c.id.as_str(),
                    c.function.name.as_str(),
                    c.function.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (
                    "call_0__thought__U0lH",
                    "get_weather",
                    r#"{"location":"Paris","unit":"c"}"#
                ),
                ("call_1", "get_weather", r#"{"location":"London"}"#),
                ("given", "ping", "{}"),
            ]
        );
    }

    #[test]
    fn finish_reasons_map_to_openai_values_only() {
        for (gemini, want) in [
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("SAFETY", FinishReason::ContentFilter),
            ("RECITATION", FinishReason::ContentFilter),
            ("BLOCKLIST", FinishReason::ContentFilter),
            ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
            ("SPII", FinishReason::ContentFilter),
            ("IMAGE_SAFETY", FinishReason::ContentFilter),
            ("LANGUAGE", FinishReason::ContentFilter),
            ("MALFORMED_FUNCTION_CALL", FinishReason::Stop),
            ("UNEXPECTED_TOOL_CALL", FinishReason::Stop),
            ("TOO_MANY_TOOL_CALLS", FinishReason::Stop),
            ("OTHER", FinishReason::Stop),
            ("FINISH_REASON_UNSPECIFIED", FinishReason::Stop),
            ("SOMETHING_NEW", FinishReason::Stop),
        ] {
            assert_eq!(finish_reason(gemini, false), want, "{gemini}");
        }
        assert_eq!(finish_reason("STOP", true), FinishReason::ToolCalls);
        assert_eq!(finish_reason("MAX_TOKENS", true), FinishReason::ToolCalls);
        assert_eq!(finish_reason("SAFETY", true), FinishReason::ContentFilter);
    }

    #[test]
    fn a_blocked_prompt_is_an_empty_filtered_answer() {
        let resp = decoded(json!({
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
            "modelVersion": "gemini-2.5-flash"
        }));
        assert_eq!(resp.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!((resp.text, resp.reasoning), (None, None));
        assert!(resp.tool_calls.is_empty());
        assert_eq!(resp.usage.unwrap().prompt_tokens, 12);
    }

    #[test]
    fn a_safety_stop_without_content_and_thoughts_only_length_are_not_errors() {
        let safety = decoded(json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]}));
        assert_eq!(safety.finish_reason, Some(FinishReason::ContentFilter));
        assert_eq!(safety.text, None);
        let length = decoded(
            json!({"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {"promptTokenCount": 3, "thoughtsTokenCount": 50}}),
        );
        assert_eq!(length.finish_reason, Some(FinishReason::Length));
        assert_eq!(length.text, None);
        assert_eq!(length.usage.unwrap().completion_tokens, 50);
    }

    #[test]
    fn unreadable_answers_are_bad_responses() {
        assert!(matches!(
            decode(b"not json"),
            Err(TranslateError::BadResponse(_))
        ));
        assert!(matches!(decode(b"{}"), Err(TranslateError::BadResponse(_))));
    }
}
