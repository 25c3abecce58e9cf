//! Logs (spec §1.5): list with filters, search, order and aggregates; detail; PATCH of feedback, score and
//! metadata; bulk delete by filter; and the raw stored request and response bodies.
//!
//! Every route checks that the gateway exists in the account (404 otherwise) in the same database call that does
//! the work, and every query is scoped to the account and the gateway.

mod filters;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, ErrorEnvelope, rfc3339};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::{parse_object, type_name};
use crate::db::AnyConnection;
use crate::error::{Error, FieldError};
use crate::store::gateways;
use crate::store::logs::{self as store, LogAggregates, LogBodyRow, LogChanges, LogRow};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_logs)
        .service(delete_logs)
        .service(get_log)
        .service(patch_log)
        .service(get_log_request)
        .service(get_log_response);
}

/// A log in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogSummary {
    /// A ULID.
    pub id: String,
    #[schema(format = "date-time")]
    pub created_at: String,
    pub provider: String,
    pub model: Option<String>,
    pub model_type: Option<String>,
    pub path: String,
    pub request_type: Option<String>,
    pub request_content_type: Option<String>,
    pub response_content_type: Option<String>,
    pub status_code: i32,
    pub success: bool,
    pub cached: bool,
    /// Milliseconds to the last byte.
    pub duration: i64,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    /// USD.
    pub cost: Option<f64>,
    pub custom_cost: bool,
    /// The custom metadata as a JSON object string (as Cloudflare returns it).
    pub metadata: Option<String>,
    pub event_id: String,
    pub step: i32,
    pub user_agent: Option<String>,
    pub authentication: bool,
    pub feedback: Option<f64>,
    pub score: Option<f64>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when the request used no virtual key): the id of the
    /// virtual key that authenticated the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Gatehouse extension (absent when none): the key's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Gatehouse extension (absent when none): the key's team.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// Gatehouse extension (absent when none): the dynamic route (`model: "dynamic/<name>"`) that chose the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_id: Option<String>,
    /// Gatehouse extension (absent when none): the route's version that was deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_version_id: Option<String>,
    /// Gatehouse extension (absent when none): the element ids the request walked, joined by `>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_path: Option<String>,
}

/// A log with the heads and sizes of its bodies.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogDetail {
    #[serde(flatten)]
    pub summary: LogSummary,
    pub request_head: String,
    pub request_head_complete: bool,
    pub request_size: i64,
    pub response_head: String,
    pub response_head_complete: bool,
    pub response_size: i64,
    /// Whether the full bodies were stored (payload collection on, and not over 10 MB).
    pub bodies_stored: bool,
}

/// Paging facts of the list, and with `meta_info=true` the minimum and maximum figures over every matching log.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct LogResultInfo {
    pub page: i64,
    pub per_page: i64,
    pub count: i64,
    /// Every log of the gateway without filters or search; with them, the matches counted up to 10,000 (or to the
    /// end of the page asked for, if further), so past that it is a lower bound.
    pub total_count: i64,
    pub total_pages: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_tokens_out: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_out: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_total_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_tokens: Option<i64>,
}

/// The list response.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogListEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub result: Vec<LogSummary>,
    pub result_info: LogResultInfo,
}

/// The PATCH body; every field optional, `null` clears it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPatchBody {
    /// −1..1 (1 thumbs up, −1 thumbs down).
    pub feedback: Option<f64>,
    /// 0..100.
    pub score: Option<f64>,
    /// At most 5 entries of string, number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// The raw body of `DELETE …/logs`: `{"success": true}`, no `result`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuccessOnly {
    pub success: bool,
}

impl From<LogRow> for LogSummary {
    fn from(r: LogRow) -> Self {
        Self {
            id: r.id,
            created_at: rfc3339(r.created_at),
            provider: r.provider,
            model: r.model,
            model_type: r.model_type,
            path: r.path,
            request_type: r.request_type,
            request_content_type: r.request_content_type,
            response_content_type: r.response_content_type,
            status_code: r.status_code,
            success: r.success,
            cached: r.cached,
            duration: r.duration,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            cost: r.cost,
            custom_cost: r.custom_cost,
            metadata: r.metadata,
            event_id: r.event_id,
            step: r.step,
            user_agent: r.user_agent,
            authentication: r.authenticated,
            feedback: r.feedback,
            score: r.score,
            key_id: r.key_id,
            user_id: r.user_id,
            team_id: r.team_id,
            route_id: r.route_id,
            route_version_id: r.route_version_id,
            route_path: r.route_path,
        }
    }
}

fn detail(row: LogRow, bodies: Option<LogBodyRow>) -> LogDetail {
    let (request_size, response_size, bodies_stored) =
        (row.request_size, row.response_size, row.bodies_stored);
    let b = bodies.unwrap_or(LogBodyRow {
        id: row.id.clone(),
        request_head: String::new(),
        request_head_complete: false,
        response_head: String::new(),
        response_head_complete: false,
        request_body: None,
        response_body: None,
    });
    LogDetail {
        summary: LogSummary::from(row),
        request_head: b.request_head,
        request_head_complete: b.request_head_complete,
        request_size,
        response_head: b.response_head,
        response_head_complete: b.response_head_complete,
        response_size,
        bodies_stored,
    }
}

fn gateway_not_found(id: &str) -> Error {
    Error::NotFound(format!("gateway '{id}' not found"))
}

fn log_not_found(id: &str) -> Error {
    Error::NotFound(format!("log '{id}' not found"))
}

/// Fails with 404 unless the gateway exists in the account.
fn require_gateway(c: &mut AnyConnection, account_id: &str, gateway_id: &str) -> Result<(), Error> {
    match gateways::get(c, account_id, gateway_id)? {
        Some(_) => Ok(()),
        None => Err(gateway_not_found(gateway_id)),
    }
}

/// List a gateway's logs.
///
/// Newest first by default. `search` is a case-insensitive substring of the id, provider, model or path.
/// `filters` accepts the dotted repeated form (interleaved, or grouped by field and paired by position), the
/// bracket form and a JSON array; filters AND together, a filter's values OR together (`neq`: none of them).
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-list-gateway-logs",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1 (default 1)"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..50 (default 20)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of id, provider, model or path"),
        ("order_by" = Option<String>, Query, description = "created_at (default), provider, model, model_type, success, cached"),
        ("order_by_direction" = Option<String>, Query, description = "asc or desc (default desc)"),
        ("direction" = Option<String>, Query, description = "Deprecated alias of order_by_direction"),
        ("filters" = Option<String>, Query, description = "filters.key / filters.operator / filters.value, repeated; keys also key_id, user_id, team_id, route_id (Gatehouse)"),
        ("meta_info" = Option<bool>, Query, description = "Add min/max aggregates to result_info"),
        ("key_id" = Option<String>, Query, description = "Gatehouse extension: only the logs of this virtual key"),
        ("route_id" = Option<String>, Query, description = "Gatehouse extension: only the logs of requests this dynamic route served"),
        ("user_id" = Option<String>, Query, description = "Gatehouse extension: only the logs of this user's keys"),
        ("team_id" = Option<String>, Query, description = "Gatehouse extension: only the logs of this team's keys"),
    ),
    responses(
        (status = 200, body = LogListEnvelope, description = "A page of logs; past the end, an empty page"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs")]
async fn list_logs(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 1, 50)?;
    let query = filters::read_query(&pairs)?;
    let meta_info = filters::bool_param(&pairs, "meta_info")?.unwrap_or(false);
    let (page, aggregates) = state
        .db
        .run(move |c| {
            require_gateway(c, &account_id, &gateway_id)?;
            let page = store::list(
                c,
                &account_id,
                &gateway_id,
                &query,
                paging.offset(),
                paging.per_page,
            )?;
            let aggregates = if meta_info {
                store::aggregates(c, &account_id, &gateway_id, &query)?
            } else {
                LogAggregates::default()
            };
            Ok((page, aggregates))
        })
        .await?;
    let base = envelope::ResultInfo::new(
        paging.page,
        paging.per_page,
        page.items.len(),
        page.total_count,
    );
    let a = aggregates;
    Ok(HttpResponse::Ok().json(LogListEnvelope {
        success: true,
        errors: vec![],
        messages: vec![],
        result: page.items.into_iter().map(LogSummary::from).collect(),
        result_info: LogResultInfo {
            page: base.page,
            per_page: base.per_page,
            count: base.count,
            total_count: base.total_count,
            total_pages: base.total_pages,
            min_cost: a.min_cost,
            max_cost: a.max_cost,
            min_duration: a.min_duration,
            max_duration: a.max_duration,
            min_tokens_in: a.min_tokens_in,
            max_tokens_in: a.max_tokens_in,
            min_tokens_out: a.min_tokens_out,
            max_tokens_out: a.max_tokens_out,
            min_total_tokens: a.min_total_tokens,
            max_total_tokens: a.max_total_tokens,
        },
    }))
}

/// Delete a gateway's logs matching the filters, at most `limit` (1..10000, default 10000) per call, in the
/// requested order. Returns `{"success": true}` without `result`.
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-delete-gateway-logs",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("filters" = Option<String>, Query, description = "As for the list"),
        ("order_by" = Option<String>, Query, description = "As for the list, or cost, tokens_in, tokens_out, duration, feedback"),
        ("order_by_direction" = Option<String>, Query, description = "asc or desc (default desc)"),
        ("limit" = Option<i64>, Query, description = "Most logs to delete, 1..10000 (default 10000)"),
    ),
    responses(
        (status = 200, body = SuccessOnly, description = "Deleted"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs")]
async fn delete_logs(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let pairs = query_pairs(&req)?;
    let query = filters::read_delete_query(&pairs)?;
    let limit = match query_value(&pairs, "limit") {
        None | Some("") => 10_000,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                Error::BadParameter(format!(
                    "limit must be an integer from 1 to 10000, got '{v}'"
                ))
            })?,
    };
    state
        .db
        .run(move |c| {
            require_gateway(c, &account_id, &gateway_id)?;
            store::delete(c, &account_id, &gateway_id, &query, limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(SuccessOnly { success: true }))
}

/// Fetch one log with the heads and sizes of its bodies.
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-get-gateway-log-detail",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Log id"),
    ),
    responses(
        (status = 200, body = envelope::Envelope<LogDetail>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs/{id}")]
async fn get_log(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let (row, bodies) = fetch(&state, account_id, gateway_id, id).await?;
    Ok(envelope::ok(detail(row, bodies)))
}

async fn fetch(
    state: &State,
    account_id: String,
    gateway_id: String,
    id: String,
) -> Result<(LogRow, Option<LogBodyRow>), Error> {
    state
        .db
        .run(move |c| {
            require_gateway(c, &account_id, &gateway_id)?;
            store::get(c, &account_id, &gateway_id, &id)?.ok_or_else(|| log_not_found(&id))
        })
        .await
}

/// Reads a PATCH body; every problem is reported with its field.
fn read_changes(body: &Map<String, Value>) -> Result<LogChanges, Error> {
    let mut errors = Vec::new();
    let mut number = |name: &str, min: f64, max: f64| -> Option<Option<f64>> {
        match body.get(name)? {
            Value::Null => Some(None),
            Value::Number(n) => match n.as_f64() {
                Some(x) if (min..=max).contains(&x) => Some(Some(x)),
                _ => {
                    errors.push(FieldError::new(
                        &[name],
                        format!("{name} must be from {min} to {max}"),
                    ));
                    None
                }
            },
            other => {
                errors.push(FieldError::new(
                    &[name],
                    format!("Expected number, received {}", type_name(other)),
                ));
                None
            }
        }
    };
    let feedback = number("feedback", -1.0, 1.0);
    let score = number("score", 0.0, 100.0);
    let metadata = match body.get("metadata") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Object(m)) => {
            if m.len() > gatehouse_shared::log::MAX_METADATA_ENTRIES {
                errors.push(FieldError::new(
                    &["metadata"],
                    "metadata has at most 5 entries",
                ));
            }
            for (k, v) in m {
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    errors.push(FieldError::new(
                        &["metadata", k],
                        format!(
                            "Expected string, number or boolean, received {}",
                            type_name(v)
                        ),
                    ));
                }
            }
            Some(Some(Value::Object(m.clone()).to_string()))
        }
        Some(other) => {
            errors.push(FieldError::new(
                &["metadata"],
                format!("Expected object, received {}", type_name(other)),
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    Ok(LogChanges {
        feedback,
        score,
        metadata,
    })
}

/// Set a log's feedback, score or metadata.
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-patch-gateway-log",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Log id"),
    ),
    request_body = LogPatchBody,
    responses(
        (status = 200, body = envelope::Envelope<Object>, description = "`result` is `{}`"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs/{id}")]
async fn patch_log(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let changes = read_changes(&parse_object(&body)?)?;
    state
        .db
        .run(move |c| {
            require_gateway(c, &account_id, &gateway_id)?;
            if store::update(c, &account_id, &gateway_id, &id, &changes)? {
                Ok(())
            } else {
                Err(log_not_found(&id))
            }
        })
        .await?;
    Ok(envelope::ok(serde_json::json!({})))
}

/// A stored body as the client sent or received it: JSON as-is, anything else as text.
fn raw_body(body: Option<String>, id: &str, which: &str) -> Result<HttpResponse, Error> {
    let body =
        body.ok_or_else(|| Error::NotFound(format!("log '{id}' has no stored {which} body")))?;
    let content_type = if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}

/// The stored request body of a log (not enveloped).
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-get-gateway-log-request",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Log id"),
    ),
    responses(
        (status = 200, description = "The request body as stored"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope, description = "Unknown log, or no stored body"),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs/{id}/request")]
async fn get_log_request(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let (_, bodies) = fetch(&state, account_id, gateway_id, id.clone()).await?;
    raw_body(bodies.and_then(|b| b.request_body), &id, "request")
}

/// The stored response body of a log (not enveloped).
#[utoipa::path(
    tag = "logs", operation_id = "aig-config-get-gateway-log-response",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Log id"),
    ),
    responses(
        (status = 200, description = "The response body as stored"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope, description = "Unknown log, or no stored body"),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/logs/{id}/response")]
async fn get_log_response(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let (_, bodies) = fetch(&state, account_id, gateway_id, id.clone()).await?;
    raw_body(bodies.and_then(|b| b.response_body), &id, "response")
}
