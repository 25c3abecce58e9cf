//! Operator routes outside the Cloudflare namespace, behind the `admin` scope: API tokens.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope};
use super::request::{Caller, read_body};
use super::validation::{Field, FieldReader, parse_object};
use crate::error::Error;
use crate::keyring::TokenRequest;
use crate::store::now_ms;
use crate::store::tokens::{self as token_store, TokenRecord};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_tokens)
        .service(create_token)
        .service(revoke_token);
}

/// An issued token's record; the token text itself is shown once, at creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub description: String,
    /// Account ids, or `*` for all.
    pub accounts: Vec<String>,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// Milliseconds since the epoch; null for a token that does not expire.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<TokenRecord> for TokenInfo {
    fn from(r: TokenRecord) -> Self {
        Self {
            id: r.id,
            description: r.description,
            accounts: r.accounts,
            scopes: r.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: r.created_at_ms,
            expires_at: r.expires_at_ms,
            revoked_at: r.revoked_at_ms,
        }
    }
}

/// A newly minted token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The bearer token. It is not stored and cannot be shown again.
    pub token: String,
    #[serde(flatten)]
    pub info: TokenInfo,
}

/// The body of `POST /admin/tokens`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateTokenBody {
    /// Account ids, or `["*"]` for all accounts.
    pub accounts: Vec<String>,
    /// Any of `ai-gateway:read`, `ai-gateway:edit`, `ai-gateway:run`, `admin`.
    pub scopes: Vec<String>,
    /// Lifetime in seconds; omitted or null for a token that does not expire.
    pub ttl_seconds: Option<i64>,
    pub description: Option<String>,
}

/// List API tokens.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, body = Envelope<Vec<TokenInfo>>), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/tokens")]
async fn list_tokens(state: State, caller: Caller) -> Result<HttpResponse, Error> {
    caller.authorize_operator()?;
    let tokens = state.db.run(token_store::list_tokens).await?;
    Ok(envelope::ok(
        tokens.into_iter().map(TokenInfo::from).collect::<Vec<_>>(),
    ))
}

/// Mint an API token.
#[utoipa::path(
    tag = "admin",
    request_body = CreateTokenBody,
    responses((status = 200, body = Envelope<CreatedToken>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/tokens")]
async fn create_token(
    state: State,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    caller.authorize_operator()?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let accounts = string_list(&mut r, "accounts");
    let scope_names = string_list(&mut r, "scopes");
    let scopes: Vec<Scope> = scope_names.iter().filter_map(|n| Scope::parse(n)).collect();
    if scopes.len() != scope_names.len() {
        r.error(
            "scopes",
            "Expected scopes from: ai-gateway:read, ai-gateway:edit, ai-gateway:run, admin",
        );
    }
    let ttl = match r.int("ttl_seconds", 1, 10 * 365 * 24 * 3600) {
        Field::Set(s) => Some(std::time::Duration::from_secs(s.unsigned_abs())),
        _ => None,
    };
    let description = match r.string("description", 0, 256) {
        Field::Set(s) => s,
        _ => String::new(),
    };
    r.finish()?;
    let request = TokenRequest {
        accounts,
        scopes,
        ttl,
        description,
    };
    let (db, keyring) = (state.db.clone(), state.keyring.clone());
    let minted = tokio::task::spawn_blocking(move || keyring.mint(&db, request))
        .await
        .map_err(|e| Error::Internal(format!("token task failed: {e}")))??;
    Ok(envelope::ok(CreatedToken {
        token: minted.token,
        info: minted.record.into(),
    }))
}

fn string_list(r: &mut FieldReader<'_>, name: &str) -> Vec<String> {
    match r.array(name) {
        Field::Set(items) if !items.is_empty() && items.iter().all(|v| v.is_string()) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Field::Set(_) | Field::Null => {
            r.error(name, "Expected a non-empty array of strings");
            Vec::new()
        }
        Field::Absent => {
            r.error(name, "Required: expected a non-empty array of strings");
            Vec::new()
        }
    }
}

/// Revoke an API token. It stops working on the control plane at once.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = Envelope<TokenInfo>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/tokens/{id}")]
async fn revoke_token(
    state: State,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    caller.authorize_operator()?;
    let id = path.into_inner();
    let record = state
        .db
        .run(move |c| {
            if !token_store::revoke_token(c, &id, now_ms())? {
                return Err(Error::NotFound(format!("token '{id}' not found")));
            }
            token_store::get_token(c, &id)?
                .ok_or_else(|| Error::NotFound(format!("token '{id}' not found")))
        })
        .await?;
    Ok(envelope::ok(TokenInfo::from(record)))
}
