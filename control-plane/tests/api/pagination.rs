//! Listing: page bounds, search, and the SDK auto-paginator's walk.

use std::collections::BTreeSet;

use serde_json::json;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    forty_five_gateways_are_walked_like_the_sdk_paginator_does,
    search_matches_id_substrings_literally,
    result_info_is_always_present,
);

async fn forty_five_gateways_are_walked_like_the_sdk_paginator_does(app: TestApp) {
    let mut ids = BTreeSet::new();
    for i in 0..45 {
        let id = format!("gw-{i:02}");
        app.create_gateway("acme", &id).await;
        ids.insert(id);
    }
    // The SDK requests page = current + 1 until a page comes back empty.
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let (status, body) = app
            .get(&app.gw_url("acme", &format!("/gateways?per_page=20&page={page}")))
            .await;
        assert_eq!(status, 200, "{body}");
        let items = body["result"].as_array().unwrap();
        let info = &body["result_info"];
        assert_eq!(info["page"], page);
        assert_eq!(info["per_page"], 20);
        assert_eq!(info["count"], items.len());
        assert_eq!(info["total_count"], 45);
        assert_eq!(info["total_pages"], 3);
        if items.is_empty() {
            break;
        }
        seen.extend(items.iter().map(|g| g["id"].as_str().unwrap().to_owned()));
        page += 1;
        assert!(page < 10, "the walk must end");
    }
    assert_eq!(page, 4, "three full or partial pages, then an empty one");
    assert_eq!(seen.len(), 45, "no gateway twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), ids);
}

async fn search_matches_id_substrings_literally(app: TestApp) {
    for id in [
        "prod-openai",
        "prod-anthropic",
        "staging-openai",
        "prod_x",
        "prodax",
    ] {
        app.create_gateway("acme", id).await;
    }
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = app
        .get(&app.gw_url("acme", "/gateways?search=openai"))
        .await;
    assert_eq!(ids(&body), ["prod-openai", "staging-openai"]);
    assert_eq!(body["result_info"]["total_count"], 2);
    let (_, body) = app.get(&app.gw_url("acme", "/gateways?search=PROD-")).await;
    assert_eq!(
        ids(&body),
        ["prod-openai", "prod-anthropic"],
        "search ignores case"
    );
    let (_, body) = app.get(&app.gw_url("acme", "/gateways?search=prod_")).await;
    assert_eq!(ids(&body), ["prod_x"], "an underscore is not a wildcard");
    let (_, body) = app.get(&app.gw_url("acme", "/gateways?search=%25")).await;
    assert_eq!(
        ids(&body),
        Vec::<String>::new(),
        "a percent sign is not a wildcard"
    );
}

async fn result_info_is_always_present(app: TestApp) {
    let (status, body) = app.get(&app.gw_url("acme", "/gateways")).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"], json!([]));
    assert_eq!(
        body["result_info"],
        json!({"page": 1, "per_page": 20, "count": 0, "total_count": 0, "total_pages": 0})
    );
    let (status, body) = app
        .get(&app.gw_url("acme", "/gateways?page=7&per_page=100"))
        .await;
    assert_eq!(status, 200, "a page past the end is not an error");
    assert_eq!(body["result"], json!([]));
}
