//! Standalone mode: both planes in one process on SQLite.

use serde_json::{Value, json};

use crate::support::{Gatehouse, as_strs, mint_token, port_zero_flags};

#[tokio::test]
async fn the_standalone_binary_serves_the_whole_gateway_cycle_with_a_cli_minted_token() {
    let dir = tempfile::tempdir().unwrap();
    let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
    let token = mint_token(dir.path(), "acme", &["ai-gateway:edit"]);
    let http = reqwest::Client::new();
    let gateways = gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways");

    let body = json!({"id": "e2e", "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
        "rate_limiting_interval": 0, "rate_limiting_limit": 0});
    let created: Value = http
        .post(&gateways)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["success"], true, "{created}");
    assert_eq!(created["result"]["id"], "e2e");

    let list: Value = http
        .get(&gateways)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    assert_eq!(list["result_info"]["total_count"], 1);

    let one = format!("{gateways}/e2e");
    let got: Value = http
        .get(&one)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["result"], created["result"]);

    let mut update = body.clone();
    update["cache_ttl"] = json!(600);
    let updated: Value = http
        .put(&one)
        .bearer_auth(&token)
        .json(&update)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(updated["result"]["cache_ttl"], 600);

    let url: Value = http
        .get(format!("{one}/url/openai"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        url["result"],
        gh.inference_url("/v1/acme/e2e/openai"),
        "the URL names this process's inference listener"
    );

    let deleted: Value = http
        .delete(&one)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["result"]["id"], "e2e");
    let gone = http.get(&one).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), 404);

    let other_account = http
        .get(gh.api_url("/client/v4/accounts/globex/ai-gateway/gateways"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other_account.status(), 403);

    for path in ["/healthz", "/readyz"] {
        let resp = http.get(gh.inference_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    let status = gh.terminate();
    assert!(
        status.success(),
        "SIGTERM stops standalone cleanly: {status:?}"
    );
}

#[tokio::test]
async fn the_admin_token_is_printed_once_on_the_first_start_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let flags = port_zero_flags(dir.path());
    let first = Gatehouse::start(&as_strs(&flags), &[]);
    let banner = first.banner.join("\n");
    assert!(banner.contains("First start"), "{banner}");
    let token = first
        .banner
        .iter()
        .map(|l| l.trim())
        .find(|l| l.split('.').count() == 3 && !l.contains(' '))
        .expect("the token line")
        .to_owned();
    let resp = reqwest::Client::new()
        .get(first.api_url("/admin/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the first-start token is an admin token"
    );
    assert!(first.terminate().success());

    let key = std::fs::metadata(dir.path().join("master.key"))
        .expect("the master key was created in the data dir");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            key.permissions().mode() & 0o777,
            0o600,
            "the master key is private to its owner"
        );
    }
    let second = Gatehouse::start(&as_strs(&flags), &[]);
    assert!(
        !second.banner.join("\n").contains("First start"),
        "the token is shown only once"
    );
    let resp = reqwest::Client::new()
        .get(second.api_url("/admin/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the token survives a restart");
}

#[test]
fn sigterm_right_after_the_listen_lines_stops_every_mode_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let gh = Gatehouse::start(&as_strs(&port_zero_flags(dir.path())), &[]);
        let status = gh.terminate();
        assert!(status.success(), "standalone: {status:?}");
    }
    // A data-plane node needs Redis for its config bus.
    let Some(redis_url) = gatehouse_bus::testing::test_redis_url() else {
        return;
    };
    let prefix = gatehouse_bus::testing::unique_prefix("sigterm");
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
    assert!(dp.terminate().success());
    gatehouse_bus::testing::delete_prefix(&redis_url, &prefix);
}

/// A first start on a fresh data dir prints no error, up to ready and through a SIGTERM stop. It used to print
/// r2d2's "database is locked" (the pool's connections each switched the new SQLite file to WAL at once). That was
/// a race with a window of microseconds, seen on up to most starts of a release build and hardly ever in a debug
/// one, so several fresh starts are checked.
#[tokio::test]
async fn the_first_start_of_standalone_prints_no_error_lines() {
    for attempt in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        // A data dir that does not exist yet, as on a new machine.
        let data_dir = dir.path().join("data");
        let log = dir.path().join("stderr.log");
        let flags = port_zero_flags(&data_dir);
        // The binary's own default level (the harness asks for warn), so the check sees what an operator sees.
        let gh =
            Gatehouse::start_with_log(&as_strs(&flags), &[("GATEHOUSE_LOG", "info")], Some(&log));
        wait_until_ready(&gh).await;
        let stdout = gh.banner.join("\n");
        assert!(
            gh.terminate().success(),
            "attempt {attempt}: SIGTERM stops it cleanly"
        );
        let stderr = std::fs::read_to_string(&log).unwrap();
        let errors: Vec<&str> = stdout
            .lines()
            .chain(stderr.lines())
            .filter(|line| {
                line.contains("ERROR")
                    || line.contains("r2d2")
                    || line.contains("database is locked")
            })
            .collect();
        assert!(
            errors.is_empty(),
            "attempt {attempt}: the first start printed errors: {errors:#?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}

/// Polls the inference listener's `/readyz` until the node has loaded its first config (10 s at most).
async fn wait_until_ready(gh: &Gatehouse) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(resp) = http.get(gh.inference_url("/readyz")).send().await
            && resp.status() == 200
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("standalone did not become ready within 10 s");
}
