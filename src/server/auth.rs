//! Bearer-token authentication: the token's SHA-256 is looked up, then compared in constant
//! time. The token and the Authorization header are never logged.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::catalog::CatalogError;
use crate::catalog::db::hash_token;

/// The authenticated user of a request, and the catalog state version read with the token
/// (so the request's view needs no second query to know whether its caches are current).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub state_version: i64,
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware: resolves the token to a user (401 otherwise) and stores [`Caller`].
pub async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::from(CatalogError::Unauthorized).into_response();
    };
    let hash = hash_token(token);
    match state.backend.db().user_and_state_by_token_hash(&hash).await {
        Ok(Some((user, stored, state_version)))
            if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) =>
        {
            tracing::Span::current().record("user", user.as_str());
            req.extensions_mut().insert(Caller {
                user,
                state_version,
            });
            next.run(req).await
        }
        Ok(_) => {
            tracing::info!("rejected an unknown token");
            ApiError::from(CatalogError::Unauthorized).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
