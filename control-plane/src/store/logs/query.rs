//! A typed log query (filters, search, order) and its translation to diesel's boxed DSL. User values only ever
//! reach SQL as bind parameters.
//!
//! Semantics: filters AND together; the values of one filter OR together, except `neq`, where a row must differ
//! from every value (otherwise `neq a, b` would match everything). `neq` on a nullable column also matches rows
//! where the column is NULL, as a user reading "model is not X" expects.

use diesel::dsl::not;
use diesel::expression::BoxableExpression;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Text};

use crate::db::MultiBackend;
use crate::error::Error;
use crate::schema::logs;
use crate::store::like_contains;

diesel::define_sql_function! {
    /// Lower-cases text, so that `contains` and `search` ignore case on both backends (SQLite's LIKE already
    /// does for ASCII; PostgreSQL's does not).
    fn lower(x: Nullable<Text>) -> Nullable<Text>;
}

/// The text `search` looks in besides the id, exactly as the PostgreSQL trigram index `logs_search_trgm` is
/// defined (migration 000060), so the planner can use that index. The fields are joined by U+001F, written here as
/// the character itself inside the quotes (the same constant as the migration's `E'\x1f'`, in a form SQLite reads
/// too): a term without it matches the joined text only within one field, so the one test is exact.
pub const SEARCH_DOCUMENT: &str =
    "lower(provider || '\u{1f}' || coalesce(model, '') || '\u{1f}' || path)";

/// Joins the fields of [`SEARCH_DOCUMENT`].
const SEARCH_SEPARATOR: char = '\u{1f}';

/// The length of a log id: the data plane's ids are ULIDs in their upper-case text form.
const ULID_LEN: usize = 26;

/// Whether `term` could occur in a log id: ids are ULIDs (Crockford base32: digits and letters without I, L, O,
/// U), compared lower-cased.
fn could_be_in_a_log_id(term: &str) -> bool {
    term.chars().all(|c| {
        let c = c.to_ascii_lowercase();
        c.is_ascii_digit() || (c.is_ascii_lowercase() && !matches!(c, 'i' | 'l' | 'o' | 'u'))
    })
}

/// The filter keys of spec §1.5 that map to a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    Id,
    CreatedAt,
    RequestContentType,
    ResponseContentType,
    RequestType,
    Success,
    Cached,
    Provider,
    Model,
    ModelType,
    Cost,
    Tokens,
    TokensIn,
    TokensOut,
    Duration,
    Feedback,
    EventId,
    MetadataKey,
    MetadataValue,
    Authentication,
    UserAgent,
    /// Gatehouse's: the virtual key of the request, and the key's user and team.
    KeyId,
    UserId,
    TeamId,
    /// Gatehouse's: the dynamic route that chose the model.
    RouteId,
}

/// Operators; `Le` and `Ge` only come from the deprecated `min_*`/`max_*`/date parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Contains,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A value already checked against its key's type: times are epoch ms in `Integer`.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogFilter {
    pub key: FilterKey,
    pub op: Op,
    pub values: Vec<FilterValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    #[default]
    CreatedAt,
    Provider,
    Model,
    ModelType,
    Success,
    Cached,
    // The bulk delete also orders by these (spec §1.5).
    Cost,
    TokensIn,
    TokensOut,
    Duration,
    Feedback,
}

/// Everything that selects and orders logs; shared by list, aggregates and delete.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogQuery {
    /// Case-insensitive substring of the id, provider, model or path.
    pub search: Option<String>,
    pub filters: Vec<LogFilter>,
    pub order_by: OrderBy,
    pub ascending: bool,
}

type Pred = Box<dyn BoxableExpression<logs::table, MultiBackend, SqlType = Nullable<Bool>>>;
pub(super) type Boxed = logs::BoxedQuery<'static, MultiBackend>;

fn bad(message: String) -> Error {
    Error::BadParameter(message)
}

fn or(a: Pred, b: Pred) -> Pred {
    Box::new(a.or(b))
}

fn and(a: Pred, b: Pred) -> Pred {
    Box::new(a.and(b))
}

/// A comparison of a text column (nullable or not; `.nullable()` makes both one type).
macro_rules! text_pred {
    ($col:expr, $op:expr, $v:expr) => {{
        let col = $col.nullable();
        let p: Pred = match ($op, $v) {
            (Op::Eq, FilterValue::Null) => Box::new(col.is_null().nullable()),
            (Op::Neq, FilterValue::Null) => Box::new(col.is_not_null().nullable()),
            (Op::Eq, FilterValue::Text(s)) => Box::new(col.eq(s.clone())),
            (Op::Neq, FilterValue::Text(s)) => {
                Box::new(col.ne(s.clone()).or(col.is_null().nullable()))
            }
            (Op::Contains, FilterValue::Text(s)) => Box::new(
                lower(col)
                    .like(like_contains(&s.to_lowercase()))
                    .escape('\\'),
            ),
            (op, v) => return Err(bad(format!("operator {op:?} does not apply to {v:?}"))),
        };
        p
    }};
}

/// A comparison of a numeric column with a value of its own Rust type.
macro_rules! num_pred {
    ($col:expr, $op:expr, $x:expr) => {{
        let col = $col.nullable();
        let x = $x;
        let p: Pred = match $op {
            Op::Eq => Box::new(col.eq(x)),
            Op::Neq => Box::new(col.ne(x).or(col.is_null().nullable())),
            Op::Lt => Box::new(col.lt(x)),
            Op::Gt => Box::new(col.gt(x)),
            Op::Le => Box::new(col.le(x)),
            Op::Ge => Box::new(col.ge(x)),
            Op::Contains => return Err(bad("contains does not apply to numbers".into())),
        };
        p
    }};
}

macro_rules! int_pred {
    ($col:expr, $op:expr, $v:expr) => {{
        let col = $col.nullable();
        match ($op, $v) {
            (Op::Eq, FilterValue::Null) => Box::new(col.is_null().nullable()) as Pred,
            (Op::Neq, FilterValue::Null) => Box::new(col.is_not_null().nullable()) as Pred,
            (op, FilterValue::Integer(n)) => num_pred!(col, op, *n),
            (op, v) => return Err(bad(format!("operator {op:?} does not apply to {v:?}"))),
        }
    }};
}

macro_rules! float_pred {
    ($col:expr, $op:expr, $v:expr) => {{
        let col = $col.nullable();
        match ($op, $v) {
            (Op::Eq, FilterValue::Null) => Box::new(col.is_null().nullable()) as Pred,
            (Op::Neq, FilterValue::Null) => Box::new(col.is_not_null().nullable()) as Pred,
            (op, FilterValue::Number(n)) => num_pred!(col, op, *n),
            // Integers are numbers too; precision loss past 2^53 does not matter for costs and feedback.
            #[allow(clippy::cast_precision_loss)]
            (op, FilterValue::Integer(n)) => num_pred!(col, op, *n as f64),
            (op, v) => return Err(bad(format!("operator {op:?} does not apply to {v:?}"))),
        }
    }};
}

macro_rules! bool_pred {
    ($col:expr, $op:expr, $v:expr) => {{
        let col = $col.nullable();
        match ($op, $v) {
            (Op::Eq, FilterValue::Bool(b)) => Box::new(col.eq(*b)) as Pred,
            (Op::Neq, FilterValue::Bool(b)) => Box::new(col.ne(*b)) as Pred,
            (op, v) => return Err(bad(format!("operator {op:?} does not apply to {v:?}"))),
        }
    }};
}

/// LIKE patterns matching `"key":` or `:value,` / `:value}` in the stored metadata, which the data plane writes
/// as compact JSON (`{"user":"alice","n":3}`). Quotes inside strings are escaped there (`\"`), so a pattern that
/// starts at an unescaped quote cannot match inside another string.
fn metadata_patterns(key: FilterKey, v: &FilterValue) -> Vec<String> {
    let literal = |s: &str| like_contains(s).trim_matches('%').to_owned();
    match (key, v) {
        (FilterKey::MetadataKey, FilterValue::Text(s)) => {
            let json = serde_json::to_string(s).unwrap_or_default();
            vec![format!("%{}:%", literal(&json))]
        }
        (_, v) => {
            let mut reprs = Vec::new();
            match v {
                FilterValue::Text(s) => {
                    reprs.push(serde_json::to_string(s).unwrap_or_default());
                    // A query string cannot say whether "3" is a string or a number; match both.
                    if s.parse::<f64>().is_ok() || s == "true" || s == "false" {
                        reprs.push(s.clone());
                    }
                }
                FilterValue::Integer(n) => reprs.push(n.to_string()),
                FilterValue::Number(n) => reprs.push(n.to_string()),
                FilterValue::Bool(b) => reprs.push(b.to_string()),
                FilterValue::Null => {}
            }
            reprs
                .iter()
                .flat_map(|r| {
                    let r = literal(r);
                    [format!("%:{r},%"), format!("%:{r}}}%")]
                })
                .collect()
        }
    }
}

fn metadata_pred(key: FilterKey, op: Op, v: &FilterValue) -> Result<Pred, Error> {
    let col = logs::metadata;
    if op == Op::Contains {
        let FilterValue::Text(s) = v else {
            return Err(bad("contains needs a text value".into()));
        };
        // A substring of the metadata text: of a key or a value alike.
        return Ok(Box::new(
            lower(col)
                .like(like_contains(&s.to_lowercase()))
                .escape('\\'),
        ));
    }
    let mut any: Option<Pred> = None;
    for pattern in metadata_patterns(key, v) {
        let p: Pred = Box::new(col.like(pattern).escape('\\'));
        any = Some(match any {
            Some(a) => or(a, p),
            None => p,
        });
    }
    let matched: Pred = any.unwrap_or_else(|| Box::new(col.is_null().nullable()));
    match op {
        Op::Eq => Ok(matched),
        Op::Neq => Ok(Box::new(not(matched).or(col.is_null().nullable()))),
        other => Err(bad(format!(
            "operator {other:?} does not apply to metadata"
        ))),
    }
}

fn value_pred(key: FilterKey, op: Op, v: &FilterValue) -> Result<Pred, Error> {
    use FilterKey as K;
    Ok(match key {
        K::Id => text_pred!(logs::id, op, v),
        K::RequestContentType => text_pred!(logs::request_content_type, op, v),
        K::ResponseContentType => text_pred!(logs::response_content_type, op, v),
        K::RequestType => text_pred!(logs::request_type, op, v),
        K::Provider => text_pred!(logs::provider, op, v),
        K::Model => text_pred!(logs::model, op, v),
        K::ModelType => text_pred!(logs::model_type, op, v),
        K::EventId => text_pred!(logs::event_id, op, v),
        K::UserAgent => text_pred!(logs::user_agent, op, v),
        K::KeyId => text_pred!(logs::key_id, op, v),
        K::UserId => text_pred!(logs::user_id, op, v),
        K::TeamId => text_pred!(logs::team_id, op, v),
        K::RouteId => text_pred!(logs::route_id, op, v),
        K::CreatedAt => int_pred!(logs::created_at, op, v),
        K::Tokens => int_pred!(logs::total_tokens, op, v),
        K::TokensIn => int_pred!(logs::tokens_in, op, v),
        K::TokensOut => int_pred!(logs::tokens_out, op, v),
        K::Duration => int_pred!(logs::duration, op, v),
        K::Cost => float_pred!(logs::cost, op, v),
        K::Feedback => float_pred!(logs::feedback, op, v),
        K::Success => bool_pred!(logs::success, op, v),
        K::Cached => bool_pred!(logs::cached, op, v),
        K::Authentication => bool_pred!(logs::authenticated, op, v),
        K::MetadataKey | K::MetadataValue => metadata_pred(key, op, v)?,
    })
}

fn filter_pred(f: &LogFilter) -> Result<Pred, Error> {
    let mut acc: Option<Pred> = None;
    for v in &f.values {
        let p = value_pred(f.key, f.op, v)?;
        acc = Some(match acc {
            None => p,
            Some(a) if f.op == Op::Neq => and(a, p),
            Some(a) => or(a, p),
        });
    }
    acc.ok_or_else(|| bad(format!("filter on {:?} has no value", f.key)))
}

impl LogQuery {
    /// The gateway's logs that match the search and every filter, unordered.
    pub(super) fn filtered(&self, account_id: &str, gateway_id: &str) -> Result<Boxed, Error> {
        let mut q = logs::table
            .filter(logs::account_id.eq(account_id.to_owned()))
            .filter(logs::gateway_id.eq(gateway_id.to_owned()))
            .into_boxed();
        if let Some(term) = self.search.as_deref().filter(|s| !s.is_empty()) {
            let pattern = like_contains(&term.to_lowercase());
            let hit = |col: Box<
                dyn BoxableExpression<logs::table, MultiBackend, SqlType = Nullable<Text>>,
            >|
             -> Pred {
                Box::new(lower(col).like(pattern.clone()).escape('\\'))
            };
            let fields: Pred = if term.contains(SEARCH_SEPARATOR) {
                // Could match across two fields of the joined text: test each field (no index serves this).
                or(
                    or(
                        hit(Box::new(logs::provider.nullable())),
                        hit(Box::new(logs::model)),
                    ),
                    hit(Box::new(logs::path.nullable())),
                )
            } else {
                // One test of the joined text, which on PostgreSQL its trigram index serves, and whose
                // statistics (kept for the index expression) tell the planner how many rows match.
                Box::new(
                    diesel::dsl::sql::<Nullable<Bool>>(SEARCH_DOCUMENT)
                        .sql(" LIKE ")
                        .bind::<Text, _>(pattern.clone())
                        .sql(" ESCAPE '\\'"),
                )
            };
            q = if !could_be_in_a_log_id(term) {
                q.filter(fields)
            } else if term.len() == ULID_LEN {
                // A whole id (pasted from `cf-aig-log-id`, say) can only be that id: an equality the primary key
                // serves, beside the trigram index, instead of reading every row for it.
                q.filter(or(
                    Box::new(logs::id.eq(term.to_ascii_uppercase()).nullable()),
                    fields,
                ))
            } else {
                // Part of an id: no index serves that test.
                q.filter(or(hit(Box::new(logs::id.nullable())), fields))
            };
        }
        for f in &self.filters {
            q = q.filter(filter_pred(f)?);
        }
        Ok(q)
    }

    /// `q` in the requested order; ties by creation time, then id, in the same direction, so page walks are
    /// stable and follow the `(…, created_at DESC, id DESC)` indexes.
    pub(super) fn ordered(&self, q: Boxed) -> Boxed {
        macro_rules! by {
            ($q:expr, $col:expr) => {
                if self.ascending {
                    $q.order_by($col.asc())
                } else {
                    $q.order_by($col.desc())
                }
            };
        }
        let q = match self.order_by {
            OrderBy::CreatedAt => by!(q, logs::created_at),
            OrderBy::Provider => by!(q, logs::provider),
            OrderBy::Model => by!(q, logs::model),
            OrderBy::ModelType => by!(q, logs::model_type),
            OrderBy::Success => by!(q, logs::success),
            OrderBy::Cached => by!(q, logs::cached),
            OrderBy::Cost => by!(q, logs::cost),
            OrderBy::TokensIn => by!(q, logs::tokens_in),
            OrderBy::TokensOut => by!(q, logs::tokens_out),
            OrderBy::Duration => by!(q, logs::duration),
            OrderBy::Feedback => by!(q, logs::feedback),
        };
        if self.ascending {
            q.then_order_by(logs::created_at.asc())
                .then_order_by(logs::id.asc())
        } else {
            q.then_order_by(logs::created_at.desc())
                .then_order_by(logs::id.desc())
        }
    }
}

#[cfg(test)]
mod search_tests {
    use super::could_be_in_a_log_id;

    #[test]
    fn only_terms_of_ulid_characters_are_looked_for_in_ids() {
        for term in ["01JD3", "01jd3", "7zz", "GPT"] {
            assert!(could_be_in_a_log_id(term), "{term}");
        }
        for term in [
            "o3-mini",
            "claude",
            "gpt-4o",
            "openai",
            "chat/completions",
            "a b",
        ] {
            assert!(!could_be_in_a_log_id(term), "{term}");
        }
    }
}
