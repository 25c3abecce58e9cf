//! The provider table: every provider slug the data plane serves, where its API lives and how it takes a credential.
//!
//! This is data in one place (spec §2.2). The management API uses it to validate slugs (gateway URLs, provider
//! configs); the data plane uses it to route. `{placeholders}` in a base are filled from the request path by the
//! data plane (Azure resource and deployment, Bedrock and Vertex region, the Workers AI account).

/// How a provider expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// `Authorization: Token <key>`.
    Token,
    /// `Authorization: Key <key>` (fal).
    Key,
    /// The key in a header of its own, as it is.
    Header(&'static str),
    /// The client signs the request itself (AWS SigV4); the gateway passes it through.
    ClientSigned,
}

/// How the path after the provider slug is joined to the upstream base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRule {
    /// Appended as it is.
    Verbatim,
    /// The base already ends in `/v1`; a leading `v1/` that OpenAI-style clients add is dropped, so
    /// `/openai/v1/chat/completions` and `/openai/chat/completions` reach the same upstream path (spec §2.2).
    DropLeadingV1,
    /// The upstream wants `/v1/…`; it is added when the client left it out (OpenRouter accepts both forms).
    EnsureLeadingV1,
}

/// One row of the provider table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderSpec {
    pub slug: &'static str,
    /// What the path after the slug is appended to.
    pub upstream_base: &'static str,
    pub credential: CredentialStyle,
    pub path_rule: PathRule,
}

const fn p(
    slug: &'static str,
    upstream_base: &'static str,
    credential: CredentialStyle,
) -> ProviderSpec {
    let bytes = upstream_base.as_bytes();
    let n = bytes.len();
    // A base ending in `/v1` drops a duplicate leading `v1/` from the client's path.
    let path_rule =
        if n >= 3 && bytes[n - 3] == b'/' && bytes[n - 2] == b'v' && bytes[n - 1] == b'1' {
            PathRule::DropLeadingV1
        } else {
            PathRule::Verbatim
        };
    ProviderSpec {
        slug,
        upstream_base,
        credential,
        path_rule,
    }
}

const fn with_rule(spec: ProviderSpec, path_rule: PathRule) -> ProviderSpec {
    ProviderSpec { path_rule, ..spec }
}

use CredentialStyle::*;

/// Built-in providers, in the order of spec §2.2.
pub const PROVIDERS: &[ProviderSpec] = &[
    p("openai", "https://api.openai.com/v1", Bearer),
    p(
        "anthropic",
        "https://api.anthropic.com",
        Header("x-api-key"),
    ),
    p(
        "azure-openai",
        "https://{resource}.openai.azure.com/openai/deployments/{deployment}",
        Header("api-key"),
    ),
    p(
        "aws-bedrock",
        "https://bedrock-runtime.{region}.amazonaws.com",
        ClientSigned,
    ),
    p(
        "google-ai-studio",
        "https://generativelanguage.googleapis.com",
        Header("x-goog-api-key"),
    ),
    p(
        "google-vertex-ai",
        "https://{region}-aiplatform.googleapis.com",
        Bearer,
    ),
    p(
        "workers-ai",
        "https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/run",
        Bearer,
    ),
    p("groq", "https://api.groq.com/openai/v1", Bearer),
    p("mistral", "https://api.mistral.ai", Bearer),
    p("cohere", "https://api.cohere.ai", Bearer),
    p("perplexity-ai", "https://api.perplexity.ai", Bearer),
    p("deepseek", "https://api.deepseek.com", Bearer),
    p("grok", "https://api.x.ai", Bearer),
    p("cerebras", "https://api.cerebras.ai/v1", Bearer),
    p(
        "huggingface",
        "https://api-inference.huggingface.co/models",
        Bearer,
    ),
    p("replicate", "https://api.replicate.com/v1", Token),
    with_rule(
        p("openrouter", "https://openrouter.ai/api", Bearer),
        PathRule::EnsureLeadingV1,
    ),
    p(
        "elevenlabs",
        "https://api.elevenlabs.io",
        Header("xi-api-key"),
    ),
    p("cartesia", "https://api.cartesia.ai", Header("x-api-key")),
    p("deepgram", "https://api.deepgram.com", Token),
    p("fal", "https://fal.run", Key),
    p("ideogram", "https://api.ideogram.ai", Header("api-key")),
    p("baseten", "https://inference.baseten.co", Bearer),
    p("parallel", "https://api.parallel.ai", Header("x-api-key")),
];

/// Slug prefix of account-level custom providers (`custom-{slug}`).
pub const CUSTOM_PROVIDER_PREFIX: &str = "custom-";

/// The OpenAI-compatible unified endpoint's pseudo-provider.
pub const COMPAT_PROVIDER: &str = "compat";

/// Looks up a built-in provider by slug.
pub fn provider(slug: &str) -> Option<&'static ProviderSpec> {
    PROVIDERS.iter().find(|p| p.slug == slug)
}

/// Whether `slug` names something the data plane can route: a built-in provider, `compat`, or a syntactically
/// valid `custom-{slug}` (whether that custom provider exists is decided against the account's config).
pub fn is_routable_slug(slug: &str) -> bool {
    provider(slug).is_some() || slug == COMPAT_PROVIDER || custom_slug(slug).is_some()
}

/// The custom provider slug inside `custom-{slug}`, when it is well formed (alphanumerics and hyphens).
pub fn custom_slug(slug: &str) -> Option<&str> {
    let inner = slug.strip_prefix(CUSTOM_PROVIDER_PREFIX)?;
    let ok = !inner.is_empty()
        && inner.len() <= 64
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !inner.starts_with('-')
        && !inner.ends_with('-');
    ok.then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = PROVIDERS.iter().map(|p| p.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), PROVIDERS.len());
    }

    #[test]
    fn bases_ending_in_v1_drop_a_duplicate_v1() {
        assert_eq!(
            provider("openai").unwrap().path_rule,
            PathRule::DropLeadingV1
        );
        assert_eq!(provider("groq").unwrap().path_rule, PathRule::DropLeadingV1);
        assert_eq!(provider("anthropic").unwrap().path_rule, PathRule::Verbatim);
        assert_eq!(
            provider("openrouter").unwrap().path_rule,
            PathRule::EnsureLeadingV1
        );
    }

    #[test]
    fn routable_slugs_cover_builtins_compat_and_custom() {
        for ok in [
            "openai",
            "anthropic",
            "aws-bedrock",
            "compat",
            "custom-my-llm",
            "custom-a1",
        ] {
            assert!(is_routable_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "OpenAI",
            "custom-",
            "custom--x",
            "custom-a/b",
            "unknown",
            "custom-x-",
        ] {
            assert!(!is_routable_slug(bad), "{bad}");
        }
    }
}
