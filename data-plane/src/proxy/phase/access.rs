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
//!
//! Per request this does no string formatting for a key without per-model limits: the counters' names come
//! from the compiled key, user and team (`snapshot/access/counters.rs`), the model's `provider/model` name is
//! built only when a per-model limit must match it, and the output cap comes from the body's first read
//! (`body::OutputCap`) when the provider gets that very body.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::time::Duration;

use gatehouse_bus::limits::{
    AllAdmission, BudgetCounter, LimitStore, RateCheck, Reservation, Reserved, SpendWindow,
    WindowTechnique,
};
use gatehouse_shared::access::{Budget, Limits, TpmKind, model_allowed, pattern_matches};
use gatehouse_shared::pricing;
use http::StatusCode;

use super::body::{self, OutputCap};
use super::limits::SpendCharge;
use super::plan::Step;
use crate::dialect::ProviderError;
use crate::error::{AiGatewayError, code};
use crate::snapshot::CompiledGateway;
use crate::snapshot::access::{BudgetName, CompiledKey, CompiledSubject, Names, RequestSubject};

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
    /// Tokens-per-minute windows (read for admission, charged afterwards).
    pub windows: Vec<SpendWindow>,
    /// Which of the answer's tokens each of `windows` counts.
    pub kinds: Vec<TpmKind>,
    /// The budget hold to settle to the real cost.
    pub reservation: Option<Reservation>,
}

impl SubjectCharge {
    fn is_empty(&self) -> bool {
        self.windows.is_empty() && self.reservation.is_none()
    }
}

/// A subject whose limits apply: the key, its user or its team.
struct Subject<'k> {
    kind: &'static str,
    name: &'k str,
    limits: &'k Limits,
    of: Of<'k>,
}

/// Where a subject's counter names are kept.
#[derive(Clone, Copy)]
enum Of<'k> {
    Key(&'k CompiledKey),
    Subject(&'k CompiledSubject),
}

impl<'k> Subject<'k> {
    /// The names of its counters in `account` (the request's gateway's).
    fn names(&self, account: &str) -> Names<'k> {
        match self.of {
            Of::Key(key) => key.counter_names(account),
            Of::Subject(s) => s.counter_names(account, self.kind),
        }
    }
}

/// The key (when there is one), its or the identity's user, and the team.
fn subjects(caller: &RequestSubject) -> impl Iterator<Item = Subject<'_>> {
    fn of<'k>(kind: &'static str, s: &'k CompiledSubject) -> Subject<'k> {
        Subject {
            kind,
            name: &s.entry.name,
            limits: &s.entry.limits,
            of: Of::Subject(s),
        }
    }
    let key_subject = caller.key().map(|key| Subject {
        kind: "key",
        name: &key.entry.name,
        limits: &key.entry.limits,
        of: Of::Key(key),
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
    check_model_names(key, steps.iter().map(model_name), compat)
}

/// 403 unless the key may use every `{provider}/{model}` of `models` (a route's targets not built yet).
pub(crate) fn check_model_names<S: AsRef<str>>(
    key: &CompiledKey,
    models: impl Iterator<Item = S>,
    compat: bool,
) -> Result<(), AiGatewayError> {
    if key.entry.models.is_empty() {
        return Ok(());
    }
    for model in models {
        let model = model.as_ref();
        if !model_allowed(&key.entry.models, model) {
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
    let model = OnceCell::new();
    let mut checks: Vec<RateCheck> = Vec::new();
    let mut check_names: Vec<(Which<'_>, u64)> = Vec::new();
    let mut windows: Vec<SpendWindow> = Vec::new();
    let mut kinds: Vec<TpmKind> = Vec::new();
    let mut token_names: Vec<(Which<'_>, u64)> = Vec::new();
    if let Some(caller) = caller {
        for s in subjects(caller) {
            if s.limits.rpm.is_none() && s.limits.tpm.is_none() && s.limits.models.is_empty() {
                continue;
            }
            let names = s.names(account);
            let which = Which {
                kind: s.kind,
                name: s.name,
                model: None,
            };
            if let Some(rpm) = s.limits.rpm {
                checks.push(rate(names.rpm.clone(), rpm));
                check_names.push((which, rpm));
            }
            let kind = s.limits.tpm_kind;
            if let Some(tpm) = s.limits.tpm {
                windows.push(minute(names.tpm.clone()));
                kinds.push(kind);
                token_names.push((which, tpm));
            }
            if s.limits.models.is_empty() {
                continue;
            }
            let model = model.get_or_init(|| model_name(first));
            for (m, m_names) in s
                .limits
                .models
                .iter()
                .zip(&names.models)
                .filter(|(m, _)| pattern_matches(&m.model, model))
            {
                let which = Which {
                    model: Some(&m.model),
                    ..which
                };
                if let Some(rpm) = m.rpm {
                    checks.push(rate(m_names.rpm.clone(), rpm));
                    check_names.push((which, rpm));
                }
                if let Some(tpm) = m.tpm {
                    windows.push(minute(m_names.tpm.clone()));
                    kinds.push(kind);
                    token_names.push((which, tpm));
                }
            }
        }
    }
    if let Some(tpm) = gateway.settings.tpm_limit {
        let key = format!("gw:{account}:{}:tpm", gateway.key.gateway_id);
        windows.push(minute(key));
        kinds.push(TpmKind::Total);
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
    if !windows.is_empty() {
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
        windows,
        kinds,
        reservation: None,
    })
}

/// Holds the request's worst-case cost under every budget of the key, its (or the identity's) user and team that
/// applies to the first step's model. `reservation_id` is unique to the request. `output_cap` is the client
/// body's cap from its first read, used when `first` forwards that very body.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reserve_budgets(
    store: &dyn LimitStore,
    account: &str,
    caller: &RequestSubject,
    first: &Step,
    output_cap: Option<OutputCap>,
    reservation_id: &str,
    compat: bool,
    charge: &mut SubjectCharge,
) -> Result<(), AiGatewayError> {
    let model = OnceCell::new();
    let now_ms = now_ms();
    let mut counters: Vec<BudgetCounter> = Vec::new();
    let mut names: Vec<(Which<'_>, &Budget)> = Vec::new();
    for s in subjects(caller) {
        if s.limits.budget.is_none() && s.limits.models.is_empty() {
            continue;
        }
        let counter_names = s.names(account);
        let which = Which {
            kind: s.kind,
            name: s.name,
            model: None,
        };
        if let (Some(b), Some(name)) = (&s.limits.budget, &counter_names.budget) {
            counters.push(counter(name, b, now_ms));
            names.push((which, b));
        }
        if s.limits.models.is_empty() {
            continue;
        }
        let model = model.get_or_init(|| model_name(first));
        for (m, m_names) in s
            .limits
            .models
            .iter()
            .zip(&counter_names.models)
            .filter(|(m, _)| pattern_matches(&m.model, model))
        {
            if let (Some(b), Some(name)) = (&m.budget, &m_names.budget) {
                counters.push(counter(name, b, now_ms));
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
    let amount = worst_case_nano_usd(first, output_cap);
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
        let count = kind.count(tokens_in, tokens_out);
        if count == 0 {
            continue;
        }
        let Some(windows) = windows_of(&charge, kind) else {
            continue;
        };
        if let Err(error) = store.record_spend(&windows, count).await {
            tracing::warn!(%error, "limit store failed; this request's tokens are not counted");
        }
    }
}

/// The windows of `charge` that count `kind`, in order: borrowed when they all do (the usual case: every limit
/// counts the same tokens), `None` when none does.
fn windows_of(charge: &SubjectCharge, kind: TpmKind) -> Option<Cow<'_, [SpendWindow]>> {
    if !charge.kinds.contains(&kind) {
        return None;
    }
    if charge.kinds.iter().all(|k| *k == kind) {
        return Some(Cow::Borrowed(&charge.windows));
    }
    let windows = charge
        .windows
        .iter()
        .zip(&charge.kinds)
        .filter(|(_, k)| **k == kind)
        .map(|(w, _)| w.clone())
        .collect();
    Some(Cow::Owned(windows))
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

/// The budget's counter for the calendar period holding `now_ms`: the period's start is part of the key
/// (`{base}:{period}:{start}`, `BudgetName`), so each period counts from zero.
fn counter(name: &BudgetName, budget: &Budget, now_ms: i64) -> BudgetCounter {
    let (key, end) = name.at(now_ms);
    BudgetCounter {
        key,
        limit: SpendCharge::nano_usd(Some(budget.amount_usd)),
        period_end_ms: end,
    }
}

/// The most the request can cost, in nano-USD (at least 1). The cap counted is the one in the body the provider
/// gets: the step's body, translated on `/compat` (where the translator may respell the client's cap or add its
/// own default, as Anthropic's `max_tokens`). `output_cap` was read from the client's body with its model; it
/// holds only when the step forwards those very bytes (the provider-native form), else the step's body is read.
fn worst_case_nano_usd(step: &Step, output_cap: Option<OutputCap>) -> u64 {
    let Some(price) = step
        .model
        .as_deref()
        .and_then(|m| pricing::price(&step.provider, m))
    else {
        return 1;
    };
    let input = (step.body.len() / BYTES_PER_TOKEN_FLOOR) as f64;
    let cap = output_cap
        .and_then(|c| c.for_body(&step.body))
        .unwrap_or_else(|| body::output_cap(&step.body));
    let output = cap.unwrap_or(DEFAULT_MAX_OUTPUT) as f64;
    let usd = (input * price.input + output * price.output) / 1_000_000.0;
    SpendCharge::nano_usd(Some(usd)).max(1)
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
            assert_eq!(body::output_cap(body.as_bytes()), cap, "{body}");
            let (_, peeked) = body::RequestPeek::with_output_cap(body.as_bytes());
            let peeked = peeked.map_or_else(
                || body::output_cap(body.as_bytes()),
                |p| p.for_body(body.as_bytes()).unwrap(),
            );
            assert_eq!(peeked, cap, "{body}");
        }
    }

    #[test]
    fn token_windows_are_charged_by_the_tokens_they_count() {
        let charge = |kinds: &[TpmKind]| SubjectCharge {
            windows: (0..kinds.len()).map(|i| minute(format!("w{i}"))).collect(),
            kinds: kinds.to_vec(),
            reservation: None,
        };
        let keys = |w: Option<Cow<'_, [SpendWindow]>>| {
            w.map(|w| w.iter().map(|w| w.key.clone()).collect::<Vec<_>>())
        };
        let same = charge(&[TpmKind::Total, TpmKind::Total]);
        assert!(matches!(
            windows_of(&same, TpmKind::Total),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(
            keys(windows_of(&same, TpmKind::Total)).unwrap(),
            ["w0", "w1"]
        );
        assert!(windows_of(&same, TpmKind::Input).is_none());
        let mixed = charge(&[TpmKind::Output, TpmKind::Total, TpmKind::Output]);
        assert_eq!(
            keys(windows_of(&mixed, TpmKind::Output)).unwrap(),
            ["w0", "w2"]
        );
        assert_eq!(keys(windows_of(&mixed, TpmKind::Total)).unwrap(), ["w1"]);
        assert!(charge(&[]).is_empty());
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
