//! `streamGenerateContent?alt=sse` → unified stream events (`notes/translation.md` §5.3, §5.4, §8.6).
//!
//! Each `data:` frame is a whole `GenerateContentResponse` carrying new text (not cumulative), whole
//! `functionCall` parts (never fragmented), cumulative `usageMetadata` (the last one wins) and, on the last
//! chunk, the `finishReason`. A function call is announced and its arguments given in one go. Gemini has no
//! tool-call finish reason, so a `STOP` after any call is reported as `tool_calls`.

use super::super::chat::{FinishReason, ProviderError, StreamEvent, Usage};
use super::super::codec::StreamDecoder;
use super::super::frames::SseFrames;
use super::error;
use super::response::{self, GenerateContentResponse};

/// One streamed answer's decoder.
#[derive(Debug, Default)]
pub(super) struct GeminiStreamDecoder {
    frames: SseFrames,
    state: State,
}

#[derive(Debug, Default)]
struct State {
    started: bool,
    /// Tool calls seen so far: the next call's index.
    tool_calls: u32,
    finished: bool,
    /// An error was reported; the rest of the stream is ignored.
    failed: bool,
    /// The latest usage, not yet reported.
    usage: Option<Usage>,
}

impl StreamDecoder for GeminiStreamDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) {
        let state = &mut self.state;
        self.frames
            .feed(bytes, |event| state.on_data(&event.data, out));
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        let state = &mut self.state;
        self.frames.finish(|event| state.on_data(&event.data, out));
        state.end(complete, out);
    }
}

impl State {
    fn on_data(&mut self, data: &str, out: &mut Vec<StreamEvent>) {
        let data = data.trim();
        if self.failed || data.is_empty() || data == "[DONE]" {
            return;
        }
        let chunk: GenerateContentResponse<'_> = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                let message = format!("the provider's answer could not be read: {e}");
                return self.fail(ProviderError::new(502, message), out);
            }
        };
        if let Some(e) = &chunk.error {
            return self.fail(error::map(0, e), out);
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.response_id.as_deref().map(str::to_owned),
                model: chunk.model_version.as_deref().map(str::to_owned),
            });
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = Some(usage.to_usage());
        }
        if chunk.prompt_blocked() {
            self.finish_with(FinishReason::ContentFilter, out);
            return;
        }
        let first = chunk
            .candidates
            .iter()
            .position(|c| c.index.unwrap_or(0) == 0)
            .unwrap_or(0);
        if let Some(candidate) = chunk.candidates.into_iter().nth(first) {
            let parts = candidate.content.map(|c| c.parts).unwrap_or_default();
            for part in parts {
                if let Some(call) = &part.function_call {
                    let index = self.tool_calls;
                    self.tool_calls += 1;
                    let call = response::tool_call(call, part.thought_signature.as_deref(), index);
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: call.id,
                        name: call.function.name,
                    });
                    out.push(StreamEvent::ToolCallArgs {
                        index,
                        fragment: call.function.arguments,
                    });
                } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                    let text = text.into_owned();
                    out.push(if part.thought {
                        StreamEvent::ReasoningDelta(text)
                    } else {
                        StreamEvent::TextDelta(text)
                    });
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let reason = response::finish_reason(reason, self.tool_calls > 0);
                self.finish_with(reason, out);
            }
        }
        // Usage that comes after the finish (a trailing usage-only chunk) is reported as it comes.
        if self.finished {
            self.flush_usage(out);
        }
    }

    fn finish_with(&mut self, reason: FinishReason, out: &mut Vec<StreamEvent>) {
        if !self.finished {
            self.finished = true;
            out.push(StreamEvent::Finish(reason));
        }
        self.flush_usage(out);
    }

    fn flush_usage(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(usage) = self.usage.take() {
            out.push(StreamEvent::Usage(usage));
        }
    }

    fn fail(&mut self, error: ProviderError, out: &mut Vec<StreamEvent>) {
        self.failed = true;
        out.push(StreamEvent::Error(error));
    }

    fn end(&mut self, complete: bool, out: &mut Vec<StreamEvent>) {
        if self.failed {
            return;
        }
        if complete && !self.started {
            return self.fail(
                ProviderError::new(502, "Gemini ended the stream without an answer"),
                out,
            );
        }
        // A clean end without a finish reason still finishes, so no client loops waiting for one.
        if complete && !self.finished {
            let reason = if self.tool_calls > 0 {
                FinishReason::ToolCalls
            } else {
                FinishReason::Stop
            };
            self.finish_with(reason, out);
        }
        // Whatever was counted is reported, even for a broken stream (the log records it).
        self.flush_usage(out);
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
