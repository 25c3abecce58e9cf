//! OpenAI's message list → Anthropic's `messages` turns (§4.6): system messages leave the list (they go to
//! `system`), `tool` messages become `tool_result` blocks in a user turn, assistant tool calls become `tool_use`
//! blocks, consecutive same-role turns merge, and empty text blocks and empty turns are dropped.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dialect::chat::{Content, FilePart, Message, Part, Role, ToolCall, parse_data_url};
use crate::dialect::codec::TranslateError;

/// One turn of the conversation.
#[derive(Debug, Serialize)]
pub(super) struct Turn<'a> {
    pub role: TurnRole,
    pub content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TurnRole {
    User,
    Assistant,
}

/// A content block of a turn.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: Cow<'a, str>,
    },
    Image {
        source: Source<'a>,
    },
    Document {
        source: Source<'a>,
    },
    ToolUse {
        id: Cow<'a, str>,
        name: &'a str,
        input: Value,
    },
    ToolResult {
        tool_use_id: Cow<'a, str>,
        /// Omitted when the tool returned nothing (Anthropic rejects empty text blocks).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block<'a>>,
    },
}

impl Block<'_> {
    fn is_tool_result(&self) -> bool {
        matches!(self, Block::ToolResult { .. })
    }

    pub(super) fn is_tool_use(&self) -> bool {
        matches!(self, Block::ToolUse { .. })
    }
}

/// Where an image or document's bytes are.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// The image types Anthropic accepts inline.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// The non-system messages as Anthropic turns.
pub(super) fn turns(messages: &[Message]) -> Result<Vec<Turn<'_>>, TranslateError> {
    let mut turns: Vec<Turn<'_>> = Vec::with_capacity(messages.len());
    for (i, message) in messages.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => {}
            Role::User => {
                let blocks = content_blocks(message.content.as_ref(), i)?;
                push(&mut turns, TurnRole::User, blocks);
            }
            Role::Assistant => push(
                &mut turns,
                TurnRole::Assistant,
                assistant_blocks(message, i)?,
            ),
            Role::Tool => push(&mut turns, TurnRole::User, vec![tool_result(message, i)?]),
        }
    }
    Ok(turns)
}

/// Appends blocks to the conversation, merging into the last turn when it has the same role. Tool results go
/// before any other block of their user turn: Anthropic wants them first, right after the `tool_use` turn.
fn push<'a>(turns: &mut Vec<Turn<'a>>, role: TurnRole, blocks: Vec<Block<'a>>) {
    if blocks.is_empty() {
        return;
    }
    let turn = match turns.last_mut() {
        Some(last) if last.role == role => last,
        _ => {
            turns.push(Turn {
                role,
                content: Vec::with_capacity(blocks.len()),
            });
            turns.last_mut().expect("just pushed")
        }
    };
    for block in blocks {
        if block.is_tool_result() {
            let at = turn
                .content
                .iter()
                .position(|b| !b.is_tool_result())
                .unwrap_or(turn.content.len());
            turn.content.insert(at, block);
        } else {
            turn.content.push(block);
        }
    }
}

/// An assistant message: its text (when not empty), then one `tool_use` per tool call. Earlier reasoning text is
/// not replayed: Anthropic only accepts thinking blocks with the signature it issued, which OpenAI's shape lacks.
fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<Block<'_>>, TranslateError> {
    let mut blocks = Vec::new();
    if let Some(content) = &message.content {
        push_text(&mut blocks, content_text(content));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        blocks.push(tool_use(call, i, j)?);
    }
    Ok(blocks)
}

fn tool_use(call: &ToolCall, i: usize, j: usize) -> Result<Block<'_>, TranslateError> {
    let param = || Some(format!("messages[{i}].tool_calls[{j}].function.arguments"));
    let input = call
        .function
        .arguments_json()
        .map_err(|e| TranslateError::invalid(e, param()))?;
    if !input.is_object() {
        return Err(TranslateError::invalid(
            format!(
                "tool call {:?}: arguments must be a JSON object",
                call.function.name
            ),
            param(),
        ));
    }
    Ok(Block::ToolUse {
        id: tool_id(&call.id),
        name: &call.function.name,
        input,
    })
}

fn tool_result(message: &Message, i: usize) -> Result<Block<'_>, TranslateError> {
    let Some(id) = message.tool_call_id.as_deref() else {
        return Err(TranslateError::invalid(
            "a tool message needs tool_call_id",
            Some(format!("messages[{i}].tool_call_id")),
        ));
    };
    Ok(Block::ToolResult {
        tool_use_id: tool_id(id),
        content: content_blocks(message.content.as_ref(), i)?,
    })
}

/// A user or tool message's content: text and images (and PDFs), empty text dropped.
fn content_blocks(content: Option<&Content>, i: usize) -> Result<Vec<Block<'_>>, TranslateError> {
    let mut blocks = Vec::new();
    match content {
        None => {}
        Some(Content::Text(text)) => push_text(&mut blocks, Cow::Borrowed(text)),
        Some(Content::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let param = || Some(format!("messages[{i}].content[{j}]"));
                match part {
                    Part::Text { text } | Part::Refusal { refusal: text } => {
                        push_text(&mut blocks, Cow::Borrowed(text))
                    }
                    Part::ImageUrl { image_url } => blocks.push(image(&image_url.url, param)?),
                    Part::File { file } => blocks.push(document(file, param)?),
                    Part::InputAudio { .. } => {
                        return Err(TranslateError::unsupported(
                            "Anthropic does not accept audio input",
                            param(),
                        ));
                    }
                }
            }
        }
    }
    Ok(blocks)
}

/// An assistant's content as one text (parts are text or refusals).
fn content_text(content: &Content) -> Cow<'_, str> {
    match content {
        Content::Text(text) => Cow::Borrowed(text),
        Content::Parts(_) => Cow::Owned(content.text()),
    }
}

/// Anthropic rejects empty text blocks ("text content blocks must be non-empty").
fn push_text<'a>(blocks: &mut Vec<Block<'a>>, text: Cow<'a, str>) {
    if !text.trim().is_empty() {
        blocks.push(Block::Text { text });
    }
}

/// A data URL becomes an inline base64 source (a PDF a `document`); an http(s) URL a URL source, which Anthropic
/// fetches itself.
fn image(url: &str, param: impl Fn() -> Option<String>) -> Result<Block<'_>, TranslateError> {
    if let Some((media_type, data)) = parse_data_url(url) {
        if media_type == "application/pdf" {
            return Ok(Block::Document {
                source: Source::Base64 { media_type, data },
            });
        }
        if !IMAGE_TYPES.contains(&media_type) {
            return Err(TranslateError::unsupported(
                format!(
                    "Anthropic accepts images of type {}, not {media_type:?}",
                    IMAGE_TYPES.join(", ")
                ),
                param(),
            ));
        }
        return Ok(Block::Image {
            source: Source::Base64 { media_type, data },
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Block::Image {
            source: Source::Url { url },
        });
    }
    Err(TranslateError::invalid(
        "an image URL must be an http(s) URL or a base64 data URL",
        param(),
    ))
}

/// A `file` part: an inline PDF becomes a `document`; anything else has no Anthropic form here.
fn document(
    file: &FilePart,
    param: impl Fn() -> Option<String>,
) -> Result<Block<'_>, TranslateError> {
    match file.file_data.as_deref().and_then(parse_data_url) {
        Some((media_type @ "application/pdf", data)) => Ok(Block::Document {
            source: Source::Base64 { media_type, data },
        }),
        Some((media_type, _)) => Err(TranslateError::unsupported(
            format!("Anthropic accepts PDF files only, not {media_type:?}"),
            param(),
        )),
        None => Err(TranslateError::unsupported(
            "Anthropic needs the file inline as a base64 data URL in file_data (file ids are OpenAI's)",
            param(),
        )),
    }
}

/// A tool-call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`). Valid ids (Anthropic's own `toolu_…`, OpenAI's
/// `call_…`) are kept; others get their foreign characters replaced and a hash of the original appended, so the
/// mapping is deterministic (the same id on the `tool_use` and its `tool_result`) and two ids never collide.
pub(super) fn tool_id(id: &str) -> Cow<'_, str> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(valid) {
        return Cow::Borrowed(id);
    }
    let mut out: String = id.chars().map(|c| if valid(c) { c } else { '_' }).collect();
    let digest = Sha256::digest(id.as_bytes());
    out.push('_');
    for byte in &digest[..6] {
        out.push_str(&format!("{byte:02x}"));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(messages: Value) -> Vec<Message> {
        serde_json::from_value(messages).unwrap()
    }

    fn encoded(messages: Value) -> Value {
        let messages = parse(messages);
        serde_json::to_value(turns(&messages).unwrap()).unwrap()
    }

    #[test]
    fn system_messages_leave_and_same_role_turns_merge() {
        let got = encoded(json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": "and kind"},
            {"role": "user", "content": [{"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello"},
            {"role": "assistant", "content": "again"},
        ]));
        assert_eq!(
            got,
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "again"}]},
            ])
        );
    }

    #[test]
    fn tool_calls_become_tool_use_and_adjacent_results_share_one_user_turn() {
        let got = encoded(json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "Thanks"},
        ]));
        assert_eq!(
            got,
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
                    {"type": "text", "text": "Thanks"},
                ]},
            ])
        );
    }

    #[test]
    fn tool_results_go_before_user_text_already_in_the_turn() {
        let got = encoded(json!([
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "user", "content": "first"},
            {"role": "tool", "tool_call_id": "a", "content": ""},
        ]));
        assert_eq!(
            got[1]["content"],
            json!([{"type": "tool_result", "tool_use_id": "a"}, {"type": "text", "text": "first"}])
        );
    }

    #[test]
    fn empty_text_and_empty_turns_are_dropped() {
        let got = encoded(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "  "},
            {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "again"}]},
        ]));
        assert_eq!(
            got,
            json!([{"role": "user", "content": [
                {"type": "text", "text": "Hi"}, {"type": "text", "text": "again"}]}])
        );
    }

    #[test]
    fn foreign_tool_ids_are_sanitised_the_same_way_on_both_sides() {
        let got = encoded(json!([
            {"role": "assistant", "tool_calls": [
                {"id": "call:1/x", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call:1/x", "content": "ok"},
        ]));
        let used = got[0]["content"][0]["id"].as_str().unwrap();
        assert_eq!(got[1]["content"][0]["tool_use_id"], used);
        assert!(used.starts_with("call_1_x_"));
        assert!(
            used.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(tool_id("toolu_01AbC-d"), "toolu_01AbC-d");
        assert_ne!(tool_id("a.b"), tool_id("a:b"));
        assert_ne!(tool_id(""), "");
    }

    #[test]
    fn images_become_base64_or_url_sources_and_pdfs_documents() {
        let got = encoded(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}},
        ]}]));
        assert_eq!(
            got[0]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}},
            ])
        );
    }

    #[test]
    fn what_anthropic_cannot_take_is_refused_with_its_place() {
        let refused = |messages: Value| turns(&parse(messages)).unwrap_err();
        let audio = refused(json!([{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}]));
        assert!(
            matches!(audio, TranslateError::Unsupported { param: Some(p), .. } if p == "messages[0].content[0]")
        );
        let bmp = refused(json!([{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0"}}]}]));
        assert!(matches!(bmp, TranslateError::Unsupported { .. }));
        let file_id = refused(json!([{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-1"}}]}]));
        assert!(matches!(file_id, TranslateError::Unsupported { .. }));
    }

    #[test]
    fn bad_tool_calls_and_results_are_invalid() {
        let invalid = |messages: Value| turns(&parse(messages)).unwrap_err();
        let args = invalid(json!([{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]));
        assert!(
            matches!(args, TranslateError::Invalid { param: Some(p), .. } if p == "messages[0].tool_calls[0].function.arguments")
        );
        let not_object = invalid(json!([{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]));
        assert!(matches!(not_object, TranslateError::Invalid { .. }));
        let no_id = invalid(json!([{"role": "tool", "content": "x"}]));
        assert!(
            matches!(no_id, TranslateError::Invalid { param: Some(p), .. } if p == "messages[0].tool_call_id")
        );
    }
}
