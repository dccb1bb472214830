//! `pubdeck serve`: the catalog HTTP service (axum on tokio, served by hyper's HTTP/1).
//!
//! JSON API under `/v1` (see `docs/catalog-api.md`), bearer-token auth, 1 MiB request bodies,
//! 30 s request timeout, graceful shutdown on SIGTERM / Ctrl-C, request logs via `tracing`
//! (method, path, status, latency, user; never headers or tokens). The service keeps no state
//! besides a cache validated against the database, so several instances can share PostgreSQL.
//!
//! `/v1/health` is liveness (never touches the database); `/v1/ready` is readiness (503 when
//! the database does not answer within [`READY_TIMEOUT`]). A request that cannot get a
//! database connection within the pool's short bound (`catalog::db::ACQUIRE_TIMEOUT`) answers
//! 503 with `Retry-After` at once, not 408 at the request timeout.
//!
//! Slow, idle and flooding clients cannot take it down: a request head must arrive within
//! [`HEADER_READ_TIMEOUT`] (the same timer closes idle keep-alive connections), at most
//! [`Limits::max_connections`] connections are served at once, one client address holds at
//! most [`Limits::max_per_address`] of them (more are closed at once), and when all are in
//! use [`Limits::probe_connections`] more answer health and readiness only; beyond that,
//! clients wait in the kernel's backlog instead of exhausting file descriptors. Every error
//! body is JSON.

mod auth;
mod error;
pub mod flox;
mod handlers;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{delete, get, post, put};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
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
/// A request head must arrive within this; an idle keep-alive connection is closed after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
pub const DRAIN: Duration = Duration::from_secs(10);
/// `Retry-After` of a 503 (the database is unavailable, or the connection slots are full).
pub const RETRY_AFTER_SECS: u16 = 5;
/// Longest `GET /v1/ready` waits for the database before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections kept for health and readiness probes (see [`Limits::probe_connections`]).
pub const PROBE_CONNECTIONS: usize = 32;
/// A probe connection's request head must arrive within this (at most the header timeout).
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection limits of the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client address may hold at once (an IPv6 address counts with its
    /// /64, which one client usually has whole); a connection over it is closed at once.
    pub max_per_address: usize,
    /// Connections taken, when every one of `max_connections` is in use, only to answer
    /// `GET /v1/health` and `GET /v1/ready` (anything else gets 503 with `Retry-After`), one
    /// request each, with [`PROBE_HEADER_TIMEOUT`]: so probes are answered whatever holds
    /// the other slots.
    pub probe_connections: usize,
    /// A request head must arrive within this; an idle keep-alive connection is closed after it.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// Raises the process's open-file limit to its hard limit (at most 65,536) and allows
    /// half of it as connections (each also needs a database or file handle now and then).
    pub fn for_this_process() -> Limits {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write/read the struct we pass; no other memory.
        let soft = unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                let want = lim.rlim_max.min(65_536);
                if want > lim.rlim_cur {
                    let raised = libc::rlimit {
                        rlim_cur: want,
                        rlim_max: lim.rlim_max,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                        lim.rlim_cur = want;
                    }
                }
                lim.rlim_cur
            } else {
                1024
            }
        };
        let max_connections = usize::try_from(soft / 2).unwrap_or(512).clamp(64, 16_384);
        Limits {
            max_connections,
            // Half: one address (a load balancer, a benchmark's wrk) may use many, and can
            // never hold all of them.
            max_per_address: max_connections / 2,
            probe_connections: PROBE_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    backend: Arc<CatalogBackend>,
    flox: Arc<flox::FloxOptions>,
}

/// The `/v1` router over a catalog database, with Flox's catalog API (no upstream).
pub fn router(backend: Arc<CatalogBackend>) -> Router {
    router_with(backend, flox::FloxOptions::default())
}

/// [`router`] with the Flox routes' options (the upstream catalog, how stores are opened).
pub fn router_with(backend: Arc<CatalogBackend>, flox_options: flox::FloxOptions) -> Router {
    let state = AppState {
        backend,
        flox: Arc::new(flox_options),
    };
    let authed = Router::new()
        .route("/whoami", get(handlers::whoami))
        .route(
            "/catalogs",
            get(handlers::list_catalogs).post(handlers::create_catalog),
        )
        .route("/catalogs/{org}", get(handlers::get_catalog))
        .route("/catalogs/{org}/store", put(handlers::set_store))
        .route("/catalogs/{org}/keys", post(handlers::add_key))
        .route("/catalogs/{org}/keys/{name}", delete(handlers::remove_key))
        .route(
            "/catalogs/{org}/log",
            get(handlers::audit_log).post(handlers::record),
        )
        .route("/catalogs/{org}/live-paths", get(handlers::live_paths))
        .route(
            "/catalogs/{org}/packages/{package}/versions/{version}/yank",
            put(handlers::yank).delete(handlers::yank),
        )
        .route("/catalogs/{org}/allowlist", get(handlers::allowlist))
        .route(
            "/catalogs/{org}/allowlist/{user}",
            put(handlers::allow).delete(handlers::revoke),
        )
        .route("/catalogs/{org}/builds", post(handlers::register_build))
        .route(
            "/catalogs/{org}/builds/batch",
            post(handlers::register_builds),
        )
        .route("/catalogs/{org}/check-build", get(handlers::check_build))
        .route("/catalogs/{org}/packages/{package}", get(handlers::show))
        .route("/packages", get(handlers::list_packages))
        .route("/packages/changes", post(handlers::list_changes))
        .route("/search", get(handlers::search))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ));
    let v1 = Router::new()
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .merge(authed);
    Router::new()
        .nest("/v1", v1)
        .merge(flox::routes())
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // A declared Content-Length over the limit is refused before anything is read.
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
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
        .layer(middleware::map_response(error::json_bodies))
        .with_state(state)
}

/// The router of the connections kept for probes: health and readiness, and 503 with
/// `Retry-After` for anything else.
fn probe_router(backend: Arc<CatalogBackend>) -> Router {
    let state = AppState {
        backend,
        flox: Arc::default(),
    };
    Router::new()
        .route("/v1/health", get(handlers::health))
        .route("/v1/ready", get(handlers::ready))
        .fallback(handlers::at_capacity)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::map_response(error::json_bodies))
        .with_state(state)
}

/// How many connections each client address holds; a [`Held`] gives its one back on drop.
#[derive(Debug, Default)]
struct PerAddress {
    held: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

/// One connection counted against its address.
struct Held {
    counts: Arc<PerAddress>,
    key: std::net::IpAddr,
}

impl PerAddress {
    /// The address a client is counted under: IPv4 (an IPv4-mapped IPv6 address is one), or
    /// an IPv6 address's /64.
    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                std::net::IpAddr::V6(bits.into())
            }
            v4 => v4,
        }
    }

    /// Counts a connection from `ip`, unless its address already holds `max`.
    fn admit(self: &Arc<Self>, ip: std::net::IpAddr, max: usize) -> Option<Held> {
        let key = Self::key(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Held {
            counts: Arc::clone(self),
            key,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// A bound, migrated service, not yet serving.
pub struct Server {
    listener: TcpListener,
    backend: Arc<CatalogBackend>,
    flox: flox::FloxOptions,
}

impl Server {
    /// Opens (creating/migrating) the database and binds `listen`.
    pub async fn bind(listen: SocketAddr, db_url: &str) -> anyhow::Result<Server> {
        let backend = CatalogBackend::connect(db_url).await?;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        Ok(Server {
            listener,
            backend,
            flox: flox::FloxOptions::default(),
        })
    }

    /// Serves Flox's routes with these options (an upstream catalog, how stores open).
    pub fn with_flox(mut self, options: flox::FloxOptions) -> Server {
        self.flox = options;
        self
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
        self.run_with(Limits::for_this_process(), shutdown).await
    }

    /// [`Server::run_until`] with explicit limits.
    pub async fn run_with(
        self,
        limits: Limits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router_with(Arc::clone(&self.backend), self.flox.clone());
        let probes = probe_router(Arc::clone(&self.backend));
        accept_loop(self.listener, app, probes, limits, shutdown).await;
        self.backend.db().close().await;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// Accepts connections (each only once a slot is free, so excess clients wait in the kernel's
/// backlog) and serves each with hyper's HTTP/1 and a header-read timeout that also closes
/// idle keep-alive connections. A connection from an address that already holds
/// [`Limits::max_per_address`] is closed at once, so one client cannot take every slot; when
/// every slot is taken, one of [`Limits::probe_connections`] is used to answer probes only
/// ([`probe_router`]), so health and readiness never wait behind a flood. On `shutdown`:
/// stop accepting, let in-flight requests finish (at most [`DRAIN`]).
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    probes: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

    let mut http = http1::Builder::new();
    // Without a timer hyper cannot time out a request head (and panics when asked to).
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    let mut probe_http = http1::Builder::new();
    probe_http
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.min(PROBE_HEADER_TIMEOUT))
        .keep_alive(false)
        .max_buf_size(16 * 1024);
    let (http, probe_http) = (Arc::new(http), Arc::new(probe_http));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let probe_slots = Arc::new(Semaphore::new(limits.probe_connections));
    let per_address = Arc::new(PerAddress::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot (`probe`: one kept for probes) before accepting.
        let (permit, probe): (OwnedSemaphorePermit, bool) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => {
                (p.expect("the semaphore is never closed"), false)
            }
            p = Arc::clone(&probe_slots).acquire_owned() => {
                (p.expect("the semaphore is never closed"), true)
            }
        };
        let (tcp, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE, ECONNABORTED…: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = per_address.admit(remote.ip(), limits.max_per_address) else {
            tracing::debug!(%remote, "closed: its address holds its share of the connections");
            continue;
        };
        // A full slot may have come free while this one waited for the connection.
        let (permit, probe) = match probe {
            true => match Arc::clone(&slots).try_acquire_owned() {
                Ok(full) => (full, false),
                Err(_) => (permit, true),
            },
            false => (permit, false),
        };
        let _ = tcp.set_nodelay(true);
        let (http, svc) = if probe {
            (Arc::clone(&probe_http), probes.clone())
        } else {
            (Arc::clone(&http), app.clone())
        };
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let _held = (permit, held);
            let mut conn = std::pin::pin!(http.serve_connection(TokioIo::new(tcp), svc));
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r
                            && !e.is_timeout()
                            && !e.is_incomplete_message()
                        {
                            tracing::debug!(%remote, error = %e, "connection ended");
                        }
                        break;
                    }
                    Ok(()) = stop_rx.changed() => conn.as_mut().graceful_shutdown(),
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let all_probes = u32::try_from(limits.probe_connections).unwrap_or(u32::MAX);
    let drained = async {
        let _ = slots.acquire_many(all).await;
        let _ = probe_slots.acquire_many(all_probes).await;
    };
    if tokio::time::timeout(DRAIN, drained).await.is_err() {
        tracing::warn!("shutdown: connections still open after the drain period are dropped");
    }
}

/// `pubdeck serve`: binds, logs where it listens, and serves until SIGTERM or Ctrl-C.
pub async fn serve(
    listen: SocketAddr,
    db_url: &str,
    flox_options: flox::FloxOptions,
) -> anyhow::Result<()> {
    let server = Server::bind(listen, db_url).await?.with_flox(flox_options);
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
