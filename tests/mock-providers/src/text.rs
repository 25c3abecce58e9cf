//! What the mock "generates": fixed text pieces and token counts derived from the request, so tests can predict them.

/// Content pieces (one per stream chunk) when neither the behaviour nor `x-mock-chunks` says otherwise.
pub const DEFAULT_CHUNKS: usize = 5;

const PIECES: &[&str] = &["Hello", " from", " the", " mock", " provider", "."];

/// The `i`-th content piece; pieces cycle so any chunk count works.
pub(crate) fn piece(i: usize) -> &'static str {
    PIECES[i % PIECES.len()]
}

/// The whole completion text for `chunks` pieces: what a client gets by concatenating the stream's deltas, and what
/// the non-streaming answer carries.
pub fn completion_text(chunks: usize) -> String {
    (0..chunks).map(piece).collect()
}

/// The size of a mock embedding when the request names none: small, because tests look at shapes, not meaning.
pub const DEFAULT_EMBEDDING_DIMENSIONS: usize = 8;

/// The vector every provider's mock answers for the input at `index` (position in the request), `dimensions`
/// floats long, so a test can predict what a client gets whichever provider embedded it.
pub fn embedding_vector(index: usize, dimensions: usize) -> Vec<f32> {
    (0..dimensions)
        .map(|d| ((index * 31 + d) % 17) as f32 / 17.0 - 0.5)
        .collect()
}

/// Token counts the mock reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Usage for a request body of `body_len` bytes answered with `chunks` pieces: one input token per started 4 bytes
/// of body (at least 1), one output token per piece. Cached tokens are always 0.
pub fn usage_for(body_len: usize, chunks: usize) -> Usage {
    Usage {
        input_tokens: body_len.div_ceil(4).max(1) as u64,
        output_tokens: chunks as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cycle_and_concatenate_into_the_completion_text() {
        assert_eq!(completion_text(3), "Hello from the");
        assert_eq!(completion_text(7), "Hello from the mock provider.Hello");
        assert_eq!(completion_text(0), "");
    }

    #[test]
    fn usage_counts_a_token_per_started_four_bytes_and_one_per_piece() {
        assert_eq!(
            usage_for(0, 0),
            Usage {
                input_tokens: 1,
                output_tokens: 0
            }
        );
        assert_eq!(usage_for(9, 4).input_tokens, 3);
        assert_eq!(usage_for(8, 4).total(), 6);
    }
}
