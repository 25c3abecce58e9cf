//! Splitting a streamed body into whole frames as its bytes arrive: server-sent events (Anthropic, Gemini with
//! `alt=sse`, Cohere, OpenAI). AWS's binary event stream (Bedrock) has its framer in `dialect/bedrock/`.
//!
//! Only an incomplete last line is kept between calls, so a chunk boundary anywhere (inside a field name, a
//! `\r\n`, a multi-byte character) costs nothing extra and nothing is held back once its event is complete.

/// One server-sent event: its `event:` name (empty when absent) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Collects SSE events from a byte stream.
#[derive(Debug, Default)]
pub struct SseFrames {
    /// Bytes of the current line not yet ended.
    line: Vec<u8>,
    /// The previous byte was `\r` (a `\n` right after it ends the same line).
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseFrames {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `emit` for each event they complete, in order.
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(SseEvent)) {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                start = i + 1;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.line.extend_from_slice(&bytes[start..i]);
                start = i + 1;
                self.end_line(&mut emit);
            }
        }
        self.line.extend_from_slice(&bytes[start..]);
    }

    /// The stream ended: an event that was not followed by a blank line is still delivered (some servers end
    /// the body right after the last `data:` line).
    pub fn finish(&mut self, mut emit: impl FnMut(SseEvent)) {
        if !self.line.is_empty() {
            self.end_line(&mut emit);
        }
        self.dispatch(&mut emit);
    }

    fn end_line(&mut self, emit: &mut impl FnMut(SseEvent)) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            self.dispatch(emit);
        } else if line[0] != b':' {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &[][..]),
            };
            let value = String::from_utf8_lossy(value);
            match field {
                b"data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(&value);
                    self.has_data = true;
                }
                b"event" => self.event = value.into_owned(),
                _ => {}
            }
        }
        // Reuse the line's allocation.
        self.line = line;
        self.line.clear();
    }

    fn dispatch(&mut self, emit: &mut impl FnMut(SseEvent)) {
        if self.has_data {
            emit(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        self.event.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut frames = SseFrames::new();
        let mut out = Vec::new();
        for c in chunks {
            frames.feed(c, |e| out.push(e));
        }
        frames.finish(|e| out.push(e));
        out
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text =
            b"event: message_start\r\ndata: {\"a\":1}\r\n\r\n: keep-alive\n\ndata: x\ndata: y\n\n";
        let whole = all(&[text]);
        assert_eq!(
            whole,
            vec![
                SseEvent {
                    event: "message_start".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: String::new(),
                    data: "x\ny".into()
                },
            ]
        );
        for cut in 1..text.len() {
            assert_eq!(all(&[&text[..cut], &text[cut..]]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn an_unterminated_last_event_is_delivered_at_the_end() {
        assert_eq!(
            all(&[b"data: [DONE]"]),
            vec![SseEvent {
                event: String::new(),
                data: "[DONE]".into()
            }]
        );
    }
}
