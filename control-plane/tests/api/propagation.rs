//! Config propagation from the control plane's side: documents published after API changes, the reconciler, the
//! default-gateway requests and `GET /admin/nodes`. The server publishes to an in-process bus the test reads.

use std::sync::Arc;

use gatehouse_bus::{ConfigBus, GatewayEntry, StoredDocument};
use gatehouse_control_plane::propagation::{
    ConfigPublisher, Reconciler, ReconcilerSettings, ensure_default_gateway,
};
use gatehouse_control_plane::store::gateways::{self as gateway_store, GatewayRecord};
use gatehouse_control_plane::store::{now_ms, tokens as token_store};
use gatehouse_shared::config::{DeploymentDocument, GatewayConfigDocument, GatewayKey};
use gatehouse_shared::gateway::GatewaySettings;
use gatehouse_shared::node::{NodeError, NodeStatus};
use gatehouse_shared::token::Scope;
use reqwest::Method;
use serde_json::json;

use crate::on_both_backends;
use crate::support::{TestApp, assert_error, minimal_gateway};

on_both_backends!(
    gateway_changes_through_the_api_publish_documents_with_rising_versions_and_a_tombstone,
    revoking_a_token_through_the_api_publishes_it_in_the_deployment_document,
    the_reconciler_publishes_what_was_never_published_and_tombstones_what_was_deleted,
    the_reconciler_picks_up_a_revocation_made_by_another_process,
    the_version_counter_is_raised_above_a_bus_that_is_ahead_of_the_database,
    a_default_gateway_request_creates_the_gateway_once_and_publishes_it,
    racing_publishes_of_one_gateway_leave_its_newest_state_on_the_bus,
    operators_see_each_node_with_its_versions_errors_and_convergence,
);

fn publisher(app: &TestApp) -> ConfigPublisher {
    ConfigPublisher::new(app.db.clone(), Arc::new(app.bus.clone()))
}

fn reconciler(app: &TestApp) -> Reconciler {
    Reconciler::new(publisher(app), ReconcilerSettings::default())
}

async fn fetch_document(app: &TestApp, key: &GatewayKey) -> Option<GatewayEntry> {
    app.bus
        .fetch_gateways(std::slice::from_ref(key))
        .await
        .unwrap()
        .remove(0)
}

fn parse_gateway(entry: &Option<GatewayEntry>) -> GatewayConfigDocument {
    match entry {
        Some(GatewayEntry::Document(StoredDocument { body, .. })) => {
            serde_json::from_str(body).unwrap()
        }
        other => panic!("expected a document, got {other:?}"),
    }
}

async fn deployment(app: &TestApp) -> DeploymentDocument {
    let stored = app
        .bus
        .fetch_deployment()
        .await
        .unwrap()
        .expect("published");
    serde_json::from_str(&stored.body).unwrap()
}

async fn gateway_changes_through_the_api_publish_documents_with_rising_versions_and_a_tombstone(
    app: TestApp,
) {
    let key = GatewayKey::new("acme", "prod");
    app.create_gateway("acme", "prod").await;
    let created = parse_gateway(&fetch_document(&app, &key).await);
    assert_eq!(created.key, key);
    assert!(!created.settings.authentication);

    let mut body = minimal_gateway("prod");
    body["authentication"] = json!(true);
    let (status, _) = app.put(&app.gw_url("acme", "/gateways/prod"), &body).await;
    assert_eq!(status, 200);
    let updated = parse_gateway(&fetch_document(&app, &key).await);
    assert!(updated.settings.authentication);
    assert!(updated.version > created.version);
    assert_eq!(updated.internal_id, created.internal_id);

    let (status, _) = app.delete(&app.gw_url("acme", "/gateways/prod")).await;
    assert_eq!(status, 200);
    match fetch_document(&app, &key).await {
        Some(GatewayEntry::Deleted { version }) => assert!(version > updated.version),
        other => panic!("expected a tombstone, got {other:?}"),
    }
}

async fn revoking_a_token_through_the_api_publishes_it_in_the_deployment_document(app: TestApp) {
    let (_, created) = app
        .post(
            &app.url("/admin/tokens"),
            &json!({"accounts": ["acme"], "scopes": ["ai-gateway:run"]}),
        )
        .await;
    let id = created["result"]["id"].as_str().unwrap().to_owned();
    let (status, _) = app.delete(&app.url(&format!("/admin/tokens/{id}"))).await;
    assert_eq!(status, 200);
    let doc = deployment(&app).await;
    assert!(doc.revoked_tokens.contains(&id), "{doc:?}");
    let kids: Vec<_> = doc
        .verification_keys
        .iter()
        .map(|k| k.kid.as_str())
        .collect();
    assert_eq!(kids, ["key-1"]);
}

fn record(account: &str, id: &str) -> GatewayRecord {
    GatewayRecord {
        account_id: account.into(),
        id: id.into(),
        internal_id: uuid::Uuid::new_v4().to_string(),
        is_default: false,
        settings: GatewaySettings::for_default_gateway(),
        created_at_ms: now_ms(),
        modified_at_ms: now_ms(),
    }
}

async fn the_reconciler_publishes_what_was_never_published_and_tombstones_what_was_deleted(
    app: TestApp,
) {
    // Committed without a publish, as if the control plane crashed right after the commit.
    let lost = record("acme", "lost");
    app.db
        .with_conn(|c| gateway_store::insert(c, &lost))
        .unwrap();
    app.create_gateway("acme", "kept").await;
    let kept_before = fetch_document(&app, &lost.key()).await;
    assert_eq!(kept_before, None, "nothing published yet");

    let pass = reconciler(&app).reconcile_gateways().await.unwrap();
    assert_eq!(pass.republished, 1, "only the lost gateway");
    assert!(pass.marked_complete);
    assert_eq!(
        parse_gateway(&fetch_document(&app, &lost.key()).await).key,
        lost.key()
    );
    let complete_at = app.bus.index().await.unwrap().complete_at;
    assert!(complete_at.is_some());

    // Deleted without a publish: the next pass tombstones it, and leaves the marker alone.
    app.db
        .with_conn(|c| gateway_store::delete(c, "acme", "lost"))
        .unwrap();
    let pass = reconciler(&app).reconcile_gateways().await.unwrap();
    assert_eq!(pass.republished, 1);
    assert!(!pass.marked_complete, "the index was complete already");
    assert!(matches!(
        fetch_document(&app, &lost.key()).await,
        Some(GatewayEntry::Deleted { .. })
    ));
    let pass = reconciler(&app).reconcile_gateways().await.unwrap();
    assert_eq!(pass.republished, 0, "nothing left to do");
    assert_eq!(app.bus.index().await.unwrap().complete_at, complete_at);
}

async fn the_reconciler_picks_up_a_revocation_made_by_another_process(app: TestApp) {
    let first = reconciler(&app).reconcile_deployment().await.unwrap();
    assert!(first.republished, "nothing was on the bus");
    let again = reconciler(&app).reconcile_deployment().await.unwrap();
    assert!(!again.republished);

    // `gatehouse token revoke` writes the database and nothing else.
    let token = app.token(&["acme"], &[Scope::AiGatewayRun]);
    let claims = app.keyring.verifier().verify(&token).unwrap();
    app.db
        .with_conn(|c| token_store::revoke_token(c, &claims.jti, now_ms()))
        .unwrap();
    let pass = reconciler(&app).reconcile_deployment().await.unwrap();
    assert!(pass.republished);
    assert!(deployment(&app).await.revoked_tokens.contains(&claims.jti));
}

async fn the_version_counter_is_raised_above_a_bus_that_is_ahead_of_the_database(app: TestApp) {
    // A database restored from an old backup: the bus (and every node) has seen version 1,000,000.
    let key = GatewayKey::new("acme", "prod");
    app.bus
        .publish_tombstone(&GatewayKey::new("acme", "old"), 1_000_000)
        .await
        .unwrap();
    app.db
        .with_conn(|c| gateway_store::insert(c, &record("acme", "prod")))
        .unwrap();
    reconciler(&app).reconcile_gateways().await.unwrap();
    let doc = parse_gateway(&fetch_document(&app, &key).await);
    assert!(doc.version > 1_000_000, "{}", doc.version);
}

async fn a_default_gateway_request_creates_the_gateway_once_and_publishes_it(app: TestApp) {
    let publisher = publisher(&app);
    let (first, second) = tokio::join!(
        ensure_default_gateway(&publisher, "acme"),
        ensure_default_gateway(&publisher, "acme"),
    );
    let created = [first.unwrap(), second.unwrap()];
    assert_eq!(
        created.iter().filter(|c| **c).count(),
        1,
        "exactly one of two racing requests creates it"
    );
    let (status, got) = app.get(&app.gw_url("acme", "/gateways/default")).await;
    assert_eq!(status, 200);
    assert_eq!(got["result"]["is_default"], true);
    assert_eq!(got["result"]["authentication"], true);
    assert_eq!(got["result"]["collect_logs"], true);
    assert_eq!(got["result"]["cache_ttl"], 0);
    let doc = parse_gateway(&fetch_document(&app, &GatewayKey::new("acme", "default")).await);
    assert!(doc.is_default);
    assert!(
        ensure_default_gateway(&publisher, "../evil").await.is_err(),
        "account ids from the bus are validated"
    );

    // Through the bus, as a node asks: the consumer of a running control plane serves it.
    let tasks = gatehouse_control_plane::propagation::spawn_background(
        &publisher,
        ReconcilerSettings::default(),
        &tokio::runtime::Handle::current(),
    );
    app.bus.request_default_gateway("beta").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fetch_document(&app, &GatewayKey::new("beta", "default"))
        .await
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "beta/default never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tasks.stop().await;
}

async fn racing_publishes_of_one_gateway_leave_its_newest_state_on_the_bus(app: TestApp) {
    let key = GatewayKey::new("acme", "prod");
    app.create_gateway("acme", "prod").await;
    let publishers: Vec<ConfigPublisher> = (0..4).map(|_| publisher(&app)).collect();
    for round in 0..10 {
        let mut body = minimal_gateway("prod");
        body["cache_ttl"] = json!(round);
        let (status, _) = app.put(&app.gw_url("acme", "/gateways/prod"), &body).await;
        assert_eq!(status, 200);
        let racing = publishers
            .iter()
            .map(|p| p.publish_gateways(vec![key.clone()]));
        for result in futures_util::future::join_all(racing).await {
            result.unwrap();
        }
        let doc = parse_gateway(&fetch_document(&app, &key).await);
        assert_eq!(doc.settings.cache_ttl, Some(round), "round {round}");
    }
}

async fn operators_see_each_node_with_its_versions_errors_and_convergence(app: TestApp) {
    app.create_gateway("acme", "prod").await;
    let version =
        parse_gateway(&fetch_document(&app, &GatewayKey::new("acme", "prod")).await).version;
    reconciler(&app).reconcile_deployment().await.unwrap();
    let deployment_version = deployment(&app).await.version;
    let ttl = std::time::Duration::from_secs(30);
    let converged = NodeStatus {
        node_id: "node-a".into(),
        started_at_ms: 1,
        reported_at_ms: 2,
        ready: true,
        gateways: [("acme/prod".to_owned(), version)].into(),
        deployment_version: Some(deployment_version),
        last_error: None,
        failing: vec![],
        logs: Default::default(),
        ..Default::default()
    };
    let behind = NodeStatus {
        node_id: "node-b".into(),
        gateways: Default::default(),
        last_error: Some(NodeError {
            target: "acme/prod".into(),
            version: Some(version),
            message: "expected value at line 1 column 1".into(),
            at_ms: 3,
        }),
        ..converged.clone()
    };
    app.bus.report_node_status(&converged, ttl).await.unwrap();
    app.bus.report_node_status(&behind, ttl).await.unwrap();

    let (status, body) = app.get(&app.url("/admin/nodes")).await;
    assert_eq!(status, 200, "{body}");
    let nodes = body["result"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["node_id"], "node-a");
    assert_eq!(nodes[0]["converged"], true);
    assert_eq!(nodes[0]["gateways"]["acme/prod"], version);
    assert_eq!(nodes[0]["deployment_version"], deployment_version);
    assert_eq!(nodes[0]["last_seen"], 2);
    assert_eq!(nodes[1]["converged"], false);
    assert_eq!(
        nodes[1]["last_error"]["message"],
        "expected value at line 1 column 1"
    );

    let reader = app.token(&["*"], &[Scope::AiGatewayEdit]);
    let (status, body) = app
        .send(Method::GET, &app.url("/admin/nodes"), Some(&reader), None)
        .await;
    assert_error(status, &body, 403, 10000);
    let (status, body) = app
        .send(Method::GET, &app.url("/admin/nodes"), None, None)
        .await;
    assert_error(status, &body, 401, 10000);
}
