//! Access control (issue 14): virtual keys, the users and teams they belong to, and the limits and budgets of each,
//! as the control plane stores them and as config documents carry them to every node.
//!
//! A key's secret never leaves the control plane after its create or rotate response: documents carry only its
//! SHA-256 ([`secret_hash`]), and a node finds the key by hashing what the caller presented. The lookup compares
//! hashes, so its timing says nothing about the secret (finding a secret from its hash's prefix is a preimage
//! search); the control plane compares nothing secret at all.
//!
//! Everything here is account-wide: each gateway document of an account carries the account's subjects (keys that
//! may use that gateway, and every user and team), so a change reaches every node with the next publish of the
//! account's gateways, like custom providers do.

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// Every virtual key's secret starts with this, so a node tells a virtual key from a provider key or a gateway
/// token in `Authorization` without a lookup.
pub const KEY_PREFIX: &str = "ghk_";

/// Random bytes in a secret (256 bits).
const SECRET_BYTES: usize = 32;

/// A freshly generated secret: shown once to the caller, then only its hash is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSecret {
    /// `ghk_` and 43 base64url characters.
    pub secret: String,
    /// [`secret_hash`] of `secret`.
    pub hash: String,
    /// [`preview`] of `secret`.
    pub preview: String,
}

impl std::fmt::Debug for NewSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSecret")
            .field("preview", &self.preview)
            .finish_non_exhaustive()
    }
}

impl NewSecret {
    pub fn generate() -> Self {
        use base64::Engine as _;
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        Self {
            hash: secret_hash(&secret),
            preview: preview(&secret),
            secret,
        }
    }
}

/// The hex SHA-256 of a key's secret: what is stored and what documents carry.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// What the API shows of a secret after creation: the prefix and the first and last four characters of the random
/// part (`ghk_AbCd…WxYz`), enough to tell keys apart, far too little to guess one.
pub fn preview(secret: &str) -> String {
    let random = secret.strip_prefix(KEY_PREFIX).unwrap_or(secret);
    let chars: Vec<char> = random.chars().collect();
    if chars.len() < 12 {
        return format!("{KEY_PREFIX}…");
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{KEY_PREFIX}{head}…{tail}")
}

/// Whether a bearer token is shaped like a virtual key (it may still be unknown or revoked).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// The subjects of one account as a gateway document carries them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessEntries {
    /// The account's unrevoked keys that may use the gateway the document is for.
    #[serde(default)]
    pub keys: Vec<VirtualKeyEntry>,
    #[serde(default)]
    pub users: Vec<SubjectEntry>,
    #[serde(default)]
    pub teams: Vec<SubjectEntry>,
}

impl AccessEntries {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.users.is_empty() && self.teams.is_empty()
    }
}

/// A virtual key as documents carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualKeyEntry {
    pub id: String,
    pub name: String,
    /// [`secret_hash`] of the secret.
    pub secret_hash: String,
    /// Model patterns the key may use (`provider/model`, `*` matches any run of characters, [`pattern_matches`]);
    /// empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
    /// Epoch milliseconds after which the key no longer works; `None`: never expires.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub limits: Limits,
}

/// A user or a team as documents carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectEntry {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub limits: Limits,
    /// A user's team (teams have none). Keys carry it already; a caller known by an identity provider's token
    /// whose token names no team gets it from here, so the team's limits cover that user however they call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
}

/// The limits of a key, user or team. Every field is optional; an absent one does not limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Requests per minute across all models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    /// Tokens per minute across all models, counted as [`Limits::tpm_kind`] says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub tpm_kind: TpmKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Limits that apply only to the models a pattern selects, each counted apart from the others and from the
    /// limits above (which count every model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelLimits>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.budget.is_none() && self.models.is_empty()
    }
}

/// Limits on the models one pattern selects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelLimits {
    /// `provider/model`, with `*` globs ([`pattern_matches`]).
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// Which tokens a TPM limit counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TpmKind {
    Input,
    Output,
    #[default]
    Total,
}

impl TpmKind {
    /// The tokens of one answer this kind counts.
    pub fn count(self, tokens_in: u64, tokens_out: u64) -> u64 {
        match self {
            TpmKind::Input => tokens_in,
            TpmKind::Output => tokens_out,
            TpmKind::Total => tokens_in.saturating_add(tokens_out),
        }
    }
}

/// At most `amount_usd` of cost per calendar `period`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub amount_usd: f64,
    pub period: BudgetPeriod,
}

/// A calendar period in UTC: days start at 00:00 UTC, weeks on Monday 00:00 UTC, months on the 1st at 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    Day,
    Week,
    Month,
}

impl BudgetPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Day => "day",
            BudgetPeriod::Week => "week",
            BudgetPeriod::Month => "month",
        }
    }

    /// The period holding `now_ms` (epoch milliseconds), as `[start, end)` in epoch milliseconds.
    pub fn window_at(self, now_ms: i64) -> (i64, i64) {
        use chrono::{Datelike as _, Duration, NaiveDate, TimeZone as _, Utc};
        let now = Utc
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_else(Utc::now);
        let today = now.date_naive();
        let (start, end): (NaiveDate, NaiveDate) = match self {
            BudgetPeriod::Day => (today, today + Duration::days(1)),
            BudgetPeriod::Week => {
                let monday =
                    today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
                (monday, monday + Duration::days(7))
            }
            BudgetPeriod::Month => {
                let first = today.with_day(1).unwrap_or(today);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first + Duration::days(31));
                (first, next)
            }
        };
        let ms = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
                .unwrap_or(now_ms)
        };
        (ms(start), ms(end))
    }
}

/// Whether `model` (`provider/model`) matches `pattern`: `*` matches any run of characters (`/` included), every
/// other character matches itself, case-sensitively. `anthropic/*` selects every Anthropic model, `*` everything,
/// `*/gpt-4o*` GPT-4o at any provider.
pub fn pattern_matches(pattern: &str, model: &str) -> bool {
    // Iterative glob with one backtrack point: linear in practice, never exponential.
    let (p, m) = (pattern.as_bytes(), model.as_bytes());
    let (mut pi, mut mi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while mi < m.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, mi));
            pi += 1;
        } else if pi < p.len() && p[pi] == m[mi] {
            pi += 1;
            mi += 1;
        } else if let Some((sp, sm)) = star {
            pi = sp + 1;
            mi = sm + 1;
            star = Some((sp, sm + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Longest model pattern, in characters (Bedrock and Vertex model ids are long, but not this long).
pub const MAX_PATTERN_CHARS: usize = 256;

/// Why `pattern` cannot be a model pattern ([`pattern_matches`]), or `None` when it can: a pattern is 1 to
/// [`MAX_PATTERN_CHARS`] characters without whitespace or control characters (no model name holds one, so such a
/// pattern could never match and is a mistake).
pub fn pattern_problem(pattern: &str) -> Option<&'static str> {
    if pattern.is_empty() {
        return Some("A model pattern is not empty: use '*' for every model");
    }
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Some("A model pattern has at most 256 characters");
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("A model pattern has no whitespace or control characters");
    }
    None
}

/// Whether a key whose allowed patterns are `patterns` may use `model`: an empty list allows every model.
pub fn model_allowed(patterns: &[String], model: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| pattern_matches(p, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_only_their_hash_and_preview_are_kept() {
        let a = NewSecret::generate();
        let b = NewSecret::generate();
        assert!(a.secret.starts_with(KEY_PREFIX) && looks_like_key(&a.secret));
        assert_eq!(a.secret.len(), KEY_PREFIX.len() + 43);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, secret_hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(a.preview.starts_with(KEY_PREFIX) && a.preview.contains('…'));
        assert!(
            !format!("{a:?}").contains(&a.secret),
            "Debug never prints it"
        );
        assert_eq!(preview("ghk_short"), "ghk_…");
    }

    #[test]
    fn globs_match_whole_names() {
        for (pattern, model, expected) in [
            ("anthropic/*", "anthropic/claude-sonnet-4-5", true),
            ("anthropic/*", "openai/gpt-4o", false),
            ("*", "workers-ai/@cf/meta/llama-3.1-8b-instruct", true),
            ("*/gpt-4o*", "openai/gpt-4o-mini", true),
            ("*/gpt-4o*", "openai/gpt-4.1", false),
            ("openai/gpt-4o", "openai/gpt-4o", true),
            ("openai/gpt-4o", "openai/gpt-4o-mini", false),
            ("openai/gpt-4o", "OpenAI/gpt-4o", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(
                pattern_matches(pattern, model),
                expected,
                "{pattern} ~ {model}"
            );
        }
        assert!(model_allowed(&[], "any/model"));
        assert!(!model_allowed(&["groq/*".into()], "openai/gpt-4o"));
    }

    #[test]
    fn patterns_are_non_empty_and_without_whitespace() {
        for ok in [
            "*",
            "anthropic/*",
            "workers-ai/@cf/meta/llama-3.1-8b-instruct",
        ] {
            assert_eq!(pattern_problem(ok), None, "{ok}");
        }
        let long = "a".repeat(MAX_PATTERN_CHARS + 1);
        for bad in ["", "openai/gpt 4o", "a\tb", "x\u{0}", long.as_str()] {
            assert!(pattern_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn budget_periods_are_calendar_aligned_in_utc() {
        // 2026-12-06 (a Sunday) 15:30 UTC.
        let now = 1_796_571_000_000;
        let day = BudgetPeriod::Day.window_at(now);
        assert_eq!(day, (1_796_515_200_000, 1_796_601_600_000));
        // Monday 2026-11-30 to Monday 2026-12-07.
        assert_eq!(
            BudgetPeriod::Week.window_at(now),
            (1_795_996_800_000, 1_796_601_600_000)
        );
        // 2026-12-01 to 2027-01-01.
        assert_eq!(
            BudgetPeriod::Month.window_at(now),
            (1_796_083_200_000, 1_798_761_600_000)
        );
        // A period's last millisecond is still in it; its end starts the next one.
        assert_eq!(BudgetPeriod::Day.window_at(day.1 - 1), day);
        assert_eq!(BudgetPeriod::Day.window_at(day.1).0, day.1);
    }

    #[test]
    fn tpm_kinds_count_their_tokens() {
        assert_eq!(TpmKind::Input.count(3, 5), 3);
        assert_eq!(TpmKind::Output.count(3, 5), 5);
        assert_eq!(TpmKind::Total.count(3, 5), 8);
        assert_eq!(TpmKind::default(), TpmKind::Total);
    }
}
