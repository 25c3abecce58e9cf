//! A route's versions (drafts of its element graph) and deployments (which version serves traffic).

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::token::Scope;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{
    ORDER_BY, ORDER_BY_DIRECTION, Route, RouteDeployment, RouteVersion, RouteVersionDetail,
    deployment_view, list_response, live_route, read_comment, read_elements, route_view, validate,
    version_detail, version_not_found, version_problem, version_view,
};
use crate::api::State;
use crate::api::envelope::{self, Envelope, ErrorEnvelope};
use crate::api::request::{Caller, Paging, query_pairs, read_body};
use crate::api::validation::{FieldReader, parse_object};
use crate::error::{Error, FieldError};
use crate::store::now_ms;
use crate::store::routes as store;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_versions)
        .service(create_version)
        .service(get_version)
        .service(list_deployments)
        .service(create_deployment);
}

/// `{success, data: {versions, page, per_page, order_by, order_by_direction}}` (no `result`).
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionListEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub data: VersionList,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    pub versions: Vec<RouteVersion>,
    pub page: i64,
    pub per_page: i64,
    pub order_by: String,
    pub order_by_direction: String,
    pub count: i64,
    pub total_count: i64,
}

/// `{success, data: {deployments, page, per_page, order_by, order_by_direction}}` (no `result`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentListEnvelope {
    pub success: bool,
    pub errors: Vec<Value>,
    pub messages: Vec<Value>,
    pub data: DeploymentList,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<RouteDeployment>,
    pub page: i64,
    pub per_page: i64,
    pub order_by: String,
    pub order_by_direction: String,
    pub count: i64,
    pub total_count: i64,
}

/// The body of `POST .../versions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateVersionBody {
    #[schema(value_type = Vec<Object>)]
    pub elements: Value,
    pub comment: Option<String>,
}

/// The body of `POST .../deployments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateDeploymentBody {
    /// The version to deploy (an older one: a rollback).
    #[schema(format = "uuid")]
    pub version_id: String,
    pub comment: Option<String>,
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// List a route's versions, newest first; the deployed one has `active: "true"`.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-list-gateway-dynamic-route-versions",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
    ),
    responses(
        (status = 200, body = VersionListEnvelope), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}/versions")]
async fn list_versions(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let paging = Paging::from_query(&query_pairs(&req)?, 1, 100)?;
    let (live, rows, total, custom) = state
        .db
        .run(move |c| {
            let live = live_route(c, &account_id, &gateway_id, &id)?;
            let (rows, total) = store::versions(c, &id, paging.offset(), paging.per_page)?;
            let custom = store::custom_provider_slugs(c, &account_id)?;
            Ok::<_, Error>((live, rows, total, custom))
        })
        .await?;
    let versions = rows
        .iter()
        .map(|v| version_view(v, &live.route, &custom))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(list_response(VersionList {
        count: count(versions.len()),
        versions,
        page: paging.page,
        per_page: paging.per_page,
        order_by: ORDER_BY.into(),
        order_by_direction: ORDER_BY_DIRECTION.into(),
        total_count: total,
    }))
}

/// Add a version to a route. It does not serve traffic until deployed.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-create-gateway-dynamic-route-version",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
    ),
    request_body = CreateVersionBody,
    responses(
        (status = 200, body = Envelope<RouteVersionDetail>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}/versions")]
async fn create_version(
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
    let elements = read_elements(&mut r, true);
    let comment = read_comment(&mut r);
    r.finish()?;
    let elements =
        elements.ok_or_else(|| Error::Internal("route elements were not read".into()))?;
    let detail = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let live = live_route(c, &account_id, &gateway_id, &id)?;
                let custom = store::custom_provider_slugs(c, &account_id)?;
                validate(&elements, &custom)?;
                let now = now_ms();
                let version = store::add_version(c, &id, elements.to_string(), comment, now)?;
                store::touch(c, &live.route, now)?;
                let route = live_route(c, &account_id, &gateway_id, &id)?.route;
                version_detail(&version, &route, &custom)
            })
        })
        .await?;
    Ok(envelope::ok(detail))
}

/// Fetch one version of a route, with its elements.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-get-gateway-dynamic-route-version",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"), ("version_id" = String, Path, description = "Version id"),
    ),
    responses(
        (status = 200, body = Envelope<RouteVersionDetail>), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}/versions/{version_id}")]
async fn get_version(
    state: State,
    caller: Caller,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id, version_id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let detail = state
        .db
        .run(move |c| {
            let live = live_route(c, &account_id, &gateway_id, &id)?;
            let version = store::version(c, &id, &version_id)?
                .ok_or_else(|| version_not_found(&version_id))?;
            let custom = store::custom_provider_slugs(c, &account_id)?;
            version_detail(&version, &live.route, &custom)
        })
        .await?;
    Ok(envelope::ok(detail))
}

/// List a route's deployments, newest first (the first is live).
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-list-gateway-dynamic-route-deployments",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
    ),
    responses(
        (status = 200, body = DeploymentListEnvelope), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}/deployments")]
async fn list_deployments(
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, gateway_id, id) = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let paging = Paging::from_query(&query_pairs(&req)?, 1, 100)?;
    let (rows, total) = state
        .db
        .run(move |c| {
            live_route(c, &account_id, &gateway_id, &id)?;
            store::deployments(c, &id, paging.offset(), paging.per_page)
        })
        .await?;
    let deployments: Vec<_> = rows.iter().map(deployment_view).collect();
    Ok(list_response(DeploymentList {
        count: count(deployments.len()),
        deployments,
        page: paging.page,
        per_page: paging.per_page,
        order_by: ORDER_BY.into(),
        order_by_direction: ORDER_BY_DIRECTION.into(),
        total_count: total,
    }))
}

/// Deploy a version of a route (an older one: a rollback). Answers with the route as now deployed.
#[utoipa::path(
    tag = "dynamic routing", operation_id = "aig-config-create-gateway-dynamic-route-deployment",
    params(
        ("account_id" = String, Path, description = "Account id"), ("gateway_id" = String, Path, description = "Gateway id"),
        ("id" = String, Path, description = "Route id"),
    ),
    request_body = CreateDeploymentBody,
    responses(
        (status = 200, body = Envelope<Route>), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes/{id}/deployments")]
async fn create_deployment(
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
    let version_id = r.required_string("version_id", 1, 128);
    let comment = read_comment(&mut r);
    r.finish()?;
    let version_id = version_id.ok_or_else(|| Error::Internal("version_id was not read".into()))?;
    let key = GatewayKey::new(&account_id, &gateway_id);
    let route = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let live = live_route(c, &account_id, &gateway_id, &id)?;
                let version = store::version(c, &id, &version_id)?
                    .ok_or_else(|| version_not_found(&version_id))?;
                let custom = store::custom_provider_slugs(c, &account_id)?;
                if let Some(problem) = version_problem(&version, &custom)? {
                    return Err(Error::Validation(vec![FieldError::new(
                        &["version_id"],
                        format!("version '{version_id}' cannot be deployed: {problem}"),
                    )]));
                }
                store::deploy(c, &live.route, &version.id, comment, now_ms())?;
                route_view(&live_route(c, &account_id, &gateway_id, &id)?, &custom)
            })
        })
        .await?;
    state.publisher.gateway_changed(&key).await;
    Ok(envelope::ok(route))
}
