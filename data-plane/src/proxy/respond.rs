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
    // An answer given before the request body was read leaves that body on the socket, and pingora would drain
    // all of it (whatever its size) before reusing the connection. Closing the connection instead is cheaper and
    // bounds what a client can make us read.
    if !session.is_body_done() {
        session.set_keepalive(None);
    }
    let mut response = ResponseHeader::build(status, Some(2))?;
    response.insert_header(header::CONTENT_TYPE, "application/json")?;
    response.insert_header(header::CONTENT_LENGTH, body.len())?;
    session
        .write_response_header(Box::new(response), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

/// Writes a gateway-made error as Cloudflare's `AiGatewayError` body.
pub(crate) async fn gateway_error(
    session: &mut Session,
    error: &AiGatewayError,
) -> pingora::Result<()> {
    json(session, error.status, error.body()).await
}
