//! Log search and totals: what `search` matches, that PostgreSQL serves it from the trigram index, and filtered
//! totals counted up to the cap.

use gatehouse_shared::log::LogRecord;

use crate::logs::{dotted, list_ids, logs_url, record, seed, setup};
use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(
    search_matches_id_provider_model_and_path_ignoring_case,
    filtered_totals_are_exact_up_to_the_cap_and_capped_past_it,
);

async fn search_matches_id_provider_model_and_path_ignoring_case(app: TestApp) {
    setup(&app).await;
    assert_eq!(list_ids(&app, "search=01b").await, ["01B"]);
    assert_eq!(list_ids(&app, "search=GROQ").await, ["01D"]);
    assert_eq!(list_ids(&app, "search=GPT").await, ["01A"]);
    assert_eq!(list_ids(&app, "search=messages").await, ["01B"]);
    assert!(
        list_ids(&app, "search=100%25").await.is_empty(),
        "% is literal"
    );
    // A term never matches across two fields (01A is provider "openai", model "gpt-4o"), whatever joins them.
    assert!(list_ids(&app, "search=openai%20gpt").await.is_empty());
    assert!(list_ids(&app, "search=openai%1Fgpt").await.is_empty());
    assert_eq!(list_ids(&app, "search=ai%1F").await, Vec::<String>::new());
    assert_eq!(list_ids(&app, "search=gpt-4o").await, ["01A"]);
    // A whole id, in either case, finds its log (through the primary key).
    let id = "01KAQ3V8Z5N6M7P8Q9R0S1T2V3";
    seed(&app, &[record(id, 5_000, "mistral")]);
    assert_eq!(list_ids(&app, &format!("search={id}")).await, [id]);
    assert_eq!(
        list_ids(&app, &format!("search={}", id.to_lowercase())).await,
        [id]
    );
    assert_eq!(
        list_ids(&app, "search=Q3V8Z5N6").await,
        [id],
        "part of an id"
    );
}

/// The query's search expression is the trigram index's, to the character: if the two drift apart, search still
/// answers right but reads every row. PostgreSQL only (SQLite has no such index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_uses_the_trigram_index_on_postgres() {
    use diesel::RunQueryDsl;
    use gatehouse_control_plane::store::logs::SEARCH_DOCUMENT;
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    #[derive(diesel::QueryableByName)]
    struct PlanLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let explain = |condition: String| {
        let plan = app
            .db
            .with_conn(move |c| {
                diesel::sql_query("SET enable_seqscan = off").execute(c)?;
                Ok(
                    diesel::sql_query(format!("EXPLAIN SELECT id FROM logs WHERE {condition}"))
                        .load::<PlanLine>(c)?,
                )
            })
            .unwrap();
        plan.into_iter().map(|l| l.line).collect::<Vec<_>>()
    };
    let plan = explain(format!("{SEARCH_DOCUMENT} LIKE '%mini%'"));
    assert!(
        plan.iter().any(|l| l.contains("logs_search_trgm")),
        "{plan:#?}"
    );
    // A whole id searched: the primary key and the trigram index, no scan.
    let plan = explain(format!(
        "id = '01KAQ3V8Z5N6M7P8Q9R0S1T2V3' OR {SEARCH_DOCUMENT} LIKE '%01kaq3v8z5n6m7p8q9r0s1t2v3%'"
    ));
    assert!(
        plan.iter().any(|l| l.contains("logs_pkey"))
            && plan.iter().any(|l| l.contains("logs_search_trgm")),
        "{plan:#?}"
    );
}

/// A filtered list counts its matches up to `FILTERED_COUNT_CAP` (10,000), or to the end of the page asked for
/// when that is further; the unfiltered total is always exact (the gateway's stored count).
async fn filtered_totals_are_exact_up_to_the_cap_and_capped_past_it(app: TestApp) {
    use gatehouse_control_plane::store::logs::FILTERED_COUNT_CAP;
    assert_eq!(FILTERED_COUNT_CAP, 10_000);
    app.create_gateway("acme", "gw").await;
    let records: Vec<LogRecord> = (0..10_050)
        .map(|i| {
            let provider = if i % 335 == 0 { "anthropic" } else { "openai" };
            record(&format!("{i:05}"), i, provider)
        })
        .collect();
    for chunk in records.chunks(2_000) {
        seed(&app, chunk);
    }
    let total = |query: String| {
        let app = &app;
        async move {
            let (status, body) = app.get(&logs_url(app, &query)).await;
            assert_eq!(status, 200, "{query}: {body}");
            (
                body["result_info"]["total_count"].as_i64().unwrap(),
                body["result"].as_array().unwrap().len(),
            )
        }
    };
    let openai = dotted("provider", "eq", &["openai"]);
    let anthropic = dotted("provider", "eq", &["anthropic"]);
    assert_eq!(total("per_page=50".into()).await, (10_050, 50));
    assert_eq!(total(format!("per_page=50&{anthropic}")).await, (30, 30));
    assert_eq!(total(format!("per_page=50&{openai}")).await, (10_000, 50));
    assert_eq!(
        total("per_page=50&search=openai".into()).await,
        (10_000, 50)
    );
    // Past the cap, the count reaches the end of the page asked for, so a page never lies beyond the total.
    assert_eq!(
        total(format!("per_page=50&page=200&{openai}")).await,
        (10_000, 50)
    );
    assert_eq!(
        total(format!("per_page=50&page=201&{openai}")).await,
        (10_020, 20)
    );
}
