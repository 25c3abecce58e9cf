//! Tests of the usage scanner. `formats` holds one recorded body per provider shape, each fed whole, byte by
//! byte, in two pieces at every split point and in random pieces; `robustness` holds the bodies that must not hurt.

mod event_stream;
mod formats;
mod robustness;

use super::{Dialect, Framing, ResponseFormat, Usage, UsageScanner};

const JSON: Framing = Framing::Json;
const SSE: Framing = Framing::Sse;

fn format(dialect: Dialect, framing: Framing) -> ResponseFormat {
    ResponseFormat { dialect, framing }
}

fn scan_pieces<'a>(format: ResponseFormat, pieces: impl IntoIterator<Item = &'a [u8]>) -> Usage {
    let mut scanner = UsageScanner::new(format);
    for piece in pieces {
        scanner.feed(piece);
    }
    scanner.finish()
}

/// A small deterministic generator (xorshift), so a failing split is reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Scans `body` whole, byte by byte, split in two at every index and in random pieces; every way must give the
/// same usage, which is returned.
fn scan_every_way(format: ResponseFormat, body: &str) -> Usage {
    scan_bytes_every_way(format, body.as_bytes())
}

/// [`scan_every_way`] for a binary body.
fn scan_bytes_every_way(format: ResponseFormat, body: &[u8]) -> Usage {
    let whole = scan_pieces(format, [body]);
    assert_eq!(scan_pieces(format, body.chunks(1)), whole, "byte by byte");
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(scan_pieces(format, [a, b]), whole, "split at {at}");
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..200 {
        let mut pieces = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at((1 + rng.below(17)).min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        assert_eq!(
            scan_pieces(format, pieces),
            whole,
            "random pieces, round {round}"
        );
    }
    whole
}

fn usage(tokens_in: u64, tokens_out: u64, cached: Option<u64>, model: Option<&str>) -> Usage {
    Usage {
        tokens_in: Some(tokens_in),
        tokens_out: Some(tokens_out),
        cached_tokens_in: cached,
        model: model.map(str::to_owned),
    }
}
