//! Datasets (spec §1.4, §3.11): saved filters over a gateway's logs, the input of evaluations. At most ten per
//! gateway; the filter rules (keys, operators, which operator suits which key) are `store::datasets::type_filters`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::{Field, FieldReader, parse_object};
use crate::error::{Error, FieldError};
use crate::store::datasets::{
    self as store, DatasetListFilter, DatasetRow, InsertRefusal, MAX_DATASETS_PER_GATEWAY,
};
use crate::store::evaluations::DatasetSnapshot;
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_datasets)
        .service(create_dataset)
        .service(get_dataset)
        .service(update_dataset)
        .service(delete_dataset);
}

/// A dataset as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Dataset {
    #[schema(format = "uuid")]
    pub id: String,
    pub account_id: String,
    /// The account id again, as Cloudflare's older schema names it.
    pub account_tag: String,
    pub gateway_id: String,
    pub name: String,
    pub enable: bool,
    /// The filters as sent: ANDed; the values of one filter ORed.
    #[schema(value_type = Vec<DatasetFilterBody>)]
    pub filters: Value,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

/// One filter of a dataset.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetFilterBody {
    /// `created_at`, `request_content_type`, `response_content_type`, `success`, `cached`, `provider`, `model`,
    /// `cost`, `tokens`, `tokens_in`, `tokens_out`, `duration` or `feedback`.
    pub key: String,
    /// `eq` (any key), `contains` (text keys: content types, provider, model), `lt`/`gt` (numeric keys and
    /// `created_at`).
    pub operator: String,
    /// 1..50 values, any of which matches: strings for text keys, numbers (or numeric strings) for numeric keys,
    /// booleans for `success`/`cached`, RFC 3339 date-times or epoch milliseconds for `created_at`.
    #[schema(value_type = Vec<Object>)]
    pub value: Vec<Value>,
}

/// The body of POST and PUT (all fields required).
#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetBody {
    /// 1..256 characters.
    pub name: String,
    pub enable: bool,
    /// Up to 20 filters; an empty array matches every log of the gateway.
    pub filters: Vec<DatasetFilterBody>,
}

fn stored_filters(text: &str) -> Value {
    // Validated on the way in and checked as JSON by the column's constraint.
    serde_json::from_str(text).unwrap_or_else(|_| Value::Array(vec![]))
}

impl From<DatasetRow> for Dataset {
    fn from(r: DatasetRow) -> Self {
        Self {
            account_tag: r.account_id.clone(),
            id: r.id,
            account_id: r.account_id,
            gateway_id: r.gateway_id,
            name: r.name,
            enable: r.enable,
            filters: stored_filters(&r.filters),
            created_at: rfc3339(r.created_at),
            modified_at: rfc3339(r.modified_at),
        }
    }
}

impl Dataset {
    /// A dataset as an evaluation copied it.
    pub fn from_snapshot(account_id: &str, gateway_id: &str, s: DatasetSnapshot) -> Self {
        Self {
            id: s.id,
            account_id: account_id.to_owned(),
            account_tag: account_id.to_owned(),
            gateway_id: gateway_id.to_owned(),
            name: s.name,
            enable: s.enable,
            filters: s.filters,
            created_at: rfc3339(s.created_at),
            modified_at: rfc3339(s.modified_at),
        }
    }
}

/// The fields of a POST or PUT body.
struct Fields {
    name: String,
    enable: bool,
    /// The filters as sent, once they passed.
    filters: String,
}

fn read_fields(body: &[u8]) -> Result<Fields, Error> {
    let object = parse_object(body)?;
    let mut r = FieldReader::new(&object);
    let name = r.required_string("name", 1, 256);
    let enable = r.required_bool("enable");
    let filters = match r.array("filters") {
        Field::Set(items) => match store::type_filters(items) {
            Ok(_) => Some(items),
            Err(problems) => {
                r.extend(
                    problems
                        .into_iter()
                        .map(|p| {
                            let mut path = vec!["filters".to_owned()];
                            path.extend(p.path);
                            FieldError {
                                path,
                                message: p.message,
                            }
                        })
                        .collect(),
                );
                None
            }
        },
        Field::Null => {
            r.error("filters", "Expected array, received null");
            None
        }
        Field::Absent => {
            if !object.contains_key("filters") {
                r.error("filters", "Required: expected array");
            }
            None
        }
    };
    r.finish()?;
    let (Some(name), Some(enable), Some(filters)) = (name, enable, filters) else {
        return Err(Error::Internal(
            "a required dataset field was not read".into(),
        ));
    };
    // Only the three fields of each filter are kept: what the API shows back is what it reads.
    let filters: Vec<Value> = filters
        .iter()
        .map(|f| {
            serde_json::json!({"key": f["key"], "operator": f["operator"], "value": f["value"]})
        })
        .collect();
    Ok(Fields {
        name,
        enable,
        filters: Value::Array(filters).to_string(),
    })
}

pub(super) fn gateway_not_found(id: &str) -> Error {
    Error::NotFound(format!("gateway '{id}' not found"))
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("dataset '{id}' not found"))
}

/// `true`/`false` for a boolean query parameter.
pub(super) fn bool_param(pairs: &[(String, String)], name: &str) -> Result<Option<bool>, Error> {
    match query_value(pairs, name) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(Error::BadParameter(format!(
            "{name} must be true or false, got '{v}'"
        ))),
    }
}

/// List a gateway's datasets (oldest first).
#[utoipa::path(
    tag = "datasets", operation_id = "aig-config-list-dataset",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1; a page past the end is empty"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("name" = Option<String>, Query, description = "Only the datasets with exactly this name"),
        ("enable" = Option<bool>, Query, description = "Only enabled (or disabled) datasets"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the id, name or filters"),
    ),
    responses((status = 200, body = Envelope<Vec<Dataset>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets")]
async fn list_datasets(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 1, 100)?;
    let filter = DatasetListFilter {
        name: query_value(&pairs, "name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        enable: bool_param(&pairs, "enable")?,
        search: query_value(&pairs, "search").map(str::to_owned),
    };
    let (rows, total) = state
        .db
        .run(move |c| {
            if !store::gateway_exists(c, &account_id, &gateway_id)? {
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
        rows.into_iter().map(Dataset::from).collect(),
        info,
    ))
}

/// Create a dataset (at most 10 per gateway).
#[utoipa::path(
    tag = "datasets", operation_id = "aig-config-create-dataset",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id")),
    request_body = DatasetBody,
    responses((status = 200, body = Envelope<Dataset>),
              (status = 400, body = ErrorEnvelope, description = "An invalid body (each problem with its `path`, e.g. `filters.0.operator`), or the gateway has 10 datasets already"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets")]
async fn create_dataset(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let fields = read_fields(&body)?;
    let now = now_ms();
    let row = DatasetRow {
        id: uuid::Uuid::new_v4().to_string(),
        account_id,
        gateway_id,
        name: fields.name,
        enable: fields.enable,
        filters: fields.filters,
        created_at: now,
        modified_at: now,
    };
    let stored = row.clone();
    match state.db.run(move |c| store::insert(c, &stored)).await? {
        Ok(()) => Ok(envelope::ok(Dataset::from(row))),
        Err(InsertRefusal::NoGateway) => Err(gateway_not_found(&row.gateway_id)),
        Err(InsertRefusal::Full) => Err(Error::BadParameter(format!(
            "gateway '{}' already has {MAX_DATASETS_PER_GATEWAY} datasets, the limit per gateway; delete one first",
            row.gateway_id
        ))),
    }
}

/// Fetch a dataset.
#[utoipa::path(
    tag = "datasets", operation_id = "aig-config-fetch-dataset",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id"),
           ("id" = String, Path, description = "Dataset id")),
    responses((status = 200, body = Envelope<Dataset>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets/{id}")]
async fn get_dataset(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let lookup = id.clone();
    let row = state
        .db
        .run(move |c| store::get(c, &account_id, &gateway_id, &lookup))
        .await?;
    row.map(|r| envelope::ok(Dataset::from(r)))
        .ok_or_else(|| not_found(&id))
}

/// Replace a dataset's name, `enable` and filters (all required).
#[utoipa::path(
    tag = "datasets", operation_id = "aig-config-update-dataset",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id"),
           ("id" = String, Path, description = "Dataset id")),
    request_body = DatasetBody,
    responses((status = 200, body = Envelope<Dataset>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[put("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets/{id}")]
async fn update_dataset(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let fields = read_fields(&body)?;
    let row = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut row =
                    store::get(c, &account_id, &gateway_id, &id)?.ok_or_else(|| not_found(&id))?;
                row.name = fields.name;
                row.enable = fields.enable;
                row.filters = fields.filters;
                row.modified_at = now_ms().max(row.modified_at);
                if !store::update(c, &row)? {
                    return Err(not_found(&id));
                }
                Ok(row)
            })
        })
        .await?;
    Ok(envelope::ok(Dataset::from(row)))
}

/// Delete a dataset; returns it. Evaluations made from it keep their copy.
#[utoipa::path(
    tag = "datasets", operation_id = "aig-config-delete-dataset",
    params(("account_id" = String, Path, description = "Account id"),
           ("gateway_id" = String, Path, description = "Gateway id"),
           ("id" = String, Path, description = "Dataset id")),
    responses((status = 200, body = Envelope<Dataset>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/datasets/{id}")]
async fn delete_dataset(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let row = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let row =
                    store::get(c, &account_id, &gateway_id, &id)?.ok_or_else(|| not_found(&id))?;
                store::delete(c, &account_id, &gateway_id, &id)?;
                Ok(row)
            })
        })
        .await?;
    Ok(envelope::ok(Dataset::from(row)))
}
