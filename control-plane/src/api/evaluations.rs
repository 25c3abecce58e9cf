//! Evaluations (spec §1.6, §3.10) and the evaluators they use (spec §1.3). A create stores the evaluation with one
//! in-progress result per evaluator and wakes the control plane's runner (`crate::evaluations`), which fills the
//! results in and sets `processed`; clients poll `GET …/evaluations/{id}`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::datasets::{Dataset, bool_param, gateway_not_found};
use super::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::{Field, FieldReader, parse_object};
use crate::error::{Error, FieldError};
use crate::evaluations::{EVALUATORS, EvaluationRunner, evaluator, status};
use crate::store::datasets as dataset_store;
use crate::store::evaluations::{
    self as store, DatasetSnapshot, EvaluationListFilter, EvaluationRow, ResultRow,
};
use crate::store::now_ms;

mod types;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(types::list_evaluation_types)
        .service(list_evaluations)
        .service(create_evaluation)
        .service(get_evaluation)
        .service(delete_evaluation);
}

/// At most this many datasets per evaluation (spec §4).
const MAX_DATASETS: usize = 5;

/// An evaluation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Evaluation {
    #[schema(format = "uuid")]
    pub id: String,
    pub account_id: String,
    pub account_tag: String,
    pub gateway_id: String,
    pub name: String,
    /// Whether the run has written the results.
    pub processed: bool,
    /// Logs any of the datasets matched when the run read them (a log counts once).
    pub total_logs: i64,
    /// The datasets as they were when the evaluation was created.
    pub datasets: Vec<Dataset>,
    /// One per evaluator, in the order of `evaluation_type_ids`.
    pub results: Vec<EvaluationResult>,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

/// One evaluator's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationResult {
    #[schema(format = "uuid")]
    pub id: String,
    pub evaluation_id: String,
    /// `cost`, `speed` or `performance`.
    pub evaluation_type_id: String,
    /// The metric as a decimal string once completed (`""` before): `cost` the average cost in USD of the logs
    /// with a known cost; `speed` the average duration in ms; `performance` the percentage (0..100) of logs with
    /// feedback whose feedback is a thumbs-up (> 0). `"0"` when no log had the field (`total_logs` 0).
    pub result: String,
    /// 0 in progress, 1 completed, 2 error.
    pub status: i32,
    /// `in progress`, `completed` (`completed: no log …` when no log had the field), or `error: <why>`.
    pub status_description: String,
    /// Logs the metric was computed over: with a known cost (`cost`), every matched log (`speed`), with feedback
    /// (`performance`).
    pub total_logs: i64,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

/// The create body (all fields required).
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationBody {
    /// 1..256 characters.
    pub name: String,
    /// 1..5 distinct ids of this gateway's datasets; a log is evaluated when any of them matches it.
    pub dataset_ids: Vec<String>,
    /// 1..3 distinct evaluator ids: `cost`, `speed`, `performance` (see `GET …/evaluation-types`).
    pub evaluation_type_ids: Vec<String>,
}

impl From<ResultRow> for EvaluationResult {
    fn from(r: ResultRow) -> Self {
        Self {
            id: r.id,
            evaluation_id: r.evaluation_id,
            evaluation_type_id: r.evaluation_type_id,
            result: r.result,
            status: r.status,
            status_description: r.status_description,
            total_logs: r.total_logs,
            created_at: rfc3339(r.created_at),
            modified_at: rfc3339(r.modified_at),
        }
    }
}

impl From<store::Evaluation> for Evaluation {
    fn from(e: store::Evaluation) -> Self {
        let row = e.row;
        // Written by the create below from rows it read; a copy that does not parse shows no datasets.
        let snapshots: Vec<DatasetSnapshot> =
            serde_json::from_str(&row.datasets).unwrap_or_default();
        Self {
            datasets: snapshots
                .into_iter()
                .map(|s| Dataset::from_snapshot(&row.account_id, &row.gateway_id, s))
                .collect(),
            results: e.results.into_iter().map(EvaluationResult::from).collect(),
            account_tag: row.account_id.clone(),
            id: row.id,
            account_id: row.account_id,
            gateway_id: row.gateway_id,
            name: row.name,
            processed: row.processed,
            total_logs: row.total_logs,
            created_at: rfc3339(row.created_at),
            modified_at: rfc3339(row.modified_at),
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("evaluation '{id}' not found"))
}

/// A required array of distinct strings with `min..=max` items; each item is checked by `check` (which returns a
/// problem). Problems are recorded on `r` with the item's path (`dataset_ids.2`).
fn string_ids(
    r: &mut FieldReader<'_>,
    name: &str,
    min: usize,
    max: usize,
    check: impl Fn(&str) -> Option<String>,
) -> Option<Vec<String>> {
    let items = match r.array(name) {
        Field::Set(items) => items,
        Field::Null => {
            r.error(name, "Expected array, received null");
            return None;
        }
        Field::Absent => {
            // `array` answers Absent for a value of another type too, having recorded that error.
            if matches!(r.raw(name), Field::Absent) {
                r.error(name, "Required: expected array of strings");
            }
            return None;
        }
    };
    if items.len() < min || items.len() > max {
        r.error(
            name,
            format!(
                "Array must contain {min} to {max} element(s), received {}",
                items.len()
            ),
        );
        return None;
    }
    let mut ids: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let problem = match item {
            Value::String(s) if ids.contains(s) => Some(format!("'{s}' is listed twice")),
            Value::String(s) => check(s),
            other => Some(format!(
                "Expected string, received {}",
                super::validation::type_name(other)
            )),
        };
        match problem {
            Some(message) => {
                r.error_at(&[name, &index], message);
                ok = false;
            }
            None => ids.push(item.as_str().unwrap_or_default().to_owned()),
        }
    }
    ok.then_some(ids)
}

/// List a gateway's evaluations (oldest first).
#[utoipa::path(
    tag = "evaluations", operation_id = "aig-config-list-evaluations",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1; a page past the end is empty"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("name" = Option<String>, Query, description = "Only the evaluations with exactly this name"),
        ("processed" = Option<bool>, Query, description = "Only processed (or unprocessed) evaluations"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the id or name"),
    ),
    responses((status = 200, body = Envelope<Vec<Evaluation>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations")]
async fn list_evaluations(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 1, 100)?;
    let filter = EvaluationListFilter {
        name: query_value(&pairs, "name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        processed: bool_param(&pairs, "processed")?,
        search: query_value(&pairs, "search").map(str::to_owned),
    };
    let (rows, total) = state
        .db
        .run(move |c| {
            if !dataset_store::gateway_exists(c, &account_id, &gateway_id)? {
                return Err(gateway_not_found(&gateway_id));
            }
            store::list(
                c,
                &account_id,
                &gateway_id,
                &filter,
                paging.offset(),
                paging.per_page,
            )
        })
        .await?;
    let info = ResultInfo::new(paging.page, paging.per_page, rows.len(), total);
    Ok(envelope::ok_page(
        rows.into_iter().map(Evaluation::from).collect(),
        info,
    ))
}

/// Create an evaluation. It answers at once, unprocessed, with each result in progress (status 0); the control
/// plane's runner then computes the results over the logs the datasets match and sets `processed`.
#[utoipa::path(
    tag = "evaluations", operation_id = "aig-config-create-evaluations",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id")),
    request_body = EvaluationBody,
    responses((status = 200, body = Envelope<Evaluation>),
              (status = 400, body = ErrorEnvelope, description = "An invalid body, an unknown dataset (`dataset_ids.N`) or evaluator (`evaluation_type_ids.N`)"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations")]
async fn create_evaluation(
    state: State,
    caller: Caller,
    runner: Option<web::Data<EvaluationRunner>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let name = r.required_string("name", 1, 256);
    let dataset_ids = string_ids(&mut r, "dataset_ids", 1, MAX_DATASETS, |_| None);
    let known = EVALUATORS
        .iter()
        .map(|e| format!("'{}'", e.id))
        .collect::<Vec<_>>()
        .join(" | ");
    let type_ids = string_ids(&mut r, "evaluation_type_ids", 1, EVALUATORS.len(), |id| {
        evaluator(id)
            .is_none()
            .then(|| format!("Unknown evaluation type '{id}'. Expected {known}"))
    });
    r.finish()?;
    let (Some(name), Some(dataset_ids), Some(type_ids)) = (name, dataset_ids, type_ids) else {
        return Err(Error::Internal(
            "a required evaluation field was not read".into(),
        ));
    };
    let now = now_ms();
    let id = uuid::Uuid::new_v4().to_string();
    let results: Vec<ResultRow> = type_ids
        .iter()
        .enumerate()
        .map(|(position, type_id)| ResultRow {
            id: uuid::Uuid::new_v4().to_string(),
            evaluation_id: id.clone(),
            evaluation_type_id: type_id.clone(),
            position: i32::try_from(position).unwrap_or(i32::MAX),
            result: String::new(),
            status: status::IN_PROGRESS,
            status_description: status::describe(status::IN_PROGRESS).to_owned(),
            total_logs: 0,
            created_at: now,
            modified_at: now,
        })
        .collect();
    let created = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                if !dataset_store::gateway_exists(c, &account_id, &gateway_id)? {
                    return Err(gateway_not_found(&gateway_id));
                }
                let found = dataset_store::get_many(c, &account_id, &gateway_id, &dataset_ids)?;
                let mut snapshots = Vec::with_capacity(dataset_ids.len());
                let mut unknown = Vec::new();
                for (i, dataset_id) in dataset_ids.iter().enumerate() {
                    match found.iter().find(|d| &d.id == dataset_id) {
                        Some(d) => snapshots.push(DatasetSnapshot {
                            id: d.id.clone(),
                            name: d.name.clone(),
                            enable: d.enable,
                            filters: serde_json::from_str(&d.filters)
                                .unwrap_or_else(|_| Value::Array(vec![])),
                            created_at: d.created_at,
                            modified_at: d.modified_at,
                        }),
                        None => unknown.push(FieldError {
                            path: vec!["dataset_ids".into(), i.to_string()],
                            message: format!(
                                "Unknown dataset '{dataset_id}' in gateway '{gateway_id}'"
                            ),
                        }),
                    }
                }
                if !unknown.is_empty() {
                    return Err(Error::Validation(unknown));
                }
                let evaluation = store::Evaluation {
                    row: EvaluationRow {
                        id,
                        account_id: account_id.clone(),
                        gateway_id: gateway_id.clone(),
                        name,
                        datasets: serde_json::to_string(&snapshots)
                            .map_err(|e| Error::Internal(format!("dataset copies: {e}")))?,
                        processed: false,
                        total_logs: 0,
                        created_at: now,
                        modified_at: now,
                    },
                    results,
                };
                if !store::insert(c, &evaluation)? {
                    return Err(gateway_not_found(&gateway_id));
                }
                Ok(evaluation)
            })
        })
        .await?;
    // After the commit, so the runner's scan sees the evaluation.
    if let Some(runner) = runner {
        runner.wake();
    }
    Ok(envelope::ok(Evaluation::from(created)))
}

/// Fetch an evaluation and its results.
#[utoipa::path(
    tag = "evaluations", operation_id = "aig-config-fetch-evaluations",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id"),
           ("id" = String, Path, description = "Evaluation id")),
    responses((status = 200, body = Envelope<Evaluation>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations/{id}")]
async fn get_evaluation(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let lookup = id.clone();
    let found = state
        .db
        .run(move |c| store::get(c, &account_id, &gateway_id, &lookup))
        .await?;
    found
        .map(|e| envelope::ok(Evaluation::from(e)))
        .ok_or_else(|| not_found(&id))
}

/// Delete an evaluation and its results; returns it.
#[utoipa::path(
    tag = "evaluations", operation_id = "aig-config-delete-evaluations",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id"),
           ("id" = String, Path, description = "Evaluation id")),
    responses((status = 200, body = Envelope<Evaluation>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/evaluations/{id}")]
async fn delete_evaluation(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let lookup = id.clone();
    let found = state
        .db
        .run(move |c| store::delete(c, &account_id, &gateway_id, &lookup))
        .await?;
    found
        .map(|e| envelope::ok(Evaluation::from(e)))
        .ok_or_else(|| not_found(&id))
}
