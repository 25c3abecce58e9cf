//! The limit-store counter names of a key, user or team (issue 14), built once per compiled entry instead of per
//! request: `vk:{account}:{kind}:{id}:rpm`, `…:tpm:{in|out|total}`, per model pattern `…:model:{pattern}:rpm` and
//! `…:model:{pattern}:tpm:{kind}`, and the budgets' `…:budget:{period}:` prefixes, whose period start is appended
//! (and the result kept until the period ends). These names are Redis keys that other nodes share: they must stay
//! exactly what `proxy/phase/access.rs` formatted per request before (the tests below pin them).
//!
//! The names are built on first use rather than in `CompiledAccess::compile`, which is not told the account (the
//! gateway document's `key` is): every request that reaches an entry passes its gateway's account, which is the
//! same for every entry of one compiled document. A different account (never expected) gets names of its own.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use gatehouse_shared::access::{Budget, BudgetPeriod, Limits, TpmKind};

/// How a tokens-per-minute counter's name says which tokens it counts.
pub fn tpm_kind_name(kind: TpmKind) -> &'static str {
    match kind {
        TpmKind::Input => "in",
        TpmKind::Output => "out",
        TpmKind::Total => "total",
    }
}

/// A compiled entry's counter names, built once for the account of its document.
#[derive(Debug, Default)]
pub struct SubjectNames(OnceLock<CounterNames>);

impl SubjectNames {
    /// The names of the subject `kind` (`key`, `user`, `team`) `id` with `limits`, in `account`.
    pub fn get<'a>(&'a self, account: &str, kind: &str, id: &str, limits: &Limits) -> Names<'a> {
        let names = self
            .0
            .get_or_init(|| CounterNames::new(account, kind, id, limits));
        if *names.account == *account {
            Names::Cached(names)
        } else {
            Names::Fresh(Box::new(CounterNames::new(account, kind, id, limits)))
        }
    }
}

/// Counter names, borrowed from the compiled entry (always, in practice) or built for this request.
#[derive(Debug)]
pub enum Names<'a> {
    Cached(&'a CounterNames),
    Fresh(Box<CounterNames>),
}

impl std::ops::Deref for Names<'_> {
    type Target = CounterNames;

    fn deref(&self) -> &CounterNames {
        match self {
            Names::Cached(names) => names,
            Names::Fresh(names) => names,
        }
    }
}

/// The counters of one subject's limits.
#[derive(Debug)]
pub struct CounterNames {
    account: Box<str>,
    /// `vk:{account}:{kind}:{id}:rpm`.
    pub rpm: String,
    /// `vk:{account}:{kind}:{id}:tpm:{tpm kind}`.
    pub tpm: String,
    /// `vk:{account}:{kind}:{id}:budget…`, when the subject has a budget.
    pub budget: Option<BudgetName>,
    /// One per `limits.models` entry, in the same order.
    pub models: Vec<ModelNames>,
}

/// The counters of one per-model limit.
#[derive(Debug)]
pub struct ModelNames {
    /// `…:model:{pattern}:rpm`.
    pub rpm: String,
    /// `…:model:{pattern}:tpm:{tpm kind}`.
    pub tpm: String,
    /// `…:model:{pattern}:budget…`, when the limit has a budget.
    pub budget: Option<BudgetName>,
}

impl CounterNames {
    fn new(account: &str, kind: &str, id: &str, limits: &Limits) -> Self {
        let base = format!("vk:{account}:{kind}:{id}");
        let tpm_kind = tpm_kind_name(limits.tpm_kind);
        CounterNames {
            account: account.into(),
            rpm: format!("{base}:rpm"),
            tpm: format!("{base}:tpm:{tpm_kind}"),
            budget: limits
                .budget
                .as_ref()
                .map(|b| BudgetName::new(&format!("{base}:budget"), b)),
            models: limits
                .models
                .iter()
                .map(|m| {
                    let base = format!("{base}:model:{}", m.model);
                    ModelNames {
                        rpm: format!("{base}:rpm"),
                        tpm: format!("{base}:tpm:{tpm_kind}"),
                        budget: m
                            .budget
                            .as_ref()
                            .map(|b| BudgetName::new(&format!("{base}:budget"), b)),
                    }
                })
                .collect(),
        }
    }
}

/// A budget's counter: `{base}:{period}:{period start ms}`, so each calendar period counts from zero.
#[derive(Debug)]
pub struct BudgetName {
    period: BudgetPeriod,
    /// `{base}:{period}:`.
    prefix: String,
    /// The current period's counter, once a request asked for it.
    current: ArcSwapOption<PeriodCounter>,
}

#[derive(Debug)]
struct PeriodCounter {
    start: i64,
    end: i64,
    key: String,
}

impl BudgetName {
    fn new(base: &str, budget: &Budget) -> Self {
        Self {
            period: budget.period,
            prefix: format!("{base}:{}:", budget.period.as_str()),
            current: ArcSwapOption::empty(),
        }
    }

    /// The counter of the period holding `now_ms` and when that period ends (epoch milliseconds). Periods do not
    /// overlap, so a kept period that holds `now_ms` is the one `window_at(now_ms)` would compute.
    pub fn at(&self, now_ms: i64) -> (String, i64) {
        if let Some(kept) = self.current.load().as_deref()
            && (kept.start..kept.end).contains(&now_ms)
        {
            return (kept.key.clone(), kept.end);
        }
        let (start, end) = self.period.window_at(now_ms);
        let mut key = String::with_capacity(self.prefix.len() + 20);
        key.push_str(&self.prefix);
        let _ = write!(key, "{start}");
        self.current.store(Some(Arc::new(PeriodCounter {
            start,
            end,
            key: key.clone(),
        })));
        (key, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_shared::access::ModelLimits;

    fn budget(period: BudgetPeriod) -> Option<Budget> {
        Some(Budget {
            amount_usd: 10.0,
            period,
        })
    }

    #[test]
    fn names_are_what_admission_formatted_per_request() {
        let limits = Limits {
            rpm: Some(1),
            tpm: Some(2),
            tpm_kind: TpmKind::Output,
            budget: budget(BudgetPeriod::Month),
            models: vec![
                ModelLimits {
                    model: "openai/gpt-4o*".into(),
                    rpm: Some(3),
                    tpm: None,
                    budget: budget(BudgetPeriod::Day),
                },
                ModelLimits {
                    model: "anthropic/*".into(),
                    rpm: None,
                    tpm: Some(4),
                    budget: None,
                },
            ],
        };
        let slot = SubjectNames::default();
        let names = slot.get("acc", "key", "k-1", &limits);
        assert!(matches!(names, Names::Cached(_)));
        let base = "vk:acc:key:k-1";
        assert_eq!(names.rpm, format!("{base}:rpm"));
        assert_eq!(names.tpm, format!("{base}:tpm:out"));
        assert_eq!(names.models.len(), 2);
        assert_eq!(
            names.models[0].rpm,
            format!("{base}:model:openai/gpt-4o*:rpm")
        );
        assert_eq!(
            names.models[1].tpm,
            format!("{base}:model:anthropic/*:tpm:out")
        );
        assert!(names.models[1].budget.is_none());

        let now_ms = 1_767_225_600_000 + 5 * 86_400_000; // 2026-01-06T00:00:00Z
        for (name, base, period) in [
            (
                names.budget.as_ref().unwrap(),
                format!("{base}:budget"),
                BudgetPeriod::Month,
            ),
            (
                names.models[0].budget.as_ref().unwrap(),
                format!("{base}:model:openai/gpt-4o*:budget"),
                BudgetPeriod::Day,
            ),
        ] {
            for at in [
                now_ms,
                now_ms + 1,
                now_ms + 40 * 86_400_000,
                now_ms - 86_400_000,
            ] {
                let (start, end) = period.window_at(at);
                let expected = format!("{base}:{}:{start}", period.as_str());
                assert_eq!(name.at(at), (expected.clone(), end), "{at}");
                assert_eq!(name.at(at), (expected, end), "kept: {at}");
            }
        }

        let team = SubjectNames::default();
        let limits = Limits {
            tpm_kind: TpmKind::Total,
            ..Limits::default()
        };
        assert_eq!(
            team.get("acc", "team", "t", &limits).tpm,
            "vk:acc:team:t:tpm:total"
        );
        let other = team.get("other", "team", "t", &limits);
        assert!(
            matches!(other, Names::Fresh(_)),
            "another account's names are not the kept ones"
        );
        assert_eq!(other.rpm, "vk:other:team:t:rpm");
        assert_eq!(tpm_kind_name(TpmKind::Input), "in");
    }
}
