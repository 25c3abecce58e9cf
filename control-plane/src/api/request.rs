//! Reading requests: the authenticated caller, query parameters and a size-capped body, each failing into the
//! crate's [`Error`] so that every bad request gets the v4 envelope.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use gatehouse_shared::ids::is_valid_account_id;
use gatehouse_shared::token::{Scope, TokenClaims, bearer_token};

use super::{AppState, State};
use crate::error::Error;

/// The verified caller of a request: a valid, unexpired, unrevoked token.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenClaims);

impl Caller {
    /// Checks that the token may act on `account_id` with `scope`, and that the account id is well formed.
    pub fn authorize(&self, account_id: &str, scope: Scope) -> Result<(), Error> {
        if !self.0.allows_account(account_id) {
            return Err(Error::Forbidden(format!(
                "the token is not valid for account '{account_id}'"
            )));
        }
        if !self.0.has_scope(scope) {
            return Err(Error::Forbidden(format!(
                "the token lacks the '{scope}' scope"
            )));
        }
        if !is_valid_account_id(account_id) {
            return Err(Error::BadParameter(format!(
                "invalid account id '{account_id}'"
            )));
        }
        Ok(())
    }

    /// Checks an operator scope that is not tied to an account.
    pub fn authorize_operator(&self) -> Result<(), Error> {
        if self.0.has_scope(Scope::Admin) {
            Ok(())
        } else {
            Err(Error::Forbidden("the token lacks the 'admin' scope".into()))
        }
    }
}

impl FromRequest for Caller {
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<State>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_owned));
        Box::pin(async move {
            let state: web::Data<AppState> = state
                .ok_or_else(|| Error::Internal("application state is not configured".into()))?;
            let value = match header {
                None => {
                    return Err(Error::Unauthenticated(
                        "missing 'Authorization: Bearer <token>' header".into(),
                    ));
                }
                Some(Err(_)) => {
                    return Err(Error::Unauthenticated(
                        "the Authorization header is not valid text".into(),
                    ));
                }
                Some(Ok(v)) => v,
            };
            let token = bearer_token(&value).ok_or_else(|| {
                Error::Unauthenticated("expected 'Authorization: Bearer <token>'".into())
            })?;
            state
                .keyring
                .authenticate(&state.db, token)
                .await
                .map(Caller)
        })
    }
}

/// The query string as ordered pairs; repeated keys stay repeated (the SDKs encode arrays that way).
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, Error> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| Error::BadParameter(format!("the query string is malformed: {e}")))
}

/// The last value of a query parameter.
pub fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `page` and `per_page`, with their bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: i64,
    pub per_page: i64,
}

impl Paging {
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }

    /// Reads `page` (≥1, default 1) and `per_page` (`min..=max`, default 20).
    pub fn from_query(
        pairs: &[(String, String)],
        min_per_page: i64,
        max_per_page: i64,
    ) -> Result<Self, Error> {
        let int = |name: &str, default: i64, min: i64, max: i64| -> Result<i64, Error> {
            match query_value(pairs, name) {
                None | Some("") => Ok(default),
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(Error::BadParameter(format!(
                        "{name} must be an integer from {min} to {max}, got '{v}'"
                    ))),
                },
            }
        };
        Ok(Self {
            page: int("page", 1, 1, 1_000_000_000)?,
            per_page: int("per_page", 20, min_per_page, max_per_page)?,
        })
    }
}

/// Reads the whole body, refusing more than `limit` bytes (checked against `Content-Length` first, then while
/// reading, since a chunked body has no length).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, Error> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::BodyTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| Error::BadParameter(format!("reading the request body failed: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(Error::BodyTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
