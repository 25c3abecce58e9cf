//! Teams: subjects whose limits apply to every key of the team (and of its users). The queries are shared with
//! users (`subjects.rs`); these are the ones the rest of the control plane names teams by.

use super::subjects::{self, Subject, SubjectRecord};
use crate::db::AnyConnection;
use crate::error::Error;

/// Every team of the account, by id (for config documents).
pub fn all_for_account(
    conn: &mut AnyConnection,
    account_id: &str,
) -> Result<Vec<SubjectRecord>, Error> {
    subjects::all_for_account(conn, Subject::Team, account_id)
}

/// The names of the account's teams among `ids` (those that exist), in one query.
pub fn names(
    conn: &mut AnyConnection,
    account_id: &str,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, Error> {
    subjects::names(conn, Subject::Team, account_id, ids)
}
