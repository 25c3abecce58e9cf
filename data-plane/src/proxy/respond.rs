//! Writing complete responses that the gateway produces itself.

use bytes::Bytes;
use http::{StatusCode, header};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::AiGatewayError;

/// Writes a complete JSON response with an exact `content-length`.
pub(crate) async fn json(
    session: &mut Session,
    status: StatusCode,
    body: Bytes,
) -> pingora::Result<()> {
    json_with(session, status, body, &[]).await
}

/// [`json`] with extra headers.
pub(crate) async fn json_with(
    session: &mut Session,
    status: StatusCode,
    body: Bytes,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    // An answer given before the request body was read leaves that body on the socket, and pingora would drain
    // all of it (whatever its size) before reusing the connection. Closing the connection instead is cheaper and
    // bounds what a client can make us read.
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
    let mut response = ResponseHeader::build(status, Some(2 + extra.len()))?;
    response.insert_header(header::CONTENT_TYPE, "application/json")?;
    response.insert_header(header::CONTENT_LENGTH, body.len())?;
    for (name, value) in extra {
        response.insert_header(*name, *value)?;
    }
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

/// Writes a complete page (the front door) that varies with the request's `Accept` header.
pub(crate) async fn page(
    session: &mut Session,
    content_type: &'static str,
    body: Bytes,
) -> pingora::Result<()> {
    let mut response = ResponseHeader::build(StatusCode::OK, Some(3))?;
    response.insert_header(header::CONTENT_TYPE, content_type)?;
    response.insert_header(header::CONTENT_LENGTH, body.len())?;
    response.insert_header(header::VARY, "Accept")?;
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

/// Writes a gateway-made error as Cloudflare's `AiGatewayError` body (with `Retry-After` when the error has one).
pub(crate) async fn gateway_error(
    session: &mut Session,
    error: &AiGatewayError,
) -> pingora::Result<()> {
    gateway_error_with(session, error, &[]).await
}

/// [`gateway_error`] plus the request's own `cf-aig-*` headers (request and log ids).
pub(crate) async fn gateway_error_with(
    session: &mut Session,
    error: &AiGatewayError,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    match error.retry_after_secs {
        None => json_with(session, error.status, error.body(), extra).await,
        Some(secs) => {
            let secs = secs.to_string();
            let mut headers = Vec::with_capacity(extra.len() + 1);
            headers.extend_from_slice(extra);
            headers.push(("retry-after", secs.as_str()));
            json_with(session, error.status, error.body(), &headers).await
        }
    }
}
