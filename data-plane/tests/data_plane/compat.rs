//! The OpenAI-compatible endpoint, `/v1/{account}/{gateway}/compat/…`: model naming, passthrough to
//! OpenAI-compatible providers with only `model` rewritten, OpenAI-shaped refusals that never reach a provider,
//! and a gateway token carried as the SDK's `apiKey`.

use gatehouse_mock_providers::MockProvider;
use gatehouse_shared::config::DeploymentDocument;
use gatehouse_shared::token::Scope;
use serde_json::{Value, json};

use crate::node::{Node, Signer, gateway, stored_key};

const COMPAT: &str = "/v1/acme/gw/compat/chat/completions";

async fn post(
    node: &Node,
    path: &str,
    auth: Option<&str>,
    body: String,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = node.http.post(node.url(path)).body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = match serde_json::from_str(&text) {
        Ok(json) => json,
        Err(_) => Value::String(text),
    };
    (status, headers, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_model_passes_through_with_only_the_model_rewritten() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let body = r#"{"model":"openai/gpt-4o-mini", "messages":[{"role":"user","content":"hello"}],"temperature":0.2}"#;
    let (status, headers, json) =
        post(&node, COMPAT, Some("Bearer sk-client"), body.to_owned()).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(headers["cf-aig-provider"], "openai");
    assert_eq!(headers["cf-aig-model"], "gpt-4o-mini");
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("authorization"), Some("Bearer sk-client"));
    assert_eq!(
        std::str::from_utf8(&seen.body).unwrap(),
        r#"{"model":"gpt-4o-mini", "messages":[{"role":"user","content":"hello"}],"temperature":0.2}"#
    );

    // Embeddings pass the same way.
    let (status, _, json) = post(
        &node,
        "/v1/acme/gw/compat/embeddings",
        Some("Bearer sk-client"),
        json!({"model": "openai/text-embedding-3-small", "input": "hi"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["object"], "list");
    assert_eq!(mock.requests().pop().unwrap().path, "/v1/embeddings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_in_openai_shape_before_any_provider_call() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(gateway("acme", "gw", 1));
    let cases: [(&str, Option<&str>); 7] = [
        ("{not json", None),
        (r#"{"model":"anthropic/claude-x"}"#, None),
        (r#"{"model":"anthropic/claude-x","messages":"hello"}"#, None),
        (
            r#"{"model":"anthropic/claude-x","messages":[]}"#,
            Some("messages"),
        ),
        (
            r#"{"model":"anthropic/claude-x","messages":[{"role":"user","content":"x"}],"temperature":3}"#,
            Some("temperature"),
        ),
        (
            r#"{"model":"anthropic/claude-x","messages":[{"role":"tool","content":"x"}]}"#,
            Some("messages[0].tool_call_id"),
        ),
        (
            r#"{"model":"anthropic/claude-x","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"has space"}}]}"#,
            Some("tools[0].function.name"),
        ),
    ];
    for (body, param) in cases {
        let (status, _, json) = post(&node, COMPAT, Some("Bearer sk"), body.to_owned()).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(
            json["error"]["type"], "invalid_request_error",
            "{body}: {json}"
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        if let Some(param) = param {
            assert_eq!(json["error"]["param"], param, "{body}");
        }
    }
    // Cloudflare's own codes for model naming (spec §2.6).
    let (status, _, json) = post(
        &node,
        COMPAT,
        Some("Bearer sk"),
        json!({"model": "nosuch/model", "messages": [{"role": "user", "content": "x"}]})
            .to_string(),
    )
    .await;
    assert_eq!(
        (status, json["internalCode"].as_u64()),
        (400, Some(2008)),
        "{json}"
    );
    let (status, _, json) = post(
        &node,
        COMPAT,
        Some("Bearer sk"),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}).to_string(),
    )
    .await;
    assert_eq!(
        (status, json["internalCode"].as_u64()),
        (400, Some(2005)),
        "{json}"
    );
    // An operation the endpoint does not have.
    let (status, _, _) = post(&node, "/v1/acme/gw/compat/completions", None, "{}".into()).await;
    assert_eq!(status, 404);
    assert!(mock.requests().is_empty(), "nothing may reach a provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_token_as_the_api_key_authenticates_and_the_stored_key_goes_upstream() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    let signer = Signer::new("key-1");
    node.store.apply_deployment(
        &DeploymentDocument {
            schema: 1,
            version: 1,
            verification_keys: vec![signer.public.clone()],
            revoked_tokens: vec![],
        },
        "d1",
    );
    let mut doc = gateway("acme", "gw", 1);
    doc.settings.authentication = true;
    doc.provider_configs = vec![stored_key("openai", "main", true, "sk-stored")];
    node.add_gateway(doc);
    let body =
        json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
            .to_string();

    let token = signer.token("t1", &["acme"], &[Scope::AiGatewayRun]);
    let (status, _, json) = post(
        &node,
        COMPAT,
        Some(&format!("Bearer {token}")),
        body.clone(),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.header("authorization"), Some("Bearer sk-stored"));

    // A provider key is not a gateway token: the authenticated gateway refuses it.
    let (status, _, json) = post(&node, COMPAT, Some("Bearer sk-client"), body).await;
    assert_eq!(
        (status, json["internalCode"].as_u64()),
        (401, Some(2009)),
        "{json}"
    );
}

fn catalog_gateway() -> gatehouse_shared::config::GatewayConfigDocument {
    use gatehouse_shared::gateway::{
        CatalogModel, CatalogModelLocation as L, CatalogModelType as T, CorsSettings,
    };
    let mut doc = gateway("acme", "gw", 1);
    let entry = |name: &str, target: &str, model_type, location| CatalogModel {
        name: name.into(),
        target: target.into(),
        model_type,
        location,
        routing: None,
    };
    doc.settings.models = Some(vec![
        entry("gpt-5", "openai/gpt-5", T::Chat, L::Regional),
        entry("claude", "anthropic/claude-sonnet-4-5", T::Chat, L::Global),
        entry(
            "small-embed",
            "openai/text-embedding-3-small",
            T::Embedding,
            L::Regional,
        ),
    ]);
    doc.settings.hostnames = Some(vec!["llm.acme.test".into()]);
    doc.settings.cors = Some(CorsSettings {
        allowed_origins: vec![
            "https://app.acme.test".into(),
            "https://*.tools.acme.test".into(),
        ],
    });
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_names_resolve_exactly_by_type_and_region() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(catalog_gateway());
    let chat = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "x"}]}).to_string()
    };

    let (status, headers, json) = post(&node, COMPAT, Some("Bearer sk"), chat("gpt-5")).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(headers["cf-aig-model"], "gpt-5");
    assert_eq!(
        mock.requests().pop().unwrap().json().unwrap()["model"],
        "gpt-5"
    );

    for (path, body) in [
        (COMPAT, chat("gpt-5-mini")),
        (COMPAT, chat("small-embed")),
        (
            "/v1/acme/gw/compat/embeddings",
            json!({"model": "gpt-5", "input": "x"}).to_string(),
        ),
    ] {
        let (status, _, json) = post(&node, path, Some("Bearer sk"), body.clone()).await;
        assert_eq!(status, 404, "{body}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("No matching route found"),
            "{json}"
        );
    }
    let (status, _, json) = post(
        &node,
        "/v1/acme/gw/compat/embeddings",
        Some("Bearer sk"),
        json!({"model": "small-embed", "input": "x"}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{json}");

    // A regional-only gateway refuses its global models and no longer lists them.
    let mut doc = catalog_gateway();
    doc.version = 2;
    doc.settings.regional_only = Some(true);
    node.add_gateway(doc);
    let (status, _, _) = post(&node, COMPAT, Some("Bearer sk"), chat("claude")).await;
    assert_eq!(status, 404);
    let models: Value = node
        .http
        .get(node.url("/v1/acme/gw/compat/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-5", "small-embed"]);
    assert_eq!(models["data"][0]["owned_by"], "openai");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_host_name_reaches_its_gateway_at_v1() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(catalog_gateway());
    let body =
        json!({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}).to_string();
    for host in ["llm.acme.test", "LLM.acme.test:8443"] {
        let resp = node
            .http
            .post(node.url("/v1/chat/completions"))
            .header("host", host)
            .header("authorization", "Bearer sk")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(mock.requests().pop().unwrap().path, "/v1/chat/completions");
    }
    // Provider-native paths under the host, and the model list.
    let resp = node
        .http
        .post(node.url("/v1/openai/chat/completions"))
        .header("host", "llm.acme.test")
        .header("authorization", "Bearer sk")
        .body(
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = node
        .http
        .get(node.url("/v1/models"))
        .header("host", "llm.acme.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Another host is not routed: `/v1/chat/completions` is then no endpoint of this node.
    let resp = node
        .http
        .post(node.url("/v1/chat/completions"))
        .header("host", "other.test")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_listed_origins_only() {
    let mock = MockProvider::start();
    let node = Node::start(&mock, |_| {});
    node.add_gateway(catalog_gateway());
    let preflight = |origin: &'static str| {
        node.http
            .request(reqwest::Method::OPTIONS, node.url(COMPAT))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    for origin in ["https://app.acme.test", "https://x.tools.acme.test"] {
        let resp = preflight(origin).await.unwrap();
        assert_eq!(resp.status(), 204);
        assert_eq!(resp.headers()["access-control-allow-origin"], origin);
        assert_eq!(
            resp.headers()["access-control-allow-headers"],
            "authorization, content-type"
        );
        assert!(
            resp.headers()["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("POST")
        );
    }
    let resp = preflight("https://evil.test").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert!(mock.requests().is_empty(), "a preflight is never forwarded");

    let body =
        json!({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}).to_string();
    for (origin, allowed) in [
        ("https://app.acme.test", true),
        ("https://evil.test", false),
    ] {
        let resp = node
            .http
            .post(node.url(COMPAT))
            .header("origin", origin)
            .header("authorization", "Bearer sk")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let acao = resp
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(acao.as_deref(), allowed.then_some(origin), "{origin}");
        if allowed {
            assert!(
                resp.headers()["access-control-expose-headers"]
                    .to_str()
                    .unwrap()
                    .contains("cf-aig-request-id")
            );
        }
    }
}
