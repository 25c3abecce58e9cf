//! Google's OAuth token endpoint for the service-account JWT-bearer grant (RFC 7523), as the gateway's Vertex AI
//! token exchange uses it. The form and the assertion's claims are checked; the signature is not (the mock does
//! not know the account's public key).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Response, StatusCode};
use serde_json::{Value, json};

use crate::body::{MockBody, json as json_response};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The lifetime of the minted tokens, in seconds.
const EXPIRES_IN: u64 = 3600;

/// Answers a token request: `{access_token: "ya29.mock-<id>", expires_in, token_type: "Bearer"}`, or OAuth's
/// error for a wrong grant.
pub(super) fn answer(body: &[u8], id: u64) -> Response<MockBody> {
    match check(body) {
        Ok(()) => json_response(
            StatusCode::OK,
            &json!({"access_token": format!("ya29.mock-{id}"), "expires_in": EXPIRES_IN, "token_type": "Bearer"}),
        ),
        Err((kind, description)) => oauth_error(400, kind, &description),
    }
}

/// A refusal (an injected failure, a bad control header) in OAuth's shape.
pub(super) fn error(status: u16, message: Option<&str>) -> Response<MockBody> {
    let kind = match status {
        400 | 401 | 403 => "invalid_grant",
        429 => "rate_limit_exceeded",
        _ => "internal_failure",
    };
    oauth_error(
        status,
        kind,
        message.unwrap_or("The mock was told to fail this token request."),
    )
}

fn oauth_error(status: u16, kind: &str, description: &str) -> Response<MockBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(
        status,
        &json!({"error": kind, "error_description": description}),
    )
}

/// The form's `grant_type` and `assertion`, and the assertion's claims.
fn check(body: &[u8]) -> Result<(), (&'static str, String)> {
    let body = std::str::from_utf8(body)
        .map_err(|_| ("invalid_request", "the body is not UTF-8".to_owned()))?;
    let field = |name: &str| {
        body.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| form_decode(v))
    };
    let grant = field("grant_type").unwrap_or_default();
    if grant != GRANT_TYPE {
        return Err((
            "unsupported_grant_type",
            format!("Invalid grant_type: {grant}"),
        ));
    }
    let Some(assertion) = field("assertion").filter(|a| !a.is_empty()) else {
        return Err((
            "invalid_request",
            "Missing required parameter: assertion".to_owned(),
        ));
    };
    check_claims(&assertion).map_err(|why| ("invalid_grant", format!("Invalid JWT: {why}")))
}

/// The claims Google requires: `iss`, `scope`, `aud`, and an `exp` at most an hour after `iat`.
fn check_claims(jwt: &str) -> Result<(), &'static str> {
    let mut segments = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err("not three dot-separated segments");
    };
    let decode = |segment: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
    };
    let header = decode(header).ok_or("the header is not base64url JSON")?;
    if header["alg"] != "RS256" {
        return Err("the algorithm must be RS256");
    }
    if signature.is_empty() {
        return Err("no signature");
    }
    let claims = decode(claims).ok_or("the claims are not base64url JSON")?;
    for name in ["iss", "scope", "aud"] {
        if claims[name].as_str().is_none_or(str::is_empty) {
            return Err("iss, scope and aud are required");
        }
    }
    match (claims["iat"].as_u64(), claims["exp"].as_u64()) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= EXPIRES_IN => Ok(()),
        _ => Err(
            "Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat \
             and exp values in the JWT claim.",
        ),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte (a stray `%` stays as it is).
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &Value) -> String {
        let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2lnbmF0dXJl",
            encode(&json!({"alg": "RS256", "typ": "JWT"})),
            encode(claims)
        )
    }

    fn claims(iat: u64, exp: u64) -> Value {
        json!({"iss": "sa@p.iam.gserviceaccount.com", "scope": "https://www.googleapis.com/auth/cloud-platform",
               "aud": "http://127.0.0.1/token", "iat": iat, "exp": exp})
    }

    fn form(grant: &str, assertion: &str) -> String {
        format!("grant_type={grant}&assertion={assertion}")
    }

    #[test]
    fn a_well_formed_grant_passes() {
        let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
        assert_eq!(
            check(form(grant, &jwt(&claims(1000, 4600))).as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn wrong_grants_get_oauth_errors() {
        let grant = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
        assert_eq!(
            check(form("client_credentials", "x").as_bytes())
                .unwrap_err()
                .0,
            "unsupported_grant_type"
        );
        assert_eq!(
            check(format!("grant_type={grant}").as_bytes())
                .unwrap_err()
                .0,
            "invalid_request"
        );
        for bad in [
            "a.b".to_owned(),
            jwt(&claims(1000, 9000)),
            jwt(&json!({"iss": "x", "iat": 1, "exp": 2})),
        ] {
            assert_eq!(
                check(form(grant, &bad).as_bytes()).unwrap_err().0,
                "invalid_grant",
                "{bad}"
            );
        }
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_decode("a%3Ab+c%2"), "a:b c%2");
        assert_eq!(form_decode("%41%zz"), "A%zz");
    }
}
