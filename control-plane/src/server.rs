//! Running the management API: bind first (so port 0 resolves and errors surface early), then serve until told to
//! stop.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Service as _;
use actix_web::{App, guard, web};
use futures_util::future::Either;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, AppState, openapi::DOCUMENT_PATH};
use crate::error::Error;
use crate::metrics::ApiMetrics;

/// Where Swagger UI is served (`/client/v4/docs/`).
const DOCS_PATH: &str = "/client/v4/docs/{_:.*}";

/// Settings of the management API listener.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// actix worker threads.
    pub workers: usize,
}

/// A bound, not yet serving management API.
pub struct ControlPlaneServer {
    listener: TcpListener,
    state: AppState,
    workers: usize,
    /// `GET /metrics` and the request counting behind it; `None` when metrics are off.
    metrics: Option<Arc<ApiMetrics>>,
}

impl ControlPlaneServer {
    pub fn bind(settings: &ApiSettings, state: AppState) -> Result<Self, Error> {
        let listener = TcpListener::bind(settings.listen)
            .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", settings.listen)))?;
        let metrics = Some(ApiMetrics::new(Arc::clone(&state.log_ingest)));
        Ok(Self {
            listener,
            state,
            workers: settings.workers.max(1),
            metrics,
        })
    }

    /// No `/metrics`, and no request counting (`--metrics false`).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = None;
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves on a new actix system on the calling thread until `shutdown` resolves, then stops gracefully
    /// (in-flight requests finish).
    pub fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), Error> {
        actix_web::rt::System::new().block_on(async move {
            let server = self.into_server()?;
            let handle = server.handle();
            tokio::select! {
                result = server => result.map_err(|e| Error::Internal(format!("management API failed: {e}"))),
                () = shutdown => {
                    handle.stop(true).await;
                    Ok(())
                }
            }
        })
    }

    /// Builds the actix server; the caller runs the returned future on an actix (or tokio) runtime and may stop it
    /// through its handle.
    pub fn into_server(self) -> Result<actix_web::dev::Server, Error> {
        // The evaluation runner lives on the runtime that serves the API; at start it runs the evaluations a stopped
        // process left unprocessed. Create handlers wake it through the app data.
        let evaluation_runner = web::Data::new(crate::evaluations::EvaluationRunner::start(
            self.state.db.clone(),
        ));
        let state = web::Data::new(self.state);
        // The document is generated once. Swagger UI (which also serves the document) is registered before the API
        // routes: the `/client/v4` scope would otherwise claim its paths and answer 404. The front door (`/`) is
        // registered here too, outside `api::register`, so that it stays out of the OpenAPI document; other
        // methods on `/` fall through to the 404 envelope as before.
        let document = api::openapi_document();
        let metrics = self.metrics.map(web::Data::from);
        let server = actix_web::HttpServer::new(move || {
            let mut app = App::new()
                .service(SwaggerUi::new(DOCS_PATH).url(DOCUMENT_PATH, document.clone()))
                .service(
                    web::resource("/")
                        .guard(guard::Any(guard::Get()).or(guard::Head()))
                        .to(api::front_door),
                );
            // Like the front door, outside the v4 API and its document.
            if let Some(metrics) = &metrics {
                app = app.app_data(metrics.clone()).service(
                    web::resource("/metrics")
                        .guard(guard::Get())
                        .to(crate::metrics::serve),
                );
            }
            let counting = metrics.clone();
            api::register(app.into_utoipa_app())
                .app_data(state.clone())
                .app_data(evaluation_runner.clone())
                .default_service(web::to(api::no_route))
                .into_app()
                .wrap_fn(|req, service| match refuse_nul(req.uri()) {
                    Some(error) => Either::Left(std::future::ready(Err(error.into()))),
                    None => Either::Right(service.call(req)),
                })
                // Outermost: every answer is counted, refusals of the layer above included.
                .wrap_fn(move |req, service| {
                    let counting = counting.clone();
                    let method = req.method().clone();
                    let started = std::time::Instant::now();
                    let call = service.call(req);
                    async move {
                        let result = call.await;
                        if let Some(metrics) = &counting {
                            let (operation, status) = match &result {
                                Ok(res) => (res.request().match_pattern(), res.status()),
                                Err(e) => (None, e.as_response_error().status_code()),
                            };
                            metrics.observe(
                                method.as_str(),
                                operation.as_deref(),
                                status.as_u16(),
                                started.elapsed(),
                            );
                        }
                        result
                    }
                })
        })
        .workers(self.workers)
        .disable_signals()
        .listen(self.listener)
        .map_err(|e| Error::Config(format!("cannot serve the management API: {e}")))?
        .run();
        Ok(server)
    }
}

/// A NUL character (`%00`) in the path or query is refused before routing. PostgreSQL's `text` cannot hold one,
/// so a path id or a filter value with it would otherwise fail in the database (500) instead of as bad input.
fn refuse_nul(uri: &actix_web::http::Uri) -> Option<Error> {
    let nul = |s: &str| s.contains("%00");
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        Some(Error::BadParameter(
            "the path and query must not contain NUL characters (%00)".into(),
        ))
    } else {
        None
    }
}
