//! Users: subjects with limits and budgets of their own, which apply on top of the limits of each key that names
//! the user. A user may belong to a team of the account.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::SubjectLimits;
use super::subjects::subject_routes;
use crate::api::envelope::rfc3339;
use crate::store::access::Metadata;
use crate::store::access::subjects::{Subject, SubjectRecord};

/// A user (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
    /// A team of the account; its limits apply to the user's keys that name no team of their own.
    pub team_id: Option<String>,
    /// String, number and boolean values.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    pub limits: SubjectLimits,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub modified_at: String,
}

/// The create body; PATCH takes the same fields, all optional (null resets a field; `limits` is replaced whole).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "alice@example.com", "metadata": {"department": "research"},
    "limits": {"budget": {"amount_usd": 50, "period": "month"}}}))]
pub struct UserBody {
    /// 1..256 characters, not only whitespace.
    pub name: String,
    /// An existing team of the account.
    pub team_id: Option<String>,
    /// At most 32 entries; keys 1..64 characters; string (≤ 1024 characters), number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub limits: Option<SubjectLimits>,
}

impl From<SubjectRecord> for User {
    fn from(r: SubjectRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            team_id: r.team_id,
            metadata: r.metadata,
            limits: SubjectLimits::from(r.limits),
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
        }
    }
}

subject_routes! {
    subject: Subject::User, view: User, body: UserBody, tag: "users",
    collection: "/accounts/{account_id}/ai-gateway/users",
    item: "/accounts/{account_id}/ai-gateway/users/{id}",
    id: "User id",
    /// List the account's users, oldest first (Gatehouse extension).
    list: list_users = "gatehouse-list-users",
    /// Create a user (Gatehouse extension).
    create: create_user = "gatehouse-create-user",
    /// Fetch a user (Gatehouse extension).
    get: get_user = "gatehouse-get-user",
    /// Change some fields of a user; omitted fields keep their values (Gatehouse extension).
    update: update_user = "gatehouse-update-user",
    /// Delete a user no unrevoked key names (400 naming the keys otherwise); revoked keys that named it keep their
    /// other fields and lose their `user_id`. Returns the user (Gatehouse extension).
    delete: delete_user = "gatehouse-delete-user", still_named: "Keys still name the user",
}
