//! Users: subjects whose limits apply to every key of the user; a user may belong to a team. The queries are
//! shared with teams (`subjects.rs`); these are the ones the rest of the control plane names users by.

use super::subjects::{self, Subject, SubjectRecord};
use crate::db::AnyConnection;
use crate::error::Error;

/// Every user of the account, by id (for config documents).
pub fn all_for_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<SubjectRecord>, Error> {
    subjects::all_for_account(conn, Subject::User, account_id)
}

/// The names of the account's users among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    subjects::names(conn, Subject::User, account_id, ids)
}
