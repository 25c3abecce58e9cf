//! Reading the bodies of keys, users and teams: each field typed and checked with its path, every problem reported
//! at once (`FieldReader`). Unknown fields are ignored, as on every other resource. Whether a named gateway, user
//! or team exists is checked by the handlers, in the transaction that writes.

use std::collections::HashMap;

use gatehouse_shared::access::{
    Budget, BudgetPeriod, Limits, ModelLimits, TpmKind, pattern_problem,
};
use serde_json::{Map, Value};

use crate::api::validation::{Field, FieldReader, type_name};
use crate::store::access::Metadata;

/// Longest name of a key, user or team, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest user or team id a body may name (the ids Gatehouse makes are 36-character UUIDs).
pub const MAX_ID_CHARS: usize = 64;
/// Most metadata entries, and the longest key and string value, in characters.
pub const MAX_METADATA_ENTRIES: usize = 32;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 1024;
/// Most gateways and model patterns a key names.
pub const MAX_KEY_GATEWAYS: usize = 256;
pub const MAX_KEY_MODELS: usize = 256;
/// Most per-model limits of one subject.
pub const MAX_MODEL_LIMITS: usize = 64;
/// Largest requests or tokens per minute (a bound keeps arithmetic safe; no deployment comes near it).
pub const MAX_PER_MINUTE: i64 = 1_000_000_000_000;
/// Largest budget, in USD.
pub const MAX_BUDGET_USD: f64 = 1_000_000_000.0;

const TPM_KINDS: &[&str] = &["input", "output", "total"];
const PERIODS: &[&str] = &["day", "week", "month"];

/// `name`: 1..[`MAX_NAME_CHARS`] characters, not only whitespace; required when `required`, never null.
pub fn read_name(r: &mut FieldReader<'_>, required: bool) -> Field<String> {
    let name = if required {
        match r.required_string("name", 1, MAX_NAME_CHARS) {
            Some(n) => Field::Set(n),
            None => Field::Absent,
        }
    } else {
        match r.string("name", 1, MAX_NAME_CHARS) {
            Field::Null => {
                r.error("name", "Expected string, received null");
                Field::Absent
            }
            other => other,
        }
    };
    match name {
        Field::Set(n) if n.trim().is_empty() => {
            r.error("name", "A name is not only whitespace");
            Field::Absent
        }
        other => other,
    }
}

/// `user_id` or `team_id`: an id of 1..[`MAX_ID_CHARS`] characters, or null.
pub fn read_subject_id(r: &mut FieldReader<'_>, name: &str) -> Field<String> {
    r.string(name, 1, MAX_ID_CHARS)
}

/// `gateways`: at most [`MAX_KEY_GATEWAYS`] distinct gateway ids (existence is the handler's check).
pub fn read_gateways(r: &mut FieldReader<'_>) -> Field<Vec<String>> {
    read_distinct_strings(r, "gateways", MAX_KEY_GATEWAYS, |id| {
        (!gatehouse_shared::ids::is_valid_gateway_id(id)).then(|| {
            format!(
                "'{id}' is not a gateway id (lower-case letters, digits and underscores, in runs joined by \
                 single hyphens)"
            )
        })
    })
}

/// `models`: at most [`MAX_KEY_MODELS`] distinct model patterns (`anthropic/*`).
pub fn read_models(r: &mut FieldReader<'_>) -> Field<Vec<String>> {
    read_distinct_strings(r, "models", MAX_KEY_MODELS, |p| {
        pattern_problem(p).map(str::to_owned)
    })
}

/// An array of at most `max` distinct strings, each passing `check`.
fn read_distinct_strings(
    r: &mut FieldReader<'_>,
    name: &str,
    max: usize,
    check: impl Fn(&str) -> Option<String>,
) -> Field<Vec<String>> {
    let items = match r.array(name) {
        Field::Set(items) if items.len() > max => {
            r.error(
                name,
                format!("At most {max} items, received {}", items.len()),
            );
            return Field::Absent;
        }
        Field::Set(items) => items,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(s) = item.as_str() else {
            r.error_at(
                &[name, &index],
                format!("Expected string, received {}", type_name(item)),
            );
            ok = false;
            continue;
        };
        if let Some(problem) = check(s) {
            r.error_at(&[name, &index], problem);
            ok = false;
        } else if let Some(first) = out.iter().position(|o| o == s) {
            r.error_at(
                &[name, &index],
                format!("Duplicate '{s}': {name}.{first} has it already"),
            );
            ok = false;
        }
        out.push(s.to_owned());
    }
    if ok { Field::Set(out) } else { Field::Absent }
}

/// `metadata`: an object of at most [`MAX_METADATA_ENTRIES`] string, number or boolean values.
pub fn read_metadata(r: &mut FieldReader<'_>) -> Field<Metadata> {
    let object = match r.object("metadata") {
        Field::Set(o) => o,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut ok = true;
    if object.len() > MAX_METADATA_ENTRIES {
        r.error(
            "metadata",
            format!(
                "At most {MAX_METADATA_ENTRIES} entries, received {}",
                object.len()
            ),
        );
        ok = false;
    }
    for (key, value) in object {
        let problem = if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            Some(format!(
                "A metadata key has 1 to {MAX_METADATA_KEY_CHARS} characters"
            ))
        } else {
            match value {
                Value::String(s) if s.chars().count() > MAX_METADATA_VALUE_CHARS => Some(format!(
                    "A string value has at most {MAX_METADATA_VALUE_CHARS} characters"
                )),
                Value::String(_) | Value::Number(_) | Value::Bool(_) => None,
                other => Some(format!(
                    "Expected string, number or boolean, received {}",
                    type_name(other)
                )),
            }
        };
        if let Some(problem) = problem {
            r.error_at(&["metadata", key], problem);
            ok = false;
        }
    }
    if ok {
        Field::Set(object.clone())
    } else {
        Field::Absent
    }
}

/// `expires_at`: an RFC 3339 time after `now_ms`, as epoch milliseconds, or null (never expires).
pub fn read_expires_at(r: &mut FieldReader<'_>, now_ms: i64) -> Field<i64> {
    match r.string("expires_at", 1, 64) {
        Field::Set(text) => match chrono::DateTime::parse_from_rfc3339(&text) {
            Ok(t) if t.timestamp_millis() > now_ms => Field::Set(t.timestamp_millis()),
            Ok(_) => {
                r.error(
                    "expires_at",
                    format!("Expected a time in the future, received '{text}'"),
                );
                Field::Absent
            }
            Err(_) => {
                r.error(
                    "expires_at",
                    format!("Expected an RFC 3339 time such as '2027-01-31T00:00:00Z', received '{text}'"),
                );
                Field::Absent
            }
        },
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

/// `limits` (see `SubjectLimits`); null means no limits.
pub fn read_limits(r: &mut FieldReader<'_>) -> Field<Limits> {
    let object = match r.object("limits") {
        Field::Set(o) => o,
        Field::Null => return Field::Null,
        Field::Absent => return Field::Absent,
    };
    let mut lr = r.nested("limits", object);
    let rpm = per_minute(&mut lr, "rpm");
    let tpm = per_minute(&mut lr, "tpm");
    let tpm_kind = match lr.enumeration("tpm_kind", TPM_KINDS) {
        Field::Set(kind) => match kind.as_str() {
            "input" => TpmKind::Input,
            "output" => TpmKind::Output,
            _ => TpmKind::Total,
        },
        Field::Null | Field::Absent => TpmKind::Total,
    };
    let budget = read_budget(&mut lr, "budget");
    let models = read_model_limits(&mut lr);
    let errors = lr.into_errors();
    if !errors.is_empty() {
        r.extend(errors);
        return Field::Absent;
    }
    Field::Set(Limits {
        rpm,
        tpm,
        tpm_kind,
        budget,
        models,
    })
}

/// A requests- or tokens-per-minute figure: a whole number from 1; null or absent is no limit.
fn per_minute(r: &mut FieldReader<'_>, name: &str) -> Option<u64> {
    match r.int(name, 1, MAX_PER_MINUTE) {
        Field::Set(n) => u64::try_from(n).ok(),
        Field::Null | Field::Absent => None,
    }
}

/// `{amount_usd, period}`, both required; null or absent is no budget.
fn read_budget(r: &mut FieldReader<'_>, name: &str) -> Option<Budget> {
    let object = match r.object(name) {
        Field::Set(o) => o,
        Field::Null | Field::Absent => return None,
    };
    let mut br = r.nested(name, object);
    let amount_usd = match br.raw("amount_usd") {
        Field::Absent => {
            br.error("amount_usd", "Required: expected a positive number of USD");
            None
        }
        Field::Null => {
            br.error("amount_usd", "Expected number, received null");
            None
        }
        Field::Set(v) => match v.as_f64() {
            Some(n) if n.is_finite() && n > 0.0 && n <= MAX_BUDGET_USD => Some(n),
            Some(n) => {
                br.error(
                    "amount_usd",
                    format!("Expected a number of USD above 0 and at most {MAX_BUDGET_USD}, received {n}"),
                );
                None
            }
            None => {
                br.error(
                    "amount_usd",
                    format!("Expected number, received {}", type_name(v)),
                );
                None
            }
        },
    };
    let period = br
        .required_enumeration("period", PERIODS)
        .map(|p| match p.as_str() {
            "day" => BudgetPeriod::Day,
            "week" => BudgetPeriod::Week,
            _ => BudgetPeriod::Month,
        });
    r.extend(br.into_errors());
    Some(Budget {
        amount_usd: amount_usd?,
        period: period?,
    })
}

/// `models`: at most [`MAX_MODEL_LIMITS`] `{model, rpm, tpm, budget}`, patterns distinct, each limiting something.
fn read_model_limits(r: &mut FieldReader<'_>) -> Vec<ModelLimits> {
    let items = match r.array("models") {
        Field::Set(items) if items.len() > MAX_MODEL_LIMITS => {
            r.error(
                "models",
                format!(
                    "At most {MAX_MODEL_LIMITS} model limits, received {}",
                    items.len()
                ),
            );
            return vec![];
        }
        Field::Set(items) => items,
        Field::Null | Field::Absent => return vec![],
    };
    let mut out = Vec::with_capacity(items.len());
    let mut first_index_of: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let index = i.to_string();
        let Some(object) = item.as_object() else {
            r.error_at(
                &["models", &index],
                format!("Expected object, received {}", type_name(item)),
            );
            continue;
        };
        let mut mr = r.nested_at(&["models", &index], object);
        let model = mr.required_string("model", 0, usize::MAX);
        let mut model_ok = false;
        if let Some(model) = model.as_deref() {
            if let Some(problem) = pattern_problem(model) {
                mr.error("model", problem);
            } else if let Some(first) = first_index_of.get(model) {
                mr.error(
                    "model",
                    format!("Duplicate model pattern '{model}': models.{first} has it already"),
                );
            } else {
                first_index_of.insert(model.to_owned(), i);
                model_ok = true;
            }
        }
        let rpm = per_minute(&mut mr, "rpm");
        let tpm = per_minute(&mut mr, "tpm");
        let budget = read_budget(&mut mr, "budget");
        // One problem per path: a pattern already refused is reported for itself only.
        if model_ok && !has_a_limit(object) {
            mr.error(
                "model",
                "A model limit sets at least one of rpm, tpm and budget",
            );
        }
        let errors = mr.into_errors();
        if !errors.is_empty() {
            r.extend(errors);
            continue;
        }
        if let Some(model) = model {
            out.push(ModelLimits {
                model,
                rpm,
                tpm,
                budget,
            });
        }
    }
    out
}

/// Whether a model limit's object sets any limit (a null is not one).
fn has_a_limit(object: &Map<String, Value>) -> bool {
    ["rpm", "tpm", "budget"]
        .iter()
        .any(|k| object.get(*k).is_some_and(|v| !v.is_null()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(body: Value) -> Result<Limits, Vec<String>> {
        let map = json!({ "limits": body }).as_object().unwrap().clone();
        let mut r = FieldReader::new(&map);
        let read = read_limits(&mut r);
        let errors = r.into_errors();
        if errors.is_empty() {
            match read {
                Field::Set(l) => Ok(l),
                other => panic!("no limits and no error: {other:?}"),
            }
        } else {
            Err(errors.into_iter().map(|e| e.path.join(".")).collect())
        }
    }

    #[test]
    fn limits_are_read_with_their_defaults() {
        let l = limits(
            json!({"rpm": 60, "budget": {"amount_usd": 2.5, "period": "week"},
            "models": [{"model": "anthropic/*", "tpm": 1000}]}),
        )
        .unwrap();
        assert_eq!(l.rpm, Some(60));
        assert_eq!(l.tpm, None);
        assert_eq!(l.tpm_kind, TpmKind::Total);
        assert_eq!(
            l.budget,
            Some(Budget {
                amount_usd: 2.5,
                period: BudgetPeriod::Week
            })
        );
        assert_eq!(l.models[0].model, "anthropic/*");
        assert_eq!(l.models[0].tpm, Some(1000));
        assert_eq!(limits(json!({})).unwrap(), Limits::default());
        assert_eq!(
            limits(json!({"tpm": 5, "tpm_kind": "output"}))
                .unwrap()
                .tpm_kind,
            TpmKind::Output
        );
    }

    #[test]
    fn bad_limits_name_the_offending_field() {
        for (body, path) in [
            (json!({"rpm": 0}), "limits.rpm"),
            (json!({"rpm": -1}), "limits.rpm"),
            (json!({"tpm": 1.5}), "limits.tpm"),
            (json!({"tpm": "10"}), "limits.tpm"),
            (json!({"tpm_kind": "both"}), "limits.tpm_kind"),
            (
                json!({"budget": {"amount_usd": 0, "period": "day"}}),
                "limits.budget.amount_usd",
            ),
            (
                json!({"budget": {"amount_usd": -3, "period": "day"}}),
                "limits.budget.amount_usd",
            ),
            (
                json!({"budget": {"amount_usd": 1e10, "period": "day"}}),
                "limits.budget.amount_usd",
            ),
            (json!({"budget": {"amount_usd": 1}}), "limits.budget.period"),
            (
                json!({"budget": {"amount_usd": 1, "period": "year"}}),
                "limits.budget.period",
            ),
            (json!({"budget": 5}), "limits.budget"),
            (json!({"models": [{"model": ""}]}), "limits.models.0.model"),
            (
                json!({"models": [{"model": "a/*"}]}),
                "limits.models.0.model",
            ),
            (
                json!({"models": [{"model": "a/*", "rpm": 1}, {"model": "a/*", "rpm": 2}]}),
                "limits.models.1.model",
            ),
            (json!({"models": [{"rpm": 1}]}), "limits.models.0.model"),
            (json!({"models": ["a/*"]}), "limits.models.0"),
        ] {
            assert_eq!(limits(body.clone()), Err(vec![path.to_owned()]), "{body}");
        }
    }

    fn field<T>(body: Value, read: impl FnOnce(&mut FieldReader<'_>) -> Field<T>) -> Vec<String> {
        let map = body.as_object().unwrap().clone();
        let mut r = FieldReader::new(&map);
        let _ = read(&mut r);
        r.into_errors()
            .into_iter()
            .map(|e| e.path.join("."))
            .collect()
    }

    #[test]
    fn lists_metadata_and_expiry_are_checked_item_by_item() {
        let now = 1_800_000_000_000;
        for (body, path) in [
            (json!({"gateways": ["prod", "Prod"]}), "gateways.1"),
            (json!({"gateways": ["prod", "prod"]}), "gateways.1"),
            (json!({"gateways": "prod"}), "gateways"),
            (json!({"models": ["openai/*", ""]}), "models.1"),
            (json!({"models": [3]}), "models.0"),
            (json!({"metadata": {"team": {"x": 1}}}), "metadata.team"),
            (json!({"metadata": ["a"]}), "metadata"),
            (json!({"expires_at": "tomorrow"}), "expires_at"),
            (json!({"expires_at": "2020-01-01T00:00:00Z"}), "expires_at"),
            (json!({"expires_at": 1_900_000_000}), "expires_at"),
        ] {
            let errors = field(body.clone(), |r| {
                let _ = read_gateways(r);
                let _ = read_models(r);
                let _ = read_metadata(r);
                read_expires_at(r, now)
            });
            assert_eq!(errors, [path], "{body}");
        }
        let ok = json!({"gateways": ["prod", "staging"], "models": ["*"], "metadata": {"a": 1, "b": "x", "c": true},
            "expires_at": "2030-01-01T00:00:00+02:00"});
        let errors = field(ok, |r| {
            assert!(matches!(read_gateways(r), Field::Set(g) if g.len() == 2));
            assert!(matches!(read_metadata(r), Field::Set(m) if m.len() == 3));
            read_expires_at(r, now)
        });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn names_are_required_on_create_and_never_blank_or_null() {
        assert_eq!(field(json!({}), |r| read_name(r, true)), ["name"]);
        assert!(field(json!({}), |r| read_name(r, false)).is_empty());
        for bad in [
            json!(""),
            json!("   "),
            json!(null),
            json!(7),
            json!("x".repeat(257)),
        ] {
            assert_eq!(
                field(json!({"name": bad}), |r| read_name(r, false)),
                ["name"]
            );
        }
    }
}
