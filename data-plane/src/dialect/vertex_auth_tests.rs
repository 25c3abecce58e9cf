use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Validation};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::json;

use super::*;

/// A fresh RSA key pair (PKCS#8 private PEM, as Google issues them; SPKI public PEM), made once per test run.
/// 1024 bits keeps key generation quick in an unoptimised test build; the code path is the same as 2048.
fn key_pair() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("keygen");
        let public = private.to_public_key();
        (
            private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public.to_public_key_pem(LineEnding::LF).unwrap(),
        )
    })
}

fn secret_json() -> serde_json::Value {
    json!({
        "type": "service_account",
        "project_id": "my-proj",
        "private_key_id": "kid-123",
        "private_key": key_pair().0,
        "client_email": "gateway@my-proj.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "region": "europe-west4",
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct SeenClaims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

#[test]
fn the_assertion_is_signed_with_the_account_key_and_carries_the_claims() {
    let account = ServiceAccount::parse(&secret_json().to_string()).unwrap();
    let issued = now();
    let jwt = account.assertion(issued).unwrap();

    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("kid-123"));
    assert_eq!(header.typ.as_deref(), Some("JWT"));

    let public = DecodingKey::from_rsa_pem(key_pair().1.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://oauth2.googleapis.com/token"]);
    validation.set_issuer(&["gateway@my-proj.iam.gserviceaccount.com"]);
    let claims = jsonwebtoken::decode::<SeenClaims>(&jwt, &public, &validation)
        .expect("the signature verifies with the account's public key")
        .claims;
    assert_eq!(
        claims,
        SeenClaims {
            iss: "gateway@my-proj.iam.gserviceaccount.com".into(),
            scope: SCOPE.into(),
            aud: "https://oauth2.googleapis.com/token".into(),
            iat: issued,
            exp: issued + 3600,
        }
    );

    // A different key does not verify it.
    let other = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let other_pem = other
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let wrong = DecodingKey::from_rsa_pem(other_pem.as_bytes()).unwrap();
    assert!(jsonwebtoken::decode::<SeenClaims>(&jwt, &wrong, &validation).is_err());
}

#[test]
fn raw_and_base64_secrets_parse_alike() {
    let raw = secret_json().to_string();
    let standard = base64::engine::general_purpose::STANDARD.encode(&raw);
    // Base64 as people paste it: wrapped at 76 columns.
    let wrapped: String = standard
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
    for secret in [
        raw.clone(),
        format!("  {raw}\n"),
        standard,
        wrapped,
        url_safe,
    ] {
        let a = ServiceAccount::parse(&secret).unwrap();
        assert_eq!(a.client_email, "gateway@my-proj.iam.gserviceaccount.com");
        assert_eq!(a.project_id, "my-proj");
        assert_eq!(a.region.as_deref(), Some("europe-west4"));
        assert_eq!(a.token_uri, "https://oauth2.googleapis.com/token");
        assert_eq!(a.private_key_id.as_deref(), Some("kid-123"));
    }
    let debug = format!("{:?}", ServiceAccount::parse(&raw).unwrap());
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

#[test]
fn a_custom_token_uri_is_the_audience_and_a_missing_one_defaults() {
    let mut secret = secret_json();
    secret["token_uri"] = json!("http://127.0.0.1:9999/token");
    let a = ServiceAccount::parse(&secret.to_string()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["http://127.0.0.1:9999/token"]);
    let public = DecodingKey::from_rsa_pem(key_pair().1.as_bytes()).unwrap();
    assert!(
        jsonwebtoken::decode::<SeenClaims>(&a.assertion(now()).unwrap(), &public, &validation)
            .is_ok()
    );

    let mut secret = secret_json();
    secret.as_object_mut().unwrap().remove("token_uri");
    secret.as_object_mut().unwrap().remove("region");
    let a = ServiceAccount::parse(&secret.to_string()).unwrap();
    assert_eq!((a.token_uri.as_str(), a.region), (DEFAULT_TOKEN_URI, None));
}

#[test]
fn unusable_secrets_say_why() {
    let without = |field: &str| {
        let mut s = secret_json();
        s.as_object_mut().unwrap().remove(field);
        ServiceAccount::parse(&s.to_string()).unwrap_err()
    };
    for field in ["client_email", "private_key", "project_id"] {
        assert!(
            matches!(&without(field), VertexAuthError::BadSecret(m) if m.contains(field)),
            "{field}"
        );
    }
    let mut user = secret_json();
    user["type"] = json!("authorized_user");
    assert!(matches!(
        ServiceAccount::parse(&user.to_string()),
        Err(VertexAuthError::BadSecret(m)) if m.contains("authorized_user")
    ));
    assert!(matches!(
        ServiceAccount::parse("not a secret!"),
        Err(VertexAuthError::BadSecret(_))
    ));
    assert!(matches!(
        ServiceAccount::parse("{\"client_email\": 5"),
        Err(VertexAuthError::BadSecret(_))
    ));
    let mut bad_key = secret_json();
    bad_key["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let result = ServiceAccount::parse(&bad_key.to_string()).and_then(|a| a.assertion(now()));
    assert!(
        matches!(result, Err(VertexAuthError::BadKey(_))),
        "{result:?}"
    );
}

#[test]
fn the_token_request_is_the_form_encoded_jwt_bearer_grant() {
    assert_eq!(
        token_request_body("aaa.bbb-_.ccc"),
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=aaa.bbb-_.ccc"
    );
    let account = ServiceAccount::parse(&secret_json().to_string()).unwrap();
    let body = account.token_request_body(now()).unwrap();
    let assertion = body
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .expect("grant type first");
    assert_eq!(assertion.split('.').count(), 3, "a JWT: {assertion}");
}

#[test]
fn token_responses_and_oauth_errors_are_read() {
    let token = parse_token_response(
        br#"{"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer","id_token":null}"#,
    )
    .unwrap();
    assert_eq!(
        token,
        AccessToken {
            access_token: "ya29.abc".into(),
            expires_in: 3599,
            token_type: "Bearer".into(),
        }
    );
    assert_eq!(token.refresh_at(1_000), 1_000 + 3599 - REFRESH_MARGIN_SECS);
    let short = AccessToken {
        expires_in: 100,
        ..token
    };
    assert_eq!(short.refresh_at(0), 50);

    let refused = parse_token_response(
        br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
    )
    .unwrap_err();
    assert_eq!(
        refused,
        VertexAuthError::Refused {
            error: "invalid_grant".into(),
            description: Some("Invalid JWT Signature.".into())
        }
    );
    assert!(refused.to_string().contains("Invalid JWT Signature."));
    assert!(matches!(
        parse_token_response(b"<html>"),
        Err(VertexAuthError::BadTokenResponse(_))
    ));
    assert!(matches!(
        parse_token_response(br#"{"access_token":"","expires_in":1}"#),
        Err(VertexAuthError::BadTokenResponse(_))
    ));
}
