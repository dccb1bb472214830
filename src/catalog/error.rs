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
    /// A local catalog file that does not exist (only `catalog create`, `demo` and the first
    /// use of the default location create one).
    #[error("there is no catalog file at {}", .0.display())]
    NoCatalogFile(std::path::PathBuf),
    /// The catalog's database cannot be reached, or gave no connection within
    /// [`super::db::ACQUIRE_TIMEOUT`] (an outage or an overload): the same request may succeed
    /// a little later. The service answers 503 with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
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
            CatalogError::NoCatalogFile(_) => Some(
                "create it with `pubdeck catalog create ORG --store URL`, or check the path in --catalog / PUBDECK_CATALOG / the config file"
                    .into(),
            ),
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
            CatalogError::NotFound(_) | CatalogError::NoCatalogFile(_) => "not_found",
            CatalogError::Forbidden(_) => "forbidden",
            CatalogError::Conflict(_) => "conflict",
            CatalogError::Unauthorized(AuthProblem::Rejected) => "unauthorized",
            CatalogError::Unauthorized(AuthProblem::Expired(_)) => "token_expired",
            CatalogError::Unauthorized(AuthProblem::Revoked(_)) => "token_revoked",
            CatalogError::Unreachable { .. } => "unreachable",
            CatalogError::BadRequest(_) => "bad_request",
            CatalogError::Internal(_) => "internal",
            CatalogError::Unavailable(_) => "unavailable",
        }
    }

    pub(crate) fn db(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            return CatalogError::Unavailable(format!(
                "the catalog database is unavailable: {err}"
            ));
        }
        CatalogError::Internal(format!("database error: {err}"))
    }
}

/// Whether a database error says the database is out of reach (rather than that a statement
/// failed): no connection within the pool's bound, a broken or refused connection, or
/// PostgreSQL's connection-exception class (08…), shutdown and start-up (57P01–57P03) and
/// "too many connections" (53300).
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_a_failed_statement_is_not() {
        for err in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        ] {
            let e = CatalogError::db(err);
            assert!(matches!(e, CatalogError::Unavailable(_)), "{e:?}");
            assert_eq!(e.code(), "unavailable");
        }
        let e = CatalogError::db(sqlx::Error::RowNotFound);
        assert!(matches!(e, CatalogError::Internal(_)), "{e:?}");
    }
}
