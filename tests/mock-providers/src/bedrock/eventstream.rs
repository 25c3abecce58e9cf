//! AWS's binary event-stream framing, encode side only: what ConverseStream sends. The gateway has its own reader
//! (`data-plane/src/dialect/bedrock/eventstream.rs`); this crate cannot depend on the data plane, and a second,
//! independent writer is what makes the pair a real test of the framing.
//!
//! `total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32`, big-endian,
//! CRC32 (IEEE) over the 8 length bytes and over everything before the last 4 bytes. Headers here are all strings
//! (type 7: `name_len u8 | name | 7 | value_len u16 | value`), which is all Bedrock sends.

use bytes::Bytes;

/// One message with string headers.
pub(crate) fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers
        .iter()
        .map(|(n, v)| 1 + n.len() + 1 + 2 + v.len())
        .sum();
    let total = 12 + headers_len + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers_len as u32).to_be_bytes());
    out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
    for (name, value) in headers {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(7);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Bytes::from(out)
}

/// An `event` message, headers in the order Bedrock sends them.
pub(crate) fn event(event_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// An `exception` message (an error after the stream started).
#[cfg(test)]
pub(crate) fn exception(exception_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload,
    )
}

/// A decoded message: its (name, value) headers and its payload.
#[cfg(test)]
pub(crate) type Decoded = (Vec<(String, String)>, Vec<u8>);

/// Splits a body back into messages, checking lengths and both CRCs: the mock's tests read what it wrote without
/// trusting the writer.
#[cfg(test)]
pub(crate) fn decode_all(mut bytes: &[u8]) -> Vec<Decoded> {
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let total = be(&bytes[0..]);
        let headers_len = be(&bytes[4..]);
        assert_eq!(
            be(&bytes[8..]) as u32,
            crc32fast::hash(&bytes[..8]),
            "prelude CRC"
        );
        let message = &bytes[..total];
        assert_eq!(
            be(&message[total - 4..]) as u32,
            crc32fast::hash(&message[..total - 4]),
            "message CRC"
        );
        let mut headers = Vec::new();
        let mut rest = &message[12..12 + headers_len];
        while !rest.is_empty() {
            let name_len = rest[0] as usize;
            let name = String::from_utf8(rest[1..1 + name_len].to_vec()).unwrap();
            assert_eq!(rest[1 + name_len], 7, "string header");
            let at = 2 + name_len;
            let value_len = u16::from_be_bytes([rest[at], rest[at + 1]]) as usize;
            let value = String::from_utf8(rest[at + 2..at + 2 + value_len].to_vec()).unwrap();
            headers.push((name, value));
            rest = &rest[at + 2 + value_len..];
        }
        out.push((headers, message[12 + headers_len..total - 4].to_vec()));
        bytes = &bytes[total..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_message_matches_aws_published_bytes() {
        // AWS's event-stream test vector "empty_message".
        assert_eq!(
            &message(&[], b"")[..],
            [
                0, 0, 0, 0x10, 0, 0, 0, 0, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8, 0xff
            ]
        );
    }

    #[test]
    fn events_read_back_with_their_headers_and_payloads() {
        let mut body = event("messageStart", br#"{"role":"assistant"}"#).to_vec();
        body.extend_from_slice(&exception(
            "throttlingException",
            br#"{"message":"slow down"}"#,
        ));
        let messages = decode_all(&body);
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0].0[0],
            (":event-type".to_owned(), "messageStart".to_owned())
        );
        assert_eq!(messages[0].1, br#"{"role":"assistant"}"#);
        assert_eq!(
            messages[1].0[2],
            (":message-type".to_owned(), "exception".to_owned())
        );
    }
}
