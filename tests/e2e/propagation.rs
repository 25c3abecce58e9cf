//! Config propagation end to end: a `control-plane` on a fresh PostgreSQL database and `data-plane` nodes, all
//! real processes sharing one Redis (a prefix per test, or a private `redis-server` the test restarts), and the
//! standalone binary with its in-process bus. Nodes are observed through `GET /admin/nodes`: the versions each
//! one serves, compared with what the control plane published.

use std::time::{Duration, Instant};

use gatehouse_bus::testing::PrivateRedis;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::support::{Gatehouse, as_strs, cli, mint_token, port_zero_flags};

/// The budget for a change to be visible on every node.
const PROPAGATION_BUDGET: Duration = Duration::from_secs(1);
/// How long recovery after a restart may take (reconnect backoff plus a reconciler pass).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

fn converged(report: &Value) -> bool {
    report["converged"] == true && report["ready"] == true
}

#[tokio::test]
async fn a_config_change_is_visible_on_two_data_plane_nodes_within_a_second() {
    let Some(mut cluster) = Cluster::start(None, &[]) else {
        return;
    };
    cluster.start_node("node-a");
    cluster.start_node("node-b");
    cluster
        .until_every_node("first load", RECOVERY_DEADLINE, converged)
        .await;
    for (_, node) in &cluster.nodes {
        let ready = reqwest::get(node.inference_url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
    }

    let started = Instant::now();
    cluster.create("e2e").await;
    let after_create = cluster
        .until_every_node("create", PROPAGATION_BUDGET, |r| {
            converged(r) && Cluster::version(r, "e2e").is_some()
        })
        .await;
    let created_at = started.elapsed();
    let reports = cluster.node_reports().await.unwrap();
    let v1 = Cluster::version(&reports[0], "e2e").unwrap();

    let started = Instant::now();
    cluster.set_authentication("e2e", true).await;
    cluster
        .until_every_node("authentication on", PROPAGATION_BUDGET, |r| {
            converged(r) && Cluster::version(r, "e2e").is_some_and(|v| v > v1)
        })
        .await;
    let updated_at = started.elapsed();
    let document = cluster.bus_document("e2e").await.unwrap();
    assert_eq!(document["settings"]["authentication"], true, "{document}");

    let started = Instant::now();
    cluster.delete("e2e").await;
    cluster
        .until_every_node("delete", PROPAGATION_BUDGET, |r| {
            converged(r) && Cluster::version(r, "e2e").is_none()
        })
        .await;
    let deleted_at = started.elapsed();
    eprintln!(
        "propagation to two nodes, API call included: create {created_at:?} (after the call {after_create:?}), \
         update {updated_at:?}, delete {deleted_at:?}"
    );
}

#[tokio::test]
async fn a_node_restarted_while_changes_happen_converges() {
    let Some(mut cluster) = Cluster::start(None, &[]) else {
        return;
    };
    cluster.start_node("node-a");
    cluster.start_node("node-b");
    cluster
        .until_every_node("first load", RECOVERY_DEADLINE, converged)
        .await;
    let before = cluster.node_reports().await.unwrap();
    let b_started = before.iter().find(|r| r["node_id"] == "node-b").unwrap()["started_at"]
        .as_i64()
        .unwrap();

    cluster.create("one").await;
    cluster.create("two").await;
    cluster.stop_node("node-b");
    cluster.set_authentication("one", true).await;
    cluster.delete("two").await;
    cluster.create("three").await;
    cluster.start_node("node-b");
    for i in 0..5 {
        cluster.set_authentication("one", i % 2 == 0).await;
        cluster.create(&format!("more-{i}")).await;
    }
    cluster
        .until_every_node("after the restart", RECOVERY_DEADLINE, |r| {
            converged(r)
                // node-b's report must come from the new process.
                && (r["node_id"] != "node-b" || r["started_at"].as_i64().unwrap() > b_started)
                && Cluster::version(r, "one").is_some()
                && Cluster::version(r, "two").is_none()
                && Cluster::version(r, "three").is_some()
                && Cluster::version(r, "more-4").is_some()
        })
        .await;
    let reports = cluster.node_reports().await.unwrap();
    assert_eq!(
        Cluster::version(&reports[0], "one"),
        Cluster::version(&reports[1], "one"),
        "both nodes serve the same version"
    );
}

#[tokio::test]
async fn nodes_converge_after_redis_restarts_while_changes_happen() {
    let mut redis = PrivateRedis::start();
    let Some(mut cluster) = Cluster::start(
        Some(redis.url()),
        &["--deployment-reconcile-interval", "300ms"],
    ) else {
        return;
    };
    cluster.start_node("node-a");
    cluster.start_node("node-b");
    cluster.create("kept").await;
    cluster.create("dropped").await;
    cluster
        .until_every_node("before the restart", RECOVERY_DEADLINE, |r| {
            converged(r) && Cluster::version(r, "dropped").is_some()
        })
        .await;

    redis.kill();
    // Committed while Redis is down: the API answers, the publishes fail and are logged.
    cluster.set_authentication("kept", true).await;
    cluster.delete("dropped").await;
    cluster.create("added").await;
    redis.restart();
    cluster.create("after").await;

    let took = cluster
        .until_every_node("after Redis returned", RECOVERY_DEADLINE, |r| {
            converged(r)
                && Cluster::version(r, "kept").is_some()
                && Cluster::version(r, "dropped").is_none()
                && Cluster::version(r, "added").is_some()
                && Cluster::version(r, "after").is_some()
        })
        .await;
    eprintln!("nodes converged {took:?} after Redis came back empty");
    let document = cluster.bus_document("kept").await.unwrap();
    assert_eq!(document["settings"]["authentication"], true);
}

#[tokio::test]
async fn a_malformed_document_written_into_redis_keeps_the_old_config_and_shows_the_error() {
    let Some(mut cluster) = Cluster::start(None, &["--reconcile-interval", "2s"]) else {
        return;
    };
    cluster.start_node("node-a");
    cluster.create("tampered").await;
    cluster
        .until_every_node("created", RECOVERY_DEADLINE, |r| {
            converged(r) && Cluster::version(r, "tampered").is_some()
        })
        .await;
    let good = Cluster::version(&cluster.node_reports().await.unwrap()[0], "tampered").unwrap();

    // A newer version that is not JSON, written and announced in one transaction, as a broken writer would.
    let bad = good + 1;
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let p = &cluster.prefix;
    let () = redis::pipe()
        .atomic()
        .set(
            format!("{p}config:gateway:acme/tampered"),
            "{\"schema\": 1, oops",
        )
        .ignore()
        .hset(
            format!("{p}config:index"),
            "acme/tampered",
            json!({"version": bad, "hash": "tampered", "deleted": false}).to_string(),
        )
        .ignore()
        .publish(
            format!("{p}config:announcements"),
            json!({"key": "acme/tampered", "version": bad}).to_string(),
        )
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    cluster
        .until_every_node("the error is reported", PROPAGATION_BUDGET, |r| {
            assert_ne!(
                Cluster::version(r, "tampered"),
                Some(bad),
                "the malformed version is never served"
            );
            r["last_error"]["target"] == "acme/tampered"
                && r["last_error"]["version"] == bad
                && r["last_error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("does not parse"))
                && Cluster::version(r, "tampered") == Some(good)
        })
        .await;

    // The reconciler sees that the bus differs from the database and publishes over it.
    cluster
        .until_every_node("repaired by the reconciler", RECOVERY_DEADLINE, |r| {
            converged(r) && Cluster::version(r, "tampered").is_some_and(|v| v > bad)
        })
        .await;
}

#[tokio::test]
async fn a_token_revoked_with_the_cli_reaches_the_nodes_through_the_reconciler() {
    let Some(mut cluster) = Cluster::start(None, &["--deployment-reconcile-interval", "300ms"])
    else {
        return;
    };
    cluster.start_node("node-a");
    cluster
        .until_every_node("first load", RECOVERY_DEADLINE, converged)
        .await;
    let envs = cluster.envs();
    cli(
        &[
            "token",
            "create",
            "--account",
            "acme",
            "--scope",
            "ai-gateway:run",
        ],
        &envs,
    );
    let listing = String::from_utf8(cli(&["token", "list"], &envs).stdout).unwrap();
    let id = listing
        .lines()
        .find(|line| line.contains("ai-gateway:run"))
        .and_then(|line| line.split_whitespace().next())
        .expect("the run token is listed")
        .to_owned();
    let before = cluster.node_reports().await.unwrap()[0]["deployment_version"]
        .as_i64()
        .unwrap();

    // Another process writes the revocation to the database; nothing is published.
    cli(&["token", "revoke", &id], &envs);
    let took = cluster
        .until_every_node("revocation", RECOVERY_DEADLINE, |r| {
            converged(r) && r["deployment_version"].as_i64().is_some_and(|v| v > before)
        })
        .await;
    eprintln!("a CLI revocation reached the node after {took:?}");
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let body: String = redis::cmd("GET")
        .arg(format!("{}config:deployment", cluster.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let document: Value = serde_json::from_str(&body).unwrap();
    assert!(
        document["revoked_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == id.as_str()),
        "{document}"
    );
}

#[tokio::test]
async fn the_standalone_binary_propagates_changes_through_its_in_process_bus() {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = port_zero_flags(dir.path());
    flags.extend(["--node-id".into(), "standalone".into()]);
    let gh = Gatehouse::start(&as_strs(&flags), &[]);
    let token = mint_token(dir.path(), "*", &["admin", "ai-gateway:edit"]);
    let http = reqwest::Client::new();
    let reports = || async {
        let body: Value = http
            .get(gh.api_url("/admin/nodes"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["result"].as_array().cloned().unwrap_or_default()
    };
    let until = |what: &'static str, check: fn(&Value) -> bool| {
        let reports = &reports;
        async move {
            let started = Instant::now();
            loop {
                let all = reports().await;
                if all.len() == 1 && check(&all[0]) {
                    return started.elapsed();
                }
                assert!(started.elapsed() < RECOVERY_DEADLINE, "{what}: {all:#?}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    until("ready", |r| converged(r) && r["node_id"] == "standalone").await;
    let ready = reqwest::get(gh.inference_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let body = json!({"id": "local", "cache_invalidate_on_update": true, "cache_ttl": 0, "collect_logs": true,
        "rate_limiting_interval": 0, "rate_limiting_limit": 0});
    let started = Instant::now();
    let created = http
        .post(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    until("created", |r| {
        converged(r) && r["gateways"]["acme/local"].as_i64().is_some()
    })
    .await;
    let took = started.elapsed();
    assert!(took < PROPAGATION_BUDGET, "{took:?}");

    let deleted = http
        .delete(gh.api_url("/client/v4/accounts/acme/ai-gateway/gateways/local"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    until("deleted", |r| {
        converged(r) && r["gateways"]["acme/local"].is_null()
    })
    .await;
    eprintln!("standalone propagation, API call included: {took:?}");
    assert!(gh.terminate().success());
}
