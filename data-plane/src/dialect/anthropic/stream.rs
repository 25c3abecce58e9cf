//! Anthropic's `event:`/`data:` stream → [`StreamEvent`]s as each event completes (§4.4, §4.7, §8.6).
//!
//! State per stream: the kind of each content block by Anthropic's block index, the OpenAI tool index of each
//! `tool_use` block (a counter of tool blocks only: block indices also count text and thinking), the usage merged
//! field by field, and whether the finish was sent. Each event is parsed into a flat struct borrowing from the
//! frame, so a delta costs one allocation: the text it carries.

use std::borrow::Cow;

use serde::Deserialize;

use super::error::{ErrorEnvelope, map as map_error};
use super::{JSON_MODE_TOOL, WireUsage, finish_reason, reconcile_finish};
use crate::dialect::chat::{FinishReason, ProviderError, StreamEvent};
use crate::dialect::codec::StreamDecoder;
use crate::dialect::frames::{SseEvent, SseFrames};

#[derive(Debug, Default)]
pub(super) struct MessagesStreamDecoder {
    frames: SseFrames,
    state: State,
}

impl StreamDecoder for MessagesStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        let state = &mut self.state;
        self.frames.feed(bytes, |event| state.on_event(&event, out));
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        let state = &mut self.state;
        self.frames.finish(|event| state.on_event(&event, out));
        state.on_end(complete, out);
    }
}

#[derive(Debug, Default)]
struct State {
    /// By Anthropic's content-block index; `None` for an index not started.
    blocks: Vec<Option<BlockKind>>,
    /// The OpenAI index the next `tool_use` block gets.
    next_tool_index: u32,
    usage: WireUsage,
    /// A `Finish` was pushed.
    finished: bool,
    /// `message_stop` or an error: nothing more is decoded.
    ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    /// A client tool: its OpenAI tool index.
    Tool(u32),
    /// The JSON-mode tool, whose arguments are the answer's text.
    JsonAnswer,
    /// `redacted_thinking`, server tools, anything newer: nothing to forward.
    Other,
}

/// `message_start`.
#[derive(Debug, Deserialize)]
struct MessageStart<'a> {
    #[serde(borrow)]
    message: StartMessage<'a>,
}

#[derive(Debug, Deserialize)]
struct StartMessage<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// `content_block_start`; the block's fields flattened over its kinds.
#[derive(Debug, Deserialize)]
struct BlockStart<'a> {
    index: usize,
    #[serde(borrow)]
    content_block: StartBlock<'a>,
}

#[derive(Debug, Deserialize)]
struct StartBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
}

/// `content_block_delta`; the delta's fields flattened over its kinds.
#[derive(Debug, Deserialize)]
struct BlockDelta<'a> {
    index: usize,
    #[serde(borrow)]
    delta: Delta<'a>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
}

/// `message_delta`.
#[derive(Debug, Deserialize)]
struct MessageDelta<'a> {
    #[serde(default, borrow)]
    delta: Option<MessageDeltaBody<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody<'a> {
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// The `type` inside `data`, for servers that leave out the `event:` line.
#[derive(Debug, Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

impl State {
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        let name: Cow<'_, str> = if event.event.is_empty() {
            match serde_json::from_str::<TypeOnly<'_>>(&event.data) {
                Ok(t) => t.kind,
                Err(e) => return self.unreadable(&e, out),
            }
        } else {
            Cow::Borrowed(&event.event)
        };
        let data = event.data.as_str();
        let decoded = match name.as_ref() {
            "message_start" => parse(data).map(|e| self.on_message_start(e, out)),
            "content_block_start" => parse(data).map(|e| self.on_block_start(e, out)),
            "content_block_delta" => {
                parse(data).and_then(|e| self.on_block_delta(e, out).map_err(Unreadable::Protocol))
            }
            "message_delta" => parse(data).map(|e| self.on_message_delta(e, out)),
            "message_stop" => {
                self.finish_once(FinishReason::Stop, out);
                self.ended = true;
                Ok(())
            }
            "error" => parse::<ErrorEnvelope<'_>>(data).map(|e| {
                out.push(StreamEvent::Error(map_error(None, &e.error)));
                self.ended = true;
            }),
            // ping, content_block_stop, and events newer than this decoder.
            _ => Ok(()),
        };
        if let Err(e) = decoded {
            self.unreadable(&e, out);
        }
    }

    fn on_message_start(&mut self, start: MessageStart<'_>, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Start {
            id: start.message.id.map(Cow::into_owned),
            model: start.message.model.map(Cow::into_owned),
        });
        if let Some(usage) = start.message.usage {
            self.usage.merge(&usage);
            out.push(StreamEvent::Usage(self.usage.to_usage()));
        }
    }

    fn on_block_start(&mut self, start: BlockStart<'_>, out: &mut Vec<StreamEvent>) {
        let block = start.content_block;
        let kind = match block.kind.as_ref() {
            "text" => {
                push_text(out, block.text, StreamEvent::TextDelta);
                BlockKind::Text
            }
            "thinking" => {
                push_text(out, block.thinking, StreamEvent::ReasoningDelta);
                BlockKind::Thinking
            }
            "tool_use" if block.name.as_deref() == Some(JSON_MODE_TOOL) => BlockKind::JsonAnswer,
            "tool_use" => {
                let index = self.next_tool_index;
                self.next_tool_index += 1;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: block.id.map(Cow::into_owned).unwrap_or_default(),
                    name: block.name.map(Cow::into_owned).unwrap_or_default(),
                });
                BlockKind::Tool(index)
            }
            _ => BlockKind::Other,
        };
        if self.blocks.len() <= start.index {
            self.blocks.resize(start.index + 1, None);
        }
        self.blocks[start.index] = Some(kind);
    }

    fn on_block_delta(
        &mut self,
        delta: BlockDelta<'_>,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), String> {
        let block = self.blocks.get(delta.index).copied().flatten();
        let d = delta.delta;
        match d.kind.as_ref() {
            "text_delta" => push_text(out, d.text, StreamEvent::TextDelta),
            "thinking_delta" => push_text(out, d.thinking, StreamEvent::ReasoningDelta),
            "input_json_delta" => match block {
                Some(BlockKind::Tool(index)) => push_text(out, d.partial_json, |fragment| {
                    StreamEvent::ToolCallArgs { index, fragment }
                }),
                Some(BlockKind::JsonAnswer) => {
                    push_text(out, d.partial_json, StreamEvent::TextDelta)
                }
                // A server tool's input (`server_tool_use`): the server runs it, the client never sees it.
                Some(BlockKind::Other) => {}
                // A block never started: dropping the fragment could corrupt a call's arguments.
                Some(BlockKind::Text | BlockKind::Thinking) | None => {
                    return Err(format!(
                        "input_json_delta for block {}, which is not a started tool_use block",
                        delta.index
                    ));
                }
            },
            // signature_delta (thinking signatures have no place in OpenAI's shape), citations_delta, newer ones.
            _ => {}
        }
        Ok(())
    }

    fn on_message_delta(&mut self, delta: MessageDelta<'_>, out: &mut Vec<StreamEvent>) {
        if let Some(reason) = delta.delta.and_then(|d| d.stop_reason) {
            self.finish_once(finish_reason(&reason), out);
        }
        if let Some(usage) = delta.usage {
            self.usage.merge(&usage);
            out.push(StreamEvent::Usage(self.usage.to_usage()));
        }
    }

    /// Pushes the finish once, reconciled with the tool calls seen (a client always gets a finish reason).
    fn finish_once(&mut self, reason: FinishReason, out: &mut Vec<StreamEvent>) {
        if !self.finished {
            self.finished = true;
            out.push(StreamEvent::Finish(reconcile_finish(
                reason,
                self.next_tool_index > 0,
            )));
        }
    }

    fn on_end(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        if self.ended || self.finished {
            // A stream cut only after its finish lost nothing the client needs.
            self.ended = true;
            return;
        }
        self.ended = true;
        let why = if complete {
            "the provider's stream ended before the answer was complete"
        } else {
            "the provider's stream was interrupted"
        };
        out.push(StreamEvent::Error(ProviderError::new(502, why)));
    }

    fn unreadable(&mut self, e: &dyn std::fmt::Display, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Error(ProviderError::new(
            502,
            format!("the provider's stream could not be read: {e}"),
        )));
        self.ended = true;
    }
}

#[derive(Debug)]
enum Unreadable {
    Json(serde_json::Error),
    Protocol(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreadable::Json(e) => e.fmt(f),
            Unreadable::Protocol(m) => f.write_str(m),
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(data: &'a str) -> Result<T, Unreadable> {
    serde_json::from_str(data).map_err(Unreadable::Json)
}

/// Pushes a non-empty piece of text as the event `wrap` makes of it.
fn push_text(
    out: &mut Vec<StreamEvent>,
    text: Option<Cow<'_, str>>,
    wrap: impl FnOnce(String) -> StreamEvent,
) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push(wrap(text.into_owned()));
    }
}

#[cfg(test)]
mod tests;
