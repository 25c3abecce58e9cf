//! Google Gemini's `generateContent` / `streamGenerateContent` (`notes/translation.md` §5, §8) for both hosts that
//! serve it: Google AI Studio (`google-ai-studio`, an API key in `x-goog-api-key`) and Vertex AI
//! (`google-vertex-ai`, an OAuth token minted from the stored service-account JSON, see [`super::vertex_auth`]).
//! The body is the same on both; only the path differs, and the caller sets the credential header.
//!
//! Choices made here, so the next reader need not rediscover them:
//! - Tool and response schemas go as `parametersJsonSchema` / `responseJsonSchema` (JSON Schema, which accepts
//!   `additionalProperties` and type arrays) instead of the legacy OpenAPI-subset `parameters` /
//!   `responseSchema`, which 400 on both (prism-php #974). Only the keywords the JSON Schema mode still rejects
//!   are removed ([`schema`]).
//! - `n > 1` is refused: `candidateCount` would work upstream, but the unified answer carries one choice, so the
//!   extra candidates would be silently lost. `logprobs` is refused for the same reason (nowhere to put them).
//! - Images: data URLs become `inlineData`, `gs://` URIs `fileData`; `https://` URLs are refused with a clear
//!   message (Gemini does not fetch them and the gateway does not download in this step).
//! - Gemini 3's thought signatures ride on the tool-call id (`<id>__thought__<signature>`, LiteLLM's convention)
//!   so a stateless client replays them without knowing (§5.4).

mod error;
/// An optional string borrowed from the body when it has no escapes (serde's `Option<Cow>` would always copy).
pub(crate) fn opt_cow<'de: 'a, 'a, D>(d: D) -> Result<Option<std::borrow::Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);
    Ok(<Option<Borrowed<'a>> as serde::Deserialize>::deserialize(d)?.map(|b| b.0))
}

#[cfg(test)]
mod mock_tests;
mod request;
mod response;
mod schema;
mod stream;
mod thinking;

use super::chat::{ChatRequest, ChatResponse, ProviderError};
use super::codec::{ChatCodec, Encoded, StreamDecoder, Target, TranslateError};

/// The Gemini codec for Google AI Studio and Vertex AI (`Target::provider` decides the path).
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiCodec;

/// The provider slug of Google AI Studio.
pub const AI_STUDIO: &str = "google-ai-studio";
/// The provider slug of Vertex AI.
pub const VERTEX: &str = "google-vertex-ai";

impl ChatCodec for GeminiCodec {
    fn encode(
        &self,
        request: &ChatRequest,
        target: &Target<'_>,
    ) -> Result<Encoded, TranslateError> {
        let path = path(target)?;
        let model = path.model;
        let body = request::encode(request, model)?;
        Ok(Encoded {
            path: path.path,
            headers: Vec::new(),
            body,
        })
    }

    fn decode(&self, body: &[u8]) -> Result<ChatResponse, TranslateError> {
        response::decode(body)
    }

    fn stream_decoder(&self) -> Box<dyn StreamDecoder> {
        Box::new(stream::GeminiStreamDecoder::default())
    }

    fn decode_error(&self, status: u16, body: &[u8]) -> ProviderError {
        error::decode_error(status, body)
    }
}

/// The Vertex AI base URL for a region: `https://{region}-aiplatform.googleapis.com`, or the global endpoint's
/// host for `global`. The codec's paths are appended to it.
pub fn vertex_base_url(region: &str) -> String {
    if region == "global" {
        "https://aiplatform.googleapis.com".to_owned()
    } else {
        format!("https://{region}-aiplatform.googleapis.com")
    }
}

/// Joins a tool-call id and the Gemini 3 thought signature of its `functionCall` part (LiteLLM's convention, so
/// ids minted by either gateway round-trip the same way).
const SIGNATURE_SEPARATOR: &str = "__thought__";

/// A resolved path and the bare model name (without publisher), which picks the thinking settings.
struct ResolvedPath<'a> {
    path: String,
    model: &'a str,
}

fn method(stream: bool) -> &'static str {
    if stream {
        ":streamGenerateContent?alt=sse"
    } else {
        ":generateContent"
    }
}

fn path<'a>(target: &Target<'a>) -> Result<ResolvedPath<'a>, TranslateError> {
    match target.provider {
        AI_STUDIO => {
            // Clients sometimes write the resource name (`models/gemini-2.5-flash`).
            let model = target.model.strip_prefix("models/").unwrap_or(target.model);
            check_segment("model", model)?;
            Ok(ResolvedPath {
                path: format!("/v1beta/models/{model}{}", method(target.stream)),
                model,
            })
        }
        VERTEX => vertex_path(target),
        other => Err(TranslateError::invalid(
            format!("the Gemini format does not serve provider {other:?}"),
            Some("model".to_owned()),
        )),
    }
}

fn vertex_path<'a>(target: &Target<'a>) -> Result<ResolvedPath<'a>, TranslateError> {
    let Some((publisher, model)) = target.model.split_once('/') else {
        return Err(TranslateError::invalid(
            format!(
                "Vertex AI models are named {{publisher}}/{{model}}, e.g. google-vertex-ai/google/gemini-2.5-pro; \
                 got {:?}",
                target.model
            ),
            Some("model".to_owned()),
        ));
    };
    if publisher != "google" {
        return Err(TranslateError::unsupported(
            format!(
                "Vertex AI publisher {publisher:?} is not supported on the OpenAI-compatible endpoint; only \
                 publisher \"google\" (Gemini models) is"
            ),
            Some("model".to_owned()),
        ));
    }
    check_segment("model", model)?;
    let stored = |what: &str, value: Option<&'a str>| {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            TranslateError::invalid(
                format!(
                    "the stored Vertex AI service-account JSON has no {what}; store the JSON with its \
                     project_id and an extra \"region\" key (e.g. \"us-central1\" or \"global\")"
                ),
                None,
            )
        })
    };
    let project = stored("project_id", target.project)?;
    let region = stored("region", target.region)?;
    check_segment("project_id", project)?;
    check_segment("region", region)?;
    Ok(ResolvedPath {
        path: format!(
            "/v1/projects/{project}/locations/{region}/publishers/google/models/{model}{}",
            method(target.stream)
        ),
        model,
    })
}

/// A path segment must not be able to change the path: no `/`, `?`, `#`, `:` or `%`, nothing outside visible
/// ASCII. Model ids, project ids and regions never need them.
fn check_segment(what: &str, value: &str) -> Result<(), TranslateError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(TranslateError::invalid(
            format!("{what} {value:?} is not a valid Gemini path segment"),
            (what == "model").then(|| "model".to_owned()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(provider: &'a str, model: &'a str, stream: bool) -> Target<'a> {
        Target {
            provider,
            model,
            stream,
            project: Some("my-proj"),
            region: Some("us-central1"),
        }
    }

    fn path_of(t: &Target<'_>) -> Result<String, TranslateError> {
        path(t).map(|p| p.path)
    }

    #[test]
    fn ai_studio_paths() {
        assert_eq!(
            path_of(&target(AI_STUDIO, "gemini-2.5-flash", false)).unwrap(),
            "/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            path_of(&target(AI_STUDIO, "models/gemini-2.5-flash", true)).unwrap(),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert!(path_of(&target(AI_STUDIO, "gemini/../x", false)).is_err());
        assert!(path_of(&target(AI_STUDIO, "gemini:x?y", false)).is_err());
    }

    #[test]
    fn vertex_paths_take_project_and_region_from_the_target() {
        assert_eq!(
            path_of(&target(VERTEX, "google/gemini-2.5-pro", false)).unwrap(),
            "/v1/projects/my-proj/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"
        );
        let global = Target {
            region: Some("global"),
            ..target(VERTEX, "google/gemini-2.5-pro", true)
        };
        assert_eq!(
            path_of(&global).unwrap(),
            "/v1/projects/my-proj/locations/global/publishers/google/models/gemini-2.5-pro\
             :streamGenerateContent?alt=sse"
        );
        assert_eq!(
            vertex_base_url("global"),
            "https://aiplatform.googleapis.com"
        );
        assert_eq!(
            vertex_base_url("europe-west4"),
            "https://europe-west4-aiplatform.googleapis.com"
        );
    }

    #[test]
    fn vertex_without_project_or_region_names_the_stored_json() {
        for t in [
            Target {
                project: None,
                ..target(VERTEX, "google/gemini-2.5-pro", false)
            },
            Target {
                region: None,
                ..target(VERTEX, "google/gemini-2.5-pro", false)
            },
        ] {
            let TranslateError::Invalid { message, .. } = path(&t).err().unwrap() else {
                panic!("expected Invalid");
            };
            assert!(message.contains("service-account JSON"), "{message}");
        }
    }

    #[test]
    fn vertex_refuses_other_publishers_and_bare_models() {
        let TranslateError::Unsupported { message, .. } =
            path(&target(VERTEX, "anthropic/claude-sonnet-4-5", false))
                .err()
                .unwrap()
        else {
            panic!("expected Unsupported");
        };
        assert!(message.contains("\"anthropic\""), "{message}");
        assert!(matches!(
            path(&target(VERTEX, "gemini-2.5-pro", false)),
            Err(TranslateError::Invalid { .. })
        ));
    }

    #[test]
    fn encode_sets_the_path_and_no_extra_headers() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model":"google-ai-studio/gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        let enc = GeminiCodec
            .encode(&req, &target(AI_STUDIO, "gemini-2.5-flash", false))
            .unwrap();
        assert_eq!(enc.path, "/v1beta/models/gemini-2.5-flash:generateContent");
        assert!(enc.headers.is_empty());
        let body: serde_json::Value = serde_json::from_slice(&enc.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"contents":[{"role":"user","parts":[{"text":"hi"}]}]})
        );
    }
}
