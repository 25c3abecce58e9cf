//! The conversation as Converse turns and content blocks (§6.2, §6.6): alternation, tool results in the user turn
//! after the calls, inline images and documents, tool-use ids Bedrock accepts.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Block, DocumentBlock, ImageBlock, Source, ToolResultBlock, ToolResultContent, ToolUseBlock,
    Turn, content_text, non_blank,
};
use crate::dialect::chat::{
    ChatRequest, Content, FilePart, ImageUrl, Message, Part, Role, parse_data_url,
};
use crate::dialect::codec::TranslateError;

/// The conversation as alternating user/assistant turns: tool results join the user turn after the assistant's
/// calls, consecutive same-role turns merge, empty turns vanish.
pub(super) fn turns(request: &ChatRequest) -> Result<Vec<Turn<'_>>, TranslateError> {
    let mut turns: Vec<Turn<'_>> = Vec::new();
    let mut documents = 0;
    for (i, message) in request.messages.iter().enumerate() {
        let (role, blocks) = match message.role {
            Role::System | Role::Developer => continue,
            Role::User => ("user", user_blocks(message, i, &mut documents)?),
            Role::Assistant => ("assistant", assistant_blocks(message, i)?),
            Role::Tool => ("user", vec![tool_result(message, i)?]),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            _ => turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    Ok(turns)
}

fn user_blocks<'a>(
    message: &'a Message,
    i: usize,
    documents: &mut usize,
) -> Result<Vec<Block<'a>>, TranslateError> {
    let parts = match &message.content {
        None => return Ok(Vec::new()),
        Some(Content::Text(text)) => {
            return Ok(non_blank(Cow::Borrowed(text.as_str()))
                .map(Block::Text)
                .into_iter()
                .collect());
        }
        Some(Content::Parts(parts)) => parts,
    };
    let mut blocks = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = || Some(format!("messages[{i}].content[{j}]"));
        match part {
            Part::Text { text } | Part::Refusal { refusal: text } => {
                blocks.extend(non_blank(Cow::Borrowed(text.as_str())).map(Block::Text));
            }
            Part::ImageUrl { image_url } => blocks.push(image_block(image_url, documents, param)?),
            Part::File { file } => blocks.push(file_block(file, documents, param)?),
            Part::InputAudio { .. } => {
                return Err(TranslateError::unsupported(
                    "AWS Bedrock Converse does not take audio input",
                    param(),
                ));
            }
        }
    }
    Ok(blocks)
}

fn image_block<'a>(
    image: &'a ImageUrl,
    documents: &mut usize,
    param: impl Fn() -> Option<String>,
) -> Result<Block<'a>, TranslateError> {
    let Some((mime, data)) = image.data_url() else {
        return Err(TranslateError::unsupported(
            "AWS Bedrock takes images inline only: send the image as a base64 data URL (data:image/png;base64,…)",
            param(),
        ));
    };
    if let Some(format) = document_format(mime) {
        *documents += 1;
        return Ok(Block::Document(DocumentBlock {
            format,
            name: format!("doc-{documents}"),
            source: Source { bytes: data },
        }));
    }
    let format = match mime.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(TranslateError::unsupported(
                format!("AWS Bedrock takes png, jpeg, gif and webp images, not {mime:?}"),
                param(),
            ));
        }
    };
    Ok(Block::Image(ImageBlock {
        format,
        source: Source { bytes: data },
    }))
}

fn file_block<'a>(
    file: &'a FilePart,
    documents: &mut usize,
    param: impl Fn() -> Option<String>,
) -> Result<Block<'a>, TranslateError> {
    let Some((mime, data)) = file.file_data.as_deref().and_then(parse_data_url) else {
        return Err(TranslateError::unsupported(
            "AWS Bedrock takes files inline only: send file_data as a base64 data URL (file ids are OpenAI's)",
            param(),
        ));
    };
    let Some(format) = document_format(mime) else {
        return Err(TranslateError::unsupported(
            format!("AWS Bedrock does not take documents of type {mime:?}"),
            param(),
        ));
    };
    *documents += 1;
    Ok(Block::Document(DocumentBlock {
        format,
        name: document_name(file.filename.as_deref(), *documents),
        source: Source { bytes: data },
    }))
}

fn document_format(mime: &str) -> Option<&'static str> {
    Some(match mime.to_ascii_lowercase().as_str() {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// Bedrock's document names allow letters, digits, single spaces, `-`, `(`, `)`, `[`, `]` only: the file name
/// without its extension, other characters turned into `-`; `doc-N` when nothing is left.
pub(in crate::dialect::bedrock) fn document_name(filename: Option<&str>, n: usize) -> String {
    let stem = filename
        .map(|f| f.rsplit_once('.').map_or(f, |(stem, _)| stem))
        .unwrap_or("");
    let mut name = String::with_capacity(stem.len());
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
            c
        } else if c.is_whitespace() {
            ' '
        } else {
            '-'
        };
        if !(c == ' ' && name.ends_with(' ')) {
            name.push(c);
        }
    }
    let name = name.trim();
    if name.is_empty() {
        format!("doc-{n}")
    } else {
        name.chars().take(200).collect()
    }
}

fn assistant_blocks(message: &Message, i: usize) -> Result<Vec<Block<'_>>, TranslateError> {
    let mut blocks = Vec::new();
    if let Some(text) = message
        .content
        .as_ref()
        .map(content_text)
        .and_then(non_blank)
    {
        blocks.push(Block::Text(text));
    }
    for (j, call) in message.tool_calls.iter().flatten().enumerate() {
        let input = call.function.arguments_json().map_err(|e| {
            TranslateError::invalid(
                e,
                Some(format!("messages[{i}].tool_calls[{j}].function.arguments")),
            )
        })?;
        blocks.push(Block::ToolUse(ToolUseBlock {
            tool_use_id: tool_use_id(&call.id),
            name: &call.function.name,
            input,
        }));
    }
    Ok(blocks)
}

/// A `tool` message → a `toolResult` block: `{json}` when the output is a JSON object, `{text}` otherwise.
fn tool_result(message: &Message, i: usize) -> Result<Block<'_>, TranslateError> {
    let Some(id) = message.tool_call_id.as_deref().filter(|id| !id.is_empty()) else {
        return Err(TranslateError::invalid(
            "a tool message needs the tool_call_id of the call it answers",
            Some(format!("messages[{i}].tool_call_id")),
        ));
    };
    let text = message
        .content
        .as_ref()
        .map(content_text)
        .unwrap_or(Cow::Borrowed(""));
    let content = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => ToolResultContent::Json(object),
        // Blank text is refused by Bedrock even inside a tool result.
        _ => ToolResultContent::Text(non_blank(text).unwrap_or(Cow::Borrowed("(no output)"))),
    };
    Ok(Block::ToolResult(ToolResultBlock {
        tool_use_id: tool_use_id(id),
        content: vec![content],
    }))
}

/// Bedrock tool-use ids match `[a-zA-Z0-9_-]{1,64}`. Valid ids pass unchanged; any other id is replaced by a
/// digest of it, the same on the `toolUse` and its `toolResult`, so distinct ids stay distinct.
pub(in crate::dialect::bedrock) fn tool_use_id(id: &str) -> Cow<'_, str> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Cow::Borrowed(id)
    } else {
        let digest = hex::encode(Sha256::digest(id.as_bytes()));
        Cow::Owned(format!("tooluse_{}", &digest[..32]))
    }
}
