//! OpenAI's request shapes for tools and response formats, written by the codecs of providers whose APIs took
//! them over (Cohere v2, Workers AI): one definition, so the shapes cannot drift apart.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

/// `{type: "function", function: {...}}`.
#[derive(Serialize)]
pub(crate) struct OutTool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: OutFunction<'a>,
}

#[derive(Serialize)]
pub(crate) struct OutFunction<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub parameters: Cow<'a, Value>,
}

/// `response_format`: its `type` and, for schemas, the schema in the provider's place.
#[derive(Serialize)]
pub(crate) struct OutFormat<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<&'a Value>,
}
