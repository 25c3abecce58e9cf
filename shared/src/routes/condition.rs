//! The `conditional` element's conditions: a MongoDB-like query over the request (spec §3.12 [inferred operator
//! set]). Fields are dotted paths under `metadata.`, `body.` or `headers.`:
//!
//! ```json
//! {"metadata.plan": "free"}                                  // implicit $eq
//! {"metadata.plan": {"$in": ["free", "trial"]}, "body.stream": true}   // fields are ANDed
//! {"$or": [{"headers.x-tier": {"$eq": "gold"}}, {"body.max_tokens": {"$gt": 1000}}]}
//! {"metadata.region": {"$exists": false}}
//! {"$not": {"metadata.plan": "free"}}                        // also per field: {"f": {"$not": {"$eq": 1}}}
//! ```
//!
//! Comparison follows MongoDB where it can: `$eq` compares JSON values exactly, except that a number and a string
//! holding a number compare as numbers (header values are strings; metadata and body keep their types); `$gt`,
//! `$gte`, `$lt`, `$lte` compare numbers with numbers and strings with strings, anything else is false; `$in` and
//! `$nin` take an array; a missing field equals `null`, so `{"f": null}` matches when `f` is absent, and `$ne`/`$nin`
//! match it. When the field holds an array, `$eq`/`$in` match if any element does (MongoDB's array rule).

use serde_json::{Map, Value};

/// The request part a field path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRoot {
    /// `cf-aig-metadata` (a flat JSON object).
    Metadata,
    /// The client's JSON body.
    Body,
    /// A request header (the rest of the path is its name, any case).
    Headers,
}

/// A dotted field path, split once at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    pub root: FieldRoot,
    /// For `body` and `metadata`: the keys (or array indices) to descend. For `headers`: one item, the lowercased
    /// header name (which may itself hold dots).
    pub segments: Vec<String>,
}

impl FieldPath {
    /// `metadata.x.y`, `body.x`, `headers.name`; `None` for anything else.
    pub fn parse(path: &str) -> Option<Self> {
        let (root, rest) = path.split_once('.')?;
        if rest.is_empty() {
            return None;
        }
        let root = match root {
            "metadata" => FieldRoot::Metadata,
            "body" => FieldRoot::Body,
            "headers" => FieldRoot::Headers,
            _ => return None,
        };
        let segments = match root {
            FieldRoot::Headers => vec![rest.to_ascii_lowercase()],
            _ => rest.split('.').map(str::to_owned).collect(),
        };
        if segments.iter().any(String::is_empty) {
            return None;
        }
        Some(Self { root, segments })
    }

    /// The value under `segments` in `root` (for `metadata` and `body`).
    pub fn descend<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        let mut at = root;
        for s in &self.segments {
            at = match at {
                Value::Object(map) => map.get(s)?,
                Value::Array(items) => items.get(s.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }
}

/// What a condition reads a field from.
pub trait Fields {
    /// Calls `test` with the field's value (`None` when the request has no such field) and returns its answer. A
    /// callback rather than a returned value: the value stays borrowed from the request, never copied.
    fn test_field(&self, path: &FieldPath, test: &mut dyn FnMut(Option<&Value>) -> bool) -> bool;
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Nor(Vec<Condition>),
    Not(Box<Condition>),
    Field(FieldPath, Test),
}

/// A test on one field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    All(Vec<Test>),
    Not(Box<Test>),
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

/// Why a condition does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError(pub String);

impl std::fmt::Display for ConditionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "properties.conditions: {}", self.0)
    }
}

impl std::error::Error for ConditionError {}

fn err<T>(message: impl Into<String>) -> Result<T, ConditionError> {
    Err(ConditionError(message.into()))
}

/// Conditions nest at most this deep: a bound on the evaluator's recursion.
const MAX_DEPTH: usize = 16;

impl Condition {
    /// Compiles a query object. An empty object matches every request.
    pub fn compile(query: &Value) -> Result<Self, ConditionError> {
        compile_query(query, 0)
    }

    /// Whether the request matches.
    pub fn matches(&self, fields: &dyn Fields) -> bool {
        match self {
            Condition::All(items) => items.iter().all(|c| c.matches(fields)),
            Condition::Any(items) => items.iter().any(|c| c.matches(fields)),
            Condition::Nor(items) => !items.iter().any(|c| c.matches(fields)),
            Condition::Not(inner) => !inner.matches(fields),
            Condition::Field(path, test) => fields.test_field(path, &mut |v| test.matches(v)),
        }
    }

    /// Every field path the condition reads.
    pub fn paths<'a>(&'a self, out: &mut Vec<&'a FieldPath>) {
        match self {
            Condition::All(items) | Condition::Any(items) | Condition::Nor(items) => {
                items.iter().for_each(|c| c.paths(out))
            }
            Condition::Not(inner) => inner.paths(out),
            Condition::Field(path, _) => out.push(path),
        }
    }
}

fn compile_query(query: &Value, depth: usize) -> Result<Condition, ConditionError> {
    if depth > MAX_DEPTH {
        return err(format!("nested more than {MAX_DEPTH} levels"));
    }
    let Value::Object(map) = query else {
        return err(
            "a condition must be an object such as {\"metadata.plan\": {\"$eq\": \"free\"}}",
        );
    };
    let mut all = Vec::with_capacity(map.len());
    for (key, value) in map {
        let c = match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let Value::Array(items) = value else {
                    return err(format!("{key} takes an array of conditions"));
                };
                if items.is_empty() {
                    return err(format!("{key} takes at least one condition"));
                }
                let items = items
                    .iter()
                    .map(|q| compile_query(q, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                match key.as_str() {
                    "$and" => Condition::All(items),
                    "$or" => Condition::Any(items),
                    _ => Condition::Nor(items),
                }
            }
            "$not" => Condition::Not(Box::new(compile_query(value, depth + 1)?)),
            k if k.starts_with('$') => {
                return err(format!(
                    "unknown operator '{k}' at the top level ($and, $or, $nor, $not, or a field path)"
                ));
            }
            path => {
                let Some(field) = FieldPath::parse(path) else {
                    return err(format!(
                        "'{path}' is not a field path (metadata.…, body.… or headers.…)"
                    ));
                };
                Condition::Field(field, compile_test(value, depth + 1)?)
            }
        };
        all.push(c);
    }
    Ok(if all.len() == 1 {
        all.pop().expect("one item")
    } else {
        Condition::All(all)
    })
}

/// A field's value: an operator object (`{"$gt": 1}`) or a literal to compare for equality.
fn compile_test(value: &Value, depth: usize) -> Result<Test, ConditionError> {
    if depth > MAX_DEPTH {
        return err(format!("nested more than {MAX_DEPTH} levels"));
    }
    let Value::Object(map) = value else {
        return Ok(Test::Eq(value.clone()));
    };
    if !map.keys().any(|k| k.starts_with('$')) {
        return Ok(Test::Eq(value.clone()));
    }
    let mut tests = Vec::with_capacity(map.len());
    for (op, arg) in map {
        tests.push(compile_operator(op, arg, map, depth)?);
    }
    Ok(if tests.len() == 1 {
        tests.pop().expect("one item")
    } else {
        Test::All(tests)
    })
}

fn compile_operator(
    op: &str,
    arg: &Value,
    map: &Map<String, Value>,
    depth: usize,
) -> Result<Test, ConditionError> {
    let list = |arg: &Value| match arg {
        Value::Array(items) => Ok(items.clone()),
        _ => err(format!("{op} takes an array")),
    };
    Ok(match op {
        "$eq" => Test::Eq(arg.clone()),
        "$ne" => Test::Ne(arg.clone()),
        "$gt" => Test::Gt(arg.clone()),
        "$gte" => Test::Gte(arg.clone()),
        "$lt" => Test::Lt(arg.clone()),
        "$lte" => Test::Lte(arg.clone()),
        "$in" => Test::In(list(arg)?),
        "$nin" => Test::Nin(list(arg)?),
        "$exists" => match arg {
            Value::Bool(b) => Test::Exists(*b),
            Value::Number(n) => Test::Exists(n.as_f64() != Some(0.0)),
            _ => return err("$exists takes true or false"),
        },
        "$not" => match arg {
            Value::Object(_) => Test::Not(Box::new(compile_test(arg, depth + 1)?)),
            _ => return err("$not takes an operator object such as {\"$eq\": 1}"),
        },
        k if k.starts_with('$') => {
            return err(format!(
                "unknown operator '{k}' ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists, $not)"
            ));
        }
        k => {
            return err(format!(
                "'{k}' mixed with operators in {}; use {{\"$eq\": {{…}}}} to compare with an object",
                Value::Object(map.clone())
            ));
        }
    })
}

impl Test {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Test::All(tests) => tests.iter().all(|t| t.matches(value)),
            Test::Not(inner) => !inner.matches(value),
            Test::Eq(want) => equal_or_contains(value, want),
            Test::Ne(want) => !equal_or_contains(value, want),
            Test::In(wants) => wants.iter().any(|w| equal_or_contains(value, w)),
            Test::Nin(wants) => !wants.iter().any(|w| equal_or_contains(value, w)),
            Test::Exists(want) => value.is_some() == *want,
            Test::Gt(b) => compare(value, b).is_some_and(|o| o.is_gt()),
            Test::Gte(b) => compare(value, b).is_some_and(|o| o.is_ge()),
            Test::Lt(b) => compare(value, b).is_some_and(|o| o.is_lt()),
            Test::Lte(b) => compare(value, b).is_some_and(|o| o.is_le()),
        }
    }
}

/// MongoDB's equality: a missing field equals `null`; an array field matches when the array equals the value or
/// one of its elements does.
fn equal_or_contains(value: Option<&Value>, want: &Value) -> bool {
    match value {
        None => want.is_null(),
        Some(Value::Array(items)) if !want.is_array() => items.iter().any(|v| equal(v, want)),
        Some(v) => equal(v, want),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Number(_)) | (Value::Number(_), Value::String(s)) => {
            let n = if a.is_number() { a } else { b };
            s.trim().parse::<f64>().ok() == n.as_f64()
        }
        _ => a == b,
    }
}

fn compare(value: Option<&Value>, bound: &Value) -> Option<std::cmp::Ordering> {
    let value = value?;
    if let Some(b) = bound.as_f64() {
        let a = match value {
            Value::Number(_) => value.as_f64()?,
            Value::String(s) => s.trim().parse::<f64>().ok()?,
            _ => return None,
        };
        return a.partial_cmp(&b);
    }
    match (value, bound) {
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}
