//! The v4 success envelope: `{"success":true,"errors":[],"messages":[],"result":…,"result_info":…}`.

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::ToSchema;

/// Paging facts of a list response. Always present on lists, because Cloudflare's SDK paginators read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResultInfo {
    pub page: i64,
    pub per_page: i64,
    /// Items on this page.
    pub count: i64,
    /// Items across all pages.
    pub total_count: i64,
    pub total_pages: i64,
}

impl ResultInfo {
    pub fn new(page: i64, per_page: i64, count: usize, total_count: i64) -> Self {
        Self {
            page,
            per_page,
            count: i64::try_from(count).unwrap_or(i64::MAX),
            total_count,
            total_pages: (total_count + per_page - 1) / per_page,
        }
    }
}

/// The v4 envelope around a result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub errors: Vec<serde_json::Value>,
    pub messages: Vec<serde_json::Value>,
    pub result: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
}

/// The v4 error envelope, for documentation (rendering lives in `crate::error`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub errors: Vec<ErrorItem>,
    pub messages: Vec<serde_json::Value>,
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorItem {
    pub code: u32,
    pub message: String,
    /// The offending field, for validation errors.
    pub path: Option<Vec<String>>,
}

/// A stored epoch-millisecond time as the RFC 3339 text the API returns (`2026-11-22T06:30:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn ok<T: Serialize>(result: T) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        success: true,
        errors: vec![],
        messages: vec![],
        result,
        result_info: None,
    })
}

pub fn ok_page<T: Serialize>(result: Vec<T>, info: ResultInfo) -> HttpResponse {
    HttpResponse::Ok().json(Envelope {
        success: true,
        errors: vec![],
        messages: vec![],
        result,
        result_info: Some(info),
    })
}
