//! `/v1` request handlers: thin adapters from HTTP to [`crate::catalog::Catalog`] methods of
//! the embedded catalog acting as the authenticated user.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::catalog::{
    AddKeyRequest, Catalog, CatalogError, CheckBuild, CheckBuildQuery, CreateCatalogRequest,
    DEFAULT_SEARCH_LIMIT, EmbeddedCatalog, ListChangesRequest, Listing, NewBuild, RecordRequest,
    RegisterBatchRequest, RegisterStatus, SearchQuery, SetStoreRequest,
};

type ApiResult = Result<Response, ApiError>;

fn view(state: &AppState, caller: &Caller) -> EmbeddedCatalog {
    state
        .backend
        .as_user_at_state(&caller.user, caller.state_version)
        .with_token(caller.token.clone())
}

fn ok<T: serde::Serialize>(value: T) -> ApiResult {
    Ok(Json(value).into_response())
}

/// `GET /v1/health`: liveness. Never touches the database, so an outage does not make a
/// supervisor restart a process that would come back to the same outage.
pub async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /v1/ready`: readiness. 200 when the database answers within
/// [`super::READY_TIMEOUT`], else 503 with `Retry-After` (a load balancer stops routing here).
pub async fn ready(State(state): State<AppState>) -> Response {
    let checked = tokio::time::timeout(super::READY_TIMEOUT, state.backend.db().ping()).await;
    match checked {
        Ok(Ok(())) => Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            ApiError::database_unavailable().into_response()
        }
        Err(_) => {
            tracing::warn!(
                "not ready: the database did not answer within {:?}",
                super::READY_TIMEOUT
            );
            ApiError::database_unavailable().into_response()
        }
    }
}

/// `GET /v1/whoami`: the user, the token's id, scope and expiry.
pub async fn whoami(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    ok(view(&state, &caller).identity().await?)
}

/// `PUT /v1/catalogs/{org}/packages/{package}/versions/{version}/yank` (yank) and `DELETE`
/// (undo).
pub async fn yank(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    method: axum::http::Method,
    ApiPath((org, package, version)): ApiPath<(String, String, String)>,
) -> ApiResult {
    let yanked = method != axum::http::Method::DELETE;
    ok(view(&state, &caller)
        .yank(&org, &package, &version, yanked)
        .await?)
}

/// `DELETE /v1/catalogs/{org}/keys/{name}`
pub async fn remove_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((org, name)): ApiPath<(String, String)>,
) -> ApiResult {
    ok(view(&state, &caller).remove_key(&org, &name).await?)
}

/// Query of `GET /v1/catalogs/{org}/log`.
#[derive(Debug, serde::Deserialize)]
pub struct LogQuery {
    limit: Option<usize>,
}

/// `GET /v1/catalogs/{org}/log?limit=`: newest first.
pub async fn audit_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(100);
    ok(json!({"entries": view(&state, &caller).audit_log(&org, limit).await?}))
}

/// `POST /v1/catalogs/{org}/log`: records a GC or a re-sign done to the store.
pub async fn record(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<RecordRequest>,
) -> ApiResult {
    view(&state, &caller).record(&org, &body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/catalogs/{org}/live-paths`
pub async fn live_paths(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult {
    ok(view(&state, &caller).live_paths(&org).await?)
}

/// `POST /v1/catalogs`
pub async fn create_catalog(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateCatalogRequest>,
) -> ApiResult {
    let info = view(&state, &caller)
        .create_catalog(&body.name, &body.store_url, &body.keys)
        .await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// `GET /v1/catalogs`
pub async fn list_catalogs(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    ok(json!({"catalogs": view(&state, &caller).catalogs().await?}))
}

/// `GET /v1/catalogs/{org}`
pub async fn get_catalog(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult {
    ok(view(&state, &caller).catalog(&org).await?)
}

/// `PUT /v1/catalogs/{org}/store`
pub async fn set_store(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<SetStoreRequest>,
) -> ApiResult {
    ok(view(&state, &caller)
        .set_store(&org, &body.store_url)
        .await?)
}

/// `POST /v1/catalogs/{org}/keys`
pub async fn add_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiJson(body): ApiJson<AddKeyRequest>,
) -> ApiResult {
    ok(view(&state, &caller).add_key(&org, &body.key).await?)
}

/// `GET /v1/catalogs/{org}/allowlist`
pub async fn allowlist(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
) -> ApiResult {
    ok(json!({"users": view(&state, &caller).allowlist(&org).await?}))
}

/// `PUT /v1/catalogs/{org}/allowlist/{user}`
pub async fn allow(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((org, user)): ApiPath<(String, String)>,
) -> ApiResult {
    ok(json!({"users": view(&state, &caller).allow(&org, &user).await?}))
}

/// `DELETE /v1/catalogs/{org}/allowlist/{user}`
pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((org, user)): ApiPath<(String, String)>,
) -> ApiResult {
    ok(json!({"users": view(&state, &caller).revoke(&org, &user).await?}))
}

/// `POST /v1/catalogs/{org}/builds` — 201 created, 200 already published, 409 conflict.
pub async fn register_build(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiJson(build): ApiJson<NewBuild>,
) -> ApiResult {
    if build.org != org {
        return Err(CatalogError::BadRequest(format!(
            "the body's org {:?} does not match the URL's catalog {org:?}",
            build.org
        ))
        .into());
    }
    let outcome = view(&state, &caller).register_build(&build).await?;
    let status = match outcome.status {
        RegisterStatus::Created => StatusCode::CREATED,
        RegisterStatus::AlreadyPublished => StatusCode::OK,
    };
    Ok((status, Json(outcome)).into_response())
}

/// `POST /v1/catalogs/{org}/builds/batch` — 200 with how many were new and how many there.
pub async fn register_builds(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiJson(batch): ApiJson<RegisterBatchRequest>,
) -> ApiResult {
    ok(view(&state, &caller)
        .register_builds(&org, &batch.builds)
        .await?)
}

/// `GET /v1/catalogs/{org}/check-build?name=&revision=[&system=]`
pub async fn check_build(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(org): ApiPath<String>,
    ApiQuery(q): ApiQuery<CheckBuildQuery>,
) -> ApiResult {
    let query = CheckBuild {
        org,
        name: q.name,
        revision: q.revision,
        system: q.system,
    };
    ok(json!({"build": view(&state, &caller).check_build(&query).await?}))
}

/// `GET /v1/catalogs/{org}/packages/{package}`
pub async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((org, package)): ApiPath<(String, String)>,
) -> ApiResult {
    ok(view(&state, &caller).show(&org, &package).await?)
}

/// `GET /v1/packages` with `ETag` / `If-None-Match`.
pub async fn list_packages(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult {
    let inm = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let listing = view(&state, &caller).list_packages(inm).await?;
    let (status, etag, body) = match listing {
        Listing::NotModified { etag } => (StatusCode::NOT_MODIFIED, etag, None),
        Listing::Packages { etag, packages } => {
            (StatusCode::OK, etag, Some(json!({"packages": packages})))
        }
    };
    let mut resp = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(resp)
}

/// `POST /v1/packages/changes`: the package lists of the catalogs the caller's copy lacks.
pub async fn list_changes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ListChangesRequest>,
) -> ApiResult {
    ok(view(&state, &caller).list_changes(&body.known).await?)
}

/// `GET /v1/search?q=&limit=`
pub async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult {
    let limit = q.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
    ok(view(&state, &caller).search_answer(&q.q, limit).await?)
}

/// On a connection kept for probes (every other slot is in use): anything but health and
/// readiness.
pub async fn at_capacity() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the service is serving as many connections as it takes; try again in a few seconds",
    )
}

/// Fallback for unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::no_route()
}

/// 405 for a known path with another method (axum adds the `Allow` header).
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
