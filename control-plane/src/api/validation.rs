//! Reading JSON request bodies field by field, collecting every problem with its path (as Cloudflare's zod-based
//! API does), instead of stopping at the first serde error.

use serde_json::{Map, Value};

use crate::error::{Error, FieldError};

/// A body field that may be absent, explicitly `null`, or set. PUT needs the difference: an absent optional field
/// keeps its stored value, an explicit `null` resets it.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    /// Applies the field to an optional slot: absent keeps it, null clears it, a value replaces it.
    pub fn apply_to(self, slot: &mut Option<T>) {
        match self {
            Field::Absent => {}
            Field::Null => *slot = None,
            Field::Set(v) => *slot = Some(v),
        }
    }

    /// Applies the field to a slot with a default: absent keeps it, null restores `default`.
    pub fn apply_with_default(self, slot: &mut T, default: T) {
        match self {
            Field::Absent => {}
            Field::Null => *slot = default,
            Field::Set(v) => *slot = v,
        }
    }
}

/// Parses a request body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::MalformedJson("the request body is empty".into()));
    }
    let value =
        serde_json::from_slice::<Value>(body).map_err(|e| Error::MalformedJson(e.to_string()))?;
    let mut path = Vec::new();
    if find_nul(&value, &mut path) {
        return Err(Error::Validation(vec![FieldError {
            path,
            message: "must not contain NUL characters (\\u0000)".into(),
        }]));
    }
    match value {
        Value::Object(map) => Ok(map),
        other => Err(Error::Validation(vec![FieldError::new(
            &[],
            format!("Expected object, received {}", type_name(&other)),
        )])),
    }
}

/// Whether a string (or key) in `v` holds a NUL, leaving `path` at the first one. PostgreSQL's `text` cannot hold
/// NUL, so such a value would fail in the database (500) instead of as bad input; no field has a use for it.
fn find_nul(v: &Value, path: &mut Vec<String>) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(i.to_string());
            let found = find_nul(item, path);
            if !found {
                path.pop();
            }
            found
        }),
        Value::Object(map) => map.iter().any(|(key, item)| {
            path.push(key.clone());
            let found = key.contains('\0') || find_nul(item, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

pub fn type_name(v: &Value) -> &'static str {
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

/// Reads fields out of one JSON object, remembering every problem.
pub struct FieldReader<'a> {
    object: &'a Map<String, Value>,
    prefix: Vec<String>,
    errors: Vec<FieldError>,
}

impl<'a> FieldReader<'a> {
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self {
            object,
            prefix: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> Vec<String> {
        let mut p = self.prefix.clone();
        p.push(name.to_owned());
        p
    }

    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let path = self.path(name);
        self.errors.push(FieldError {
            path,
            message: message.into(),
        });
    }

    /// Records a problem at `path` below this reader's prefix (an array item: `["hostnames", "2"]`).
    pub fn error_at(&mut self, path: &[&str], message: impl Into<String>) {
        let mut full = self.prefix.clone();
        full.extend(path.iter().map(|s| (*s).to_owned()));
        self.errors.push(FieldError {
            path: full,
            message: message.into(),
        });
    }

    /// Records errors found by a nested reader (paths already complete).
    pub fn extend(&mut self, errors: Vec<FieldError>) {
        self.errors.extend(errors);
    }

    /// A reader for a nested object at `name`, sharing the path prefix.
    pub fn nested<'b>(&self, name: &str, object: &'b Map<String, Value>) -> FieldReader<'b> {
        FieldReader {
            object,
            prefix: self.path(name),
            errors: Vec::new(),
        }
    }

    /// A reader for the object at `path` below this reader's prefix (the object of an array item).
    pub fn nested_at<'b>(&self, path: &[&str], object: &'b Map<String, Value>) -> FieldReader<'b> {
        let mut prefix = self.prefix.clone();
        prefix.extend(path.iter().map(|s| (*s).to_owned()));
        FieldReader {
            object,
            prefix,
            errors: Vec::new(),
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }

    pub fn raw(&self, name: &str) -> Field<&'a Value> {
        match self.object.get(name) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => Field::Set(v),
        }
    }

    fn typed<T>(
        &mut self,
        name: &str,
        expected: &str,
        get: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Field<T> {
        match self.raw(name) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Set(v) => match get(v) {
                Some(t) => Field::Set(t),
                None => {
                    self.error(
                        name,
                        format!("Expected {expected}, received {}", type_name(v)),
                    );
                    Field::Absent
                }
            },
        }
    }

    fn require<T>(
        &mut self,
        name: &str,
        expected: &str,
        field: Field<T>,
        nullable: bool,
    ) -> Field<T> {
        match field {
            Field::Absent if !self.errors.iter().any(|e| e.path == self.path(name)) => {
                self.error(name, format!("Required: expected {expected}"));
                Field::Absent
            }
            Field::Null if !nullable => {
                self.error(name, format!("Expected {expected}, received null"));
                Field::Absent
            }
            other => other,
        }
    }

    pub fn bool(&mut self, name: &str) -> Field<bool> {
        self.typed(name, "boolean", Value::as_bool)
    }

    pub fn required_bool(&mut self, name: &str) -> Option<bool> {
        let f = self.bool(name);
        match self.require(name, "boolean", f, false) {
            Field::Set(b) => Some(b),
            _ => None,
        }
    }

    /// An integer within `min..=max`. Floats with a fractional part, strings and out-of-range values are errors.
    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Field<i64> {
        let f = self.typed(name, "integer", |v| match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            _ => None,
        });
        match f {
            Field::Set(n) if n < min || n > max => {
                self.error(
                    name,
                    format!("Number must be between {min} and {max}, received {n}"),
                );
                Field::Absent
            }
            other => other,
        }
    }

    /// A required integer that may be `null`; `Some(None)` for null, `None` when invalid or missing.
    pub fn required_nullable_int(&mut self, name: &str, min: i64, max: i64) -> Option<Option<i64>> {
        let f = self.int(name, min, max);
        match self.require(name, "integer or null", f, true) {
            Field::Set(n) => Some(Some(n)),
            Field::Null => Some(None),
            Field::Absent => None,
        }
    }

    pub fn number(&mut self, name: &str, min: f64, max: f64) -> Field<f64> {
        let f = self.typed(name, "number", Value::as_f64);
        match f {
            Field::Set(n) if !(min..=max).contains(&n) => {
                self.error(
                    name,
                    format!("Number must be between {min} and {max}, received {n}"),
                );
                Field::Absent
            }
            other => other,
        }
    }

    pub fn string(&mut self, name: &str, min_len: usize, max_len: usize) -> Field<String> {
        let f = self.typed(name, "string", |v| v.as_str().map(str::to_owned));
        match f {
            Field::Set(s) if s.chars().count() < min_len || s.chars().count() > max_len => {
                self.error(
                    name,
                    format!("String must contain {min_len} to {max_len} characters"),
                );
                Field::Absent
            }
            other => other,
        }
    }

    pub fn required_string(
        &mut self,
        name: &str,
        min_len: usize,
        max_len: usize,
    ) -> Option<String> {
        let f = self.string(name, min_len, max_len);
        match self.require(name, "string", f, false) {
            Field::Set(s) => Some(s),
            _ => None,
        }
    }

    /// One of the `allowed` strings.
    pub fn enumeration(&mut self, name: &str, allowed: &[&str]) -> Field<String> {
        let f = self.typed(name, "string", |v| v.as_str().map(str::to_owned));
        match f {
            Field::Set(s) if !allowed.contains(&s.as_str()) => {
                self.error(
                    name,
                    format!(
                        "Invalid enum value. Expected {}, received '{s}'",
                        quoted(allowed)
                    ),
                );
                Field::Absent
            }
            other => other,
        }
    }

    /// One of the `allowed` strings, required and not null.
    pub fn required_enumeration(&mut self, name: &str, allowed: &[&str]) -> Option<String> {
        let f = self.enumeration(name, allowed);
        match self.require(name, &quoted(allowed), f, false) {
            Field::Set(s) => Some(s),
            _ => None,
        }
    }

    pub fn object(&mut self, name: &str) -> Field<&'a Map<String, Value>> {
        self.typed(name, "object", Value::as_object)
    }

    pub fn array(&mut self, name: &str) -> Field<&'a Vec<Value>> {
        self.typed(name, "array", Value::as_array)
    }
}

fn quoted(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reader_errors(body: Value, f: impl FnOnce(&mut FieldReader<'_>)) -> Vec<FieldError> {
        let map = body.as_object().unwrap().clone();
        let mut r = FieldReader::new(&map);
        f(&mut r);
        r.into_errors()
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errors = reader_errors(json!({"a": "x", "b": -1, "c": 1.5}), |r| {
            r.required_bool("a");
            r.int("b", 0, 10);
            r.int("c", 0, 10);
            r.required_bool("missing");
        });
        let paths: Vec<_> = errors.iter().map(|e| e.path.join(".")).collect();
        assert_eq!(paths, ["a", "b", "c", "missing"]);
        assert!(
            errors[0]
                .message
                .contains("Expected boolean, received string")
        );
        assert!(errors[1].message.contains("between 0 and 10"));
        assert!(errors[3].message.starts_with("Required"));
    }

    #[test]
    fn whole_floats_count_as_integers_and_nulls_are_kept_apart_from_absence() {
        let map = json!({"n": 3.0, "z": null}).as_object().unwrap().clone();
        let mut r = FieldReader::new(&map);
        assert_eq!(r.int("n", 0, 5), Field::Set(3));
        assert_eq!(r.int("z", 0, 5), Field::Null);
        assert_eq!(r.int("absent", 0, 5), Field::Absent);
        assert_eq!(r.required_nullable_int("z", 0, 5), Some(None));
        assert!(r.finish().is_ok());
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_told_apart() {
        assert!(matches!(parse_object(b"{"), Err(Error::MalformedJson(_))));
        assert!(matches!(parse_object(b"  "), Err(Error::MalformedJson(_))));
        assert!(matches!(parse_object(b"[1]"), Err(Error::Validation(_))));
        assert!(parse_object(b"{}").is_ok());
    }
}
