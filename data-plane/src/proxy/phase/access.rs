//! Admission by virtual key or identity (issue 14): which models the key may use, and the request and token rates
//! and budgets of the key, its user and its team (each has its own; a request needs room in all of them), plus the
//! gateway's own tokens-per-minute cap. A caller an identity provider's token names has no key: the limits of the
//! user and team its claims name apply, counted in the same counters as their keys' requests.
//!
//! - **Models**: every step's `provider/model` must match one of the key's patterns (`shared::access`); else 403.
//! - **Requests per minute**: one all-or-nothing admission over every applicable counter (`LimitStore::admit_all`),
//!   counted before the cache lookup, like the gateway's own rate limit: a refused request uses no allowance.
//! - **Tokens per minute**: the tokens counted in the trailing minute must be below the limit for the request to
//!   pass; the answer's tokens are added once usage is known (`account` phase). Like Cloudflare's spend limits, a
//!   limit can be overrun by the requests already running when it is reached (their tokens are unknown up front).
//! - **Budgets** (USD per calendar day, week or month, UTC): before forwarding, the request's worst case is held
//!   under every applicable budget (`LimitStore::reserve`); the hold is settled to the real cost, or released,
//!   when the request ends. Budgets are never overrun by concurrency or streaming; what the system may spend past
//!   a budget is bounded by the in-flight holds, which the budget already counts.
//!
//! The worst case of a request: its body's bytes divided by [`BYTES_PER_TOKEN_FLOOR`] as input tokens plus the
//! requested maximum output (`max_tokens`, `max_completion_tokens`, `max_output_tokens`, Gemini's
//! `generationConfig.maxOutputTokens`, Bedrock's `inferenceConfig.maxTokens`) or [`DEFAULT_MAX_OUTPUT`], at the
//! model's listed prices. A model without a listed price holds one nano-dollar (so a spent budget still refuses)
//! and is charged what its log record's cost says (`cf-aig-custom-cost` included).

use std::borrow::Cow;
use std::time::Duration;

use gatehouse_bus::limits::{
    AllAdmission, BudgetCounter, LimitStore, RateCheck, Reservation, Reserved, SpendWindow,
    WindowTechnique,
};
use gatehouse_shared::access::{
    Budget, Limits, SubjectEntry, TpmKind, model_allowed, pattern_matches,
};
use gatehouse_shared::pricing;
use http::StatusCode;
use serde::Deserialize;

use super::limits::SpendCharge;
use super::plan::Step;
use crate::dialect::ProviderError;
use crate::error::{AiGatewayError, code};
use crate::snapshot::CompiledGateway;
use crate::snapshot::access::{CompiledKey, RequestSubject};

/// A conservative bytes-per-token ratio for the input estimate: real prompts run 3.5–4.5 bytes per token in
/// English, JSON framing adds more bytes, so dividing by 3 over-estimates, as a hold should.
const BYTES_PER_TOKEN_FLOOR: usize = 3;
/// The output a request is assumed to ask for when it names no maximum [inferred: most chat models' default cap
/// is at or below this; a lower guess would let a budget run over].
const DEFAULT_MAX_OUTPUT: u64 = 4_096;
/// How long a budget hold lives when its request never settles it (a node that died mid-request): longer than any
/// request a node lets run.
const HOLD_FOR: Duration = Duration::from_secs(15 * 60);
/// The window of "per minute" limits: the trailing 60 seconds.
const MINUTE: Duration = Duration::from_secs(60);

/// What the answering request is charged once its usage is known.
#[derive(Debug, Default)]
pub(crate) struct SubjectCharge {
    /// Tokens-per-minute windows and which of the answer's tokens each counts.
    pub tokens: Vec<(SpendWindow, TpmKind)>,
    /// The budget hold to settle to the real cost.
    pub reservation: Option<Reservation>,
}

impl SubjectCharge {
    fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.reservation.is_none()
    }
}

/// A subject whose limits apply: the key, its user or its team.
struct Subject<'k> {
    kind: &'static str,
    id: &'k str,
    name: &'k str,
    limits: &'k Limits,
}

/// The key (when there is one), its or the identity's user, and the team.
fn subjects(caller: &RequestSubject) -> impl Iterator<Item = Subject<'_>> {
    fn of<'k>(kind: &'static str, s: &'k SubjectEntry) -> Subject<'k> {
        Subject {
            kind,
            id: &s.id,
            name: &s.name,
            limits: &s.limits,
        }
    }
    let key_subject = caller.key().map(|key| Subject {
        kind: "key",
        id: &key.entry.id,
        name: &key.entry.name,
        limits: &key.entry.limits,
    });
    key_subject
        .into_iter()
        .chain(caller.user().map(|u| of("user", u)))
        .chain(caller.team().map(|t| of("team", t)))
}

/// Whether a request with this caller (and gateway) needs its usage known afterwards: a log draft must then exist
/// even on a gateway that does not log.
pub(crate) fn needs_usage(gateway: &CompiledGateway, caller: Option<&RequestSubject>) -> bool {
    gateway.settings.tpm_limit.is_some()
        || caller.is_some_and(|k| {
            subjects(k).any(|s| {
                s.limits.tpm.is_some()
                    || s.limits.budget.is_some()
                    || s.limits
                        .models
                        .iter()
                        .any(|m| m.tpm.is_some() || m.budget.is_some())
            })
        })
}

/// The name limits and allowlists match against: `provider/model` (the provider alone when the request names no
/// model, which only a pattern like `openai/*` admits).
fn model_name(step: &Step) -> String {
    format!("{}/{}", step.provider, step.model.as_deref().unwrap_or(""))
}

/// 403 unless the key may use every step's model.
pub(crate) fn check_models(
    key: &CompiledKey,
    steps: &[Step],
    compat: bool,
) -> Result<(), AiGatewayError> {
    if key.entry.models.is_empty() {
        return Ok(());
    }
    for step in steps {
        let model = model_name(step);
        if !model_allowed(&key.entry.models, &model) {
            return Err(refusal(
                compat,
                StatusCode::FORBIDDEN,
                code::MODEL_NOT_ALLOWED,
                format!(
                    "The key '{}' may not use the model '{model}'",
                    key.entry.name
                ),
                None,
            ));
        }
    }
    Ok(())
}

/// Which limit a counter stands for, to name it in a refusal (built only then).
#[derive(Clone, Copy)]
struct Which<'k> {
    /// `key`, `user`, `team`, or `gateway`.
    kind: &'static str,
    name: &'k str,
    /// The model pattern of a per-model limit.
    model: Option<&'k str>,
}

impl std::fmt::Display for Which<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(model) = self.model {
            write!(f, "on '{model}' ")?;
        }
        match self.kind {
            "gateway" => f.write_str("for the gateway"),
            kind => write!(f, "for {kind} '{}'", self.name),
        }
    }
}

/// Request rates (key, user, team) and token rates (those and the gateway's `tpm_limit`) for the request's first
/// step. `Ok` carries the token windows to charge afterwards.
pub(crate) async fn admit_rates(
    store: &dyn LimitStore,
    gateway: &CompiledGateway,
    caller: Option<&RequestSubject>,
    first: &Step,
    compat: bool,
) -> Result<SubjectCharge, AiGatewayError> {
    let account = &gateway.key.account_id;
    let model = model_name(first);
    let mut checks: Vec<RateCheck> = Vec::new();
    let mut check_names: Vec<(Which<'_>, u64)> = Vec::new();
    let mut tokens: Vec<(SpendWindow, TpmKind)> = Vec::new();
    let mut token_names: Vec<(Which<'_>, u64)> = Vec::new();
    if let Some(caller) = caller {
        for s in subjects(caller) {
            let base = format!("vk:{account}:{}:{}", s.kind, s.id);
            let which = Which {
                kind: s.kind,
                name: s.name,
                model: None,
            };
            if let Some(rpm) = s.limits.rpm {
                checks.push(rate(format!("{base}:rpm"), rpm));
                check_names.push((which, rpm));
            }
            let kind = s.limits.tpm_kind;
            if let Some(tpm) = s.limits.tpm {
                tokens.push((minute(format!("{base}:tpm:{}", kind_name(kind))), kind));
                token_names.push((which, tpm));
            }
            for m in s
                .limits
                .models
                .iter()
                .filter(|m| pattern_matches(&m.model, &model))
            {
                let which = Which {
                    model: Some(&m.model),
                    ..which
                };
                if let Some(rpm) = m.rpm {
                    checks.push(rate(format!("{base}:model:{}:rpm", m.model), rpm));
                    check_names.push((which, rpm));
                }
                if let Some(tpm) = m.tpm {
                    let key = format!("{base}:model:{}:tpm:{}", m.model, kind_name(kind));
                    tokens.push((minute(key), kind));
                    token_names.push((which, tpm));
                }
            }
        }
    }
    if let Some(tpm) = gateway.settings.tpm_limit {
        let key = format!("gw:{account}:{}:tpm", gateway.key.gateway_id);
        tokens.push((minute(key), TpmKind::Total));
        token_names.push((
            Which {
                kind: "gateway",
                name: "",
                model: None,
            },
            tpm,
        ));
    }

    if !checks.is_empty() {
        match store.admit_all(&checks).await {
            Ok(AllAdmission::Admitted) => {}
            Ok(AllAdmission::Limited { index, retry_after }) => {
                let (which, rpm) = check_names[index.min(check_names.len() - 1)];
                return Err(refusal(
                    compat,
                    StatusCode::TOO_MANY_REQUESTS,
                    code::KEY_RATE_LIMITED,
                    format!("Rate limit reached: {rpm} requests per minute {which}"),
                    Some(retry_after),
                ));
            }
            Err(error) => tracing::warn!(%error, "limit store failed; admitting the request"),
        }
    }
    if !tokens.is_empty() {
        let windows: Vec<SpendWindow> = tokens.iter().map(|(w, _)| w.clone()).collect();
        match store.spent(&windows).await {
            Ok(used) => {
                if let Some(&(which, tpm)) = token_names
                    .iter()
                    .zip(used)
                    .find(|((_, limit), used)| used >= limit)
                    .map(|(named, _)| named)
                {
                    return Err(refusal(
                        compat,
                        StatusCode::TOO_MANY_REQUESTS,
                        code::KEY_RATE_LIMITED,
                        format!("Rate limit reached: {tpm} tokens per minute {which}"),
                        // The trailing minute frees tokens as it moves; a minute is the longest wait.
                        Some(MINUTE),
                    ));
                }
            }
            Err(error) => tracing::warn!(%error, "limit store failed; admitting the request"),
        }
    }
    Ok(SubjectCharge {
        tokens,
        reservation: None,
    })
}

/// Holds the request's worst-case cost under every budget of the key, its (or the identity's) user and team that
/// applies to the first step's model. `reservation_id` is unique to the request.
pub(crate) async fn reserve_budgets(
    store: &dyn LimitStore,
    account: &str,
    caller: &RequestSubject,
    first: &Step,
    reservation_id: &str,
    compat: bool,
    charge: &mut SubjectCharge,
) -> Result<(), AiGatewayError> {
    let model = model_name(first);
    let now_ms = now_ms();
    let mut counters: Vec<BudgetCounter> = Vec::new();
    let mut names: Vec<(Which<'_>, &Budget)> = Vec::new();
    for s in subjects(caller) {
        let base = format!("vk:{account}:{}:{}", s.kind, s.id);
        let which = Which {
            kind: s.kind,
            name: s.name,
            model: None,
        };
        if let Some(b) = &s.limits.budget {
            counters.push(counter(&format!("{base}:budget"), b, now_ms));
            names.push((which, b));
        }
        for m in s
            .limits
            .models
            .iter()
            .filter(|m| pattern_matches(&m.model, &model))
        {
            if let Some(b) = &m.budget {
                counters.push(counter(
                    &format!("{base}:model:{}:budget", m.model),
                    b,
                    now_ms,
                ));
                names.push((
                    Which {
                        model: Some(&m.model),
                        ..which
                    },
                    b,
                ));
            }
        }
    }
    if counters.is_empty() {
        return Ok(());
    }
    let amount = worst_case_nano_usd(first);
    match store
        .reserve(reservation_id, &counters, amount, HOLD_FOR)
        .await
    {
        Ok(Reserved::Held(reservation)) => charge.reservation = Some(reservation),
        Ok(Reserved::Refused { index, spent, held }) => {
            let (which, budget) = names[index.min(names.len() - 1)];
            let usd = |nano: u64| nano as f64 / 1e9;
            return Err(refusal(
                compat,
                StatusCode::TOO_MANY_REQUESTS,
                code::BUDGET_EXCEEDED,
                format!(
                    "Budget exceeded: ${} per {} (UTC) {which} (${:.6} spent, ${:.6} held by requests in \
                     flight, this request may cost up to ${:.6})",
                    budget.amount_usd,
                    budget.period.as_str(),
                    usd(spent),
                    usd(held),
                    usd(amount)
                ),
                None,
            ));
        }
        Err(error) => tracing::warn!(%error, "budget store failed; admitting the request"),
    }
    Ok(())
}

/// Once the request is over: its tokens to the per-minute windows, its budget hold settled to the real cost (or
/// released, when it cost nothing or failed).
pub(crate) async fn settle(
    store: &dyn LimitStore,
    charge: SubjectCharge,
    tokens_in: Option<u64>,
    tokens_out: Option<u64>,
    cost_usd: Option<f64>,
) {
    if charge.is_empty() {
        return;
    }
    if let Some(reservation) = &charge.reservation
        && let Err(error) = store
            .settle(reservation, SpendCharge::nano_usd(cost_usd))
            .await
    {
        tracing::warn!(%error, "budget store failed; the hold lapses by itself");
    }
    let (tokens_in, tokens_out) = (tokens_in.unwrap_or(0), tokens_out.unwrap_or(0));
    for kind in [TpmKind::Input, TpmKind::Output, TpmKind::Total] {
        let windows: Vec<SpendWindow> = charge
            .tokens
            .iter()
            .filter(|(_, k)| *k == kind)
            .map(|(w, _)| w.clone())
            .collect();
        let count = kind.count(tokens_in, tokens_out);
        if windows.is_empty() || count == 0 {
            continue;
        }
        if let Err(error) = store.record_spend(&windows, count).await {
            tracing::warn!(%error, "limit store failed; this request's tokens are not counted");
        }
    }
}

fn rate(key: String, limit: u64) -> RateCheck {
    RateCheck {
        key,
        limit,
        window: MINUTE,
        technique: WindowTechnique::Sliding,
    }
}

fn minute(key: String) -> SpendWindow {
    SpendWindow {
        key,
        window: MINUTE,
        technique: WindowTechnique::Sliding,
    }
}

fn kind_name(kind: TpmKind) -> &'static str {
    match kind {
        TpmKind::Input => "in",
        TpmKind::Output => "out",
        TpmKind::Total => "total",
    }
}

/// The budget's counter for the calendar period holding `now_ms`: the period's start is part of the key, so each
/// period counts from zero.
fn counter(base: &str, budget: &Budget, now_ms: i64) -> BudgetCounter {
    let (start, end) = budget.period.window_at(now_ms);
    BudgetCounter {
        key: format!("{base}:{}:{start}", budget.period.as_str()),
        limit: SpendCharge::nano_usd(Some(budget.amount_usd)),
        period_end_ms: end,
    }
}

/// The most the request can cost, in nano-USD (at least 1). The step's body is the provider's (translated on
/// `/compat`), which keeps the client's output cap in the provider's spelling.
fn worst_case_nano_usd(step: &Step) -> u64 {
    let Some(price) = step
        .model
        .as_deref()
        .and_then(|m| pricing::price(&step.provider, m))
    else {
        return 1;
    };
    let input = (step.body.len() / BYTES_PER_TOKEN_FLOOR) as f64;
    let output = max_output(&step.body).unwrap_or(DEFAULT_MAX_OUTPUT) as f64;
    let usd = (input * price.input + output * price.output) / 1_000_000.0;
    SpendCharge::nano_usd(Some(usd)).max(1)
}

/// The output cap a request body asks for, in any of the providers' spellings.
fn max_output(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Caps {
        max_tokens: Option<u64>,
        max_completion_tokens: Option<u64>,
        max_output_tokens: Option<u64>,
        #[serde(rename = "generationConfig")]
        generation_config: Option<GenerationConfig>,
        #[serde(rename = "inferenceConfig")]
        inference_config: Option<InferenceConfig>,
    }
    #[derive(Deserialize)]
    struct GenerationConfig {
        #[serde(rename = "maxOutputTokens")]
        max_output_tokens: Option<u64>,
    }
    #[derive(Deserialize)]
    struct InferenceConfig {
        #[serde(rename = "maxTokens")]
        max_tokens: Option<u64>,
    }
    let caps: Caps = serde_json::from_slice(body).ok()?;
    caps.max_completion_tokens
        .or(caps.max_tokens)
        .or(caps.max_output_tokens)
        .or(caps.generation_config.and_then(|g| g.max_output_tokens))
        .or(caps.inference_config.and_then(|i| i.max_tokens))
}

/// A refusal in the client's error shape: OpenAI's on `/compat` (what its SDKs parse), `AiGatewayError`
/// elsewhere.
fn refusal(
    compat: bool,
    status: StatusCode,
    internal: u32,
    message: String,
    retry_after: Option<Duration>,
) -> AiGatewayError {
    let retry_after_secs = retry_after.map(|d| d.as_millis().div_ceil(1000).max(1) as u64);
    let openai = compat.then(|| {
        let mut e = ProviderError::new(status.as_u16(), message.clone());
        e.code = Some(
            match internal {
                code::MODEL_NOT_ALLOWED => "model_not_allowed",
                code::BUDGET_EXCEEDED => "budget_exceeded",
                _ => "rate_limit_exceeded",
            }
            .to_owned(),
        );
        Box::new(e)
    });
    AiGatewayError {
        status,
        code: internal,
        message: Cow::Owned(message),
        retry_after_secs,
        openai,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_caps_are_read_in_every_spelling() {
        for (body, cap) in [
            (r#"{"max_tokens":10}"#, Some(10)),
            (r#"{"max_completion_tokens":20,"max_tokens":10}"#, Some(20)),
            (r#"{"max_output_tokens":30}"#, Some(30)),
            (r#"{"generationConfig":{"maxOutputTokens":40}}"#, Some(40)),
            (r#"{"inferenceConfig":{"maxTokens":50}}"#, Some(50)),
            (r#"{"messages":[]}"#, None),
            ("not json", None),
        ] {
            assert_eq!(max_output(body.as_bytes()), cap, "{body}");
        }
    }

    #[test]
    fn refusals_take_the_clients_shape() {
        let plain = refusal(
            false,
            StatusCode::TOO_MANY_REQUESTS,
            code::KEY_RATE_LIMITED,
            "Rate limit reached: 5 requests per minute for key 'ci'".into(),
            Some(Duration::from_millis(1_200)),
        );
        assert!(plain.openai.is_none());
        assert_eq!(plain.retry_after_secs, Some(2));
        let body: serde_json::Value = serde_json::from_slice(&plain.body()).unwrap();
        assert_eq!(body["internalCode"], code::KEY_RATE_LIMITED);
        let compat = refusal(
            true,
            StatusCode::FORBIDDEN,
            code::MODEL_NOT_ALLOWED,
            "no".into(),
            None,
        );
        let body: serde_json::Value = serde_json::from_slice(&compat.body()).unwrap();
        assert_eq!(body["error"]["type"], "permission_error");
        assert_eq!(body["error"]["code"], "model_not_allowed");
    }
}
