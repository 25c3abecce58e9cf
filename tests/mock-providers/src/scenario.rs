//! What kind of answer a request gets: the `x-mock-scenario` request header, shared by every provider's mock.
//!
//! Each provider renders a scenario in its own wire format (an OpenAI `tool_calls` array, an Anthropic `tool_use`
//! block, …); this module only names them, so a test can ask every provider for "a tool call" the same way.

use http::HeaderMap;

/// The request header that picks the scenario.
pub const HEADER: &str = "x-mock-scenario";

/// The arguments of the scenario tool calls, in call order (`tool_call` uses the first only).
pub(crate) const TOOL_CALL_LOCATIONS: [&str; 2] = ["Paris", "London"];

/// The reasoning text the `reasoning` scenario thinks before answering.
pub(crate) const REASONING_TEXT: &str = "Let me think about this step by step.";

/// Cache-read tokens reported by the `cached` scenario (part of the prompt tokens).
pub(crate) const CACHED_READ_TOKENS: u64 = 8;

/// Cache-write tokens reported by the `cached` scenario where the provider reports writes.
pub(crate) const CACHED_WRITE_TOKENS: u64 = 4;

/// The kind of answer the mock gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Scenario {
    /// A plain text answer (the default).
    #[default]
    Text,
    /// One call to the request's first tool, arguments `{"location":"Paris"}`.
    ToolCall,
    /// Two calls to the request's first tool: Paris, then London.
    ParallelToolCalls,
    /// Reasoning ([`REASONING_TEXT`]) first, then the text answer.
    Reasoning,
    /// The answer is cut at the token limit.
    Length,
    /// The provider's safety stop.
    ContentFilter,
    /// A text answer whose usage reports cache reads (and writes where the provider has them).
    Cached,
}

impl Scenario {
    /// The scenario a header value names; `None` for an unknown name.
    pub(crate) fn parse(value: &str) -> Option<Scenario> {
        Some(match value.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Scenario::Text,
            "tool_call" => Scenario::ToolCall,
            "parallel_tool_calls" => Scenario::ParallelToolCalls,
            "reasoning" => Scenario::Reasoning,
            "length" => Scenario::Length,
            "content_filter" => Scenario::ContentFilter,
            "cached" => Scenario::Cached,
            _ => return None,
        })
    }

    /// How many tool calls the answer makes (0 for the non-tool scenarios).
    pub(crate) fn tool_calls(self) -> usize {
        match self {
            Scenario::ToolCall => 1,
            Scenario::ParallelToolCalls => 2,
            _ => 0,
        }
    }
}

/// The scenario a request asks for; [`Scenario::Text`] when the header is absent or unknown. The handler uses
/// the strict [`try_scenario`] and hands the result to every mock as `Answer::scenario`; this lenient form is for
/// code that only has the headers.
#[allow(dead_code)]
pub(crate) fn scenario(headers: &HeaderMap) -> Scenario {
    try_scenario(headers).unwrap_or_default()
}

/// Like [`scenario`], but an unknown or non-ASCII value is an error message, for mocks that answer a typo with a
/// 400 rather than silently falling back to text.
pub(crate) fn try_scenario(headers: &HeaderMap) -> Result<Scenario, String> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(Scenario::Text);
    };
    let value = value
        .to_str()
        .map_err(|_| format!("{HEADER}: not visible ASCII"))?;
    Scenario::parse(value).ok_or_else(|| {
        format!(
            "{HEADER}: expected text, tool_call, parallel_tool_calls, reasoning, length, content_filter or cached, \
             got {value:?}"
        )
    })
}

/// The arguments JSON of the scenario's `i`th tool call.
pub(crate) fn tool_call_arguments(i: usize) -> String {
    let location = TOOL_CALL_LOCATIONS[i % TOOL_CALL_LOCATIONS.len()];
    format!(r#"{{"location":"{location}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, value.parse().unwrap());
        h
    }

    #[test]
    fn every_scenario_name_parses_and_absence_is_text() {
        assert_eq!(scenario(&HeaderMap::new()), Scenario::Text);
        for (name, want) in [
            ("text", Scenario::Text),
            ("tool_call", Scenario::ToolCall),
            ("parallel_tool_calls", Scenario::ParallelToolCalls),
            ("reasoning", Scenario::Reasoning),
            ("length", Scenario::Length),
            ("content_filter", Scenario::ContentFilter),
            ("Cached", Scenario::Cached),
        ] {
            assert_eq!(scenario(&with(name)), want, "{name}");
        }
    }

    #[test]
    fn an_unknown_scenario_is_text_or_an_error_when_asked_strictly() {
        assert_eq!(scenario(&with("nope")), Scenario::Text);
        assert!(try_scenario(&with("nope")).is_err());
    }

    #[test]
    fn tool_call_arguments_follow_the_documented_locations() {
        assert_eq!(tool_call_arguments(0), r#"{"location":"Paris"}"#);
        assert_eq!(tool_call_arguments(1), r#"{"location":"London"}"#);
        assert_eq!(Scenario::ParallelToolCalls.tool_calls(), 2);
    }
}
