//! Reading a log query from the query string: `filters` in the three encodings clients use, the deprecated flat
//! parameters, `search`, and the order.
//!
//! `filters` arrives as (spec §1.1):
//! - dotted and repeated, interleaved by filter (TS: `filters.key=a&filters.operator=eq&filters.value=x&…`);
//! - dotted and repeated, grouped by field (Cloudflare's Python SDK: every `filters.key`, then every
//!   `filters.operator`, then every `filters.value`), paired by position;
//! - bracketed (`filters[0][key]=a&filters[0][value][]=x`) or a JSON array (`filters=[{"key":…}]`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::request::query_value;
use crate::error::Error;
use crate::store::logs::{FilterKey, FilterValue, LogFilter, LogQuery, Op, OrderBy};

/// One value as sent: query-string text, or typed JSON from the JSON form.
#[derive(Debug, Clone)]
enum Raw {
    Str(String),
    Json(Value),
}

#[derive(Debug, Default)]
struct RawFilter {
    key: Option<Raw>,
    operator: Option<Raw>,
    values: Vec<Raw>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadParameter(message.into())
}

/// The query of a bulk delete: the list's parameters, and `order_by` may also name cost, tokens_in, tokens_out,
/// duration or feedback (spec §1.5).
pub fn read_delete_query(pairs: &[(String, String)]) -> Result<LogQuery, Error> {
    let extra = match query_value(pairs, "order_by") {
        Some("cost") => Some(OrderBy::Cost),
        Some("tokens_in") => Some(OrderBy::TokensIn),
        Some("tokens_out") => Some(OrderBy::TokensOut),
        Some("duration") => Some(OrderBy::Duration),
        Some("feedback") => Some(OrderBy::Feedback),
        _ => None,
    };
    let Some(order_by) = extra else {
        return read_query(pairs);
    };
    let rest: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "order_by")
        .cloned()
        .collect();
    Ok(LogQuery {
        order_by,
        ..read_query(&rest)?
    })
}

/// The whole log query of a list (a bulk delete takes the same parameters and more orders).
pub fn read_query(pairs: &[(String, String)]) -> Result<LogQuery, Error> {
    let mut filters = Vec::new();
    for raw in raw_filters(pairs)? {
        filters.push(typed_filter(raw)?);
    }
    filters.extend(deprecated_filters(pairs)?);
    let order_by = match query_value(pairs, "order_by") {
        None | Some("") | Some("created_at") => OrderBy::CreatedAt,
        Some("provider") => OrderBy::Provider,
        Some("model") => OrderBy::Model,
        Some("model_type") => OrderBy::ModelType,
        Some("success") => OrderBy::Success,
        Some("cached") => OrderBy::Cached,
        Some(other) => {
            return Err(bad(format!(
                "order_by must be one of created_at, provider, model, model_type, success, cached; got '{other}'"
            )));
        }
    };
    // The current name wins over the older `direction` when both are sent.
    let direction =
        query_value(pairs, "order_by_direction").or_else(|| query_value(pairs, "direction"));
    let ascending = match direction {
        None | Some("") | Some("desc") => false,
        Some("asc") => true,
        Some(other) => return Err(bad(format!("direction must be asc or desc, got '{other}'"))),
    };
    Ok(LogQuery {
        search: query_value(pairs, "search")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        filters,
        order_by,
        ascending,
    })
}

/// `true`/`false` (and `1`/`0`) for a boolean parameter.
pub fn bool_param(pairs: &[(String, String)], name: &str) -> Result<Option<bool>, Error> {
    match query_value(pairs, name) {
        None | Some("") => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(bad(format!("{name} must be true or false, got '{other}'"))),
    }
}

fn raw_filters(pairs: &[(String, String)]) -> Result<Vec<RawFilter>, Error> {
    let mut out = dotted(pairs)?;
    out.extend(bracketed(pairs)?);
    for (name, value) in pairs {
        if name == "filters" && !value.is_empty() {
            out.extend(json_form(value)?);
        }
    }
    Ok(out)
}

/// The dotted, repeated form, in either order.
fn dotted(pairs: &[(String, String)]) -> Result<Vec<RawFilter>, Error> {
    let fields: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| {
            let field = k.strip_prefix("filters.")?;
            // `filters.value[]` is how some encoders repeat arrays.
            let field = field.strip_suffix("[]").unwrap_or(field);
            Some((field, v.as_str()))
        })
        .collect();
    if fields.is_empty() {
        return Ok(vec![]);
    }
    if let Some((f, _)) = fields
        .iter()
        .find(|(f, _)| !matches!(*f, "key" | "operator" | "value"))
    {
        return Err(bad(format!("unknown filter field 'filters.{f}'")));
    }
    // Interleaved when the parameters split into runs that each start with a key and hold exactly one
    // operator; otherwise grouped, and paired by position.
    let mut runs: Vec<RawFilter> = Vec::new();
    let mut interleaved = fields[0].0 == "key";
    for (field, value) in &fields {
        let raw = Raw::Str((*value).to_owned());
        match *field {
            "key" => runs.push(RawFilter {
                key: Some(raw),
                ..RawFilter::default()
            }),
            _ if runs.is_empty() => interleaved = false,
            "operator" => {
                let run = runs.last_mut().expect("not empty");
                if run.operator.is_some() {
                    interleaved = false;
                }
                run.operator = Some(raw);
            }
            _ => runs.last_mut().expect("not empty").values.push(raw),
        }
    }
    if interleaved && runs.iter().all(|r| r.operator.is_some()) {
        return Ok(runs);
    }
    let of = |name: &str| -> Vec<Raw> {
        fields
            .iter()
            .filter(|(f, _)| *f == name)
            .map(|(_, v)| Raw::Str((*v).to_owned()))
            .collect()
    };
    let (keys, operators, values) = (of("key"), of("operator"), of("value"));
    if keys.len() != operators.len() {
        return Err(bad(format!(
            "filters: {} filters.key but {} filters.operator; each filter needs one of each",
            keys.len(),
            operators.len()
        )));
    }
    let n = keys.len();
    if n == 1 {
        // One filter: every value is one of its alternatives.
        return Ok(vec![RawFilter {
            key: keys.into_iter().next(),
            operator: operators.into_iter().next(),
            values,
        }]);
    }
    if values.len() != n {
        return Err(bad(format!(
            "filters: {n} grouped filters but {} values; with grouped parameters send one value per filter, \
             or interleave key, operator and values",
            values.len()
        )));
    }
    Ok(keys
        .into_iter()
        .zip(operators)
        .zip(values)
        .map(|((k, o), v)| RawFilter {
            key: Some(k),
            operator: Some(o),
            values: vec![v],
        })
        .collect())
}

/// `filters[0][key]=…&filters[0][operator]=…&filters[0][value][]=…` (or `[value][0]`, or `[value]`).
fn bracketed(pairs: &[(String, String)]) -> Result<Vec<RawFilter>, Error> {
    let mut by_index: BTreeMap<u32, RawFilter> = BTreeMap::new();
    for (name, value) in pairs {
        let Some(rest) = name.strip_prefix("filters[") else {
            continue;
        };
        let malformed = || bad(format!("malformed filter parameter '{name}'"));
        let (index, rest) = rest.split_once(']').ok_or_else(malformed)?;
        let index: u32 = index.parse().map_err(|_| malformed())?;
        let rest = rest.strip_prefix('[').ok_or_else(malformed)?;
        let (field, tail) = rest.split_once(']').ok_or_else(malformed)?;
        let entry = by_index.entry(index).or_default();
        let raw = Raw::Str(value.clone());
        match field {
            "key" if tail.is_empty() => entry.key = Some(raw),
            "operator" if tail.is_empty() => entry.operator = Some(raw),
            "value" => entry.values.push(raw),
            _ => return Err(malformed()),
        }
    }
    Ok(by_index.into_values().collect())
}

/// `filters=[{"key":"model","operator":"eq","value":["gpt-4o"]}]` (a single object, or a scalar value, too).
fn json_form(text: &str) -> Result<Vec<RawFilter>, Error> {
    let parsed: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("filters is neither the dotted form nor JSON: {e}")))?;
    let items = match parsed {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => {
            return Err(bad(
                "filters JSON must be an array of {key, operator, value}",
            ));
        }
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Object(mut o) = item else {
                return Err(bad("each filter must be an object {key, operator, value}"));
            };
            let values = match o.remove("value") {
                None => vec![],
                Some(Value::Array(vs)) => vs.into_iter().map(Raw::Json).collect(),
                Some(v) => vec![Raw::Json(v)],
            };
            Ok(RawFilter {
                key: o.remove("key").map(Raw::Json),
                operator: o.remove("operator").map(Raw::Json),
                values,
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    Integer,
    Number,
    Bool,
    Time,
    Metadata,
}

fn key_of(name: &str) -> Result<(FilterKey, Kind), Error> {
    use FilterKey as K;
    Ok(match name {
        "id" => (K::Id, Kind::Text),
        "created_at" => (K::CreatedAt, Kind::Time),
        "request_content_type" => (K::RequestContentType, Kind::Text),
        "response_content_type" => (K::ResponseContentType, Kind::Text),
        "request_type" => (K::RequestType, Kind::Text),
        "success" => (K::Success, Kind::Bool),
        "cached" => (K::Cached, Kind::Bool),
        "provider" => (K::Provider, Kind::Text),
        "model" => (K::Model, Kind::Text),
        "model_type" => (K::ModelType, Kind::Text),
        "cost" => (K::Cost, Kind::Number),
        "tokens" => (K::Tokens, Kind::Integer),
        "tokens_in" => (K::TokensIn, Kind::Integer),
        "tokens_out" => (K::TokensOut, Kind::Integer),
        "duration" => (K::Duration, Kind::Integer),
        "feedback" => (K::Feedback, Kind::Number),
        "event_id" => (K::EventId, Kind::Text),
        "metadata.key" => (K::MetadataKey, Kind::Metadata),
        "metadata.value" => (K::MetadataValue, Kind::Metadata),
        "authentication" => (K::Authentication, Kind::Bool),
        "user_agent" => (K::UserAgent, Kind::Text),
        // Gatehouse's: the virtual key of the request, and the key's user and team.
        "key_id" => (K::KeyId, Kind::Text),
        "user_id" => (K::UserId, Kind::Text),
        "team_id" => (K::TeamId, Kind::Text),
        // Gatehouse's: the dynamic route that chose the model.
        "route_id" => (K::RouteId, Kind::Text),
        "prompts.prompt_id" | "prompts.version_id" | "wholesale" | "compatibilityMode"
        | "dlp_action" => {
            return Err(bad(format!(
                "filter key '{name}' is not supported by this gateway"
            )));
        }
        other => return Err(bad(format!("unknown filter key '{other}'"))),
    })
}

fn text_of(raw: Raw, what: &str) -> Result<String, Error> {
    match raw {
        Raw::Str(s) | Raw::Json(Value::String(s)) => Ok(s),
        Raw::Json(v) => Err(bad(format!("filter {what} must be a string, got {v}"))),
    }
}

/// An RFC 3339 time or epoch milliseconds.
fn time_ms(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp_millis())
    })
}

fn typed_value(raw: Raw, kind: Kind, key: &str) -> Result<FilterValue, Error> {
    // TS sends a null list value as an empty string.
    let text = match raw {
        Raw::Str(s) if s.is_empty() => return Ok(FilterValue::Null),
        Raw::Json(Value::Null) => return Ok(FilterValue::Null),
        Raw::Str(s) | Raw::Json(Value::String(s)) => s,
        Raw::Json(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        Raw::Json(v) => return Err(bad(format!("filter '{key}': unsupported value {v}"))),
    };
    let wrong = |want: &str| bad(format!("filter '{key}' needs {want}, got '{text}'"));
    Ok(match kind {
        Kind::Text | Kind::Metadata => FilterValue::Text(text),
        Kind::Integer => FilterValue::Integer(text.parse().map_err(|_| wrong("an integer"))?),
        Kind::Number => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => FilterValue::Number(n),
            _ => return Err(wrong("a number")),
        },
        Kind::Bool => match text.as_str() {
            "true" => FilterValue::Bool(true),
            "false" => FilterValue::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        Kind::Time => {
            FilterValue::Integer(time_ms(&text).ok_or_else(|| wrong("an RFC 3339 time"))?)
        }
    })
}

fn typed_filter(raw: RawFilter) -> Result<LogFilter, Error> {
    let key_name = text_of(raw.key.ok_or_else(|| bad("a filter has no key"))?, "key")?;
    let (key, kind) = key_of(&key_name)?;
    let op_name = text_of(
        raw.operator
            .ok_or_else(|| bad(format!("filter '{key_name}' has no operator")))?,
        "operator",
    )?;
    let op = match op_name.as_str() {
        "eq" => Op::Eq,
        "neq" => Op::Neq,
        "contains" => Op::Contains,
        "lt" => Op::Lt,
        "gt" => Op::Gt,
        other => {
            return Err(bad(format!(
                "unknown operator '{other}' (eq, neq, contains, lt, gt)"
            )));
        }
    };
    let allowed = match kind {
        Kind::Text | Kind::Metadata => matches!(op, Op::Eq | Op::Neq | Op::Contains),
        Kind::Integer | Kind::Number | Kind::Time => {
            matches!(op, Op::Eq | Op::Neq | Op::Lt | Op::Gt)
        }
        Kind::Bool => matches!(op, Op::Eq | Op::Neq),
    };
    if !allowed {
        return Err(bad(format!(
            "operator '{op_name}' does not apply to '{key_name}'"
        )));
    }
    if raw.values.is_empty() {
        return Err(bad(format!("filter '{key_name}' has no value")));
    }
    let values = raw
        .values
        .into_iter()
        .map(|v| typed_value(v, kind, &key_name))
        .collect::<Result<Vec<_>, _>>()?;
    let null_ok = matches!(op, Op::Eq | Op::Neq) && !matches!(kind, Kind::Bool | Kind::Time);
    if !null_ok && values.contains(&FilterValue::Null) {
        return Err(bad(format!(
            "filter '{key_name}' {op_name} needs a non-null value"
        )));
    }
    Ok(LogFilter { key, op, values })
}

/// The flat parameters older clients send (start_date, min_cost, model, …), as filters.
fn deprecated_filters(pairs: &[(String, String)]) -> Result<Vec<LogFilter>, Error> {
    use FilterKey as K;
    let one = |key, op, value| LogFilter {
        key,
        op,
        values: vec![value],
    };
    let mut out = Vec::new();
    for (name, key, op) in [
        ("start_date", K::CreatedAt, Op::Ge),
        ("end_date", K::CreatedAt, Op::Le),
    ] {
        if let Some(v) = query_value(pairs, name).filter(|v| !v.is_empty()) {
            let ms = time_ms(v)
                .ok_or_else(|| bad(format!("{name} must be an RFC 3339 time, got '{v}'")))?;
            out.push(one(key, op, FilterValue::Integer(ms)));
        }
    }
    let ranges = [
        ("cost", K::Cost),
        ("tokens_in", K::TokensIn),
        ("tokens_out", K::TokensOut),
        ("total_tokens", K::Tokens),
        ("duration", K::Duration),
    ];
    for (suffix, key) in ranges {
        for (prefix, op) in [("min_", Op::Ge), ("max_", Op::Le)] {
            let name = format!("{prefix}{suffix}");
            let Some(v) = query_value(pairs, &name).filter(|v| !v.is_empty()) else {
                continue;
            };
            let n: f64 = v
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| bad(format!("{name} must be a number, got '{v}'")))?;
            let value = if key == K::Cost {
                FilterValue::Number(n)
            } else {
                // An integer column against a fractional bound: round inwards, so `min_duration=1.5` means ≥ 2.
                #[allow(clippy::cast_possible_truncation)]
                let bound = if op == Op::Ge { n.ceil() } else { n.floor() } as i64;
                FilterValue::Integer(bound)
            };
            out.push(one(key, op, value));
        }
    }
    // Thumbs up (1) or down (0) in the older binary scheme: positive, or rated and not positive.
    match query_value(pairs, "feedback") {
        None | Some("") => {}
        Some("1") => out.push(one(K::Feedback, Op::Gt, FilterValue::Number(0.0))),
        Some("0") => out.push(one(K::Feedback, Op::Le, FilterValue::Number(0.0))),
        Some(other) => return Err(bad(format!("feedback must be 0 or 1, got '{other}'"))),
    }
    for (name, key) in [("success", K::Success), ("cached", K::Cached)] {
        if let Some(b) = bool_param(pairs, name)? {
            out.push(one(key, Op::Eq, FilterValue::Bool(b)));
        }
    }
    let texts = [
        ("model", K::Model),
        ("model_type", K::ModelType),
        ("provider", K::Provider),
        ("request_content_type", K::RequestContentType),
        ("response_content_type", K::ResponseContentType),
        // Not deprecated: Gatehouse's own flat forms of the `key_id`, `user_id` and `team_id` filters.
        ("key_id", K::KeyId),
        ("user_id", K::UserId),
        ("team_id", K::TeamId),
        ("route_id", K::RouteId),
    ];
    for (name, key) in texts {
        if let Some(v) = query_value(pairs, name).filter(|v| !v.is_empty()) {
            out.push(one(key, Op::Eq, FilterValue::Text(v.to_owned())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    fn keys(q: &str) -> Vec<(FilterKey, Vec<FilterValue>)> {
        read_query(&pairs(q))
            .unwrap()
            .filters
            .into_iter()
            .map(|f| (f.key, f.values))
            .collect()
    }

    #[test]
    fn grouped_and_interleaved_dotted_filters_pair_by_position() {
        let want = vec![
            (FilterKey::Model, vec![FilterValue::Text("m".into())]),
            (FilterKey::Cached, vec![FilterValue::Bool(true)]),
        ];
        assert_eq!(
            keys(
                "filters.key=model&filters.key=cached&filters.operator=eq&filters.operator=eq&filters.value=m&filters.value=true"
            ),
            want
        );
        assert_eq!(
            keys(
                "filters.key=model&filters.operator=eq&filters.value=m&filters.key=cached&filters.operator=eq&filters.value=true"
            ),
            want
        );
    }

    #[test]
    fn interleaved_filters_may_repeat_values() {
        assert_eq!(
            keys(
                "filters.key=model&filters.operator=eq&filters.value=a&filters.value=b&filters.key=cached&filters.operator=eq&filters.value=false"
            ),
            vec![
                (
                    FilterKey::Model,
                    vec![FilterValue::Text("a".into()), FilterValue::Text("b".into())]
                ),
                (FilterKey::Cached, vec![FilterValue::Bool(false)]),
            ]
        );
    }

    #[test]
    fn ambiguous_grouped_values_are_refused() {
        assert!(read_query(&pairs(
            "filters.key=model&filters.key=cached&filters.operator=eq&filters.operator=eq&filters.value=a&filters.value=b&filters.value=true"
        ))
        .is_err());
    }
}
