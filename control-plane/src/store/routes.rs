//! Dynamic routes (spec §1.7): a gateway's named routes, their append-only versions and their deployments.
//!
//! A route row points at its live version and deployment (`version_id`, `deployment_id`); [`deploy`] moves both
//! pointers in the caller's transaction, next to the new deployment row, so the pointers and the history never
//! disagree. Versions keep the elements as the client sent them (serialized JSON); nothing here rewrites them.
//! Every query is scoped by account and gateway: routes are found by (account, gateway, id), and versions and
//! deployments only through a route found that way.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use gatehouse_shared::config::GatewayKey;
use gatehouse_shared::routes::RouteEntry;

use crate::db::AnyConnection;
use crate::error::Error;
use crate::schema::{custom_providers, route_deployments as rd, route_versions as rv, routes};

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = routes)]
pub struct RouteRow {
    pub id: String,
    pub account_id: String,
    pub gateway_id: String,
    pub name: String,
    /// The deployed version.
    pub version_id: String,
    /// The deployment that made it live.
    pub deployment_id: String,
    pub created_at: i64,
    pub modified_at: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = rv)]
pub struct VersionRow {
    pub id: String,
    pub route_id: String,
    /// 1, 2, … within the route, in creation order.
    pub number: i64,
    /// The element graph as the client sent it, serialized.
    pub elements: String,
    pub comment: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = rd)]
pub struct DeploymentRow {
    pub id: String,
    pub route_id: String,
    pub version_id: String,
    /// 1, 2, … within the route, in creation order.
    pub number: i64,
    pub comment: Option<String>,
    pub created_at: i64,
}

/// A route with its deployed version and the deployment that made it live.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRoute {
    pub route: RouteRow,
    pub version: VersionRow,
    pub deployment: DeploymentRow,
}

fn name_taken(name: &str, gateway_id: &str) -> Error {
    Error::AlreadyExists(format!(
        "a route named '{name}' already exists in gateway '{gateway_id}'"
    ))
}

/// The slugs (without `custom-`) of the account's custom providers, for [`RouteGraph::parse`]'s provider check.
///
/// [`RouteGraph::parse`]: gatehouse_shared::routes::RouteGraph::parse
pub fn custom_provider_slugs(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<HashSet<String>, Error> {
    Ok(custom_providers::table
        .filter(custom_providers::account_id.eq(account_id))
        .select(custom_providers::slug)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

/// A page of the gateway's routes, newest first, and the total.
pub fn list(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<LiveRoute>, i64), Error> {
    let scope = || {
        routes::table
            .filter(routes::account_id.eq(account_id.to_owned()))
            .filter(routes::gateway_id.eq(gateway_id.to_owned()))
    };
    let total = scope().count().get_result(conn)?;
    let rows: Vec<RouteRow> = scope()
        .order((routes::created_at.desc(), routes::id.asc()))
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((live(conn, rows)?, total))
}

/// The route rows with their live versions and deployments, in the same order.
fn live(conn: &mut AnyConnection, rows: Vec<RouteRow>) -> Result<Vec<LiveRoute>, Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let version_ids: Vec<&str> = rows.iter().map(|r| r.version_id.as_str()).collect();
    let deployment_ids: Vec<&str> = rows.iter().map(|r| r.deployment_id.as_str()).collect();
    let mut versions: HashMap<String, VersionRow> = rv::table
        .filter(rv::id.eq_any(version_ids))
        .load::<VersionRow>(conn)?
        .into_iter()
        .map(|v| (v.id.clone(), v))
        .collect();
    let mut deployments: HashMap<String, DeploymentRow> = rd::table
        .filter(rd::id.eq_any(deployment_ids))
        .load::<DeploymentRow>(conn)?
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    rows.into_iter()
        .map(|route| {
            let version = versions.remove(&route.version_id).ok_or_else(|| {
                Error::Internal(format!("route {} has no deployed version row", route.id))
            })?;
            let deployment = deployments.remove(&route.deployment_id).ok_or_else(|| {
                Error::Internal(format!("route {} has no deployment row", route.id))
            })?;
            Ok(LiveRoute {
                route,
                version,
                deployment,
            })
        })
        .collect()
}

pub fn get(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<RouteRow>, Error> {
    Ok(routes::table
        .filter(routes::account_id.eq(account_id))
        .filter(routes::gateway_id.eq(gateway_id))
        .filter(routes::id.eq(id))
        .first(conn)
        .optional()?)
}

/// The route with its live version and deployment.
pub fn get_live(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<Option<LiveRoute>, Error> {
    match get(conn, account_id, gateway_id, id)? {
        None => Ok(None),
        Some(row) => Ok(live(conn, vec![row])?.pop()),
    }
}

/// Inserts a route with its first version, deployed. Call inside a write transaction.
pub fn insert(
    conn: &mut AnyConnection,
    route: &RouteRow,
    version: &VersionRow,
    deployment: &DeploymentRow,
) -> Result<(), Error> {
    match diesel::insert_into(routes::table)
        .values(route.clone())
        .execute(conn)
    {
        Ok(_) => {}
        Err(e) if crate::store::is_unique_violation(&e) => {
            return Err(name_taken(&route.name, &route.gateway_id));
        }
        Err(e) => return Err(e.into()),
    }
    diesel::insert_into(rv::table)
        .values(version.clone())
        .execute(conn)?;
    diesel::insert_into(rd::table)
        .values(deployment.clone())
        .execute(conn)?;
    Ok(())
}

/// Renames a route; false when there is none. A name used by another route of the gateway is an error.
pub fn rename(conn: &mut AnyConnection, route: &RouteRow, name: &str) -> Result<bool, Error> {
    match diesel::update(
        routes::table
            .filter(routes::account_id.eq(&route.account_id))
            .filter(routes::gateway_id.eq(&route.gateway_id))
            .filter(routes::id.eq(&route.id)),
    )
    .set(routes::name.eq(name))
    .execute(conn)
    {
        Ok(n) => Ok(n > 0),
        Err(e) if crate::store::is_unique_violation(&e) => Err(name_taken(name, &route.gateway_id)),
        Err(e) => Err(e.into()),
    }
}

/// Sets the route's `modified_at` (never backwards).
pub fn touch(conn: &mut AnyConnection, route: &RouteRow, now: i64) -> Result<(), Error> {
    diesel::update(routes::table.filter(routes::id.eq(&route.id)))
        .set(routes::modified_at.eq(now.max(route.modified_at)))
        .execute(conn)?;
    Ok(())
}

fn next_number(current: Option<i64>) -> i64 {
    current.unwrap_or(0) + 1
}

/// Takes the route's row lock (PostgreSQL; SQLite's write transactions are serial already), so that two writers
/// adding versions or deployments to one route number them one after the other instead of colliding.
fn lock(conn: &mut AnyConnection, route_id: &str) -> Result<(), Error> {
    diesel::update(routes::table.filter(routes::id.eq(route_id)))
        .set(routes::modified_at.eq(routes::modified_at))
        .execute(conn)?;
    Ok(())
}

/// Appends a version (not deployed). Call inside a write transaction.
pub fn add_version(
    conn: &mut AnyConnection,
    route_id: &str,
    elements: String,
    comment: Option<String>,
    now: i64,
) -> Result<VersionRow, Error> {
    lock(conn, route_id)?;
    let last: Option<i64> = rv::table
        .filter(rv::route_id.eq(route_id))
        .select(diesel::dsl::max(rv::number))
        .first(conn)?;
    let row = VersionRow {
        id: uuid::Uuid::new_v4().to_string(),
        route_id: route_id.to_owned(),
        number: next_number(last),
        elements,
        comment,
        created_at: now,
    };
    diesel::insert_into(rv::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(row)
}

/// Makes `version_id` (a version of `route`) live: records a deployment and moves the route's pointers. Call inside
/// a write transaction.
pub fn deploy(
    conn: &mut AnyConnection,
    route: &RouteRow,
    version_id: &str,
    comment: Option<String>,
    now: i64,
) -> Result<DeploymentRow, Error> {
    lock(conn, &route.id)?;
    let last: Option<i64> = rd::table
        .filter(rd::route_id.eq(&route.id))
        .select(diesel::dsl::max(rd::number))
        .first(conn)?;
    let row = DeploymentRow {
        id: uuid::Uuid::new_v4().to_string(),
        route_id: route.id.clone(),
        version_id: version_id.to_owned(),
        number: next_number(last),
        comment,
        created_at: now,
    };
    diesel::insert_into(rd::table)
        .values(row.clone())
        .execute(conn)?;
    diesel::update(routes::table.filter(routes::id.eq(&route.id)))
        .set((
            routes::version_id.eq(version_id),
            routes::deployment_id.eq(&row.id),
            routes::modified_at.eq(now.max(route.modified_at)),
        ))
        .execute(conn)?;
    Ok(row)
}

/// One version of a route (the route found by account and gateway first).
pub fn version(
    conn: &mut AnyConnection,
    route_id: &str,
    version_id: &str,
) -> Result<Option<VersionRow>, Error> {
    Ok(rv::table
        .filter(rv::route_id.eq(route_id))
        .filter(rv::id.eq(version_id))
        .first(conn)
        .optional()?)
}

/// A page of a route's versions, newest first, and the total.
pub fn versions(
    conn: &mut AnyConnection,
    route_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<VersionRow>, i64), Error> {
    let total = rv::table
        .filter(rv::route_id.eq(route_id))
        .count()
        .get_result(conn)?;
    let rows = rv::table
        .filter(rv::route_id.eq(route_id))
        .order(rv::number.desc())
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

/// A page of a route's deployments, newest first, and the total.
pub fn deployments(
    conn: &mut AnyConnection,
    route_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<DeploymentRow>, i64), Error> {
    let total = rd::table
        .filter(rd::route_id.eq(route_id))
        .count()
        .get_result(conn)?;
    let rows = rd::table
        .filter(rd::route_id.eq(route_id))
        .order(rd::number.desc())
        .offset(offset)
        .limit(limit)
        .load(conn)?;
    Ok((rows, total))
}

/// Deletes a route with its versions and deployments (the foreign keys cascade); false when there is none.
pub fn delete(
    conn: &mut AnyConnection,
    account_id: &str,
    gateway_id: &str,
    id: &str,
) -> Result<bool, Error> {
    Ok(diesel::delete(
        routes::table
            .filter(routes::account_id.eq(account_id))
            .filter(routes::gateway_id.eq(gateway_id))
            .filter(routes::id.eq(id)),
    )
    .execute(conn)?
        > 0)
}

/// The gateway's routes with their deployed elements, for its config document, sorted by name (byte order, the
/// same on both backends: the document is hashed).
pub fn deployed_entries(
    conn: &mut AnyConnection,
    key: &GatewayKey,
) -> Result<Vec<RouteEntry>, Error> {
    let rows: Vec<RouteRow> = routes::table
        .filter(routes::account_id.eq(&key.account_id))
        .filter(routes::gateway_id.eq(&key.gateway_id))
        .load(conn)?;
    let mut entries = live(conn, rows)?
        .into_iter()
        .map(|l| {
            let elements = serde_json::from_str(&l.version.elements).map_err(|e| {
                Error::Internal(format!(
                    "route {} version {} holds invalid JSON: {e}",
                    l.route.id, l.version.id
                ))
            })?;
            Ok(RouteEntry {
                id: l.route.id,
                name: l.route.name,
                version_id: l.version.id,
                elements,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    entries.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(entries)
}
