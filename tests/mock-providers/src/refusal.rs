//! The vocabulary of refusals every mock shares: whose wire format an error is in, its details, and a credential
//! refusal. A leaf: the error renderer (`errors.rs`), the credential checks (`auth.rs`) and the provider modules
//! all use it, and it uses none of them.

use http::HeaderMap;

/// Whose wire format a request is in; decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    OpenAi,
    Anthropic,
    /// AWS Bedrock: `{"message"}` with the exception in `x-amzn-ErrorType`.
    Bedrock,
    /// Cohere: `{"id", "message"}`.
    Cohere,
    /// Workers AI: Cloudflare's v4 envelope `{success:false, errors:[{code, message}]}`.
    WorkersAi,
}

/// The details of one error. Without a message, the provider's usual message, type and code for the status apply;
/// with one, `kind` still defaults by status but `code` is taken as given.
#[derive(Debug, Default)]
pub(crate) struct ErrorSpec<'a> {
    pub message: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub code: Option<&'a str>,
    pub param: Option<&'a str>,
}

/// Why a request was refused: status and error details, rendered by the caller in the provider's shape.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub code: Option<&'static str>,
}

impl Refusal {
    pub fn spec(&self) -> ErrorSpec<'_> {
        ErrorSpec {
            message: Some(&self.message),
            kind: Some(self.kind),
            code: self.code,
            param: None,
        }
    }
}

/// The key of `Authorization: Bearer <key>`, when there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
}
