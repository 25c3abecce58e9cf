//! Virtual keys: create (the secret shown once), list, get, PATCH, rotate, and DELETE, which revokes.
//!
//! A key's secret is generated here (`NewSecret::generate`), returned in the create or rotate response and never
//! again: only its SHA-256 is stored and published. A revoked key keeps its row, so that its logs still name a key
//! the API can show (`revoked: true`); it leaves the documents at once and the default listing.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use gatehouse_shared::access::{Limits, NewSecret};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::body::{
    read_expires_at, read_gateways, read_limits, read_metadata, read_models, read_name,
    read_subject_id,
};
use super::{
    SubjectLimits, authorize_account, authorize_item, authorize_list, changed, check_references,
    fetch_one, named_subject_gone, page_of, read_fields, time,
};
use crate::api::State;
use crate::api::envelope::{Envelope, ErrorEnvelope, rfc3339};
use crate::api::request::Caller;
use crate::api::validation::{Field, FieldReader};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::store::access::Metadata;
use crate::store::access::keys::{self as store, KeyFilter, KeyRecord};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_keys)
        .service(create_key)
        .service(get_key)
        .service(update_key)
        .service(revoke_key)
        .service(rotate_key);
}

/// A virtual key as the API shows it (Gatehouse extension). Never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct VirtualKey {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// Gateway ids of the account the key may use; empty: every gateway of the account.
    pub gateways: Vec<String>,
    /// Model patterns (`provider/model`, `*` globs such as `anthropic/*`) the key may use; empty: every model.
    pub models: Vec<String>,
    /// A user of the account whose limits apply too.
    pub user_id: Option<String>,
    /// A team of the account whose limits apply too (when null, the user's team, if it has one).
    pub team_id: Option<String>,
    /// String, number and boolean values.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// When the key stops working; null: never.
    #[schema(format = "date-time")]
    pub expires_at: Option<String>,
    pub limits: SubjectLimits,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
    /// The newest request of the key's stored logs (updated as logs are ingested).
    #[schema(format = "date-time")]
    pub last_used_at: Option<String>,
    /// `ghk_` and the first and last four characters of the secret.
    pub preview: String,
    /// Revoked keys no longer work; they are listed only with `include_revoked=true`.
    pub revoked: bool,
}

/// The create and rotate responses: the key and its secret, shown only this once.
#[derive(Serialize, ToSchema)]
pub struct VirtualKeyWithSecret {
    #[serde(flatten)]
    pub virtual_key: VirtualKey,
    /// The secret (`ghk_…`), to send as `Authorization: Bearer` or `cf-aig-authorization: Bearer`. Shown only in
    /// this response: Gatehouse keeps only its hash.
    pub key: String,
}

/// The create body; PATCH takes the same fields, all optional (null resets a field; `limits` is replaced whole).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "billing-service", "gateways": ["prod"], "models": ["openai/gpt-4o*", "anthropic/*"],
    "metadata": {"owner": "billing"}, "expires_at": "2027-01-31T00:00:00Z",
    "limits": {"rpm": 600, "tpm": 200000, "budget": {"amount_usd": 100, "period": "month"}}}))]
pub struct VirtualKeyBody {
    /// 1..256 characters, not only whitespace.
    pub name: String,
    /// At most 256 distinct gateway ids of the account; empty or absent: every gateway.
    pub gateways: Option<Vec<String>>,
    /// At most 256 distinct model patterns (1..256 characters, no whitespace); empty or absent: every model.
    pub models: Option<Vec<String>>,
    /// An existing user of the account.
    pub user_id: Option<String>,
    /// An existing team of the account.
    pub team_id: Option<String>,
    /// At most 32 entries; keys 1..64 characters; string (≤ 1024 characters), number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// RFC 3339, in the future.
    #[schema(format = "date-time")]
    pub expires_at: Option<String>,
    pub limits: Option<SubjectLimits>,
}

impl From<KeyRecord> for VirtualKey {
    fn from(r: KeyRecord) -> Self {
        Self {
            revoked: r.revoked(),
            id: r.id,
            name: r.name,
            gateways: r.gateways,
            models: r.models,
            user_id: r.user_id,
            team_id: r.team_id,
            metadata: r.metadata,
            expires_at: time(r.expires_at_ms),
            limits: SubjectLimits::from(r.limits),
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
            last_used_at: time(r.last_used_at_ms),
            preview: r.preview,
        }
    }
}

impl VirtualKeyWithSecret {
    /// The key just created or rotated, with the secret it was given.
    fn new(record: KeyRecord, secret: NewSecret) -> Self {
        Self {
            virtual_key: VirtualKey::from(record),
            key: secret.secret,
        }
    }
}

/// The body's fields, each as sent (absent, null or a checked value).
struct KeyFields {
    name: Field<String>,
    gateways: Field<Vec<String>>,
    models: Field<Vec<String>>,
    user_id: Field<String>,
    team_id: Field<String>,
    metadata: Field<Metadata>,
    expires_at: Field<i64>,
    limits: Field<Limits>,
}

/// Which references a body sets, and so which the handler must check.
#[derive(Clone, Copy)]
struct Named {
    gateways: bool,
    user: bool,
    team: bool,
}

impl KeyFields {
    fn read(r: &mut FieldReader<'_>, create: bool, now_ms: i64) -> Self {
        Self {
            name: read_name(r, create),
            gateways: read_gateways(r),
            models: read_models(r),
            user_id: read_subject_id(r, "user_id"),
            team_id: read_subject_id(r, "team_id"),
            metadata: read_metadata(r),
            expires_at: read_expires_at(r, now_ms),
            limits: read_limits(r),
        }
    }

    fn named(&self) -> Named {
        Named {
            gateways: matches!(self.gateways, Field::Set(_)),
            user: matches!(self.user_id, Field::Set(_)),
            team: matches!(self.team_id, Field::Set(_)),
        }
    }

    fn apply(self, r: &mut KeyRecord) {
        if let Field::Set(name) = self.name {
            r.name = name;
        }
        self.gateways.apply_with_default(&mut r.gateways, vec![]);
        self.models.apply_with_default(&mut r.models, vec![]);
        self.user_id.apply_to(&mut r.user_id);
        self.team_id.apply_to(&mut r.team_id);
        self.metadata
            .apply_with_default(&mut r.metadata, Metadata::new());
        self.expires_at.apply_to(&mut r.expires_at_ms);
        self.limits
            .apply_with_default(&mut r.limits, Limits::default());
    }
}

/// Checks the references `named` says the body set, with their values in `r`.
fn check_named(c: &mut AnyConnection, r: &KeyRecord, named: Named) -> Result<(), Error> {
    check_references(
        c,
        &r.account_id,
        named.gateways.then_some(&r.gateways[..]),
        r.user_id.as_deref().filter(|_| named.user),
        r.team_id.as_deref().filter(|_| named.team),
    )
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("key '{id}' not found"))
}

fn revoked(id: &str) -> Error {
    Error::BadParameter(format!(
        "key '{id}' is revoked: it can be read, but no longer changed or rotated"
    ))
}

fn parse_bool_param(pairs: &[(String, String)], name: &str) -> Result<bool, Error> {
    match crate::api::request::query_value(pairs, name) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(Error::BadParameter(format!(
            "{name} must be true or false, got '{v}'"
        ))),
    }
}

/// List the account's virtual keys, oldest first (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-list-keys",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("search" = Option<String>, Query, description = "Case-insensitive substring of the name"),
        ("include_revoked" = Option<bool>, Query, description = "Also list revoked keys (default false)"),
    ),
    responses((status = 200, body = Envelope<Vec<VirtualKey>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/keys")]
async fn list_keys(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let (account_id, query) = authorize_list(&caller, path, &req)?;
    let paging = query.paging;
    let filter = KeyFilter {
        include_revoked: parse_bool_param(&query.pairs, "include_revoked")?,
        search: query.search,
    };
    let (rows, total) = state
        .db
        .run(move |c| store::list(c, &account_id, &filter, paging.offset(), paging.per_page))
        .await?;
    Ok(page_of::<_, VirtualKey>(rows, total, paging))
}

/// Create a virtual key; the response carries its secret, once (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-create-key",
    params(("account_id" = String, Path, description = "Account id")),
    request_body = VirtualKeyBody,
    responses((status = 200, body = Envelope<VirtualKeyWithSecret>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/keys")]
async fn create_key(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let account_id = authorize_account(&caller, path, Scope::AiGatewayEdit)?;
    let (fields, now) = read_fields(&state, &req, payload, |r| {
        let now = now_ms();
        (KeyFields::read(r, true, now), now)
    })
    .await?;
    let secret = NewSecret::generate();
    let mut record = KeyRecord {
        account_id: account_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        name: String::new(),
        secret_hash: secret.hash.clone(),
        preview: secret.preview.clone(),
        gateways: vec![],
        models: vec![],
        user_id: None,
        team_id: None,
        metadata: Metadata::new(),
        limits: Limits::default(),
        expires_at_ms: None,
        created_at_ms: now,
        modified_at_ms: now,
        last_used_at_ms: None,
        revoked_at_ms: None,
    };
    let named = fields.named();
    fields.apply(&mut record);
    let stored = record.clone();
    state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                check_named(c, &stored, named)?;
                store::insert(c, &stored)
            })
            .map_err(named_subject_gone)
        })
        .await?;
    changed(
        &state,
        &account_id,
        VirtualKeyWithSecret::new(record, secret),
    )
    .await
}

/// Fetch a virtual key, revoked or not; never its secret (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-get-key",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Envelope<VirtualKey>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/keys/{id}")]
async fn get_key(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    fetch_one::<_, VirtualKey>(&state, &caller, path, store::get, not_found).await
}

/// Change some fields of an unrevoked key; omitted fields keep their values (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-update-key",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Key id")),
    request_body = VirtualKeyBody,
    responses((status = 200, body = Envelope<VirtualKey>), (status = 400, body = ErrorEnvelope, description = "Bad body, or the key is revoked"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/keys/{id}")]
async fn update_key(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = authorize_item(&caller, path, Scope::AiGatewayEdit)?;
    let fields = read_fields(&state, &req, payload, |r| {
        KeyFields::read(r, false, now_ms())
    })
    .await?;
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                if record.revoked() {
                    return Err(revoked(&id));
                }
                let named = fields.named();
                fields.apply(&mut record);
                check_named(c, &record, named)?;
                record.modified_at_ms = now_ms().max(record.modified_at_ms);
                if !store::update_settings(c, &record)? {
                    // Revoked by a concurrent call since the read (keys are never deleted).
                    return Err(revoked(&id));
                }
                Ok(record)
            })
            .map_err(named_subject_gone)
        })
        .await?;
    changed(&state, &account, VirtualKey::from(record)).await
}

/// Give an unrevoked key a new secret; the old one stops working. The response carries the new secret, once
/// (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-rotate-key",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Envelope<VirtualKeyWithSecret>), (status = 400, body = ErrorEnvelope, description = "The key is revoked"),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/keys/{id}/rotate")]
async fn rotate_key(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = authorize_item(&caller, path, Scope::AiGatewayEdit)?;
    let secret = NewSecret::generate();
    let (hash, preview) = (secret.hash.clone(), secret.preview.clone());
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                let now = now_ms().max(record.modified_at_ms);
                if record.revoked() || !store::rotate(c, &account_id, &id, &hash, &preview, now)? {
                    return Err(revoked(&id));
                }
                store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))
            })
        })
        .await?;
    changed(&state, &account, VirtualKeyWithSecret::new(record, secret)).await
}

/// Revoke a key: it stops working on every node with the next document, and stays readable with
/// `revoked: true`. Revoking a revoked key changes nothing. Returns the key (Gatehouse extension).
#[utoipa::path(
    tag = "virtual keys", operation_id = "gatehouse-revoke-key",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Envelope<VirtualKey>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/keys/{id}")]
async fn revoke_key(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = authorize_item(&caller, path, Scope::AiGatewayEdit)?;
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let record = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                if record.revoked() {
                    return Ok(record);
                }
                store::revoke(c, &account_id, &id, now_ms().max(record.modified_at_ms))?;
                store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))
            })
        })
        .await?;
    changed(&state, &account, VirtualKey::from(record)).await
}
