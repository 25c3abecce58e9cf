//! The management API: Cloudflare's v4 AI Gateway routes under `/client/v4`, operator routes under `/admin`, and
//! the OpenAPI document and Swagger UI. Handlers are thin: authorise, validate, call a store, wrap the result.

pub mod access;
pub mod admin;
pub mod analytics;
pub mod custom_providers;
pub mod datasets;
pub mod envelope;
pub mod evaluations;
pub mod gateway_body;
pub mod gateways;
pub mod logs;
pub mod openapi;
pub mod provider_configs;
pub mod request;
pub mod routes;
pub mod targets;
pub mod usage;
pub mod validation;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};
use utoipa_actix_web::{UtoipaApp, scope};

use crate::db::Database;
use crate::error::Error;
use crate::keyring::Keyring;

/// What every handler needs, shared by all actix workers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Database,
    pub keyring: Keyring,
    /// Base URL of this deployment's inference listener, as clients reach it (for `GET .../url/{provider}`).
    pub public_inference_url: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seals provider secrets before they are stored.
    pub master_key: gatehouse_shared::crypto::MasterKey,
    /// Whether custom providers may use `http://` base URLs (Cloudflare requires `https://`; a self-hosted
    /// deployment may front plain-HTTP servers on its own network).
    pub allow_http_custom_providers: bool,
    /// Publishes config documents to the data plane after every committed change.
    pub publisher: crate::propagation::ConfigPublisher,
    /// This process's log ingest counters (the writer's or the stream consumer's), for `GET /admin/log-ingest`.
    pub log_ingest: std::sync::Arc<crate::log_ingest::LogIngestCounters>,
}

/// Registers every documented route on `app`. The server and `gatehouse openapi` both call it, so the served
/// routes and the generated document cannot drift apart.
pub fn register<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    app.openapi(openapi::base_document())
        .service(
            scope::scope("/client/v4")
                .configure(gateways::routes)
                .configure(provider_configs::routes)
                .configure(custom_providers::routes)
                .configure(routes::routes)
                .configure(targets::routes)
                .configure(access::routes)
                .configure(logs::routes)
                .configure(datasets::routes)
                .configure(evaluations::routes)
                .configure(usage::routes)
                .configure(analytics::routes),
        )
        .service(scope::scope("/admin").configure(admin::routes))
        .service(healthz)
        .service(readyz)
}

/// The generated OpenAPI document.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    register(actix_web::App::new().into_utoipa_app())
        .split_for_parts()
        .1
}

/// Liveness of the management API process.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process is up")))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness of the management API: the database answers. Load balancers and Kubernetes take the process out of
/// service while it does not (a failed-over database, a pool that cannot connect).
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "The database answers"),
    (status = 503, description = "The database does not answer"),
))]
#[get("/readyz")]
async fn readyz(state: State) -> HttpResponse {
    use diesel::RunQueryDsl;
    let answered = state
        .db
        .run(|conn| {
            diesel::sql_query("SELECT 1")
                .execute(conn)
                .map_err(|e| Error::Unavailable(format!("database: {e}")))
        })
        .await;
    match answered {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "ready"})),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"}))
        }
    }
}

/// `GET /` (and `HEAD /`): what this service is, its version and where its documentation and probes are, as JSON
/// or, for a browser, an HTML page (`gatehouse_shared::front_door`, which the inference listener shares). Not a v4
/// route and not in the OpenAPI document: the server registers it outside [`register`].
pub async fn front_door(req: HttpRequest) -> HttpResponse {
    use gatehouse_shared::front_door::{self, Listener};
    // Several Accept fields count as one list (RFC 9110 §5.3).
    let accept: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .collect();
    let accept = (!accept.is_empty()).then(|| accept.join(", "));
    let page = front_door::render(
        Listener::ManagementApi,
        env!("CARGO_PKG_VERSION"),
        accept.as_deref(),
    );
    HttpResponse::Ok()
        .content_type(page.content_type)
        .insert_header((header::VARY, "Accept"))
        .body(page.body)
}

/// Answers any path no route matched, in the v4 envelope.
pub async fn no_route() -> Result<HttpResponse, Error> {
    Err(Error::NoRoute)
}

/// The app state as actix stores it.
pub type State = web::Data<AppState>;
