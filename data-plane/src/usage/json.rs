//! An incremental JSON lexer that finds the usage object and the model name without building a tree.
//!
//! It walks the bytes once, keeping only the nesting of the outer levels, whether it is inside a string, and the
//! key it just read. Only when a `usage` (or `usageMetadata`) object starts at a level where it describes the whole
//! response does it copy bytes, into a buffer capped at [`MAX_CAPTURE`], and parse that slice alone when the object
//! closes. So a chunk costs one pass over its bytes and, in the common case, no allocation; what is kept between
//! chunks is this struct's fixed-size state plus the capture buffer.
//!
//! "A level where it describes the whole response" (a *scope* object): the root object of a document, an object
//! that is an element of a root array (Gemini's non-SSE stream is a JSON array of chunks), and an object under a
//! wrapper key (`response`, `message`, `result`, `delta`) of a scope object (OpenAI Responses' `response.completed`,
//! Anthropic's `message_start`, Workers AI's `result`, Cohere's `message-end`). A `usage` key anywhere else, say
//! inside a tool call's arguments object, is not the response's usage and is ignored.

use super::raw::RawUsage;

/// The largest usage object copied. Real ones are under 1 KiB (Gemini's with per-modality details is the largest);
/// a bigger one is not a usage object we understand and is dropped rather than buffered.
pub(super) const MAX_CAPTURE: usize = 4096;
/// Levels whose state is kept. Scope objects sit at most three deep; deeper levels are only counted.
const TRACKED_DEPTH: usize = 8;
/// Longest key that is compared (`usageMetadata`); longer keys are simply not interesting.
const MAX_KEY: usize = 16;
/// Longest model name kept; longer ones are dropped (no real model name comes close).
const MAX_MODEL: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Usage,
    Model,
    Wrapper,
    Other,
}

fn classify(key: &[u8]) -> Key {
    match key {
        b"usage" | b"usageMetadata" => Key::Usage,
        b"model" | b"modelVersion" => Key::Model,
        b"response" | b"message" | b"result" | b"delta" => Key::Wrapper,
        _ => Key::Other,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    is_object: bool,
    in_scope: bool,
    /// In an object: the next string is a key (after `{` or `,`).
    expect_key: bool,
}

/// What a string being read is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StringRole {
    /// A key of a scope object: its bytes go to `key`.
    Key,
    /// The model name: its bytes go to `model_buf`.
    Model,
    /// Anything else: skipped.
    Skip,
}

#[derive(Debug)]
pub(super) struct JsonScan {
    depth: usize,
    frames: [Frame; TRACKED_DEPTH],
    in_string: bool,
    escape: bool,
    role: StringRole,
    key: [u8; MAX_KEY],
    /// Length of `key`; `MAX_KEY + 1` marks a key too long to matter.
    key_len: usize,
    /// The class of the key whose value comes next (set at `:`, cleared by the value).
    pending: Key,
    /// The document is not JSON (or not any more): ignore bytes until [`JsonScan::reset`].
    stalled: bool,
    /// Depth at which the usage object being captured started; `None` when not capturing.
    capture_depth: Option<usize>,
    capture: Vec<u8>,
    capture_overflow: bool,
    model_buf: [u8; MAX_MODEL],
    model_len: usize,
    model_bad: bool,
    /// Accumulated results.
    pub(super) usage: RawUsage,
    pub(super) seen_usage: bool,
    pub(super) model: Option<String>,
}

impl JsonScan {
    pub(super) fn new() -> Self {
        Self {
            depth: 0,
            frames: [Frame::default(); TRACKED_DEPTH],
            in_string: false,
            escape: false,
            role: StringRole::Skip,
            key: [0; MAX_KEY],
            key_len: 0,
            pending: Key::Other,
            stalled: false,
            capture_depth: None,
            capture: Vec::new(),
            capture_overflow: false,
            model_buf: [0; MAX_MODEL],
            model_len: 0,
            model_bad: false,
            usage: RawUsage::default(),
            seen_usage: false,
            model: None,
        }
    }

    /// Forgets the document in progress (an SSE event ended); keeps what was found.
    pub(super) fn reset(&mut self) {
        self.depth = 0;
        self.in_string = false;
        self.escape = false;
        self.role = StringRole::Skip;
        self.key_len = 0;
        self.pending = Key::Other;
        self.stalled = false;
        self.capture_depth = None;
        self.capture.clear();
        self.capture_overflow = false;
    }

    /// Bytes held between chunks beyond the fixed-size state: the capture buffer's allocation.
    pub(super) fn retained_bytes(&self) -> usize {
        self.capture.capacity()
    }

    pub(super) fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.stalled {
                return;
            }
            if self.in_string
                && self.role == StringRole::Skip
                && self.capture_depth.is_none()
                && !self.escape
            {
                // Fast path: most bytes of a response are string content nobody needs; jump to the next quote or
                // backslash.
                match bytes[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                    Some(n) => i += n,
                    None => return,
                }
            }
            let b = bytes[i];
            i += 1;
            if self.capture_depth.is_some() {
                self.capture_push(b);
            }
            if self.in_string {
                self.string_byte(b);
            } else {
                self.structural_byte(b);
            }
        }
    }

    /// Appends to the capture, never past [`MAX_CAPTURE`]: the buffer is allocated once, at its full size, the
    /// first time a usage object is seen, and reused after.
    fn capture_push(&mut self, b: u8) {
        if self.capture.len() < MAX_CAPTURE {
            if self.capture.capacity() == 0 {
                self.capture.reserve_exact(MAX_CAPTURE);
            }
            self.capture.push(b);
        } else {
            self.capture_overflow = true;
        }
    }

    fn string_byte(&mut self, b: u8) {
        if self.escape {
            self.escape = false;
            // An escaped key or model name is never one we look for; drop it.
            self.key_len = MAX_KEY + 1;
            self.model_bad = true;
            return;
        }
        match b {
            b'\\' => self.escape = true,
            b'"' => {
                self.in_string = false;
                if self.role == StringRole::Model {
                    self.finish_model();
                }
            }
            _ => match self.role {
                StringRole::Key => {
                    if self.key_len < MAX_KEY {
                        self.key[self.key_len] = b;
                        self.key_len += 1;
                    } else {
                        self.key_len = MAX_KEY + 1;
                    }
                }
                StringRole::Model => {
                    if self.model_len < MAX_MODEL {
                        self.model_buf[self.model_len] = b;
                        self.model_len += 1;
                    } else {
                        self.model_bad = true;
                    }
                }
                StringRole::Skip => {}
            },
        }
    }

    fn finish_model(&mut self) {
        if !self.model_bad
            && self.model_len > 0
            && let Ok(name) = std::str::from_utf8(&self.model_buf[..self.model_len])
        {
            // The one allocation of a scan, made once: later chunks repeating the model skip it.
            self.model = Some(name.to_owned());
        }
        self.role = StringRole::Skip;
    }

    /// The tracked frame at the top, if the top is tracked.
    fn top(&mut self) -> Option<&mut Frame> {
        match self.depth {
            0 => None,
            d if d <= TRACKED_DEPTH => Some(&mut self.frames[d - 1]),
            _ => None,
        }
    }

    fn top_is_scope_object(&self) -> bool {
        (1..=TRACKED_DEPTH).contains(&self.depth) && {
            let f = self.frames[self.depth - 1];
            f.is_object && f.in_scope
        }
    }

    fn structural_byte(&mut self, b: u8) {
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                self.in_string = true;
                let scope = self.top_is_scope_object();
                let expect_key = self.top().is_some_and(|f| f.is_object && f.expect_key);
                self.role = if scope && expect_key {
                    self.key_len = 0;
                    StringRole::Key
                } else if scope && self.pending == Key::Model && self.model.is_none() {
                    self.model_len = 0;
                    self.model_bad = false;
                    StringRole::Model
                } else {
                    StringRole::Skip
                };
                if !expect_key {
                    self.pending = Key::Other;
                }
            }
            b':' => {
                let scope = self.top_is_scope_object();
                let key = if self.key_len <= MAX_KEY {
                    classify(&self.key[..self.key_len])
                } else {
                    Key::Other
                };
                if let Some(frame) = self.top()
                    && frame.is_object
                    && frame.expect_key
                {
                    frame.expect_key = false;
                    self.pending = if scope { key } else { Key::Other };
                }
                self.key_len = MAX_KEY + 1;
            }
            b',' => {
                if let Some(frame) = self.top() {
                    frame.expect_key = frame.is_object;
                }
                self.pending = Key::Other;
            }
            b'{' | b'[' => self.open(b == b'{'),
            b'}' | b']' => self.close(),
            // A UTF-8 byte order mark before a document is tolerated.
            0xEF | 0xBB | 0xBF if self.depth == 0 => {}
            _ if self.depth == 0 => self.stalled = true,
            // A scalar value (number, true, false, null): whatever key preceded it has its value now.
            _ => self.pending = Key::Other,
        }
    }

    fn open(&mut self, is_object: bool) {
        let in_scope = if self.depth == 0 {
            is_object
        } else if self.depth <= TRACKED_DEPTH {
            let parent = self.frames[self.depth - 1];
            is_object
                && if parent.is_object {
                    parent.in_scope && self.pending == Key::Wrapper
                } else {
                    // An element of a root array.
                    self.depth == 1
                }
        } else {
            false
        };
        if is_object
            && self.pending == Key::Usage
            && self.top_is_scope_object()
            && self.capture_depth.is_none()
        {
            self.capture_depth = Some(self.depth);
            self.capture.clear();
            self.capture_overflow = false;
            self.capture_push(b'{');
        }
        if self.depth < TRACKED_DEPTH {
            self.frames[self.depth] = Frame {
                is_object,
                in_scope,
                expect_key: is_object,
            };
        }
        self.depth = self.depth.saturating_add(1);
        self.pending = Key::Other;
    }

    fn close(&mut self) {
        if self.depth == 0 {
            self.stalled = true;
            return;
        }
        self.depth -= 1;
        self.pending = Key::Other;
        if self.capture_depth == Some(self.depth) {
            self.capture_depth = None;
            if !self.capture_overflow
                && let Some(found) = RawUsage::parse(&self.capture)
            {
                self.usage.merge(&found);
                self.seen_usage = true;
            }
            self.capture.clear();
            self.capture_overflow = false;
        }
    }
}
