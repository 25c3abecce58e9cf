//! Evaluations' behaviour (spec §1.3, §3.10): the built-in evaluators, what each computes from the logs an
//! evaluation's datasets match, and the runner that computes it in the background.
//!
//! **Evaluators** are data in code, not a table: `cost` (average cost, over logs with a known cost), `speed`
//! (average duration in ms, over every matched log) and `performance` (human feedback: the percentage of thumbs-up,
//! `feedback > 0`, among logs with feedback). Cloudflare does not publish its ids; these are Gatehouse's and stable.
//!
//! **Matching:** a log belongs to an evaluation when ANY of its datasets matches it, a dataset matching when ALL of
//! its filters do (`store::datasets::matching_any`). The datasets are those the evaluation copied when it was
//! created; the logs are those stored when the run reads them.
//!
//! **Statuses** of a result: [`status::IN_PROGRESS`] (0) from creation until the run writes, then
//! [`status::COMPLETED`] (1) with `result` the metric as a decimal string, or [`status::ERROR`] (2) when the
//! evaluation cannot be computed. A metric over no log with the needed field is completed with `result` `"0"`
//! and `total_logs` 0, and its description says so.
//!
//! **The runner** is one task per control-plane process ([`EvaluationRunner::start`]). It scans for unprocessed
//! evaluations at start-up, whenever a create wakes it, and every [`RESCAN_INTERVAL`] (which retries a run a
//! database failure interrupted). It runs them one at a time: one aggregate query each, then the results and
//! `processed` in one transaction. A process stopped mid-run leaves the evaluation unprocessed and the next start
//! runs it again; when two processes run the same one, the first to commit wins and the other writes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::{AnyConnection, Database};
use crate::error::Error;
use crate::store::datasets::{DatasetFilter, type_filters};
use crate::store::evaluations::{
    self as store, DatasetSnapshot, LogFigures, Outcome, PendingEvaluation,
};
use crate::store::now_ms;

/// The numeric `status` of an evaluation result.
pub mod status {
    /// Created; the runner has not written the result yet.
    pub const IN_PROGRESS: i32 = 0;
    /// `result` holds the metric.
    pub const COMPLETED: i32 = 1;
    /// The metric could not be computed; `status_description` says why.
    pub const ERROR: i32 = 2;

    /// The `status_description` of a status.
    pub fn describe(status: i32) -> &'static str {
        match status {
            IN_PROGRESS => "in progress",
            COMPLETED => "completed",
            _ => "error",
        }
    }
}

/// A built-in evaluator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluator {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The `type` the API shows: the same as the id.
    pub kind: &'static str,
    /// Whether the dashboard adds it to every evaluation (none is).
    pub mandatory: bool,
}

/// The built-in evaluators, in their default order.
pub const EVALUATORS: [Evaluator; 3] = [
    Evaluator {
        id: "cost",
        name: "Cost",
        description: "Average cost (USD) of the logs with a known cost",
        kind: "cost",
        mandatory: false,
    },
    Evaluator {
        id: "speed",
        name: "Speed",
        description: "Average duration (ms) of the logs",
        kind: "speed",
        mandatory: false,
    },
    Evaluator {
        id: "performance",
        name: "Performance (human feedback)",
        description: "Percentage of thumbs-up (feedback > 0) among the logs with feedback",
        kind: "performance",
        mandatory: false,
    },
];

/// The `created_at` and `modified_at` the built-in evaluators show: fixed, since they never change.
pub const EVALUATORS_SINCE_MS: i64 = 1_732_233_600_000; // 2024-11-22T00:00:00Z

pub fn evaluator(id: &str) -> Option<&'static Evaluator> {
    EVALUATORS.iter().find(|e| e.id == id)
}

/// How often the runner looks for unprocessed evaluations without being woken.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(30);

/// Evaluations read per scan.
const SCAN_BATCH: i64 = 100;

/// `x` with at most `places` decimals, without trailing zeros (`66.67`, `50`, `0.0015`).
fn decimal(x: f64, places: usize) -> String {
    let text = format!("{x:.places$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// One evaluator's outcome over `figures`.
pub fn outcome(evaluation_type_id: &str, figures: &LogFigures) -> Outcome {
    let completed = |result: String, total_logs: i64, empty: &str| Outcome {
        evaluation_type_id: evaluation_type_id.to_owned(),
        status: status::COMPLETED,
        status_description: if total_logs == 0 {
            format!("completed: {empty}")
        } else {
            status::describe(status::COMPLETED).to_owned()
        },
        result,
        total_logs,
    };
    #[allow(clippy::cast_precision_loss)]
    match evaluation_type_id {
        "cost" => completed(
            decimal(figures.average_cost.unwrap_or(0.0), 10),
            figures.with_cost,
            "no log with a known cost",
        ),
        "speed" => completed(
            decimal(figures.average_duration.unwrap_or(0.0), 2),
            figures.logs,
            "no log",
        ),
        "performance" => {
            let percent = if figures.with_feedback == 0 {
                0.0
            } else {
                figures.thumbs_up as f64 * 100.0 / figures.with_feedback as f64
            };
            completed(
                decimal(percent, 2),
                figures.with_feedback,
                "no log with feedback",
            )
        }
        other => failed(other, format!("unknown evaluator '{other}'")),
    }
}

fn failed(evaluation_type_id: &str, why: String) -> Outcome {
    Outcome {
        evaluation_type_id: evaluation_type_id.to_owned(),
        result: String::new(),
        status: status::ERROR,
        status_description: format!("error: {why}"),
        total_logs: 0,
    }
}

/// The typed filters of each dataset an evaluation copied.
fn dataset_filters(snapshot: &str) -> Result<Vec<Vec<DatasetFilter>>, String> {
    let datasets: Vec<DatasetSnapshot> = serde_json::from_str(snapshot)
        .map_err(|e| format!("the evaluation's stored datasets do not parse: {e}"))?;
    datasets
        .iter()
        .map(|d| {
            let items = d
                .filters
                .as_array()
                .ok_or("a dataset's filters are not an array")?;
            type_filters(items).map_err(|problems| {
                format!(
                    "dataset '{}' has an invalid filter: {}",
                    d.id,
                    problems.first().map(|p| p.message.as_str()).unwrap_or("")
                )
            })
        })
        .collect()
}

/// Runs one evaluation: measures its logs and writes the results. Returns whether this run wrote them (false when
/// the evaluation is gone or another run finished it). A database error leaves it unprocessed, for a later scan.
pub fn run_one(conn: &mut AnyConnection, pending: &PendingEvaluation) -> Result<bool, Error> {
    let Some(evaluation) = store::get(conn, &pending.account_id, &pending.gateway_id, &pending.id)?
    else {
        return Ok(false);
    };
    if evaluation.row.processed {
        return Ok(false);
    }
    let (total_logs, outcomes): (i64, Vec<Outcome>) =
        match dataset_filters(&evaluation.row.datasets) {
            Ok(datasets) => {
                let figures =
                    store::measure(conn, &pending.account_id, &pending.gateway_id, &datasets)?;
                let outcomes = evaluation
                    .results
                    .iter()
                    .map(|r| outcome(&r.evaluation_type_id, &figures))
                    .collect();
                (figures.logs, outcomes)
            }
            Err(why) => {
                tracing::warn!(evaluation = %pending.id, %why, "evaluation cannot be computed");
                let outcomes = evaluation
                    .results
                    .iter()
                    .map(|r| failed(&r.evaluation_type_id, why.clone()))
                    .collect();
                (0, outcomes)
            }
        };
    store::complete(conn, pending, total_logs, &outcomes, now_ms())
}

/// Runs every unprocessed evaluation of the database, oldest first; returns how many this call completed.
pub async fn run_pending(db: &Database) -> Result<usize, Error> {
    let mut completed = 0;
    loop {
        let batch = db.run(|c| store::unprocessed(c, SCAN_BATCH)).await?;
        let full = i64::try_from(batch.len()).unwrap_or(i64::MAX) >= SCAN_BATCH;
        let mut progressed = false;
        for pending in batch {
            let key = pending.clone();
            match db.run(move |c| run_one(c, &key)).await {
                Ok(wrote) => {
                    progressed = true;
                    completed += usize::from(wrote);
                }
                Err(error) => {
                    tracing::warn!(%error, account = %pending.account_id, gateway = %pending.gateway_id,
                        evaluation = %pending.id, "evaluation run failed; it is retried on the next scan");
                }
            }
        }
        // Another batch only when this one was full and moved on: a run that keeps failing must not spin.
        if !full || !progressed {
            return Ok(completed);
        }
    }
}

/// The background runner of one control-plane process. Cloned handles share it; [`EvaluationRunner::wake`] asks
/// it to scan now (after a create).
#[derive(Debug, Clone)]
pub struct EvaluationRunner {
    wake: Arc<Notify>,
}

impl EvaluationRunner {
    /// Starts the runner on the current tokio runtime, which it lives as long as: it is cancelled with it, and a
    /// run cut short that way is run again at the next start (results are written in one transaction). Without a
    /// runtime nothing runs, and the evaluations wait for a process that has one.
    pub fn start(db: Database) -> Self {
        let wake = Arc::new(Notify::new());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(run(db, Arc::clone(&wake)));
            }
            Err(_) => tracing::warn!("no async runtime: the evaluation runner is not started"),
        }
        Self { wake }
    }

    /// Asks the runner to scan for unprocessed evaluations now (a wake-up while it runs is kept for after).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

async fn run(db: Database, wake: Arc<Notify>) {
    loop {
        match run_pending(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(evaluations = n, "evaluations completed"),
            Err(error) => tracing::warn!(%error, "scanning for unprocessed evaluations failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(RESCAN_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> LogFigures {
        LogFigures {
            logs: 4,
            with_cost: 3,
            average_cost: Some(0.0015),
            average_duration: Some(212.5),
            with_feedback: 3,
            thumbs_up: 2,
        }
    }

    #[test]
    fn each_evaluator_reports_its_metric_and_the_logs_it_had() {
        for (id, result, total) in [
            ("cost", "0.0015", 3),
            ("speed", "212.5", 4),
            ("performance", "66.67", 3),
        ] {
            let o = outcome(id, &figures());
            assert_eq!(
                (o.result.as_str(), o.total_logs, o.status),
                (result, total, status::COMPLETED),
                "{id}"
            );
            assert_eq!(o.status_description, "completed");
        }
        let unknown = outcome("quality", &figures());
        assert_eq!(unknown.status, status::ERROR);
    }

    #[test]
    fn metrics_over_no_log_are_zero_and_say_so() {
        for id in ["cost", "speed", "performance"] {
            let o = outcome(id, &LogFigures::default());
            assert_eq!((o.result.as_str(), o.total_logs), ("0", 0), "{id}");
            assert!(
                o.status_description.starts_with("completed: no log"),
                "{o:?}"
            );
        }
    }

    #[test]
    fn decimals_lose_trailing_zeros() {
        assert_eq!(decimal(50.0, 2), "50");
        assert_eq!(decimal(2.0 / 3.0 * 100.0, 2), "66.67");
        assert_eq!(decimal(0.000_000_000_01, 10), "0");
        assert_eq!(decimal(1234.0, 2), "1234");
    }

    #[test]
    fn evaluator_ids_are_unique() {
        for (i, e) in EVALUATORS.iter().enumerate() {
            assert_eq!(evaluator(e.id), Some(&EVALUATORS[i]));
        }
    }
}
