//! Users: subjects with limits and budgets of their own, which apply on top of the limits of each key that names
//! the user. A user may belong to a team of the account.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use gatehouse_shared::access::Limits;
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{read_limits, read_metadata, read_name, read_subject_id};
use super::{SubjectLimits, check_references, list_query, named_subject_gone, subject_in_use};
use crate::api::State;
use crate::api::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use crate::api::request::{Caller, read_body};
use crate::api::validation::{Field, FieldReader, parse_object};
use crate::error::Error;
use crate::store::access::Metadata;
use crate::store::access::keys::{self as key_store, Subject};
use crate::store::access::users::{self as store, UserRecord};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_users)
        .service(create_user)
        .service(get_user)
        .service(update_user)
        .service(delete_user);
}

/// A user (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// A team of the account; its limits apply to the user's keys that name no team of their own.
    pub team_id: Option<String>,
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
#[schema(example = json!({"name": "alice@example.com", "metadata": {"department": "research"},
    "limits": {"budget": {"amount_usd": 50, "period": "month"}}}))]
pub struct UserBody {
    /// 1..256 characters, not only whitespace.
    pub name: String,
    /// An existing team of the account.
    pub team_id: Option<String>,
    /// At most 32 entries; keys 1..64 characters; string (≤ 1024 characters), number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub limits: Option<SubjectLimits>,
}

impl From<UserRecord> for User {
    fn from(r: UserRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            team_id: r.team_id,
            metadata: r.metadata,
            limits: SubjectLimits::from(r.limits),
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
        }
    }
}

struct UserFields {
    name: Field<String>,
    team_id: Field<String>,
    metadata: Field<Metadata>,
    limits: Field<Limits>,
}

impl UserFields {
    fn read(r: &mut FieldReader<'_>, create: bool) -> Self {
        Self {
            name: read_name(r, create),
            team_id: read_subject_id(r, "team_id"),
            metadata: read_metadata(r),
            limits: read_limits(r),
        }
    }

    /// Applies the fields; returns the team to check when the body named one.
    fn apply(self, r: &mut UserRecord) -> Option<String> {
        if let Field::Set(name) = self.name {
            r.name = name;
        }
        let named_team = match &self.team_id {
            Field::Set(team) => Some(team.clone()),
            _ => None,
        };
        self.team_id.apply_to(&mut r.team_id);
        self.metadata
            .apply_with_default(&mut r.metadata, Metadata::new());
        self.limits
            .apply_with_default(&mut r.limits, Limits::default());
        named_team
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("user '{id}' not found"))
}

/// List the account's users, oldest first (Gatehouse extension).
#[utoipa::path(
    tag = "users", operation_id = "gatehouse-list-users",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the name"),
    ),
    responses((status = 200, body = Envelope<Vec<User>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/users")]
async fn list_users(
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
        rows.into_iter().map(User::from).collect(),
        info,
    ))
}

/// Create a user (Gatehouse extension).
#[utoipa::path(
    tag = "users", operation_id = "gatehouse-create-user",
    params(("account_id" = String, Path, description = "Account id")),
    request_body = UserBody,
    responses((status = 200, body = Envelope<User>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/users")]
async fn create_user(
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
    let fields = UserFields::read(&mut r, true);
    r.finish()?;
    let now = now_ms();
    let mut record = UserRecord {
        account_id: account_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        name: String::new(),
        team_id: None,
        metadata: Metadata::new(),
        limits: Limits::default(),
        created_at_ms: now,
        modified_at_ms: now,
    };
    let team = fields.apply(&mut record);
    let stored = record.clone();
    state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                check_references(c, &stored.account_id, None, None, team.as_deref())?;
                store::insert(c, &stored)
            })
            .map_err(named_subject_gone)
        })
        .await?;
    state.publisher.account_changed(&account_id).await;
    Ok(envelope::ok(User::from(record)))
}

/// Fetch a user (Gatehouse extension).
#[utoipa::path(
    tag = "users", operation_id = "gatehouse-get-user",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "User id")),
    responses((status = 200, body = Envelope<User>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/users/{id}")]
async fn get_user(
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
    row.map(|r| envelope::ok(User::from(r)))
        .ok_or_else(|| not_found(&id))
}

/// Change some fields of a user; omitted fields keep their values (Gatehouse extension).
#[utoipa::path(
    tag = "users", operation_id = "gatehouse-update-user",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "User id")),
    request_body = UserBody,
    responses((status = 200, body = Envelope<User>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/users/{id}")]
async fn update_user(
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
    let fields = UserFields::read(&mut r, false);
    r.finish()?;
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                let team = fields.apply(&mut record);
                check_references(c, &account_id, None, None, team.as_deref())?;
                record.modified_at_ms = now_ms().max(record.modified_at_ms);
                if !store::update(c, &record)? {
                    return Err(not_found(&id));
                }
                Ok(record)
            })
            .map_err(named_subject_gone)
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(User::from(record)))
}

/// Delete a user no unrevoked key names (400 naming the keys otherwise); revoked keys that named it keep their
/// other fields and lose their `user_id`. Returns the user (Gatehouse extension).
#[utoipa::path(
    tag = "users", operation_id = "gatehouse-delete-user",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "User id")),
    responses((status = 200, body = Envelope<User>), (status = 400, body = ErrorEnvelope, description = "Keys still name the user"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/users/{id}")]
async fn delete_user(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let account = account_id.clone();
    let in_use = subject_in_use("user", id.clone());
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                let keys = key_store::unrevoked_ids_of(c, &account_id, Subject::User, &id)?;
                if !keys.is_empty() {
                    return Err(Error::BadParameter(format!(
                        "user '{id}' is the user of keys {}: revoke them or change their user_id first",
                        keys.join(", ")
                    )));
                }
                key_store::detach_revoked(c, &account_id, Subject::User, &id)?;
                store::delete(c, &account_id, &id)?;
                Ok(record)
            })
            .map_err(in_use)
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(User::from(record)))
}
