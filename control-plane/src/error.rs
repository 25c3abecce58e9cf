//! The control plane's one error type, and the one place it becomes an HTTP response: the Cloudflare v4 envelope
//! `{"success":false,"errors":[{"code","message","path"?}],"messages":[],"result":null}`.
//!
//! Cloudflare publishes few numeric codes. Where it does (10000 authentication, 5403 duplicate gateway, 7001
//! validation, 6007 malformed JSON) we use them; the others are ours and are listed in [`codes`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Numeric codes of the v4 `errors` array.
pub mod codes {
    /// Missing, malformed, forged, expired or revoked token (401), or a token without the account or scope (403).
    pub const AUTHENTICATION: u32 = 10000;
    /// A body field is missing, of the wrong type or out of range; the error carries the field `path`.
    pub const VALIDATION: u32 = 7001;
    /// A query-string or path parameter is invalid.
    pub const BAD_PARAMETER: u32 = 7002;
    /// The object named in the path does not exist (in this account).
    pub const NOT_FOUND: u32 = 7003;
    /// No route for that URI.
    pub const NO_ROUTE: u32 = 7000;
    /// The method is not allowed on that route.
    pub const METHOD_NOT_ALLOWED: u32 = 7004;
    /// The body is not valid JSON.
    pub const MALFORMED_JSON: u32 = 6007;
    /// The body is larger than the configured cap.
    pub const BODY_TOO_LARGE: u32 = 6008;
    /// An object with that id already exists (Cloudflare's code for a duplicate gateway id).
    pub const ALREADY_EXISTS: u32 = 5403;
    /// Something on our side failed; the details are in the server log, not in the response.
    pub const INTERNAL: u32 = 1000;
    /// A dependency (the database) is unavailable right now; retrying may help.
    pub const UNAVAILABLE: u32 = 1001;
}

/// One field problem, with the path of the offending field as the zod-style `path` array Cloudflare returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub path: Vec<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(path: &[&str], message: impl Into<String>) -> Self {
        Self {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication error: {0}")]
    Unauthenticated(String),
    #[error("authentication error: {0}")]
    Forbidden(String),
    #[error("invalid request body")]
    Validation(Vec<FieldError>),
    #[error("malformed JSON in request body: {0}")]
    MalformedJson(String),
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    BadParameter(String),
    #[error("{0}")]
    NotFound(String),
    #[error("no route for that URI")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    AlreadyExists(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// The config bus (Redis) failed; publishing is retried by the reconciler, reads answer 503.
    #[error("config bus error: {0}")]
    Bus(#[from] gatehouse_bus::BusError),
}

#[derive(Serialize)]
struct ErrorItem<'a> {
    code: u32,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a [String]>,
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    success: bool,
    errors: Vec<ErrorItem<'a>>,
    messages: [(); 0],
    result: Option<()>,
}

impl Error {
    fn code(&self) -> u32 {
        match self {
            Error::Unauthenticated(_) | Error::Forbidden(_) => codes::AUTHENTICATION,
            Error::Validation(_) => codes::VALIDATION,
            Error::MalformedJson(_) => codes::MALFORMED_JSON,
            Error::BodyTooLarge { .. } => codes::BODY_TOO_LARGE,
            Error::BadParameter(_) => codes::BAD_PARAMETER,
            Error::NotFound(_) => codes::NOT_FOUND,
            Error::NoRoute => codes::NO_ROUTE,
            Error::MethodNotAllowed => codes::METHOD_NOT_ALLOWED,
            Error::AlreadyExists(_) => codes::ALREADY_EXISTS,
            Error::Unavailable(_) | Error::Bus(_) => codes::UNAVAILABLE,
            Error::Config(_) | Error::Internal(_) | Error::Database(_) => codes::INTERNAL,
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Validation(_) | Error::MalformedJson(_) | Error::BadParameter(_) => {
                StatusCode::BAD_REQUEST
            }
            // Cloudflare answers a duplicate gateway id with 400, not 409: the SDKs retry 409.
            Error::AlreadyExists(_) => StatusCode::BAD_REQUEST,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::NotFound(_) | Error::NoRoute => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Unavailable(_) | Error::Bus(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config(_) | Error::Internal(_) | Error::Database(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let code = self.code();
        // Internal details go to the log with their cause; the client gets a generic message.
        let generic;
        let message = match self {
            Error::Config(_) | Error::Internal(_) | Error::Database(_) => {
                tracing::error!(error = %self, "request failed");
                generic = "internal error".to_owned();
                &generic
            }
            Error::Unavailable(_) | Error::Bus(_) => {
                tracing::warn!(error = %self, "dependency unavailable");
                generic = "service temporarily unavailable".to_owned();
                &generic
            }
            _ => {
                generic = self.to_string();
                &generic
            }
        };
        let errors = match self {
            Error::Validation(fields) => fields
                .iter()
                .map(|f| ErrorItem {
                    code,
                    message: &f.message,
                    path: Some(&f.path),
                })
                .collect(),
            _ => vec![ErrorItem {
                code,
                message,
                path: None,
            }],
        };
        HttpResponse::build(status).json(ErrorEnvelope {
            success: false,
            errors,
            messages: [],
            result: None,
        })
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Self {
        Error::Unavailable(format!("database pool: {e}"))
    }
}
