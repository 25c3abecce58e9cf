//! Split mode: `control-plane` on PostgreSQL with a master key from the environment, `migrate` and `token` against
//! the same database, and a `data-plane` node on its own.

use diesel::{Connection as _, RunQueryDsl as _};
use serde_json::{Value, json};

use crate::support::{Gatehouse, cli, test_database_url};

struct FreshDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl FreshDatabase {
    fn create(admin_url: &str) -> Self {
        let name = format!("gh_e2e_{}", uuid_like());
        let mut conn =
            diesel::PgConnection::establish(admin_url).expect("connect to TEST_DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .unwrap();
        let root = admin_url
            .rsplit_once('/')
            .map(|(r, _)| r)
            .unwrap_or(admin_url);
        FreshDatabase {
            admin_url: admin_url.to_owned(),
            url: format!("{root}/{name}"),
            name,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn);
        }
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[tokio::test]
async fn the_control_plane_runs_on_postgresql_and_the_cli_shares_its_database() {
    let Some(admin_url) = test_database_url() else {
        return;
    };
    let db = FreshDatabase::create(&admin_url);
    let env = [
        ("GATEHOUSE_DATABASE_URL", db.url.as_str()),
        ("GATEHOUSE_MASTER_KEY", MASTER_KEY),
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
}

#[tokio::test]
async fn a_data_plane_node_starts_on_its_own_and_answers_health_checks() {
    let dp = Gatehouse::start(
        &[
            "data-plane",
            "--proxy-listen",
            "127.0.0.1:0",
            "--shutdown-grace-period",
            "0s",
        ],
        &[],
    );
    let resp = reqwest::get(dp.inference_url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let ready = reqwest::get(dp.inference_url("/readyz")).await.unwrap();
    assert_eq!(
        ready.status(),
        503,
        "a node without configuration is not ready"
    );
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["name"], "AiGatewayError");
    assert!(dp.terminate().success());
}
