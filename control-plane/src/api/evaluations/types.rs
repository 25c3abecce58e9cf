//! `GET …/ai-gateway/evaluation-types` (spec §1.3): the built-in evaluators, from `crate::evaluations::EVALUATORS`
//! (code, not a table), paged and ordered as the SDK asks.

use actix_web::{HttpRequest, HttpResponse, get, web};
use gatehouse_shared::token::Scope;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::{self, Envelope, ErrorEnvelope, ResultInfo, rfc3339};
use crate::api::request::{Caller, Paging, query_pairs, query_value};
use crate::error::Error;
use crate::evaluations::{EVALUATORS, EVALUATORS_SINCE_MS, Evaluator};

/// An evaluator.
#[derive(Debug, Serialize, ToSchema)]
pub struct EvaluationType {
    /// `cost`, `speed` or `performance`: the ids `evaluation_type_ids` takes.
    pub id: String,
    pub name: String,
    pub description: String,
    /// The same as the id.
    #[serde(rename = "type")]
    pub kind: String,
    pub enable: bool,
    pub mandatory: bool,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

impl From<&Evaluator> for EvaluationType {
    fn from(e: &Evaluator) -> Self {
        Self {
            id: e.id.into(),
            name: e.name.into(),
            description: e.description.into(),
            kind: e.kind.into(),
            enable: true,
            mandatory: e.mandatory,
            created_at: rfc3339(EVALUATORS_SINCE_MS),
            modified_at: rfc3339(EVALUATORS_SINCE_MS),
        }
    }
}

/// The fields `order_by` may name.
const ORDER_FIELDS: &[&str] = &[
    "mandatory",
    "id",
    "name",
    "type",
    "enable",
    "created_at",
    "modified_at",
];

/// The evaluators in the order asked for; ties keep the built-in order.
fn ordered(order_by: &str, descending: bool) -> Vec<EvaluationType> {
    let mut all: Vec<EvaluationType> = EVALUATORS.iter().map(EvaluationType::from).collect();
    let key = |t: &EvaluationType| -> String {
        match order_by {
            "id" => t.id.clone(),
            "name" => t.name.clone(),
            "type" => t.kind.clone(),
            "enable" => t.enable.to_string(),
            "mandatory" => t.mandatory.to_string(),
            _ => t.created_at.clone(),
        }
    };
    // A stable sort, so equal keys (every evaluator's `mandatory`) keep the built-in order either way.
    all.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if descending { o.reverse() } else { o }
    });
    all
}

/// List the evaluators an evaluation may use.
#[utoipa::path(
    tag = "evaluations", operation_id = "aig-config-list-evaluators",
    params(
        ("account_id" = String, Path, description = "Account id"),
        ("page" = Option<i64>, Query, description = "Page number, from 1; a page past the end is empty"),
        ("per_page" = Option<i64>, Query, description = "Items per page, 5..50 (default 20)"),
        ("order_by" = Option<String>, Query, description = "mandatory (default), id, name, type, enable, created_at or modified_at"),
        ("order_by_direction" = Option<String>, Query, description = "asc (default) or desc"),
    ),
    responses((status = 200, body = Envelope<Vec<EvaluationType>>), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/accounts/{account_id}/ai-gateway/evaluation-types")]
pub(super) async fn list_evaluation_types(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let account_id = path.into_inner();
    caller.authorize(&account_id, Scope::AiGatewayRead)?;
    let pairs = query_pairs(&req)?;
    let paging = Paging::from_query(&pairs, 5, 50)?;
    let order_by = match query_value(&pairs, "order_by") {
        None | Some("") => "mandatory",
        Some(o) if ORDER_FIELDS.contains(&o) => o,
        Some(other) => {
            return Err(Error::BadParameter(format!(
                "order_by must be one of {}; got '{other}'",
                ORDER_FIELDS.join(", ")
            )));
        }
    };
    let descending = match query_value(&pairs, "order_by_direction") {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(Error::BadParameter(format!(
                "order_by_direction must be asc or desc, got '{other}'"
            )));
        }
    };
    let all = ordered(order_by, descending);
    let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
    let page: Vec<EvaluationType> = all
        .into_iter()
        .skip(usize::try_from(paging.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.per_page).unwrap_or(0))
        .collect();
    let info = ResultInfo::new(paging.page, paging.per_page, page.len(), total);
    Ok(envelope::ok_page(page, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_order_is_the_built_in_one_and_desc_reverses_a_real_key() {
        let ids = |v: Vec<EvaluationType>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(ordered("mandatory", false)),
            ["cost", "speed", "performance"]
        );
        assert_eq!(ids(ordered("id", true)), ["speed", "performance", "cost"]);
        assert_eq!(
            ids(ordered("name", false)),
            ["cost", "performance", "speed"]
        );
    }
}
