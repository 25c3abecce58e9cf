//! Split mode: `control-plane` on PostgreSQL with a master key from the environment, `migrate` and `token` against
//! the same database, and a `data-plane` node on its own.

use serde_json::{Value, json};

use gatehouse_bus::testing::{delete_prefix, test_redis_url, unique_prefix};

use crate::support::{FreshDatabase, Gatehouse, MASTER_KEY, cli, test_database_url};

#[tokio::test]
async fn the_control_plane_runs_on_postgresql_and_the_cli_shares_its_database() {
    let Some(admin_url) = test_database_url() else {
        return;
    };
    let Some(redis_url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("split");
    let db = FreshDatabase::create(&admin_url);
    let env = [
        ("GATEHOUSE_DATABASE_URL", db.url.as_str()),
        ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
        ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
        ("GATEHOUSE_REDIS_PREFIX", prefix.as_str()),
    ];

    let out = cli(&["migrate"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("postgresql"));
    let token = String::from_utf8(
        cli(
            &[
                "token",
                "create",
                "--account",
                "acme",
                "--scope",
                "ai-gateway:edit",
            ],
            &env,
        )
        .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();

    let cp = Gatehouse::start(&["control-plane", "--api-listen", "127.0.0.1:0"], &env);
    // A second control plane on the same database shares the signing key: a token works on both.
    let cp2 = Gatehouse::start(&["control-plane", "--api-listen", "127.0.0.1:0"], &env);
    let http = reqwest::Client::new();
    let body = json!({"id": "pg", "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
        "rate_limiting_interval": 0, "rate_limiting_limit": 0});
    let created: Value = http
        .post(cp.api_url("/client/v4/accounts/acme/ai-gateway/gateways"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["result"]["id"], "pg", "{created}");
    let got: Value = http
        .get(cp2.api_url("/client/v4/accounts/acme/ai-gateway/gateways/pg"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        got["result"], created["result"],
        "both control planes read one database"
    );

    // The wrong master key cannot open the signing key: the control plane refuses to start.
    let wrong = std::process::Command::new(crate::support::BIN)
        .args(["control-plane", "--api-listen", "127.0.0.1:0"])
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env(
            "GATEHOUSE_MASTER_KEY",
            "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
        )
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("master key"));

    assert!(cp.terminate().success());
    assert!(cp2.terminate().success());
    delete_prefix(&redis_url, &prefix);
}

#[test]
fn the_split_modes_refuse_to_start_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    for mode in ["data-plane", "control-plane"] {
        let out = std::process::Command::new(crate::support::BIN)
            .args([
                mode,
                "--proxy-listen",
                "127.0.0.1:0",
                "--api-listen",
                "127.0.0.1:0",
            ])
            .env("GATEHOUSE_MASTER_KEY", MASTER_KEY)
            .env("GATEHOUSE_DATABASE_URL", &database_url)
            .env_remove("GATEHOUSE_REDIS_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{mode}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--redis-url"), "{mode}: {stderr}");
    }
}

#[tokio::test]
async fn a_lone_data_plane_node_answers_health_checks_but_is_not_ready() {
    let Some(redis_url) = test_redis_url() else {
        return;
    };
    let prefix = unique_prefix("lone-node");
    let dp = Gatehouse::start(
        &[
            "data-plane",
            "--proxy-listen",
            "127.0.0.1:0",
            "--shutdown-grace-period",
            "0s",
        ],
        &[
            ("GATEHOUSE_REDIS_URL", redis_url.as_str()),
            ("GATEHOUSE_REDIS_PREFIX", prefix.as_str()),
        ],
    );
    let resp = reqwest::get(dp.inference_url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ready = reqwest::get(dp.inference_url("/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        503,
        "a node whose bus no control plane has filled is not ready"
    );
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["name"], "AiGatewayError");
    assert!(dp.terminate().success());
    delete_prefix(&redis_url, &prefix);
}
