//! `pubdeck serve`: the catalog HTTP service (axum on tokio).
//!
//! JSON API under `/v1` (see `docs/catalog-api.md`), bearer-token auth, 1 MiB request bodies,
//! 30 s request timeout, graceful shutdown on SIGTERM / Ctrl-C, request logs via `tracing`
//! (method, path, status, latency, user; never headers or tokens). The service keeps no state
//! besides a cache validated against the database, so several instances can share PostgreSQL.

mod auth;
mod error;
mod handlers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post, put};
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::Caller;
pub use error::ApiError;

use crate::catalog::embedded::CatalogBackend;

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    backend: Arc<CatalogBackend>,
}

/// The `/v1` router over a catalog database.
pub fn router(backend: Arc<CatalogBackend>) -> Router {
    let state = AppState { backend };
    let authed = Router::new()
        .route("/whoami", get(handlers::whoami))
        .route(
            "/catalogs",
            get(handlers::list_catalogs).post(handlers::create_catalog),
        )
        .route("/catalogs/{org}", get(handlers::get_catalog))
        .route("/catalogs/{org}/store", put(handlers::set_store))
        .route("/catalogs/{org}/keys", post(handlers::add_key))
        .route("/catalogs/{org}/allowlist", get(handlers::allowlist))
        .route(
            "/catalogs/{org}/allowlist/{user}",
            put(handlers::allow).delete(handlers::revoke),
        )
        .route("/catalogs/{org}/builds", post(handlers::register_build))
        .route("/catalogs/{org}/check-build", get(handlers::check_build))
        .route("/catalogs/{org}/packages/{package}", get(handlers::show))
        .route("/packages", get(handlers::list_packages))
        .route("/search", get(handlers::search))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ));
    let v1 = Router::new()
        .route("/health", get(handlers::health))
        .merge(authed);
    Router::new()
        .nest("/v1", v1)
        .fallback(handlers::no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        user = tracing::field::Empty,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(state)
}

/// A bound, migrated service, not yet serving.
pub struct Server {
    listener: TcpListener,
    backend: Arc<CatalogBackend>,
}

impl Server {
    /// Opens (creating/migrating) the database and binds `listen`.
    pub async fn bind(listen: SocketAddr, db_url: &str) -> anyhow::Result<Server> {
        let backend = CatalogBackend::connect(db_url).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        Ok(Server { listener, backend })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The database backend (for seeding in tests and benchmarks).
    pub fn backend(&self) -> &Arc<CatalogBackend> {
        &self.backend
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(Arc::clone(&self.backend));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.backend.db().close().await;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// `pubdeck serve`: binds, logs where it listens, and serves until SIGTERM or Ctrl-C.
pub async fn serve(listen: SocketAddr, db_url: &str) -> anyhow::Result<()> {
    let server = Server::bind(listen, db_url).await?;
    let addr = server.local_addr()?;
    tracing::info!(
        %addr,
        db = %crate::catalog::db::redact_url(db_url),
        "pubdeck catalog service listening"
    );
    server
        .run()
        .await
        .map_err(|e| anyhow::anyhow!("the service stopped: {e:#}"))
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
