//! Credential checks as the real APIs make them, with their real refusals.

use http::HeaderMap;

use crate::refusal::{Flavour, Refusal, bearer};

const OPENAI_NO_KEY: &str = "You didn't provide an API key. You need to provide your API key in an Authorization \
header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if \
you're accessing the API from your browser and are prompted for a username. You can obtain an API key from \
https://platform.openai.com/account/api-keys.";

/// Checks the credential `flavour`'s API requires; `expected` restricts the accepted key.
pub(crate) fn check(
    flavour: Flavour,
    headers: &HeaderMap,
    expected: Option<&str>,
) -> Result<(), Refusal> {
    match flavour {
        Flavour::OpenAi => check_openai(headers, expected),
        Flavour::Anthropic => check_anthropic(headers, expected),
        Flavour::Bedrock => crate::bedrock::check_auth(headers, expected),
        Flavour::Cohere => crate::cohere::check_auth(headers, expected),
        Flavour::WorkersAi => crate::workers_ai::check_auth(headers, expected),
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn check_openai(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let Some(key) = bearer(headers) else {
        return Err(Refusal {
            status: 401,
            message: OPENAI_NO_KEY.to_owned(),
            kind: "invalid_request_error",
            code: None,
        });
    };
    match expected {
        Some(want) if want != key => Err(Refusal {
            status: 401,
            message: format!(
                "Incorrect API key provided: {}. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
                mask(key)
            ),
            kind: "invalid_request_error",
            code: Some("invalid_api_key"),
        }),
        _ => Ok(()),
    }
}

/// Anthropic takes the key in `x-api-key`, or as `Authorization: Bearer`, which is what its Python SDK 2.x sends.
fn check_anthropic(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refusal> {
    let Some(key) = header(headers, "x-api-key").or_else(|| bearer(headers)) else {
        return Err(Refusal {
            status: 401,
            message: "x-api-key header is required".to_owned(),
            kind: "authentication_error",
            code: None,
        });
    };
    if expected.is_some_and(|want| want != key) {
        return Err(Refusal {
            status: 401,
            message: "invalid x-api-key".to_owned(),
            kind: "authentication_error",
            code: None,
        });
    }
    if header(headers, "anthropic-version").is_none() {
        return Err(Refusal {
            status: 400,
            message: "anthropic-version: header is required".to_owned(),
            kind: "invalid_request_error",
            code: None,
        });
    }
    Ok(())
}

/// OpenAI shows a refused key as its first 3 and last 4 characters; the mock does the same so a test can check that
/// a body carrying a key fragment is passed through without the full key ever being echoed.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn openai_needs_a_non_empty_bearer_key() {
        assert!(check_openai(&h(&[("authorization", "Bearer sk-1")]), None).is_ok());
        assert!(check_openai(&h(&[("authorization", "bearer sk-1")]), None).is_ok());
        for bad in [
            vec![],
            vec![("authorization", "Bearer ")],
            vec![("authorization", "Basic abc")],
        ] {
            let r = check_openai(&h(&bad), None).unwrap_err();
            assert_eq!((r.status, r.code), (401, None));
        }
        let wrong = check_openai(
            &h(&[("authorization", "Bearer sk-wrong-key-123")]),
            Some("sk-right"),
        )
        .unwrap_err();
        assert_eq!(wrong.code, Some("invalid_api_key"));
        assert!(
            wrong.message.contains("sk-*********-123"),
            "{}",
            wrong.message
        );
    }

    #[test]
    fn anthropic_needs_a_key_and_a_version() {
        let ok = h(&[("x-api-key", "k"), ("anthropic-version", "2023-06-01")]);
        assert!(check_anthropic(&ok, None).is_ok());
        let bearer = h(&[
            ("authorization", "Bearer k"),
            ("anthropic-version", "2023-06-01"),
        ]);
        assert!(check_anthropic(&bearer, None).is_ok());
        assert_eq!(
            check_anthropic(&h(&[("anthropic-version", "2023-06-01")]), None)
                .unwrap_err()
                .status,
            401
        );
        let no_version = check_anthropic(&h(&[("x-api-key", "k")]), None).unwrap_err();
        assert_eq!(
            (no_version.status, no_version.kind),
            (400, "invalid_request_error")
        );
        assert_eq!(
            check_anthropic(&ok, Some("other")).unwrap_err().message,
            "invalid x-api-key"
        );
    }
}
