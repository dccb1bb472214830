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
    AuditEntry, BuildRecord, CatalogError, CatalogResult, NewBuild, PackageSummary, Scope,
    TokenInfo,
};
use crate::time::{now_secs, rfc3339};

/// The schema migrations, embedded in the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog",
        include_str!("../../assets/migrations/0001_catalog.sql"),
    ),
    (
        2,
        "content address",
        include_str!("../../assets/migrations/0002_content_address.sql"),
    ),
    (
        3,
        "state version",
        include_str!("../../assets/migrations/0003_state_version.sql"),
    ),
    (
        4,
        "lifecycle",
        include_str!("../../assets/migrations/0004_lifecycle.sql"),
    ),
    (
        5,
        "no yanked latest",
        include_str!("../../assets/migrations/0005_no_yanked_latest.sql"),
    ),
    (
        6,
        "build sequence",
        include_str!("../../assets/migrations/0006_build_sequence.sql"),
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

/// A catalog row.
#[derive(Debug, Clone)]
pub struct CatalogRow {
    /// Catalog name.
    pub name: String,
    /// Owner user name.
    pub owner: String,
    /// Store URL.
    pub store_url: String,
    /// Bumped on every change of its package list.
    pub generation: i64,
    /// Seconds since the epoch.
    pub created_at: i64,
}

/// A package row.
#[derive(Debug, Clone)]
pub struct PackageRow {
    /// The highest version not yanked; empty when every version is yanked.
    pub latest_version: String,
    /// Description of the latest version.
    pub description: String,
}

/// Outcome of inserting a build.
#[derive(Debug)]
pub enum Inserted {
    /// The row is new.
    Created(BuildRecord),
    /// A row for (catalog, package, version, system) already exists: here it is.
    Existing(BuildRecord),
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

/// A new random token: `pdk_` + 32 random bytes, base64url without padding.
pub fn generate_token() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "pdk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A token id: `tok-` + the creation time in microseconds (13 hex digits, so ids sort by
/// creation) + 4 random hex digits. Shown in listings; not a secret.
pub fn generate_token_id() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("tok-{micros:013x}{:04x}", rand::random::<u16>())
}

/// A token's row, as the service's authentication reads it.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub info: TokenInfo,
    pub token_hash: String,
    /// Seconds since the epoch; 0: never.
    pub expires_at: i64,
    /// Seconds since the epoch; 0: never.
    pub last_used_at: i64,
    /// Seconds since the epoch; 0: not revoked.
    pub revoked_at: i64,
    /// The database's state version, read in the same query.
    pub state_version: i64,
}

/// A change to record in the audit log (in the change's own transaction).
#[derive(Debug, Clone)]
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// Appends `entry` to `catalog`'s audit log. Call it after the change's state-version bump:
/// that row lock serialises writers, so `seq` (max + 1) cannot be taken twice.
async fn audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    catalog: &str,
    entry: &Audit<'_>,
) -> CatalogResult<()> {
    sqlx::query(
        "INSERT INTO audit_log (catalog, seq, at, actor, action, subject, detail) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 FROM audit_log WHERE catalog = $1",
    )
    .bind(catalog)
    .bind(now_secs())
    .bind(entry.actor)
    .bind(entry.action)
    .bind(&entry.subject)
    .bind(entry.detail.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_db)?;
    Ok(())
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

/// The message for a version published again with other contents.
pub fn conflict_message(b: &NewBuild, existing_hash: &str) -> String {
    format!(
        "{}/{} {} for {} is already published with a different NAR hash ({existing_hash}); versions are immutable, publish a new version",
        b.org, b.package, b.version, b.system
    )
}

/// Inserts one build row (unless its (catalog, package, version, system) is taken: then
/// `false`) and moves the package's latest version on when this one is newer.
async fn insert_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    b: &NewBuild,
    key_name: &str,
    published_by: &str,
    now: i64,
) -> CatalogResult<bool> {
    let refs = serde_json::to_string(&b.references).map_err(internal)?;
    let installed = serde_json::to_string(&b.installed_packages).map_err(internal)?;
    let closure = serde_json::to_string(&b.closure).map_err(internal)?;
    let size = i64::try_from(b.nar_size)
        .map_err(|_| CatalogError::BadRequest("nar_size is too large".into()))?;
    let res = sqlx::query(
        "INSERT INTO builds (catalog, package, version, system, description, store_path, \
         narinfo_url, nar_hash, nar_size, refs, signature, key_name, source_url, revision, \
         branch, build_name, installed, published_by, published_at, ca, closure, yanked_at, seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         (SELECT COALESCE(MAX(seq), 0) + 1 FROM builds WHERE catalog = $1 AND package = $2)) \
         ON CONFLICT (catalog, package, version, system) DO NOTHING",
    )
    .bind(&b.org)
    .bind(&b.package)
    .bind(&b.version)
    .bind(&b.system)
    .bind(&b.description)
    .bind(&b.store_path)
    .bind(&b.narinfo_url)
    .bind(&b.nar_hash)
    .bind(size)
    .bind(refs)
    .bind(&b.signature)
    .bind(key_name)
    .bind(&b.source_url)
    .bind(&b.revision)
    .bind(&b.branch)
    .bind(&b.build_name)
    .bind(installed)
    .bind(published_by)
    .bind(now)
    .bind(&b.ca)
    .bind(closure)
    .bind(0i64)
    .execute(&mut **tx)
    .await
    .map_err(map_db)?;
    if res.rows_affected() == 0 {
        return Ok(false);
    }
    // (Read only after the insert: SQLite must take the write lock first.) A build for
    // another system of a yanked version is yanked with it.
    let yanked_at = sqlx::query(
        "SELECT MAX(yanked_at) AS y FROM builds WHERE catalog = $1 AND package = $2 AND version = $3",
    )
    .bind(&b.org)
    .bind(&b.package)
    .bind(&b.version)
    .fetch_one(&mut **tx)
    .await
    .map_err(map_db)?
    .try_get::<Option<i64>, _>("y")
    .map_err(map_db)?
    .unwrap_or(0);
    if yanked_at != 0 {
        sqlx::query(
            "UPDATE builds SET yanked_at = $5 WHERE catalog = $1 AND package = $2 AND version = $3 AND system = $4",
        )
        .bind(&b.org)
        .bind(&b.package)
        .bind(&b.version)
        .bind(&b.system)
        .bind(yanked_at)
        .execute(&mut **tx)
        .await
        .map_err(map_db)?;
    }
    let current = sqlx::query(
        "SELECT latest_version, all_yanked FROM packages WHERE catalog = $1 AND name = $2",
    )
    .bind(&b.org)
    .bind(&b.package)
    .fetch_optional(&mut **tx)
    .await
    .map_err(map_db)?;
    // The latest version is the highest one not yanked: the current latest (unless every
    // version is yanked) or this one.
    let current_latest = match &current {
        Some(row) if get_i64(row, "all_yanked")? == 0 => Some(get_str(row, "latest_version")?),
        _ => None,
    };
    let candidates = current_latest
        .as_deref()
        .map(|v| (v, false))
        .into_iter()
        .chain([(b.version.as_str(), yanked_at != 0)]);
    let latest = super::validate::latest_not_yanked(candidates);
    // This build's row moves the package on when its version is the latest (a build for
    // another system of the latest version brings its description), or when the package is
    // new (then with every version yanked, no latest).
    if latest == Some(b.version.as_str()) || current.is_none() {
        sqlx::query(
            "INSERT INTO packages (catalog, name, latest_version, description, updated_at, all_yanked) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (catalog, name) DO UPDATE \
             SET latest_version = $3, description = $4, updated_at = $5, all_yanked = $6",
        )
        .bind(&b.org)
        .bind(&b.package)
        .bind(latest.unwrap_or(""))
        .bind(&b.description)
        .bind(now)
        .bind(i64::from(latest.is_none()))
        .execute(&mut **tx)
        .await
        .map_err(map_db)?;
    }
    Ok(true)
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

    /// Creates a user (without a token); `Conflict` if the name is taken.
    pub async fn create_user(&self, name: &str) -> CatalogResult<()> {
        let res =
            sqlx::query("INSERT INTO users (name, token_hash, created_at) VALUES ($1, NULL, $2)")
                .bind(name)
                .bind(now_secs())
                .execute(&self.pool)
                .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(CatalogError::Conflict(format!(
                "a user named {name} already exists"
            ))),
            Err(e) => Err(map_db(e)),
        }
    }

    /// Creates a user and returns its first token (admin scope, no expiry; only the token's
    /// hash is stored).
    pub async fn add_user(&self, name: &str) -> CatalogResult<String> {
        super::validate_user_name(name)?;
        self.create_user(name).await?;
        let (_, token) = self.create_token(name, Scope::Admin, None).await?;
        Ok(token)
    }

    /// Creates the user if missing (embedded catalogs).
    pub async fn ensure_user(&self, name: &str) -> CatalogResult<()> {
        sqlx::query(
            "INSERT INTO users (name, token_hash, created_at) VALUES ($1, NULL, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(map_db)?;
        Ok(())
    }

    /// Whether a user exists.
    pub async fn user_exists(&self, name: &str) -> CatalogResult<bool> {
        let row = sqlx::query("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_db)?;
        Ok(row.is_some())
    }

    // ---- tokens ---------------------------------------------------------------------------

    /// Creates a token for `user` (who must exist) with `scope`, expiring at `expires_at`
    /// (seconds since the epoch; `None`: never). Returns its record and the token, which is
    /// not stored (only its SHA-256 is).
    pub async fn create_token(
        &self,
        user: &str,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> CatalogResult<(TokenInfo, String)> {
        super::validate_user_name(user)?;
        if !self.user_exists(user).await? {
            return Err(CatalogError::not_found(
                super::Missing::User,
                format!("no user named {user}"),
            ));
        }
        let token = generate_token();
        let id = generate_token_id();
        let now = now_secs();
        sqlx::query(
            "INSERT INTO tokens (id, username, token_hash, scope, created_at, expires_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
        )
        .bind(&id)
        .bind(user)
        .bind(hash_token(&token))
        .bind(scope.as_str())
        .bind(now)
        .bind(expires_at.unwrap_or(0))
        .execute(&self.pool)
        .await
        .map_err(map_db)?;
        let info = TokenInfo {
            id,
            user: user.to_string(),
            scope,
            created_at: rfc3339(now),
            expires_at: expires_at.map(rfc3339),
            last_used_at: None,
            revoked_at: None,
        };
        Ok((info, token))
    }

    /// The tokens of `user`, oldest first (never the tokens themselves).
    pub async fn tokens_of(&self, user: &str) -> CatalogResult<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT id, username, scope, created_at, expires_at, last_used_at, revoked_at \
             FROM tokens WHERE username = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes token `id`; its record (or `None` if there is no such token). The state
    /// version moves on with it: services that cache tokens by state version (every
    /// instance over this database) refuse the token from their next request on.
    pub async fn revoke_token(&self, id: &str) -> CatalogResult<Option<TokenInfo>> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let changed =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0")
                .bind(now_secs())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_db)?
                .rows_affected();
        if changed > 0 {
            bump_state(&mut tx).await?;
        }
        tx.commit().await.map_err(map_db)?;
        let row = sqlx::query(
            "SELECT id, username, scope, created_at, expires_at, last_used_at, revoked_at \
             FROM tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The token with this hash, with the state version read in the same query.
    pub async fn token_by_hash(&self, hash: &str) -> CatalogResult<Option<TokenRow>> {
        if let Some(pg) = &self.pg {
            return token_by_hash_pg(pg, hash).await;
        }
        let row = sqlx::query(
            "SELECT t.id, t.username, t.token_hash, t.scope, t.created_at, t.expires_at, \
             t.last_used_at, t.revoked_at, s.version FROM tokens t CROSS JOIN catalog_state s \
             WHERE t.token_hash = $1 AND s.id = 1",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.map(|r| {
            Ok(TokenRow {
                info: token_from_row(&r)?,
                token_hash: get_str(&r, "token_hash")?,
                expires_at: get_i64(&r, "expires_at")?,
                last_used_at: get_i64(&r, "last_used_at")?,
                revoked_at: get_i64(&r, "revoked_at")?,
                state_version: get_i64(&r, "version")?,
            })
        })
        .transpose()
    }

    /// Records that token `id` was used at `now`.
    pub async fn touch_token(&self, id: &str, now: i64) -> CatalogResult<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_db)?;
        Ok(())
    }

    // ---- catalogs -------------------------------------------------------------------------

    /// One catalog row.
    pub async fn catalog_row(&self, name: &str) -> CatalogResult<Option<CatalogRow>> {
        let row = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at FROM catalogs WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref().map(catalog_from_row).transpose()
    }

    /// One catalog row and whether `user` is on its allowlist, in one query: a missing and a
    /// hidden catalog cost the same (no timing difference between them).
    pub async fn catalog_row_for(
        &self,
        name: &str,
        user: &str,
    ) -> CatalogResult<Option<(CatalogRow, bool)>> {
        let row = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at, \
             (SELECT COUNT(*) FROM allowlist WHERE catalog = $1 AND username = $2) AS allowed \
             FROM catalogs WHERE name = $1",
        )
        .bind(name)
        .bind(user)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref()
            .map(|r| Ok((catalog_from_row(r)?, get_i64(r, "allowed")? > 0)))
            .transpose()
    }

    /// Catalogs `user` owns or is allowlisted on, by name.
    pub async fn visible_catalogs(&self, user: &str) -> CatalogResult<Vec<CatalogRow>> {
        let rows = sqlx::query(
            "SELECT name, owner, store_url, generation, created_at FROM catalogs \
             WHERE owner = $1 OR name IN (SELECT catalog FROM allowlist WHERE username = $1) \
             ORDER BY name",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(catalog_from_row).collect()
    }

    /// Whether `user` is on the allowlist of `catalog`.
    pub async fn is_allowed(&self, catalog: &str, user: &str) -> CatalogResult<bool> {
        let row =
            sqlx::query("SELECT username FROM allowlist WHERE catalog = $1 AND username = $2")
                .bind(catalog)
                .bind(user)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_db)?;
        Ok(row.is_some())
    }

    /// Creates a catalog with its keys; `Conflict` if the name is taken.
    pub async fn insert_catalog(
        &self,
        name: &str,
        owner: &str,
        store_url: &str,
        keys: &[(String, String)],
    ) -> CatalogResult<()> {
        let now = now_secs();
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query(
            "INSERT INTO catalogs (name, owner, store_url, generation, created_at) VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(name)
        .bind(owner)
        .bind(store_url)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(CatalogError::Conflict(format!(
                    "a catalog named {name} already exists; pick another name"
                )));
            }
            Err(e) => return Err(map_db(e)),
        }
        for (key_name, key) in keys {
            insert_key(&mut *tx, name, key_name, key, now).await?;
        }
        bump_state(&mut tx).await?;
        let entry = Audit {
            actor: owner,
            action: "create",
            subject: name.to_string(),
            detail: serde_json::json!({"store_url": store_url, "keys": keys.iter().map(|(n, _)| n).collect::<Vec<_>>()}),
        };
        audit(&mut tx, name, &entry).await?;
        tx.commit().await.map_err(map_db)
    }

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

    /// Sets the store URL (a change of the catalog: its generation moves on).
    pub async fn set_store(
        &self,
        catalog: &str,
        store_url: &str,
        actor: &str,
    ) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        sqlx::query("UPDATE catalogs SET store_url = $1 WHERE name = $2")
            .bind(store_url)
            .bind(catalog)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        bump_generation(&mut tx, catalog).await?;
        let entry = Audit {
            actor,
            action: "set-store",
            subject: catalog.to_string(),
            detail: serde_json::json!({"store_url": store_url}),
        };
        audit(&mut tx, catalog, &entry).await?;
        tx.commit().await.map_err(map_db)
    }

    /// Adds a trusted key (no-op if present; else the catalog's generation moves on).
    pub async fn add_key(
        &self,
        catalog: &str,
        key_name: &str,
        key: &str,
        actor: &str,
    ) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        if insert_key(&mut *tx, catalog, key_name, key, now_secs()).await? {
            bump_generation(&mut tx, catalog).await?;
            let entry = Audit {
                actor,
                action: "add-key",
                subject: key_name.to_string(),
                detail: serde_json::json!({"public_key": key}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)
    }

    /// Removes every trusted key named `key_name`; how many were removed.
    pub async fn remove_key(
        &self,
        catalog: &str,
        key_name: &str,
        actor: &str,
    ) -> CatalogResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query("DELETE FROM catalog_keys WHERE catalog = $1 AND key_name = $2")
            .bind(catalog)
            .bind(key_name)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        let removed = res.rows_affected();
        if removed > 0 {
            bump_generation(&mut tx, catalog).await?;
            let entry = Audit {
                actor,
                action: "remove-key",
                subject: key_name.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)?;
        Ok(removed)
    }

    /// Records a change made outside the database (a GC of the store, a re-sign).
    pub async fn record(&self, catalog: &str, entry: &Audit<'_>) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        bump_state(&mut tx).await?;
        audit(&mut tx, catalog, entry).await?;
        tx.commit().await.map_err(map_db)
    }

    /// The newest `limit` entries of `catalog`'s audit log, newest first.
    pub async fn audit_log(&self, catalog: &str, limit: i64) -> CatalogResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail FROM audit_log \
             WHERE catalog = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(catalog)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: get_i64(r, "seq")?,
                    at: rfc3339(get_i64(r, "at")?),
                    actor: get_str(r, "actor")?,
                    action: get_str(r, "action")?,
                    subject: get_str(r, "subject")?,
                    detail: serde_json::from_str(&get_str(r, "detail")?).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Flags (or, with `yanked == false`, unflags) every build of `package` `version`, and
    /// moves the package's latest version to the highest version not yanked, in one
    /// transaction. How many builds changed; `None` when there is no such version.
    pub async fn set_yanked(
        &self,
        catalog: &str,
        package: &str,
        version: &str,
        yanked: bool,
        actor: &str,
    ) -> CatalogResult<Option<u64>> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let now = now_secs();
        // Write first (SQLite must take the write lock before reading anything).
        let res = sqlx::query(if yanked {
            "UPDATE builds SET yanked_at = $4 WHERE catalog = $1 AND package = $2 AND version = $3 AND yanked_at = 0"
        } else {
            "UPDATE builds SET yanked_at = 0 WHERE catalog = $1 AND package = $2 AND version = $3 AND yanked_at <> $4"
        })
        .bind(catalog)
        .bind(package)
        .bind(version)
        .bind(if yanked { now } else { 0 })
        .execute(&mut *tx)
        .await
        .map_err(map_db)?;
        let changed = res.rows_affected();
        if changed == 0 {
            let exists = sqlx::query(
                "SELECT COUNT(*) AS n FROM builds WHERE catalog = $1 AND package = $2 AND version = $3",
            )
            .bind(catalog)
            .bind(package)
            .bind(version)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_db)?;
            let n = get_i64(&exists, "n")?;
            tx.commit().await.map_err(map_db)?;
            return Ok((n > 0).then_some(0));
        }
        // The newest version not yanked becomes the latest; with none, there is no latest
        // (the description stays) and the package leaves listings.
        let rows = sqlx::query(
            "SELECT version, description, yanked_at FROM builds WHERE catalog = $1 AND package = $2",
        )
        .bind(catalog)
        .bind(package)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_db)?;
        let versions = rows
            .iter()
            .map(|r| Ok((get_str(r, "version")?, get_i64(r, "yanked_at")? != 0)))
            .collect::<CatalogResult<Vec<_>>>()?;
        let latest =
            super::validate::latest_not_yanked(versions.iter().map(|(v, y)| (v.as_str(), *y)));
        match latest {
            Some(latest) => {
                let i = versions
                    .iter()
                    .position(|(v, _)| v == latest)
                    .expect("the latest version is one of the rows");
                sqlx::query(
                    "UPDATE packages SET latest_version = $3, description = $4, all_yanked = 0 \
                     WHERE catalog = $1 AND name = $2",
                )
                .bind(catalog)
                .bind(package)
                .bind(latest)
                .bind(get_str(&rows[i], "description")?)
                .execute(&mut *tx)
                .await
                .map_err(map_db)?;
            }
            None => {
                sqlx::query(
                    "UPDATE packages SET latest_version = '', all_yanked = 1 \
                     WHERE catalog = $1 AND name = $2",
                )
                .bind(catalog)
                .bind(package)
                .execute(&mut *tx)
                .await
                .map_err(map_db)?;
            }
        }
        bump_generation(&mut tx, catalog).await?;
        let entry = Audit {
            actor,
            action: if yanked { "yank" } else { "unyank" },
            subject: format!("{catalog}/{package}@{version}"),
            detail: serde_json::json!({"builds": changed}),
        };
        audit(&mut tx, catalog, &entry).await?;
        tx.commit().await.map_err(map_db)?;
        Ok(Some(changed))
    }

    /// Every store path the registered builds of `catalogs` need (their closures, yanked
    /// builds included), sorted and unique.
    pub async fn live_paths(&self, catalogs: &[String]) -> CatalogResult<Vec<String>> {
        let mut out = std::collections::BTreeSet::new();
        for catalog in catalogs {
            let rows = sqlx::query("SELECT store_path, closure FROM builds WHERE catalog = $1")
                .bind(catalog)
                .fetch_all(&self.pool)
                .await
                .map_err(map_db)?;
            for r in &rows {
                out.insert(get_str(r, "store_path")?);
                let closure: Vec<super::ClosurePath> =
                    serde_json::from_str(&get_str(r, "closure")?).map_err(internal)?;
                out.extend(closure.into_iter().map(|c| c.store_path));
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Every catalog's name and store URL, as stored.
    pub async fn store_urls(&self) -> CatalogResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT name, store_url FROM catalogs ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map_db)?;
        rows.iter()
            .map(|r| Ok((get_str(r, "name")?, get_str(r, "store_url")?)))
            .collect()
    }

    /// Trusted keys of a catalog, oldest first.
    pub async fn keys(&self, catalog: &str) -> CatalogResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT public_key FROM catalog_keys WHERE catalog = $1 ORDER BY added_at, public_key",
        )
        .bind(catalog)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(|r| get_str(r, "public_key")).collect()
    }

    /// Adds `user` to the allowlist (no-op if present).
    pub async fn allow(&self, catalog: &str, user: &str, actor: &str) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query(
            "INSERT INTO allowlist (catalog, username, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (catalog, username) DO NOTHING",
        )
        .bind(catalog)
        .bind(user)
        .bind(now_secs())
        .execute(&mut *tx)
        .await
        .map_err(map_db)?;
        if res.rows_affected() > 0 {
            bump_state(&mut tx).await?;
            let entry = Audit {
                actor,
                action: "allow",
                subject: user.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)
    }

    /// Removes `user` from the allowlist; whether it was there.
    pub async fn revoke(&self, catalog: &str, user: &str, actor: &str) -> CatalogResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let res = sqlx::query("DELETE FROM allowlist WHERE catalog = $1 AND username = $2")
            .bind(catalog)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(map_db)?;
        let removed = res.rows_affected() > 0;
        if removed {
            bump_state(&mut tx).await?;
            let entry = Audit {
                actor,
                action: "revoke",
                subject: user.to_string(),
                detail: serde_json::json!({}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)?;
        Ok(removed)
    }

    /// The allowlist, sorted.
    pub async fn allowlist(&self, catalog: &str) -> CatalogResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT username FROM allowlist WHERE catalog = $1 ORDER BY username")
                .bind(catalog)
                .fetch_all(&self.pool)
                .await
                .map_err(map_db)?;
        rows.iter().map(|r| get_str(r, "username")).collect()
    }

    // ---- packages and builds --------------------------------------------------------------

    /// Inserts a build, and updates its package row and the catalog generation, in one
    /// transaction. The insert comes first so that a concurrent duplicate finds the primary
    /// key taken (and SQLite takes the write lock before reading anything).
    pub async fn insert_build(
        &self,
        b: &NewBuild,
        key_name: &str,
        published_by: &str,
    ) -> CatalogResult<Inserted> {
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let created = insert_one(&mut tx, b, key_name, published_by, now_secs()).await?;
        if !created {
            drop(tx);
            let existing = self
                .build(&b.org, &b.package, &b.version, &b.system)
                .await?
                .ok_or_else(|| CatalogError::Internal("conflicting build vanished".into()))?;
            return Ok(Inserted::Existing(existing));
        }
        crate::failpoint::pause("register-transaction").await;
        bump_generation(&mut tx, &b.org).await?;
        let entry = Audit {
            actor: published_by,
            action: "publish",
            subject: format!("{}/{}@{}", b.org, b.package, b.version),
            detail: serde_json::json!({"system": b.system, "store_path": b.store_path, "key": key_name}),
        };
        audit(&mut tx, &b.org, &entry).await?;
        tx.commit().await.map_err(map_db)?;
        let record = self
            .build(&b.org, &b.package, &b.version, &b.system)
            .await?
            .ok_or_else(|| CatalogError::Internal("registered build vanished".into()))?;
        Ok(Inserted::Created(record))
    }

    /// Inserts many builds of one catalog in one transaction: all of them or none. A build
    /// already there with the same NAR hash is skipped; one with another NAR hash refuses
    /// the whole batch (`Conflict`). Returns how many were new and how many were there.
    pub async fn insert_builds(
        &self,
        catalog: &str,
        builds: &[(&NewBuild, String)],
        published_by: &str,
    ) -> CatalogResult<(usize, usize)> {
        let now = now_secs();
        let mut tx = self.pool.begin().await.map_err(map_db)?;
        let (mut created, mut existing) = (0, 0);
        for (b, key_name) in builds {
            if b.org != catalog {
                return Err(CatalogError::BadRequest(format!(
                    "a build of catalog {:?} in a batch for {catalog:?}",
                    b.org
                )));
            }
            if insert_one(&mut tx, b, key_name, published_by, now).await? {
                created += 1;
                continue;
            }
            let row = sqlx::query(
                "SELECT nar_hash FROM builds \
                 WHERE catalog = $1 AND package = $2 AND version = $3 AND system = $4",
            )
            .bind(&b.org)
            .bind(&b.package)
            .bind(&b.version)
            .bind(&b.system)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_db)?;
            let hash = get_str(&row, "nar_hash")?;
            if hash != b.nar_hash {
                return Err(CatalogError::Conflict(conflict_message(b, &hash)));
            }
            existing += 1;
        }
        if created > 0 {
            bump_generation(&mut tx, catalog).await?;
            let entry = Audit {
                actor: published_by,
                action: "import",
                subject: catalog.to_string(),
                detail: serde_json::json!({"created": created, "already_published": existing}),
            };
            audit(&mut tx, catalog, &entry).await?;
        }
        tx.commit().await.map_err(map_db)?;
        Ok((created, existing))
    }

    /// One build.
    pub async fn build(
        &self,
        catalog: &str,
        package: &str,
        version: &str,
        system: &str,
    ) -> CatalogResult<Option<BuildRecord>> {
        let row = sqlx::query(&format!(
            "{BUILD_COLUMNS} WHERE catalog = $1 AND package = $2 AND version = $3 AND system = $4"
        ))
        .bind(catalog)
        .bind(package)
        .bind(version)
        .bind(system)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.as_ref().map(build_from_row).transpose()
    }

    /// The most recent build of a revision whose package or build name is `name`.
    pub async fn build_by_revision(
        &self,
        catalog: &str,
        name: &str,
        revision: &str,
        system: Option<&str>,
    ) -> CatalogResult<Option<BuildRecord>> {
        let rows = sqlx::query(&format!(
            "{BUILD_COLUMNS} WHERE catalog = $1 AND revision = $2 AND (package = $3 OR build_name = $3) \
             ORDER BY published_at DESC, seq DESC"
        ))
        .bind(catalog)
        .bind(revision)
        .bind(name)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        for row in &rows {
            let b = build_from_row(row)?;
            if system.is_none_or(|s| s == b.system) {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }

    /// All builds of a package.
    pub async fn builds_of(&self, catalog: &str, package: &str) -> CatalogResult<Vec<BuildRecord>> {
        let rows = sqlx::query(&format!(
            "{BUILD_COLUMNS} WHERE catalog = $1 AND package = $2"
        ))
        .bind(catalog)
        .bind(package)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(build_from_row).collect()
    }

    /// One package row.
    pub async fn package(&self, catalog: &str, name: &str) -> CatalogResult<Option<PackageRow>> {
        let row = sqlx::query(
            "SELECT latest_version, description FROM packages WHERE catalog = $1 AND name = $2",
        )
        .bind(catalog)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        row.map(|r| {
            Ok(PackageRow {
                latest_version: get_str(&r, "latest_version")?,
                description: get_str(&r, "description")?,
            })
        })
        .transpose()
    }
}

/// Catalogs read at once by [`Db::package_summaries_many`] (bind parameters per statement).
const SUMMARIES_CHUNK: usize = 500;

impl Db {
    /// The packages of each of `catalogs` (those that exist), by name, each with the
    /// catalog's generation, read in one transaction per chunk of catalogs: generations first,
    /// so a list is never older than the generation it is filed under. One row per catalog
    /// (its packages as one JSON array), not one per package: a cold load of 100,000 packages
    /// is a few statements. Chunks are read on connections of their own and parsed on tasks
    /// of their own, one per core when there are catalogs enough.
    pub async fn package_summaries_many(
        &self,
        catalogs: &[&str],
    ) -> CatalogResult<Vec<(String, i64, Vec<PackageSummary>)>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let size = catalogs.len().div_ceil(cores).clamp(1, SUMMARIES_CHUNK);
        let tasks: Vec<_> = catalogs
            .chunks(size)
            .map(|chunk| {
                let (pool, backend) = (self.pool.clone(), self.backend);
                let chunk: Vec<String> = chunk.iter().map(|c| c.to_string()).collect();
                tokio::spawn(async move { summaries_chunk(&pool, backend, &chunk).await })
            })
            .collect();
        let mut out = Vec::with_capacity(catalogs.len());
        for task in tasks {
            let lists = task
                .await
                .map_err(|e| CatalogError::Internal(format!("a package list read failed: {e}")))?;
            out.extend(lists?);
        }
        Ok(out)
    }
}

/// [`Db::package_summaries_many`] of one chunk.
async fn summaries_chunk(
    pool: &AnyPool,
    backend: DbKind,
    chunk: &[String],
) -> CatalogResult<Vec<(String, i64, Vec<PackageSummary>)>> {
    let params = (1..=chunk.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = pool.begin().await.map_err(map_db)?;
    // Both statements take the chunk's names as their parameters.
    let names = |sql| {
        chunk
            .iter()
            .fold(sqlx::query(sql), |q, c| q.bind(c.as_str()))
    };
    let sql = format!("SELECT name, generation FROM catalogs WHERE name IN ({params})");
    let generations = names(&sql).fetch_all(&mut *tx).await.map_err(map_db)?;
    let sql = match backend {
        DbKind::Sqlite => format!(
            "SELECT catalog, json_group_array(json_array(name, latest_version, description)) AS list \
             FROM packages WHERE all_yanked = 0 AND catalog IN ({params}) GROUP BY catalog"
        ),
        DbKind::Postgres => format!(
            "SELECT catalog, json_agg(json_build_array(name, latest_version, description))::text AS list \
             FROM packages WHERE all_yanked = 0 AND catalog IN ({params}) GROUP BY catalog"
        ),
    };
    let lists = names(&sql).fetch_all(&mut *tx).await.map_err(map_db)?;
    tx.commit().await.map_err(map_db)?;
    let mut by_name: HashMap<String, String> = lists
        .iter()
        .map(|r| Ok((get_str(r, "catalog")?, get_str(r, "list")?)))
        .collect::<CatalogResult<_>>()?;
    let mut out = Vec::with_capacity(generations.len());
    for row in &generations {
        let catalog = get_str(row, "name")?;
        let generation = get_i64(row, "generation")?;
        let list = match by_name.remove(&catalog) {
            Some(json) => {
                let mut rows: Vec<(String, String, String)> =
                    serde_json::from_str(&json).map_err(|e| {
                        CatalogError::Internal(format!(
                            "the package list of {catalog} did not parse: {e}"
                        ))
                    })?;
                // Byte order of names, whatever the database's collation.
                rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                rows.into_iter()
                    .map(|(package, latest_version, description)| PackageSummary {
                        name: format!("{catalog}/{package}"),
                        org: catalog.clone(),
                        package,
                        latest_version,
                        description,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        out.push((catalog, generation, list));
    }
    Ok(out)
}

const BUILD_COLUMNS: &str = "SELECT catalog, package, version, system, description, store_path, \
     narinfo_url, nar_hash, nar_size, refs, signature, key_name, source_url, revision, branch, \
     build_name, installed, published_by, published_at, ca, closure, yanked_at, seq FROM builds";

async fn insert_key<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    ex: E,
    catalog: &str,
    key_name: &str,
    key: &str,
    now: i64,
) -> CatalogResult<bool> {
    let res = sqlx::query(
        "INSERT INTO catalog_keys (catalog, public_key, key_name, added_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (catalog, public_key) DO NOTHING",
    )
    .bind(catalog)
    .bind(key)
    .bind(key_name)
    .bind(now)
    .execute(ex)
    .await
    .map_err(map_db)?;
    Ok(res.rows_affected() > 0)
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

fn catalog_from_row(row: &AnyRow) -> CatalogResult<CatalogRow> {
    Ok(CatalogRow {
        name: get_str(row, "name")?,
        owner: get_str(row, "owner")?,
        store_url: get_str(row, "store_url")?,
        generation: get_i64(row, "generation")?,
        created_at: get_i64(row, "created_at")?,
    })
}

fn build_from_row(row: &AnyRow) -> CatalogResult<BuildRecord> {
    let list = |col: &str| -> CatalogResult<Vec<String>> {
        serde_json::from_str(&get_str(row, col)?).map_err(internal)
    };
    Ok(BuildRecord {
        org: get_str(row, "catalog")?,
        package: get_str(row, "package")?,
        version: get_str(row, "version")?,
        description: get_str(row, "description")?,
        system: get_str(row, "system")?,
        store_path: get_str(row, "store_path")?,
        narinfo_url: get_str(row, "narinfo_url")?,
        nar_hash: get_str(row, "nar_hash")?,
        nar_size: u64::try_from(get_i64(row, "nar_size")?).unwrap_or(0),
        references: list("refs")?,
        signature: get_str(row, "signature")?,
        key_name: get_str(row, "key_name")?,
        source_url: get_str(row, "source_url")?,
        revision: get_str(row, "revision")?,
        branch: get_str(row, "branch")?,
        build_name: get_str(row, "build_name")?,
        installed_packages: list("installed")?,
        published_by: get_str(row, "published_by")?,
        published_at: rfc3339(get_i64(row, "published_at")?),
        ca: get_str(row, "ca")?,
        closure: serde_json::from_str(&get_str(row, "closure")?).map_err(internal)?,
        yanked_at: match get_i64(row, "yanked_at")? {
            0 => None,
            t => Some(rfc3339(t)),
        },
        seq: get_i64(row, "seq")?,
    })
}

/// [`Db::token_by_hash`] through the native PostgreSQL driver.
async fn token_by_hash_pg(pg: &sqlx::PgPool, hash: &str) -> CatalogResult<Option<TokenRow>> {
    type Row = (String, String, String, String, i64, i64, i64, i64, i64);
    let row: Option<Row> = sqlx::query_as(
        "SELECT t.id, t.username, t.token_hash, t.scope, t.created_at, t.expires_at, \
         t.last_used_at, t.revoked_at, s.version FROM tokens t CROSS JOIN catalog_state s \
         WHERE t.token_hash = $1 AND s.id = 1",
    )
    .bind(hash)
    .fetch_optional(pg)
    .await
    .map_err(map_db)?;
    let Some((id, user, token_hash, scope, created, expires, used, revoked, version)) = row else {
        return Ok(None);
    };
    let when = |t: i64| (t != 0).then(|| rfc3339(t));
    Ok(Some(TokenRow {
        info: TokenInfo {
            id,
            user,
            scope: Scope::parse(&scope).ok_or_else(|| {
                CatalogError::Internal(format!("token with unknown scope {scope:?}"))
            })?,
            created_at: rfc3339(created),
            expires_at: when(expires),
            last_used_at: when(used),
            revoked_at: when(revoked),
        },
        token_hash,
        expires_at: expires,
        last_used_at: used,
        revoked_at: revoked,
        state_version: version,
    }))
}

fn token_from_row(row: &AnyRow) -> CatalogResult<TokenInfo> {
    let when = |col: &str| -> CatalogResult<Option<String>> {
        Ok(match get_i64(row, col)? {
            0 => None,
            t => Some(rfc3339(t)),
        })
    };
    let scope = get_str(row, "scope")?;
    Ok(TokenInfo {
        id: get_str(row, "id")?,
        user: get_str(row, "username")?,
        scope: Scope::parse(&scope)
            .ok_or_else(|| CatalogError::Internal(format!("token with unknown scope {scope:?}")))?,
        created_at: rfc3339(get_i64(row, "created_at")?),
        expires_at: when("expires_at")?,
        last_used_at: when("last_used_at")?,
        revoked_at: when("revoked_at")?,
    })
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
