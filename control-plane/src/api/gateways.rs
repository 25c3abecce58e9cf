//! Gateways (spec §1.2): list, create, get, replace, delete, and the data-plane URL of a provider.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use gatehouse_shared::gateway::{
    CatalogModel, CatalogModelLocation, CatalogModelType, CorsSettings, DpopMode, GatewaySettings,
    IdentityProvider, JwtAlgorithm,
};
use gatehouse_shared::providers::is_routable_slug;
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use super::gateway_body::otel::seal_authorizations;
use super::gateway_body::{BodyKind, GatewayChanges};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::parse_object;
use crate::error::Error;
use crate::store::gateways::{self as store, GatewayRecord};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_gateways)
        .service(create_gateway)
        .service(get_gateway)
        .service(update_gateway)
        .service(delete_gateway)
        .service(get_gateway_url);
}

/// A gateway as the API returns it.
///
/// Fields described as a "Gatehouse extension" are not in Cloudflare's schema: they appear only when set, so
/// Cloudflare's SDKs and Terraform provider see the gateway they expect.
#[derive(Debug, Serialize, ToSchema)]
pub struct Gateway {
    pub id: String,
    pub account_id: String,
    /// The account id again: Cloudflare's older schema names it the account tag.
    pub account_tag: String,
    #[schema(format = "uuid")]
    pub internal_id: String,
    /// True for the `default` gateway the data plane creates on first use.
    pub is_default: bool,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
    pub cache_invalidate_on_update: bool,
    pub cache_ttl: Option<i64>,
    pub collect_logs: bool,
    pub rate_limiting_interval: Option<i64>,
    pub rate_limiting_limit: Option<i64>,
    #[schema(value_type = Option<String>, example = "fixed")]
    pub rate_limiting_technique: Option<Value>,
    pub authentication: bool,
    pub log_management: Option<i64>,
    #[schema(value_type = Option<String>, example = "STOP_INSERTING")]
    pub log_management_strategy: Option<Value>,
    pub logpush: bool,
    pub logpush_public_key: Option<String>,
    pub retry_max_attempts: Option<i64>,
    pub retry_delay: Option<i64>,
    #[schema(value_type = Option<String>, example = "exponential")]
    pub retry_backoff: Option<Value>,
    pub zdr: bool,
    pub byok_only: bool,
    pub log_classification: bool,
    pub workers_ai_billing_mode: String,
    pub store_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub dlp: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub guardrails: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub otel: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub spend_limits: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub stripe: Option<Value>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): the gateway's model catalog for the
    /// OpenAI-compatible endpoint (`/compat`), plain names clients send as `model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<GatewayModel>>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): serve only `regional` catalog models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regional_only: Option<bool>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): host names whose requests reach this
    /// gateway at `/v1/…`; each belongs to one gateway in the whole deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostnames: Option<Vec<String>>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): browser origins allowed to call the
    /// gateway's inference endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<GatewayCors>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): tokens per minute (input plus output)
    /// across every caller and key of the gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<u64>,
    /// Gatehouse extension, not in Cloudflare's schema (absent when unset): identity providers whose JWTs
    /// authenticate callers, with the user and team limits of the users and teams their claims name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_providers: Option<Vec<GatewayIdentityProvider>>,
}

/// An identity provider whose JWTs authenticate the gateway's callers (Gatehouse extension). A token whose `iss`
/// is `issuer` is verified with the provider's published keys (`jwks_url`, fetched by each node in the background
/// and refreshed when a token names an unknown `kid`), its `aud`, `exp` and `nbf`; `user_claim` and `team_claim`
/// name the user and team (by id, or by the name of exactly one of the account's users or teams) whose limits and
/// budgets apply. DPoP-bound tokens (RFC 9449) come as `Authorization: DPoP <token>` with a `DPoP` proof.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"issuer": "https://idp.example.com/realms/acme", "audience": ["gatehouse"],
    "jwks_url": "https://idp.example.com/realms/acme/protocol/openid-connect/certs",
    "algorithms": ["RS256", "ES256"], "user_claim": "email", "team_claim": "groups", "dpop": "optional",
    "leeway_seconds": 60}))]
pub struct GatewayIdentityProvider {
    /// The tokens' exact `iss`: 1..512 characters without whitespace, unique among the gateway's providers, not
    /// `gatehouse` (Gatehouse's own tokens).
    pub issuer: String,
    /// Accepted `aud` values (1..16); a token must carry one of them. A body may send one as a plain string.
    pub audience: Vec<String>,
    /// Where the provider publishes its keys: `https://…`, or `http://` to a loopback address; 1..2048 characters.
    pub jwks_url: String,
    /// Signature algorithms accepted (asymmetric only); default `["RS256", "ES256"]`.
    pub algorithms: Vec<GatewayJwtAlgorithm>,
    /// The claim naming the user; default `sub`.
    pub user_claim: String,
    /// The claim naming the team (a string, or a list whose first entry that names a team counts); without it,
    /// the user's own team applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team_claim: Option<String>,
    /// `off` (bearer tokens only), `optional` (default: DPoP-bound tokens must come with a proof, others as
    /// bearer) or `required` (DPoP-bound tokens with a proof only).
    pub dpop: GatewayDpopMode,
    /// Clock skew allowed on `exp`, `nbf` and a proof's `iat`, 0..300 seconds; default 60.
    pub leeway_seconds: u64,
}

/// A JWT signature algorithm an identity provider may use.
#[derive(Debug, Serialize, ToSchema)]
pub enum GatewayJwtAlgorithm {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "RS384")]
    Rs384,
    #[serde(rename = "RS512")]
    Rs512,
    #[serde(rename = "PS256")]
    Ps256,
    #[serde(rename = "ES256")]
    Es256,
    #[serde(rename = "ES384")]
    Es384,
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// Whether an identity provider's tokens must be DPoP-bound (RFC 9449).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayDpopMode {
    Off,
    Optional,
    Required,
}

impl From<IdentityProvider> for GatewayIdentityProvider {
    fn from(p: IdentityProvider) -> Self {
        Self {
            issuer: p.issuer,
            audience: p.audience,
            jwks_url: p.jwks_url,
            algorithms: p
                .algorithms
                .into_iter()
                .map(|a| match a {
                    JwtAlgorithm::Rs256 => GatewayJwtAlgorithm::Rs256,
                    JwtAlgorithm::Rs384 => GatewayJwtAlgorithm::Rs384,
                    JwtAlgorithm::Rs512 => GatewayJwtAlgorithm::Rs512,
                    JwtAlgorithm::Ps256 => GatewayJwtAlgorithm::Ps256,
                    JwtAlgorithm::Es256 => GatewayJwtAlgorithm::Es256,
                    JwtAlgorithm::Es384 => GatewayJwtAlgorithm::Es384,
                    JwtAlgorithm::EdDsa => GatewayJwtAlgorithm::EdDsa,
                })
                .collect(),
            user_claim: p.user_claim,
            team_claim: p.team_claim,
            dpop: match p.dpop {
                DpopMode::Off => GatewayDpopMode::Off,
                DpopMode::Optional => GatewayDpopMode::Optional,
                DpopMode::Required => GatewayDpopMode::Required,
            },
            leeway_seconds: p.leeway_seconds,
        }
    }
}

/// One model of a gateway's catalog (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name":"gpt-5","target":"openai/gpt-5","type":"chat","location":"global"}))]
pub struct GatewayModel {
    /// What clients send as `model`: 1..128 characters, no whitespace, no `/`; unique in the catalog.
    pub name: String,
    /// `{provider}/{model}` it stands for, with a provider slug `/compat` routes (`custom-{slug}` included).
    pub target: String,
    #[serde(rename = "type")]
    pub model_type: GatewayModelType,
    pub location: GatewayModelLocation,
    /// The name served by several targets, balanced (issue 15): a dynamic route `model` element's properties
    /// (`targets` [{provider, model, weight, priority}], `balance` weighted | least_latency | priority,
    /// `latency_tolerance`, `sla_tpot_ms`, `sticky`, `circuit_breaker`, `retry_on`, `fallback_on`, `health_check`,
    /// `retries`, `timeout`); `target` must be one of `targets`. Absent: `target` alone serves the name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub routing: Option<serde_json::Value>,
}

/// Which endpoints serve a catalog model: chat (`chat/completions`, `responses`) or `embeddings`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayModelType {
    Chat,
    Embedding,
}

/// Where the provider serves a catalog model; a `regional_only` gateway serves only `regional` ones.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayModelLocation {
    Regional,
    Global,
}

/// Cross-origin access to the gateway's inference endpoints (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayCors {
    /// At most 64: `http(s)://host[:port]` without a path, `http(s)://*.example.com[:port]` (one leading wildcard
    /// label over a name of two labels or more), or `*`. Stored lower-cased, without a default port.
    pub allowed_origins: Vec<String>,
}

impl From<CatalogModel> for GatewayModel {
    fn from(m: CatalogModel) -> Self {
        Self {
            name: m.name,
            target: m.target,
            model_type: match m.model_type {
                CatalogModelType::Chat => GatewayModelType::Chat,
                CatalogModelType::Embedding => GatewayModelType::Embedding,
            },
            location: match m.location {
                CatalogModelLocation::Regional => GatewayModelLocation::Regional,
                CatalogModelLocation::Global => GatewayModelLocation::Global,
            },
            routing: m.routing,
        }
    }
}

impl From<CorsSettings> for GatewayCors {
    fn from(c: CorsSettings) -> Self {
        Self {
            allowed_origins: c.allowed_origins,
        }
    }
}

/// The create body (PUT takes the same fields; `id` there is optional and must equal the path).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id":"my-gateway","cache_invalidate_on_update":true,"cache_ttl":0,"collect_logs":true,"rate_limiting_interval":0,"rate_limiting_limit":0}))]
pub struct GatewayBody {
    /// 1..64 characters of `^[a-z0-9_]+(?:-[a-z0-9_]+)*$`.
    pub id: String,
    pub cache_invalidate_on_update: bool,
    /// Seconds (0 or null: caching off).
    pub cache_ttl: Option<i64>,
    pub collect_logs: bool,
    /// Seconds (0 or null: no rate limit).
    pub rate_limiting_interval: Option<i64>,
    pub rate_limiting_limit: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub rate_limiting_technique: Option<String>,
    pub authentication: Option<bool>,
    /// 10,000..10,000,000.
    pub log_management: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub log_management_strategy: Option<String>,
    pub logpush: Option<bool>,
    /// 16..1024 characters.
    pub logpush_public_key: Option<String>,
    /// 1..5 (total attempts).
    pub retry_max_attempts: Option<i64>,
    /// 0..5000 ms.
    pub retry_delay: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub retry_backoff: Option<String>,
    pub zdr: Option<bool>,
    pub byok_only: Option<bool>,
    pub log_classification: Option<bool>,
    pub workers_ai_billing_mode: Option<String>,
    pub store_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub dlp: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub guardrails: Option<Value>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub otel: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub spend_limits: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub stripe: Option<Value>,
    /// Gatehouse extension, not in Cloudflare's schema (its SDKs neither send nor expect it): at most 1000 catalog
    /// models.
    pub models: Option<Vec<GatewayModel>>,
    /// Gatehouse extension, not in Cloudflare's schema: serve only `regional` catalog models.
    pub regional_only: Option<bool>,
    /// Gatehouse extension, not in Cloudflare's schema: at most 32 DNS host names (at least two labels, no port,
    /// no wildcard), stored lower-cased; a name another gateway of any account claims is refused.
    pub hostnames: Option<Vec<String>>,
    /// Gatehouse extension, not in Cloudflare's schema: allowed browser origins.
    pub cors: Option<GatewayCors>,
    /// Gatehouse extension, not in Cloudflare's schema: tokens per minute (input plus output) across every caller
    /// and key of the gateway, 1..1,000,000,000,000; null: no limit.
    pub tpm_limit: Option<u64>,
    /// Gatehouse extension, not in Cloudflare's schema: at most 8 identity providers whose JWTs authenticate
    /// callers; null: none.
    pub identity_providers: Option<Vec<GatewayIdentityProvider>>,
}

/// An enum setting in its wire form.
fn wire<T: Serialize>(v: Option<T>) -> Option<Value> {
    v.map(|x| serde_json::to_value(x).unwrap_or(Value::Null))
}

impl From<GatewayRecord> for Gateway {
    fn from(r: GatewayRecord) -> Self {
        let s: GatewaySettings = r.settings;
        Self {
            account_tag: r.account_id.clone(),
            id: r.id,
            account_id: r.account_id,
            internal_id: r.internal_id,
            is_default: r.is_default,
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
            cache_invalidate_on_update: s.cache_invalidate_on_update,
            cache_ttl: s.cache_ttl,
            collect_logs: s.collect_logs,
            rate_limiting_interval: s.rate_limiting_interval,
            rate_limiting_limit: s.rate_limiting_limit,
            rate_limiting_technique: wire(s.rate_limiting_technique),
            authentication: s.authentication,
            log_management: s.log_management,
            log_management_strategy: wire(s.log_management_strategy),
            logpush: s.logpush,
            logpush_public_key: s.logpush_public_key,
            retry_max_attempts: s.retry_max_attempts,
            retry_delay: s.retry_delay,
            retry_backoff: wire(s.retry_backoff),
            zdr: s.zdr,
            byok_only: s.byok_only,
            log_classification: s.log_classification,
            workers_ai_billing_mode: s
                .workers_ai_billing_mode
                .unwrap_or_else(|| "postpaid".to_owned()),
            store_id: s.store_id,
            dlp: s.dlp,
            guardrails: s.guardrails,
            otel: super::gateway_body::otel::masked(s.otel),
            spend_limits: s.spend_limits,
            stripe: s.stripe,
            models: s
                .models
                .map(|models| models.into_iter().map(GatewayModel::from).collect()),
            regional_only: s.regional_only,
            hostnames: s.hostnames,
            cors: s.cors.map(GatewayCors::from),
            tpm_limit: s.tpm_limit,
            identity_providers: s.identity_providers.map(|providers| {
                providers
                    .into_iter()
                    .map(GatewayIdentityProvider::from)
                    .collect()
            }),
        }
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("gateway '{id}' not found"))
}

/// List gateways.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-list-gateway",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1 (default 1)"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("search" = Option<String>, Query, description = "Search by id (substring)"),
    ),
    responses(
        (status = 200, body = Envelope<Vec<Gateway>>, description = "A page of gateways; past the end, an empty page"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways")]
async fn list_gateways(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 1, 100)?;
    let search = query_value(&pairs, "search").map(str::to_owned);
    let page = state
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
    let info = ResultInfo::new(
        paging.page,
        paging.per_page,
        page.items.len(),
        page.total_count,
    );
    Ok(envelope::ok_page(
        page.items.into_iter().map(Gateway::from).collect(),
        info,
    ))
}

/// Create a gateway.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-create-gateway",
    params(("account_id" = String, Path, description = "Account id")),
    request_body = GatewayBody,
    responses(
        (status = 200, body = Envelope<Gateway>, description = "The new gateway"),
        (status = 400, body = ErrorEnvelope, description = "Invalid body, a host name another gateway claims (code 7001), or the id exists (code 5403)"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways")]
async fn create_gateway(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let changes = GatewayChanges::read(&parse_object(&body)?, BodyKind::Create)?;
    let id = changes
        .id
        .clone()
        .ok_or_else(|| Error::Internal("create body without id".into()))?;
    let now = now_ms();
    let record = GatewayRecord {
        account_id,
        id,
        internal_id: uuid::Uuid::new_v4().to_string(),
        is_default: false,
        settings: {
            let mut settings = changes.into_new_settings();
            seal_authorizations(&mut settings.otel, None, &state.master_key);
            settings
        },
        created_at_ms: now,
        modified_at_ms: now,
    };
    let stored = record.clone();
    state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                store::check_hostnames_free(c, &stored.account_id, &stored.id, &stored.settings)?;
                store::insert(c, &stored)
            })
        })
        .await?;
    state.publisher.gateway_changed(&record.key()).await;
    Ok(envelope::ok(Gateway::from(record)))
}

/// Fetch a gateway.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-fetch-gateway",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Gateway id")),
    responses(
        (status = 200, body = Envelope<Gateway>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{id}")]
async fn get_gateway(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let found = {
        let id = id.clone();
        state
            .db
            .run(move |c| store::get(c, &account_id, &id))
            .await?
    };
    found
        .map(|g| envelope::ok(Gateway::from(g)))
        .ok_or_else(|| not_found(&id))
}

/// Replace a gateway's settings.
///
/// The five required fields must be present. Optional fields that are omitted keep their stored values; an explicit
/// `null` resets one to its default. An `id` in the body must equal the path.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-update-gateway",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Gateway id")),
    request_body = GatewayBody,
    responses(
        (status = 200, body = Envelope<Gateway>),
        (status = 400, body = ErrorEnvelope, description = "Invalid body, or a host name another gateway claims (code 7001)"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[put("/accounts/{account_id}/ai-gateway/gateways/{id}")]
async fn update_gateway(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let changes = GatewayChanges::read(&parse_object(&body)?, BodyKind::Replace)?;
    if changes.id.as_deref().is_some_and(|body_id| body_id != id) {
        return Err(Error::Validation(vec![crate::error::FieldError::new(
            &["id"],
            "The id in the body differs from the id in the path; a gateway id cannot change",
        )]));
    }
    let key = state.master_key.clone();
    let updated = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let Some(mut record) = store::get(c, &account_id, &id)? else {
                    return Err(not_found(&id));
                };
                let previous_otel = record.settings.otel.clone();
                record.settings = changes.apply_to(record.settings);
                seal_authorizations(&mut record.settings.otel, previous_otel.as_ref(), &key);
                store::check_hostnames_free(c, &account_id, &id, &record.settings)?;
                record.modified_at_ms = now_ms().max(record.modified_at_ms);
                if !store::update_settings(
                    c,
                    &account_id,
                    &id,
                    &record.settings,
                    record.modified_at_ms,
                )? {
                    return Err(not_found(&id));
                }
                Ok(record)
            })
        })
        .await?;
    state.publisher.gateway_changed(&updated.key()).await;
    Ok(envelope::ok(Gateway::from(updated)))
}

/// Delete a gateway; returns the deleted gateway.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-delete-gateway",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Gateway id")),
    responses(
        (status = 200, body = Envelope<Gateway>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{id}")]
async fn delete_gateway(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let deleted = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let Some(record) = store::get(c, &account_id, &id)? else {
                    return Err(not_found(&id));
                };
                store::delete(c, &account_id, &id)?;
                Ok(record)
            })
        })
        .await?;
    state.publisher.gateway_deleted(&deleted.key()).await;
    Ok(envelope::ok(Gateway::from(deleted)))
}

/// The data-plane URL of a provider through this gateway.
#[utoipa::path(
    tag = "gateways", operation_id = "aig-config-get-gateway-url",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("provider" = String, Path, description = "Provider slug, e.g. openai, anthropic, custom-{slug}, compat"),
    ),
    responses(
        (status = 200, body = Envelope<String>, description = "The base URL for that provider"),
        (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/url/{provider}")]
async fn get_gateway_url(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, provider) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    if !is_routable_slug(&provider) {
        return Err(Error::BadParameter(format!(
            "unknown provider '{provider}'"
        )));
    }
    let exists = {
        let (account_id, gateway_id) = (account_id.clone(), gateway_id.clone());
        state
            .db
            .run(move |c| store::get(c, &account_id, &gateway_id))
            .await?
            .is_some()
    };
    if !exists {
        return Err(not_found(&gateway_id));
    }
    let base = state.public_inference_url.trim_end_matches('/');
    Ok(envelope::ok(format!(
        "{base}/v1/{account_id}/{gateway_id}/{provider}"
    )))
}
