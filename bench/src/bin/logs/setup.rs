//! The scratch database of a run and the management API served in process over it.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use bytes::Bytes;
use diesel::{Connection as _, RunQueryDsl as _};
use gatehouse_bench::client::HttpClient;
use gatehouse_bus::MemoryBus;
use gatehouse_control_plane::api::AppState;
use gatehouse_control_plane::db::Database;
use gatehouse_control_plane::keyring::{Keyring, TokenRequest};
use gatehouse_control_plane::propagation::ConfigPublisher;
use gatehouse_control_plane::server::{ApiSettings, ControlPlaneServer};
use gatehouse_shared::crypto::MasterKey;
use gatehouse_shared::token::Scope;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

use crate::records::now_ms;
use crate::{ACCOUNT, DbArgs};

/// A fresh database on the server of `base`, dropped on [`Scratch::drop_now`].
pub(crate) struct Scratch {
    base: String,
    name: String,
    pub(crate) url: String,
    keep: bool,
}

impl Scratch {
    pub(crate) fn create(args: &DbArgs) -> Result<Scratch> {
        ensure!(
            args.database_url.starts_with("postgres://")
                || args.database_url.starts_with("postgresql://"),
            "--database-url must be a PostgreSQL URL"
        );
        let name = format!(
            "gh_bench_{}",
            ulid::Ulid::from_parts(now_ms() as u64, u128::from(std::process::id()))
                .to_string()
                .to_lowercase()
        );
        let mut admin = diesel::PgConnection::establish(&args.database_url)
            .context("connecting to --database-url")?;
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut admin)?;
        let url = with_database(&args.database_url, &name);
        eprintln!("gatehouse-bench-logs: database {name}");
        Ok(Scratch {
            base: args.database_url.clone(),
            name,
            url,
            keep: args.keep,
        })
    }

    pub(crate) fn drop_now(&self) {
        if self.keep {
            eprintln!("gatehouse-bench-logs: kept database {}", self.name);
            return;
        }
        let dropped = diesel::PgConnection::establish(&self.base)
            .map_err(anyhow::Error::from)
            .and_then(|mut c| {
                diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
                .execute(&mut c)
                .map_err(anyhow::Error::from)
            });
        if let Err(e) = dropped {
            eprintln!(
                "gatehouse-bench-logs: could not drop database {}: {e}",
                self.name
            );
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// The management API in process, as `gatehouse control-plane` serves it, with an all-scopes token.
pub(crate) struct Api {
    addr: SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Api {
    pub(crate) fn start(db: &Database) -> Result<Api> {
        let master = MasterKey::from_base64(&MasterKey::generate_base64())?;
        let keyring = Keyring::load_or_create(db, &master)?;
        let token = keyring
            .mint(
                db,
                TokenRequest {
                    accounts: vec!["*".into()],
                    scopes: Scope::ALL.to_vec(),
                    ttl: None,
                    description: "gatehouse-bench-logs".into(),
                },
            )?
            .token;
        let state = AppState {
            db: db.clone(),
            keyring,
            public_inference_url: "http://127.0.0.1:8787".into(),
            max_body_bytes: 1024 * 1024,
            master_key: master,
            allow_http_custom_providers: false,
            publisher: ConfigPublisher::new(db.clone(), Arc::new(MemoryBus::new())),
            log_ingest: Arc::default(),
        };
        let server = ControlPlaneServer::bind(
            &ApiSettings {
                listen: "127.0.0.1:0".parse()?,
                workers: 2,
            },
            state,
        )?;
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(e) = server.run(async move {
                let _ = stopped.await;
            }) {
                eprintln!("gatehouse-bench-logs: management API: {e}");
            }
        });
        Ok(Api {
            addr,
            token,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) async fn send(
        &self,
        client: &HttpClient,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path_and_query}", self.addr))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let resp = client.request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    pub(crate) async fn create_gateway(&self, client: &HttpClient, id: &str) -> Result<()> {
        let (status, body) = self
            .send(
                client,
                Method::POST,
                &format!("/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways"),
                Some(
                    json!({"id": id, "cache_invalidate_on_update": false, "cache_ttl": 0,
                    "collect_logs": true, "rate_limiting_interval": 0, "rate_limiting_limit": 0}),
                ),
            )
            .await?;
        ensure!(
            status == StatusCode::OK,
            "creating gateway {id}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    pub(crate) fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
