//! SigV4 against AWS's published vectors, and the stored credential.

use std::time::Duration;

use super::*;

// AWS's Signature Version 4 test suite: these credentials, region, service and time for every vector.
const AMZ_DATE: &str = "20150830T123600Z";
const HOST: &str = "example.amazonaws.com";

fn suite_credentials(session_token: Option<&str>) -> AwsCredentials {
    AwsCredentials {
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
        session_token: session_token.map(str::to_owned),
    }
}

fn suite_request<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(&'a str, &'a str)],
    payload: &'a [u8],
) -> SignableRequest<'a> {
    SignableRequest {
        method,
        host: HOST,
        path,
        query,
        headers,
        payload,
    }
}

fn suite_authorization(request: &SignableRequest<'_>, token: Option<&str>) -> String {
    sign_at(
        request,
        &suite_credentials(token),
        "us-east-1",
        "service",
        AMZ_DATE,
        false,
    )
    .authorization
}

fn expected(signed: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed}, Signature={signature}"
    )
}

#[test]
fn the_aws_test_suite_vectors_reproduce_their_published_signatures() {
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let cases: [(&str, SignableRequest<'_>, &str, &str); 6] = [
        (
            "get-vanilla",
            suite_request("GET", "/", "", &[], b""),
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            suite_request("POST", "/", "", &[], b""),
            "host;x-amz-date",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            suite_request("GET", "/", "Param2=value2&Param1=value1", &[], b""),
            "host;x-amz-date",
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "post-x-www-form-urlencoded",
            suite_request("POST", "/", "", &form, b"Param1=value1"),
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        ),
        (
            // A raw (unencoded) UTF-8 path is encoded once: the rule is "encode what is on the wire".
            "get-utf8",
            suite_request("GET", "/\u{1234}", "", &[], b""),
            "host;x-amz-date",
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
        (
            "get-unreserved",
            suite_request(
                "GET",
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "",
                &[],
                b"",
            ),
            "host;x-amz-date",
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
    ];
    for (name, request, signed, signature) in cases {
        assert_eq!(
            suite_authorization(&request, None),
            expected(signed, signature),
            "{name}"
        );
    }
}

#[test]
fn temporary_credentials_sign_the_session_token_as_in_post_sts_header_before() {
    let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";
    let request = suite_request("POST", "/", "", &[], b"");
    assert_eq!(
        suite_authorization(&request, Some(token)),
        expected(
            "host;x-amz-date;x-amz-security-token",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        )
    );
}

#[test]
fn the_signing_key_matches_the_published_derivation_example() {
    // AWS's "derive a signing key" example (IAM, us-east-1, 2012-02-15).
    let key = signing_key(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "20120215",
        "us-east-1",
        "iam",
    );
    assert_eq!(
        hex::encode(key),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
}

#[test]
fn a_model_id_colon_is_sent_once_encoded_and_signed_twice_encoded() {
    assert_eq!(
        canonical_uri("/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse-stream"),
        "/model/us.anthropic.claude-haiku-4-5-20251001-v1%253A0/converse-stream"
    );
    assert_eq!(
        canonical_uri(
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx/converse"
        ),
        "/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A1%253Ainference-profile%252Fx/converse"
    );
    let headers = [("content-type", "application/json")];
    let request = SignableRequest {
        method: "POST",
        host: "bedrock-runtime.us-east-1.amazonaws.com",
        path: "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        query: "",
        headers: &headers,
        payload: br#"{"messages":[]}"#,
    };
    let payload_hash = hex::encode(Sha256::digest(request.payload));
    let canonical = canonical_request(
        &request,
        &[
            ("content-type".into(), "application/json".into()),
            ("host".into(), request.host.into()),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
            ("x-amz-date".into(), AMZ_DATE.into()),
        ],
        "content-type;host;x-amz-content-sha256;x-amz-date",
        &payload_hash,
    );
    assert_eq!(
        canonical,
        format!(
            "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n\n\
             content-type:application/json\nhost:bedrock-runtime.us-east-1.amazonaws.com\n\
             x-amz-content-sha256:{payload_hash}\nx-amz-date:{AMZ_DATE}\n\n\
             content-type;host;x-amz-content-sha256;x-amz-date\n{payload_hash}"
        )
    );
    // The signature is over that canonical request: the same request signed over the once-encoded path
    // differs.
    let signed = sign_at(
        &request,
        &suite_credentials(None),
        "us-east-1",
        "bedrock",
        AMZ_DATE,
        true,
    );
    let scope = "20150830/us-east-1/bedrock/aws4_request";
    let by_hand = hex::encode(hmac(
        &signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "bedrock",
        ),
        format!(
            "AWS4-HMAC-SHA256\n{AMZ_DATE}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        )
        .as_bytes(),
    ));
    assert!(
        signed
            .authorization
            .ends_with(&format!("Signature={by_hand}")),
        "{}",
        signed.authorization
    );
    assert!(
        signed
            .authorization
            .contains("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,")
    );
    assert_eq!(signed.x_amz_content_sha256, payload_hash);
}

#[test]
fn headers_the_signer_sets_are_never_signed_twice() {
    let headers = [
        ("Host", "example.amazonaws.com"),
        ("X-Amz-Date", "19990101T000000Z"),
    ];
    let request = suite_request("GET", "/", "", &headers, b"");
    assert_eq!(
        suite_authorization(&request, None),
        expected(
            "host;x-amz-date",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    );
}

#[test]
fn sign_adds_every_header_it_signed() {
    let headers = [("content-type", "application/json")];
    let request = suite_request("POST", "/model/m/converse", "", &headers, b"{}");
    let at = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let signed = sign(
        &request,
        &suite_credentials(Some("tok")),
        "us-east-1",
        BEDROCK_SERVICE,
        at,
    );
    assert_eq!(signed.x_amz_date, AMZ_DATE);
    assert_eq!(signed.x_amz_security_token.as_deref(), Some("tok"));
    let names: Vec<_> = signed.pairs().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "authorization",
            "x-amz-date",
            "x-amz-content-sha256",
            "x-amz-security-token"
        ]
    );
    assert!(signed.authorization.contains(
        "/20150830/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
    ));
}

#[test]
fn amz_date_handles_leap_days_and_century_rules() {
    for (secs, stamp) in [
        (0u64, "19700101T000000Z"),
        (951_868_799, "20000229T235959Z"),
        (1_709_210_096, "20240229T123456Z"),
        (4_107_542_401, "21000301T000001Z"),
        (1_440_938_160, AMZ_DATE),
    ] {
        assert_eq!(
            amz_date(UNIX_EPOCH + Duration::from_secs(secs)),
            stamp,
            "{secs}"
        );
    }
}

#[test]
fn a_stored_secret_is_a_key_pair_json_or_an_api_key() {
    let pair = BedrockAuth::parse(
        r#"{"accessKeyId":"AKID","secretAccessKey":"s3cr3t","region":"eu-west-1","sessionToken":"tok"}"#,
    )
    .unwrap();
    assert_eq!(
        pair,
        BedrockAuth::SigV4 {
            credentials: AwsCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: "s3cr3t".into(),
                session_token: Some("tok".into()),
            },
            region: "eu-west-1".into(),
        }
    );
    assert_eq!(pair.region(), Some("eu-west-1"));
    assert!(!format!("{pair:?}").contains("s3cr3t"));
    assert!(!format!("{pair:?}").contains("tok\""));

    let no_token =
        BedrockAuth::parse(r#"{"accessKeyId":"A","secretAccessKey":"S","region":"us-east-1"}"#)
            .unwrap();
    assert!(
        matches!(no_token, BedrockAuth::SigV4 { credentials, .. } if credentials.session_token.is_none())
    );

    assert_eq!(
        BedrockAuth::parse(" ABSKabc123= ").unwrap(),
        BedrockAuth::ApiKey("ABSKabc123=".into())
    );
    assert!(!format!("{:?}", BedrockAuth::ApiKey("ABSKabc".into())).contains("ABSK"));

    for bad in [
        "",
        r#"{"accessKeyId":"A","secretAccessKey":"S"}"#,
        r#"{"accessKeyId":"A","secretAccessKey":"","region":"r"}"#,
        r#"{"accessKeyId":"A","secretAccessKey":"very-secret" "#,
        "two words",
    ] {
        let err = BedrockAuth::parse(bad).unwrap_err();
        assert!(!err.to_string().contains("very-secret"), "{err}");
    }
}
