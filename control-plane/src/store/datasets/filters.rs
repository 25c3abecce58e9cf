//! The rules of a dataset's filters (spec §1.4) and their translation to a SQL predicate over `logs` for the
//! evaluation runner.
//!
//! Semantics, as the logs API's filters have them (`store/logs/query.rs`): a dataset's filters AND together, the
//! values of one filter OR together. An evaluation over several datasets takes a log that any of them matches
//! ([`matching_any`]).

use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};
use serde_json::{Map, Value};

use crate::db::MultiBackend;
use crate::error::Error;
use crate::schema::logs;
use crate::store::like_contains;

diesel::define_sql_function! {
    /// SQL's `lower(text)`, the same on PostgreSQL and SQLite: `contains` ignores case on both.
    fn lower(x: Nullable<Text>) -> Nullable<Text>;
}

/// At most this many filters per dataset, and values per filter: Gatehouse's bounds, which keep the SQL of an
/// evaluation over five datasets small (Cloudflare publishes none; its dashboard sends one value per filter).
pub const MAX_FILTERS: usize = 20;
pub const MAX_VALUES: usize = 50;

/// The filter keys a dataset may use (spec §1.4), in the spec's order.
pub const FILTER_KEYS: &[&str] = &[
    "created_at",
    "request_content_type",
    "response_content_type",
    "success",
    "cached",
    "provider",
    "model",
    "cost",
    "tokens",
    "tokens_in",
    "tokens_out",
    "duration",
    "feedback",
];

/// The operators a dataset filter may use.
pub const OPERATORS: &[&str] = &["eq", "contains", "lt", "gt"];

/// What a key's values are, which decides the operators that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// `eq`, `contains` (case-insensitive substring).
    Text,
    /// `eq` only.
    Bool,
    /// `eq`, `lt`, `gt` over a floating-point column (cost, feedback).
    Number,
    /// `eq`, `lt`, `gt` over an integer column (tokens, duration in ms).
    Integer,
    /// `eq`, `lt`, `gt` over `created_at`: an RFC 3339 time or epoch milliseconds.
    Time,
}

impl FilterKind {
    fn of(key: &str) -> Option<Self> {
        Some(match key {
            "created_at" => Self::Time,
            "request_content_type" | "response_content_type" | "provider" | "model" => Self::Text,
            "success" | "cached" => Self::Bool,
            "cost" | "feedback" => Self::Number,
            "tokens" | "tokens_in" | "tokens_out" | "duration" => Self::Integer,
            _ => return None,
        })
    }

    fn operators(self) -> &'static [&'static str] {
        match self {
            Self::Text => &["eq", "contains"],
            Self::Bool => &["eq"],
            Self::Number | Self::Integer | Self::Time => &["eq", "lt", "gt"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Text => "a text field",
            Self::Bool => "a boolean field",
            Self::Number | Self::Integer => "a numeric field",
            Self::Time => "a date field",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetOp {
    Eq,
    Contains,
    Lt,
    Gt,
}

/// One value, checked against its key's kind; times are epoch milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedValue {
    Text(String),
    Bool(bool),
    Number(f64),
    Integer(i64),
}

/// One filter, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetFilter {
    pub key: &'static str,
    pub op: DatasetOp,
    pub values: Vec<TypedValue>,
}

/// A problem with one filter field, at `path` below the filters array (`["0", "operator"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterProblem {
    pub path: Vec<String>,
    pub message: String,
}

fn problem(path: &[&str], message: impl Into<String>) -> FilterProblem {
    FilterProblem {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        message: message.into(),
    }
}

/// JSON type names as the API's validation messages spell them (kept here so the store does not reach up into
/// `api`).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Reads a filters array: every problem, each with its path below the array, or the typed filters.
pub fn type_filters(items: &[Value]) -> Result<Vec<DatasetFilter>, Vec<FilterProblem>> {
    let mut problems = Vec::new();
    let mut filters = Vec::new();
    if items.len() > MAX_FILTERS {
        problems.push(problem(
            &[],
            format!("Array must contain at most {MAX_FILTERS} element(s)"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        match item {
            Value::Object(object) => match type_filter(object) {
                Ok(f) => filters.push(f),
                Err(found) => problems.extend(found.into_iter().map(|mut p| {
                    p.path.insert(0, index.clone());
                    p
                })),
            },
            other => problems.push(problem(
                &[&index],
                format!("Expected object, received {}", type_name(other)),
            )),
        }
    }
    if problems.is_empty() {
        Ok(filters)
    } else {
        Err(problems)
    }
}

/// Reads one `{key, operator, value}` object.
fn type_filter(object: &Map<String, Value>) -> Result<DatasetFilter, Vec<FilterProblem>> {
    let mut problems = Vec::new();
    let key = match object.get("key") {
        None => {
            problems.push(problem(
                &["key"],
                format!("Required: expected {}", quoted(FILTER_KEYS)),
            ));
            None
        }
        Some(Value::String(k)) => match FILTER_KEYS.iter().find(|known| **known == k) {
            Some(known) => Some(*known),
            None => {
                problems.push(problem(
                    &["key"],
                    format!(
                        "Invalid enum value. Expected {}, received '{k}'",
                        quoted(FILTER_KEYS)
                    ),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(problem(
                &["key"],
                format!("Expected string, received {}", type_name(other)),
            ));
            None
        }
    };
    let op = match object.get("operator") {
        None => {
            problems.push(problem(
                &["operator"],
                format!("Required: expected {}", quoted(OPERATORS)),
            ));
            None
        }
        Some(Value::String(o)) => match o.as_str() {
            "eq" => Some(DatasetOp::Eq),
            "contains" => Some(DatasetOp::Contains),
            "lt" => Some(DatasetOp::Lt),
            "gt" => Some(DatasetOp::Gt),
            other => {
                problems.push(problem(
                    &["operator"],
                    format!(
                        "Invalid enum value. Expected {}, received '{other}'",
                        quoted(OPERATORS)
                    ),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(problem(
                &["operator"],
                format!("Expected string, received {}", type_name(other)),
            ));
            None
        }
    };
    let kind = key.and_then(FilterKind::of);
    // The operator must suit the key: `lt`/`gt` order numbers and dates, `contains` searches text.
    if let (Some(key), Some(kind), Some(op_name)) =
        (key, kind, object.get("operator").and_then(Value::as_str))
        && op.is_some()
        && !kind.operators().contains(&op_name)
    {
        problems.push(problem(
            &["operator"],
            format!(
                "Operator '{op_name}' does not apply to '{key}' ({}); use {}",
                kind.describe(),
                quoted(kind.operators())
            ),
        ));
    }
    let mut values = Vec::new();
    match object.get("value") {
        None => problems.push(problem(
            &["value"],
            "Required: expected an array of string | number | boolean",
        )),
        Some(Value::Array(items)) if items.is_empty() => problems.push(problem(
            &["value"],
            "Array must contain at least 1 element(s)",
        )),
        Some(Value::Array(items)) if items.len() > MAX_VALUES => problems.push(problem(
            &["value"],
            format!("Array must contain at most {MAX_VALUES} element(s)"),
        )),
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                let index = i.to_string();
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    problems.push(problem(
                        &["value", &index],
                        format!(
                            "Expected string | number | boolean, received {}",
                            type_name(v)
                        ),
                    ));
                    continue;
                }
                let (Some(key), Some(kind)) = (key, kind) else {
                    continue;
                };
                match typed_value(kind, v) {
                    Some(t) => values.push(t),
                    None => problems.push(problem(
                        &["value", &index],
                        format!(
                            "'{key}' needs {}, received {} {v}",
                            kind_value(kind),
                            type_name(v)
                        ),
                    )),
                }
            }
        }
        Some(other) => problems.push(problem(
            &["value"],
            format!("Expected array, received {}", type_name(other)),
        )),
    }
    match (key, op) {
        (Some(key), Some(op)) if problems.is_empty() => Ok(DatasetFilter { key, op, values }),
        _ => Err(problems),
    }
}

fn kind_value(kind: FilterKind) -> &'static str {
    match kind {
        FilterKind::Text => "a string",
        FilterKind::Bool => "a boolean",
        FilterKind::Number => "a number",
        FilterKind::Integer => "an integer",
        FilterKind::Time => "an RFC 3339 date-time or epoch milliseconds",
    }
}

/// A value of `kind`. Numbers, booleans and times also come as strings (a dashboard or a query-string client
/// cannot always send them typed), but never the other way round: `model` takes only strings.
fn typed_value(kind: FilterKind, v: &Value) -> Option<TypedValue> {
    match (kind, v) {
        (FilterKind::Text, Value::String(s)) => Some(TypedValue::Text(s.clone())),
        (FilterKind::Bool, Value::Bool(b)) => Some(TypedValue::Bool(*b)),
        (FilterKind::Bool, Value::String(s)) => match s.as_str() {
            "true" => Some(TypedValue::Bool(true)),
            "false" => Some(TypedValue::Bool(false)),
            _ => None,
        },
        (FilterKind::Number, Value::Number(n)) => n.as_f64().map(TypedValue::Number),
        (FilterKind::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(TypedValue::Number),
        (FilterKind::Integer, Value::Number(n)) => whole(n.as_f64()?).map(TypedValue::Integer),
        (FilterKind::Integer, Value::String(s)) => s.trim().parse().ok().map(TypedValue::Integer),
        (FilterKind::Time, Value::Number(n)) => whole(n.as_f64()?).map(TypedValue::Integer),
        (FilterKind::Time, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| TypedValue::Integer(t.timestamp_millis()))
            .or_else(|| s.trim().parse().ok().map(TypedValue::Integer)),
        _ => None,
    }
}

/// `n` as an integer when it has no fractional part and fits (SQL compares it with a BIGINT column).
#[allow(clippy::cast_possible_truncation)]
fn whole(n: f64) -> Option<i64> {
    (n.fract() == 0.0 && n.abs() < 9.0e15).then_some(n as i64)
}

type Pred = Box<dyn BoxableExpression<logs::table, MultiBackend, SqlType = Nullable<Bool>>>;

fn mismatch(f: &DatasetFilter) -> Error {
    Error::Internal(format!(
        "dataset filter on '{}' holds a value of the wrong kind",
        f.key
    ))
}

macro_rules! text_pred {
    ($f:expr, $col:expr, $v:expr) => {{
        let col = $col.nullable();
        match ($f.op, $v) {
            (DatasetOp::Eq, TypedValue::Text(s)) => Box::new(col.eq(s.clone())) as Pred,
            (DatasetOp::Contains, TypedValue::Text(s)) => Box::new(
                lower(col)
                    .like(like_contains(&s.to_lowercase()))
                    .escape('\\'),
            ) as Pred,
            _ => return Err(mismatch($f)),
        }
    }};
}

macro_rules! ordered_pred {
    ($f:expr, $col:expr, $x:expr) => {{
        let col = $col.nullable();
        let x = $x;
        match $f.op {
            DatasetOp::Eq => Box::new(col.eq(x)) as Pred,
            DatasetOp::Lt => Box::new(col.lt(x)) as Pred,
            DatasetOp::Gt => Box::new(col.gt(x)) as Pred,
            DatasetOp::Contains => return Err(mismatch($f)),
        }
    }};
}

macro_rules! int_pred {
    ($f:expr, $col:expr, $v:expr) => {{
        match $v {
            TypedValue::Integer(n) => ordered_pred!($f, $col, *n),
            _ => return Err(mismatch($f)),
        }
    }};
}

macro_rules! float_pred {
    ($f:expr, $col:expr, $v:expr) => {{
        match $v {
            TypedValue::Number(n) => ordered_pred!($f, $col, *n),
            _ => return Err(mismatch($f)),
        }
    }};
}

macro_rules! bool_pred {
    ($f:expr, $col:expr, $v:expr) => {{
        match ($f.op, $v) {
            (DatasetOp::Eq, TypedValue::Bool(b)) => Box::new($col.nullable().eq(*b)) as Pred,
            _ => return Err(mismatch($f)),
        }
    }};
}

fn value_pred(f: &DatasetFilter, v: &TypedValue) -> Result<Pred, Error> {
    Ok(match f.key {
        "created_at" => int_pred!(f, logs::created_at, v),
        "request_content_type" => text_pred!(f, logs::request_content_type, v),
        "response_content_type" => text_pred!(f, logs::response_content_type, v),
        "provider" => text_pred!(f, logs::provider, v),
        "model" => text_pred!(f, logs::model, v),
        "success" => bool_pred!(f, logs::success, v),
        "cached" => bool_pred!(f, logs::cached, v),
        "cost" => float_pred!(f, logs::cost, v),
        "feedback" => float_pred!(f, logs::feedback, v),
        // `tokens` is the stored sum of both directions, as the logs API's filter reads it.
        "tokens" => int_pred!(f, logs::total_tokens, v),
        "tokens_in" => int_pred!(f, logs::tokens_in, v),
        "tokens_out" => int_pred!(f, logs::tokens_out, v),
        "duration" => int_pred!(f, logs::duration, v),
        other => {
            return Err(Error::Internal(format!(
                "dataset filter key '{other}' has no column"
            )));
        }
    })
}

/// The logs one dataset matches: every filter (AND), each by any of its values (OR). `None` when the dataset has
/// no filters, and so matches every log of the gateway.
fn dataset_pred(filters: &[DatasetFilter]) -> Result<Option<Pred>, Error> {
    let mut all: Option<Pred> = None;
    for f in filters {
        let mut any: Option<Pred> = None;
        for v in &f.values {
            let p = value_pred(f, v)?;
            any = Some(match any {
                Some(a) => Box::new(a.or(p)),
                None => p,
            });
        }
        let any =
            any.ok_or_else(|| Error::Internal(format!("filter on '{}' has no value", f.key)))?;
        all = Some(match all {
            Some(a) => Box::new(a.and(any)),
            None => any,
        });
    }
    Ok(all)
}

/// The logs of `account_id`'s gateway `gateway_id` that any of `datasets` matches (each a list of filters).
pub fn matching_any(
    account_id: &str,
    gateway_id: &str,
    datasets: &[Vec<DatasetFilter>],
) -> Result<logs::BoxedQuery<'static, MultiBackend>, Error> {
    let mut q = logs::table
        .filter(logs::account_id.eq(account_id.to_owned()))
        .filter(logs::gateway_id.eq(gateway_id.to_owned()))
        .into_boxed();
    let mut any: Option<Pred> = None;
    for filters in datasets {
        match dataset_pred(filters)? {
            // A dataset without filters takes every log: so does the union.
            None => return Ok(q),
            Some(p) => {
                any = Some(match any {
                    Some(a) => Box::new(a.or(p)),
                    None => p,
                });
            }
        }
    }
    if let Some(p) = any {
        q = q.filter(p);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(items: Value) -> Vec<String> {
        match type_filters(items.as_array().unwrap()) {
            Ok(_) => vec![],
            Err(problems) => problems.iter().map(|p| p.path.join(".")).collect(),
        }
    }

    #[test]
    fn operators_must_suit_the_key() {
        for (filter, want) in [
            (
                json!({"key": "model", "operator": "eq", "value": ["gpt-4o"]}),
                vec![],
            ),
            (
                json!({"key": "model", "operator": "contains", "value": ["gpt"]}),
                vec![],
            ),
            (
                json!({"key": "cost", "operator": "lt", "value": [0.5, "0.7"]}),
                vec![],
            ),
            (
                json!({"key": "created_at", "operator": "gt", "value": ["2026-01-01T00:00:00Z"]}),
                vec![],
            ),
            (
                json!({"key": "success", "operator": "eq", "value": [true, "false"]}),
                vec![],
            ),
            (
                json!({"key": "model", "operator": "lt", "value": ["a"]}),
                vec!["0.operator"],
            ),
            (
                json!({"key": "cost", "operator": "contains", "value": [1]}),
                vec!["0.operator"],
            ),
            (
                json!({"key": "cached", "operator": "gt", "value": [true]}),
                vec!["0.operator"],
            ),
            (
                json!({"key": "model", "operator": "eq", "value": [3]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "duration", "operator": "gt", "value": [1.5]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "cost", "operator": "eq", "value": ["cheap"]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "created_at", "operator": "lt", "value": ["yesterday"]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "success", "operator": "eq", "value": [1]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "model", "operator": "eq", "value": [null]}),
                vec!["0.value.0"],
            ),
            (
                json!({"key": "model", "operator": "eq", "value": []}),
                vec!["0.value"],
            ),
            (
                json!({"key": "model", "operator": "eq", "value": "gpt"}),
                vec!["0.value"],
            ),
            (
                json!({"key": "id", "operator": "neq"}),
                vec!["0.key", "0.operator", "0.value"],
            ),
            (json!({}), vec!["0.key", "0.operator", "0.value"]),
            (json!("model"), vec!["0"]),
        ] {
            assert_eq!(paths(json!([filter])), want, "{filter}");
        }
    }

    #[test]
    fn times_read_as_epoch_milliseconds() {
        let f = type_filters(&[json!({"key": "created_at", "operator": "lt",
            "value": ["1970-01-01T00:00:01Z", 5]})])
        .unwrap();
        assert_eq!(
            f[0].values,
            [TypedValue::Integer(1000), TypedValue::Integer(5)]
        );
    }
}
