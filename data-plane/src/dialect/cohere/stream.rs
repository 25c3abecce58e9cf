//! Cohere v2's chat stream → unified [`StreamEvent`]s, decoded as the bytes arrive (`notes/translation.md` §7.1).
//!
//! Cohere frames are `event: <type>` + `data: {"type": <type>, …}`. The `event:` name picks the frame's shape, so
//! each frame is parsed once, straight into the struct for its type, borrowing its strings; the JSON `type` is read
//! only when a frame comes without an `event:` line.
//!
//! | Cohere | unified |
//! |---|---|
//! | `message-start {id}` | `Start` |
//! | `content-delta {delta.message.content.text \| thinking}` | `TextDelta` / `ReasoningDelta` |
//! | `tool-plan-delta {delta.message.tool_plan}` | `TextDelta` (the plan is the turn's text, as in `response.rs`) |
//! | `tool-call-start {delta.message.tool_calls: {id, function: {name, arguments}}}` | `ToolCallStart` (+ `ToolCallArgs`) |
//! | `tool-call-delta {…function.arguments}` | `ToolCallArgs` |
//! | `message-end {delta: {finish_reason, usage}}` | `Finish` + `Usage` |
//! | `content-start/-end`, `tool-call-end`, `citation-*`, `debug` | nothing |

use std::borrow::Cow;

use serde::Deserialize;

use super::response::{Arguments, CohereUsage};
use super::{failed_finish, finish_reason};
use crate::dialect::chat::{FinishReason, ProviderError, StreamEvent};
use crate::dialect::codec::StreamDecoder;
use crate::dialect::frames::{SseEvent, SseFrames};

/// The state of one streamed answer.
#[derive(Debug, Default)]
pub struct CohereStreamDecoder {
    frames: SseFrames,
    /// The unified index of the tool call being streamed: tool calls are numbered here, in the order they start,
    /// rather than trusting Cohere's `index` to be the position among this answer's calls.
    open_tool: Option<u32>,
    tool_calls: u32,
    /// Text, thinking or a tool call was passed on (decides what an `ERROR` finish becomes).
    produced: bool,
    /// `message-end` came, or the stream failed: nothing more is decoded.
    ended: bool,
}

impl CohereStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn frame(&mut self, frame: SseEvent, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let data = frame.data.as_str();
        let kind: Cow<'_, str> = if frame.event.is_empty() {
            match parse::<TypeOnly<'_>>(data) {
                Ok(t) => t.kind.unwrap_or(Cow::Borrowed("")),
                Err(e) => return self.fail(e, out),
            }
        } else {
            Cow::Borrowed(frame.event.as_str())
        };
        if let Err(e) = self.event(&kind, data, out) {
            self.fail(e, out);
        }
    }

    fn event(&mut self, kind: &str, data: &str, out: &mut Vec<StreamEvent>) -> Result<(), String> {
        match kind {
            "message-start" => {
                let start: MessageStart<'_> = parse(data)?;
                out.push(StreamEvent::Start {
                    id: start.id.map(Cow::into_owned),
                    model: None,
                });
            }
            "content-delta" => {
                let Some(content) = parse::<WithMessage<ContentMessage<'_>>>(data)?
                    .message()
                    .and_then(|m| m.content)
                else {
                    return Ok(());
                };
                if let Some(thinking) = content.thinking.filter(|t| !t.is_empty()) {
                    self.produced = true;
                    out.push(StreamEvent::ReasoningDelta(thinking.into_owned()));
                }
                if let Some(text) = content.text.filter(|t| !t.is_empty()) {
                    self.produced = true;
                    out.push(StreamEvent::TextDelta(text.into_owned()));
                }
            }
            "tool-plan-delta" => {
                let plan = parse::<WithMessage<PlanMessage<'_>>>(data)?
                    .message()
                    .and_then(|m| m.tool_plan);
                if let Some(plan) = plan.filter(|p| !p.is_empty()) {
                    self.produced = true;
                    out.push(StreamEvent::TextDelta(plan.into_owned()));
                }
            }
            "tool-call-start" => {
                let call = parse::<WithMessage<ToolCallMessage<'_>>>(data)?
                    .message()
                    .and_then(|m| m.tool_calls)
                    .ok_or("tool-call-start without a tool call")?;
                let index = self.tool_calls;
                self.tool_calls += 1;
                self.open_tool = Some(index);
                self.produced = true;
                let function = call.function.unwrap_or_default();
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call
                        .id
                        .map_or_else(|| format!("call_{index}"), Cow::into_owned),
                    name: function.name.map(Cow::into_owned).unwrap_or_default(),
                });
                self.arguments(index, function.arguments, out);
            }
            "tool-call-delta" => {
                let function = parse::<WithMessage<ToolCallMessage<'_>>>(data)?
                    .message()
                    .and_then(|m| m.tool_calls)
                    .and_then(|c| c.function);
                let (Some(index), Some(function)) = (self.open_tool, function) else {
                    return Ok(());
                };
                self.arguments(index, function.arguments, out);
            }
            "tool-call-end" => self.open_tool = None,
            "message-end" => {
                let end = parse::<MessageEnd<'_>>(data)?.delta.unwrap_or_default();
                self.ended = true;
                let raw = end.finish_reason.as_deref().unwrap_or("COMPLETE");
                let reason = match finish_reason(raw) {
                    Some(FinishReason::Stop) if self.tool_calls > 0 => FinishReason::ToolCalls,
                    Some(FinishReason::ToolCalls) if self.tool_calls == 0 => FinishReason::Stop,
                    Some(reason) => reason,
                    // ERROR/TIMEOUT after an answer was streamed: the client keeps it (§8.3).
                    None if self.produced => FinishReason::Stop,
                    None => {
                        out.push(StreamEvent::Error(failed_finish(raw)));
                        return Ok(());
                    }
                };
                out.push(StreamEvent::Finish(reason));
                if let Some(usage) = end.usage {
                    out.push(StreamEvent::Usage(usage.to_usage()));
                }
            }
            // content-start/-end carry no text; citations and debug frames have no unified counterpart.
            _ => {
                // A frame with no type but a message is how Cohere words a failure.
                if kind.is_empty()
                    && let Ok(ErrorFrame {
                        message: Some(message),
                    }) = parse::<ErrorFrame<'_>>(data)
                {
                    self.ended = true;
                    out.push(StreamEvent::Error(ProviderError::new(
                        502,
                        message.into_owned(),
                    )));
                }
            }
        }
        Ok(())
    }

    fn arguments(
        &mut self,
        index: u32,
        arguments: Option<Arguments<'_>>,
        out: &mut Vec<StreamEvent>,
    ) {
        let fragment = match arguments {
            None => return,
            Some(a) => a.into_string(),
        };
        if !fragment.is_empty() {
            out.push(StreamEvent::ToolCallArgs { index, fragment });
        }
    }

    fn fail(&mut self, why: String, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        out.push(StreamEvent::Error(ProviderError::new(
            502,
            format!("the provider's stream could not be read: {why}"),
        )));
    }
}

impl StreamDecoder for CohereStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        let mut frames = std::mem::take(&mut self.frames);
        frames.feed(bytes, |frame| self.frame(frame, out));
        self.frames = frames;
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        let mut frames = std::mem::take(&mut self.frames);
        frames.finish(|frame| self.frame(frame, out));
        self.frames = frames;
        if !self.ended {
            // Without `message-end` the answer is cut, however the connection ended.
            self.ended = true;
            let why = if complete {
                "the provider's stream ended before message-end"
            } else {
                "the provider's stream broke off"
            };
            out.push(StreamEvent::Error(ProviderError::new(502, why)));
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, String> {
    serde_json::from_str(data).map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorFrame<'a> {
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// `{delta: {message: M}}`, the envelope of every content and tool frame.
#[derive(Deserialize)]
struct WithMessage<M> {
    #[serde(default = "none")]
    delta: Option<MessageDelta<M>>,
}

#[derive(Deserialize)]
struct MessageDelta<M> {
    #[serde(default = "none")]
    message: Option<M>,
}

fn none<T>() -> Option<T> {
    None
}

impl<M> WithMessage<M> {
    fn message(self) -> Option<M> {
        self.delta.and_then(|d| d.message)
    }
}

#[derive(Deserialize)]
struct ContentMessage<'a> {
    #[serde(borrow, default)]
    content: Option<ContentPiece<'a>>,
}

#[derive(Deserialize)]
struct ContentPiece<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PlanMessage<'a> {
    #[serde(borrow, default)]
    tool_plan: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolCallMessage<'a> {
    #[serde(borrow, default)]
    tool_calls: Option<ToolCallPiece<'a>>,
}

#[derive(Deserialize)]
struct ToolCallPiece<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionPiece<'a>>,
}

#[derive(Default, Deserialize)]
struct FunctionPiece<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Arguments<'a>>,
}

#[derive(Deserialize)]
struct MessageEnd<'a> {
    #[serde(borrow, default)]
    delta: Option<EndDelta<'a>>,
}

#[derive(Default, Deserialize)]
struct EndDelta<'a> {
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<CohereUsage>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::chat::Usage;

    fn run(chunks: &[&[u8]], complete: bool) -> Vec<StreamEvent> {
        let mut d = CohereStreamDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out);
        }
        d.finish(complete, &mut out);
        out
    }

    /// The whole stream at once, cut at every byte in two, and byte by byte: always the same events.
    fn all_ways(stream: &[u8]) -> Vec<StreamEvent> {
        let whole = run(&[stream], true);
        for cut in 1..stream.len() {
            assert_eq!(
                run(&[&stream[..cut], &stream[cut..]], true),
                whole,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(&bytes, true), whole, "byte by byte");
        whole
    }

    fn frame(event: &str, data: &str) -> String {
        format!("event: {event}\ndata: {data}\n\n")
    }

    const TEXT_STREAM: &str = concat!(
        "event: message-start\ndata: {\"id\":\"29f14a5a\",\"type\":\"message-start\",\"delta\":{\"message\":{\"role\":\"assistant\",\"content\":[],\"tool_plan\":\"\",\"tool_calls\":[],\"citations\":[]}}}\n\n",
        "event: content-start\ndata: {\"type\":\"content-start\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
        "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hé\"}}}}\n\n",
        "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\" \\\"there\\\"\"}}}}\n\n",
        "event: content-end\ndata: {\"type\":\"content-end\",\"index\":0}\n\n",
        "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\",\"usage\":{\"billed_units\":{\"input_tokens\":3,\"output_tokens\":2},\"tokens\":{\"input_tokens\":69,\"output_tokens\":2},\"cached_tokens\":8}}}\n\n",
    );

    #[test]
    fn a_text_stream_split_anywhere_decodes_the_same() {
        let events = all_ways(TEXT_STREAM.as_bytes());
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: Some("29f14a5a".into()),
                    model: None
                },
                StreamEvent::TextDelta("Hé".into()),
                StreamEvent::TextDelta(" \"there\"".into()),
                StreamEvent::Finish(FinishReason::Stop),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 69,
                    completion_tokens: 2,
                    cached_tokens: 8,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[test]
    fn frames_without_event_lines_are_typed_by_their_json() {
        let stream = TEXT_STREAM.replace("event: ", "x-ignored: ");
        assert_eq!(
            run(&[stream.as_bytes()], true),
            run(&[TEXT_STREAM.as_bytes()], true)
        );
    }

    #[test]
    fn thinking_a_plan_and_two_tool_calls_numbered_from_zero() {
        let stream = [
            frame("message-start", r#"{"type":"message-start","id":"m1","delta":{"message":{"role":"assistant"}}}"#),
            frame("content-start", r#"{"type":"content-start","index":0,"delta":{"message":{"content":{"type":"thinking","thinking":""}}}}"#),
            frame("content-delta", r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"thinking":"Two cities."}}}}"#),
            frame("content-end", r#"{"type":"content-end","index":0}"#),
            frame("tool-plan-delta", r#"{"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will check both."}}}"#),
            // Cohere's own index is deliberately odd here: the unified index counts calls from 0.
            frame("tool-call-start", r#"{"type":"tool-call-start","index":3,"delta":{"message":{"tool_calls":{"id":"get_weather_1","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#),
            frame("tool-call-delta", r#"{"type":"tool-call-delta","index":3,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\"location\":"}}}}}"#),
            frame("tool-call-delta", r#"{"type":"tool-call-delta","index":3,"delta":{"message":{"tool_calls":{"function":{"arguments":"\"Paris\"}"}}}}}"#),
            frame("tool-call-end", r#"{"type":"tool-call-end","index":3}"#),
            frame("tool-call-start", r#"{"type":"tool-call-start","index":4,"delta":{"message":{"tool_calls":{"id":"get_weather_2","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"London\"}"}}}}}"#),
            frame("tool-call-end", r#"{"type":"tool-call-end","index":4}"#),
            frame("message-end", r#"{"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"tokens":{"input_tokens":10,"output_tokens":30}}}}"#),
        ]
        .concat();
        let events = all_ways(stream.as_bytes());
        assert_eq!(
            events,
            vec![
                StreamEvent::Start {
                    id: Some("m1".into()),
                    model: None
                },
                StreamEvent::ReasoningDelta("Two cities.".into()),
                StreamEvent::TextDelta("I will check both.".into()),
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "get_weather_1".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallArgs {
                    index: 0,
                    fragment: "{\"location\":".into()
                },
                StreamEvent::ToolCallArgs {
                    index: 0,
                    fragment: "\"Paris\"}".into()
                },
                StreamEvent::ToolCallStart {
                    index: 1,
                    id: "get_weather_2".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallArgs {
                    index: 1,
                    fragment: "{\"location\":\"London\"}".into()
                },
                StreamEvent::Finish(FinishReason::ToolCalls),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 10,
                    completion_tokens: 30,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[test]
    fn max_tokens_is_length() {
        let stream = [
            frame("message-start", r#"{"type":"message-start","id":"m"}"#),
            frame("content-delta", r#"{"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"cut"}}}}"#),
            frame("message-end", r#"{"type":"message-end","delta":{"finish_reason":"MAX_TOKENS"}}"#),
        ]
        .concat();
        let events = run(&[stream.as_bytes()], true);
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish(FinishReason::Length))
        );
    }

    #[test]
    fn an_error_finish_is_an_error_before_any_answer_and_stop_after_one() {
        let start = frame("message-start", r#"{"type":"message-start","id":"m"}"#);
        let text = frame(
            "content-delta",
            r#"{"type":"content-delta","delta":{"message":{"content":{"text":"partial"}}}}"#,
        );
        let error = frame(
            "message-end",
            r#"{"type":"message-end","delta":{"finish_reason":"ERROR"}}"#,
        );
        let timeout = frame(
            "message-end",
            r#"{"type":"message-end","delta":{"finish_reason":"TIMEOUT"}}"#,
        );
        let events = run(&[format!("{start}{error}").as_bytes()], true);
        assert!(
            matches!(events.last(), Some(StreamEvent::Error(e)) if e.status == 502),
            "{events:?}"
        );
        let events = run(&[format!("{start}{timeout}").as_bytes()], true);
        assert!(
            matches!(events.last(), Some(StreamEvent::Error(e)) if e.status == 504),
            "{events:?}"
        );
        let events = run(&[format!("{start}{text}{error}").as_bytes()], true);
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish(FinishReason::Stop))
        );
    }

    #[test]
    fn a_stream_cut_before_message_end_ends_with_an_error() {
        let start = frame("message-start", r#"{"type":"message-start","id":"m"}"#);
        for complete in [true, false] {
            let events = run(&[start.as_bytes()], complete);
            assert_eq!(events.len(), 2);
            assert!(matches!(&events[1], StreamEvent::Error(e) if e.status == 502));
        }
    }

    #[test]
    fn an_unreadable_frame_is_one_error_and_the_end() {
        let stream = format!(
            "{}event: content-delta\ndata: {{broken\n\n{}",
            frame("message-start", r#"{"type":"message-start"}"#),
            frame(
                "content-delta",
                r#"{"type":"content-delta","delta":{"message":{"content":{"text":"late"}}}}"#
            ),
        );
        let events = run(&[stream.as_bytes()], true);
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(&events[1], StreamEvent::Error(e) if e.status == 502));
    }

    #[test]
    fn unknown_and_bookkeeping_frames_are_skipped() {
        let stream = [
            frame("message-start", r#"{"type":"message-start","id":"m"}"#),
            frame("debug", r#"{"type":"debug","prompt":"..."}"#),
            frame("citation-start", r#"{"type":"citation-start","index":0,"delta":{"message":{"citations":{"start":0}}}}"#),
            frame("citation-end", r#"{"type":"citation-end","index":0}"#),
            ": keep-alive\n\n".to_owned(),
            frame("message-end", r#"{"type":"message-end","delta":{"finish_reason":"COMPLETE"}}"#),
        ]
        .concat();
        assert_eq!(
            run(&[stream.as_bytes()], true),
            vec![
                StreamEvent::Start {
                    id: Some("m".into()),
                    model: None
                },
                StreamEvent::Finish(FinishReason::Stop)
            ]
        );
    }
}
