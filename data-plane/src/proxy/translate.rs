//! Relaying a translated answer (`/compat` to a provider that does not speak OpenAI's API): the provider's
//! response is decoded by the step's codec and written in the client's format.
//!
//! - A stream is translated event by event as its bytes arrive: each upstream read is decoded, encoded and written
//!   before the next read, so the client's first token leaves as soon as the provider's does. Nothing is buffered
//!   beyond an incomplete frame.
//! - A whole answer (and every error answer) is read to its end, bounded by [`MAX_TRANSLATED_BODY_BYTES`], then
//!   written with its `content-length`: an error's status and body are mapped to OpenAI's (`notes/translation.md`
//!   §8.5) and the client's SDK reads them as it would OpenAI's.
//!
//! Embeddings are always a whole answer: the embeddings codec decodes the provider's vectors and they are written
//! as OpenAI's list, in the client's `encoding_format`.
//!
//! The response taps (log capture, cache tee) see what the client got. The log's token counts come from the
//! codec's decoded usage, which exists even when the client did not ask for it in the stream.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::phase::plan::compat::{ClientFormat, Kind, Translation};
use super::taps::ResponseTap;
use super::upstream::{ForwardError, OpenedResponse, Upstreams};
use crate::dialect::chat::{ProviderError, StreamEvent, Usage};
use crate::dialect::codec::{ChatCodec, TranslateError};
use crate::dialect::embeddings;
use crate::dialect::openai::{ChatStreamEncoder, encode_response};
use crate::dialect::responses::{self, ResponsesStreamEncoder};
use crate::error::AiGatewayError;

/// The largest provider answer a whole-answer translation reads (a chat answer is rarely above a few hundred
/// kilobytes; a larger one is refused with a 502 rather than held in memory).
pub(crate) const MAX_TRANSLATED_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What the relay reports back for the log.
pub(crate) struct Translated {
    pub usage: Option<Usage>,
}

/// Sends a translated answer downstream through `taps`.
pub(crate) async fn relay(
    upstreams: &Upstreams,
    downstream: &mut Session,
    mut opened: OpenedResponse,
    translation: &Translation,
    extra_headers: &[(&'static str, &str)],
    request_id: &str,
    taps: &mut [&mut dyn ResponseTap],
) -> Result<Translated, ForwardError> {
    let status = opened.status();
    // A provider's back-off hint reaches the client (OpenAI's SDKs honour both forms).
    let retry_after: Vec<(&'static str, String)> = ["retry-after", "retry-after-ms"]
        .into_iter()
        .filter_map(|name| opened.header_value(name).map(|v| (name, v)))
        .collect();
    let read_timeout = upstreams.response_timeout();
    if let Kind::Chat(codec) = translation.kind
        && translation.stream
        && (200..300).contains(&status)
    {
        return stream(
            upstreams,
            downstream,
            opened,
            codec,
            translation,
            extra_headers,
            request_id,
            taps,
        )
        .await;
    }

    let mut body = Vec::new();
    let mut too_large = false;
    loop {
        match opened.next_chunk(read_timeout).await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_TRANSLATED_BODY_BYTES {
                    too_large = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "provider answer cut before its end");
                return Err(ForwardError::BeforeResponse(
                    AiGatewayError::PROVIDER_UNREACHABLE,
                ));
            }
        }
    }
    if !too_large {
        upstreams.release(opened).await;
    }
    let (status, out, usage) = if too_large {
        let e = ProviderError::new(
            502,
            "the provider's answer is larger than the gateway translates",
        );
        (e.status, error_body(&e), None)
    } else if status >= 400 {
        let mut e = match translation.kind {
            Kind::Chat(codec) => codec.decode_error(status, &body),
            Kind::Embeddings { codec, .. } => codec.decode_error(status, &body),
        };
        // The codec maps the status with what the body says (Anthropic's `overloaded_error` is 503 whatever its
        // status); a codec that kept a non-error status gets the generic mapping.
        if !(400..=599).contains(&e.status) {
            e.status = ProviderError::map_status(status);
        }
        (e.status, error_body(&e), None)
    } else {
        match whole_answer(translation, &body, request_id) {
            Ok((out, usage)) => (200, out, usage),
            Err(e) => {
                let e = e.to_provider_error();
                (e.status, error_body(&e), None)
            }
        }
    };
    let mut header = response_header(status, "application/json", Some(out.len()), extra_headers)?;
    if status >= 400 {
        for (name, value) in &retry_after {
            let _ = header.insert_header(*name, value.as_str());
        }
    }
    for tap in taps.iter_mut() {
        tap.header(&header);
        tap.chunk(&out);
        tap.end(true);
    }
    downstream
        .write_response_header(Box::new(header), false)
        .await
        .map_err(ForwardError::AfterResponse)?;
    downstream
        .write_response_body(Some(Bytes::from(out)), true)
        .await
        .map_err(ForwardError::AfterResponse)?;
    Ok(Translated { usage })
}

/// A whole successful answer in the client's format, and its usage for the log.
fn whole_answer(
    translation: &Translation,
    body: &[u8],
    request_id: &str,
) -> Result<(Vec<u8>, Option<Usage>), TranslateError> {
    let model = &translation.model;
    match translation.kind {
        Kind::Chat(codec) => {
            let answer = codec.decode(body)?;
            let out = match translation.client {
                ClientFormat::Chat => encode_response(&answer, model, unix_now(), request_id),
                ClientFormat::Responses => responses::encode_response(
                    &answer,
                    model,
                    unix_now(),
                    request_id,
                    &translation.echo,
                ),
            };
            Ok((out, answer.usage))
        }
        Kind::Embeddings { codec, encoding } => {
            let answer = codec.decode(body)?;
            let usage = answer.prompt_tokens.map(|prompt_tokens| Usage {
                prompt_tokens,
                ..Usage::default()
            });
            Ok((embeddings::encode_response(&answer, model, encoding), usage))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn stream(
    upstreams: &Upstreams,
    downstream: &mut Session,
    mut opened: OpenedResponse,
    codec: &'static dyn ChatCodec,
    translation: &Translation,
    extra_headers: &[(&'static str, &str)],
    request_id: &str,
    taps: &mut [&mut dyn ResponseTap],
) -> Result<Translated, ForwardError> {
    let mut header = response_header(200, "text/event-stream", None, extra_headers)?;
    if !downstream.is_http2() {
        header
            .insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(|e| {
                ForwardError::BeforeResponse(AiGatewayError::bad_request(e.to_string()))
            })?;
    }
    header
        .insert_header(http::header::CACHE_CONTROL, "no-cache")
        .map_err(|e| ForwardError::BeforeResponse(AiGatewayError::bad_request(e.to_string())))?;
    for tap in taps.iter_mut() {
        tap.header(&header);
    }
    let end = |taps: &mut [&mut dyn ResponseTap], complete: bool| {
        for tap in taps.iter_mut() {
            tap.end(complete);
        }
    };
    if let Err(e) = downstream
        .write_response_header(Box::new(header), false)
        .await
    {
        end(taps, false);
        return Err(ForwardError::AfterResponse(e));
    }

    let mut decoder = codec.stream_decoder();
    let mut encoder = match translation.client {
        ClientFormat::Chat => ClientStream::Chat(ChatStreamEncoder::new(
            &translation.model,
            unix_now(),
            request_id,
            translation.include_usage,
        )),
        ClientFormat::Responses => ClientStream::Responses(Box::new(ResponsesStreamEncoder::new(
            &translation.model,
            unix_now(),
            request_id,
            translation.echo.clone(),
        ))),
    };
    let mut events: Vec<StreamEvent> = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    let read_timeout = upstreams.response_timeout();
    let complete = loop {
        match opened.next_chunk(read_timeout).await {
            Ok(Some(chunk)) => {
                decoder.feed(&chunk, &mut events);
                for event in events.drain(..) {
                    encoder.encode(&event, &mut out);
                }
                if out.is_empty() {
                    continue;
                }
                let piece = Bytes::from(std::mem::take(&mut out));
                for tap in taps.iter_mut() {
                    tap.chunk(&piece);
                }
                if let Err(e) = downstream.write_response_body(Some(piece), false).await {
                    end(taps, false);
                    return Err(ForwardError::AfterResponse(e));
                }
            }
            Ok(None) => break true,
            Err(e) => {
                tracing::debug!(error = %e, "provider stream cut");
                break false;
            }
        }
    };
    decoder.finish(complete, &mut events);
    for event in events.drain(..) {
        encoder.encode(&event, &mut out);
    }
    encoder.finish(complete, &mut out);
    let piece = Bytes::from(out);
    for tap in taps.iter_mut() {
        tap.chunk(&piece);
    }
    let written = downstream.write_response_body(Some(piece), true).await;
    end(taps, complete);
    written.map_err(ForwardError::AfterResponse)?;
    if complete {
        upstreams.release(opened).await;
    }
    Ok(Translated {
        usage: encoder.usage(),
    })
}

/// The client's stream format.
enum ClientStream {
    Chat(ChatStreamEncoder),
    Responses(Box<ResponsesStreamEncoder>),
}

impl ClientStream {
    fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            ClientStream::Chat(e) => e.encode(event, out),
            ClientStream::Responses(e) => e.encode(event, out),
        }
    }

    fn finish(&mut self, complete: bool, out: &mut Vec<u8>) {
        match self {
            ClientStream::Chat(e) => e.finish(complete, out),
            ClientStream::Responses(e) => e.finish(complete, out),
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            ClientStream::Chat(e) => e.usage(),
            ClientStream::Responses(e) => e.usage(),
        }
    }
}

fn error_body(e: &ProviderError) -> Vec<u8> {
    serde_json::to_vec(&e.body()).unwrap_or_default()
}

fn response_header(
    status: u16,
    content_type: &str,
    length: Option<usize>,
    extra_headers: &[(&'static str, &str)],
) -> Result<ResponseHeader, ForwardError> {
    let build = || -> pingora::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(status, Some(4 + extra_headers.len()))?;
        h.insert_header(http::header::CONTENT_TYPE, content_type)?;
        if let Some(n) = length {
            h.insert_header(http::header::CONTENT_LENGTH, n.to_string())?;
        }
        for (name, value) in extra_headers {
            h.insert_header(*name, *value)?;
        }
        Ok(h)
    };
    build().map_err(|e| ForwardError::BeforeResponse(AiGatewayError::bad_request(e.to_string())))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
