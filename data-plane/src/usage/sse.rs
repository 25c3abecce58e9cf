//! Server-sent events framing: picks the `data:` lines out of the byte stream and hands their payload to the
//! JSON lexer, one document per event.
//!
//! Only the line state is kept between chunks (which field the current line is, and whether a `\r` may be
//! followed by a `\n`), so a chunk boundary anywhere, even inside `data:` or a `\r\n`, costs nothing extra.

use super::json::JsonScan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line: an end of line here ends the event.
    Start,
    /// Reading the field name; `matched` bytes of `data` so far, or more than 4 when it is another field.
    Field {
        matched: u8,
    },
    /// After `data:`: one optional space is dropped, then payload.
    DataStart,
    Data,
    /// Another field or a comment: skipped to the end of the line.
    Ignore,
}

#[derive(Debug)]
pub(super) struct SseScan {
    line: Line,
    /// The previous byte was `\r`: a `\n` right after it belongs to the same line ending.
    after_cr: bool,
    /// The event has payload fed to the lexer (so its end must reset the lexer).
    event_has_data: bool,
}

impl SseScan {
    pub(super) fn new() -> Self {
        Self {
            line: Line::Start,
            after_cr: false,
            event_has_data: false,
        }
    }

    pub(super) fn feed(&mut self, bytes: &[u8], json: &mut JsonScan) {
        let mut i = 0;
        while i < bytes.len() {
            if self.line == Line::Data {
                // Hand the payload up to the end of the line to the lexer in one slice.
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n' || b == b'\r')
                    .map_or(bytes.len(), |n| i + n);
                json.feed(&bytes[i..end]);
                self.event_has_data = true;
                i = end;
                if i == bytes.len() {
                    return;
                }
            }
            let b = bytes[i];
            i += 1;
            if b == b'\n' && self.after_cr {
                self.after_cr = false;
                continue;
            }
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.end_of_line(json);
                continue;
            }
            self.line = match self.line {
                Line::Start | Line::Field { .. } => {
                    let matched = match self.line {
                        Line::Field { matched } => matched,
                        _ => 0,
                    };
                    if b == b':' {
                        if matched == 4 {
                            Line::DataStart
                        } else {
                            Line::Ignore
                        }
                    } else if usize::from(matched) < 4 && b == b"data"[usize::from(matched)] {
                        Line::Field {
                            matched: matched + 1,
                        }
                    } else {
                        Line::Field { matched: 5 }
                    }
                }
                Line::DataStart => {
                    if b != b' ' {
                        json.feed(&[b]);
                        self.event_has_data = true;
                    }
                    Line::Data
                }
                // Consumed by the slice path at the top of the loop; kept for completeness.
                Line::Data => Line::Data,
                Line::Ignore => Line::Ignore,
            };
        }
    }

    fn end_of_line(&mut self, json: &mut JsonScan) {
        match self.line {
            // A blank line dispatches the event: its document is complete, or abandoned.
            Line::Start if self.event_has_data => {
                json.reset();
                self.event_has_data = false;
            }
            // Lines of one event's data are joined with a newline.
            Line::Data | Line::DataStart => json.feed(b"\n"),
            _ => {}
        }
        self.line = Line::Start;
    }
}
