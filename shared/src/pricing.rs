//! Cost estimates: the model price table (`shared/prices.json`, data kept in the repo) and the per-request
//! `cf-aig-custom-cost` override.
//!
//! Both planes need the same numbers (the data plane computes a log record's cost, the control plane may recompute
//! it), so the table lives here, embedded at compile time and parsed once on first use. Costs are estimates in US
//! dollars, as Cloudflare's are (spec §3.8): no batch, priority or long-context tiers.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// Prices of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input: f64,
    pub output: f64,
    /// Cached input tokens; absent means cached input costs the input price.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct PriceFile {
    #[serde(default)]
    aliases: HashMap<String, String>,
    providers: HashMap<String, HashMap<String, ModelPrice>>,
}

#[derive(Debug, Default)]
struct PriceTable {
    aliases: HashMap<String, String>,
    /// Per provider, the models longest name first, so the first prefix that matches is the longest.
    providers: HashMap<String, Vec<(String, ModelPrice)>>,
}

/// Parsed on first use. A table that does not parse gives no prices rather than a panic on the request path; the
/// tests below fail the build's CI first.
static TABLE: LazyLock<PriceTable> =
    LazyLock::new(|| load(include_str!("../prices.json")).unwrap_or_default());

fn load(text: &str) -> Result<PriceTable, String> {
    let file: PriceFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut providers = HashMap::new();
    for (provider, models) in file.providers {
        let mut models: Vec<(String, ModelPrice)> = models
            .into_iter()
            .map(|(name, price)| (name.to_ascii_lowercase(), price))
            .collect();
        for (name, price) in &models {
            let prices = [Some(price.input), Some(price.output), price.cached_input];
            if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
                return Err(format!(
                    "{provider}/{name}: prices must be finite and non-negative"
                ));
            }
        }
        models.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        providers.insert(provider, models);
    }
    Ok(PriceTable {
        aliases: file.aliases,
        providers,
    })
}

/// A listed name matches the model exactly, or as a prefix ending where a version or date suffix begins (so
/// `gpt-4o-mini-2024-07-18` is `gpt-4o-mini`, but `command-r7b` is not `command-r`).
fn matches(listed: &str, model: &str) -> bool {
    model
        .strip_prefix(listed)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.', ':', '@']))
}

/// The prices of a model: exact name first, else the longest listed prefix. Case-insensitive.
pub fn price(provider: &str, model: &str) -> Option<ModelPrice> {
    let table = &*TABLE;
    let provider = table.aliases.get(provider).map_or(provider, String::as_str);
    let model = model.trim().to_ascii_lowercase();
    table
        .providers
        .get(provider)?
        .iter()
        .find(|(listed, _)| matches(listed, &model))
        .map(|(_, price)| *price)
}

/// Estimated cost in US dollars. Cached input tokens (a part of `tokens_in`) are billed at the cached price, the
/// rest at the input price. `None` when the model is unknown or the response carried no token counts at all; a
/// single missing side counts as zero (embeddings have no output tokens).
pub fn cost(
    provider: &str,
    model: &str,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    cached_tokens_in: Option<u64>,
) -> Option<f64> {
    if tokens_in.is_none() && tokens_out.is_none() {
        return None;
    }
    let price = price(provider, model)?;
    let tokens_in = tokens_in.unwrap_or(0);
    // A provider reporting more cached than total input tokens is trusted only up to the total.
    let cached = cached_tokens_in.unwrap_or(0).min(tokens_in);
    let uncached = tokens_in - cached;
    let dollars = uncached as f64 * price.input
        + cached as f64 * price.cached_input.unwrap_or(price.input)
        + tokens_out.unwrap_or(0) as f64 * price.output;
    Some(dollars / 1_000_000.0)
}

/// Prices per token from the `cf-aig-custom-cost` header, which replace the table for one request and set the log
/// record's `custom_cost`.
///
/// Cloudflare's docs always show both fields; we accept either one missing (or `null`) as 0, so a caller pricing
/// only input is not refused, but require at least one. Values must be finite, non-negative JSON numbers; other
/// fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomCost {
    pub per_token_in: f64,
    pub per_token_out: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomCostError {
    #[error("cf-aig-custom-cost is not a JSON object with numeric per_token_in/per_token_out: {0}")]
    Malformed(String),
    #[error("cf-aig-custom-cost names neither per_token_in nor per_token_out")]
    Empty,
    #[error("cf-aig-custom-cost {0} must be a finite, non-negative number")]
    OutOfRange(&'static str),
}

impl CustomCost {
    pub fn parse(header: &str) -> Result<Self, CustomCostError> {
        #[derive(Deserialize)]
        struct Wire {
            per_token_in: Option<f64>,
            per_token_out: Option<f64>,
        }
        let wire: Wire =
            serde_json::from_str(header).map_err(|e| CustomCostError::Malformed(e.to_string()))?;
        if wire.per_token_in.is_none() && wire.per_token_out.is_none() {
            return Err(CustomCostError::Empty);
        }
        let check = |value: Option<f64>, name| match value.unwrap_or(0.0) {
            v if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(CustomCostError::OutOfRange(name)),
        };
        Ok(Self {
            per_token_in: check(wire.per_token_in, "per_token_in")?,
            per_token_out: check(wire.per_token_out, "per_token_out")?,
        })
    }

    /// Cost in US dollars; `None` when the response carried no token counts (spec: custom costs apply only to
    /// responses with token info). Cached tokens have no price of their own here.
    pub fn cost(&self, tokens_in: Option<u64>, tokens_out: Option<u64>) -> Option<f64> {
        if tokens_in.is_none() && tokens_out.is_none() {
            return None;
        }
        Some(
            tokens_in.unwrap_or(0) as f64 * self.per_token_in
                + tokens_out.unwrap_or(0) as f64 * self.per_token_out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn the_embedded_table_loads_and_lists_every_expected_provider() {
        let table = load(include_str!("../prices.json")).unwrap();
        for provider in [
            "openai",
            "anthropic",
            "google-ai-studio",
            "groq",
            "mistral",
            "deepseek",
            "cohere",
        ] {
            assert!(
                table.providers.get(provider).is_some_and(|m| m.len() >= 2),
                "{provider}"
            );
        }
        assert!(!TABLE.providers.is_empty());
    }

    #[test]
    fn a_table_with_a_negative_price_is_refused() {
        let text = r#"{"providers":{"p":{"m":{"input":-1,"output":1}}}}"#;
        assert!(load(text).is_err());
    }

    #[test]
    fn exact_names_dated_variants_and_aliases_find_their_prices() {
        let cases = [
            ("openai", "gpt-4o", 2.5),
            ("openai", "gpt-4o-mini", 0.15),
            ("openai", "gpt-4o-mini-2024-07-18", 0.15),
            ("openai", "gpt-4o-2024-08-06", 2.5),
            ("openai", "GPT-4.1-mini-2025-04-14", 0.4),
            ("openai", "o3-mini-2025-01-31", 1.1),
            ("azure-openai", "gpt-4o", 2.5),
            ("anthropic", "claude-3-5-haiku-20241022", 0.8),
            ("anthropic", "claude-sonnet-4-20250514", 3.0),
            ("anthropic", "claude-opus-4-1-20250805", 15.0),
            ("anthropic", "claude-3-7-sonnet-latest", 3.0),
            ("google-ai-studio", "gemini-2.5-flash-lite", 0.1),
            ("google-ai-studio", "gemini-2.5-flash-preview-05-20", 0.3),
            ("google-vertex-ai", "gemini-2.0-flash-001", 0.1),
            ("groq", "llama-3.3-70b-versatile", 0.59),
            ("mistral", "mistral-large-latest", 2.0),
            ("mistral", "mistral-small-2503", 0.1),
            ("deepseek", "deepseek-chat", 0.28),
            ("cohere", "command-r7b-12-2024", 0.0375),
            ("cohere", "command-r-08-2024", 0.15),
            ("cohere", "command-r-plus-08-2024", 2.5),
        ];
        for (provider, model, input) in cases {
            assert_eq!(
                price(provider, model).map(|p| p.input),
                Some(input),
                "{provider} {model}"
            );
        }
    }

    #[test]
    fn unknown_models_providers_and_non_boundary_prefixes_have_no_price() {
        for (provider, model) in [
            ("openai", "gpt-4"),
            ("openai", "gpt-4oo"),
            ("openai", ""),
            ("anthropic", "gpt-4o"),
            ("nobody", "gpt-4o"),
            ("cohere", "command"),
        ] {
            assert_eq!(price(provider, model), None, "{provider} {model}");
        }
    }

    #[test]
    fn cost_bills_cached_input_at_the_cached_price_and_the_rest_at_the_input_price() {
        // gpt-4o-mini: 0.15 in, 0.60 out, 0.075 cached per million.
        let got = cost(
            "openai",
            "gpt-4o-mini-2024-07-18",
            Some(1_000_000),
            Some(1_000_000),
            Some(400_000),
        );
        assert!(close(got, 0.6 * 0.15 + 0.4 * 0.075 + 0.6), "{got:?}");
        // No cached price listed: cached input costs the input price.
        let got = cost(
            "groq",
            "llama-3.1-8b-instant",
            Some(2_000_000),
            Some(0),
            Some(1_000_000),
        );
        assert!(close(got, 0.1), "{got:?}");
        // More cached than input is capped at the input.
        let got = cost("openai", "gpt-4o", Some(10), Some(0), Some(50));
        assert!(close(got, 10.0 * 1.25 / 1e6), "{got:?}");
        // Embeddings: no output tokens.
        assert!(close(
            cost(
                "openai",
                "text-embedding-3-small",
                Some(1_000_000),
                None,
                None
            ),
            0.02
        ));
    }

    #[test]
    fn cost_is_none_for_an_unknown_model_or_without_tokens() {
        assert_eq!(cost("openai", "nonexistent", Some(1), Some(1), None), None);
        assert_eq!(cost("openai", "gpt-4o", None, None, Some(1)), None);
    }

    #[test]
    fn custom_cost_parses_good_headers() {
        let both =
            CustomCost::parse(r#"{"per_token_in":0.000001,"per_token_out":0.000002}"#).unwrap();
        assert_eq!(
            both,
            CustomCost {
                per_token_in: 0.000001,
                per_token_out: 0.000002
            }
        );
        assert!(close(both.cost(Some(1000), Some(500)), 0.002));
        let only_in = CustomCost::parse(r#" {"per_token_in": 1e-7, "note": "ignored"} "#).unwrap();
        assert_eq!(
            only_in,
            CustomCost {
                per_token_in: 1e-7,
                per_token_out: 0.0
            }
        );
        let null_out = CustomCost::parse(r#"{"per_token_in":0,"per_token_out":null}"#).unwrap();
        assert_eq!(
            null_out,
            CustomCost {
                per_token_in: 0.0,
                per_token_out: 0.0
            }
        );
        let precise =
            CustomCost::parse(r#"{"per_token_in":0.0000000123456789,"per_token_out":3}"#).unwrap();
        assert_eq!(precise.per_token_in, 0.000_000_012_345_678_9);
        assert_eq!(both.cost(None, None), None);
    }

    #[test]
    fn custom_cost_refuses_bad_headers() {
        for header in [
            "",
            "0.1",
            "[]",
            "{}",
            r#"{"per_token_in":null}"#,
            r#"{"per_token_in":"0.1","per_token_out":1}"#,
            r#"{"per_token_in":-0.1,"per_token_out":1}"#,
            r#"{"per_token_in":1,"per_token_out":1e999}"#,
            r#"{"per_token_in":true}"#,
            r#"{"per_token_in":1,"per_token_out":2"#,
        ] {
            assert!(CustomCost::parse(header).is_err(), "{header:?}");
        }
    }
}
