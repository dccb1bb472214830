//! Bearer-token authentication: the token's SHA-256 is looked up, then compared in constant
//! time. The token and the Authorization header are never logged.

use axum::extract::{Request, State};
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

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn refuse(problem: AuthProblem) -> Response {
    ApiError::from(CatalogError::Unauthorized(problem)).into_response()
}

/// Middleware: resolves the token to a user (401 otherwise: unknown, expired or revoked,
/// each said so) and stores [`Caller`].
pub async fn require_user(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return refuse(AuthProblem::Rejected);
    };
    let hash = hash_token(token);
    let row = match state.backend.authenticate(&hash).await {
        Ok(Some(row)) if bool::from(row.token_hash.as_bytes().ct_eq(hash.as_bytes())) => row,
        Ok(_) => {
            tracing::info!("rejected an unknown token");
            return refuse(AuthProblem::Rejected);
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = now_secs();
    if row.revoked_at != 0 {
        tracing::info!(token = %row.info.id, "rejected a revoked token");
        return refuse(AuthProblem::Revoked(rfc3339(row.revoked_at)));
    }
    if row.expires_at != 0 && row.expires_at <= now {
        tracing::info!(token = %row.info.id, "rejected an expired token");
        return refuse(AuthProblem::Expired(rfc3339(row.expires_at)));
    }
    if now - row.last_used_at >= LAST_USED_RESOLUTION
        && let Err(e) = state.backend.touch_token(&hash, &row.info.id, now).await
    {
        tracing::warn!(error = %e, "could not record the token's last use");
    }
    tracing::Span::current().record("user", row.info.user.as_str());
    req.extensions_mut().insert(Caller {
        user: row.info.user.clone(),
        state_version: row.state_version,
        token: TokenGrant {
            id: row.info.id,
            scope: row.info.scope,
            expires_at: row.info.expires_at,
        },
    });
    next.run(req).await
}
