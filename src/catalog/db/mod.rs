//! The catalog database: SQLite or PostgreSQL behind one `sqlx::AnyPool`.
//!
//! All SQL uses `$N` placeholders, which both drivers accept (sqlx's SQLite driver maps `$N`
//! to argument N), and only TEXT/BIGINT columns, so one migration serves both. No access
//! control here: that is [`super::embedded`]'s job.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};

use super::{
    Addressing, AuditEntry, BuildRecord, CatalogError, CatalogResult, NewBuild, PackageSummary,
    Scope, TokenInfo,
};
use crate::time::{now_secs, rfc3339};

mod audit;
mod builds;
mod catalogs;
mod users;

pub use audit::*;
pub use builds::*;
pub use catalogs::*;
pub use users::*;

/// The schema migrations, embedded in the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../../../assets/migrations/0001_catalog.sql"),
    ),
    (
        2,
        "content address",
        include_str!("../../../assets/migrations/0002_content_address.sql"),
    ),
    (
        3,
        "state version",
        include_str!("../../../assets/migrations/0003_state_version.sql"),
    ),
    (
        4,
        "lifecycle",
        include_str!("../../../assets/migrations/0004_lifecycle.sql"),
    ),
    (
        5,
        "no yanked latest",
        include_str!("../../../assets/migrations/0005_no_yanked_latest.sql"),
    ),
    (
        6,
        "build sequence",
        include_str!("../../../assets/migrations/0006_build_sequence.sql"),
    ),
    (
        7,
        "flox",
        include_str!("../../../assets/migrations/0007_flox.sql"),
    ),
];

/// Source of the embedded migrations for `sqlx::migrate::Migrator`.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigrations;

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>>
                + Send,
        >,
    > {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(
                        *v,
                        Cow::Borrowed(*d),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Longest a statement waits for a pooled connection before the request fails with
/// [`CatalogError::Unavailable`] (503 from the service) on PostgreSQL. Well under the
/// service's 30 s request timeout, so an outage is told apart from a slow request at once;
/// a healthy pool hands out a connection in well under a millisecond.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The same bound on SQLite, where no server can go away: a connection is only late when
/// every one is waiting for the write lock, which each gives up after `busy_timeout` (10 s).
pub const SQLITE_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `pubdeck serve` (or any other start) waits for a PostgreSQL server that refuses
/// connections (one still starting, as under docker-compose) before giving up.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Turns `--db` input into a sqlx URL: `sqlite://PATH` (created if missing),
/// `postgres://…`, or a bare path meaning SQLite.
pub fn normalize_db_url(input: &str) -> CatalogResult<(String, DbKind, Option<PathBuf>)> {
    if input.starts_with("postgres://") || input.starts_with("postgresql://") {
        return Ok((input.to_string(), DbKind::Postgres, None));
    }
    if input.contains("://") && !input.starts_with("sqlite:") {
        return Err(CatalogError::BadRequest(format!(
            "unsupported database URL {}: use sqlite://PATH or postgres://…",
            redact_url(input)
        )));
    }
    let (path, params, encoded) = match input
        .strip_prefix("sqlite://")
        .or_else(|| input.strip_prefix("sqlite:"))
    {
        Some(rest) => {
            let (p, q) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            (p.to_string(), q, p.to_string())
        }
        None => {
            let encoded: String = input
                .chars()
                .map(|c| match c {
                    '%' => "%25".to_string(),
                    '?' => "%3F".to_string(),
                    '#' => "%23".to_string(),
                    c => c.to_string(),
                })
                .collect();
            (input.to_string(), None, encoded)
        }
    };
    if path.is_empty() {
        return Err(CatalogError::BadRequest(format!(
            "database URL {input:?} names no file"
        )));
    }
    let params = match params {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok((
        format!("sqlite://{encoded}?{params}"),
        DbKind::Sqlite,
        Some(PathBuf::from(path)),
    ))
}

/// A database URL without its secrets, for messages and logs ([`crate::store::redacted_url`]);
/// a plain path (an SQLite file) as it is.
pub fn redact_url(url: &str) -> String {
    if url.contains("://") {
        crate::store::redacted_url(url)
    } else {
        crate::text::terminal(url).into_owned()
    }
}

/// A connection pool to the catalog database, migrated to the current schema.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: DbKind,
    /// On PostgreSQL, a native pool for the query every request makes (the token lookup):
    /// it skips the `Any` driver's per-row conversion.
    pg: Option<sqlx::PgPool>,
}

fn map_db(err: sqlx::Error) -> CatalogError {
    CatalogError::db(err)
}

async fn bump_generation(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    catalog: &str,
) -> CatalogResult<()> {
    sqlx::query("UPDATE catalogs SET generation = generation + 1 WHERE name = $1")
        .bind(catalog)
        .execute(&mut **tx)
        .await
        .map_err(map_db)?;
    bump_state(tx).await
}

/// Moves the state version on (see migration 0003), inside the change's transaction.
async fn bump_state(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> CatalogResult<()> {
    sqlx::query("UPDATE catalog_state SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await
        .map_err(map_db)?;
    Ok(())
}

/// The pool's first connection; a PostgreSQL server that refuses or does not answer is
/// tried again for up to [`STARTUP_WAIT`] (each try bounded by the pool's acquire timeout).
async fn wait_for_first_connection(pool: &AnyPool, backend: DbKind) -> Result<(), sqlx::Error> {
    let deadline = std::time::Instant::now() + STARTUP_WAIT;
    loop {
        match pool.acquire().await {
            Ok(_) => return Ok(()),
            Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
                if backend == DbKind::Postgres && std::time::Instant::now() < deadline =>
            {
                tracing::info!(error = %e, "waiting for the catalog database");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl Db {
    /// Connects (creating a SQLite file and its directory if needed) and runs migrations.
    pub async fn connect(input: &str) -> CatalogResult<Db> {
        sqlx::any::install_default_drivers();
        let (url, backend, path) = normalize_db_url(input)?;
        if let Some(parent) = path.as_deref().and_then(Path::parent)
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                CatalogError::Internal(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let options: AnyConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            CatalogError::BadRequest(format!("invalid database URL {}: {e}", redact_url(input)))
        })?;
        let (max, acquire) = match backend {
            DbKind::Sqlite => (8, SQLITE_ACQUIRE_TIMEOUT),
            DbKind::Postgres => (16, ACQUIRE_TIMEOUT),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(acquire)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == DbKind::Sqlite {
                        conn.execute("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        wait_for_first_connection(&pool, backend)
            .await
            .map_err(|e| match backend {
                DbKind::Postgres => CatalogError::Unreachable {
                    url: redact_url(input),
                    reason: e.to_string(),
                },
                DbKind::Sqlite => CatalogError::Internal(format!(
                    "cannot open the catalog database {}: {e}",
                    redact_url(input)
                )),
            })?;
        if backend == DbKind::Sqlite {
            // Persistent; lets readers run while one writer writes.
            if let Err(e) = pool.execute("PRAGMA journal_mode = WAL").await {
                tracing::warn!(error = %e, "could not switch SQLite to WAL mode");
            }
        }
        let migrator = Migrator::new(EmbeddedMigrations)
            .await
            .map_err(|e| CatalogError::Internal(format!("migrations: {e}")))?;
        migrator
            .run(&pool)
            .await
            .map_err(|e| CatalogError::Internal(format!("migrating the catalog database: {e}")))?;
        let pg = match backend {
            DbKind::Postgres => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(input)
                    .await
                    .map_err(|e| CatalogError::Unreachable {
                        url: redact_url(input),
                        reason: e.to_string(),
                    })?,
            ),
            DbKind::Sqlite => None,
        };
        Ok(Db { pool, backend, pg })
    }

    /// Whether the database answers now (the service's readiness): the state version, which
    /// every request reads, and on PostgreSQL a round trip on the other pool too.
    /// `Unavailable` when either gives no connection within the acquire bound.
    pub async fn ping(&self) -> CatalogResult<()> {
        // On PostgreSQL the state version is read on the native pool; the other pool too.
        let any = async {
            match self.pg {
                Some(_) => sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(map_db),
                None => Ok(()),
            }
        };
        tokio::try_join!(self.state_version(), any)?;
        Ok(())
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> DbKind {
        self.backend
    }

    /// The pool, for bulk seeding (benchmarks) and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pools (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
        if let Some(pg) = &self.pg {
            pg.close().await;
        }
    }

    // ---- users ----------------------------------------------------------------------------

    /// The state version: it moves on with every change of visibility or of a package list.
    pub async fn state_version(&self) -> CatalogResult<i64> {
        if let Some(pg) = &self.pg {
            // Every request waits on this read: the native pool, apart from the writers'.
            return sqlx::query_scalar::<_, i64>("SELECT version FROM catalog_state WHERE id = 1")
                .fetch_one(pg)
                .await
                .map_err(map_db);
        }
        let row = sqlx::query("SELECT version FROM catalog_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_db)?;
        get_i64(&row, "version")
    }
}

fn internal(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Internal(e.to_string())
}

fn get_str(row: &AnyRow, col: &str) -> CatalogResult<String> {
    row.try_get::<String, _>(col).map_err(map_db)
}

fn get_i64(row: &AnyRow, col: &str) -> CatalogResult<i64> {
    row.try_get::<i64, _>(col).map_err(map_db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let (u, b, p) = normalize_db_url("/tmp/x y/c.sqlite").unwrap();
        assert_eq!(u, "sqlite:///tmp/x y/c.sqlite?mode=rwc");
        assert_eq!(b, DbKind::Sqlite);
        assert_eq!(p.unwrap(), PathBuf::from("/tmp/x y/c.sqlite"));
        let (u, _, _) = normalize_db_url("/tmp/a?b.db").unwrap();
        assert_eq!(u, "sqlite:///tmp/a%3Fb.db?mode=rwc");
        let (u, _, _) = normalize_db_url("sqlite:///tmp/c.db?mode=ro").unwrap();
        assert_eq!(u, "sqlite:///tmp/c.db?mode=ro");
        let (_, b, _) = normalize_db_url("postgres://u:p@127.0.0.1/db").unwrap();
        assert_eq!(b, DbKind::Postgres);
        assert!(normalize_db_url("mysql://x").is_err());
        assert_eq!(
            redact_url("postgres://u:secret@127.0.0.1/db"),
            "postgres://u:***@127.0.0.1/db"
        );
    }
}
