//! Access control (issue 14), Gatehouse's own resources under `/accounts/{account_id}/ai-gateway/`: virtual keys
//! (`keys.rs`), users (`users.rs`) and teams (`teams.rs`), each with limits and budgets that the data plane
//! enforces. Users and teams are the same kind of subject and share their handlers (`subjects.rs`). The wire shapes
//! all three share (limits, budgets) and the steps of their handlers are here; reading bodies is `body.rs`.
//!
//! Every change republishes the account's gateway documents (`ConfigPublisher::account_changed`), which carry the
//! account's working keys and every user and team (`documents::access_entries`).

mod body;
pub mod keys;
mod subjects;
pub mod teams;
pub mod users;

use actix_web::{HttpRequest, HttpResponse, web};
use gatehouse_shared::access::{Budget, BudgetPeriod, Limits, ModelLimits, TpmKind};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, ResultInfo};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::{FieldReader, parse_object};
use crate::db::AnyConnection;
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

/// The account a collection route names, once the caller may act on it with `scope`.
fn authorize_account(
    caller: &Caller,
    path: web::Path<String>,
    scope: Scope,
) -> Result<String, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, scope)?;
    Ok(account_id)
}

/// The account a list route names, and the list's query, once the caller may read the account.
fn authorize_list(
    caller: &Caller,
    path: web::Path<String>,
    req: &HttpRequest,
) -> Result<(String, ListQuery), Error> {
    let account_id = authorize_account(caller, path, Scope::AiGatewayRead)?;
    Ok((account_id, list_query(req)?))
}

/// The account and the id an item route names, once the caller may act on the account with `scope`.
fn authorize_item(
    caller: &Caller,
    path: web::Path<(String, String)>,
    scope: Scope,
) -> Result<(String, String), Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, scope)?;
    Ok((account_id, id))
}

/// Reads a create or PATCH body, an object, with `read`; every problem of its fields is reported at once.
async fn read_fields<T>(
    state: &State,
    req: &HttpRequest,
    payload: web::Payload,
    read: impl FnOnce(&mut FieldReader<'_>) -> T,
) -> Result<T, Error> {
    let body = read_body(req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let fields = read(&mut r);
    r.finish()?;
    Ok(fields)
}

/// One page of a list: `rows` of `total`, each shown as `V`.
fn page_of<R, V: Serialize + From<R>>(rows: Vec<R>, total: i64, paging: Paging) -> HttpResponse {
    let info = ResultInfo::new(paging.page, paging.per_page, rows.len(), total);
    envelope::ok_page(rows.into_iter().map(V::from).collect(), info)
}

/// A GET of one item of the account: `get` looks the id up, the row is shown as `V`, no row is `not_found`.
async fn fetch_one<R, V>(
    state: &State,
    caller: &Caller,
    path: web::Path<(String, String)>,
    get: impl FnOnce(&mut AnyConnection, &str, &str) -> Result<Option<R>, Error> + Send + 'static,
    not_found: impl FnOnce(&str) -> Error,
) -> Result<HttpResponse, Error>
where
    R: Send + 'static,
    V: Serialize + From<R>,
{
    let (account_id, id) = authorize_item(caller, path, Scope::AiGatewayRead)?;
    let lookup = id.clone();
    let row = state.db.run(move |c| get(c, &account_id, &lookup)).await?;
    row.map(|r| envelope::ok(V::from(r)))
        .ok_or_else(|| not_found(&id))
}

/// The answer to a change of the account's keys, users or teams, once the account's documents are republished.
async fn changed<T: Serialize>(
    state: &State,
    account_id: &str,
    result: T,
) -> Result<HttpResponse, Error> {
    state.publisher.account_changed(account_id).await;
    Ok(envelope::ok(result))
}

/// A stored time, or none, as RFC 3339.
fn time(ms: Option<i64>) -> Option<String> {
    ms.map(super::envelope::rfc3339)
}

/// Checks that what a body names exists in the account: each gateway id of `gateways`, the user and the team.
/// Every missing one is a 400 with its field's path.
fn check_references(
    c: &mut AnyConnection,
    account_id: &str,
    gateways: Option<&[String]>,
    user_id: Option<&str>,
    team_id: Option<&str>,
) -> Result<(), Error> {
    use crate::error::FieldError;
    use crate::store::access::subjects::{self, Subject};
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
        && subjects::get(c, Subject::User, account_id, user)?.is_none()
    {
        errors.push(FieldError::new(
            &["user_id"],
            format!("No user '{user}' in this account"),
        ));
    }
    if let Some(team) = team_id
        && subjects::get(c, Subject::Team, account_id, team)?.is_none()
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
