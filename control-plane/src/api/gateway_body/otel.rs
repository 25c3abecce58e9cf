//! The `otel` exporters' `authorization` kept as a stored secret (`gatehouse_shared::otel` says why): sealed
//! before the settings are stored, a masked preview answered in its place, and the sealed value kept when a client
//! writes the preview back.

use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::otel::{AUTHORIZATION_PREVIEW, SEALED_AUTHORIZATION_PREFIX, preview};
use serde_json::{Map, Value};

/// Seals each exporter's new `authorization` in `otel` (the settings about to be stored). An `authorization` equal
/// to the preview of the `previous` exporter with the same URL keeps that exporter's sealed value.
pub(crate) fn seal_authorizations(
    otel: &mut Option<Value>,
    previous: Option<&Value>,
    key: &MasterKey,
) {
    let Some(Value::Array(entries)) = otel else {
        return;
    };
    let previous: Vec<&Map<String, Value>> = previous
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
        // Only the control plane writes the preview.
        entry.remove(AUTHORIZATION_PREVIEW);
        let Some(given) = entry.get("authorization").and_then(Value::as_str) else {
            continue;
        };
        let url = entry.get("url").and_then(Value::as_str);
        let kept = previous.iter().find(|p| {
            p.get("url").and_then(Value::as_str) == url
                && p.get(AUTHORIZATION_PREVIEW).and_then(Value::as_str) == Some(given)
        });
        let (sealed, shown) = match kept {
            Some(p) => (
                p.get("authorization").cloned(),
                p.get(AUTHORIZATION_PREVIEW).cloned(),
            ),
            None => (
                Some(Value::String(format!(
                    "{SEALED_AUTHORIZATION_PREFIX}{}",
                    key.seal(given.as_bytes())
                ))),
                Some(Value::String(preview(given))),
            ),
        };
        if let (Some(sealed), Some(shown)) = (sealed, shown) {
            entry.insert("authorization".into(), sealed);
            entry.insert(AUTHORIZATION_PREVIEW.into(), shown);
        }
    }
}

/// `otel` as the API answers it: each `authorization` replaced by its preview.
pub(crate) fn masked(otel: Option<Value>) -> Option<Value> {
    let Some(Value::Array(mut entries)) = otel else {
        return otel;
    };
    for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
        let shown = match entry.remove(AUTHORIZATION_PREVIEW) {
            Some(shown) => Some(shown),
            // Stored before sealing: never answered in clear either.
            None => entry
                .get("authorization")
                .and_then(Value::as_str)
                .map(|plain| Value::String(preview(plain))),
        };
        if let Some(shown) = shown {
            entry.insert("authorization".into(), shown);
        }
    }
    Some(Value::Array(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_authorization_is_sealed_shown_masked_and_kept_when_written_back() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let mut otel = Some(json!([{"url": "http://c/v1/traces", "headers": {},
            "authorization": "Bearer secret-token-123456", "authorization_preview": "forged"}]));
        seal_authorizations(&mut otel, None, &key);
        let stored = otel.clone().unwrap();
        let sealed = stored[0]["authorization"].as_str().unwrap();
        assert!(sealed.starts_with(SEALED_AUTHORIZATION_PREFIX));
        let opened = key
            .open(&sealed[SEALED_AUTHORIZATION_PREFIX.len()..])
            .unwrap();
        assert_eq!(opened, b"Bearer secret-token-123456");
        let shown = masked(otel.clone()).unwrap();
        assert_eq!(shown[0]["authorization"], "Bearer ****3456");
        assert!(shown[0].get(AUTHORIZATION_PREVIEW).is_none());
        assert!(!shown.to_string().contains("secret-token"));

        // Written back as read: the sealed value stays.
        let mut again = Some(shown.clone());
        seal_authorizations(&mut again, Some(&stored), &key);
        assert_eq!(
            again.as_ref().unwrap()[0]["authorization"],
            stored[0]["authorization"]
        );
        // A new value, or the same preview at another URL, is sealed afresh.
        let mut moved = Some(json!([{"url": "http://other/v1/traces", "headers": {},
            "authorization": "Bearer ****3456"}]));
        seal_authorizations(&mut moved, Some(&stored), &key);
        let resealed = moved.unwrap()[0]["authorization"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(resealed, sealed);
    }

    #[test]
    fn a_plain_legacy_value_is_never_answered() {
        let shown = masked(Some(
            json!([{"url": "u", "authorization": "Bearer abcdefghijkl9999"}]),
        ));
        assert_eq!(shown.unwrap()[0]["authorization"], "Bearer ****9999");
    }
}
