//! Access control (issue 14), Gatehouse's own resources under `/accounts/{account_id}/ai-gateway/`: virtual keys
//! (`keys.rs`), users (`users.rs`) and teams (`teams.rs`), each with limits and budgets that the data plane
//! enforces. Their shared wire shapes (limits, budgets) are here; reading bodies is `body.rs`.
//!
//! Every change republishes the account's gateway documents (`ConfigPublisher::account_changed`), which carry the
//! account's working keys and every user and team (`documents::access_entries`).

mod body;
pub mod keys;
pub mod teams;
pub mod users;

use gatehouse_shared::access::{Budget, BudgetPeriod, Limits, ModelLimits, TpmKind};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::request::{Paging, query_pairs, query_value};
use crate::error::Error;

pub fn routes(cfg: &mut ServiceConfig) {
    keys::routes(cfg);
    users::routes(cfg);
    teams::routes(cfg);
}

/// The limits of a key, user or team. A field left out (or null) does not limit; in a PATCH, `limits` replaces
/// the stored limits as a whole.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"rpm": 60, "tpm": 100000, "tpm_kind": "total",
    "budget": {"amount_usd": 25.0, "period": "month"},
    "models": [{"model": "anthropic/*", "rpm": 10, "tpm": null, "budget": {"amount_usd": 5.0, "period": "day"}}]}))]
pub struct SubjectLimits {
    /// Requests per minute across all models, ≥ 1.
    pub rpm: Option<u64>,
    /// Tokens per minute across all models, ≥ 1, counted as `tpm_kind` says.
    pub tpm: Option<u64>,
    /// Which tokens `tpm` (and each model limit's `tpm`) counts (default `total`).
    #[schema(required = false)]
    pub tpm_kind: TpmKindName,
    pub budget: Option<BudgetBody>,
    /// Limits on the models a pattern selects, each counted apart (default none; at most 64).
    #[schema(required = false)]
    pub models: Vec<ModelLimit>,
}

/// Which tokens a TPM limit counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TpmKindName {
    Input,
    Output,
    Total,
}

/// At most `amount_usd` of cost per calendar period, in UTC: a day from 00:00, a week from Monday 00:00, a month
/// from the 1st at 00:00.
#[derive(Debug, Serialize, ToSchema)]
pub struct BudgetBody {
    /// USD, > 0 (at most 1,000,000,000).
    pub amount_usd: f64,
    pub period: BudgetPeriodName,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriodName {
    Day,
    Week,
    Month,
}

/// Limits on the models one pattern selects; at least one of `rpm`, `tpm` and `budget`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelLimit {
    /// `provider/model`, `*` matching any run of characters (`anthropic/*`); unique in the list.
    pub model: String,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget: Option<BudgetBody>,
}

impl From<Budget> for BudgetBody {
    fn from(b: Budget) -> Self {
        Self {
            amount_usd: b.amount_usd,
            period: match b.period {
                BudgetPeriod::Day => BudgetPeriodName::Day,
                BudgetPeriod::Week => BudgetPeriodName::Week,
                BudgetPeriod::Month => BudgetPeriodName::Month,
            },
        }
    }
}

impl From<ModelLimits> for ModelLimit {
    fn from(m: ModelLimits) -> Self {
        Self {
            model: m.model,
            rpm: m.rpm,
            tpm: m.tpm,
            budget: m.budget.map(BudgetBody::from),
        }
    }
}

impl From<Limits> for SubjectLimits {
    fn from(l: Limits) -> Self {
        Self {
            rpm: l.rpm,
            tpm: l.tpm,
            tpm_kind: match l.tpm_kind {
                TpmKind::Input => TpmKindName::Input,
                TpmKind::Output => TpmKindName::Output,
                TpmKind::Total => TpmKindName::Total,
            },
            budget: l.budget.map(BudgetBody::from),
            models: l.models.into_iter().map(ModelLimit::from).collect(),
        }
    }
}

/// The query of a list: `page`, `per_page` (1..100), `search`, and every pair for the resource's own parameters.
struct ListQuery {
    pairs: Vec<(String, String)>,
    paging: Paging,
    search: Option<String>,
}

fn list_query(req: &actix_web::HttpRequest) -> Result<ListQuery, Error> {
    let pairs = query_pairs(req)?;
    let paging = Paging::from_query(&pairs, 1, 100)?;
    let search = query_value(&pairs, "search")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(ListQuery {
        pairs,
        paging,
        search,
    })
}

/// A stored time, or none, as RFC 3339.
fn time(ms: Option<i64>) -> Option<String> {
    ms.map(super::envelope::rfc3339)
}

/// Checks that what a body names exists in the account: each gateway id of `gateways`, the user and the team.
/// Every missing one is a 400 with its field's path.
fn check_references(
    c: &mut crate::db::AnyConnection,
    account_id: &str,
    gateways: Option<&[String]>,
    user_id: Option<&str>,
    team_id: Option<&str>,
) -> Result<(), Error> {
    use crate::error::FieldError;
    use crate::store::access::{teams, users};
    let mut errors = Vec::new();
    if let Some(gateways) = gateways.filter(|g| !g.is_empty()) {
        let known: std::collections::HashSet<String> =
            crate::store::gateways::ids_of_account(c, account_id)?
                .into_iter()
                .collect();
        for (i, gateway) in gateways.iter().enumerate() {
            if !known.contains(gateway) {
                errors.push(FieldError::new(
                    &["gateways", &i.to_string()],
                    format!("No gateway '{gateway}' in this account"),
                ));
            }
        }
    }
    if let Some(user) = user_id
        && users::get(c, account_id, user)?.is_none()
    {
        errors.push(FieldError::new(
            &["user_id"],
            format!("No user '{user}' in this account"),
        ));
    }
    if let Some(team) = team_id
        && teams::get(c, account_id, team)?.is_none()
    {
        errors.push(FieldError::new(
            &["team_id"],
            format!("No team '{team}' in this account"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// A write the schema's foreign keys refused after [`check_references`] passed: the user or team it names was
/// deleted by a concurrent call in between.
fn named_subject_gone(e: Error) -> Error {
    if crate::store::access::is_foreign_key_violation(&e) {
        Error::BadParameter(
            "a user or team this change names was deleted meanwhile; check user_id and team_id"
                .into(),
        )
    } else {
        e
    }
}

/// A delete the schema's foreign keys refused after the handler found nothing referring to the subject: a key or
/// user naming it was created by a concurrent call in between.
fn subject_in_use(what: &str, id: String) -> impl FnOnce(Error) -> Error + use<> {
    let message =
        format!("{what} '{id}' was named by a key or user created meanwhile; retry the delete");
    move |e| {
        if crate::store::access::is_foreign_key_violation(&e) {
            Error::BadParameter(message)
        } else {
            e
        }
    }
}
