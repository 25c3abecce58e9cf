//! A decoded stream → Responses API events (`notes/translation.md` §2.3), in the order OpenAI sends them and the
//! official SDKs' accumulators check:
//!
//! `response.created` → `response.in_progress` → per output item: `response.output_item.added`, then
//! - a message: `response.content_part.added`, `response.output_text.delta`…, `response.output_text.done`,
//!   `response.content_part.done`;
//! - reasoning: `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`…,
//!   `response.reasoning_summary_text.done`, `response.reasoning_summary_part.done`;
//! - a function call: `response.function_call_arguments.delta`…, `response.function_call_arguments.done`;
//!
//! then `response.output_item.done`, and finally `response.completed` with the whole response and its usage
//! (`response.incomplete` when cut by the token limit or a filter, `response.failed` on an error).
//!
//! Every frame is `event: <type>\ndata: {"type": <type>, "sequence_number": n, …}\n\n`, `n` counting from 0 over
//! the stream. The `.done` events and the final response repeat the accumulated text, so a client never ends
//! with an empty text after deltas (§9, bifrost PR #3188). Events are written straight into the output buffer
//! from borrowed structs.

use std::io::Write as _;

use serde::Serialize;

use super::wire::{
    ErrorOut, Item, ItemKind, OutputItem, OutputText, ResponseObject, SummaryText, UsageOut,
    outcome,
};
use super::{RequestEcho, response_id};
use crate::dialect::chat::{FinishReason, ProviderError, StreamEvent, Usage};

/// Writes one translated stream as Responses events.
#[derive(Debug)]
pub struct ResponsesStreamEncoder {
    id: String,
    fallback_id: String,
    model: String,
    created: u64,
    echo: RequestEcho,
    /// The next event's `sequence_number`.
    seq: u64,
    /// `response.created` and `response.in_progress` were written.
    started: bool,
    /// Every output item so far, in output order (the index is the `output_index`).
    items: Vec<Item>,
    /// The item deltas currently go to; it is closed (its `.done` events written) when another begins.
    open: Option<usize>,
    /// Output index of each tool call, by the call's unified index.
    tool_items: Vec<Option<usize>>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    done: bool,
}

impl ResponsesStreamEncoder {
    /// `model` names the answer until the provider says which model answered; the response id is `resp_` + the
    /// provider's answer id (from [`StreamEvent::Start`]), or + `fallback_id` (the gateway's request id).
    pub fn new(model: &str, created: u64, fallback_id: &str, echo: RequestEcho) -> Self {
        Self {
            id: response_id(None, fallback_id),
            fallback_id: fallback_id.to_owned(),
            model: model.to_owned(),
            created,
            echo,
            seq: 0,
            started: false,
            items: Vec::new(),
            open: None,
            tool_items: Vec::new(),
            finish: None,
            usage: None,
            done: false,
        }
    }

    /// The usage the stream reported, merged.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Appends the SSE bytes for one event to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if let StreamEvent::Start { id, model } = event
            && !self.started
        {
            self.id = response_id(id.as_deref(), &self.fallback_id);
            if let Some(model) = model {
                self.model.clone_from(model);
            }
        }
        self.start(out);
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta(text) => self.text(ItemKind::Message, text, out),
            StreamEvent::ReasoningDelta(text) => self.text(ItemKind::Reasoning, text, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                let kind = ItemKind::FunctionCall {
                    call_id: id.clone(),
                    name: name.clone(),
                };
                self.tool_call(*index, kind, out);
            }
            StreamEvent::ToolCallArgs { index, fragment } => {
                if fragment.is_empty() {
                    return;
                }
                let at = match self.tool_items.get(*index as usize).copied().flatten() {
                    Some(at) => at,
                    // Arguments before their call's start: the call still gets an item, never lost fragments.
                    None => self.tool_call(
                        *index,
                        ItemKind::FunctionCall {
                            call_id: format!("call_{index}"),
                            name: String::new(),
                        },
                        out,
                    ),
                };
                let item = &mut self.items[at];
                item.text.push_str(fragment);
                let event = ArgumentsDelta {
                    item_id: &item.id,
                    output_index: at,
                    delta: fragment,
                };
                emit(
                    &mut self.seq,
                    out,
                    "response.function_call_arguments.delta",
                    &event,
                );
            }
            StreamEvent::Finish(reason) => self.finish = Some(*reason),
            StreamEvent::Usage(u) => match &mut self.usage {
                Some(have) => have.merge(u),
                None => self.usage = Some(*u),
            },
            StreamEvent::Error(e) => self.fail(e, out),
        }
    }

    /// The upstream ended: the open item is closed and the response completed (or incomplete). A stream that
    /// broke off before its finish fails instead, so a client never takes a cut answer for a whole one.
    pub fn finish(&mut self, complete: bool, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        if !complete && self.finish.is_none() {
            self.fail(
                &ProviderError::new(502, "the provider's stream ended early"),
                out,
            );
            return;
        }
        let (status, _) = outcome(self.finish);
        let item_status = if status == "incomplete" {
            "incomplete"
        } else {
            "completed"
        };
        self.close_open(item_status, out);
        let usage = UsageOut::from(&self.usage.unwrap_or_default());
        let mut response = ResponseObject::new(&self.id, &self.model, self.created, &self.echo);
        response.finished(self.finish);
        response.output = self.items.iter().map(Item::whole).collect();
        response.usage = Some(usage);
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        emit(&mut self.seq, out, kind, &Lifecycle { response });
        self.done = true;
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = ResponseObject::new(&self.id, &self.model, self.created, &self.echo);
        let lifecycle = Lifecycle { response };
        emit(&mut self.seq, out, "response.created", &lifecycle);
        emit(&mut self.seq, out, "response.in_progress", &lifecycle);
    }

    /// A text or reasoning delta: into the open item of that kind, or a new one.
    fn text(&mut self, kind: ItemKind, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        let at = match self.open {
            Some(at) if self.items[at].kind == kind => at,
            _ => self.add_item(kind, out),
        };
        let item = &mut self.items[at];
        item.text.push_str(text);
        if item.kind == ItemKind::Message {
            let event = TextDelta {
                item_id: &item.id,
                output_index: at,
                content_index: 0,
                delta: text,
                logprobs: [],
            };
            emit(&mut self.seq, out, "response.output_text.delta", &event);
        } else {
            let event = SummaryDelta {
                item_id: &item.id,
                output_index: at,
                summary_index: 0,
                delta: text,
            };
            emit(
                &mut self.seq,
                out,
                "response.reasoning_summary_text.delta",
                &event,
            );
        }
    }

    /// A function call item for the tool call at `index`; its output index.
    fn tool_call(&mut self, index: u32, kind: ItemKind, out: &mut Vec<u8>) -> usize {
        let at = self.add_item(kind, out);
        let index = index as usize;
        if self.tool_items.len() <= index {
            self.tool_items.resize(index + 1, None);
        }
        self.tool_items[index] = Some(at);
        at
    }

    /// Closes the open item, then adds and announces a new one, which becomes the open item.
    fn add_item(&mut self, kind: ItemKind, out: &mut Vec<u8>) -> usize {
        self.close_open("completed", out);
        let at = self.items.len();
        self.items.push(Item::new(kind, &self.id, at));
        self.open = Some(at);
        let item = &self.items[at];
        let added = ItemEvent {
            output_index: at,
            item: item.added(),
        };
        emit(&mut self.seq, out, "response.output_item.added", &added);
        match item.kind {
            ItemKind::Message => {
                let part = ContentPart {
                    item_id: &item.id,
                    output_index: at,
                    content_index: 0,
                    part: OutputText::new(""),
                };
                emit(&mut self.seq, out, "response.content_part.added", &part);
            }
            ItemKind::Reasoning => {
                let part = SummaryPart {
                    item_id: &item.id,
                    output_index: at,
                    summary_index: 0,
                    part: SummaryText::new(""),
                };
                emit(
                    &mut self.seq,
                    out,
                    "response.reasoning_summary_part.added",
                    &part,
                );
            }
            ItemKind::FunctionCall { .. } => {}
        }
        at
    }

    /// Writes the open item's `.done` events, each repeating the whole text.
    fn close_open(&mut self, status: &'static str, out: &mut Vec<u8>) {
        let Some(at) = self.open.take() else {
            return;
        };
        let item = &mut self.items[at];
        item.status = status;
        let item = &self.items[at];
        let (item_id, text) = (item.id.as_str(), item.text.as_str());
        match item.kind {
            ItemKind::Message => {
                let done = TextDone {
                    item_id,
                    output_index: at,
                    content_index: 0,
                    text,
                    logprobs: [],
                };
                emit(&mut self.seq, out, "response.output_text.done", &done);
                let part = ContentPart {
                    item_id,
                    output_index: at,
                    content_index: 0,
                    part: OutputText::new(text),
                };
                emit(&mut self.seq, out, "response.content_part.done", &part);
            }
            ItemKind::Reasoning => {
                let done = SummaryDone {
                    item_id,
                    output_index: at,
                    summary_index: 0,
                    text,
                };
                emit(
                    &mut self.seq,
                    out,
                    "response.reasoning_summary_text.done",
                    &done,
                );
                let part = SummaryPart {
                    item_id,
                    output_index: at,
                    summary_index: 0,
                    part: SummaryText::new(text),
                };
                emit(
                    &mut self.seq,
                    out,
                    "response.reasoning_summary_part.done",
                    &part,
                );
            }
            ItemKind::FunctionCall { .. } => {
                let done = ArgumentsDone {
                    item_id,
                    output_index: at,
                    arguments: text,
                };
                emit(
                    &mut self.seq,
                    out,
                    "response.function_call_arguments.done",
                    &done,
                );
            }
        }
        let done = ItemEvent {
            output_index: at,
            item: item.whole(),
        };
        emit(&mut self.seq, out, "response.output_item.done", &done);
    }

    /// `response.failed` with the error and what was produced so far; the stream ends.
    fn fail(&mut self, error: &ProviderError, out: &mut Vec<u8>) {
        if let Some(at) = self.open.take() {
            self.items[at].status = "incomplete";
        }
        let mut response = ResponseObject::new(&self.id, &self.model, self.created, &self.echo);
        response.status = "failed";
        response.error = Some(ErrorOut::new(error));
        response.output = self.items.iter().map(Item::whole).collect();
        response.usage = self.usage.as_ref().map(UsageOut::from);
        emit(
            &mut self.seq,
            out,
            "response.failed",
            &Lifecycle { response },
        );
        self.done = true;
    }
}

/// One SSE frame: the type on the `event:` line and in the JSON, with the sequence number.
fn emit<T: Serialize>(seq: &mut u64, out: &mut Vec<u8>, kind: &str, body: &T) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    let frame = Frame {
        kind,
        sequence_number: *seq,
        body,
    };
    // Serializing these structs cannot fail, and writing to a Vec does not.
    let _ = serde_json::to_writer(&mut *out, &frame);
    let _ = out.write_all(b"\n\n");
    *seq += 1;
}

#[derive(Serialize)]
struct Frame<'a, T> {
    #[serde(rename = "type")]
    kind: &'a str,
    sequence_number: u64,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    response: ResponseObject<'a>,
}

#[derive(Serialize)]
struct ItemEvent<'a> {
    output_index: usize,
    item: OutputItem<'a>,
}

#[derive(Serialize)]
struct ContentPart<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    part: OutputText<'a>,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    delta: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct TextDone<'a> {
    item_id: &'a str,
    output_index: usize,
    content_index: u32,
    text: &'a str,
    logprobs: [(); 0],
}

#[derive(Serialize)]
struct SummaryPart<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    part: SummaryText<'a>,
}

#[derive(Serialize)]
struct SummaryDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    delta: &'a str,
}

#[derive(Serialize)]
struct SummaryDone<'a> {
    item_id: &'a str,
    output_index: usize,
    summary_index: u32,
    text: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDelta<'a> {
    item_id: &'a str,
    output_index: usize,
    delta: &'a str,
}

#[derive(Serialize)]
struct ArgumentsDone<'a> {
    item_id: &'a str,
    output_index: usize,
    arguments: &'a str,
}

#[cfg(test)]
mod tests;
