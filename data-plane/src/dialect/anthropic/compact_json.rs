//! A JSON value re-written compactly in its original key order. `serde_json::Value` sorts object keys (the
//! workspace does not enable `preserve_order`), which would reorder a tool call's arguments against what the model
//! wrote and against the same call streamed.

use std::fmt::Write as _;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// Compact JSON text of whatever value was deserialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CompactJson(pub String);

impl<'de> Deserialize<'de> for CompactJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = String::new();
        Writer(&mut out).deserialize(d)?;
        Ok(CompactJson(out))
    }
}

/// Writes the value it visits to the string.
struct Writer<'o>(&'o mut String);

impl<'de> DeserializeSeed<'de> for Writer<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Writer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<(), E> {
        self.0.push_str(if v { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<(), E> {
        let _ = write!(self.0, "{v}");
        Ok(())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<(), E> {
        let _ = write!(self.0, "{v}");
        Ok(())
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(v) {
            Some(n) => self.0.push_str(&n.to_string()),
            None => self.0.push_str("null"),
        }
        Ok(())
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<(), E> {
        let quoted = serde_json::to_string(v).map_err(E::custom)?;
        self.0.push_str(&quoted);
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        self.0.push_str("null");
        Ok(())
    }

    fn visit_none<E: Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push('[');
        while seq.next_element_seed(Writer(self.0))?.is_some() {
            self.0.push(',');
        }
        close(self.0, ']');
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push('{');
        while map.next_key_seed(Writer(self.0))?.is_some() {
            self.0.push(':');
            map.next_value_seed(Writer(self.0))?;
            self.0.push(',');
        }
        close(self.0, '}');
        Ok(())
    }
}

/// Ends an array or object, dropping the comma written after its last element.
fn close(out: &mut String, bracket: char) {
    if out.ends_with(',') {
        out.pop();
    }
    out.push(bracket);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_order_and_whitespace_goes() {
        let text = r#" { "z": 1, "a": [ true, null, -2, 1.5, "q\"\u00e9" ], "m": { }, "e": [ ] } "#;
        let CompactJson(out) = serde_json::from_str(text).unwrap();
        assert_eq!(
            out,
            r#"{"z":1,"a":[true,null,-2,1.5,"q\"é"],"m":{},"e":[]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }
}
