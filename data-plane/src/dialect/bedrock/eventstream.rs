//! AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), the body of Bedrock's ConverseStream
//! (`notes/translation.md` §6.4). One message, all integers big-endian:
//!
//! ```text
//! total_length u32 | headers_length u32 | prelude_crc u32 (CRC32 of the 8 bytes before it)
//! headers (headers_length bytes) | payload (total_length - headers_length - 16 bytes)
//! message_crc u32 (CRC32 of everything before it)
//! ```
//!
//! A header is `name_len u8 | name | type u8 | value`, the value's size depending on its type. Both CRCs are
//! checked: a frame whose bytes were damaged must never be translated into text a client trusts (peers lost or
//! garbled chunks on frames split across reads, bifrost #597).
//!
//! [`EventStreamFrames`] only keeps the bytes of an incomplete last message between calls; complete messages
//! are handed out as borrowed slices, so framing allocates nothing per message.

use std::fmt;

/// The bytes before the headers: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// Prelude plus the trailing message CRC.
const OVERHEAD: usize = PRELUDE_LEN + 4;
/// Larger than any message AWS sends (its limit is 16 MiB); a length beyond it means the stream is not framed
/// the way we think, and waiting for that many bytes would only hold memory.
const MAX_MESSAGE_LEN: usize = 24 * 1024 * 1024;

/// One header value, by its wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 (true) and 1 (false): no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: u16 length, bytes.
    Bytes(&'a [u8]),
    /// Type 7: u16 length, UTF-8.
    String(&'a str),
    /// Type 8: milliseconds since the epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid(&'a [u8; 16]),
}

impl<'a> HeaderValue<'a> {
    /// The value when it is a string (the only type Bedrock's headers use).
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }

    fn type_byte(&self) -> u8 {
        match self {
            HeaderValue::Bool(true) => 0,
            HeaderValue::Bool(false) => 1,
            HeaderValue::Byte(_) => 2,
            HeaderValue::Short(_) => 3,
            HeaderValue::Int(_) => 4,
            HeaderValue::Long(_) => 5,
            HeaderValue::Bytes(_) => 6,
            HeaderValue::String(_) => 7,
            HeaderValue::Timestamp(_) => 8,
            HeaderValue::Uuid(_) => 9,
        }
    }
}

/// One complete, CRC-checked message, borrowed from the framer's buffer or the fed bytes.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The header block, already validated by the framer.
    headers: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Message<'a> {
    /// The headers in wire order.
    pub fn headers(&self) -> Headers<'a> {
        Headers { rest: self.headers }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'a>> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The string value of header `name` (`:message-type`, `:event-type`, `:exception-type`, …).
    pub fn str_header(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| v.as_str())
    }
}

/// Iterates a header block that [`parse_header`] already accepted whole.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, HeaderValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        // The framer validated the block before handing the message out, so this cannot fail; stop rather than
        // panic if it somehow did.
        let (name, value, used) = parse_header(self.rest).ok()?;
        self.rest = &self.rest[used..];
        Some((name, value))
    }
}

/// Why the byte stream cannot be read as event-stream messages. After one, the stream is unusable: a length
/// that cannot be trusted leaves no way to find the next message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The CRC of the 8 length bytes does not match.
    PreludeCrc { expected: u32, actual: u32 },
    /// The CRC of the whole message does not match.
    MessageCrc { expected: u32, actual: u32 },
    /// A length that is too small, too large, or leaves no room for the headers.
    Length(String),
    /// A header that runs past its block, has an unknown type, or a name or string that is not UTF-8.
    Header(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::PreludeCrc { expected, actual } => write!(
                f,
                "event-stream prelude CRC mismatch (expected {expected:#010x}, computed {actual:#010x})"
            ),
            FrameError::MessageCrc { expected, actual } => write!(
                f,
                "event-stream message CRC mismatch (expected {expected:#010x}, computed {actual:#010x})"
            ),
            FrameError::Length(m) => write!(f, "event-stream framing: {m}"),
            FrameError::Header(m) => write!(f, "event-stream header: {m}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a byte stream into event-stream messages as the bytes arrive.
#[derive(Debug, Default)]
pub struct EventStreamFrames {
    /// The bytes of an incomplete message carried over from earlier calls.
    pending: Vec<u8>,
}

impl EventStreamFrames {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes received that do not yet make a whole message.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds bytes; calls `emit` with each message they complete, in order. On an error the messages before the
    /// bad one have been emitted and the framer should not be fed again.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        mut emit: impl FnMut(Message<'_>),
    ) -> Result<(), FrameError> {
        if self.pending.is_empty() {
            // The common case: read straight from the fed bytes and keep only an incomplete tail.
            let used = split_messages(bytes, &mut emit)?;
            self.pending.extend_from_slice(&bytes[used..]);
            return Ok(());
        }
        self.pending.extend_from_slice(bytes);
        let used = split_messages(&self.pending, &mut emit)?;
        self.pending.drain(..used);
        Ok(())
    }
}

/// Emits every complete message at the start of `buf`; returns how many bytes they took.
fn split_messages(buf: &[u8], emit: &mut impl FnMut(Message<'_>)) -> Result<usize, FrameError> {
    let mut at = 0;
    while let Some(len) = complete_message_len(&buf[at..])? {
        emit(parse_message(&buf[at..at + len])?);
        at += len;
    }
    Ok(at)
}

/// The length of the message at the start of `buf` when all of it is there; checks the prelude as soon as it is.
fn complete_message_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < PRELUDE_LEN {
        return Ok(None);
    }
    let total = u32_at(buf, 0) as usize;
    let headers_len = u32_at(buf, 4) as usize;
    let expected = u32_at(buf, 8);
    let actual = crc32fast::hash(&buf[..8]);
    if expected != actual {
        return Err(FrameError::PreludeCrc { expected, actual });
    }
    if !(OVERHEAD..=MAX_MESSAGE_LEN).contains(&total) {
        return Err(FrameError::Length(format!("message length {total}")));
    }
    if headers_len > total - OVERHEAD {
        return Err(FrameError::Length(format!(
            "headers length {headers_len} in a message of {total} bytes"
        )));
    }
    Ok((buf.len() >= total).then_some(total))
}

/// A whole message (its length already checked against the prelude): checks the message CRC and the headers.
fn parse_message(bytes: &[u8]) -> Result<Message<'_>, FrameError> {
    let crc_at = bytes.len() - 4;
    let expected = u32_at(bytes, crc_at);
    let actual = crc32fast::hash(&bytes[..crc_at]);
    if expected != actual {
        return Err(FrameError::MessageCrc { expected, actual });
    }
    let headers_end = PRELUDE_LEN + u32_at(bytes, 4) as usize;
    let headers = &bytes[PRELUDE_LEN..headers_end];
    let mut rest = headers;
    while !rest.is_empty() {
        let (_, _, used) = parse_header(rest)?;
        rest = &rest[used..];
    }
    Ok(Message {
        headers,
        payload: &bytes[headers_end..crc_at],
    })
}

/// One header at the start of `b`: name, value, bytes used.
fn parse_header(b: &[u8]) -> Result<(&str, HeaderValue<'_>, usize), FrameError> {
    let short = || FrameError::Header("runs past the header block".to_owned());
    let name_len = *b.first().ok_or_else(short)? as usize;
    let name = b.get(1..1 + name_len).ok_or_else(short)?;
    let name = std::str::from_utf8(name)
        .map_err(|_| FrameError::Header("name is not UTF-8".to_owned()))?;
    let mut at = 1 + name_len;
    let kind = *b.get(at).ok_or_else(short)?;
    at += 1;
    let mut take = |n: usize| -> Result<&[u8], FrameError> {
        let v = b.get(at..at + n).ok_or_else(short)?;
        at += n;
        Ok(v)
    };
    let value = match kind {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(take(1)?[0] as i8),
        3 => HeaderValue::Short(i16::from_be_bytes(
            take(2)?.try_into().map_err(|_| short())?,
        )),
        4 => HeaderValue::Int(i32::from_be_bytes(
            take(4)?.try_into().map_err(|_| short())?,
        )),
        5 => HeaderValue::Long(i64::from_be_bytes(
            take(8)?.try_into().map_err(|_| short())?,
        )),
        6 | 7 => {
            let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| short())?) as usize;
            let v = take(len)?;
            if kind == 6 {
                HeaderValue::Bytes(v)
            } else {
                HeaderValue::String(std::str::from_utf8(v).map_err(|_| {
                    FrameError::Header(format!("{name}: string value is not UTF-8"))
                })?)
            }
        }
        8 => HeaderValue::Timestamp(i64::from_be_bytes(
            take(8)?.try_into().map_err(|_| short())?,
        )),
        9 => HeaderValue::Uuid(take(16)?.try_into().map_err(|_| short())?),
        other => {
            return Err(FrameError::Header(format!(
                "{name}: unknown value type {other}"
            )));
        }
    };
    Ok((name, value, at))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Encodes one message (for tests and fixtures; the gateway only reads this format).
pub fn encode_message(headers: &[(&str, HeaderValue<'_>)], payload: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in headers {
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.type_byte());
        match value {
            HeaderValue::Bool(_) => {}
            HeaderValue::Byte(v) => block.push(*v as u8),
            HeaderValue::Short(v) => block.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Int(v) => block.extend_from_slice(&v.to_be_bytes()),
            HeaderValue::Long(v) | HeaderValue::Timestamp(v) => {
                block.extend_from_slice(&v.to_be_bytes())
            }
            HeaderValue::Bytes(v) => {
                block.extend_from_slice(&(v.len() as u16).to_be_bytes());
                block.extend_from_slice(v);
            }
            HeaderValue::String(v) => {
                block.extend_from_slice(&(v.len() as u16).to_be_bytes());
                block.extend_from_slice(v.as_bytes());
            }
            HeaderValue::Uuid(v) => block.extend_from_slice(&v[..]),
        }
    }
    let total = OVERHEAD + block.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(block.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out[..8]).to_be_bytes());
    out.extend_from_slice(&block);
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    out
}

/// An `event` message as Bedrock sends them: `:event-type`, `:content-type: application/json`,
/// `:message-type: event`, and the JSON payload.
pub fn encode_event(event_type: &str, payload: &[u8]) -> Vec<u8> {
    encode_message(
        &[
            (":event-type", HeaderValue::String(event_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("event")),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message's headers (values in their `Debug` form) and payload.
    type Read = (Vec<(String, String)>, Vec<u8>);

    /// Every message of `chunks`, or the error.
    fn read(chunks: &[&[u8]]) -> Result<Vec<Read>, FrameError> {
        let mut frames = EventStreamFrames::new();
        let mut out = Vec::new();
        for c in chunks {
            frames.feed(c, |m| {
                let headers = m
                    .headers()
                    .map(|(n, v)| (n.to_owned(), format!("{v:?}")))
                    .collect();
                out.push((headers, m.payload.to_vec()));
            })?;
        }
        Ok(out)
    }

    #[test]
    fn the_published_minimal_message_decodes() {
        // AWS's event-stream test vector "all_headers" is larger; this is its "empty_message": a 16-byte message
        // with neither headers nor payload, CRCs 0x05c248eb and 0x7d98c8ff.
        let empty = [
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98,
            0xc8, 0xff,
        ];
        assert_eq!(encode_message(&[], b""), empty);
        assert_eq!(read(&[&empty]).unwrap(), vec![(vec![], vec![])]);
    }

    #[test]
    fn every_header_type_round_trips() {
        let uuid = [7u8; 16];
        let headers = [
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("b", HeaderValue::Byte(-3)),
            ("s", HeaderValue::Short(-300)),
            ("i", HeaderValue::Int(70_000)),
            ("l", HeaderValue::Long(-5_000_000_000)),
            ("y", HeaderValue::Bytes(b"\x00\x01")),
            ("str", HeaderValue::String("héllo")),
            ("ts", HeaderValue::Timestamp(1_440_938_160_000)),
            ("u", HeaderValue::Uuid(&uuid)),
        ];
        let bytes = encode_message(&headers, b"{}");
        let mut frames = EventStreamFrames::new();
        let mut seen = 0;
        frames
            .feed(&bytes, |m| {
                let got: Vec<_> = m.headers().collect();
                assert_eq!(got, headers.to_vec());
                assert_eq!(m.str_header("str"), Some("héllo"));
                assert_eq!(m.header("i"), Some(HeaderValue::Int(70_000)));
                assert_eq!(m.payload, b"{}");
                seen += 1;
            })
            .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn messages_split_anywhere_or_packed_together_come_out_whole() {
        let mut stream = encode_event("messageStart", br#"{"role":"assistant"}"#);
        stream.extend(encode_event(
            "contentBlockDelta",
            br#"{"delta":{"text":"Hi"}}"#,
        ));
        stream.extend(encode_event("messageStop", br#"{"stopReason":"end_turn"}"#));
        let whole = read(&[&stream]).unwrap();
        assert_eq!(whole.len(), 3);
        for cut in 1..stream.len() {
            assert_eq!(
                read(&[&stream[..cut], &stream[cut..]]).unwrap(),
                whole,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(read(&bytes).unwrap(), whole);
    }

    #[test]
    fn a_damaged_payload_fails_the_message_crc() {
        let mut m = encode_event("contentBlockDelta", br#"{"delta":{"text":"Hi"}}"#);
        let at = m.len() - 8;
        m[at] ^= 0x20;
        assert!(matches!(read(&[&m]), Err(FrameError::MessageCrc { .. })));
    }

    #[test]
    fn a_damaged_length_fails_the_prelude_crc_before_waiting_for_bytes() {
        let mut m = encode_event("messageStart", b"{}");
        m[2] ^= 0x01;
        // Only the prelude is needed to notice: no waiting for the (now wrong) total length.
        assert!(matches!(
            read(&[&m[..12]]),
            Err(FrameError::PreludeCrc { .. })
        ));
    }

    #[test]
    fn lengths_that_cannot_be_a_message_are_refused() {
        let mut prelude = Vec::new();
        prelude.extend_from_slice(&8u32.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        prelude.extend_from_slice(&crc32fast::hash(&prelude).to_be_bytes());
        assert!(matches!(read(&[&prelude]), Err(FrameError::Length(_))));
    }

    #[test]
    fn an_unknown_header_type_is_refused() {
        let mut m = encode_message(&[("x", HeaderValue::Bool(true))], b"");
        // Type byte of the only header, then fix both CRCs so only the header is wrong.
        m[PRELUDE_LEN + 2] = 42;
        let crc_at = m.len() - 4;
        let crc = crc32fast::hash(&m[..crc_at]).to_be_bytes();
        m[crc_at..].copy_from_slice(&crc);
        assert!(matches!(read(&[&m]), Err(FrameError::Header(_))));
    }
}
