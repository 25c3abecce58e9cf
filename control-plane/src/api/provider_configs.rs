//! Provider configs (spec §1.8): a gateway's stored provider keys. The raw secret is sealed with the master key
//! before it is stored and is never returned; responses carry `secret_preview`.

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use gatehouse_shared::providers::{COMPAT_PROVIDER, is_routable_slug};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use super::request::{Caller, Paging, query_pairs, read_body};
use super::validation::{Field, FieldReader, parse_object};
use crate::error::Error;
use crate::store::provider_configs::{self as store, ProviderConfigRow};
use crate::store::{gateways, now_ms};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_provider_configs)
        .service(create_provider_config)
        .service(rotate_provider_config)
        .service(delete_provider_config);
}

/// Longest secret accepted: a Vertex service-account JSON is a few kilobytes.
const MAX_SECRET_LEN: usize = 32 * 1024;

/// A stored provider key as the API shows it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderConfig {
    pub id: String,
    pub alias: String,
    pub default_config: bool,
    pub gateway_id: String,
    pub provider_slug: String,
    pub secret_id: String,
    /// A masked fragment of the key, e.g. `sk-p...x9Qz`.
    pub secret_preview: String,
    pub rate_limit: Option<f64>,
    pub rate_limit_period: Option<f64>,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
    pub account_id: String,
    pub account_tag: String,
}

/// The body of a create.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateProviderConfigBody {
    /// 1..64 characters of letters, digits, `-` and `_`; `cf-aig-byok-alias` selects it.
    pub alias: String,
    /// Whether this key is used when a request names no alias.
    pub default_config: bool,
    /// A provider slug, e.g. `openai`, `anthropic`, `custom-my-llm`.
    pub provider_slug: String,
    /// The provider key itself.
    pub secret: String,
    pub rate_limit: Option<f64>,
    /// Seconds (default 60).
    pub rate_limit_period: Option<f64>,
}

/// The body of a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotateProviderConfigBody {
    /// The new provider key.
    pub secret: String,
}

impl From<ProviderConfigRow> for ProviderConfig {
    fn from(r: ProviderConfigRow) -> Self {
        Self {
            id: r.id,
            alias: r.alias,
            default_config: r.default_config,
            gateway_id: r.gateway_id,
            provider_slug: r.provider_slug,
            secret_id: r.secret_id,
            secret_preview: r.secret_preview,
            rate_limit: r.rate_limit,
            rate_limit_period: r.rate_limit_period,
            created_at: rfc3339(r.created_at),
            modified_at: rfc3339(r.modified_at),
            account_tag: r.account_id.clone(),
            account_id: r.account_id,
        }
    }
}

/// A preview that identifies a key without revealing it: the first and last four characters of a long key, and
/// nothing of a short one.
pub fn secret_preview(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}...{tail}")
    } else {
        "********".to_owned()
    }
}

fn is_valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= 64
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn require_gateway(state: &State, account_id: &str, gateway_id: &str) -> Result<(), Error> {
    let (a, g) = (account_id.to_owned(), gateway_id.to_owned());
    match state.db.run(move |c| gateways::get(c, &a, &g)).await? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("gateway '{gateway_id}' not found"))),
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("provider config '{id}' not found"))
}

/// List a gateway's stored provider keys.
#[utoipa::path(
    tag = "provider configs", operation_id = "aig-config-list-provider-configs",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
    ),
    responses(
        (status = 200, body = Envelope<Vec<ProviderConfig>>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs")]
async fn list_provider_configs(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let paging = Paging::from_query(&query_pairs(&req)?, 1, 100)?;
    require_gateway(&state, &account_id, &gateway_id).await?;
    let (rows, total) = state
        .db
        .run(move |c| {
            store::list(
                c,
                &account_id,
                &gateway_id,
                paging.offset(),
                paging.per_page,
            )
        })
        .await?;
    let info = ResultInfo::new(paging.page, paging.per_page, rows.len(), total);
    Ok(envelope::ok_page(
        rows.into_iter().map(ProviderConfig::from).collect(),
        info,
    ))
}

/// Store a provider key on a gateway.
#[utoipa::path(
    tag = "provider configs", operation_id = "aig-config-create-provider-config",
    params(("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id")),
    request_body = CreateProviderConfigBody,
    responses(
        (status = 200, body = Envelope<ProviderConfig>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs")]
async fn create_provider_config(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let alias = r.required_string("alias", 1, 64);
    if alias.as_deref().is_some_and(|a| !is_valid_alias(a)) {
        r.error("alias", "Use 1..64 letters, digits, '-' and '_'");
    }
    let default_config = r.required_bool("default_config");
    let provider_slug = r.required_string("provider_slug", 1, 80);
    if provider_slug
        .as_deref()
        .is_some_and(|p| !is_routable_slug(p) || p == COMPAT_PROVIDER)
    {
        r.error(
            "provider_slug",
            "Unknown provider: use a provider slug such as 'openai' or 'custom-{slug}'",
        );
    }
    let secret = match r.string("secret", 1, MAX_SECRET_LEN) {
        Field::Set(s) => Some(s),
        _ if object.contains_key("secret_id") && !object.contains_key("secret") => {
            r.error("secret", "Secrets Store references (secret_id) are not supported here: send the key in 'secret'");
            None
        }
        Field::Absent if !object.contains_key("secret") => {
            r.error("secret", "Required: expected string");
            None
        }
        _ => {
            if object.get("secret").is_some_and(serde_json::Value::is_null) {
                r.error("secret", "Expected string, received null");
            }
            None
        }
    };
    let rate_limit = match r.number("rate_limit", 0.0, 1e12) {
        Field::Set(n) => Some(n),
        _ => None,
    };
    let rate_limit_period = match r.number("rate_limit_period", 1.0, 1e9) {
        Field::Set(n) => Some(n),
        _ => Some(60.0),
    };
    r.finish()?;
    let (Some(alias), Some(default_config), Some(provider_slug), Some(secret)) =
        (alias, default_config, provider_slug, secret)
    else {
        return Err(Error::Internal(
            "a required provider-config field was not read".into(),
        ));
    };
    require_gateway(&state, &account_id, &gateway_id).await?;
    let now = now_ms();
    let row = ProviderConfigRow {
        id: uuid::Uuid::new_v4().to_string(),
        account_id,
        gateway_id,
        provider_slug,
        alias,
        default_config,
        sealed_secret: state.master_key.seal(secret.as_bytes()),
        secret_id: format!("sec_{}", uuid::Uuid::new_v4().simple()),
        secret_preview: secret_preview(&secret),
        rate_limit,
        rate_limit_period,
        created_at: now,
        modified_at: now,
    };
    let stored = row.clone();
    state.db.run(move |c| store::insert(c, &stored)).await?;
    state
        .publisher
        .gateway_changed(&gatehouse_shared::config::GatewayKey::new(
            &row.account_id,
            &row.gateway_id,
        ))
        .await;
    Ok(envelope::ok(ProviderConfig::from(row)))
}

/// Rotate a stored provider key: replace its secret.
#[utoipa::path(
    tag = "provider configs", operation_id = "aig-config-update-provider-config",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Provider config id"),
    ),
    request_body = RotateProviderConfigBody,
    responses(
        (status = 200, body = Envelope<ProviderConfig>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[put("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs/{id}")]
async fn rotate_provider_config(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let secret = r.required_string("secret", 1, MAX_SECRET_LEN);
    r.finish()?;
    let secret = secret.ok_or_else(|| Error::Internal("secret was not read".into()))?;
    let sealed = state.master_key.seal(secret.as_bytes());
    let preview = secret_preview(&secret);
    let key = gatehouse_shared::config::GatewayKey::new(&account_id, &gateway_id);
    let row = state
        .db
        .run(move |c| {
            if !store::rotate(
                c,
                &account_id,
                &gateway_id,
                &id,
                &sealed,
                &preview,
                now_ms(),
            )? {
                return Err(not_found(&id));
            }
            store::get(c, &account_id, &gateway_id, &id)?.ok_or_else(|| not_found(&id))
        })
        .await?;
    state.publisher.gateway_changed(&key).await;
    Ok(envelope::ok(ProviderConfig::from(row)))
}

/// Delete a stored provider key; traffic that depended on it stops using it at once.
#[utoipa::path(
    tag = "provider configs", operation_id = "aig-config-delete-provider-config",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Provider config id"),
    ),
    responses(
        (status = 200, body = Envelope<ProviderConfig>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/provider_configs/{id}")]
async fn delete_provider_config(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let key = gatehouse_shared::config::GatewayKey::new(&account_id, &gateway_id);
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
    state.publisher.gateway_changed(&key).await;
    Ok(envelope::ok(ProviderConfig::from(row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_never_reveal_a_short_key_and_show_only_the_ends_of_a_long_one() {
        assert_eq!(
            secret_preview("sk-proj-abcdefghijklmnop1234"),
            "sk-p...1234"
        );
        assert_eq!(secret_preview("short-key"), "********");
        assert_eq!(secret_preview(""), "********");
    }
}
