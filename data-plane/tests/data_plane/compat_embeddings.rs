//! `/compat/embeddings` to the providers whose embeddings are translated: Gemini (AI Studio `batchEmbedContents`,
//! Vertex `predict`), Cohere `/v2/embed`, Bedrock InvokeModel (Titan, Cohere) and Workers AI. Each test asserts what
//! the mock received and what the client got: OpenAI's list, vectors as floats or base64, usage from the provider.

use std::time::Duration;

use base64::Engine as _;
use gatehouse_data_plane::DataPlane;
use gatehouse_data_plane::logs::LogSink;
use gatehouse_mock_providers::{
    MockProvider, RecordedRequest, control, embedding_vector, usage_for,
};
use gatehouse_shared::log::LogRecord;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

use crate::harness::{RunningDataPlane, test_settings};
use crate::node::{Node, gateway, stored_key};

const EMBEDDINGS: &str = "/v1/acme/gw/compat/embeddings";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

async fn post(node: &Node, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = node.http.post(node.url(EMBEDDINGS)).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        json,
    }
}

/// The vectors of an OpenAI embeddings list, in f32 (as they were decoded), checked to be in index order.
fn vectors(list: &Value) -> Vec<Vec<f32>> {
    assert_eq!(list["object"], "list", "{list}");
    let data = list["data"].as_array().unwrap();
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
            item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn expected(count: usize, dimensions: usize) -> Vec<Vec<f32>> {
    (0..count)
        .map(|i| embedding_vector(i, dimensions))
        .collect()
}

/// What the mock received last, and how many requests it has seen.
fn last(mock: &MockProvider) -> RecordedRequest {
    mock.requests().pop().expect("the provider was called")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_studio_embeds_a_batch_and_answers_base64_when_asked() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer goog-key");
    let body = json!({"model": "google-ai-studio/gemini-embedding-001", "input": ["first", "second"],
        "dimensions": 4, "input_type": "search_query", "user": "u-1"});
    let got = post(&node, &body, &[auth]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(got.headers["cf-aig-provider"], "google-ai-studio");
    assert_eq!(got.headers["cf-aig-model"], "gemini-embedding-001");
    assert_eq!(vectors(&got.json), expected(2, 4));
    assert_eq!(got.json["model"], "gemini-embedding-001");
    // AI Studio reports no tokens: the answer says 0 rather than guessing.
    assert_eq!(
        got.json["usage"],
        json!({"prompt_tokens": 0, "total_tokens": 0})
    );

    let seen = last(&mock);
    assert_eq!(
        seen.path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(seen.header("x-goog-api-key"), Some("goog-key"));
    assert_eq!(seen.header("authorization"), None);
    let item = |text: &str| {
        json!({"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]},
            "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 4})
    };
    assert_eq!(
        seen.json().unwrap(),
        json!({"requests": [item("first"), item("second")]})
    );

    // The OpenAI Python SDK's default: little-endian f32s in base64.
    let mut b64 = body.clone();
    b64["encoding_format"] = json!("base64");
    let got = post(&node, &b64, &[auth]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    let decoded: Vec<Vec<f32>> = got.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(item["embedding"].as_str().unwrap())
                .unwrap();
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect();
    assert_eq!(decoded, expected(2, 4));
    // `encoding_format` is the gateway's to honour; the provider never sees it.
    assert!(
        !String::from_utf8_lossy(&last(&mock).body).contains("base64"),
        "the provider's body carries no encoding_format"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vertex_predicts_with_the_stored_service_account_and_reports_its_tokens() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let account = json!({
        "type": "service_account", "project_id": "my-proj", "private_key_id": "k1",
        "private_key": key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        "client_email": "gw@my-proj.iam.gserviceaccount.com",
        "token_uri": mock.url("/token"), "region": "europe-west4"
    });
    let mut doc = gateway("acme", "gw", 1);
    doc.provider_configs = vec![stored_key(
        "google-vertex-ai",
        "main",
        true,
        &account.to_string(),
    )];
    node.add_gateway(doc);
    let body = json!({"model": "google-vertex-ai/google/text-embedding-005",
        "input": ["hello world", "bye"], "dimensions": 3});
    let got = post(&node, &body, &[]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(vectors(&got.json), expected(2, 3));
    // One token per started 4 bytes of each text, as the mock's `statistics.token_count` says: 3 + 1.
    assert_eq!(
        got.json["usage"],
        json!({"prompt_tokens": 4, "total_tokens": 4})
    );
    let seen = last(&mock);
    assert_eq!(
        seen.path,
        "/v1/projects/my-proj/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    );
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ya29.")),
        "{:?}",
        seen.headers
    );
    assert_eq!(
        seen.json().unwrap(),
        json!({"instances": [{"content": "hello world"}, {"content": "bye"}],
            "parameters": {"outputDimensionality": 3}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_embeds_search_documents_by_default_with_billed_tokens() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer co-key");
    let body = json!({"model": "cohere/embed-v4.0", "input": ["a", "b", "c"]});
    let got = post(&node, &body, &[auth]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(vectors(&got.json), expected(3, 8));
    let seen = last(&mock);
    assert_eq!(seen.path, "/v2/embed");
    assert_eq!(seen.header("authorization"), Some("Bearer co-key"));
    assert_eq!(
        seen.json().unwrap(),
        json!({"model": "embed-v4.0", "texts": ["a", "b", "c"], "input_type": "search_document",
            "embedding_types": ["float"]})
    );
    let tokens = usage_for(seen.body.len(), 0).input_tokens;
    assert_eq!(
        got.json["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );

    // A query embedding, sized.
    let query = json!({"model": "cohere/embed-v4.0", "input": "what is it?", "input_type": "search_query",
        "dimensions": 256});
    let got = post(&node, &query, &[auth]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(vectors(&got.json), expected(1, 256));
    let sent = last(&mock).json().unwrap();
    assert_eq!(
        (&sent["input_type"], &sent["output_dimension"]),
        (&json!("search_query"), &json!(256))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_invokes_titan_one_input_at_a_time_and_cohere_with_many() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let secret = json!({"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "region": "eu-west-1"});
    let mut doc = gateway("acme", "gw", 1);
    doc.provider_configs = vec![stored_key("aws-bedrock", "main", true, &secret.to_string())];
    node.add_gateway(doc);

    let titan = json!({"model": "aws-bedrock/amazon.titan-embed-text-v2:0", "input": "hello", "dimensions": 256});
    let got = post(&node, &titan, &[]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(vectors(&got.json), expected(1, 256));
    let seen = last(&mock);
    assert_eq!(seen.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    let auth = seen.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{auth}"
    );
    assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
    assert_eq!(
        seen.json().unwrap(),
        json!({"inputText": "hello", "dimensions": 256})
    );
    let tokens = usage_for(seen.body.len(), 0).input_tokens;
    assert_eq!(got.json["usage"]["prompt_tokens"], tokens);

    // Titan embeds one text per call: several are a clear 400, and nothing is sent.
    let before = mock.requests().len();
    let mut several = titan.clone();
    several["input"] = json!(["a", "b"]);
    let got = post(&node, &several, &[]).await;
    assert_eq!(got.status, 400, "{}", got.json);
    assert_eq!(got.json["error"]["param"], "input");
    assert!(
        got.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one input per request"),
        "{}",
        got.json
    );
    assert_eq!(mock.requests().len(), before);

    // Cohere on Bedrock takes every text; its tokens travel in a header only, so none are reported.
    let cohere = json!({"model": "aws-bedrock/cohere.embed-english-v3", "input": ["a", "b"]});
    let got = post(&node, &cohere, &[]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(vectors(&got.json), expected(2, 8));
    let seen = last(&mock);
    assert_eq!(seen.path, "/model/cohere.embed-english-v3/invoke");
    assert_eq!(
        seen.json().unwrap(),
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );
    assert_eq!(got.json["usage"]["prompt_tokens"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ai_runs_the_model_on_the_gateway_s_account() {
    let mock = MockProvider::start();
    let base = mock.url("/client/v4/accounts/{account_id}/ai/run");
    let node = Node::start(&mock, |s| {
        s.provider_base_urls.push(("workers-ai".into(), base));
    });
    node.add_gateway(gateway("acme", "gw", 1));
    let auth = ("authorization", "Bearer cf-token");
    let body = json!({"model": "workers-ai/@cf/baai/bge-base-en-v1.5", "input": ["a", "b"]});
    let got = post(&node, &body, &[auth]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    assert_eq!(got.headers["cf-aig-provider"], "workers-ai");
    assert_eq!(vectors(&got.json), expected(2, 8));
    assert_eq!(got.json["model"], "@cf/baai/bge-base-en-v1.5");
    let seen = last(&mock);
    assert_eq!(
        seen.path,
        "/client/v4/accounts/acme/ai/run/@cf/baai/bge-base-en-v1.5"
    );
    assert_eq!(seen.header("authorization"), Some("Bearer cf-token"));
    assert_eq!(seen.json().unwrap(), json!({"text": ["a", "b"]}));

    // What Workers AI has no counterpart for is refused, nothing sent (chat: `compat_workers_ai.rs`).
    let before = mock.requests().len();
    let mut sized = body.clone();
    sized["dimensions"] = json!(4);
    let got = post(&node, &sized, &[auth]).await;
    assert_eq!(
        (got.status, &got.json["error"]["param"]),
        (400, &json!("dimensions"))
    );
    assert_eq!(mock.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_come_back_in_openai_s_shape() {
    let mock = MockProvider::start();
    let base = mock.url("/client/v4/accounts/{account_id}/ai/run");
    let node = Node::start(&mock, |s| {
        s.provider_base_urls.push(("workers-ai".into(), base));
    });
    node.add_gateway(gateway("acme", "gw", 1));
    let cases = [
        (
            "cohere/embed-v4.0",
            "429",
            429,
            "rate_limit_error",
            "Trial key",
        ),
        (
            "google-ai-studio/gemini-embedding-001",
            "404",
            404,
            "not_found_error",
            "Requested entity was not found.",
        ),
        (
            "workers-ai/@cf/baai/bge-small-en-v1.5",
            "429",
            429,
            "rate_limit_error",
            "Capacity temporarily exceeded",
        ),
        (
            "aws-bedrock/amazon.titan-embed-text-v2:0",
            "400",
            400,
            "invalid_request_error",
            "Malformed input request",
        ),
    ];
    for (model, status, want, kind, message) in cases {
        let body = json!({"model": model, "input": "hello"});
        let got = post(
            &node,
            &body,
            &[
                ("authorization", "Bearer some-key"),
                (control::STATUS, status),
            ],
        )
        .await;
        assert_eq!(got.status, want, "{model}: {}", got.json);
        let error = &got.json["error"];
        assert_eq!(error["type"], kind, "{model}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains(message),
            "{model}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_before_any_provider_call() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let cases = [
        // Token ids are OpenAI's alone.
        (
            json!({"model": "cohere/embed-v4.0", "input": [[1, 2], [3]]}),
            "input",
        ),
        (
            json!({"model": "google-ai-studio/gemini-embedding-001", "input": [1, 2, 3]}),
            "input",
        ),
        (
            json!({"model": "cohere/embed-v4.0", "input": "x", "encoding_format": "int8"}),
            "encoding_format",
        ),
        (json!({"model": "cohere/embed-v4.0", "input": []}), "input"),
        (json!({"model": "cohere/embed-v4.0"}), "input"),
        (
            json!({"model": "cohere/embed-v4.0", "input": "x", "input_type": "query"}),
            "input_type",
        ),
        // Anthropic has no embeddings API.
        (
            json!({"model": "anthropic/claude-sonnet-4-5", "input": "x"}),
            "model",
        ),
        (
            json!({"model": "aws-bedrock/anthropic.claude-3-haiku", "input": "x"}),
            "model",
        ),
    ];
    for (body, param) in cases {
        let got = post(&node, &body, &[("authorization", "Bearer k")]).await;
        assert_eq!(got.status, 400, "{body}: {}", got.json);
        assert_eq!(got.json["error"]["param"], param, "{body}: {}", got.json);
    }
    assert!(mock.requests().is_empty(), "nothing reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_records_the_provider_s_prompt_tokens() {
    let mock = MockProvider::start();
    let mut settings = test_settings();
    settings.provider_base_urls = vec![
        ("cohere".into(), mock.base_url()),
        ("google-ai-studio".into(), mock.base_url()),
    ];
    settings.upstream_response_timeout = Duration::from_secs(5);
    let (sink, mut rx) = LogSink::channel(16);
    let dp = DataPlane::bind(settings).unwrap().with_log_sink(sink);
    let store = dp.config_store();
    dp.readiness().set_ready();
    let node = Node {
        plane: RunningDataPlane::run(dp),
        store,
        http: reqwest::Client::new(),
    };
    let mut doc = gateway("acme", "gw", 1);
    doc.settings.collect_logs = true;
    node.add_gateway(doc);
    let mut next = async || -> LogRecord {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a record")
            .expect("open channel")
    };

    let body = json!({"model": "cohere/embed-v4.0", "input": ["a", "b"]});
    let got = post(&node, &body, &[("authorization", "Bearer co-key")]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    let record = next().await;
    assert_eq!(record.provider, "cohere");
    assert_eq!(record.model.as_deref(), Some("embed-v4.0"));
    assert_eq!(record.request_type.as_deref(), Some("compat"));
    assert_eq!(record.path, "v2/embed");
    let tokens = usage_for(last(&mock).body.len(), 0).input_tokens;
    assert_eq!(record.tokens_in, Some(tokens), "{record:?}");

    // A provider that reports no tokens leaves none to the log, rather than an invented count.
    let body = json!({"model": "google-ai-studio/gemini-embedding-001", "input": "a"});
    let got = post(&node, &body, &[("authorization", "Bearer goog-key")]).await;
    assert_eq!(got.status, 200, "{}", got.json);
    let record = next().await;
    assert_eq!(record.provider, "google-ai-studio");
    assert!(
        record.tokens_in.unwrap_or(0) == 0,
        "no count was reported: {record:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_served_only_in_the_encoding_it_was_stored_in() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let mut doc = gateway("acme", "gw", 1);
    doc.settings.cache_ttl = Some(300);
    node.add_gateway(doc);
    let auth = ("authorization", "Bearer co-key");
    let float = json!({"model": "cohere/embed-v4.0", "input": "cache me"});
    let mut base64 = float.clone();
    base64["encoding_format"] = json!("base64");
    // The provider's body is the same for both: the client's encoding must still key the cache.
    for (body, status, is_base64) in [
        (&float, "MISS", false),
        (&float, "HIT", false),
        (&base64, "MISS", true),
        (&base64, "HIT", true),
    ] {
        let got = post(&node, body, &[auth]).await;
        assert_eq!(got.status, 200, "{}", got.json);
        assert_eq!(got.headers["cf-aig-cache-status"], status, "{body}");
        assert_eq!(
            got.json["data"][0]["embedding"].is_string(),
            is_base64,
            "{body}: {}",
            got.json
        );
    }
    assert_eq!(mock.requests().len(), 2);
}
