//! Builds and packages: registration, the latest version not yanked, listings.

use super::*;

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

/// The message for a version published again with other contents.
pub fn conflict_message(b: &NewBuild, existing_hash: &str) -> String {
    format!(
        "{}/{} {} for {} is already published with a different NAR hash ({existing_hash}); versions are immutable, publish a new version",
        b.org, b.package, b.version, b.system
    )
}

/// Inserts one build row (unless its (catalog, package, version, system) is taken: then
/// `false`) and moves the package's latest version on when this one is newer.
pub(super) async fn insert_one(
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
    let rev_count = i64::try_from(b.rev_count)
        .map_err(|_| CatalogError::BadRequest("rev_count is too large".into()))?;
    let res = sqlx::query(
        "INSERT INTO builds (catalog, package, version, system, description, store_path, \
         narinfo_url, nar_hash, nar_size, refs, signature, key_name, source_url, revision, \
         branch, build_name, installed, published_by, published_at, ca, closure, yanked_at, \
         addressing, rev_count, rev_date, derivation, seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, \
         $23, $24, $25, $26, \
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
    .bind(b.addressing.as_str())
    .bind(rev_count)
    .bind(&b.rev_date)
    .bind(&b.derivation)
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
    let latest = crate::catalog::validate::latest_not_yanked(candidates);
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

/// Catalogs read at once by [`Db::package_summaries_many`] (bind parameters per statement).
pub(super) const SUMMARIES_CHUNK: usize = 500;

/// [`Db::package_summaries_many`] of one chunk.
pub(super) async fn summaries_chunk(
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

pub(super) const BUILD_COLUMNS: &str = "SELECT catalog, package, version, system, description, store_path, \
     narinfo_url, nar_hash, nar_size, refs, signature, key_name, source_url, revision, branch, \
     build_name, installed, published_by, published_at, ca, closure, yanked_at, seq, \
     addressing, rev_count, rev_date, derivation FROM builds";

pub(super) fn build_from_row(row: &AnyRow) -> CatalogResult<BuildRecord> {
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
        addressing: Addressing::parse(&get_str(row, "addressing")?),
        rev_count: u64::try_from(get_i64(row, "rev_count")?).unwrap_or(0),
        rev_date: get_str(row, "rev_date")?,
        derivation: get_str(row, "derivation")?,
    })
}

impl Db {
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
        let latest = crate::catalog::validate::latest_not_yanked(
            versions.iter().map(|(v, y)| (v.as_str(), *y)),
        );
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
                let closure: Vec<crate::catalog::ClosurePath> =
                    serde_json::from_str(&get_str(r, "closure")?).map_err(internal)?;
                out.extend(closure.into_iter().map(|c| c.store_path));
            }
        }
        Ok(out.into_iter().collect())
    }

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

    /// Every build whose output is `store_path`, in any catalog (the caller filters by what
    /// may be seen).
    pub async fn builds_at_path(&self, store_path: &str) -> CatalogResult<Vec<BuildRecord>> {
        let rows = sqlx::query(&format!(
            "{BUILD_COLUMNS} WHERE store_path = $1 ORDER BY catalog, package, seq"
        ))
        .bind(store_path)
        .fetch_all(&self.pool)
        .await
        .map_err(map_db)?;
        rows.iter().map(build_from_row).collect()
    }

    /// Records that `name` was created in `catalog` before its first build (Flox's create
    /// package); creating it again changes nothing.
    pub async fn declare_package(&self, catalog: &str, name: &str, by: &str) -> CatalogResult<()> {
        sqlx::query(
            "INSERT INTO declared_packages (catalog, name, declared_by, declared_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (catalog, name) DO NOTHING",
        )
        .bind(catalog)
        .bind(name)
        .bind(by)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(map_db)?;
        Ok(())
    }

    /// Whether `name` exists in `catalog`: it has builds or was created.
    pub async fn package_exists(&self, catalog: &str, name: &str) -> CatalogResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM packages WHERE catalog = $1 AND name = $2 \
             UNION ALL SELECT 1 AS one FROM declared_packages WHERE catalog = $1 AND name = $2",
        )
        .bind(catalog)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_db)?;
        Ok(row.is_some())
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
