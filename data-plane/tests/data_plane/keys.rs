//! Virtual keys on the request path (issue 14): authentication on every route without forwarding the key, model
//! allowlists, the limits of a key, its user and its team combined, tokens per minute, and budgets that hold
//! under concurrency (two nodes sharing Redis).

use std::sync::Arc;
use std::time::Duration;

use gatehouse_bus::limits::{BudgetCounter, LimitStore, Reserved};
use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};
use gatehouse_mock_providers::{MockProvider, control};
use gatehouse_shared::access::{
    AccessEntries, Budget, BudgetPeriod, Limits, ModelLimits, NewSecret, SubjectEntry, TpmKind,
    VirtualKeyEntry,
};
use gatehouse_shared::config::GatewayConfigDocument;
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::gateway::{CatalogModel, CatalogModelLocation, CatalogModelType};
use serde_json::{Value, json};

use crate::node::{MASTER, stored_key};
use crate::policy_node::{ACCOUNT, PolicyNode, gateway, redis_stores};

const NATIVE: &str = "/v1/acme/keys/openai/chat/completions";
const COMPAT: &str = "/v1/acme/keys/compat/chat/completions";

/// A key with `limits`, allowed `models`, for `user` and `team`.
fn key(
    id: &str,
    secret: &NewSecret,
    models: &[&str],
    user: Option<&str>,
    team: Option<&str>,
    limits: Limits,
) -> VirtualKeyEntry {
    VirtualKeyEntry {
        id: id.into(),
        name: format!("{id}-name"),
        secret_hash: secret.hash.clone(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        user_id: user.map(Into::into),
        team_id: team.map(Into::into),
        expires_at_ms: None,
        limits,
    }
}

fn subject(id: &str, limits: Limits) -> SubjectEntry {
    SubjectEntry {
        id: id.into(),
        name: format!("{id}-name"),
        limits,
        team_id: None,
    }
}

/// The `keys` gateway: authentication on, a stored OpenAI key, these subjects.
fn keys_gateway(version: i64, access: AccessEntries) -> GatewayConfigDocument {
    let mut doc = gateway("keys", version, |s| {
        s.authentication = true;
        s.models = Some(vec![
            catalog("fast", "openai/gpt-4o-mini"),
            catalog("smart", "anthropic/claude-sonnet-4-5"),
        ]);
    });
    doc.provider_configs = vec![stored_key("openai", "default", true, "sk-stored")];
    doc.access = access;
    doc
}

fn catalog(name: &str, target: &str) -> CatalogModel {
    CatalogModel {
        name: name.into(),
        target: target.into(),
        model_type: CatalogModelType::Chat,
        location: CatalogModelLocation::Global,
        routing: None,
    }
}

fn node(mock: &MockProvider) -> PolicyNode {
    PolicyNode::start_tweaked(mock, None, |s| {
        s.master_key = Some(MasterKey::from_bytes(&MASTER));
    })
}

fn node_with(
    mock: &MockProvider,
    stores: (
        Arc<dyn LimitStore>,
        Arc<dyn gatehouse_bus::response_cache::ResponseCache>,
    ),
) -> PolicyNode {
    PolicyNode::start_tweaked(mock, Some(stores), |s| {
        s.master_key = Some(MasterKey::from_bytes(&MASTER));
    })
}

async fn post(
    node: &PolicyNode,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let mut req = node.http.post(node.url(path)).json(&body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn bearer(secret: &NewSecret) -> String {
    format!("Bearer {}", secret.secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_authenticates_on_every_route_and_never_reaches_the_provider() {
    let mock = MockProvider::start();
    let mut node = node(&mock);
    let secret = NewSecret::generate();
    let access = AccessEntries {
        keys: vec![key(
            "k1",
            &secret,
            &[],
            Some("u1"),
            Some("t1"),
            Limits::default(),
        )],
        users: vec![subject("u1", Limits::default())],
        teams: vec![subject("t1", Limits::default())],
    };
    node.apply(&keys_gateway(1, access));
    let auth = bearer(&secret);

    // As an OpenAI SDK's apiKey on the native path, in cf-aig-authorization, and on /compat.
    let (status, body) = post(
        &node,
        NATIVE,
        &[("authorization", &auth)],
        chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &node,
        NATIVE,
        &[("cf-aig-authorization", &auth)],
        chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &node,
        COMPAT,
        &[("authorization", &auth)],
        chat("openai/gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    for request in &seen {
        assert_eq!(request.header("authorization"), Some("Bearer sk-stored"));
        assert!(
            !format!("{:?}", request.headers).contains(&secret.secret),
            "the key never goes upstream"
        );
    }
    let record = node.next_log().await;
    assert_eq!(record.key_id.as_deref(), Some("k1"));
    assert_eq!(record.user_id.as_deref(), Some("u1"));
    assert_eq!(record.team_id.as_deref(), Some("t1"));
    assert!(record.authenticated);

    // Unknown keys are refused, even where nothing else is; so is no credential on this gateway.
    for headers in [
        vec![("authorization", "Bearer ghk_unknown")],
        vec![("cf-aig-authorization", "Bearer ghk_unknown")],
        vec![],
    ] {
        let (status, body) = post(&node, NATIVE, &headers, chat("gpt-4o-mini")).await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert_eq!(body["internalCode"], 2009);
    }

    // Revoked: the next document no longer lists it.
    node.apply(&keys_gateway(2, AccessEntries::default()));
    let (status, body) = post(
        &node,
        NATIVE,
        &[("authorization", &auth)],
        chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["message"], "Invalid, expired or revoked virtual key");
    assert_eq!(
        mock.requests().len(),
        3,
        "refused requests are not forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused_and_a_gateway_without_authentication_refuses_it_too() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let secret = NewSecret::generate();
    let mut expired = key("old", &secret, &[], None, None, Limits::default());
    expired.expires_at_ms = Some(1_000);
    let mut doc = keys_gateway(
        1,
        AccessEntries {
            keys: vec![expired],
            ..AccessEntries::default()
        },
    );
    doc.settings.authentication = false;
    node.apply(&doc);
    let (status, body) = post(
        &node,
        NATIVE,
        &[("authorization", &bearer(&secret))],
        chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // The same gateway serves anonymous callers (authentication is off).
    let (status, _) = post(
        &node,
        NATIVE,
        &[("authorization", "Bearer sk-mine")],
        chat("gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_allowlists_match_globs_and_refuse_with_403_in_the_clients_shape() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let secret = NewSecret::generate();
    node.apply(&keys_gateway(
        1,
        AccessEntries {
            keys: vec![key(
                "k",
                &secret,
                &["openai/gpt-4o*", "groq/llama-3.3-70b"],
                None,
                None,
                Limits::default(),
            )],
            ..AccessEntries::default()
        },
    ));
    let auth = bearer(&secret);
    let h = [("authorization", auth.as_str())];
    assert_eq!(post(&node, NATIVE, &h, chat("gpt-4o-mini")).await.0, 200);
    assert_eq!(post(&node, COMPAT, &h, chat("openai/gpt-4o")).await.0, 200);
    assert_eq!(
        post(&node, COMPAT, &h, chat("fast")).await.0,
        200,
        "a catalog name resolves to an allowed target"
    );

    let (status, body) = post(&node, COMPAT, &h, chat("anthropic/claude-sonnet-4-5")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["type"], "permission_error");
    assert_eq!(body["error"]["code"], "model_not_allowed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic/claude-sonnet-4-5"),
        "{body}"
    );
    let (status, body) = post(&node, NATIVE, &h, chat("gpt-4.1")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["internalCode"], 2905);
    assert!(body["message"].as_str().unwrap().contains("openai/gpt-4.1"));

    // The model list shows only what the key may call: the allowed catalog entry and its exact patterns.
    let list: Value = node
        .http
        .get(node.url("/v1/acme/keys/compat/models"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "groq/llama-3.3-70b"], "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_user_and_team_request_rates_combine_and_a_refusal_uses_no_allowance() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let (a, b) = (NewSecret::generate(), NewSecret::generate());
    let rpm = |n| Limits {
        rpm: Some(n),
        ..Limits::default()
    };
    node.apply(&keys_gateway(
        1,
        AccessEntries {
            keys: vec![
                key("a", &a, &[], Some("ada"), Some("research"), rpm(10)),
                key("b", &b, &[], Some("ada"), Some("research"), rpm(1)),
            ],
            users: vec![subject("ada", rpm(3))],
            teams: vec![subject("research", Limits::default())],
        },
    ));
    let send = |secret: &NewSecret| {
        let auth = bearer(secret);
        let node = &node;
        async move {
            post(
                node,
                NATIVE,
                &[("authorization", &auth)],
                chat("gpt-4o-mini"),
            )
            .await
        }
    };
    assert_eq!(send(&b).await.0, 200);
    let (status, body) = send(&b).await;
    assert_eq!(status, 429, "key b's own limit: {body}");
    assert_eq!(body["internalCode"], 2906);
    assert!(
        body["message"].as_str().unwrap().contains("key 'b-name'"),
        "{body}"
    );
    // Key b's refusal did not count against the user: ada still has two of her three.
    assert_eq!(send(&a).await.0, 200);
    assert_eq!(send(&a).await.0, 200);
    let (status, body) = send(&a).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("user 'ada-name'"),
        "{body}"
    );
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_count_the_answers_tokens() {
    let mock = MockProvider::start();
    let mut node = node(&mock);
    let secret = NewSecret::generate();
    let limits = Limits {
        tpm: Some(5),
        tpm_kind: TpmKind::Output,
        ..Limits::default()
    };
    let mut doc = keys_gateway(
        1,
        AccessEntries {
            keys: vec![key("t", &secret, &[], None, None, limits)],
            ..AccessEntries::default()
        },
    );
    doc.settings.collect_logs = false;
    node.apply(&doc);
    let auth = bearer(&secret);
    let (status, body) = post(
        &node,
        COMPAT,
        &[("authorization", &auth)],
        chat("openai/gpt-4o-mini"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() >= 5,
        "{body}"
    );
    // The tokens are counted in the logging phase, just after the response.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let resp = node
            .http
            .post(node.url(COMPAT))
            .header("authorization", &auth)
            .json(&chat("openai/gpt-4o-mini"))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "60");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("5 tokens per minute"),
                "{body}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tokens were never counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        node.drain_logs().await.is_empty(),
        "a gateway without logs submits none"
    );
}

/// The proof: 50 concurrent streaming requests through two nodes sharing Redis against a nearly spent
/// budget overrun it by no more than the holds in flight, which the budget counts, so not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_streams_against_a_nearly_spent_budget_never_overrun_it() {
    let Some(url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("keys-budget");
    let mock = MockProvider::start();
    let stores_a = redis_stores(&url, &prefix);
    let limits = Arc::clone(&stores_a.0);
    let mut a = node_with(&mock, stores_a);
    let mut b = node_with(&mock, redis_stores(&url, &prefix));
    let secret = NewSecret::generate();
    const BUDGET_USD: f64 = 0.01;
    let budget = Limits {
        budget: Some(Budget {
            amount_usd: BUDGET_USD,
            period: BudgetPeriod::Month,
        }),
        ..Limits::default()
    };
    let doc = keys_gateway(
        1,
        AccessEntries {
            keys: vec![key("spender", &secret, &[], None, None, budget)],
            ..AccessEntries::default()
        },
    );
    a.apply(&doc);
    b.apply(&doc);

    // Nearly spent: all but $0.0005 of it, through the store as earlier requests would have settled it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (start, end) = BudgetPeriod::Month.window_at(now);
    let counter = BudgetCounter {
        key: format!("vk:{ACCOUNT}:key:spender:budget:month:{start}"),
        limit: 10_000_000,
        period_end_ms: end,
    };
    let spent_before = 9_500_000;
    match limits
        .reserve(
            "earlier",
            std::slice::from_ref(&counter),
            spent_before,
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    {
        Reserved::Held(r) => limits.settle(&r, spent_before).await.unwrap(),
        refused => panic!("{refused:?}"),
    }

    // gpt-4o-mini at $0.15 / $0.60 per million: max_tokens 100 holds about $0.0000726 per request, so only a
    // handful of the 50 fit in what is left.
    let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 100, "messages": [{"role": "user", "content": "count"}]});
    let auth = bearer(&secret);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = a.http.clone();
        let target = if i % 2 == 0 {
            a.url(NATIVE)
        } else {
            b.url(NATIVE)
        };
        let (auth, body) = (auth.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(target)
                .header("authorization", auth)
                // Each stream lasts two seconds, so every admitted one is still in flight when the last arrives.
                .header(control::CHUNK_DELAY_MS, "500")
                .header(control::CHUNKS, "4")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }));
    }
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, text) = task.await.unwrap();
        match status {
            200 => {
                assert!(text.contains("[DONE]"), "{text}");
                admitted += 1;
            }
            429 => {
                let body: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(body["internalCode"], 2907, "{body}");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("per month (UTC) for key 'spender-name'"),
                    "{body}"
                );
                refused += 1;
            }
            other => panic!("{other}: {text}"),
        }
    }
    assert!(
        admitted >= 1 && refused >= 1,
        "admitted {admitted}, refused {refused}"
    );
    let hold = 500_000 / admitted;
    assert!(
        hold >= 60_000,
        "no more were admitted than their holds allow: {admitted}"
    );

    // What they really cost, settled by both nodes, keeps the total within the budget.
    let records: Vec<_> = a
        .drain_logs()
        .await
        .into_iter()
        .chain(b.drain_logs().await)
        .filter(|r| r.status_code == 200)
        .collect();
    assert_eq!(records.len(), admitted as usize);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let spent = loop {
        let spent = limits
            .budget_spent(std::slice::from_ref(&counter))
            .await
            .unwrap()[0];
        if spent > spent_before || std::time::Instant::now() > deadline {
            break spent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let real: f64 = records.iter().filter_map(|r| r.cost).sum();
    assert!(real > 0.0);
    assert!(spent > spent_before, "the streams' costs were settled");
    assert!(spent <= counter.limit, "spent {spent} of {}", counter.limit);
    drop((a, b));
    delete_prefix(&url, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_model_limits_count_only_their_models() {
    let mock = MockProvider::start();
    let node = node(&mock);
    let secret = NewSecret::generate();
    let limits = Limits {
        models: vec![ModelLimits {
            model: "openai/gpt-4o".into(),
            rpm: Some(1),
            tpm: None,
            budget: None,
        }],
        ..Limits::default()
    };
    node.apply(&keys_gateway(
        1,
        AccessEntries {
            keys: vec![key("m", &secret, &[], None, None, limits)],
            ..AccessEntries::default()
        },
    ));
    let auth = bearer(&secret);
    let h = [("authorization", auth.as_str())];
    assert_eq!(post(&node, NATIVE, &h, chat("gpt-4o")).await.0, 200);
    let (status, body) = post(&node, NATIVE, &h, chat("gpt-4o")).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("on 'openai/gpt-4o'"),
        "{body}"
    );
    assert_eq!(
        post(&node, NATIVE, &h, chat("gpt-4o-mini")).await.0,
        200,
        "another model is not limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_two_nodes_a_keys_requests_per_minute_never_exceed_its_limit() {
    let Some(url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("keys-rpm");
    let mock = MockProvider::start();
    let a = node_with(&mock, redis_stores(&url, &prefix));
    let b = node_with(&mock, redis_stores(&url, &prefix));
    let secret = NewSecret::generate();
    let limits = Limits {
        rpm: Some(5),
        ..Limits::default()
    };
    let doc = keys_gateway(
        1,
        AccessEntries {
            keys: vec![key("shared", &secret, &[], None, None, limits)],
            ..AccessEntries::default()
        },
    );
    a.apply(&doc);
    b.apply(&doc);
    let auth = bearer(&secret);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let http = a.http.clone();
        let target = if i % 2 == 0 {
            a.url(NATIVE)
        } else {
            b.url(NATIVE)
        };
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            http.post(target)
                .header("authorization", auth)
                .json(&chat("gpt-4o-mini"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        (1..=5).contains(&admitted),
        "admitted {admitted} of 30 under a limit of 5"
    );
    assert_eq!(mock.requests().len(), admitted);
    drop((a, b));
    delete_prefix(&url, &prefix);
}
