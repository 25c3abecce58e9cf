//! The routes phase's orchestration: a model named directly against a dynamic route, on `/compat` through the same
//! gateway, alternating rounds; then the check of the routed answers' `cf-aig-model`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use gatehouse_bench::client::{Target, sample_header};
use gatehouse_bench::load::{PhaseResult, closed_loop, open_loop};
use gatehouse_bench::measure::Side;
use gatehouse_bench::routes::{Duo, ExpectedTarget, Routes};
use gatehouse_bench::stats::Schedule;
use http::{HeaderName, HeaderValue};

use super::{Api, Bench, Settle, api_target};

/// What the plain side asks for: the model the route's first target names, without a route.
const PLAIN_MODEL: &str = "openai/gpt-4o-mini";

/// The targets of the route's model element, as `bench/run.sh` creates the route (keep the two in step): the model
/// each answer names in `cf-aig-model`, and its weight.
const ROUTE_TARGETS: [(&str, u32); 2] = [("gpt-4o-mini", 3), ("gpt-4o-mini-2024-07-18", 1)];

/// The request metadata both sides send (`cf-aig-metadata`): the route's conditions read `tier` and `region` (absent)
/// and its `rate` element counts under `user`.
const METADATA: &str = r#"{"tier":"standard","user":"bench-user"}"#;
/// A header the route's `$or`/`$in` conditional reads; both sides send it.
const TEAM: &str = "bench";

/// The header every routed answer names its model in.
const MODEL_HEADER: &str = "cf-aig-model";

/// The names of the routes phase's sides.
const PLAIN: &str = "plain";
const ROUTED: &str = "routed";

/// A load for one round: open loop on a schedule, or closed loop for a while.
#[derive(Debug, Clone, Copy)]
enum Load {
    Open(Schedule),
    Closed(Duration),
}

/// The pause after each round before the gateway's CPU is read, so work a request leaves behind (health
/// bookkeeping, the limit store) belongs to its round.
const ROUTES_SETTLE: Duration = Duration::from_millis(250);

/// The OpenAI chat completion on `/compat` for `model`, with the metadata and the header the route reads.
fn compat_target(base: &str, model: &str) -> Result<Arc<Target>> {
    let t = api_target(base, Api::OpenAi(model), false, None, 0)?;
    let mut t = Arc::unwrap_or_clone(t);
    t.headers.push((
        HeaderName::from_static("cf-aig-metadata"),
        HeaderValue::from_static(METADATA),
    ));
    t.headers.push((
        HeaderName::from_static("x-team"),
        HeaderValue::from_static(TEAM),
    ));
    Ok(Arc::new(t))
}

impl Bench {
    async fn routes_load(&self, t: &Arc<Target>, load: Load) -> PhaseResult {
        let a = &self.args;
        match load {
            Load::Open(schedule) => open_loop(&self.client, t, schedule, a.timeout).await,
            Load::Closed(duration) => {
                closed_loop(&self.client, t, a.concurrency, duration, a.timeout).await
            }
        }
    }

    /// Plain and routed in `rounds` rounds of `round` each, after one `warmup` of each; the order flips every
    /// round (plain, routed; routed, plain; …) so neither side always follows the other. Each side's rounds are
    /// added up.
    async fn routes_rounds(
        &self,
        what: &str,
        sides: &[(&str, Arc<Target>); 2],
        round: Load,
        warmup: Load,
        rounds: u64,
    ) -> Duo {
        for (name, t) in sides {
            eprintln!("gatehouse-bench: routes: {what} {name} (warm-up)");
            self.routes_load(t, warmup).await;
        }
        tokio::time::sleep(ROUTES_SETTLE).await;
        let mut sums: [Option<Side>; 2] = [None, None];
        for i in 1..=rounds {
            let order = if i % 2 == 0 { [1, 0] } else { [0, 1] };
            for j in order {
                let (name, t) = &sides[j];
                let side = self
                    .measured(
                        &format!("routes: {what} {name} (round {i}/{rounds})"),
                        self.routes_load(t, round),
                        Settle::Pause(ROUTES_SETTLE),
                    )
                    .await;
                match &mut sums[j] {
                    Some(sum) => sum.absorb(side),
                    slot @ None => *slot = Some(side),
                }
            }
        }
        let [plain, routed] = sums;
        Duo {
            base: plain,
            test: routed,
        }
    }

    /// The routes phase: the chat request on `--compat-through` naming `openai/gpt-4o-mini` and naming
    /// `dynamic/{--routes-route}`, alternating, open loop at the chat phase's rate and then saturated; then
    /// `--routes-check` unmeasured routed requests, one after the other, counting their `cf-aig-model`. Skipped
    /// without `--compat-through`.
    pub(super) async fn routes(&self) -> Result<Option<Routes>> {
        let a = &self.args;
        let Some(base) = a.compat_through.as_deref() else {
            eprintln!("gatehouse-bench: routes skipped: it needs --compat-through");
            return Ok(None);
        };
        let plain = compat_target(base, PLAIN_MODEL)?;
        let routed = compat_target(base, &format!("dynamic/{}", a.routes_route))?;
        let sides = [(PLAIN, plain.clone()), (ROUTED, routed.clone())];
        let rounds = a.routes_rounds.max(1);
        let mut r = Routes {
            route: a.routes_route.clone(),
            plain_model: PLAIN_MODEL.into(),
            expected: ROUTE_TARGETS
                .iter()
                .map(|(model, weight)| ExpectedTarget {
                    model: (*model).into(),
                    weight: *weight,
                })
                .collect(),
            rounds,
            ..Routes::default()
        };

        let schedule = Schedule::for_duration(a.rate, a.duration);
        let round = Schedule::new(a.rate, schedule.count().div_ceil(rounds));
        let warmup = Schedule::for_duration(a.rate, a.warmup);
        r.open = self
            .routes_rounds(
                "open loop",
                &sides,
                Load::Open(round),
                Load::Open(warmup),
                rounds,
            )
            .await;
        r.closed = self
            .routes_rounds(
                "closed loop",
                &sides,
                Load::Closed(a.closed_duration.div_f64(rounds as f64)),
                Load::Closed(Duration::from_secs(1)),
                rounds,
            )
            .await;

        eprintln!(
            "gatehouse-bench: routes: checking {MODEL_HEADER} of {} routed answers",
            a.routes_check
        );
        let header = HeaderName::from_static(MODEL_HEADER);
        let mut models = BTreeMap::new();
        for _ in 0..a.routes_check {
            let model = sample_header(&self.client, &routed, &header, a.timeout).await;
            *models.entry(model).or_insert(0) += 1;
        }
        r.models = models;
        r.plain_answer_model = Some(sample_header(&self.client, &plain, &header, a.timeout).await);
        Ok(Some(r))
    }
}
