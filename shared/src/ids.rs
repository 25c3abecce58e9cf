//! Identifier rules both planes apply.

/// Longest gateway id Cloudflare accepts.
pub const GATEWAY_ID_MAX_LEN: usize = 64;

/// The gateway id that the data plane creates on the first authenticated request that names it (spec §3.1).
pub const DEFAULT_GATEWAY_ID: &str = "default";

/// Whether `id` is a valid gateway id: 1..=64 characters of the slug form `^[a-z0-9_]+(?:-[a-z0-9_]+)*$`
/// (lower-case letters, digits and underscores, in runs joined by single hyphens). Cloudflare's dashboard makes such
/// slugs; we enforce the rule so that every id is safe in a URL path segment and a Redis key.
pub fn is_valid_gateway_id(id: &str) -> bool {
    if id.is_empty() || id.len() > GATEWAY_ID_MAX_LEN {
        return false;
    }
    id.split('-').all(|run| {
        !run.is_empty()
            && run
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Whether `id` is acceptable as an account id: 1..=64 characters of ASCII letters, digits, `-` and `_`.
/// Cloudflare account ids are 32 hex characters; self-hosted deployments may name accounts as they like, but the
/// id appears in URL paths and Redis keys, so it is kept to a safe alphabet.
pub fn is_valid_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ids_follow_the_slug_rule() {
        for ok in ["a", "my-gateway", "gw_1", "a-b-c", "0", &"x".repeat(64)] {
            assert!(is_valid_gateway_id(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "My-Gateway",
            "a b",
            "a/b",
            "ä",
            &"x".repeat(65),
            "a.b",
        ] {
            assert!(!is_valid_gateway_id(bad), "{bad}");
        }
    }

    #[test]
    fn account_ids_use_a_path_safe_alphabet() {
        assert!(is_valid_account_id("0123456789abcdef0123456789abcdef"));
        assert!(is_valid_account_id("acme-prod_1"));
        for bad in ["", "a/b", "a b", "a%2F", &"a".repeat(65)] {
            assert!(!is_valid_account_id(bad), "{bad}");
        }
    }
}
