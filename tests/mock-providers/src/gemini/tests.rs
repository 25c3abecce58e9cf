use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::*;
use crate::MockProvider;

const STUDIO: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STUDIO_STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
const VERTEX: &str =
    "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-pro:generateContent";

fn body() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
           "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]})
}

fn studio(mock: &MockProvider, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(mock.url(path))
        .header("x-goog-api-key", "AIza-test")
        .json(&body())
}

fn vertex(mock: &MockProvider, token: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(mock.url(VERTEX))
        .bearer_auth(token)
        .json(&body())
}

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[test]
fn routes_are_recognised_by_suffix() {
    assert_eq!(
        Route::of("/v1beta/models/gemini-2.5-flash:generateContent"),
        Some(Route::Generate {
            vertex: false,
            model: "gemini-2.5-flash".into(),
            stream: false
        })
    );
    assert_eq!(
        Route::of(
            "/google/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro%3AstreamGenerateContent"
        ),
        Some(Route::Generate {
            vertex: true,
            model: "gemini-2.5-pro".into(),
            stream: true
        })
    );
    assert_eq!(Route::of("/token"), Some(Route::Token));
    assert_eq!(
        Route::of("/v1beta/models/gemini-2.5-flash:countTokens"),
        None
    );
    assert_eq!(Route::of("/v1/chat/completions"), None);
}

#[tokio::test]
async fn ai_studio_answers_with_a_key_and_records_the_request() {
    let mock = MockProvider::start();
    let (status, v) = json_of(studio(&mock, STUDIO).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        crate::completion_text(crate::DEFAULT_CHUNKS)
    );
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    let recorded = &mock.requests()[0];
    assert_eq!(recorded.path, STUDIO);
    assert_eq!(recorded.header("x-goog-api-key"), Some("AIza-test"));
    assert_eq!(recorded.json().unwrap(), body());
}

#[tokio::test]
async fn ai_studio_refuses_a_missing_or_wrong_key_in_googles_shape() {
    let mock = MockProvider::start_with(crate::Behaviour {
        api_key: Some("AIza-right".into()),
        ..crate::Behaviour::default()
    });
    let (status, v) = json_of(
        reqwest::Client::new()
            .post(mock.url(STUDIO))
            .json(&body())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    assert_eq!(v["error"]["code"], 403);
    let (status, v) = json_of(studio(&mock, STUDIO).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let ok = reqwest::Client::new()
        .post(mock.url(&format!("{STUDIO}?key=AIza-right")))
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn vertex_wants_a_minted_bearer_token() {
    let mock = MockProvider::start();
    let (status, v) = json_of(vertex(&mock, "ya29.mock-1").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(v["modelVersion"], "gemini-2.5-pro");
    for token in ["", "AIza-not-a-token"] {
        let req = if token.is_empty() {
            reqwest::Client::new().post(mock.url(VERTEX)).json(&body())
        } else {
            vertex(&mock, token)
        };
        let (status, v) = json_of(req.send().await.unwrap()).await;
        assert_eq!(
            (status, v["error"]["status"].as_str()),
            (401, Some("UNAUTHENTICATED")),
            "{token:?}"
        );
    }
    let (status, _) = json_of(studio(&mock, VERTEX).send().await.unwrap()).await;
    assert_eq!(status, 401, "an API key is not a Vertex credential");
}

#[tokio::test]
async fn a_sse_stream_sends_each_chunk_on_its_own_with_the_delay() {
    let mock = MockProvider::start();
    let started = Instant::now();
    let res = studio(&mock, STUDIO_STREAM)
        .header(crate::control::CHUNK_DELAY_MS, "150")
        .header(crate::control::CHUNKS, "3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = res.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    let mut text = String::from_utf8(first.to_vec()).unwrap();
    while let Some(piece) = body.next().await {
        text.push_str(std::str::from_utf8(&piece.unwrap()).unwrap());
    }
    let total = started.elapsed();
    assert!(
        total >= first_at + Duration::from_millis(250),
        "first chunk at {first_at:?}, end at {total:?}"
    );
    let chunks: Vec<Value> = text
        .split_terminator("\r\n\r\n")
        .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[0]["candidates"][0]["content"]["parts"][0]["text"],
        "Hello"
    );
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 3);
}

#[tokio::test]
async fn a_stream_without_alt_sse_is_one_json_array() {
    let mock = MockProvider::start();
    let (status, v) = json_of(
        studio(
            &mock,
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        )
        .header(crate::control::CHUNKS, "2")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v.as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn scenarios_are_honoured_and_a_typo_is_a_google_400() {
    let mock = MockProvider::start();
    let (_, v) = json_of(
        studio(&mock, STUDIO)
            .header(crate::SCENARIO_HEADER, "parallel_tool_calls")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let parts = &v["candidates"][0]["content"]["parts"];
    assert_eq!(parts[1]["functionCall"]["args"]["location"], "London");
    let (status, v) = json_of(
        studio(&mock, STUDIO)
            .header(crate::SCENARIO_HEADER, "tool_cal")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

#[tokio::test]
async fn injected_failures_and_bad_bodies_use_googles_shape() {
    let mock = MockProvider::start();
    let (status, v) = json_of(
        studio(&mock, STUDIO)
            .header(crate::control::STATUS, "429")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    assert_eq!(v["error"]["details"][0]["retryDelay"], "1s");
    let (status, v) = json_of(
        studio(&mock, STUDIO)
            .header(crate::control::STATUS, "503")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
    let no_contents = reqwest::Client::new()
        .post(mock.url(STUDIO))
        .header("x-goog-api-key", "k")
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    let (status, v) = json_of(no_contents).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contents is not specified")
    );
}

fn assertion() -> String {
    let encode = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        encode(json!({"alg": "RS256", "typ": "JWT"})),
        encode(json!({"iss": "sa@p.iam.gserviceaccount.com", "aud": "x",
            "scope": "https://www.googleapis.com/auth/cloud-platform", "iat": 100, "exp": 3700}))
    )
}

fn token_request(mock: &MockProvider, form: String) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(mock.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
}

#[tokio::test]
async fn the_token_endpoint_mints_tokens_for_a_jwt_bearer_grant() {
    let mock = MockProvider::start();
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
        assertion()
    );
    let (status, v) = json_of(token_request(&mock, form.clone()).send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        v["access_token"]
            .as_str()
            .unwrap()
            .starts_with("ya29.mock-")
    );
    assert_eq!(
        (v["expires_in"].as_u64(), v["token_type"].as_str()),
        (Some(3600), Some("Bearer"))
    );
    // The token it minted opens Vertex.
    let token = v["access_token"].as_str().unwrap();
    assert_eq!(vertex(&mock, token).send().await.unwrap().status(), 200);

    let (status, v) = json_of(
        token_request(&mock, "grant_type=password&assertion=x".into())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    let (status, v) = json_of(
        token_request(&mock, form)
            .header(crate::control::FAIL_FIRST, "1")
            .header(crate::control::FAIL_STATUS, "503")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("internal_failure"))
    );
}
