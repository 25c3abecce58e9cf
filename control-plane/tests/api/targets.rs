//! Target health (issue 15): `GET .../gateways/{gateway_id}/targets` aggregates the routed targets' health from the
//! node status reports on the bus. The tests write those reports as two data-plane nodes would.

use std::time::Duration;

use gatehouse_bus::ConfigBus;
use gatehouse_shared::node::{NodeStatus, TargetHealthReport};
use gatehouse_shared::token::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestApp, assert_error};

on_both_backends!(
    each_target_lists_every_node_that_reports_it_with_a_summary,
    the_route_id_query_keeps_one_routes_targets,
    unknown_gateways_other_accounts_and_missing_tokens_are_refused,
);

fn targets_url(app: &TestApp, account: &str, gateway: &str) -> String {
    app.gw_url(account, &format!("/gateways/{gateway}/targets"))
}

/// A target's report as a node's health table makes it: the parts copied from the key.
fn target(key: &str, circuit: &str, available: bool) -> TargetHealthReport {
    let mut parts = key.splitn(6, '/').skip(2).map(str::to_owned);
    let mut next = || parts.next().unwrap();
    TargetHealthReport {
        key: key.into(),
        route_id: next(),
        element_id: next(),
        provider: next(),
        model: next(),
        circuit: circuit.into(),
        available,
        ..TargetHealthReport::default()
    }
}

const R1_OPENAI: &str = "acme/prod/route-1/m1/openai/gpt-4o-mini";
const R1_WORKERS: &str = "acme/prod/route-1/m1/workers-ai/@cf/meta/llama-3.1-8b-instruct";
const R2_ANTHROPIC: &str = "acme/prod/route-2/main/anthropic/claude-3-5-haiku";

/// Two nodes: `node-a` sees route-1's OpenAI target open and slow, `node-b` sees it closed; both report other
/// targets of `acme/prod` and of other gateways.
async fn report_two_nodes(app: &TestApp) {
    let ttl = Duration::from_secs(30);
    let node_a = NodeStatus {
        node_id: "node-a".into(),
        started_at_ms: 1_795_000_000_000,
        reported_at_ms: 1_795_000_005_000,
        ready: true,
        targets: vec![
            TargetHealthReport {
                ttft_us: Some(2_500_250),
                successes: 40,
                failures: 6,
                consecutive_failures: 5,
                last_failure_ms: Some(1_795_000_004_000),
                ..target(R1_OPENAI, "open", false)
            },
            TargetHealthReport {
                ttft_us: Some(180_000),
                tpot_us: Some(12_345),
                successes: 90,
                ..target(R1_WORKERS, "closed", true)
            },
            target("acme/staging/route-9/m1/openai/gpt-4o-mini", "open", false),
            target("globex/prod/route-1/m1/openai/gpt-4o-mini", "open", false),
        ],
        ..NodeStatus::default()
    };
    let node_b = NodeStatus {
        node_id: "node-b".into(),
        reported_at_ms: 1_795_000_006_000,
        targets: vec![
            target(R2_ANTHROPIC, "half_open", true),
            TargetHealthReport {
                ttft_us: Some(400_000),
                successes: 12,
                ..target(R1_OPENAI, "closed", true)
            },
        ],
        ..node_a.clone()
    };
    // A node from before target health reports none; it must not disturb the listing.
    let old_node = NodeStatus {
        node_id: "node-c".into(),
        ..NodeStatus::default()
    };
    for status in [&node_b, &old_node, &node_a] {
        app.bus.report_node_status(status, ttl).await.unwrap();
    }
}

fn names(result: &Value) -> Vec<String> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}/{}/{}",
                t["route_id"].as_str().unwrap(),
                t["element_id"].as_str().unwrap(),
                t["provider"].as_str().unwrap(),
                t["model"].as_str().unwrap()
            )
        })
        .collect()
}

async fn each_target_lists_every_node_that_reports_it_with_a_summary(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("acme", "staging").await;
    let url = targets_url(&app, "acme", "prod");

    // No node reports yet: an empty list, not an error.
    let (status, body) = app.get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!([]));

    report_two_nodes(&app).await;
    let (status, body) = app.get(&url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let result = &body["result"];
    assert_eq!(
        names(result),
        [
            "route-1/m1/openai/gpt-4o-mini",
            "route-1/m1/workers-ai/@cf/meta/llama-3.1-8b-instruct",
            "route-2/main/anthropic/claude-3-5-haiku",
        ],
        "sorted by route, element, provider and model; only this gateway's"
    );

    let openai = &result[0];
    assert_eq!(
        openai["summary"],
        json!({"nodes": 2, "open": 1, "half_open": 0, "available": 1})
    );
    assert_eq!(
        openai["nodes"],
        json!([
            {"node_id": "node-a", "reported_at": "2026-11-18T11:06:45.000Z", "circuit": "open",
             "available": false, "ttft_ms": 2500.25, "tpot_ms": null, "successes": 40, "failures": 6,
             "consecutive_failures": 5, "last_failure_at": "2026-11-18T11:06:44.000Z"},
            {"node_id": "node-b", "reported_at": "2026-11-18T11:06:46.000Z", "circuit": "closed",
             "available": true, "ttft_ms": 400.0, "tpot_ms": null, "successes": 12, "failures": 0,
             "consecutive_failures": 0, "last_failure_at": null},
        ])
    );

    let workers = &result[1];
    assert_eq!(
        workers["summary"],
        json!({"nodes": 1, "open": 0, "half_open": 0, "available": 1})
    );
    assert_eq!(workers["nodes"][0]["node_id"], "node-a");
    assert_eq!(workers["nodes"][0]["tpot_ms"], 12.345);
    let anthropic = &result[2];
    assert_eq!(
        anthropic["summary"],
        json!({"nodes": 1, "open": 0, "half_open": 1, "available": 1})
    );
    assert_eq!(anthropic["nodes"][0]["circuit"], "half_open");

    // The other gateway of the account sees only its own.
    let (status, body) = app.get(&targets_url(&app, "acme", "staging")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body["result"]), ["route-9/m1/openai/gpt-4o-mini"]);

    // A node that stops reporting disappears with its targets.
    app.bus.remove_node_status("node-a").await.unwrap();
    let (_, body) = app.get(&url).await;
    assert_eq!(
        names(&body["result"]),
        [
            "route-1/m1/openai/gpt-4o-mini",
            "route-2/main/anthropic/claude-3-5-haiku"
        ]
    );
    assert_eq!(body["result"][0]["summary"]["nodes"], 1);
    assert_eq!(body["result"][0]["nodes"][0]["node_id"], "node-b");
}

async fn the_route_id_query_keeps_one_routes_targets(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    report_two_nodes(&app).await;
    let url = targets_url(&app, "acme", "prod");

    let (status, body) = app.get(&format!("{url}?route_id=route-1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        names(&body["result"]),
        [
            "route-1/m1/openai/gpt-4o-mini",
            "route-1/m1/workers-ai/@cf/meta/llama-3.1-8b-instruct",
        ]
    );
    let (_, body) = app.get(&format!("{url}?route_id=route-2")).await;
    assert_eq!(
        names(&body["result"]),
        ["route-2/main/anthropic/claude-3-5-haiku"]
    );
    let (status, body) = app.get(&format!("{url}?route_id=no-such-route")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"], json!([]));
    // An empty filter is no filter.
    let (_, body) = app.get(&format!("{url}?route_id=")).await;
    assert_eq!(body["result"].as_array().unwrap().len(), 3);
}

async fn unknown_gateways_other_accounts_and_missing_tokens_are_refused(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    app.create_gateway("globex", "other").await;
    report_two_nodes(&app).await;

    let (status, body) = app.get(&targets_url(&app, "acme", "nope")).await;
    assert_error(status, &body, 404, 7003);
    // globex has no gateway `prod` (its nodes' reports notwithstanding): 404, as for every gateway sub-resource.
    let (status, body) = app.get(&targets_url(&app, "globex", "prod")).await;
    assert_error(status, &body, 404, 7003);

    // A token of another account is refused; a read-scoped token of the account suffices.
    let globex = app.token(&["globex"], &[Scope::AiGatewayRead]);
    let url = targets_url(&app, "acme", "prod");
    let (status, body) = app.send(Method::GET, &url, Some(&globex), None).await;
    assert_error(status, &body, 403, 10000);
    let run_only = app.token(&["acme"], &[Scope::AiGatewayRun]);
    let (status, body) = app.send(Method::GET, &url, Some(&run_only), None).await;
    assert_error(status, &body, 403, 10000);
    let reader = app.token(&["acme"], &[Scope::AiGatewayRead]);
    let (status, body) = app.send(Method::GET, &url, Some(&reader), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"].as_array().unwrap().len(), 3);

    let (status, body) = app.send(Method::GET, &url, None, None).await;
    assert_error(status, &body, 401, 10000);
}
