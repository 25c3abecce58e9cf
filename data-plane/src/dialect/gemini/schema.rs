//! JSON Schemas (tool parameters, `json_schema` response formats) made acceptable to Gemini's JSON Schema fields
//! (`parametersJsonSchema`, `responseJsonSchema`; `notes/translation.md` §5.4).
//!
//! Those fields take JSON Schema as is, `additionalProperties` and type arrays (`["string","null"]`) included, so
//! the legacy OpenAPI-subset conversions (nullable, dropping `additionalProperties`) are not needed. What they
//! still reject is removed or rewritten: `$schema`, `not`, `if`/`then`/`else`, `patternProperties`, `default`,
//! `examples`; `const` becomes a one-value `enum`; a one-element `allOf` is merged into its parent and a longer
//! one dropped; a sub-schema holding `$ref` keeps only its `$` keywords (Gemini's rule for references).
//!
//! The walk follows the schema's structure (`properties`, `items`, `anyOf`…), so a property that happens to be
//! named `default` or `not` is kept.

use serde_json::{Map, Value};

/// Keywords Gemini's JSON Schema mode rejects; removed wherever they appear as keywords.
const REJECTED: &[&str] = &[
    "$schema",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "default",
    "examples",
];

/// A copy of `schema` Gemini accepts.
pub(super) fn clean(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(clean_object(map)),
        // `true`/`false` schemas and anything else are left for the provider to judge.
        other => other.clone(),
    }
}

fn clean_object(map: &Map<String, Value>) -> Map<String, Value> {
    if map.contains_key("$ref") {
        return map
            .iter()
            .filter(|(k, _)| k.starts_with('$') && k.as_str() != "$schema")
            .map(|(k, v)| (k.clone(), clean_keyword(k, v)))
            .collect();
    }
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            k if REJECTED.contains(&k) => {}
            "const" => {
                if !map.contains_key("enum") {
                    out.insert("enum".to_owned(), Value::Array(vec![value.clone()]));
                }
            }
            "allOf" => {}
            _ => {
                out.insert(key.clone(), clean_keyword(key, value));
            }
        }
    }
    // A single `allOf` member is just more constraints on this schema: merge it (this schema's own keys win).
    if let Some(Value::Array(members)) = map.get("allOf")
        && let [Value::Object(only)] = members.as_slice()
    {
        for (key, value) in clean_object(only) {
            out.entry(key).or_insert(value);
        }
    }
    out
}

/// Cleans the sub-schemas a keyword holds; other keyword values are copied.
fn clean_keyword(key: &str, value: &Value) -> Value {
    match (key, value) {
        // Maps of name → schema.
        ("properties" | "$defs" | "definitions", Value::Object(schemas)) => Value::Object(
            schemas
                .iter()
                .map(|(name, s)| (name.clone(), clean(s)))
                .collect(),
        ),
        // Lists of schemas.
        ("anyOf" | "oneOf" | "prefixItems", Value::Array(schemas)) => {
            Value::Array(schemas.iter().map(clean).collect())
        }
        // One schema (or, for old-style tuples, a list of them).
        ("items" | "additionalProperties", Value::Array(schemas)) => {
            Value::Array(schemas.iter().map(clean).collect())
        }
        ("items" | "additionalProperties", s @ Value::Object(_)) => clean(s),
        _ => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejected_keywords_go_and_json_schema_features_stay() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "location": {"type": ["string", "null"], "default": "Paris", "examples": ["Rome"]},
                "unit": {"const": "celsius"},
                "default": {"type": "string", "not": {"enum": ["x"]}},
                "tags": {"type": "array", "items": {"type": "string", "if": {}, "then": {}, "else": {}}},
            },
            "patternProperties": {"^x-": {}},
            "required": ["location"],
        });
        assert_eq!(
            clean(&schema),
            json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "location": {"type": ["string", "null"]},
                    "unit": {"enum": ["celsius"]},
                    "default": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["location"],
            })
        );
    }

    #[test]
    fn refs_keep_only_dollar_keywords_and_defs_are_cleaned() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/A", "description": "dropped"}},
            "$defs": {"A": {"type": "string", "default": "x"}},
        });
        assert_eq!(
            clean(&schema),
            json!({
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/A"}},
                "$defs": {"A": {"type": "string"}},
            })
        );
    }

    #[test]
    fn a_single_all_of_is_merged_and_a_longer_one_dropped() {
        assert_eq!(
            clean(
                &json!({"description": "d", "allOf": [{"type": "object", "description": "inner"}]})
            ),
            json!({"description": "d", "type": "object"})
        );
        assert_eq!(
            clean(&json!({"allOf": [{"type": "object"}, {"required": ["a"]}], "type": "object"})),
            json!({"type": "object"})
        );
    }

    #[test]
    fn nested_unions_and_additional_properties_schemas_are_walked() {
        let schema = json!({
            "anyOf": [{"type": "string", "default": ""}, {"type": "null"}],
            "additionalProperties": {"type": "integer", "examples": [1]},
            "enum": ["a"],
            "const": "ignored-because-enum-exists",
        });
        assert_eq!(
            clean(&schema),
            json!({
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "additionalProperties": {"type": "integer"},
                "enum": ["a"],
            })
        );
    }
}
