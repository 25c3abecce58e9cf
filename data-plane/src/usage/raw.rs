//! The usage object of every dialect, read into one flat struct, and its meaning per dialect.
//!
//! Why one struct: the field names of the dialects barely overlap, so one `Deserialize` reads any of them from the
//! captured slice without first deciding which dialect it is. The only clash is `input_tokens`, which includes
//! cached tokens in OpenAI's Responses API and excludes them in Anthropic's; the dialect hint (and the presence of
//! Anthropic's cache fields) settles it. Every field is a plain integer or a nested struct of integers, so parsing
//! never allocates; unknown fields are skipped.

use serde::Deserialize;

use super::Dialect;

/// A usage object as the provider sent it. Merging keeps the latest value of each field, which is what streams
/// need: Anthropic's `message_delta` repeats a cumulative `output_tokens`, Gemini repeats its whole
/// `usageMetadata` in every chunk.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) struct RawUsage {
    // OpenAI chat completions (and every OpenAI-compatible provider, Workers AI).
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<CachedTokens>,
    /// DeepSeek reports cache hits here instead of `prompt_tokens_details`.
    prompt_cache_hit_tokens: Option<u64>,

    // OpenAI Responses and Anthropic Messages.
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<CachedTokens>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,

    // Gemini `usageMetadata`.
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    cached_content_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
    #[serde(rename = "toolUsePromptTokenCount")]
    tool_use_prompt_token_count: Option<u64>,

    // Bedrock Converse.
    #[serde(rename = "inputTokens")]
    input_tokens_camel: Option<u64>,
    #[serde(rename = "outputTokens")]
    output_tokens_camel: Option<u64>,
    #[serde(rename = "cacheReadInputTokens")]
    cache_read_input_tokens_camel: Option<u64>,
    #[serde(rename = "cacheWriteInputTokens")]
    cache_write_input_tokens_camel: Option<u64>,

    // Cohere v2: `billed_units` is what is charged, `tokens` what the model saw.
    billed_units: Option<InOut>,
    tokens: Option<InOut>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
struct CachedTokens {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
struct InOut {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

/// Token counts in the gateway's terms: `tokens_in` counts every input token (cached ones too), `cached_in` the
/// part of it read from a cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub cached_in: Option<u64>,
}

impl RawUsage {
    /// Parses a captured usage object; `None` when it is not one (wrong types, malformed, cut off).
    pub(super) fn parse(slice: &[u8]) -> Option<Self> {
        serde_json::from_slice(slice).ok()
    }

    /// Overwrites each field the newer object carries, keeps the others.
    pub(super) fn merge(&mut self, newer: &Self) {
        fn take<T: Copy>(old: &mut Option<T>, new: Option<T>) {
            if new.is_some() {
                *old = new;
            }
        }
        take(&mut self.prompt_tokens, newer.prompt_tokens);
        take(&mut self.completion_tokens, newer.completion_tokens);
        take(&mut self.prompt_tokens_details, newer.prompt_tokens_details);
        take(
            &mut self.prompt_cache_hit_tokens,
            newer.prompt_cache_hit_tokens,
        );
        take(&mut self.input_tokens, newer.input_tokens);
        take(&mut self.output_tokens, newer.output_tokens);
        take(&mut self.input_tokens_details, newer.input_tokens_details);
        take(
            &mut self.cache_read_input_tokens,
            newer.cache_read_input_tokens,
        );
        take(
            &mut self.cache_creation_input_tokens,
            newer.cache_creation_input_tokens,
        );
        take(&mut self.prompt_token_count, newer.prompt_token_count);
        take(
            &mut self.candidates_token_count,
            newer.candidates_token_count,
        );
        take(
            &mut self.cached_content_token_count,
            newer.cached_content_token_count,
        );
        take(&mut self.thoughts_token_count, newer.thoughts_token_count);
        take(
            &mut self.tool_use_prompt_token_count,
            newer.tool_use_prompt_token_count,
        );
        take(&mut self.input_tokens_camel, newer.input_tokens_camel);
        take(&mut self.output_tokens_camel, newer.output_tokens_camel);
        take(
            &mut self.cache_read_input_tokens_camel,
            newer.cache_read_input_tokens_camel,
        );
        take(
            &mut self.cache_write_input_tokens_camel,
            newer.cache_write_input_tokens_camel,
        );
        take(&mut self.billed_units, newer.billed_units);
        take(&mut self.tokens, newer.tokens);
    }

    /// The dialect whose fields this object carries. Anthropic and Responses share `input_tokens`: Anthropic's cache
    /// fields or the hint decide, and without either the two readings give the same numbers anyway.
    fn detect(&self, hint: Dialect) -> Dialect {
        if self.prompt_token_count.is_some() || self.candidates_token_count.is_some() {
            Dialect::Gemini
        } else if self.input_tokens_camel.is_some() || self.output_tokens_camel.is_some() {
            Dialect::BedrockConverse
        } else if self.prompt_tokens.is_some() || self.completion_tokens.is_some() {
            Dialect::OpenAiChat
        } else if self.billed_units.is_some() || self.tokens.is_some() {
            Dialect::Cohere
        } else if self.cache_read_input_tokens.is_some()
            || self.cache_creation_input_tokens.is_some()
            || hint == Dialect::Anthropic
        {
            Dialect::Anthropic
        } else {
            Dialect::OpenAiResponses
        }
    }

    /// What the usage means in the gateway's terms, read by the dialect the fields belong to.
    pub(super) fn counts(&self, hint: Dialect) -> Counts {
        match self.detect(hint) {
            // `prompt_tokens` already includes the cached part.
            Dialect::OpenAiChat | Dialect::Auto => Counts {
                tokens_in: self.prompt_tokens,
                tokens_out: self.completion_tokens,
                cached_in: self
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .or(self.prompt_cache_hit_tokens),
            },
            Dialect::OpenAiResponses => Counts {
                tokens_in: self.input_tokens,
                tokens_out: self.output_tokens,
                cached_in: self.input_tokens_details.and_then(|d| d.cached_tokens),
            },
            // Anthropic's `input_tokens` excludes cache reads and writes; users expect all three in tokens_in
            // (Cloudflare's parsing gap, spec §3.8), with the reads as the cached part.
            Dialect::Anthropic => Counts {
                tokens_in: sum_present(&[
                    self.input_tokens,
                    self.cache_read_input_tokens,
                    self.cache_creation_input_tokens,
                ]),
                tokens_out: self.output_tokens,
                cached_in: self.cache_read_input_tokens,
            },
            // Bedrock mirrors Anthropic: `inputTokens` excludes cache reads and writes.
            Dialect::BedrockConverse => Counts {
                tokens_in: sum_present(&[
                    self.input_tokens_camel,
                    self.cache_read_input_tokens_camel,
                    self.cache_write_input_tokens_camel,
                ]),
                tokens_out: self.output_tokens_camel,
                cached_in: self.cache_read_input_tokens_camel,
            },
            // `promptTokenCount` includes the cached content; thinking tokens are billed as output.
            Dialect::Gemini => Counts {
                tokens_in: sum_present(&[
                    self.prompt_token_count,
                    self.tool_use_prompt_token_count,
                ]),
                tokens_out: sum_present(&[self.candidates_token_count, self.thoughts_token_count]),
                cached_in: self.cached_content_token_count,
            },
            Dialect::Cohere => {
                let units = self.billed_units.or(self.tokens).unwrap_or_default();
                Counts {
                    tokens_in: units.input_tokens,
                    tokens_out: units.output_tokens,
                    cached_in: None,
                }
            }
        }
    }
}

/// The sum of the parts that are present; `None` only when none is. Saturating, because the numbers come from
/// outside.
fn sum_present(parts: &[Option<u64>]) -> Option<u64> {
    parts.iter().flatten().copied().reduce(u64::saturating_add)
}
