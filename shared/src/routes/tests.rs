use serde_json::{Value, json};

use super::condition::Fields;
use super::*;

fn known(p: &str) -> bool {
    matches!(p, "openai" | "anthropic") || p.starts_with("custom-")
}

fn el(id: &str, kind: &str, properties: Value, outputs: Value) -> Value {
    json!({"id": id, "type": kind, "properties": properties, "outputs": outputs})
}

fn to(id: &str) -> Value {
    json!({"elementId": id})
}

/// start → conditional → (true) model a → end, (false) percentage → model b / model c, b falls back to a.
fn sample() -> Value {
    json!([
        el("s", "start", json!({}), json!({"next": to("c")})),
        el(
            "c",
            "conditional",
            json!({"conditions": {"metadata.plan": "free"}}),
            json!({"true": to("a"), "false": to("p")})
        ),
        el(
            "p",
            "percentage",
            json!({}),
            json!({"30%": to("b"), "else": to("cc")})
        ),
        el(
            "a",
            "model",
            json!({"provider": "openai", "model": "gpt-4o-mini", "retries": 1, "timeout": 500}),
            json!({"success": to("e"), "fallback": to("e")})
        ),
        el(
            "b",
            "model",
            json!({"provider": "anthropic", "model": "claude", "retries": 0, "timeout": 0}),
            json!({"success": to("e"), "fallback": to("a")})
        ),
        el(
            "cc",
            "model",
            json!({"provider": "custom-x", "model": "m"}),
            json!({"success": to("e")})
        ),
        el("e", "end", json!({}), json!({})),
    ])
}

fn parse(v: &Value) -> Result<RouteGraph, RouteError> {
    RouteGraph::parse(v, &known)
}

#[test]
fn a_sample_graph_parses() {
    let g = parse(&sample()).unwrap();
    assert!(g.body_keys().is_empty());
    assert_eq!(g.ids[g.start], "s");
    let targets: usize = g
        .elements
        .iter()
        .map(|e| match e {
            Element::Model { model, .. } => model.targets.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(targets, 3);
    let Element::Percentage { buckets } = &g.elements[2] else {
        panic!()
    };
    assert_eq!(buckets.len(), 2);
    assert!((buckets[0].0 - 0.3).abs() < 1e-9);
    assert_eq!(buckets[1], (1.0, Some(5)));
    let Element::Model { model, .. } = &g.elements[3] else {
        panic!()
    };
    assert_eq!((model.retries, model.timeout_ms), (1, 500));
    assert_eq!(model.balance, Balance::Weighted);
    assert_eq!(model.breaker, Some(BreakerSettings::default()));
    assert_eq!(model.retry_on, model::DEFAULT_RETRY_ON);
    assert_eq!(model.fallback_on, model::DEFAULT_FALLBACK_ON);
}

#[test]
fn model_elements_take_several_targets_and_their_policies() {
    let s = el("s", "start", json!({}), json!({"next": to("m")}));
    let e = el("e", "end", json!({}), json!({}));
    let m = |p: Value| el("m", "model", p, json!({"success": to("e")}));
    let g = parse(&json!([s.clone(), m(json!({
        "targets": [{"provider": "openai", "model": "a", "weight": 3}, {"provider": "anthropic", "model": "b", "priority": 1}],
        "balance": "priority", "sla_tpot_ms": 50, "sticky": "metadata.session",
        "circuit_breaker": {"failures": 2, "cooldown": 5}, "retry_on": [503], "fallback_on": [500, 503],
        "health_check": {"interval": 10}
    })), e.clone()]))
    .unwrap();
    let Element::Model { model, .. } = &g.elements[1] else {
        panic!()
    };
    assert_eq!(model.targets.len(), 2);
    assert_eq!((model.targets[0].weight, model.targets[1].priority), (3, 1));
    assert_eq!(model.targets[1].name(), "anthropic/b");
    assert_eq!(
        model.balance,
        Balance::Priority {
            sla_tpot_ms: Some(50.0)
        }
    );
    assert_eq!(model.sticky.as_ref().unwrap().segments, ["session"]);
    let b = model.breaker.unwrap();
    assert_eq!(
        (b.failures, b.cooldown_seconds, b.min_requests),
        (2, 5.0, 10)
    );
    assert_eq!(
        (model.retry_on.as_slice(), model.fallback_on.as_slice()),
        (&[503][..], &[500, 503][..])
    );
    assert_eq!(
        model.health_check,
        Some(HealthCheck {
            interval_seconds: 10.0
        })
    );
    let g = parse(&json!([s.clone(), m(json!({"provider": "openai", "model": "a", "balance": "least_latency", "circuit_breaker": false})), e.clone()])).unwrap();
    let Element::Model { model, .. } = &g.elements[1] else {
        panic!()
    };
    assert_eq!(model.balance, Balance::LeastLatency { tolerance: 0.1 });
    assert_eq!(model.breaker, None);

    let bad = |p: Value, needle: &str| {
        let err = parse(&json!([s.clone(), m(p), e.clone()])).unwrap_err();
        assert_eq!(err.element.as_deref(), Some("m"));
        assert!(err.message.contains(needle), "{err} lacks {needle}");
    };
    bad(json!({"targets": []}), "targets");
    bad(
        json!({"targets": [{"provider": "openai"}]}),
        "targets[0].model",
    );
    bad(
        json!({"targets": [{"provider": "nope", "model": "x"}]}),
        "unknown provider 'nope'",
    );
    bad(
        json!({"targets": [{"provider": "openai", "model": "x", "weight": 0}]}),
        "weight above 0",
    );
    bad(
        json!({"targets": [{"provider": "openai", "model": "x", "weight": -1}]}),
        "weight",
    );
    bad(
        json!({"provider": "openai", "model": "y", "targets": [{"provider": "openai", "model": "x"}]}),
        "must name one of",
    );
    bad(
        json!({"provider": "openai", "model": "x", "balance": "random"}),
        "balance",
    );
    bad(
        json!({"provider": "openai", "model": "x", "sticky": "session"}),
        "sticky",
    );
    bad(
        json!({"provider": "openai", "model": "x", "circuit_breaker": {"failures": 0}}),
        "failures",
    );
    bad(
        json!({"provider": "openai", "model": "x", "retry_on": [200]}),
        "retry_on",
    );
    bad(
        json!({"provider": "openai", "model": "x", "latency_tolerance": 2, "balance": "least_latency"}),
        "latency_tolerance",
    );
    bad(
        json!({"provider": "openai", "model": "x", "health_check": {"interval": 0}}),
        "health_check.interval",
    );
}

fn fails(v: Value, element: Option<&str>, needle: &str) {
    let e = parse(&v).unwrap_err();
    assert_eq!(e.element.as_deref(), element, "{e}");
    assert!(e.message.contains(needle), "{e} lacks {needle}");
}

#[test]
fn invalid_graphs_name_the_element_and_the_problem() {
    let s = |next: &str| el("s", "start", json!({}), json!({"next": to(next)}));
    let e = el("e", "end", json!({}), json!({}));
    fails(json!({}), None, "array");
    fails(json!([]), None, "empty");
    fails(json!([e.clone()]), None, "start");
    fails(json!([s("e"), s("e")]), Some("s"), "used by two");
    fails(json!([s("nope"), e.clone()]), Some("s"), "'nope'");
    fails(
        json!([el("s", "start", json!({}), json!({})), e.clone()]),
        Some("s"),
        "outputs.next",
    );
    fails(
        json!([s("e"), el("e", "bogus", json!({}), json!({}))]),
        Some("e"),
        "unknown type 'bogus'",
    );
    fails(
        json!([s("e"), json!({"id": 3, "type": "end"})]),
        None,
        "elements[1].id",
    );
    // A cycle, and a graph whose end cannot be reached.
    fails(
        json!([
            s("a"),
            el(
                "a",
                "conditional",
                json!({"conditions": {}}),
                json!({"true": to("b"), "false": to("e")})
            ),
            el(
                "b",
                "conditional",
                json!({"conditions": {}}),
                json!({"true": to("a")})
            ),
            e.clone()
        ]),
        Some("a"),
        "cycle",
    );
    fails(
        json!([
            s("m"),
            el(
                "m",
                "model",
                json!({"provider": "openai", "model": "x"}),
                json!({})
            ),
            e.clone()
        ]),
        None,
        "no end",
    );
    // Models: unknown provider, retries and timeout ranges, success into another model.
    let model = |p: Value| el("m", "model", p, json!({"success": to("e")}));
    fails(
        json!([
            s("m"),
            model(json!({"provider": "nope", "model": "x"})),
            e.clone()
        ]),
        Some("m"),
        "unknown provider 'nope'",
    );
    fails(
        json!([s("m"), model(json!({"provider": "openai"})), e.clone()]),
        Some("m"),
        "properties.model is required",
    );
    fails(
        json!([
            s("m"),
            model(json!({"provider": "openai", "model": 3})),
            e.clone()
        ]),
        Some("m"),
        "must be strings",
    );
    fails(
        json!([
            s("m"),
            model(json!({"provider": "openai", "model": "x", "retries": 9})),
            e.clone()
        ]),
        Some("m"),
        "retries",
    );
    fails(
        json!([
            s("m"),
            model(json!({"provider": "openai", "model": "x", "retries": 1.5})),
            e.clone()
        ]),
        Some("m"),
        "retries",
    );
    fails(
        json!([
            s("m"),
            model(json!({"provider": "openai", "model": "x", "timeout": -1})),
            e.clone()
        ]),
        Some("m"),
        "timeout",
    );
    fails(
        json!([
            s("m"),
            el(
                "m",
                "model",
                json!({"provider": "openai", "model": "x"}),
                json!({"success": to("n")})
            ),
            el(
                "n",
                "model",
                json!({"provider": "openai", "model": "y"}),
                json!({"success": to("e")})
            ),
            e.clone()
        ]),
        Some("m"),
        "reaches the model element 'n'",
    );
    fails(
        json!([
            s("m"),
            el(
                "m",
                "model",
                json!({"provider": "openai", "model": "x"}),
                json!({"next": to("e")})
            ),
            e.clone()
        ]),
        Some("m"),
        "unknown output 'next'",
    );
    // Rates.
    let rate = |p: Value| el("r", "rate", p, json!({"success": to("e")}));
    fails(
        json!([
            s("r"),
            rate(json!({"key": "k", "limit": 1, "limitType": "tokens", "window": 60})),
            e.clone()
        ]),
        Some("r"),
        "limitType",
    );
    fails(
        json!([
            s("r"),
            rate(json!({"key": "k", "limit": -1, "limitType": "count", "window": 60})),
            e.clone()
        ]),
        Some("r"),
        "limit must be",
    );
    fails(
        json!([
            s("r"),
            rate(json!({"key": "k", "limit": 1, "limitType": "count", "window": 0})),
            e.clone()
        ]),
        Some("r"),
        "window",
    );
    fails(
        json!([
            s("r"),
            rate(json!({"key": "k", "limit": "1", "limitType": "count", "window": 60})),
            e.clone()
        ]),
        Some("r"),
        "must be a number",
    );
    // Percentages.
    let pct = |o: Value| el("p", "percentage", json!({}), o);
    fails(
        json!([
            s("p"),
            pct(json!({"60%": to("e"), "50%": to("e")})),
            e.clone()
        ]),
        Some("p"),
        "more than 100%",
    );
    fails(
        json!([s("p"), pct(json!({"lots": to("e")})), e.clone()]),
        Some("p"),
        "not a percentage",
    );
    fails(
        json!([
            s("p"),
            pct(
                json!({"1%": to("e"), "2%": to("e"), "3%": to("e"), "4%": to("e"), "5%": to("e"), "6%": to("e")})
            ),
            e.clone()
        ]),
        Some("p"),
        "at most 5",
    );
    // Conditions.
    let cond = |c: Value| {
        el(
            "c",
            "conditional",
            json!({"conditions": c}),
            json!({"true": to("e"), "false": to("e")}),
        )
    };
    fails(
        json!([s("c"), cond(json!({"plan": 1})), e.clone()]),
        Some("c"),
        "not a field path",
    );
    fails(
        json!([
            s("c"),
            cond(json!({"metadata.plan": {"$regex": "x"}})),
            e.clone()
        ]),
        Some("c"),
        "unknown operator '$regex'",
    );
    fails(
        json!([s("c"), cond(json!({"$or": {}})), e.clone()]),
        Some("c"),
        "array",
    );
    fails(
        json!([s("c"), cond(json!("x")), e.clone()]),
        Some("c"),
        "must be an object",
    );
    fails(
        json!([
            s("c"),
            el("c", "conditional", json!({}), json!({})),
            e.clone()
        ]),
        Some("c"),
        "needs properties.conditions",
    );
}

#[test]
fn percentages_without_else_are_relative_shares() {
    let v = json!([
        el("s", "start", json!({}), json!({"next": to("p")})),
        el(
            "p",
            "percentage",
            json!({}),
            json!({"20%": to("e"), "60": to("e")})
        ),
        el("e", "end", json!({}), json!({})),
    ]);
    let g = parse(&v).unwrap();
    let Element::Percentage { buckets } = &g.elements[1] else {
        panic!()
    };
    assert!((buckets[0].0 - 0.25).abs() < 1e-9);
    assert_eq!(buckets[1].0, 1.0);
}

#[test]
fn split_points_are_reproducible_and_even() {
    assert_eq!(split_point("req-1", "p"), split_point("req-1", "p"));
    assert_ne!(split_point("req-1", "p"), split_point("req-1", "q"));
    let buckets = [(0.1, Some(0)), (0.6, Some(1)), (1.0, Some(2))];
    let mut counts = [0u32; 3];
    for i in 0..10_000 {
        let t = Element::percentage_target(&buckets, split_point(&format!("01JF{i:022}"), "p"))
            .unwrap();
        counts[t] += 1;
    }
    for (got, want) in counts.iter().zip([1_000.0, 5_000.0, 4_000.0]) {
        assert!((f64::from(*got) - want).abs() < 300.0, "{counts:?}");
    }
}

struct Req(Value, Value, Vec<(&'static str, &'static str)>);

impl Fields for Req {
    fn test_field(&self, path: &FieldPath, test: &mut dyn FnMut(Option<&Value>) -> bool) -> bool {
        match path.root {
            FieldRoot::Metadata => test(path.descend(&self.0)),
            FieldRoot::Body => test(path.descend(&self.1)),
            FieldRoot::Headers => test(
                self.2
                    .iter()
                    .find(|(n, _)| *n == path.segments[0])
                    .map(|(_, v)| Value::String((*v).to_owned()))
                    .as_ref(),
            ),
        }
    }
}

#[test]
fn conditions_follow_mongodb() {
    let req = Req(
        json!({"plan": "free", "n": 5, "tags": ["a", "b"]}),
        json!({"model": "dynamic/x", "max_tokens": 2000, "nested": {"k": [1, 2]}}),
        vec![("x-tier", "gold"), ("x-count", "7")],
    );
    let yes = |q: Value| {
        assert!(
            Condition::compile(&q).unwrap().matches(&req),
            "{q} should match"
        )
    };
    let no = |q: Value| {
        assert!(
            !Condition::compile(&q).unwrap().matches(&req),
            "{q} should not match"
        )
    };
    yes(json!({}));
    yes(json!({"metadata.plan": "free"}));
    yes(json!({"metadata.plan": {"$eq": "free"}, "body.max_tokens": {"$gt": 1000}}));
    no(json!({"metadata.plan": "free", "body.max_tokens": {"$lt": 1000}}));
    yes(json!({"metadata.plan": {"$ne": "paid"}}));
    yes(json!({"metadata.n": {"$gte": 5, "$lte": 5}}));
    no(json!({"metadata.n": {"$gt": 5}}));
    yes(json!({"metadata.plan": {"$in": ["trial", "free"]}}));
    yes(json!({"metadata.plan": {"$nin": ["trial"]}}));
    yes(json!({"metadata.tags": "b"}));
    yes(json!({"metadata.missing": null}));
    yes(json!({"metadata.missing": {"$exists": false}}));
    no(json!({"metadata.plan": {"$exists": false}}));
    yes(json!({"metadata.missing": {"$ne": 1}}));
    no(json!({"metadata.missing": {"$gt": 1}}));
    yes(json!({"headers.X-Tier": "gold"}));
    yes(json!({"headers.x-count": {"$gt": 6}}));
    yes(json!({"headers.x-count": 7}));
    yes(json!({"body.nested.k.1": 2}));
    yes(json!({"$or": [{"metadata.plan": "paid"}, {"headers.x-tier": "gold"}]}));
    no(json!({"$and": [{"metadata.plan": "paid"}, {"headers.x-tier": "gold"}]}));
    yes(json!({"$nor": [{"metadata.plan": "paid"}]}));
    yes(json!({"$not": {"metadata.plan": "paid"}}));
    yes(json!({"metadata.n": {"$not": {"$gt": 9}}}));
    no(json!({"metadata.plan": {"$gt": 5}}));
    yes(json!({"metadata.plan": {"$gt": "a"}}));
    let c = Condition::compile(
        &json!({"$or": [{"body.max_tokens": 1}, {"body.nested.k": 2}], "headers.x": 1}),
    )
    .unwrap();
    let mut paths = Vec::new();
    c.paths(&mut paths);
    assert_eq!(paths.len(), 3);
}
