//! Typed catalog errors: one clear sentence each, never containing a token.

/// What can go wrong talking to a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The catalog, package, build or user does not exist or is not visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// The caller can see the catalog but may not do this (or the signature was refused).
    #[error("{0}")]
    Forbidden(String),
    /// The request clashes with what is already there (an immutable version, a taken name).
    #[error("{0}")]
    Conflict(String),
    /// No token, a token the catalog does not know, or one that expired or was revoked.
    #[error("{}", .0.message())]
    Unauthorized(AuthProblem),
    /// The service could not be reached.
    #[error("cannot reach the catalog at {url} ({reason})")]
    Unreachable {
        /// The catalog URL (without credentials).
        url: String,
        /// Short cause.
        reason: String,
    },
    /// The request is malformed (bad name, bad JSON, too large, …).
    #[error("{0}")]
    BadRequest(String),
    /// The catalog failed on its side (database error, unexpected answer).
    #[error("the catalog failed: {0}")]
    Internal(String),
}

/// Why the catalog refused a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// No token, or one the catalog does not know.
    Rejected,
    /// The token expired at this time (RFC 3339).
    Expired(String),
    /// The token was revoked at this time (RFC 3339).
    Revoked(String),
}

impl AuthProblem {
    fn message(&self) -> String {
        match self {
            AuthProblem::Rejected => {
                "the catalog rejected your token; set PUBDECK_TOKEN or run `pubdeck login`".into()
            }
            AuthProblem::Expired(at) => format!("your catalog token expired at {at}"),
            AuthProblem::Revoked(at) => format!("your catalog token was revoked at {at}"),
        }
    }
}

impl crate::event::Hinted for CatalogError {
    /// A one-line fix, where one exists.
    fn hint(&self) -> Option<String> {
        match self {
            CatalogError::Unauthorized(AuthProblem::Rejected) => Some(
                "ask the catalog admin for a token (`pubdeck user add NAME`), then export PUBDECK_TOKEN=…"
                    .into(),
            ),
            CatalogError::Unauthorized(_) => Some(
                "ask the service's admin for a new token (`pubdeck user token create YOU --scope read|publish|admin`), then `pubdeck login URL` with it"
                    .into(),
            ),
            CatalogError::Forbidden(m) if m.contains("token's scope") => Some(
                "use a token with a wider scope (`pubdeck user token create YOU --scope publish` or `admin`)"
                    .into(),
            ),
            CatalogError::Unreachable { .. } => Some(
                "start it with `pubdeck serve`, or unset PUBDECK_CATALOG to use the local catalog"
                    .into(),
            ),
            CatalogError::Forbidden(m) if m.contains("does not trust") => {
                Some("add the public key with `pubdeck catalog add-key ORG KEYFILE.pub`".into())
            }
            CatalogError::Forbidden(m) if m.contains("only the owner") => None,
            CatalogError::NotFound(m) if m.starts_with("no user named") => {
                Some("create the user with `pubdeck user add NAME`".into())
            }
            CatalogError::NotFound(m) if m.starts_with("catalog") => Some(
                "check the name with `pubdeck search`, or ask its owner to `pubdeck catalog allow` you"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl CatalogError {
    /// Stable machine-readable code (used in the HTTP error body).
    pub fn code(&self) -> &'static str {
        match self {
            CatalogError::NotFound(_) => "not_found",
            CatalogError::Forbidden(_) => "forbidden",
            CatalogError::Conflict(_) => "conflict",
            CatalogError::Unauthorized(AuthProblem::Rejected) => "unauthorized",
            CatalogError::Unauthorized(AuthProblem::Expired(_)) => "token_expired",
            CatalogError::Unauthorized(AuthProblem::Revoked(_)) => "token_revoked",
            CatalogError::Unreachable { .. } => "unreachable",
            CatalogError::BadRequest(_) => "bad_request",
            CatalogError::Internal(_) => "internal",
        }
    }

    pub(crate) fn db(err: sqlx::Error) -> Self {
        CatalogError::Internal(format!("database error: {err}"))
    }
}
