//! Teams: subjects with limits and budgets of their own, which apply on top of the limits of each key of the team
//! (a key names its team, or its user belongs to one).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::SubjectLimits;
use super::subjects::subject_routes;
use crate::api::envelope::rfc3339;
use crate::store::access::Metadata;
use crate::store::access::subjects::{Subject, SubjectRecord};

/// A team (Gatehouse extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct Team {
    #[schema(format = "uuid")]
    pub id: String,
    pub name: String,
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
#[schema(example = json!({"name": "research", "limits": {"tpm": 500000, "budget": {"amount_usd": 1000, "period": "month"}}}))]
pub struct TeamBody {
    /// 1..256 characters, not only whitespace.
    pub name: String,
    /// At most 32 entries; keys 1..64 characters; string (≤ 1024 characters), number or boolean values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub limits: Option<SubjectLimits>,
}

impl From<SubjectRecord> for Team {
    fn from(r: SubjectRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            metadata: r.metadata,
            limits: SubjectLimits::from(r.limits),
            created_at: rfc3339(r.created_at_ms),
            modified_at: rfc3339(r.modified_at_ms),
        }
    }
}

subject_routes! {
    subject: Subject::Team, view: Team, body: TeamBody, tag: "teams",
    collection: "/accounts/{account_id}/ai-gateway/teams",
    item: "/accounts/{account_id}/ai-gateway/teams/{id}",
    id: "Team id",
    /// List the account's teams, oldest first (Gatehouse extension).
    list: list_teams = "gatehouse-list-teams",
    /// Create a team (Gatehouse extension).
    create: create_team = "gatehouse-create-team",
    /// Fetch a team (Gatehouse extension).
    get: get_team = "gatehouse-get-team",
    /// Change some fields of a team; omitted fields keep their values (Gatehouse extension).
    update: update_team = "gatehouse-update-team",
    /// Delete a team that no unrevoked key and no user names (400 naming them otherwise); revoked keys that named it
    /// keep their other fields and lose their `team_id`. Returns the team (Gatehouse extension).
    delete: delete_team = "gatehouse-delete-team", still_named: "Keys or users still name the team",
}
