//! Operator routes outside the Cloudflare namespace, behind the `admin` scope: API tokens, data-plane nodes and
//! the control plane's log ingest.

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
        .service(revoke_token)
        .service(list_nodes)
        .service(log_ingest);
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

/// Revoke an API token. It stops working on the control plane at once, and on data-plane nodes once they apply
/// the next deployment document (see `GET /admin/nodes`).
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
    state.publisher.deployment_changed().await;
    Ok(envelope::ok(TokenInfo::from(record)))
}

/// A data-plane node as it last reported itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeInfo {
    pub node_id: String,
    /// When the node process started, milliseconds since the epoch.
    pub started_at: i64,
    /// When the node last reported, milliseconds since the epoch. Nodes report every few seconds and vanish from
    /// this list when they stop.
    pub last_seen: i64,
    /// Whether the node finished its first full load (what its `/readyz` answers).
    pub ready: bool,
    /// Whether the node serves exactly the versions the config bus holds now.
    pub converged: bool,
    /// Version of the deployment document (token keys and revocations) the node serves.
    pub deployment_version: Option<i64>,
    /// `{account_id}/{gateway_id}` → the version of that gateway's document the node serves.
    #[schema(value_type = Object, example = json!({"acme/prod": 42}))]
    pub gateways: std::collections::BTreeMap<String, i64>,
    /// The most recent failure to load or apply a document (kept after it is fixed).
    pub last_error: Option<NodeErrorInfo>,
    /// Documents the node refuses right now; it keeps serving their previous version.
    pub failing: Vec<NodeErrorInfo>,
    /// The node's log records since it started: handed over, dropped (queue full or log stream unreachable) and
    /// shipped to the log stream (split mode).
    pub logs: LogCountsInfo,
}

/// Counters of a node's log records.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogCountsInfo {
    pub submitted: u64,
    pub dropped: u64,
    pub shipped: u64,
}

/// A document a node could not apply, or a failure to reach the config bus.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeErrorInfo {
    /// `{account_id}/{gateway_id}`, `deployment`, or `bus`.
    pub target: String,
    pub version: Option<i64>,
    pub message: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

impl From<gatehouse_shared::node::NodeError> for NodeErrorInfo {
    fn from(e: gatehouse_shared::node::NodeError) -> Self {
        Self {
            target: e.target,
            version: e.version,
            message: e.message,
            at: e.at_ms,
        }
    }
}

/// List data-plane nodes with the config versions they serve.
///
/// A node is `converged` when it serves every document at the version the config bus holds; a config change is
/// live everywhere once every node is converged again.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, body = Envelope<Vec<NodeInfo>>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope, description = "The config bus is unreachable")),
    security(("bearer" = []))
)]
#[get("/nodes")]
async fn list_nodes(state: State, caller: Caller) -> Result<HttpResponse, Error> {
    caller.authorize_operator()?;
    let bus = state.publisher.bus();
    let (statuses, index) = futures_util::try_join!(bus.node_statuses(), bus.index())?;
    let nodes: Vec<NodeInfo> = statuses
        .into_iter()
        .map(|status| NodeInfo {
            converged: crate::propagation::is_converged(&status, &index),
            node_id: status.node_id,
            started_at: status.started_at_ms,
            last_seen: status.reported_at_ms,
            ready: status.ready,
            deployment_version: status.deployment_version,
            gateways: status.gateways,
            last_error: status.last_error.map(NodeErrorInfo::from),
            failing: status
                .failing
                .into_iter()
                .map(NodeErrorInfo::from)
                .collect(),
            logs: LogCountsInfo {
                submitted: status.logs.submitted,
                dropped: status.logs.dropped,
                shipped: status.logs.shipped,
            },
        })
        .collect();
    Ok(envelope::ok(nodes))
}

/// What this control plane's log ingest did since it started: records stored into the database and records lost
/// on the way. Each control plane answers for itself (in split mode each reads its share of the log stream); the
/// nodes' own counters are in `GET /admin/nodes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogIngestInfo {
    /// Records in batches stored (a redelivered record counts again; its row is not duplicated).
    pub stored: u64,
    /// Records given up after every attempt to store their batch failed (embedded mode; in split mode they stay
    /// pending in the log stream for a later attempt instead).
    pub dropped: u64,
    /// Records the database refused on their own, left out of a batch that was otherwise stored.
    pub rejected: u64,
    /// Log stream entries that could not be decoded (skipped).
    pub unreadable: u64,
    /// Log stream entries trimmed (the stream keeps about 100,000 entries) before any control plane stored them.
    pub trimmed: u64,
    /// Log stream entries acknowledged after their records were stored.
    pub acknowledged: u64,
}

/// This control plane's log ingest counters.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, body = Envelope<LogIngestInfo>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/log-ingest")]
async fn log_ingest(state: State, caller: Caller) -> Result<HttpResponse, Error> {
    caller.authorize_operator()?;
    let c = &state.log_ingest;
    let read = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    Ok(envelope::ok(LogIngestInfo {
        stored: read(&c.stored),
        dropped: read(&c.dropped),
        rejected: read(&c.rejected),
        unreadable: read(&c.unreadable),
        trimmed: read(&c.trimmed),
        acknowledged: read(&c.acknowledged),
    }))
}
