//! Dynamic routes (spec §1.7): named element graphs on a gateway, invoked as `model: "dynamic/<name>"`, with
//! append-only versions and deployments. This file has the wire shapes, the shared steps and the route handlers;
//! `routes/versions.rs` has the version and deployment handlers.
//!
//! Cloudflare's envelopes differ per operation and the SDKs depend on it: the lists answer
//! `{success, data: {routes|versions|deployments, page, per_page, order_by, order_by_direction}}` without `result`,
//! PATCH answers `{success, route}`, everything else the usual `{success, result}`.
//!
//! Lifecycle: creating a route creates its first version and deploys it; a new version is a draft until deployed;
//! deploying an older version is a rollback; a PATCH with `elements` (as Terraform sends it) creates a version and
//! deploys it. Every graph is checked with [`RouteGraph::parse`] (the check every node makes) before it is stored,
//! and again before it is deployed and whenever `is_valid` is shown, since a custom provider it names may since have
//! been deleted. Every change to what is deployed republishes the gateway's config document.

mod shapes;
mod versions;

pub use shapes::{
    Active, CreateRouteBody, Route, RouteDeployment, RouteList, RouteListEnvelope,
    RouteUpdateEnvelope, RouteVersion, RouteVersionDetail, UpdateRouteBody,
};

use std::collections::HashSet;

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::providers::{custom_slug, provider};
use gatehouse_shared::routes::{RouteError, RouteGraph};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa_actix_web::service_config::ServiceConfig;

use super::State;
use super::envelope::{self, Envelope, ErrorEnvelope, rfc3339};
use super::request::{Caller, Paging, query_pairs, read_body};
use super::validation::{Field, FieldReader, parse_object, type_name};
use crate::db::AnyConnection;
use crate::error::{Error, FieldError};
use crate::store::gateways;
use crate::store::now_ms;
use crate::store::routes::{self as store, DeploymentRow, LiveRoute, RouteRow, VersionRow};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_routes)
        .service(create_route)
        .service(get_route)
        .service(update_route)
        .service(delete_route);
    versions::routes(cfg);
}

/// Longest route name.
pub const ROUTE_NAME_MAX_LEN: usize = 64;
/// Longest version or deployment comment.
const COMMENT_MAX_LEN: usize = 1024;
/// What every list reports as its order (newest first).
const ORDER_BY: &str = "created_at";
const ORDER_BY_DIRECTION: &str = "desc";

/// Whether a route name is 1..=64 characters of letters, digits, `_`, `-` and `.`.
pub fn is_valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= ROUTE_NAME_MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The page envelope helper shared by the three lists.
fn list_response<T: Serialize>(data: T) -> HttpResponse {
    #[derive(Serialize)]
    struct DataEnvelope<T> {
        success: bool,
        errors: [(); 0],
        messages: [(); 0],
        data: T,
    }
    HttpResponse::Ok().json(DataEnvelope {
        success: true,
        errors: [],
        messages: [],
        data,
    })
}

/// Whether `slug` is a provider a model element may name: a built-in provider, or `custom-{slug}` of one of the
/// account's custom providers (`custom` holds their slugs).
fn provider_known(custom: &HashSet<String>, slug: &str) -> bool {
    provider(slug).is_some() || custom_slug(slug).is_some_and(|s| custom.contains(s))
}

fn parse_graph(elements: &Value, custom: &HashSet<String>) -> Result<RouteGraph, RouteError> {
    RouteGraph::parse(elements, &|slug: &str| provider_known(custom, slug))
}

/// A graph problem as a validation error on `elements` (at the element's index when one is at fault).
fn graph_problem(elements: &Value, e: &RouteError) -> Error {
    let mut path = vec!["elements".to_owned()];
    if let Some(id) = &e.element
        && let Some(i) = elements.as_array().and_then(|items| {
            items
                .iter()
                .position(|el| el.get("id").and_then(Value::as_str) == Some(id.as_str()))
        })
    {
        path.push(i.to_string());
    }
    Error::Validation(vec![FieldError {
        path,
        message: e.to_string(),
    }])
}

/// Checks a graph a client sent: the 400 names the element and the problem.
fn validate(elements: &Value, custom: &HashSet<String>) -> Result<(), Error> {
    parse_graph(elements, custom)
        .map(drop)
        .map_err(|e| graph_problem(elements, &e))
}

/// A stored graph, parsed back.
fn stored_elements(version: &VersionRow) -> Result<Value, Error> {
    serde_json::from_str(&version.elements).map_err(|e| {
        Error::Internal(format!(
            "route version {} holds invalid JSON: {e}",
            version.id
        ))
    })
}

/// A stored version checked again, against the account's custom providers now.
fn version_problem(
    version: &VersionRow,
    custom: &HashSet<String>,
) -> Result<Option<RouteError>, Error> {
    Ok(parse_graph(&stored_elements(version)?, custom).err())
}

fn route_not_found(id: &str) -> Error {
    Error::NotFound(format!("route '{id}' not found"))
}

fn version_not_found(id: &str) -> Error {
    Error::NotFound(format!("route version '{id}' not found"))
}

/// Fails with 404 unless the gateway exists in the account.
fn require_gateway(c: &mut AnyConnection, account_id: &str, gateway_id: &str) -> Result<(), Error> {
    match gateways::get(c, account_id, gateway_id)? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound(format!("gateway '{gateway_id}' not found"))),
    }
}

fn deployment_view(d: &DeploymentRow) -> RouteDeployment {
    RouteDeployment {
        deployment_id: d.id.clone(),
        version_id: d.version_id.clone(),
        created_at: rfc3339(d.created_at),
        comment: d.comment.clone(),
    }
}

fn version_view(
    v: &VersionRow,
    route: &RouteRow,
    custom: &HashSet<String>,
) -> Result<RouteVersion, Error> {
    Ok(RouteVersion {
        version_id: v.id.clone(),
        active: (v.id == route.version_id).into(),
        created_at: rfc3339(v.created_at),
        data: v.elements.clone(),
        is_valid: version_problem(v, custom)?.is_none(),
        comment: v.comment.clone(),
    })
}

fn route_view(l: &LiveRoute, custom: &HashSet<String>) -> Result<Route, Error> {
    Ok(Route {
        id: l.route.id.clone(),
        account_tag: l.route.account_id.clone(),
        name: l.route.name.clone(),
        gateway_id: l.route.gateway_id.clone(),
        created_at: rfc3339(l.route.created_at),
        modified_at: rfc3339(l.route.modified_at),
        elements: stored_elements(&l.version)?,
        deployment: deployment_view(&l.deployment),
        version: version_view(&l.version, &l.route, custom)?,
    })
}

fn version_detail(
    v: &VersionRow,
    route: &RouteRow,
    custom: &HashSet<String>,
) -> Result<RouteVersionDetail, Error> {
    let version = version_view(v, route, custom)?;
    Ok(RouteVersionDetail {
        id: route.id.clone(),
        name: route.name.clone(),
        gateway_id: route.gateway_id.clone(),
        created_at: version.created_at,
        modified_at: rfc3339(route.modified_at),
        elements: stored_elements(v)?,
        version_id: version.version_id,
        active: version.active,
        data: version.data,
        is_valid: version.is_valid,
        comment: version.comment,
    })
}

/// Reads `elements`: an array (checked as a graph later), required or not.
fn read_elements(r: &mut FieldReader<'_>, required: bool) -> Option<Value> {
    match r.raw("elements") {
        Field::Set(v @ Value::Array(_)) => Some(v.clone()),
        Field::Set(v) => {
            let received = type_name(v);
            r.error("elements", format!("Expected array, received {received}"));
            None
        }
        Field::Null => {
            r.error("elements", "Expected array, received null");
            None
        }
        Field::Absent => {
            if required {
                r.error("elements", "Required: expected array");
            }
            None
        }
    }
}

fn check_name(r: &mut FieldReader<'_>, name: Option<&str>) {
    if name.is_some_and(|n| !is_valid_route_name(n)) {
        r.error(
            "name",
            "Use 1..64 letters, digits, '_', '-' and '.' (the route is invoked as model \"dynamic/<name>\")",
        );
    }
}

/// Reads the optional `comment` (older Cloudflare schemas required it on versions and deployments).
fn read_comment(r: &mut FieldReader<'_>) -> Option<String> {
    match r.string("comment", 0, COMMENT_MAX_LEN) {
        Field::Set(s) => Some(s),
        _ => None,
    }
}

/// Loads the route or fails with 404.
fn live_route(
    c: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<LiveRoute, Error> {
    store::get_live(c, account_id, gateway_id, id)?.ok_or_else(|| route_not_found(id))
}

/// List a gateway's dynamic routes, newest first.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-list-gateway-dynamic-routes",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("gateway_id" = String, Path, description = "Gateway id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
    ),
    responses(
        (status = 200, body = RouteListEnvelope), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes")]
async fn list_routes(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let paging = Paging::from_query(&query_pairs(&req)?, 1, 100)?;
    let (rows, total, custom) = state
        .db
        .run(move |c| {
            require_gateway(c, &account_id, &gateway_id)?;
            let (rows, total) = store::list(
                c,
                &account_id,
                &gateway_id,
                paging.offset(),
                paging.per_page,
            )?;
            let custom = store::custom_provider_slugs(c, &account_id)?;
            Ok::<_, Error>((rows, total, custom))
        })
        .await?;
    let routes = rows
        .iter()
        .map(|l| route_view(l, &custom))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(list_response(RouteList {
        count: i64::try_from(routes.len()).unwrap_or(i64::MAX),
        routes,
        page: paging.page,
        per_page: paging.per_page,
        order_by: ORDER_BY.into(),
        order_by_direction: ORDER_BY_DIRECTION.into(),
        total_count: total,
    }))
}

/// Create a dynamic route: its first version is created from `elements` and deployed at once.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-create-gateway-dynamic-route",
    params(("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id")),
    request_body = CreateRouteBody,
    responses(
        (status = 200, body = Envelope<Route>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes")]
async fn create_route(
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
    let name = r.required_string("name", 1, ROUTE_NAME_MAX_LEN);
    check_name(&mut r, name.as_deref());
    let elements = read_elements(&mut r, true);
    let comment = read_comment(&mut r);
    r.finish()?;
    let (Some(name), Some(elements)) = (name, elements) else {
        return Err(Error::Internal(
            "a required route field was not read".into(),
        ));
    };
    let key = GatewayKey::new(&account_id, &gateway_id);
    let (live, custom) = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                require_gateway(c, &account_id, &gateway_id)?;
                let custom = store::custom_provider_slugs(c, &account_id)?;
                validate(&elements, &custom)?;
                let now = now_ms();
                let route_id = uuid::Uuid::new_v4().to_string();
                let version = VersionRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    route_id: route_id.clone(),
                    number: 1,
                    elements: elements.to_string(),
                    comment: comment.clone(),
                    created_at: now,
                };
                let deployment = DeploymentRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    route_id: route_id.clone(),
                    version_id: version.id.clone(),
                    number: 1,
                    comment,
                    created_at: now,
                };
                let route = RouteRow {
                    id: route_id,
                    account_id,
                    gateway_id,
                    name,
                    version_id: version.id.clone(),
                    deployment_id: deployment.id.clone(),
                    created_at: now,
                    modified_at: now,
                };
                store::insert(c, &route, &version, &deployment)?;
                Ok::<_, Error>((
                    LiveRoute {
                        route,
                        version,
                        deployment,
                    },
                    custom,
                ))
            })
        })
        .await?;
    state.publisher.gateway_changed(&key).await;
    Ok(envelope::ok(route_view(&live, &custom)?))
}

/// Fetch a dynamic route with its deployed version's elements.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-get-gateway-dynamic-route",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
    ),
    responses(
        (status = 200, body = Envelope<Route>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}")]
async fn get_route(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let (live, custom) = state
        .db
        .run(move |c| {
            let live = live_route(c, &account_id, &gateway_id, &id)?;
            Ok::<_, Error>((live, store::custom_provider_slugs(c, &account_id)?))
        })
        .await?;
    Ok(envelope::ok(route_view(&live, &custom)?))
}

/// Rename a dynamic route and/or replace its elements (a new version, deployed at once). Answers
/// `{success, route}`, not `result`.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-update-gateway-dynamic-route",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
    ),
    request_body = UpdateRouteBody,
    responses(
        (status = 200, body = RouteUpdateEnvelope), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[patch("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}")]
async fn update_route(
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
    let name = match r.string("name", 1, ROUTE_NAME_MAX_LEN) {
        Field::Set(n) => Some(n),
        Field::Null => {
            r.error("name", "Expected string, received null");
            None
        }
        Field::Absent => None,
    };
    check_name(&mut r, name.as_deref());
    let elements = read_elements(&mut r, false);
    let comment = read_comment(&mut r);
    if !object.contains_key("name") && !object.contains_key("elements") {
        r.error("name", "Required: expected string (or elements)");
    }
    r.finish()?;
    let key = GatewayKey::new(&account_id, &gateway_id);
    let (live, custom) = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let current = live_route(c, &account_id, &gateway_id, &id)?;
                let custom = store::custom_provider_slugs(c, &account_id)?;
                let now = now_ms();
                if let Some(name) = name.filter(|n| *n != current.route.name)
                    && !store::rename(c, &current.route, &name)?
                {
                    return Err(route_not_found(&id));
                }
                if let Some(elements) = elements {
                    validate(&elements, &custom)?;
                    let version =
                        store::add_version(c, &id, elements.to_string(), comment.clone(), now)?;
                    store::deploy(c, &current.route, &version.id, comment, now)?;
                } else {
                    store::touch(c, &current.route, now)?;
                }
                Ok::<_, Error>((live_route(c, &account_id, &gateway_id, &id)?, custom))
            })
        })
        .await?;
    state.publisher.gateway_changed(&key).await;
    Ok(HttpResponse::Ok().json(RouteUpdateEnvelope {
        success: true,
        errors: vec![],
        messages: vec![],
        route: route_view(&live, &custom)?,
    }))
}

/// Delete a dynamic route with its versions and deployments; returns it.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-delete-gateway-dynamic-route",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
    ),
    responses(
        (status = 200, body = Envelope<Route>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}")]
async fn delete_route(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayEdit)?;
    let key = GatewayKey::new(&account_id, &gateway_id);
    let (live, custom) = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let live = live_route(c, &account_id, &gateway_id, &id)?;
                let custom = store::custom_provider_slugs(c, &account_id)?;
                if !store::delete(c, &account_id, &gateway_id, &id)? {
                    return Err(route_not_found(&id));
                }
                Ok::<_, Error>((live, custom))
            })
        })
        .await?;
    state.publisher.gateway_changed(&key).await;
    Ok(envelope::ok(route_view(&live, &custom)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn route_names_are_short_and_url_safe() {
        for ok in ["a", "my-route", "v1.2_beta", &"x".repeat(64)] {
            assert!(is_valid_route_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"x".repeat(65), "dynamic:x"] {
            assert!(!is_valid_route_name(bad), "{bad}");
        }
    }

    #[test]
    fn active_is_a_string_on_the_wire() {
        assert_eq!(json!(Active::from(true)), json!("true"));
        assert_eq!(json!(Active::from(false)), json!("false"));
    }

    #[test]
    fn providers_are_built_in_or_the_accounts_custom_ones() {
        let custom: HashSet<String> = ["mine".to_owned()].into();
        assert!(provider_known(&custom, "openai"));
        assert!(provider_known(&custom, "custom-mine"));
        assert!(!provider_known(&custom, "custom-other"));
        assert!(!provider_known(&custom, "nope"));
    }

    #[test]
    fn graph_problems_point_at_the_element() {
        let elements = json!([{"id": "s"}, {"id": "m1"}]);
        let e = RouteError {
            element: Some("m1".into()),
            message: "unknown provider 'nope'".into(),
        };
        let Error::Validation(fields) = graph_problem(&elements, &e) else {
            panic!("not a validation error")
        };
        assert_eq!(fields[0].path, ["elements", "1"]);
        assert_eq!(fields[0].message, "element 'm1': unknown provider 'nope'");
    }
}
