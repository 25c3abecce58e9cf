//! Teams: subjects with limits and budgets of their own, which apply on top of the limits of each key of the team
//! (a key names its team, or its user belongs to one).

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use gatehouse_shared::access::Limits;
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{read_limits, read_metadata, read_name};
use super::{SubjectLimits, list_query, subject_in_use};
use crate::api::State;
use crate::api::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use crate::api::request::{Caller, read_body};
use crate::api::validation::{Field, FieldReader, parse_object};
use crate::error::Error;
use crate::store::access::keys::{self as key_store, Subject};
use crate::store::access::teams::{self as store, TeamRecord};
use crate::store::access::{Metadata, users as user_store};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_teams)
        .service(create_team)
        .service(get_team)
        .service(update_team)
        .service(delete_team);
}

/// A team (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct Team {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// String, number and boolean values.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    pub limits: SubjectLimits,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

/// The create body; PATCH takes the same fields, all optional (null resets a field; `limits` is replaced whole).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "research", "limits": {"tpm": 500000, "budget": {"amount_usd": 1000, "period": "month"}}}))]
pub struct TeamBody {
    /// 1..256 characters, not only whitespace.
    pub name: String,
    /// At most 32 entries; keys 1..64 characters; string (≤ 1024 characters), number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub limits: Option<SubjectLimits>,
}

impl From<TeamRecord> for Team {
    fn from(r: TeamRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            metadata: r.metadata,
            limits: SubjectLimits::from(r.limits),
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
        }
    }
}

struct TeamFields {
    name: Field<String>,
    metadata: Field<Metadata>,
    limits: Field<Limits>,
}

impl TeamFields {
    fn read(r: &mut FieldReader<'_>, create: bool) -> Self {
        Self {
            name: read_name(r, create),
            metadata: read_metadata(r),
            limits: read_limits(r),
        }
    }

    fn apply(self, r: &mut TeamRecord) {
        if let Field::Set(name) = self.name {
            r.name = name;
        }
        self.metadata
            .apply_with_default(&mut r.metadata, Metadata::new());
        self.limits
            .apply_with_default(&mut r.limits, Limits::default());
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("team '{id}' not found"))
}

/// List the account's teams, oldest first (Gatehouse extension).
#[utoipa::path(
    tag = "teams", operation_id = "gatehouse-list-teams",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the name"),
    ),
    responses((status = 200, body = Envelope<Vec<Team>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/teams")]
async fn list_teams(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let super::ListQuery { paging, search, .. } = list_query(&req)?;
    let (rows, total) = state
        .db
        .run(move |c| {
            store::list(
                c,
                &account_id,
                search.as_deref(),
                paging.offset(),
                paging.per_page,
            )
        })
        .await?;
    let info = ResultInfo::new(paging.page, paging.per_page, rows.len(), total);
    Ok(envelope::ok_page(
        rows.into_iter().map(Team::from).collect(),
        info,
    ))
}

/// Create a team (Gatehouse extension).
#[utoipa::path(
    tag = "teams", operation_id = "gatehouse-create-team",
    params(("account_id" = String, Path, description = "Account id")),
    request_body = TeamBody,
    responses((status = 200, body = Envelope<Team>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/teams")]
async fn create_team(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let fields = TeamFields::read(&mut r, true);
    r.finish()?;
    let now = now_ms();
    let mut record = TeamRecord {
        account_id: account_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        name: String::new(),
        metadata: Metadata::new(),
        limits: Limits::default(),
        created_at_ms: now,
        modified_at_ms: now,
    };
    fields.apply(&mut record);
    let stored = record.clone();
    state
        .db
        .run(move |c| c.write_transaction(|c| store::insert(c, &stored)))
        .await?;
    state.publisher.account_changed(&account_id).await;
    Ok(envelope::ok(Team::from(record)))
}

/// Fetch a team (Gatehouse extension).
#[utoipa::path(
    tag = "teams", operation_id = "gatehouse-get-team",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Team id")),
    responses((status = 200, body = Envelope<Team>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/teams/{id}")]
async fn get_team(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let lookup = id.clone();
    let row = state
        .db
        .run(move |c| store::get(c, &account_id, &lookup))
        .await?;
    row.map(|r| envelope::ok(Team::from(r)))
        .ok_or_else(|| not_found(&id))
}

/// Change some fields of a team; omitted fields keep their values (Gatehouse extension).
#[utoipa::path(
    tag = "teams", operation_id = "gatehouse-update-team",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Team id")),
    request_body = TeamBody,
    responses((status = 200, body = Envelope<Team>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/teams/{id}")]
async fn update_team(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let fields = TeamFields::read(&mut r, false);
    r.finish()?;
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                fields.apply(&mut record);
                record.modified_at_ms = now_ms().max(record.modified_at_ms);
                if !store::update(c, &record)? {
                    return Err(not_found(&id));
                }
                Ok(record)
            })
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(Team::from(record)))
}

/// Delete a team that no unrevoked key and no user names (400 naming them otherwise); revoked keys that named it
/// keep their other fields and lose their `team_id`. Returns the team (Gatehouse extension).
#[utoipa::path(
    tag = "teams", operation_id = "gatehouse-delete-team",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Team id")),
    responses((status = 200, body = Envelope<Team>), (status = 400, body = ErrorEnvelope, description = "Keys or users still name the team"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/teams/{id}")]
async fn delete_team(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let account = account_id.clone();
    let in_use = subject_in_use("team", id.clone());
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                let keys = key_store::unrevoked_ids_of(c, &account_id, Subject::Team, &id)?;
                let users = user_store::ids_in_team(c, &account_id, &id)?;
                let mut holders = Vec::new();
                if !keys.is_empty() {
                    holders.push(format!("the team of keys {}", keys.join(", ")));
                }
                if !users.is_empty() {
                    holders.push(format!("the team of users {}", users.join(", ")));
                }
                if !holders.is_empty() {
                    return Err(Error::BadParameter(format!(
                        "team '{id}' is {}: revoke or change them first",
                        holders.join(" and ")
                    )));
                }
                key_store::detach_revoked(c, &account_id, Subject::Team, &id)?;
                store::delete(c, &account_id, &id)?;
                Ok(record)
            })
            .map_err(in_use)
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(Team::from(record)))
}
