//! The base of the OpenAPI document: info, the bearer security scheme and tags. Paths and schemas are collected
//! from the handlers' `#[utoipa::path]` attributes when routes are registered.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Server};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/client/v4/openapi.json";

pub fn base_document() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Gatehouse management API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Cloudflare v4-compatible AI Gateway management API. Point Cloudflare's SDKs or Terraform \
                     provider at http://HOST:PORT/client/v4 with a Gatehouse token.",
                ))
                .build(),
        )
        .servers(Some(vec![Server::new("/")]))
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
                )
                .build(),
        ))
        .build()
}
