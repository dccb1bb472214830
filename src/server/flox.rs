//! Flox's catalog API (`/api/v1/catalog/…`, `/api/v1/accounts/me` and the gateway's
//! `/accounts/api/v1/accounts/me`): thin HTTP adapters over [`crate::catalog::flox`], so the
//! real `flox` CLI can use `pubdeck serve` as its catalog (`FLOX_CATALOG_URL`).
//!
//! A token is optional on the catalog routes (without one the caller sees no org, as Flox
//! answers an anonymous search); one that is given must be valid. Errors have Flox's shape,
//! `{"detail": "…"}`. What is not about an org the caller may see goes to the upstream
//! (`pubdeck serve --upstream URL`) without the caller's token, or gets Flox's not-found.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use super::auth::{AuthFailure, caller_of};
use crate::catalog::embedded::TokenGrant;
use crate::catalog::flox::api::{
    CheckBuildRequest, ErrorResponse, PackageBuild, PackageGroups, StoreInfoRequest,
};
use crate::catalog::flox::credentials::StoreCredentials;
use crate::catalog::flox::{
    Answer, FloxCatalog, FloxError, PageParams, SearchParams, Upstream, UpstreamError, ingest,
};
use crate::catalog::{AuthProblem, CatalogError, EmbeddedCatalog, RegisterStatus, Scope};
use crate::store::OpenOptions;

/// What the Flox routes need besides the database.
#[derive(Debug, Clone, Default)]
pub struct FloxOptions {
    /// Where requests that are not about pubdeck's orgs go.
    pub upstream: Option<Upstream>,
    /// How the service opens an org's store to check a Flox-published closure.
    pub store_open: OpenOptions,
    /// S3 credentials handed to Flox with an org's store (`--store-credentials FILE`).
    pub store_credentials: StoreCredentials,
}

/// The user name of a caller without a token: not a valid user name, so it owns nothing
/// and is on no allowlist.
const ANONYMOUS: &str = "-anonymous-";

/// The Flox routes, to be merged at the root of the service.
pub fn routes() -> Router<AppState> {
    let catalog = Router::new()
        .route("/search", get(search))
        .route("/packages/{attr_path}", get(packages))
        .route("/resolve", post(resolve))
        .route("/store", post(store_info))
        .route("/catalogs/{org}/packages", post(create_package))
        .route(
            "/catalogs/{org}/packages/{package}/publish/info",
            post(publish_info),
        )
        .route(
            "/catalogs/{org}/packages/{package}/check-build",
            post(check_build),
        )
        .route(
            "/catalogs/{org}/packages/{package}/builds",
            post(register_build).put(register_build),
        )
        .fallback(forward);
    Router::new()
        .nest("/api/v1/catalog", catalog)
        .route("/api/v1/accounts/me", get(me))
        .route("/accounts/api/v1/accounts/me", get(me))
}

/// Flox's error shape.
fn detail(status: StatusCode, message: impl Into<String>) -> Response {
    let mut resp = (
        status,
        axum::Json(ErrorResponse {
            detail: message.into(),
        }),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(super::RETRY_AFTER_SECS),
        );
    }
    resp
}

fn failure(e: FloxError) -> Response {
    let status = match &e {
        FloxError::Catalog(c) => match c {
            CatalogError::NotFound { .. } | CatalogError::NoCatalogFile(_) => StatusCode::NOT_FOUND,
            CatalogError::Forbidden { .. } => StatusCode::FORBIDDEN,
            CatalogError::Conflict(_) => StatusCode::CONFLICT,
            CatalogError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            CatalogError::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            CatalogError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CatalogError::Unreachable { .. } => StatusCode::BAD_GATEWAY,
            CatalogError::Internal(m) => {
                tracing::error!(error = %m, "flox route failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        FloxError::Upstream(UpstreamError::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
        FloxError::Upstream(_) => StatusCode::BAD_GATEWAY,
        FloxError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        FloxError::NotFound(_) => StatusCode::NOT_FOUND,
    };
    detail(status, e.to_string())
}

/// A request refused before it reached the catalog, answered in Flox's shape.
enum Reject {
    Detail(StatusCode, String),
    Flox(FloxError),
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Detail(status, message) => detail(status, message),
            Reject::Flox(e) => failure(e),
        }
    }
}

/// The caller's view: the token's user and scope, or the anonymous reader.
async fn view(state: &AppState, headers: &HeaderMap) -> Result<EmbeddedCatalog, Reject> {
    match caller_of(state, headers).await {
        Ok(Some(c)) => Ok(state
            .backend
            .as_user_at_state(&c.user, c.state_version)
            .with_token(c.token)),
        Ok(None) => Ok(state.backend.as_user(ANONYMOUS).with_token(TokenGrant {
            id: String::new(),
            scope: Scope::Read,
            expires_at: None,
        })),
        Err(AuthFailure::Problem(p)) => {
            Err(Reject::Detail(StatusCode::UNAUTHORIZED, problem_text(&p)))
        }
        Err(AuthFailure::Catalog(e)) => Err(Reject::Flox(e.into())),
    }
}

fn problem_text(p: &AuthProblem) -> String {
    CatalogError::Unauthorized(p.clone()).to_string()
}

fn flox<'a>(state: &'a AppState, catalog: &'a EmbeddedCatalog) -> FloxCatalog<'a> {
    FloxCatalog {
        catalog,
        upstream: state.flox.upstream.as_ref(),
        credentials: &state.flox.store_credentials,
    }
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn forwarded(f: crate::catalog::flox::upstream::Forwarded) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, f.body).into_response();
    let ct = f
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
        .unwrap_or(HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    resp
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| {
        Reject::Detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request body is not the expected JSON: {e}"),
        )
    })
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r.into_response(),
        }
    };
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Response {
    let cat = try_resp!(view(&state, &headers).await);
    match flox(&state, &cat).search(&p).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => failure(e),
    }
}

async fn packages(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(attr_path): Path<String>,
    OriginalUri(uri): OriginalUri,
    Query(p): Query<PageParams>,
) -> Response {
    let cat = try_resp!(view(&state, &headers).await);
    let requested = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    match flox(&state, &cat).packages(&attr_path, &p, requested).await {
        Ok(Answer::Ours(r)) => json(StatusCode::OK, &r),
        Ok(Answer::Forwarded(f)) => forwarded(f),
        Err(e) => failure(e),
    }
}

async fn resolve(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let cat = try_resp!(view(&state, &headers).await);
    let groups: PackageGroups = try_resp!(parse_json(&body));
    match flox(&state, &cat).resolve(&groups).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => failure(e),
    }
}

async fn store_info(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let cat = try_resp!(view(&state, &headers).await);
    let req: StoreInfoRequest = try_resp!(parse_json(&body));
    match flox(&state, &cat).store_info(&req).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => failure(e),
    }
}

/// Query of `POST …/catalogs/{org}/packages`.
#[derive(Debug, serde::Deserialize)]
struct NameQuery {
    name: Option<String>,
}

async fn not_ours(
    state: &AppState,
    req_method: &Method,
    uri: &axum::http::Uri,
    body: Bytes,
    headers: &HeaderMap,
) -> Response {
    match &state.flox.upstream {
        Some(up) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_string();
            let body = (!body.is_empty()).then_some((body, ct));
            let pq = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            match up.forward(req_method.as_str(), pq, body).await {
                Ok(f) => forwarded(f),
                Err(e) => failure(e.into()),
            }
        }
        None => detail(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// Where a request about catalog `org` goes.
enum Routed {
    /// An org the caller may see: answer from this view.
    Ours(EmbeddedCatalog),
    /// Already answered: refused, or by the upstream (or not found) for an org the caller
    /// may not see.
    Answered(Response),
}

async fn route_org(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &axum::http::Uri,
    org: &str,
    body: &Bytes,
) -> Routed {
    let cat = match view(state, headers).await {
        Ok(c) => c,
        Err(r) => return Routed::Answered(r.into_response()),
    };
    // An org the caller may not see is not about pubdeck's orgs: a hidden catalog and a
    // missing one alike go upstream (or get a not-found).
    match flox(state, &cat).visible_org(org).await {
        Ok(Some(_)) => Routed::Ours(cat),
        Ok(None) => Routed::Answered(not_ours(state, method, uri, body.clone(), headers).await),
        Err(e) => Routed::Answered(failure(e)),
    }
}

macro_rules! org_view {
    ($state:expr, $headers:expr, $method:expr, $uri:expr, $org:expr, $body:expr) => {
        match route_org(&$state, &$headers, &$method, &$uri, &$org, &$body).await {
            Routed::Ours(cat) => cat,
            Routed::Answered(r) => return r,
        }
    };
}

async fn create_package(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path(org): Path<String>,
    Query(q): Query<NameQuery>,
    body: Bytes,
) -> Response {
    let cat = org_view!(state, headers, method, uri, org, body);
    let Some(name) = q.name.filter(|n| !n.is_empty()) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the query parameter name is required",
        );
    };
    match flox(&state, &cat).create_package(&org, &name).await {
        Ok(p) => json(StatusCode::CREATED, &p),
        Err(e) => failure(e),
    }
}

async fn publish_info(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path((org, package)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let cat = org_view!(state, headers, method, uri, org, body);
    match flox(&state, &cat).publish_info(&org, &package).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => failure(e),
    }
}

async fn check_build(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path((org, package)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let cat = org_view!(state, headers, method, uri, org, body);
    let req: CheckBuildRequest = try_resp!(parse_json(&body));
    match flox(&state, &cat).check_build(&org, &package, &req).await {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => failure(e),
    }
}

async fn register_build(
    State(state): State<AppState>,
    headers: HeaderMap,
    method: Method,
    OriginalUri(uri): OriginalUri,
    Path((org, package)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let cat = org_view!(state, headers, method, uri, org, body);
    let build: PackageBuild = try_resp!(parse_json(&body));
    match ingest::register(&cat, &org, &package, &build, &state.flox.store_open).await {
        Ok(outcome) => {
            let status = match outcome.status {
                RegisterStatus::Created => StatusCode::CREATED,
                RegisterStatus::AlreadyPublished => StatusCode::OK,
            };
            json(status, &serde_json::json!({}))
        }
        Err(e) => failure(e),
    }
}

/// `GET /api/v1/accounts/me`: whose the token is (401 `{"detail":"Unauthorized"}` without a
/// valid one, as Flox's accounts service answers).
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match caller_of(&state, &headers).await {
        Ok(Some(c)) => {
            let cat = state
                .backend
                .as_user_at_state(&c.user, c.state_version)
                .with_token(c.token);
            match flox(&state, &cat).me().await {
                Ok(r) => json(StatusCode::OK, &r),
                Err(e) => failure(e),
            }
        }
        Ok(None) | Err(AuthFailure::Problem(_)) => detail(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Err(AuthFailure::Catalog(e)) => failure(e.into()),
    }
}

/// Any other `/api/v1/catalog/…` request: to the upstream, or Flox's 404.
async fn forward(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, super::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return detail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            );
        }
    };
    // A token that is given must be valid, whatever the route.
    if let Err(r) = view(&state, &parts.headers).await {
        return r.into_response();
    }
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(parts.uri.clone(), |o| o.0.clone());
    not_ours(&state, &parts.method, &uri, body, &parts.headers).await
}
