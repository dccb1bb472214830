//! JSON error responses and extractors whose rejections are JSON errors too.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::catalog::{CatalogError, Scope};

/// An HTTP error with a stable code and one-sentence message:
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// A 403's or 404's typed reason, so a client rebuilds the same `CatalogError`.
    reason: Option<(&'static str, Option<Scope>, Option<Scope>)>,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// 404 for an unknown route.
    pub fn no_route() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such API endpoint")
    }

    /// 503 (with `Retry-After`) while the service cannot reach its database.
    pub fn database_unavailable() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the catalog service cannot reach its database; try again in a few seconds",
        )
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        let status = match &err {
            CatalogError::NotFound { .. } | CatalogError::NoCatalogFile(_) => StatusCode::NOT_FOUND,
            CatalogError::Forbidden { .. } => StatusCode::FORBIDDEN,
            CatalogError::Conflict(_) => StatusCode::CONFLICT,
            CatalogError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            CatalogError::BadRequest(_) => StatusCode::BAD_REQUEST,
            CatalogError::Unavailable(_) => {
                tracing::warn!(error = %err, "request failed: the database is unavailable");
                return ApiError::database_unavailable();
            }
            CatalogError::Unreachable { .. } | CatalogError::Internal(_) => {
                tracing::error!(error = %err, "request failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                );
            }
        };
        ApiError {
            reason: err.reason(),
            ..ApiError::new(status, err.code(), err.to_string())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some((reason, have, need)) = self.reason {
            error["reason"] = reason.into();
            if let (Some(have), Some(need)) = (have, need) {
                error["have"] = have.as_str().into();
                error["need"] = need.as_str().into();
            }
        }
        let body = serde_json::json!({ "error": error });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = header::HeaderValue::from_str("Bearer realm=\"pubdeck\"")
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(super::RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

/// Rewrites the bodies of errors the framework produces itself (408 from the timeout layer,
/// 413 from the body limit, anything else without a JSON body) into the API's JSON shape.
pub async fn json_bodies(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return res;
    }
    let (code, message) = match status {
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too_large", "the request body is too large"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method",
        ),
        s if s.is_server_error() => ("internal", "internal error; see the service log"),
        _ => ("bad_request", "the request is not valid"),
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

/// `Json<T>` whose rejections are [`ApiError`]s (400 bad JSON, 413 too large, 415 not JSON).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "the request body is not valid JSON: {}",
                inner_text(&e.body_text())
            ),
        ),
        JsonRejection::JsonDataError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "the request body has the wrong fields: {}",
                inner_text(&e.body_text())
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "send the request body as JSON with Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::new(other.status(), "bad_request", other.body_text()),
    }
}

/// The 413 answer.
pub fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "the request body is larger than {} bytes",
            super::BODY_LIMIT
        ),
    )
}

/// axum's texts read "Failed to …: <serde message>"; keep the serde part.
fn inner_text(text: &str) -> String {
    text.split_once(": ")
        .map_or(text, |(_, rest)| rest)
        .to_string()
}

/// `Query<T>` with [`ApiError`] rejections.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rej) => Err(query_rejection(rej)),
        }
    }
}

fn query_rejection(rej: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("invalid query parameters: {}", inner_text(&rej.body_text())),
    )
}

/// `Path<T>` with [`ApiError`] rejections.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rej) => Err(path_rejection(rej)),
        }
    }
}

fn path_rejection(rej: PathRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("invalid path: {}", inner_text(&rej.body_text())),
    )
}
