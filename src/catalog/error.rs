//! Typed catalog errors: one clear sentence each, never containing a token.

/// What can go wrong talking to a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The catalog, package, build or user does not exist or is not visible to the caller.
    #[error("{message}")]
    NotFound { what: Missing, message: String },
    /// The caller can see the catalog but may not do this (or the signature was refused).
    #[error("{message}")]
    Forbidden { why: Refusal, message: String },
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

/// What was not found (each owns its hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    User,
    Catalog,
    Package,
    Version,
    Key,
    Other,
}

/// Why the caller may not do what it asked (each owns its hint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token's scope is narrower than the action needs.
    Scope {
        have: super::Scope,
        need: super::Scope,
    },
    /// The build is signed with a key the catalog does not trust.
    UntrustedKey,
    /// The signature does not match the build.
    BadSignature,
    /// Only the catalog's owner may do this.
    OwnerOnly,
    Other,
}

impl Missing {
    /// Its name in the service's error body (`"reason"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::User => "user",
            Missing::Catalog => "catalog",
            Missing::Package => "package",
            Missing::Version => "version",
            Missing::Key => "key",
            Missing::Other => "other",
        }
    }

    /// The reason named `s` (anything unknown is `Other`).
    pub fn parse(s: &str) -> Missing {
        [
            Missing::User,
            Missing::Catalog,
            Missing::Package,
            Missing::Version,
            Missing::Key,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .unwrap_or(Missing::Other)
    }
}

impl Refusal {
    /// Its name in the service's error body (`"reason"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Scope { .. } => "scope",
            Refusal::UntrustedKey => "untrusted_key",
            Refusal::BadSignature => "bad_signature",
            Refusal::OwnerOnly => "owner_only",
            Refusal::Other => "other",
        }
    }

    /// The reason named `s`, with the scopes of a scope refusal (anything unknown or
    /// incomplete is `Other`).
    pub fn parse(s: &str, have: Option<&str>, need: Option<&str>) -> Refusal {
        match s {
            "scope" => match (
                have.and_then(super::Scope::parse),
                need.and_then(super::Scope::parse),
            ) {
                (Some(have), Some(need)) => Refusal::Scope { have, need },
                _ => Refusal::Other,
            },
            "untrusted_key" => Refusal::UntrustedKey,
            "bad_signature" => Refusal::BadSignature,
            "owner_only" => Refusal::OwnerOnly,
            _ => Refusal::Other,
        }
    }
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
            CatalogError::Forbidden {
                why: Refusal::Scope { need, .. },
                ..
            } => Some(format!(
                "use a token with the {need} scope or a wider one (`pubdeck user token create YOU --scope {need}`)"
            )),
            CatalogError::Unreachable { .. } => Some(
                "start it with `pubdeck serve`, or unset PUBDECK_CATALOG to use the local catalog"
                    .into(),
            ),
            CatalogError::Forbidden {
                why: Refusal::UntrustedKey,
                ..
            } => Some("add the public key with `pubdeck catalog add-key ORG KEYFILE.pub`".into()),
            CatalogError::NotFound {
                what: Missing::User,
                ..
            } => Some("create the user with `pubdeck user add NAME`".into()),
            CatalogError::NoCatalogFile(_) => Some(
                "create it with `pubdeck catalog create ORG --store URL`, or check the path in --catalog / PUBDECK_CATALOG / the config file"
                    .into(),
            ),
            CatalogError::NotFound {
                what: Missing::Catalog,
                ..
            } => Some(
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
            CatalogError::NotFound { .. } | CatalogError::NoCatalogFile(_) => "not_found",
            CatalogError::Forbidden { .. } => "forbidden",
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

    /// `what` was not found: `message` says which.
    pub fn not_found(what: Missing, message: impl Into<String>) -> Self {
        CatalogError::NotFound {
            what,
            message: message.into(),
        }
    }

    /// Refused for `why`: `message` says what.
    pub fn forbidden(why: Refusal, message: impl Into<String>) -> Self {
        CatalogError::Forbidden {
            why,
            message: message.into(),
        }
    }

    /// The typed reason's name and, for a scope refusal, the scopes: what the service's
    /// error body carries beside `code` so a client rebuilds the same error.
    pub fn reason(&self) -> Option<(&'static str, Option<super::Scope>, Option<super::Scope>)> {
        match self {
            CatalogError::NotFound { what, .. } => Some((what.as_str(), None, None)),
            CatalogError::Forbidden {
                why: Refusal::Scope { have, need },
                ..
            } => Some(("scope", Some(*have), Some(*need))),
            CatalogError::Forbidden { why, .. } => Some((why.as_str(), None, None)),
            _ => None,
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
