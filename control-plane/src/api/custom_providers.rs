//! Custom providers (spec §1.9): account-level upstreams routable as `custom-{slug}` on every gateway of the
//! account.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use base64::Engine as _;
use gatehouse_shared::providers::custom_slug;
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, ResultInfo};
use super::request::{Caller, Paging, query_pairs, query_value, read_body};
use super::validation::{Field, FieldReader, parse_object};
use crate::error::Error;
use crate::store::custom_providers::{self as store, CustomProviderFilter, CustomProviderRow};
use crate::store::now_ms;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_custom_providers)
        .service(create_custom_provider)
        .service(get_custom_provider)
        .service(update_custom_provider)
        .service(delete_custom_provider);
}

/// A custom provider as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomProvider {
    #[schema(format = "uuid")]
    pub id: String,
    pub account_id: String,
    pub account_tag: String,
    pub name: String,
    /// Routable as `custom-{slug}`.
    pub slug: String,
    pub base_url: String,
    pub description: Option<String>,
    pub link: Option<String>,
    pub enable: bool,
    pub beta: bool,
    pub curl_example: Option<String>,
    pub js_example: Option<String>,
    pub headers: Option<String>,
    pub position: Option<f64>,
    /// A generated SVG, base64.
    pub logo: String,
    /// Unix seconds, as Cloudflare's examples show.
    pub created_at: i64,
    pub modified_at: i64,
}

/// The create body; PATCH takes the same fields, all optional.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomProviderBody {
    pub name: String,
    /// Letters, digits and hyphens; unique in the account.
    pub slug: String,
    /// `https://…` (plain `http://` only when the operator allows it).
    pub base_url: String,
    pub description: Option<String>,
    pub link: Option<String>,
    pub enable: Option<bool>,
    pub beta: Option<bool>,
    pub curl_example: Option<String>,
    pub js_example: Option<String>,
    pub headers: Option<String>,
    pub position: Option<f64>,
}

impl From<CustomProviderRow> for CustomProvider {
    fn from(r: CustomProviderRow) -> Self {
        Self {
            account_tag: r.account_id.clone(),
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            slug: r.slug,
            base_url: r.base_url,
            description: r.description,
            link: r.link,
            enable: r.enable,
            beta: r.beta,
            curl_example: r.curl_example,
            js_example: r.js_example,
            headers: r.headers,
            position: r.position,
            logo: r.logo,
            created_at: r.created_at / 1000,
            modified_at: r.modified_at / 1000,
        }
    }
}

/// A square with the provider's initial, coloured from its slug: recognisable in a list without any upload.
fn generated_logo(name: &str, slug: &str) -> String {
    let initial = name
        .chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_else(|| "?".into());
    let hue = slug
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"64\" height=\"64\" viewBox=\"0 0 64 64\">\
         <rect width=\"64\" height=\"64\" rx=\"12\" fill=\"hsl({hue},55%,45%)\"/>\
         <text x=\"32\" y=\"42\" font-family=\"sans-serif\" font-size=\"30\" text-anchor=\"middle\" fill=\"#fff\">{initial}</text></svg>"
    );
    base64::engine::general_purpose::STANDARD.encode(svg)
}

/// Checks a base URL: `https://host[:port][/path]`, or `http://` when allowed.
fn base_url_problem(url: &str, allow_http: bool) -> Option<&'static str> {
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(r), _) => r,
        (None, Some(r)) if allow_http => r,
        (None, Some(_)) => return Some("base_url must start with https://"),
        _ => return Some("base_url must be an https:// URL"),
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || host.contains(' ') {
        return Some("base_url must name a host");
    }
    if url.contains(['?', '#']) {
        return Some("base_url must not have a query or fragment");
    }
    None
}

/// The optional fields, shared by create and PATCH.
struct Optionals {
    description: Field<String>,
    link: Field<String>,
    enable: Field<bool>,
    beta: Field<bool>,
    curl_example: Field<String>,
    js_example: Field<String>,
    headers: Field<String>,
    position: Field<f64>,
}

fn read_optionals(r: &mut FieldReader<'_>) -> Optionals {
    Optionals {
        description: r.string("description", 0, 2048),
        link: r.string("link", 0, 2048),
        enable: r.bool("enable"),
        beta: r.bool("beta"),
        curl_example: r.string("curl_example", 0, 32 * 1024),
        js_example: r.string("js_example", 0, 32 * 1024),
        headers: r.string("headers", 0, 16 * 1024),
        position: r.number("position", -1e9, 1e9),
    }
}

impl Optionals {
    fn apply(self, row: &mut CustomProviderRow) {
        self.description.apply_to(&mut row.description);
        self.link.apply_to(&mut row.link);
        self.enable.apply_with_default(&mut row.enable, false);
        self.beta.apply_with_default(&mut row.beta, false);
        self.curl_example.apply_to(&mut row.curl_example);
        self.js_example.apply_to(&mut row.js_example);
        self.headers.apply_to(&mut row.headers);
        self.position.apply_to(&mut row.position);
    }
}

fn check_slug(r: &mut FieldReader<'_>, slug: Option<&str>) {
    if let Some(slug) = slug
        && custom_slug(&format!("custom-{slug}")) != Some(slug)
    {
        r.error(
            "slug",
            "Use letters, digits and single hyphens inside (1..64 characters)",
        );
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!("custom provider '{id}' not found"))
}

fn parse_bool_param(pairs: &[(String, String)], name: &str) -> Result<Option<bool>, Error> {
    match query_value(pairs, name) {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(Error::BadParameter(format!(
            "{name} must be true or false, got '{v}'"
        ))),
    }
}

/// List the account's custom providers (by name).
#[utoipa::path(
    tag = "custom providers", operation_id = "aig-config-list-custom-providers",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
        ("enable" = Option<bool>, Query, description = "Only enabled (or disabled) providers"),
        ("beta" = Option<bool>, Query, description = "Only beta (or non-beta) providers"),
        ("search" = Option<String>, Query, description = "Substring of id, name or slug"),
    ),
    responses((status = 200, body = Envelope<Vec<CustomProvider>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/custom-providers")]
async fn list_custom_providers(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 1, 100)?;
    let filter = CustomProviderFilter {
        enable: parse_bool_param(&pairs, "enable")?,
        beta: parse_bool_param(&pairs, "beta")?,
        search: query_value(&pairs, "search").map(str::to_owned),
    };
    let (rows, total) = state
        .db
        .run(move |c| store::list(c, &account_id, &filter, paging.offset(), paging.per_page))
        .await?;
    let info = ResultInfo::new(paging.page, paging.per_page, rows.len(), total);
    Ok(envelope::ok_page(
        rows.into_iter().map(CustomProvider::from).collect(),
        info,
    ))
}

/// Create a custom provider.
#[utoipa::path(
    tag = "custom providers", operation_id = "aig-config-create-custom-provider",
    params(("account_id" = String, Path, description = "Account id")),
    request_body = CustomProviderBody,
    responses((status = 200, body = Envelope<CustomProvider>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/custom-providers")]
async fn create_custom_provider(
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
    let name = r.required_string("name", 1, 256);
    let slug = r.required_string("slug", 1, 64);
    check_slug(&mut r, slug.as_deref());
    let base_url = r.required_string("base_url", 1, 2048);
    if let Some(problem) = base_url
        .as_deref()
        .and_then(|u| base_url_problem(u, state.allow_http_custom_providers))
    {
        r.error("base_url", problem);
    }
    let optionals = read_optionals(&mut r);
    r.finish()?;
    let (Some(name), Some(slug), Some(base_url)) = (name, slug, base_url) else {
        return Err(Error::Internal(
            "a required custom-provider field was not read".into(),
        ));
    };
    let now = now_ms();
    let mut row = CustomProviderRow {
        id: uuid::Uuid::new_v4().to_string(),
        logo: generated_logo(&name, &slug),
        account_id: account_id.clone(),
        slug,
        name,
        base_url: base_url.trim_end_matches('/').to_owned(),
        enable: false,
        beta: false,
        description: None,
        link: None,
        curl_example: None,
        js_example: None,
        headers: None,
        position: None,
        created_at: now,
        modified_at: now,
    };
    optionals.apply(&mut row);
    let stored = row.clone();
    state.db.run(move |c| store::insert(c, &stored)).await?;
    state.publisher.account_changed(&account_id).await;
    Ok(envelope::ok(CustomProvider::from(row)))
}

/// Fetch a custom provider.
#[utoipa::path(
    tag = "custom providers", operation_id = "aig-config-fetch-custom-provider",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Custom provider id")),
    responses((status = 200, body = Envelope<CustomProvider>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/custom-providers/{id}")]
async fn get_custom_provider(
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
    row.map(|r| envelope::ok(CustomProvider::from(r)))
        .ok_or_else(|| not_found(&id))
}

/// Change some fields of a custom provider; omitted fields keep their values.
#[utoipa::path(
    tag = "custom providers", operation_id = "aig-config-update-custom-provider",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Custom provider id")),
    request_body = CustomProviderBody,
    responses((status = 200, body = Envelope<CustomProvider>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/custom-providers/{id}")]
async fn update_custom_provider(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let body = read_body(&req, payload, state.max_body_bytes).await?;
    let object: Map<String, Value> = parse_object(&body)?;
    let mut r = FieldReader::new(&object);
    let name = r.string("name", 1, 256);
    let slug = r.string("slug", 1, 64);
    if let Field::Set(s) = &slug {
        check_slug(&mut r, Some(s));
    }
    let base_url = r.string("base_url", 1, 2048);
    if let Field::Set(u) = &base_url
        && let Some(problem) = base_url_problem(u, state.allow_http_custom_providers)
    {
        r.error("base_url", problem);
    }
    for required in ["name", "slug", "base_url"] {
        if object.get(required).is_some_and(Value::is_null) {
            r.error(required, "Cannot be null");
        }
    }
    let optionals = read_optionals(&mut r);
    r.finish()?;
    let account = account_id.clone();
    let row = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut row = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                if let Field::Set(n) = name {
                    row.name = n;
                }
                if let Field::Set(s) = slug {
                    row.slug = s;
                }
                if let Field::Set(u) = base_url {
                    row.base_url = u.trim_end_matches('/').to_owned();
                }
                optionals.apply(&mut row);
                row.modified_at = now_ms().max(row.modified_at);
                if !store::update(c, &row)? {
                    return Err(not_found(&id));
                }
                Ok(row)
            })
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(CustomProvider::from(row)))
}

/// Delete a custom provider; returns it.
#[utoipa::path(
    tag = "custom providers", operation_id = "aig-config-delete-custom-provider",
    params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = "Custom provider id")),
    responses((status = 200, body = Envelope<CustomProvider>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/custom-providers/{id}")]
async fn delete_custom_provider(
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let account = account_id.clone();
    let row = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let row = store::get(c, &account_id, &id)?.ok_or_else(|| not_found(&id))?;
                store::delete(c, &account_id, &id)?;
                Ok(row)
            })
        })
        .await?;
    state.publisher.account_changed(&account).await;
    Ok(envelope::ok(CustomProvider::from(row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_https_unless_the_operator_allows_http() {
        assert_eq!(base_url_problem("https://llm.example.com/v1", false), None);
        assert_eq!(base_url_problem("http://10.0.0.5:8000/v1", true), None);
        assert!(base_url_problem("http://10.0.0.5:8000/v1", false).is_some());
        for bad in [
            "ftp://x",
            "https://",
            "https://user@host/",
            "https://h/p?q=1",
            "llm.example.com",
        ] {
            assert!(base_url_problem(bad, true).is_some(), "{bad}");
        }
    }

    #[test]
    fn logos_are_svg_with_the_initial() {
        let logo = generated_logo("my llm", "my-llm");
        let svg = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(logo)
                .unwrap(),
        )
        .unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains(">M</text>"),
            "{svg}"
        );
    }
}
