//! The OpenAI-compatible endpoint, `/v1/{account}/{gateway}/compat/{operation}` (spec §2.1 form 2): the client's
//! OpenAI body → which provider and model (`model: "{provider}/{model}"`, split on the first `/`), and the step
//! that calls it. OpenAI-compatible providers get the client's bytes with only `model` rewritten; the other
//! families get their native request from their codec (`dialect/`), and the relay translates the answer back
//! (`proxy/translate.rs`).
//!
//! Errors: a malformed body or a parameter the provider cannot honour is a 400 in OpenAI's shape (the client is an
//! OpenAI SDK); an unknown provider prefix is Cloudflare's 400/2008 and a model without a prefix its 400/2005, as
//! spec §2.6 observes. Nothing is sent upstream for any of them.

use bytes::Bytes;
use gatehouse_bus::response_cache::CacheKey;
use gatehouse_shared::providers::{CredentialStyle, custom_slug, provider as provider_spec};
use http::StatusCode;
use pingora::http::RequestHeader;

use super::{Step, StepConfig, StepRequest};
use crate::dialect::bedrock::sigv4::BedrockAuth;
use crate::dialect::embeddings::{EmbeddingCodec, EncodingFormat};
use crate::dialect::{
    self, ChatCodec, ChatRequest, Encoded, ProviderError, Target, TranslateError,
};
use crate::error::{AiGatewayError, code};
use crate::proxy::phase::body::{RequestBody, RequestPeek};
use crate::proxy::phase::route::RoutePlan;
use crate::route::UpstreamTable;
use crate::snapshot::CompiledGateway;

/// What a compat request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `POST chat/completions`.
    Chat,
    /// `POST responses` (a Gatehouse extension: Cloudflare documents only chat completions on `/compat`).
    Responses,
    /// `POST embeddings`.
    Embeddings,
}

impl Operation {
    pub(crate) fn of(rest: &str) -> Option<Self> {
        match rest.trim_end_matches('/') {
            "chat/completions" | "v1/chat/completions" => Some(Operation::Chat),
            "responses" | "v1/responses" => Some(Operation::Responses),
            "embeddings" | "v1/embeddings" => Some(Operation::Embeddings),
            _ => None,
        }
    }
}

mod models;
pub(crate) mod routed;

pub(crate) use models::models_list;

/// The format the client reads its answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFormat {
    Chat,
    Responses,
}

/// What a translated answer is, and the codec that reads it.
pub(crate) enum Kind {
    /// A chat answer, whole or streamed, for Chat Completions or Responses clients.
    Chat(&'static dyn ChatCodec),
    /// An embeddings list: always whole, written in the client's `encoding_format`.
    Embeddings {
        codec: &'static dyn EmbeddingCodec,
        encoding: EncodingFormat,
    },
}

/// How the relay turns the provider's answer into the client's format.
pub(crate) struct Translation {
    pub kind: Kind,
    /// The chat client's format (`Chat` for embeddings, where it is not read).
    pub client: ClientFormat,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The model as the provider names it (the answer's `model` when the provider does not say).
    pub model: String,
    /// Responses clients: the request fields the answer repeats back.
    pub echo: dialect::responses::RequestEcho,
}

impl std::fmt::Debug for Translation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translation")
            .field("client", &self.client)
            .field("stream", &self.stream)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A provider family as the compat endpoint serves it.
#[derive(Clone, Copy)]
enum Family {
    /// Speaks OpenAI's API: the body passes with `model` rewritten; the path after the provider's base URL for
    /// chat completions and for embeddings.
    OpenAiCompatible {
        chat: &'static str,
        embeddings: &'static str,
    },
    /// Translated by the family's codecs (chat, embeddings); a provider may have only one of them. Workers AI has
    /// both: text generation and text embeddings on the run endpoint, `{account_id}` the gateway's account.
    Translated {
        chat: Option<&'static dyn ChatCodec>,
        embeddings: Option<&'static dyn EmbeddingCodec>,
    },
}

/// The compat prefix → the provider slug and how it is served. `perplexity` is the compat name of the native
/// slug `perplexity-ai` (spec §2.1).
fn family(prefix: &str) -> Option<(&str, Family)> {
    let openai = |chat, embeddings| Family::OpenAiCompatible { chat, embeddings };
    let found = match prefix {
        "openai" => ("openai", openai("chat/completions", "embeddings")),
        "groq" => ("groq", openai("chat/completions", "embeddings")),
        "mistral" => ("mistral", openai("v1/chat/completions", "v1/embeddings")),
        "deepseek" => ("deepseek", openai("chat/completions", "embeddings")),
        "grok" => ("grok", openai("v1/chat/completions", "v1/embeddings")),
        "cerebras" => ("cerebras", openai("chat/completions", "embeddings")),
        "perplexity" | "perplexity-ai" => {
            ("perplexity-ai", openai("chat/completions", "embeddings"))
        }
        "openrouter" => ("openrouter", openai("v1/chat/completions", "v1/embeddings")),
        "baseten" => ("baseten", openai("v1/chat/completions", "v1/embeddings")),
        other => {
            if custom_slug(other).is_some() {
                (other, openai("chat/completions", "embeddings"))
            } else {
                let chat = dialect::chat_codec(other);
                let embeddings = dialect::embeddings::codec(other);
                if chat.is_none() && embeddings.is_none() {
                    return None;
                }
                (other, Family::Translated { chat, embeddings })
            }
        }
    };
    Some(found)
}

/// An OpenAI-shaped 400 (or another status) for the client's SDK.
fn openai_error(e: TranslateError) -> AiGatewayError {
    AiGatewayError::openai(e.to_provider_error())
}

fn invalid(message: impl Into<String>, param: Option<&str>) -> AiGatewayError {
    openai_error(TranslateError::invalid(message, param.map(str::to_owned)))
}

/// A compat request's body, read once for all the steps built from it.
struct Parsed {
    /// Chat and Responses requests (embeddings pass as they are, with `model` rewritten).
    request: Option<ChatRequest>,
    /// The client's `model`.
    model: String,
    /// Responses clients: the fields the answer repeats back.
    echo: Option<dialect::responses::RequestEcho>,
}

impl Parsed {
    fn read(operation: Operation, body: &RequestBody) -> Result<Self, AiGatewayError> {
        Ok(match operation {
            Operation::Chat => {
                let request = parse_chat(&body.bytes)?;
                Parsed {
                    model: request.model.clone(),
                    request: Some(request),
                    echo: None,
                }
            }
            Operation::Responses => {
                let parsed = dialect::responses::parse(&body.bytes).map_err(openai_error)?;
                dialect::validate::chat(&parsed.request).map_err(openai_error)?;
                Parsed {
                    model: parsed.request.model.clone(),
                    request: Some(parsed.request),
                    echo: Some(parsed.echo),
                }
            }
            Operation::Embeddings => Parsed {
                model: model_of(body)?,
                request: None,
                echo: None,
            },
        })
    }
}

/// What every step of one compat request is built from.
#[derive(Clone, Copy)]
pub(crate) struct BuildContext<'a> {
    pub table: &'a UpstreamTable,
    pub gateway: &'a CompiledGateway,
    /// The client's header.
    pub client: &'a RequestHeader,
    pub account: &'a str,
    pub operation: Operation,
    /// The `Authorization` header carried the gateway's own token (then it is not a provider key and never
    /// forwarded).
    pub bearer_is_gateway_token: bool,
}

/// The steps of a compat request: one for the model it names (or its catalog entry), or, for a route
/// (`routed.rs`), one per model the route's walk chose, in fallback order, some of them built only when the attempt
/// loop needs them (`defer`).
pub(crate) fn build<'a>(
    cx: BuildContext<'a>,
    body: RequestBody,
    routed: Option<&RoutePlan>,
    defer: bool,
) -> Result<(Vec<Step>, Option<routed::Deferred<'a>>), AiGatewayError> {
    let parsed = Parsed::read(cx.operation, &body)?;
    match routed {
        None => {
            let resolved = resolve_model(&cx.gateway.settings, &parsed.model, cx.operation)?;
            Ok((vec![build_one(&cx, &body, &parsed, &resolved)?], None))
        }
        Some(plan) => routed::build(cx, parsed, body, plan, defer),
    }
}

/// The step that sends the parsed request to `resolved` (`{provider}/{model}`).
fn build_one(
    cx: &BuildContext<'_>,
    body: &RequestBody,
    parsed: &Parsed,
    resolved: &str,
) -> Result<Step, AiGatewayError> {
    let BuildContext {
        table,
        gateway,
        client,
        account,
        operation,
        bearer_is_gateway_token,
    } = *cx;
    let mut echo = parsed.echo.clone();
    let request = parsed.request.as_ref();
    let (prefix, model) = split_model(resolved)?;
    let (slug, family) = family(prefix).ok_or(AiGatewayError::INVALID_PROVIDER)?;
    let header = client_credential(client, slug, bearer_is_gateway_token)?;
    let config = StepConfig::default();
    let vertex = stored_location(gateway, slug);
    let target = |stream| Target {
        provider: slug,
        model,
        stream,
        project: vertex.as_ref().and_then(|v| v.project.as_deref()),
        region: vertex.as_ref().and_then(|v| v.region.as_deref()),
    };

    let (rest, query, upstream_body): (String, Option<&str>, Bytes) = match (
        family, operation, request,
    ) {
        (Family::OpenAiCompatible { chat, .. }, Operation::Chat, _) => {
            let bytes = dialect::openai::rewrite_model(&body.bytes, model)
                .ok_or_else(|| invalid("`model` must be a string", Some("model")))?;
            (chat.to_owned(), None, Bytes::from(bytes))
        }
        (Family::OpenAiCompatible { embeddings, .. }, Operation::Embeddings, _) => {
            let bytes = dialect::openai::rewrite_model(&body.bytes, model)
                .ok_or_else(|| invalid("`model` must be a string", Some("model")))?;
            (embeddings.to_owned(), None, Bytes::from(bytes))
        }
        (Family::OpenAiCompatible { .. }, Operation::Responses, _) if slug == "openai" => {
            let bytes = dialect::openai::rewrite_model(&body.bytes, model)
                .ok_or_else(|| invalid("`model` must be a string", Some("model")))?;
            ("responses".to_owned(), None, Bytes::from(bytes))
        }
        (Family::OpenAiCompatible { .. }, Operation::Responses, _) => {
            return Err(openai_error(TranslateError::unsupported(
                format!(
                    "the Responses API is not available for {slug} models through /compat yet; use /compat/chat/completions"
                ),
                Some("model".to_owned()),
            )));
        }
        (
            Family::Translated {
                embeddings: Some(codec),
                ..
            },
            Operation::Embeddings,
            _,
        ) => {
            let request = dialect::embeddings::parse(&body.bytes).map_err(openai_error)?;
            let encoded = codec
                .encode(&request, &target(false))
                .map_err(openai_error)?;
            let translation = Translation {
                kind: Kind::Embeddings {
                    codec,
                    encoding: request.encoding_format,
                },
                client: ClientFormat::Chat,
                stream: false,
                include_usage: false,
                model: model.to_owned(),
                echo: Default::default(),
            };
            return translated_step(
                table,
                gateway,
                client,
                account,
                slug,
                header,
                encoded,
                translation,
            );
        }
        (Family::Translated { .. }, Operation::Embeddings, _) => {
            return Err(openai_error(TranslateError::unsupported(
                format!("embeddings are not available for {slug} models through /compat"),
                Some("model".to_owned()),
            )));
        }
        (
            Family::Translated {
                chat: Some(codec), ..
            },
            op,
            Some(request),
        ) => {
            let encoded = codec
                .encode(request, &target(request.is_stream()))
                .map_err(openai_error)?;
            let translation = Translation {
                kind: Kind::Chat(codec),
                client: if op == Operation::Responses {
                    ClientFormat::Responses
                } else {
                    ClientFormat::Chat
                },
                stream: request.is_stream(),
                include_usage: request.include_usage(),
                model: model.to_owned(),
                echo: echo.take().unwrap_or_default(),
            };
            return translated_step(
                table,
                gateway,
                client,
                account,
                slug,
                header,
                encoded,
                translation,
            );
        }
        (Family::Translated { chat: None, .. }, _, _) => {
            return Err(openai_error(TranslateError::unsupported(
                format!(
                    "chat completions and the Responses API are not available for {slug} models through /compat; \
                     use the provider-native path"
                ),
                Some("model".to_owned()),
            )));
        }
        (Family::Translated { .. }, _, None) => return Err(AiGatewayError::INTERNAL),
    };
    let step = finish(
        table,
        gateway,
        &header,
        account,
        slug,
        &rest,
        query,
        upstream_body,
        &config,
        model,
    )?;
    Ok(Step {
        compat: true,
        ..step
    })
}

/// The step of a translated request: the codec's path, headers and body, Bedrock's region and credential, and the
/// translation the relay applies to the answer.
#[allow(clippy::too_many_arguments)]
fn translated_step(
    table: &UpstreamTable,
    gateway: &CompiledGateway,
    client: &RequestHeader,
    account: &str,
    slug: &str,
    header: RequestHeader,
    encoded: Encoded,
    translation: Translation,
) -> Result<Step, AiGatewayError> {
    let config = StepConfig::default();
    let model = translation.model.as_str();
    let (mut path, query) = match encoded.path.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (encoded.path, None),
    };
    let mut cloud_auth = None;
    let mut header = header;
    if slug == "aws-bedrock" {
        let (auth, region) = bedrock_auth(gateway, client, &header)?;
        // The route reads the region from the path, as in the provider-native form.
        path = format!("bedrock-runtime/{region}{path}");
        match auth {
            Some(BedrockAuth::SigV4 {
                credentials,
                region,
            }) => {
                header.remove_header(&http::header::AUTHORIZATION);
                cloud_auth = Some(super::CloudAuth::Bedrock {
                    credentials,
                    region,
                });
            }
            Some(BedrockAuth::ApiKey(key)) => {
                header
                    .insert_header(http::header::AUTHORIZATION, format!("Bearer {key}"))
                    .map_err(|_| {
                        invalid(
                            "the stored Bedrock API key is not a valid header value",
                            None,
                        )
                    })?;
            }
            None => {}
        }
    }
    for (name, value) in &encoded.headers {
        header
            .insert_header(*name, value.as_str())
            .map_err(|_| AiGatewayError::INTERNAL)?;
    }
    // The codec wrote JSON, whatever the client labelled its body (and SigV4 signs this header).
    header
        .insert_header(http::header::CONTENT_TYPE, "application/json")
        .map_err(|_| AiGatewayError::INTERNAL)?;
    // The relay reads the answer to translate it, so it must arrive uncompressed.
    header
        .insert_header(http::header::ACCEPT_ENCODING, "identity")
        .map_err(|_| AiGatewayError::INTERNAL)?;
    let mut step = finish(
        table,
        gateway,
        &header,
        account,
        slug,
        path.trim_start_matches('/'),
        query.as_deref(),
        Bytes::from(encoded.body),
        &config,
        model,
    )?;
    if let Some(plan) = step.cache.as_mut() {
        plan.key = keyed_by_client_format(&plan.key, &translation);
    }
    Ok(Step {
        translation: Some(Box::new(translation)),
        compat: true,
        cloud_auth: cloud_auth.or(step.cloud_auth),
        ..step
    })
}

/// A translated step's cache key also names the format the client reads: the provider's body is the same for a
/// chat and a Responses client, or for float and base64 embeddings, and a cached answer is the client's format.
fn keyed_by_client_format(key: &CacheKey, translation: &Translation) -> CacheKey {
    use sha2::{Digest, Sha256};
    let format: &[u8] = match (&translation.kind, translation.client) {
        (Kind::Chat(_), ClientFormat::Chat) => b"chat",
        (Kind::Chat(_), ClientFormat::Responses) => b"responses",
        (Kind::Embeddings { encoding, .. }, _) => match encoding {
            EncodingFormat::Float => b"embeddings-float",
            EncodingFormat::Base64 => b"embeddings-base64",
        },
    };
    let mut h = Sha256::new();
    h.update(key.0);
    h.update(format);
    CacheKey(h.finalize().into())
}

#[allow(clippy::too_many_arguments)]
fn finish(
    table: &UpstreamTable,
    gateway: &CompiledGateway,
    header: &RequestHeader,
    account: &str,
    slug: &str,
    rest: &str,
    query: Option<&str>,
    body: Bytes,
    config: &StepConfig,
    model: &str,
) -> Result<Step, AiGatewayError> {
    let peek = RequestPeek {
        model: Some(model.to_owned()),
        stream: RequestPeek::of(&body).stream,
    };
    super::build(
        table,
        gateway,
        StepRequest {
            provider: slug,
            rest,
            query,
            account,
            client: header,
            step_headers: &[],
            method: Some(http::Method::POST),
            body,
            peek,
            config,
        },
    )
}

/// Parses and checks a chat request: what OpenAI itself would refuse is refused here, before any provider call.
fn parse_chat(bytes: &[u8]) -> Result<ChatRequest, AiGatewayError> {
    let request: ChatRequest = serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "the request body is not valid JSON"
        } else {
            "the request body does not match the chat completions schema"
        };
        invalid(format!("{what}: {e}"), None)
    })?;
    dialect::validate::chat(&request).map_err(openai_error)?;
    Ok(request)
}

/// The `model` of a body the gateway does not otherwise parse (embeddings).
fn model_of(body: &RequestBody) -> Result<String, AiGatewayError> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body.bytes).is_err() {
        return Err(invalid("the request body is not valid JSON", None));
    }
    body.peek
        .model
        .clone()
        .ok_or_else(|| invalid("you must provide a model parameter", Some("model")))
}

/// The `{provider}/{model}` a client's `model` stands for: itself when it has a prefix, else the gateway's catalog
/// entry of that exact name (issue 13 item 5). With a catalog, a plain name it does not list, an entry of the
/// other type (a chat model on `/embeddings`), or a global model on a `regional_only` gateway is a 404 "No matching
/// route found"; without one a plain name is Cloudflare's 400/2005.
fn resolve_model(
    settings: &gatehouse_shared::gateway::GatewaySettings,
    model: &str,
    operation: Operation,
) -> Result<String, AiGatewayError> {
    use gatehouse_shared::gateway::{CatalogModelLocation, CatalogModelType};

    let catalog = settings.models.as_deref().unwrap_or(&[]);
    if model.contains('/') || catalog.is_empty() {
        return Ok(model.to_owned());
    }
    let wanted = match operation {
        Operation::Chat | Operation::Responses => CatalogModelType::Chat,
        Operation::Embeddings => CatalogModelType::Embedding,
    };
    let regional_only = settings.regional_only.unwrap_or(false);
    catalog
        .iter()
        .find(|m| {
            m.name == model
                && m.model_type == wanted
                && !(regional_only && m.location == CatalogModelLocation::Global)
        })
        .map(|m| m.target.clone())
        .ok_or_else(|| no_route(model))
}

/// The catalog's refusal, in OpenAI's shape (the client is an OpenAI SDK).
fn no_route(model: &str) -> AiGatewayError {
    AiGatewayError::openai(ProviderError {
        code: Some("model_not_found".to_owned()),
        param: Some("model".to_owned()),
        ..ProviderError::new(404, format!("No matching route found for model {model:?}"))
    })
}

/// `{provider}/{model}` split on the first `/`. A model without a prefix is Cloudflare's 400/2005.
fn split_model(model: &str) -> Result<(&str, &str), AiGatewayError> {
    match model.split_once('/') {
        Some((prefix, rest)) if !prefix.is_empty() && !rest.is_empty() => Ok((prefix, rest)),
        _ => Err(AiGatewayError {
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "Failed to get response from provider: model {model:?} names no provider; use \"{{provider}}/{{model}}\", e.g. \"openai/gpt-4o-mini\""
            )
            .into(),
            ..AiGatewayError::fixed(StatusCode::BAD_REQUEST, code::PROVIDER_FAILED, "")
        }),
    }
}

/// The client's header as the provider needs it: an OpenAI SDK sends its key as `Authorization: Bearer`, which
/// is re-sent in the provider's own header (`x-api-key`, `x-goog-api-key`); a gateway token in `Authorization`
/// is removed so the stored key is used (`plan/credentials.rs` then injects it).
fn client_credential(
    client: &RequestHeader,
    slug: &str,
    bearer_is_gateway_token: bool,
) -> Result<RequestHeader, AiGatewayError> {
    let mut header = client.clone();
    let authorization = header.headers.get(http::header::AUTHORIZATION).cloned();
    let Some(value) = authorization else {
        return Ok(header);
    };
    if bearer_is_gateway_token {
        header.remove_header(&http::header::AUTHORIZATION);
        return Ok(header);
    }
    let style = provider_spec(slug).map(|p| p.credential);
    if let Some(CredentialStyle::Header(name)) = style {
        let key = value
            .to_str()
            .ok()
            .and_then(gatehouse_shared::token::bearer_token)
            .map(str::to_owned);
        header.remove_header(&http::header::AUTHORIZATION);
        if let Some(key) = key {
            header
                .insert_header(name, key)
                .map_err(|_| invalid("the Authorization header is not a valid key", None))?;
        }
    }
    Ok(header)
}

/// Bedrock's credential and region. A key the client sent (`Authorization: Bearer`, a Bedrock API key) is used
/// as it is; otherwise the stored key named by `cf-aig-byok-alias`, or the default one: a JSON key pair
/// `{accessKeyId, secretAccessKey, region, sessionToken?}` to sign with, or a Bedrock API key. The region comes
/// from the stored JSON; without one it is `us-east-1` (our choice, Bedrock's oldest region).
fn bedrock_auth(
    gateway: &CompiledGateway,
    client: &RequestHeader,
    header: &RequestHeader,
) -> Result<(Option<BedrockAuth>, String), AiGatewayError> {
    const DEFAULT_REGION: &str = "us-east-1";
    let keys = gateway.provider_keys.get("aws-bedrock");
    let alias = client
        .headers
        .get(crate::proxy::controls::BYOK_ALIAS)
        .and_then(|v| v.to_str().ok());
    let stored = super::credentials::stored("aws-bedrock", keys, alias)?;
    let stored = stored
        .map(|s| BedrockAuth::parse(&s.secret))
        .transpose()
        .map_err(|e| invalid(format!("the stored aws-bedrock key is unusable: {e}"), None))?;
    let region = match &stored {
        Some(BedrockAuth::SigV4 { region, .. }) => region.clone(),
        _ => DEFAULT_REGION.to_owned(),
    };
    if header.headers.contains_key(http::header::AUTHORIZATION) && alias.is_none() {
        return Ok((None, region));
    }
    Ok((stored, region))
}

/// Vertex AI's project and region, read from the stored service-account JSON (spec §3.14).
struct StoredLocation {
    project: Option<String>,
    region: Option<String>,
}

fn stored_location(gateway: &CompiledGateway, slug: &str) -> Option<StoredLocation> {
    if slug != "google-vertex-ai" {
        return None;
    }
    let secret = gateway.provider_keys.get(slug)?.default.as_ref()?;
    let (project, region) = vertex_location(&secret.secret)?;
    Some(StoredLocation {
        project: Some(project),
        region: Some(region),
    })
}

fn vertex_location(secret: &str) -> Option<(String, String)> {
    let account = dialect::vertex_auth::ServiceAccount::parse(secret).ok()?;
    let region = account
        .region
        .clone()
        .unwrap_or_else(|| "global".to_owned());
    Some((account.project_id, region))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_split_on_the_first_slash() {
        assert_eq!(
            split_model("google-vertex-ai/google/gemini-2.5-pro").unwrap(),
            ("google-vertex-ai", "google/gemini-2.5-pro")
        );
        assert_eq!(
            split_model("aws-bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0").unwrap(),
            ("aws-bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0")
        );
        for bare in ["gpt-4o", "openai/", "/gpt-4o", ""] {
            let e = split_model(bare).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, code::PROVIDER_FAILED),
                "{bare}"
            );
        }
    }

    #[test]
    fn operations_are_the_four_openai_paths() {
        assert_eq!(Operation::of("chat/completions"), Some(Operation::Chat));
        assert_eq!(Operation::of("responses"), Some(Operation::Responses));
        assert_eq!(Operation::of("embeddings/"), Some(Operation::Embeddings));
        assert_eq!(Operation::of("completions"), None);
    }
}
