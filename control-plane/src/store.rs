//! Queries, one module per table group. Every query that reads or changes an account's objects takes the account id
//! and filters on it: one account never sees another's objects.

pub mod access;
pub mod analytics;
pub mod config_versions;
pub mod custom_providers;
pub mod datasets;
pub mod evaluations;
pub mod gateways;
pub mod log_caps;
pub mod log_counters;
pub mod logs;
pub mod provider_configs;
pub mod routes;
pub mod tokens;
pub mod usage;

/// Milliseconds since the epoch, the time unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Escapes `%`, `_` and `\\` so that a search term matches literally inside `LIKE '%…%' ESCAPE '\\'`.
pub(crate) fn like_contains(term: &str) -> String {
    let mut out = String::with_capacity(term.len() + 2);
    out.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Whether a diesel error is a unique-constraint violation (a concurrent create of the same id).
pub(crate) fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(super::like_contains("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
