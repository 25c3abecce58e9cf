//! Gatehouse's own gateway fields (`models`, `regional_only`, `hostnames`, `cors`, `tpm_limit`,
//! `identity_providers`): unknown to Cloudflare's schema, optional, absent from responses when unset, validated with
//! the field's path, and host names unique across the deployment.

use gatehouse_bus::{ConfigBus, GatewayEntry, StoredDocument};
use gatehouse_shared::config::{GatewayConfigDocument, GatewayKey};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, error_paths, minimal_gateway};

on_both_backends!(
    the_extensions_round_trip_through_create_get_list_and_put,
    gateways_that_never_set_the_extensions_do_not_show_them,
    bad_extension_values_are_400s_naming_the_field,
    a_hostname_claimed_by_another_gateway_of_any_account_is_a_400,
    concurrent_claims_of_one_hostname_leave_one_owner,
    a_claim_waits_for_an_uncommitted_claim_of_the_same_name,
    the_published_document_carries_the_extensions,
);

const EXTENSIONS: [&str; 6] = [
    "models",
    "regional_only",
    "hostnames",
    "cors",
    "tpm_limit",
    "identity_providers",
];

fn with_extensions(id: &str) -> Value {
    let mut body = minimal_gateway(id);
    body.as_object_mut().unwrap().extend(
        json!({
            "models": [
                {"name": "gpt-5", "target": "openai/gpt-5", "type": "chat", "location": "global"},
                {"name": "sonar", "target": "perplexity/sonar", "type": "chat", "location": "regional"},
                {"name": "embed", "target": "custom-my-llm/e5", "type": "embedding", "location": "regional"}
            ],
            "regional_only": true,
            "hostnames": ["AI.Example.com", "llm.example.org"],
            "cors": {"allowed_origins": ["https://App.example.com", "https://*.example.org", "http://localhost:3000"]},
            "tpm_limit": 250000,
            "identity_providers": [
                {"issuer": "https://idp.example.com/realms/acme", "audience": "gatehouse",
                 "jwks_url": "https://idp.example.com/realms/acme/protocol/openid-connect/certs"},
                {"issuer": "https://login.example.org", "audience": ["api", "gatehouse"],
                 "jwks_url": "http://127.0.0.1:8080/keys", "algorithms": ["ES256", "EdDSA"],
                 "user_claim": "email", "team_claim": "groups", "dpop": "required", "leeway_seconds": 30}
            ]
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    body
}

/// What [`with_extensions`] reads back as: host names and origins lower-cased.
fn expected_extensions() -> Value {
    json!({
        "models": [
            {"name": "gpt-5", "target": "openai/gpt-5", "type": "chat", "location": "global"},
            {"name": "sonar", "target": "perplexity/sonar", "type": "chat", "location": "regional"},
            {"name": "embed", "target": "custom-my-llm/e5", "type": "embedding", "location": "regional"}
        ],
        "regional_only": true,
        "hostnames": ["ai.example.com", "llm.example.org"],
        "cors": {"allowed_origins": ["https://app.example.com", "https://*.example.org", "http://localhost:3000"]},
        "tpm_limit": 250000,
        "identity_providers": [
            {"issuer": "https://idp.example.com/realms/acme", "audience": ["gatehouse"],
             "jwks_url": "https://idp.example.com/realms/acme/protocol/openid-connect/certs",
             "algorithms": ["RS256", "ES256"], "user_claim": "sub", "dpop": "optional", "leeway_seconds": 60},
            {"issuer": "https://login.example.org", "audience": ["api", "gatehouse"],
             "jwks_url": "http://127.0.0.1:8080/keys", "algorithms": ["ES256", "EdDSA"],
             "user_claim": "email", "team_claim": "groups", "dpop": "required", "leeway_seconds": 30}
        ]
    })
}

#[track_caller]
fn assert_extensions(gateway: &Value, want: &Value) {
    for field in EXTENSIONS {
        assert_eq!(gateway[field], want[field], "{field} in {gateway}");
    }
}

#[track_caller]
fn assert_no_extensions(gateway: &Value) {
    for field in EXTENSIONS {
        assert!(
            gateway.get(field).is_none(),
            "{field} must be absent: {gateway}"
        );
    }
}

async fn the_extensions_round_trip_through_create_get_list_and_put(app: TestApp) {
    let url = app.gw_url("acme", "/gateways/ext");
    let (status, created) = app
        .post(&app.gw_url("acme", "/gateways"), &with_extensions("ext"))
        .await;
    assert_eq!(status, 200, "{created}");
    assert_extensions(&created["result"], &expected_extensions());

    let (status, got) = app.get(&url).await;
    assert_eq!(status, 200);
    assert_eq!(got["result"], created["result"]);
    let (status, listed) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["result"][0], created["result"]);

    // PUT with new values replaces them.
    let mut replace = minimal_gateway("ext");
    replace["models"] = json!([{"name": "haiku", "target": "anthropic/claude-haiku-4-5", "type": "chat", "location": "global",
        "routing": {"targets": [{"provider": "anthropic", "model": "claude-haiku-4-5", "weight": 3},
            {"provider": "aws-bedrock", "model": "us.anthropic.claude-haiku-4-5-20251001-v1:0"}], "balance": "least_latency"}}]);
    replace["regional_only"] = json!(false);
    replace["hostnames"] = json!(["gw.example.net"]);
    replace["cors"] = json!({"allowed_origins": ["*"]});
    replace["tpm_limit"] = json!(1000);
    replace["identity_providers"] = json!([{"issuer": "https://idp.example.net", "audience": "gw",
        "jwks_url": "https://idp.example.net/jwks", "dpop": "off"}]);
    let (status, replaced) = app.put(&url, &replace).await;
    assert_eq!(status, 200, "{replaced}");
    let replaced = &replaced["result"];
    assert_eq!(replaced["models"][0]["name"], "haiku");
    assert_eq!(replaced["models"][0]["routing"]["balance"], "least_latency");
    assert_eq!(replaced["models"].as_array().unwrap().len(), 1);
    assert_eq!(replaced["regional_only"], false);
    assert_eq!(replaced["hostnames"], json!(["gw.example.net"]));
    assert_eq!(replaced["cors"], json!({"allowed_origins": ["*"]}));
    assert_eq!(replaced["tpm_limit"], 1000);
    assert_eq!(
        replaced["identity_providers"],
        json!([{"issuer": "https://idp.example.net", "audience": ["gw"],
            "jwks_url": "https://idp.example.net/jwks", "algorithms": ["RS256", "ES256"], "user_claim": "sub",
            "dpop": "off", "leeway_seconds": 60}])
    );

    // PUT without them keeps them.
    let mut other_change = minimal_gateway("ext");
    other_change["cache_ttl"] = json!(60);
    let (status, kept) = app.put(&url, &other_change).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["result"]["cache_ttl"], 60);
    assert_extensions(&kept["result"], replaced);

    // An explicit null clears each, and a cleared field is absent again.
    let mut clear = minimal_gateway("ext");
    for field in EXTENSIONS {
        clear[field] = Value::Null;
    }
    let (status, cleared) = app.put(&url, &clear).await;
    assert_eq!(status, 200, "{cleared}");
    assert_no_extensions(&cleared["result"]);
    let (_, got) = app.get(&url).await;
    assert_no_extensions(&got["result"]);
}

async fn gateways_that_never_set_the_extensions_do_not_show_them(app: TestApp) {
    let created = app.create_gateway("acme", "plain").await;
    assert_no_extensions(&created);
    let url = app.gw_url("acme", "/gateways/plain");
    let (_, got) = app.get(&url).await;
    assert_no_extensions(&got["result"]);
    let (_, listed) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_no_extensions(&listed["result"][0]);
    let (status, updated) = app.put(&url, &minimal_gateway("plain")).await;
    assert_eq!(status, 200, "{updated}");
    assert_no_extensions(&updated["result"]);
    let (_, deleted) = app.delete(&url).await;
    assert_no_extensions(&deleted["result"]);
}

async fn bad_extension_values_are_400s_naming_the_field(app: TestApp) {
    let model = |name: &str, target: &str| json!({"name": name, "target": target, "type": "chat", "location": "global"});
    let idp = |overrides: Value| {
        let mut p = json!({"issuer": "https://idp.example.com", "audience": "gatehouse",
            "jwks_url": "https://idp.example.com/jwks"});
        for (k, v) in overrides.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let routed = |routing: Value| {
        let mut m = model("smart", "openai/a");
        m["routing"] = routing;
        json!([m])
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        // Catalog routing (issue 15): checked as a route's model element is.
        ("models", routed(json!("weighted")), "models.0.routing"),
        ("models", routed(json!({"targets": []})), "models.0.routing"),
        (
            "models",
            routed(json!({"targets": [{"provider": "nope", "model": "x"}]})),
            "models.0.routing",
        ),
        (
            "models",
            routed(json!({"targets": [{"provider": "anthropic", "model": "b"}]})),
            "models.0.routing",
        ),
        (
            "models",
            routed(json!({"balance": "random"})),
            "models.0.routing",
        ),
        // Wrong types.
        ("models", json!({"name": "gpt-5"}), "models"),
        ("models", json!(["gpt-5"]), "models.0"),
        (
            "models",
            json!([{"name": 5, "target": "openai/x", "type": "chat", "location": "global"}]),
            "models.0.name",
        ),
        ("regional_only", json!("true"), "regional_only"),
        ("regional_only", json!(1), "regional_only"),
        ("hostnames", json!("ai.example.com"), "hostnames"),
        ("hostnames", json!([42]), "hostnames.0"),
        ("cors", json!("*"), "cors"),
        (
            "cors",
            json!({"allowed_origins": "https://a.example.com"}),
            "cors.allowed_origins",
        ),
        (
            "cors",
            json!({"allowed_origins": [1]}),
            "cors.allowed_origins.0",
        ),
        ("cors", json!({}), "cors.allowed_origins"),
        // Names, targets, enums.
        ("models", json!([model("", "openai/x")]), "models.0.name"),
        (
            "models",
            json!([model("gpt 5", "openai/x")]),
            "models.0.name",
        ),
        (
            "models",
            json!([model("openai/gpt-5", "openai/x")]),
            "models.0.name",
        ),
        (
            "models",
            json!([model(&"n".repeat(129), "openai/x")]),
            "models.0.name",
        ),
        (
            "models",
            json!([
                model("a", "openai/x"),
                model("b", "openai/y"),
                model("a", "openai/z")
            ]),
            "models.2.name",
        ),
        ("models", json!([model("a", "gpt-5")]), "models.0.target"),
        ("models", json!([model("a", "openai/")]), "models.0.target"),
        (
            "models",
            json!([model("a", "nosuch/gpt-5")]),
            "models.0.target",
        ),
        (
            "models",
            json!([model("a", "compat/openai/gpt-5")]),
            "models.0.target",
        ),
        (
            "models",
            json!([{"name": "a", "target": "openai/x", "type": "image", "location": "global"}]),
            "models.0.type",
        ),
        (
            "models",
            json!([{"name": "a", "target": "openai/x", "type": "chat", "location": "moon"}]),
            "models.0.location",
        ),
        (
            "models",
            json!([{"name": "a", "target": "openai/x", "type": "chat"}]),
            "models.0.location",
        ),
        // Host names.
        ("hostnames", json!(["localhost"]), "hostnames.0"),
        ("hostnames", json!(["ai.example.com:443"]), "hostnames.0"),
        ("hostnames", json!(["*.example.com"]), "hostnames.0"),
        (
            "hostnames",
            json!(["https://ai.example.com"]),
            "hostnames.0",
        ),
        ("hostnames", json!(["ai_gw.example.com"]), "hostnames.0"),
        ("hostnames", json!(["-ai.example.com"]), "hostnames.0"),
        ("hostnames", json!(["192.168.0.1"]), "hostnames.0"),
        (
            "hostnames",
            json!(["ai.example.com", "AI.EXAMPLE.COM"]),
            "hostnames.1",
        ),
        // Origins.
        (
            "cors",
            json!({"allowed_origins": ["https://a.example.com/"]}),
            "cors.allowed_origins.0",
        ),
        (
            "cors",
            json!({"allowed_origins": ["https://ok.example.com", "a.example.com"]}),
            "cors.allowed_origins.1",
        ),
        (
            "cors",
            json!({"allowed_origins": ["ftp://a.example.com"]}),
            "cors.allowed_origins.0",
        ),
        (
            "cors",
            json!({"allowed_origins": ["https://a.*.example.com"]}),
            "cors.allowed_origins.0",
        ),
        (
            "cors",
            json!({"allowed_origins": ["https://*.com"]}),
            "cors.allowed_origins.0",
        ),
        // The gateway-wide token limit: a whole number from 1.
        ("tpm_limit", json!(0), "tpm_limit"),
        ("tpm_limit", json!(-1), "tpm_limit"),
        ("tpm_limit", json!(2.5), "tpm_limit"),
        ("tpm_limit", json!("1000"), "tpm_limit"),
        // Identity providers: shape, issuer, audience, JWKS URL, algorithms, claims, DPoP mode, leeway.
        ("identity_providers", json!({}), "identity_providers"),
        ("identity_providers", json!(["x"]), "identity_providers.0"),
        (
            "identity_providers",
            json!([idp(json!({"issuer": null}))]),
            "identity_providers.0.issuer",
        ),
        (
            "identity_providers",
            json!([idp(json!({"issuer": "gatehouse"}))]),
            "identity_providers.0.issuer",
        ),
        (
            "identity_providers",
            json!([idp(json!({})), idp(json!({"audience": "other"}))]),
            "identity_providers.1.issuer",
        ),
        (
            "identity_providers",
            json!([idp(json!({"audience": []}))]),
            "identity_providers.0.audience",
        ),
        (
            "identity_providers",
            json!([idp(json!({"audience": [""]}))]),
            "identity_providers.0.audience.0",
        ),
        (
            "identity_providers",
            json!([idp(json!({"jwks_url": "http://idp.example.com/jwks"}))]),
            "identity_providers.0.jwks_url",
        ),
        (
            "identity_providers",
            json!([idp(
                json!({"jwks_url": "https://user:pw@idp.example.com/jwks"})
            )]),
            "identity_providers.0.jwks_url",
        ),
        (
            "identity_providers",
            json!([idp(json!({"algorithms": ["HS256"]}))]),
            "identity_providers.0.algorithms.0",
        ),
        (
            "identity_providers",
            json!([idp(json!({"algorithms": "RS256"}))]),
            "identity_providers.0.algorithms",
        ),
        (
            "identity_providers",
            json!([idp(json!({"user_claim": 5}))]),
            "identity_providers.0.user_claim",
        ),
        (
            "identity_providers",
            json!([idp(json!({"dpop": "sometimes"}))]),
            "identity_providers.0.dpop",
        ),
        (
            "identity_providers",
            json!([idp(json!({"leeway_seconds": -1}))]),
            "identity_providers.0.leeway_seconds",
        ),
        // Too many.
        (
            "identity_providers",
            json!(
                (0..9)
                    .map(|i| idp(json!({"issuer": format!("https://idp{i}.example.com")})))
                    .collect::<Vec<_>>()
            ),
            "identity_providers",
        ),
        ("models", json!(vec![json!({}); 1001]), "models"),
        (
            "hostnames",
            json!(
                (0..33)
                    .map(|i| format!("h{i}.example.com"))
                    .collect::<Vec<_>>()
            ),
            "hostnames",
        ),
        (
            "cors",
            json!({"allowed_origins": (0..65).map(|i| format!("https://h{i}.example.com")).collect::<Vec<_>>()}),
            "cors.allowed_origins",
        ),
    ];
    app.create_gateway("acme", "target").await;
    for (field, value, path) in cases {
        let mut body = minimal_gateway("bad");
        body[field] = value.clone();
        let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![path.to_owned()],
            "POST {field}={value}: {resp}"
        );
        let message = resp["errors"][0]["message"].as_str().unwrap();
        assert!(!message.is_empty());

        body["id"] = json!("target");
        let (status, resp) = app
            .put(&app.gw_url("acme", "/gateways/target"), &body)
            .await;
        assert_error(status, &resp, 400, 7001);
        assert_eq!(
            error_paths(&resp),
            vec![path.to_owned()],
            "PUT {field}={value}: {resp}"
        );
    }
    let (_, listed) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_eq!(
        listed["result_info"]["total_count"], 1,
        "nothing was created"
    );
    assert_no_extensions(&listed["result"][0]);

    // Every problem is reported at once, each at its path.
    let mut body = minimal_gateway("many");
    body["hostnames"] = json!(["ok.example.com", "bad host"]);
    body["models"] = json!([model("a", "nosuch/x")]);
    body["regional_only"] = json!("no");
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &body).await;
    assert_error(status, &resp, 400, 7001);
    let mut paths = error_paths(&resp);
    paths.sort();
    assert_eq!(paths, ["hostnames.1", "models.0.target", "regional_only"]);
    let target_error = resp["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == json!(["models", "0", "target"]))
        .unwrap();
    assert!(
        target_error["message"]
            .as_str()
            .unwrap()
            .contains("Unknown provider 'nosuch'"),
        "{resp}"
    );
}

async fn a_hostname_claimed_by_another_gateway_of_any_account_is_a_400(app: TestApp) {
    let mut owner = minimal_gateway("owner");
    owner["hostnames"] = json!(["ai.example.com", "second.example.com"]);
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &owner).await;
    assert_eq!(status, 200, "{resp}");

    // Another account, on create: refused, naming the host name but not who holds it.
    let mut rival = minimal_gateway("rival");
    rival["hostnames"] = json!(["free.example.com", "AI.example.com"]);
    let (status, resp) = app.post(&app.gw_url("globex", "/gateways"), &rival).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["hostnames.1"]);
    let message = resp["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("'ai.example.com'"), "{message}");
    assert!(message.contains("already claimed"), "{message}");
    assert!(
        !resp.to_string().contains("acme") && !resp.to_string().contains("owner"),
        "the error must not reveal the other account or gateway: {resp}"
    );
    let (status, resp) = app.get(&app.gw_url("globex", "/gateways/rival")).await;
    assert_error(status, &resp, 404, 7003);

    // Another account, on PUT: refused, and the gateway keeps what it had.
    app.create_gateway("globex", "rival").await;
    let (status, resp) = app
        .put(&app.gw_url("globex", "/gateways/rival"), &rival)
        .await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["hostnames.1"]);
    let (_, got) = app.get(&app.gw_url("globex", "/gateways/rival")).await;
    assert!(got["result"].get("hostnames").is_none(), "{got}");

    // Another gateway of the same account: refused too.
    let mut sibling = minimal_gateway("sibling");
    sibling["hostnames"] = json!(["second.example.com"]);
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &sibling).await;
    assert_error(status, &resp, 400, 7001);
    assert_eq!(error_paths(&resp), ["hostnames.0"]);

    // The owner may write its own names again, whether it restates them or omits them.
    let (status, resp) = app
        .put(&app.gw_url("acme", "/gateways/owner"), &owner)
        .await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = app
        .put(
            &app.gw_url("acme", "/gateways/owner"),
            &minimal_gateway("owner"),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["result"]["hostnames"],
        json!(["ai.example.com", "second.example.com"])
    );

    // A name given up is free: by dropping it from the list, or by deleting the gateway.
    let mut fewer = minimal_gateway("owner");
    fewer["hostnames"] = json!(["second.example.com"]);
    let (status, resp) = app
        .put(&app.gw_url("acme", "/gateways/owner"), &fewer)
        .await;
    assert_eq!(status, 200, "{resp}");
    let (status, resp) = app
        .put(&app.gw_url("globex", "/gateways/rival"), &rival)
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["result"]["hostnames"],
        json!(["free.example.com", "ai.example.com"])
    );
    let (status, _) = app.delete(&app.gw_url("acme", "/gateways/owner")).await;
    assert_eq!(status, 200);
    let (status, resp) = app.post(&app.gw_url("acme", "/gateways"), &sibling).await;
    assert_eq!(status, 200, "{resp}");
}

/// Eight accounts claim one host name at once: exactly one gets it (the check and the write are one transaction,
/// serialised among writers that claim names).
async fn concurrent_claims_of_one_hostname_leave_one_owner(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let claims: Vec<_> = (0..8)
        .map(|i| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                let mut body = minimal_gateway("claim");
                body["hostnames"] = json!(["contested.example.com"]);
                let (status, resp) = app
                    .post(&app.gw_url(&format!("acct{i}"), "/gateways"), &body)
                    .await;
                assert!(status == 200 || status == 400, "{status}: {resp}");
                status == 200
            })
        })
        .collect();
    let mut owners = 0;
    for c in claims {
        owners += usize::from(c.await.unwrap());
    }
    assert_eq!(owners, 1, "exactly one account owns the name");
}

/// The race the check must not lose, made certain: a writer checks and inserts a claim and holds its transaction
/// open; a second writer claiming the same name meanwhile must wait for it and then be refused. (Reading before the
/// first commits, it would find no claim and both would succeed.)
async fn a_claim_waits_for_an_uncommitted_claim_of_the_same_name(app: TestApp) {
    use gatehouse_control_plane::Error;
    use gatehouse_control_plane::store::gateways::{self as store, GatewayRecord};

    let record = |account: &str| {
        let mut settings = gatehouse_shared::gateway::GatewaySettings::for_default_gateway();
        settings.hostnames = Some(vec!["raced.example.com".into()]);
        GatewayRecord {
            account_id: account.into(),
            id: "raced".into(),
            internal_id: uuid::Uuid::new_v4().to_string(),
            is_default: false,
            settings,
            created_at_ms: 0,
            modified_at_ms: 0,
        }
    };
    let claim = |db: gatehouse_control_plane::db::Database,
                 record: GatewayRecord,
                 checked: Option<std::sync::mpsc::Sender<()>>| {
        std::thread::spawn(move || {
            db.with_conn(|c| {
                c.write_transaction(|c| {
                    store::check_hostnames_free(
                        c,
                        &record.account_id,
                        &record.id,
                        &record.settings,
                    )?;
                    store::insert(c, &record)?;
                    if let Some(checked) = checked {
                        checked.send(()).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                    Ok::<_, Error>(())
                })
            })
        })
    };
    let (checked, first_checked) = std::sync::mpsc::channel();
    let first = claim(app.db.clone(), record("first"), Some(checked));
    first_checked.recv().unwrap();
    let second = claim(app.db.clone(), record("second"), None);
    first.join().unwrap().expect("the first claim commits");
    match second.join().unwrap() {
        Err(Error::Validation(errors)) => {
            assert_eq!(errors[0].path, ["hostnames", "0"]);
        }
        other => panic!("the second claim must be refused, got {other:?}"),
    }
}

async fn published_settings(app: &TestApp, account: &str, id: &str) -> Value {
    let key = GatewayKey::new(account, id);
    let entry = app
        .bus
        .fetch_gateways(std::slice::from_ref(&key))
        .await
        .unwrap()
        .remove(0);
    match entry {
        Some(GatewayEntry::Document(StoredDocument { body, .. })) => {
            // Nodes read it as a typed document; the raw JSON shows what is present.
            serde_json::from_str::<GatewayConfigDocument>(&body).expect("a node reads it");
            serde_json::from_str::<Value>(&body).unwrap()["settings"].clone()
        }
        other => panic!("expected a document, got {other:?}"),
    }
}

async fn the_published_document_carries_the_extensions(app: TestApp) {
    let (status, resp) = app
        .post(&app.gw_url("acme", "/gateways"), &with_extensions("doc"))
        .await;
    assert_eq!(status, 200, "{resp}");
    assert_extensions(
        &published_settings(&app, "acme", "doc").await,
        &expected_extensions(),
    );

    let mut clear = minimal_gateway("doc");
    for field in EXTENSIONS {
        clear[field] = Value::Null;
    }
    let (status, resp) = app.put(&app.gw_url("acme", "/gateways/doc"), &clear).await;
    assert_eq!(status, 200, "{resp}");
    assert_no_extensions(&published_settings(&app, "acme", "doc").await);
}
