//! ConverseStream → unified stream events (`notes/translation.md` §6.4, §8.6), message by message as the
//! event-stream frames complete: nothing is held back to the end of the answer (bifrost #4542).
//!
//! Sequence: `messageStart` → per block `contentBlockStart` (tool blocks only) → `contentBlockDelta`s →
//! `contentBlockStop` → `messageStop {stopReason}` → `metadata {usage}`. The finish reason goes out at
//! `messageStop`, the usage at `metadata`.

use std::borrow::Cow;

use serde::Deserialize;

use super::JSON_TOOL_NAME;
use super::errors::by_exception;
use super::eventstream::{EventStreamFrames, Message};
use super::response::{BedrockUsage, finish_reason, reconcile};
use crate::dialect::chat::{ProviderError, StreamEvent};
use crate::dialect::codec::StreamDecoder;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartEvent<'a> {
    content_block_index: u32,
    #[serde(default, borrow)]
    start: Option<BlockStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart<'a> {
    #[serde(default, borrow)]
    tool_use: Option<ToolUseStart<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart<'a> {
    #[serde(borrow)]
    tool_use_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaEvent<'a> {
    content_block_index: u32,
    #[serde(borrow)]
    delta: Delta<'a>,
}

/// One of `text`, `toolUse.input`, `reasoningContent.{text|signature|redactedContent}` (citations ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_use: Option<ToolUseDelta<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<ReasoningDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolUseDelta<'a> {
    #[serde(default, borrow)]
    input: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReasoningDelta<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopEvent<'a> {
    #[serde(default, borrow)]
    stop_reason: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MetadataEvent {
    #[serde(default)]
    usage: Option<BedrockUsage>,
}

#[derive(Deserialize)]
struct ExceptionEvent<'a> {
    #[serde(default, borrow, alias = "Message")]
    message: Option<Cow<'a, str>>,
}

/// What a content block carries, by Bedrock's block index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    /// A client tool call, at this position among the answer's calls.
    Tool(u32),
    /// The JSON-mode tool: its input is the answer's text.
    JsonTool,
}

/// Decodes one ConverseStream body.
#[derive(Debug, Default)]
pub(super) struct ConverseStreamDecoder {
    frames: EventStreamFrames,
    state: State,
}

#[derive(Debug, Default)]
struct State {
    /// Tool blocks seen so far (block index → kind); a handful per answer, so a scan beats a map.
    blocks: Vec<(u32, BlockKind)>,
    /// Client tool calls started (the next call's index).
    tool_calls: u32,
    /// `messageStop` arrived: the answer is complete even if `metadata` never does.
    stopped: bool,
    /// An error was emitted; everything after it is ignored.
    failed: bool,
}

impl StreamDecoder for ConverseStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        if self.state.failed {
            return;
        }
        let state = &mut self.state;
        let framed = self.frames.feed(bytes, |message| {
            if !state.failed {
                state.on_message(&message, out);
            }
        });
        if let Err(e) = framed
            && !self.state.failed
        {
            self.state.fail(
                ProviderError::new(502, format!("AWS Bedrock stream: {e}")),
                out,
            );
        }
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        if self.state.failed || self.state.stopped {
            return;
        }
        let why = if complete && self.frames.pending_len() == 0 {
            "AWS Bedrock ended the stream without a messageStop event"
        } else {
            "AWS Bedrock's stream was cut off before the answer was complete"
        };
        self.state.fail(ProviderError::new(502, why), out);
    }
}

impl State {
    fn fail(&mut self, error: ProviderError, out: &mut Vec<StreamEvent>) {
        self.failed = true;
        out.push(StreamEvent::Error(error));
    }

    fn on_message(&mut self, message: &Message<'_>, out: &mut Vec<StreamEvent>) {
        match message.str_header(":message-type") {
            Some("event") => {
                let event_type = message.str_header(":event-type").unwrap_or("");
                if let Err(e) = self.on_event(event_type, message.payload, out) {
                    self.fail(
                        ProviderError::new(
                            502,
                            format!("AWS Bedrock stream: unreadable {event_type} event: {e}"),
                        ),
                        out,
                    );
                }
            }
            Some("exception") => {
                let exception = message.str_header(":exception-type").unwrap_or("exception");
                let body = serde_json::from_slice::<ExceptionEvent<'_>>(message.payload).ok();
                let text = body.and_then(|b| b.message).map_or_else(
                    || String::from_utf8_lossy(message.payload).into_owned(),
                    Cow::into_owned,
                );
                self.fail(by_exception(exception, &text), out);
            }
            Some("error") => {
                let code = message.str_header(":error-code").unwrap_or("error");
                let text = message
                    .str_header(":error-message")
                    .unwrap_or("AWS Bedrock stream error");
                let mut error = ProviderError::new(502, text);
                error.code = Some(code.to_owned());
                self.fail(error, out);
            }
            // Unknown message types are future additions: skipping them keeps the answer flowing.
            _ => {}
        }
    }

    fn on_event(
        &mut self,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<StreamEvent>,
    ) -> serde_json::Result<()> {
        match event_type {
            "messageStart" => out.push(StreamEvent::Start {
                id: None,
                model: None,
            }),
            "contentBlockStart" => {
                let event: BlockStartEvent<'_> = serde_json::from_slice(payload)?;
                if let Some(tool) = event.start.and_then(|s| s.tool_use) {
                    self.start_tool(event.content_block_index, tool, out);
                }
            }
            "contentBlockDelta" => {
                let event: BlockDeltaEvent<'_> = serde_json::from_slice(payload)?;
                self.delta(event.content_block_index, event.delta, out);
            }
            "messageStop" => {
                let event: MessageStopEvent<'_> = serde_json::from_slice(payload)?;
                self.stopped = true;
                let reason = reconcile(finish_reason(&event.stop_reason), self.tool_calls > 0);
                out.push(StreamEvent::Finish(reason));
            }
            "metadata" => {
                let event: MetadataEvent = serde_json::from_slice(payload)?;
                if let Some(usage) = event.usage {
                    out.push(StreamEvent::Usage(usage.to_usage()));
                }
            }
            // `contentBlockStop` closes a block that needs no closing here; unknown events are skipped.
            _ => {}
        }
        Ok(())
    }

    fn start_tool(&mut self, block: u32, tool: ToolUseStart<'_>, out: &mut Vec<StreamEvent>) {
        if tool.name == JSON_TOOL_NAME {
            self.blocks.push((block, BlockKind::JsonTool));
            return;
        }
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.blocks.push((block, BlockKind::Tool(index)));
        out.push(StreamEvent::ToolCallStart {
            index,
            id: tool.tool_use_id.into_owned(),
            name: tool.name.into_owned(),
        });
    }

    fn delta(&mut self, block: u32, delta: Delta<'_>, out: &mut Vec<StreamEvent>) {
        if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta(text.into_owned()));
        } else if let Some(text) = delta
            .reasoning_content
            .and_then(|r| r.text)
            .filter(|t| !t.is_empty())
        {
            // Signatures and redacted reasoning have no place in OpenAI's stream.
            out.push(StreamEvent::ReasoningDelta(text.into_owned()));
        } else if let Some(tool) = delta.tool_use.filter(|t| !t.input.is_empty()) {
            let kind = self
                .blocks
                .iter()
                .find(|(b, _)| *b == block)
                .map(|(_, k)| *k);
            match kind {
                Some(BlockKind::Tool(index)) => out.push(StreamEvent::ToolCallArgs {
                    index,
                    fragment: tool.input.into_owned(),
                }),
                Some(BlockKind::JsonTool) => {
                    out.push(StreamEvent::TextDelta(tool.input.into_owned()))
                }
                // Bedrock always starts a tool block before its input; without a start there is no call to
                // attach the fragment to.
                None => {}
            }
        }
    }
}
