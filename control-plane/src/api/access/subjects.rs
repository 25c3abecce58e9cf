//! The handlers of users and teams, written once: both are subjects with a name, metadata and limits (a user also
//! names its team), stored alike (`store::access::subjects`). `users.rs` and `teams.rs` register them under their
//! own routes and document them; `V` is the resource as the API shows it.

use actix_web::{HttpRequest, HttpResponse, web};
use gatehouse_shared::access::Limits;
use gatehouse_shared::token::Scope;
use serde::Serialize;

use super::body::{read_limits, read_metadata, read_name, read_subject_id};
use super::{
    ListQuery, authorize_account, authorize_item, authorize_list, changed, check_references,
    fetch_one, named_subject_gone, page_of, read_fields, subject_in_use,
};
use crate::api::State;
use crate::api::request::Caller;
use crate::api::validation::{Field, FieldReader};
use crate::db::AnyConnection;
use crate::error::Error;
use crate::store::access::Metadata;
use crate::store::access::keys as key_store;
use crate::store::access::subjects::{self as store, Subject, SubjectRecord};
use crate::store::now_ms;

/// "user" or "team", as messages name the subject.
fn noun(subject: Subject) -> &'static str {
    match subject {
        Subject::User => "user",
        Subject::Team => "team",
    }
}

fn not_found(subject: Subject, id: &str) -> Error {
    Error::NotFound(format!("{} '{id}' not found", noun(subject)))
}

/// A write that named a team (only a user's does) may race with the team's delete; other writes' foreign-key
/// errors are passed on as they are.
fn team_gone_if_named(subject: Subject) -> impl Fn(Error) -> Error {
    move |e| {
        if subject.has_team() {
            named_subject_gone(e)
        } else {
            e
        }
    }
}

/// The body's fields, each as sent (absent, null or a checked value).
struct SubjectFields {
    name: Field<String>,
    /// A user's team; none for a team, whose body has no `team_id`.
    team_id: Option<Field<String>>,
    metadata: Field<Metadata>,
    limits: Field<Limits>,
}

impl SubjectFields {
    fn read(r: &mut FieldReader<'_>, subject: Subject, create: bool) -> Self {
        let name = read_name(r, create);
        let team_id = subject.has_team().then(|| read_subject_id(r, "team_id"));
        Self {
            name,
            team_id,
            metadata: read_metadata(r),
            limits: read_limits(r),
        }
    }

    /// Applies the fields; returns the team to check when the body named one.
    fn apply(self, r: &mut SubjectRecord) -> Option<String> {
        if let Field::Set(name) = self.name {
            r.name = name;
        }
        let mut named_team = None;
        if let Some(team_id) = self.team_id {
            if let Field::Set(team) = &team_id {
                named_team = Some(team.clone());
            }
            team_id.apply_to(&mut r.team_id);
        }
        self.metadata
            .apply_with_default(&mut r.metadata, Metadata::new());
        self.limits
            .apply_with_default(&mut r.limits, Limits::default());
        named_team
    }
}

pub(super) async fn list<V: Serialize + From<SubjectRecord>>(
    subject: Subject,
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let (account_id, ListQuery { paging, search, .. }) = authorize_list(&caller, path, &req)?;
    let (rows, total) = state
        .db
        .run(move |c| {
            store::list(
                c,
                subject,
                &account_id,
                search.as_deref(),
                paging.offset(),
                paging.per_page,
            )
        })
        .await?;
    Ok(page_of::<_, V>(rows, total, paging))
}

pub(super) async fn create<V: Serialize + From<SubjectRecord>>(
    subject: Subject,
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let account_id = authorize_account(&caller, path, Scope::AiGatewayEdit)?;
    let fields = read_fields(&state, &req, payload, |r| {
        SubjectFields::read(r, subject, true)
    })
    .await?;
    let now = now_ms();
    let mut record = SubjectRecord {
        account_id: account_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        name: String::new(),
        team_id: None,
        metadata: Metadata::new(),
        limits: Limits::default(),
        created_at_ms: now,
        modified_at_ms: now,
    };
    let team = fields.apply(&mut record);
    let stored = record.clone();
    state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                check_references(c, &stored.account_id, None, None, team.as_deref())?;
                store::insert(c, subject, &stored)
            })
            .map_err(team_gone_if_named(subject))
        })
        .await?;
    changed(&state, &account_id, V::from(record)).await
}

pub(super) async fn get<V: Serialize + From<SubjectRecord>>(
    subject: Subject,
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    fetch_one::<_, V>(
        &state,
        &caller,
        path,
        move |c, account_id, id| store::get(c, subject, account_id, id),
        |id| not_found(subject, id),
    )
    .await
}

pub(super) async fn update<V: Serialize + From<SubjectRecord>>(
    subject: Subject,
    state: State,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = authorize_item(&caller, path, Scope::AiGatewayEdit)?;
    let fields = read_fields(&state, &req, payload, |r| {
        SubjectFields::read(r, subject, false)
    })
    .await?;
    let account = account_id.clone();
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let mut record = store::get(c, subject, &account_id, &id)?
                    .ok_or_else(|| not_found(subject, &id))?;
                let team = fields.apply(&mut record);
                check_references(c, &account_id, None, None, team.as_deref())?;
                record.modified_at_ms = now_ms().max(record.modified_at_ms);
                if !store::update(c, subject, &record)? {
                    return Err(not_found(subject, &id));
                }
                Ok(record)
            })
            .map_err(team_gone_if_named(subject))
        })
        .await?;
    changed(&state, &account, V::from(record)).await
}

pub(super) async fn delete<V: Serialize + From<SubjectRecord>>(
    subject: Subject,
    state: State,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Error> {
    let (account_id, id) = authorize_item(&caller, path, Scope::AiGatewayEdit)?;
    let account = account_id.clone();
    let in_use = subject_in_use(noun(subject), id.clone());
    let record = state
        .db
        .run(move |c| {
            c.write_transaction(|c| {
                let record = store::get(c, subject, &account_id, &id)?
                    .ok_or_else(|| not_found(subject, &id))?;
                refuse_while_named(c, subject, &account_id, &id)?;
                key_store::detach_revoked(c, &account_id, subject, &id)?;
                store::delete(c, subject, &account_id, &id)?;
                Ok(record)
            })
            .map_err(in_use)
        })
        .await?;
    changed(&state, &account, V::from(record)).await
}

/// Refuses to delete a subject that an unrevoked key (or, for a team, a user) still names, naming them: deleting
/// it would silently lift the limits those keys run under.
fn refuse_while_named(
    c: &mut AnyConnection,
    subject: Subject,
    account_id: &str,
    id: &str,
) -> Result<(), Error> {
    let keys = key_store::unrevoked_ids_of(c, account_id, subject, id)?;
    let refusal = match subject {
        Subject::User => (!keys.is_empty()).then(|| {
            format!(
                "user '{id}' is the user of keys {}: revoke them or change their user_id first",
                keys.join(", ")
            )
        }),
        Subject::Team => {
            let users = store::user_ids_in_team(c, account_id, id)?;
            let mut holders = Vec::new();
            if !keys.is_empty() {
                holders.push(format!("the team of keys {}", keys.join(", ")));
            }
            if !users.is_empty() {
                holders.push(format!("the team of users {}", users.join(", ")));
            }
            (!holders.is_empty()).then(|| {
                format!(
                    "team '{id}' is {}: revoke or change them first",
                    holders.join(" and ")
                )
            })
        }
    };
    refusal.map_or(Ok(()), |message| Err(Error::BadParameter(message)))
}

/// Declares the routes of one kind of subject and their OpenAPI documentation: utoipa documents one function per
/// route, so each kind gets five thin handlers that call the shared ones above. The invocation gives each handler's
/// doc comment (its summary in the OpenAPI document), name and operation id, and the strings that name the kind.
macro_rules! subject_routes {
    (
        subject: $subject:expr, view: $view:ident, body: $body:ident, tag: $tag:tt,
        collection: $collection:tt, item: $item:tt, id: $id_description:tt,
        $(#[$list_doc:meta])* list: $list:ident = $list_op:tt,
        $(#[$create_doc:meta])* create: $create:ident = $create_op:tt,
        $(#[$get_doc:meta])* get: $get:ident = $get_op:tt,
        $(#[$update_doc:meta])* update: $update:ident = $update_op:tt,
        $(#[$delete_doc:meta])* delete: $delete:ident = $delete_op:tt, still_named: $still_named:tt $(,)?
    ) => {
        // utoipa finds a route's method and path by the bare names of actix-web's route attributes.
        use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
        use $crate::api::State;
        use $crate::api::envelope::{Envelope, ErrorEnvelope};
        use $crate::api::request::Caller;
        use $crate::error::Error;

        pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
            cfg.service($list)
                .service($create)
                .service($get)
                .service($update)
                .service($delete);
        }

        $(#[$list_doc])*
        #[utoipa::path(
            tag = $tag, operation_id = $list_op,
            params(
                ("account_id" = String, Path, description = "Account id"),
                ("page" = Option<i64>, Query, description = "Page number, from 1"),
                ("per_page" = Option<i64>, Query, description = "Items per page, 1..100 (default 20)"),
                ("search" = Option<String>, Query, description = "Case-insensitive substring of the name"),
            ),
            responses((status = 200, body = Envelope<Vec<$view>>), (status = 400, body = ErrorEnvelope),
                      (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)),
            security(("bearer" = []))
        )]
        #[get($collection)]
        async fn $list(
            state: State,
            caller: Caller,
            req: HttpRequest,
            path: web::Path<String>,
        ) -> Result<HttpResponse, Error> {
            super::subjects::list::<$view>($subject, state, caller, req, path).await
        }

        $(#[$create_doc])*
        #[utoipa::path(
            tag = $tag, operation_id = $create_op,
            params(("account_id" = String, Path, description = "Account id")),
            request_body = $body,
            responses((status = 200, body = Envelope<$view>), (status = 400, body = ErrorEnvelope),
                      (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope)),
            security(("bearer" = []))
        )]
        #[post($collection)]
        async fn $create(
            state: State,
            caller: Caller,
            req: HttpRequest,
            path: web::Path<String>,
            payload: web::Payload,
        ) -> Result<HttpResponse, Error> {
            super::subjects::create::<$view>($subject, state, caller, req, path, payload).await
        }

        $(#[$get_doc])*
        #[utoipa::path(
            tag = $tag, operation_id = $get_op,
            params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = $id_description)),
            responses((status = 200, body = Envelope<$view>), (status = 401, body = ErrorEnvelope),
                      (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
            security(("bearer" = []))
        )]
        #[get($item)]
        async fn $get(
            state: State,
            caller: Caller,
            path: web::Path<(String, String)>,
        ) -> Result<HttpResponse, Error> {
            super::subjects::get::<$view>($subject, state, caller, path).await
        }

        $(#[$update_doc])*
        #[utoipa::path(
            tag = $tag, operation_id = $update_op,
            params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = $id_description)),
            request_body = $body,
            responses((status = 200, body = Envelope<$view>), (status = 400, body = ErrorEnvelope),
                      (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
                      (status = 413, body = ErrorEnvelope)),
            security(("bearer" = []))
        )]
        #[patch($item)]
        async fn $update(
            state: State,
            caller: Caller,
            req: HttpRequest,
            path: web::Path<(String, String)>,
            payload: web::Payload,
        ) -> Result<HttpResponse, Error> {
            super::subjects::update::<$view>($subject, state, caller, req, path, payload).await
        }

        $(#[$delete_doc])*
        #[utoipa::path(
            tag = $tag, operation_id = $delete_op,
            params(("account_id" = String, Path, description = "Account id"), ("id" = String, Path, description = $id_description)),
            responses((status = 200, body = Envelope<$view>), (status = 400, body = ErrorEnvelope, description = $still_named),
                      (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
            security(("bearer" = []))
        )]
        #[delete($item)]
        async fn $delete(
            state: State,
            caller: Caller,
            path: web::Path<(String, String)>,
        ) -> Result<HttpResponse, Error> {
            super::subjects::delete::<$view>($subject, state, caller, path).await
        }
    };
}
pub(super) use subject_routes;
