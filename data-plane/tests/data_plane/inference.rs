//! Inference through the data plane to a mock provider: configuration applied directly to the node's config store
//! (propagation has its own tests), traffic over real sockets.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use gatehouse_data_plane::DataPlane;
use gatehouse_mock_providers::{MockProvider, control, unused_port};
use gatehouse_shared::config::{CustomProviderEntry, DeploymentDocument};
use gatehouse_shared::token::{Scope, VerificationKey};
use serde_json::{Value, json};

use crate::harness::{RunningDataPlane, test_settings};
use crate::node::{Node, Signer, gateway, stored_key};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_completion_reaches_the_provider_and_comes_back_unchanged() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    for path in ["chat/completions", "v1/chat/completions"] {
        let body = chat(false).to_string();
        let resp = node
            .http
            .post(node.url(&format!("/v1/acme/gw/openai/{path}?trace=1")))
            .header("authorization", "Bearer sk-client")
            .header("cf-aig-metadata", r#"{"team":"ml"}"#)
            .header("x-custom", "kept")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let request_id = resp.headers()["cf-aig-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(request_id.len(), 26, "a ULID: {request_id}");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["object"], "chat.completion");
        let seen = mock.requests().pop().unwrap();
        assert_eq!(seen.path, "/v1/chat/completions", "{path}");
        assert_eq!(seen.query.as_deref(), Some("trace=1"));
        assert_eq!(seen.header("authorization"), Some("Bearer sk-client"));
        assert_eq!(seen.header("x-custom"), Some("kept"));
        assert_eq!(seen.header("host"), Some(mock.addr().to_string().as_str()));
        assert!(
            seen.headers
                .iter()
                .all(|(k, _)| !k.as_str().starts_with("cf-aig-")),
            "{:?}",
            seen.headers
        );
        assert_eq!(seen.body, body.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reach_the_client_chunk_by_chunk_without_buffering() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    for (path, body, auth) in [
        (
            "/v1/acme/gw/openai/chat/completions",
            chat(true),
            ("authorization", "Bearer sk"),
        ),
        (
            "/v1/acme/gw/anthropic/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            ("x-api-key", "sk-ant"),
        ),
    ] {
        let started = Instant::now();
        let resp = node
            .http
            .post(node.url(path))
            .header(auth.0, auth.1)
            .header("anthropic-version", "2023-06-01")
            .header(control::CHUNK_DELAY_MS, "300")
            .header(control::CHUNKS, "4")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = resp.bytes_stream();
        let first = stream.next().await.unwrap().unwrap();
        let first_at = started.elapsed();
        let mut all = first.to_vec();
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        let total = started.elapsed();
        assert!(
            total >= Duration::from_millis(900),
            "the mock spaces chunks 300 ms apart: {total:?}"
        );
        assert!(
            first_at < Duration::from_millis(250),
            "first chunk after {first_at:?} of {total:?}: buffered"
        );
        let text = String::from_utf8(all).unwrap();
        assert!(text.contains("data: "), "{text}");
        if path.contains("openai") {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        } else {
            assert!(text.contains("event: message_stop"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_megabyte_body_reaches_the_provider_intact() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let image: String = (0..5 * 1024 * 1024)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{image}")}}]}]}).to_string();
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/openai/chat/completions"))
        .header("authorization", "Bearer sk")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body == body.as_bytes(), "the body arrived altered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_keys_are_injected_by_alias_and_a_client_key_wins() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let mut doc = gateway("acme", "gw", 1);
    doc.provider_configs = vec![
        stored_key("openai", "default", true, "sk-stored-default"),
        stored_key("openai", "prod", false, "sk-stored-prod"),
        stored_key("anthropic", "default", true, "sk-ant-stored"),
    ];
    node.add_gateway(doc);
    let send = |alias: Option<&'static str>, client_key: Option<&'static str>| {
        let mut req = node
            .http
            .post(node.url("/v1/acme/gw/openai/chat/completions"))
            .body(chat(false).to_string());
        if let Some(a) = alias {
            req = req.header("cf-aig-byok-alias", a);
        }
        if let Some(k) = client_key {
            req = req.header("authorization", k);
        }
        req.send()
    };
    assert_eq!(send(None, None).await.unwrap().status(), 200);
    assert_eq!(
        mock.requests().pop().unwrap().header("authorization"),
        Some("Bearer sk-stored-default")
    );
    assert_eq!(send(Some("prod"), None).await.unwrap().status(), 200);
    assert_eq!(
        mock.requests().pop().unwrap().header("authorization"),
        Some("Bearer sk-stored-prod")
    );
    assert_eq!(
        send(Some("prod"), Some("Bearer sk-client"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        mock.requests().pop().unwrap().header("authorization"),
        Some("Bearer sk-client")
    );
    let resp = send(Some("staging"), None).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["internalCode"], 2040);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Configured aliases: default, prod"),
        "{body}"
    );
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/anthropic/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .body(json!({"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        mock.requests().pop().unwrap().header("x-api-key"),
        Some("sk-ant-stored")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_gateway_needs_a_valid_run_token_for_its_account() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let signer = Signer::new("key-1");
    let forger = Signer::new("key-1");
    node.store.apply_deployment(
        &DeploymentDocument {
            schema: 1,
            version: 1,
            verification_keys: vec![signer.public.clone()],
            revoked_tokens: vec!["tok-revoked".into()],
        },
        "d1",
    );
    let mut doc = gateway("acme", "secure", 1);
    doc.settings.authentication = true;
    node.add_gateway(doc);
    let cases = [
        (None, 401),
        (Some("Bearer not-a-token".to_owned()), 401),
        (
            Some(format!(
                "Bearer {}",
                forger.token("t1", &["acme"], &[Scope::AiGatewayRun])
            )),
            401,
        ),
        (
            Some(format!(
                "Bearer {}",
                signer.token("t2", &["globex"], &[Scope::AiGatewayRun])
            )),
            401,
        ),
        (
            Some(format!(
                "Bearer {}",
                signer.token("t3", &["acme"], &[Scope::AiGatewayEdit])
            )),
            401,
        ),
        (
            Some(format!(
                "Bearer {}",
                signer.token("tok-revoked", &["acme"], &[Scope::AiGatewayRun])
            )),
            401,
        ),
        (
            Some(format!(
                "Bearer {}",
                signer.token("t4", &["acme"], &[Scope::AiGatewayRun])
            )),
            200,
        ),
        (
            Some(signer.token("t5", &["*"], &[Scope::AiGatewayRun])),
            200,
        ),
    ];
    for (header, expected) in cases {
        let mut req = node
            .http
            .post(node.url("/v1/acme/secure/openai/chat/completions"))
            .header("authorization", "Bearer sk")
            .body(chat(false).to_string());
        if let Some(h) = &header {
            req = req.header("cf-aig-authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), expected, "{header:?}");
        if expected == 401 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                (body["name"].as_str(), body["internalCode"].as_u64()),
                (Some("AiGatewayError"), Some(2009))
            );
        } else {
            let seen = mock.requests().pop().unwrap();
            assert!(
                seen.header("cf-aig-authorization").is_none(),
                "the gateway token never reaches the provider"
            );
        }
    }
    // The default gateway serves an authorised caller before it exists, and refuses everyone else.
    let run = signer.token("t6", &["acme"], &[Scope::AiGatewayRun]);
    let resp = node
        .http
        .post(node.url("/v1/acme/default/openai/chat/completions"))
        .header("authorization", "Bearer sk")
        .header("cf-aig-authorization", format!("Bearer {run}"))
        .body(chat(false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = node
        .http
        .post(node.url("/v1/acme/default/openai/chat/completions"))
        .header("authorization", "Bearer sk")
        .body(chat(false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// Verified tokens are remembered (no signature check per request), but never past what the current deployment
/// document allows: a revocation or a key rotation applies to the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_token_stops_working_when_revoked_or_its_key_is_retired() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let signer = Signer::new("key-1");
    let next_signer = Signer::new("key-2");
    let deployment =
        |version: i64, keys: Vec<VerificationKey>, revoked: &[&str]| DeploymentDocument {
            schema: 1,
            version,
            verification_keys: keys,
            revoked_tokens: revoked.iter().map(|r| (*r).to_owned()).collect(),
        };
    node.store
        .apply_deployment(&deployment(1, vec![signer.public.clone()], &[]), "d1");
    let mut doc = gateway("acme", "secure", 1);
    doc.settings.authentication = true;
    node.add_gateway(doc);
    let status = |token: String| {
        let req = node
            .http
            .post(node.url("/v1/acme/secure/openai/chat/completions"))
            .header("authorization", "Bearer sk")
            .header("cf-aig-authorization", format!("Bearer {token}"))
            .body(chat(false).to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let revoked_later = signer.token("t-a", &["acme"], &[Scope::AiGatewayRun]);
    let kept = signer.token("t-b", &["acme"], &[Scope::AiGatewayRun]);
    for _ in 0..3 {
        assert_eq!(status(revoked_later.clone()).await, 200);
        assert_eq!(status(kept.clone()).await, 200);
    }
    node.store
        .apply_deployment(&deployment(2, vec![signer.public.clone()], &["t-a"]), "d2");
    assert_eq!(status(revoked_later.clone()).await, 401, "revoked");
    assert_eq!(status(kept.clone()).await, 200);
    // Key rotation: key-1 retired, key-2 in.
    node.store
        .apply_deployment(&deployment(3, vec![next_signer.public.clone()], &[]), "d3");
    assert_eq!(status(kept).await, 401, "signed with a retired key");
    assert_eq!(
        status(next_signer.token("t-c", &["acme"], &[Scope::AiGatewayRun])).await,
        200
    );
}

async fn error_of(resp: reqwest::Response) -> (u16, u64) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "AiGatewayError", "{body}");
    assert_eq!(body["success"], false);
    (status, body["internalCode"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_ai_gateway_errors() {
    let mock = MockProvider::start();
    let dead_port = unused_port();
    let node = Node::start(&mock, |s| {
        s.max_body_bytes = 1024 * 1024;
        s.provider_base_urls.push((
            "groq".into(),
            format!("http://127.0.0.1:{dead_port}/openai/v1"),
        ));
    });
    node.add_gateway(gateway("acme", "gw", 1));
    let post = |path: &str| {
        node.http
            .post(node.url(path))
            .header("authorization", "Bearer sk")
    };
    assert_eq!(
        error_of(
            post("/v1/acme/gw/not-a-provider/x")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await,
        (400, 2008)
    );
    assert_eq!(
        error_of(
            post("/v1/acme/nope/openai/chat/completions")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await,
        (400, 2001)
    );
    assert_eq!(
        error_of(
            post("/v1/globex/gw/openai/chat/completions")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await,
        (400, 2001)
    );
    assert_eq!(
        error_of(
            post("/v1/acme/gw/custom-unknown/x")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await,
        (400, 2008)
    );
    assert_eq!(
        error_of(
            post("/v1/acme/gw/azure-openai/bad.host/dep/x")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        400
    );
    assert_eq!(
        error_of(
            post("/v1/acme/gw/openai/chat/completions")
                .body(vec![b'x'; 2 * 1024 * 1024])
                .send()
                .await
                .unwrap()
        )
        .await,
        (413, 2903)
    );
    assert_eq!(
        error_of(
            post("/v1/acme/gw/groq/chat/completions")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await,
        (502, 2005)
    );
    assert_eq!(
        error_of(
            post("/v1/acme/gw/openai/chat/completions")
                .header("cf-aig-request-timeout", "soon")
                .body("{}")
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        400
    );
    // A provider's own error passes through as the provider sent it.
    let resp = post("/v1/acme/gw/openai/chat/completions")
        .header(control::STATUS, "429")
        .body(chat(false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body.get("error").is_some_and(|e| e.is_object()),
        "OpenAI's own error shape: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_times_out() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |s| {
        s.upstream_response_timeout = Duration::from_millis(800)
    });
    node.add_gateway(gateway("acme", "gw", 1));
    for (request_timeout, within) in [
        (Some("200"), Duration::from_millis(700)),
        (None, Duration::from_millis(2000)),
    ] {
        let started = Instant::now();
        let mut req = node
            .http
            .post(node.url("/v1/acme/gw/openai/chat/completions"))
            .header("authorization", "Bearer sk")
            .header(control::HANG, "1")
            .body(chat(false).to_string());
        if let Some(t) = request_timeout {
            req = req.header("cf-aig-request-timeout", t);
        }
        assert_eq!(error_of(req.send().await.unwrap()).await, (504, 2005));
        assert!(
            started.elapsed() < within,
            "{request_timeout:?}: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_providers_route_to_their_base_url() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let mut doc = gateway("acme", "gw", 1);
    doc.custom_providers = vec![
        CustomProviderEntry {
            id: "c1".into(),
            slug: "my-llm".into(),
            base_url: mock.url("/v1"),
            enable: true,
        },
        CustomProviderEntry {
            id: "c2".into(),
            slug: "off".into(),
            base_url: mock.url("/v1"),
            enable: false,
        },
    ];
    node.add_gateway(doc);
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/custom-my-llm/chat/completions"))
        .header("authorization", "Bearer sk")
        .body(chat(false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.requests().pop().unwrap().path, "/v1/chat/completions");
    let resp = node
        .http
        .post(node.url("/v1/acme/gw/custom-off/chat/completions"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(resp).await,
        (400, 2008),
        "a disabled custom provider is not routable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_has_not_loaded_its_config_answers_503() {
    let mock = MockProvider::start();
    let mut settings = test_settings();
    settings.provider_base_urls = vec![("openai".into(), mock.url("/v1"))];
    let dp = DataPlane::bind(settings).unwrap();
    let plane = RunningDataPlane::run(dp);
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/acme/gw/openai/chat/completions",
            plane.addr
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await, (503, 2900));
}
