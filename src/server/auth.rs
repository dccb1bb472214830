//! Bearer-token authentication: the token's SHA-256 is looked up, then compared in constant
//! time. The token and the Authorization header are never logged.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::catalog::db::hash_token;
use crate::catalog::embedded::TokenGrant;
use crate::catalog::{AuthProblem, CatalogError};
use crate::time::{now_secs, rfc3339};

/// The authenticated user of a request, the token's grant, and the catalog state version
/// read with the token (so the request's view needs no second query to know whether its
/// caches are current).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub state_version: i64,
    pub token: TokenGrant,
}

/// `last_used_at` is written at most this often per token, so reads stay reads.
const LAST_USED_RESOLUTION: i64 = 60;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn refuse(problem: AuthProblem) -> Response {
    ApiError::from(CatalogError::Unauthorized(problem)).into_response()
}

/// Why a request's token was not accepted.
#[derive(Debug)]
pub enum AuthFailure {
    /// Unknown, expired or revoked (each said so).
    Problem(AuthProblem),
    /// The database could not tell.
    Catalog(CatalogError),
}

/// The caller of a request with a bearer token; `Ok(None)` when it has none.
pub async fn caller_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, AuthFailure> {
    let Some(token) = bearer(headers) else {
        return Ok(None);
    };
    let hash = hash_token(token);
    let row = match state.backend.authenticate(&hash).await {
        Ok(Some(row)) if bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) => row,
        Ok(_) => {
            tracing::info!("rejected an unknown token");
            return Err(AuthFailure::Problem(AuthProblem::Rejected));
        }
        Err(e) => return Err(AuthFailure::Catalog(e)),
    };
    let now = now_secs();
    if row.revoked_at != 0 {
        tracing::info!(token = %row.info.id, "rejected a revoked token");
        return Err(AuthFailure::Problem(AuthProblem::Revoked(rfc3339(
            row.revoked_at,
        ))));
    }
    if row.expires_at != 0 && row.expires_at <= now {
        tracing::info!(token = %row.info.id, "rejected an expired token");
        return Err(AuthFailure::Problem(AuthProblem::Expired(rfc3339(
            row.expires_at,
        ))));
    }
    if now - row.last_used_at >= LAST_USED_RESOLUTION
        && let Err(e) = state.backend.touch_token(&hash, &row.info.id, now).await
    {
        tracing::warn!(error = %e, "could not record the token's last use");
    }
    tracing::Span::current().record("user", row.info.user.as_str());
    Ok(Some(Caller {
        user: row.info.user.clone(),
        state_version: row.state_version,
        token: TokenGrant {
            id: row.info.id,
            scope: row.info.scope,
            expires_at: row.info.expires_at,
        },
    }))
}

/// Middleware: resolves the token to a user (401 otherwise: unknown, expired or revoked,
/// each said so) and stores [`Caller`].
pub async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match caller_of(&state, req.headers()).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(None) => refuse(AuthProblem::Rejected),
        Err(AuthFailure::Problem(p)) => refuse(p),
        Err(AuthFailure::Catalog(e)) => ApiError::from(e).into_response(),
    }
}
