//! The catalog logic over a database, acting as one user: access control, validation,
//! signature checks, immutability. Used directly as the embedded (local SQLite) catalog, and by
//! the HTTP service for the authenticated user of each request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::clock::StateClock;
use super::db::Audit;
use super::db::{CatalogRow, Db, Inserted, TokenRow};
use super::mirror::IndexedChanges;
use super::search::CatalogIndex;
use super::search_service::{SearchCache, etag_for, insert_bounded};
use super::validate::{
    canonical_store_url, compare_versions, validate_audit_limit, validate_new_build,
    validate_revision, validate_system, validate_version,
};
use super::{
    AuditEntry, BatchOutcome, BuildRecord, Catalog, CatalogError, CatalogInfo, CatalogPackages,
    CatalogResult, CheckBuild, Identity, ListedCatalog, Listing, ListingChanges, LivePaths,
    MAX_BATCH, MAX_SEARCH_LIMIT, Missing, NewBuild, PackageDetail, RecordRequest, Refusal,
    RegisterOutcome, RegisterStatus, Role, Scope, SearchAnswer, VersionDetail, YankOutcome,
    validate_org_name, validate_package_name, validate_user_name, verify_signature,
};
use crate::time::rfc3339;

mod flox;

/// A migrated database plus the per-process caches; shared by all users' views.
#[derive(Debug)]
pub struct CatalogBackend {
    db: Db,
    cache: SearchCache,
    /// Per user: the catalogs they may see and their ETag, as of a state version.
    visible: std::sync::RwLock<HashMap<Arc<str>, Visible>>,
    /// Package pages by (catalog, package), valid while the catalog is at that generation.
    details: std::sync::RwLock<HashMap<(String, String), CachedDetail>>,
    /// Shared reads of the state version (one per round trip, not one per request).
    clock: Arc<StateClock>,
    /// Tokens by hash, each as read at its row's state version (every change of a token
    /// moves the state version on, so a row is current while the version is).
    tokens: std::sync::RwLock<HashMap<String, TokenRow>>,
}

/// A package page as of one generation of its catalog.
#[derive(Debug, Clone)]
struct CachedDetail {
    created_at: i64,
    generation: i64,
    detail: Arc<PackageDetail>,
}

/// Package pages cached at once (the map is dropped when full).
const DETAIL_CACHE_SIZE: usize = 20_000;
/// Pages with more builds than this are not cached (memory stays bounded by the two).
const DETAIL_CACHE_MAX_BUILDS: usize = 256;

/// What one user may see, as of `version` of the database's state.
#[derive(Debug, Clone)]
struct Visible {
    version: i64,
    rows: Arc<Vec<CatalogRow>>,
    /// Position in `rows` by catalog name.
    by_name: Arc<HashMap<String, usize>>,
    etag: Arc<str>,
}

/// Users whose visible catalogs are cached at once (the map is dropped when full).
const VISIBLE_CACHE_USERS: usize = 2_000;
/// Tokens cached at once (the map is dropped when full).
const TOKEN_CACHE_SIZE: usize = 10_000;
/// The version of a catalog's package list in a listing ([`ListedCatalog::version`]).
fn list_version(created_at: i64, generation: i64) -> String {
    format!("{created_at}-{generation}")
}

/// Catalogs a [`Catalog::list_changes`] caller may say it knows.
const MAX_KNOWN_CATALOGS: usize = 100_000;

impl CatalogBackend {
    /// Connects to `sqlite://PATH`, a bare path, or `postgres://…`, and migrates.
    pub async fn connect(db_url: &str) -> CatalogResult<Arc<CatalogBackend>> {
        Self::with_cache(db_url, SearchCache::default()).await
    }

    async fn with_cache(db_url: &str, cache: SearchCache) -> CatalogResult<Arc<CatalogBackend>> {
        let db = Db::connect(db_url).await?;
        Ok(Arc::new(CatalogBackend {
            clock: Arc::new(StateClock::new(db.clone())),
            db,
            cache,
            visible: Default::default(),
            details: Default::default(),
            tokens: Default::default(),
        }))
    }

    /// Like [`CatalogBackend::connect`], for a catalog used by one process at a time (the
    /// CLI, the workbench): package lists are also kept in an index file beside a SQLite
    /// database, so the next process need not read them out of the database.
    pub async fn connect_local(db_url: &str) -> CatalogResult<Arc<CatalogBackend>> {
        let (url, _, path) = super::db::normalize_db_url(db_url)?;
        let cache = match path {
            Some(p) if !url.contains("mode=memory") && p != Path::new(":memory:") => {
                SearchCache::with_index_file(&p)
            }
            _ => SearchCache::default(),
        };
        Self::with_cache(db_url, cache).await
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The token with SHA-256 `hash` (hex), as of no earlier than this call, with the state
    /// version it was read at. Concurrent calls share one read of the state version; the
    /// token row is read only when it is not cached at that version. So a token revoked
    /// (through any instance over this database) before the call is seen revoked.
    pub async fn authenticate(&self, hash: &str) -> CatalogResult<Option<TokenRow>> {
        let version = self.clock.now().await?;
        let cached = self
            .tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .filter(|t| t.state_version == version)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let row = self.db.token_by_hash(hash).await?;
        if let Some(row) = &row {
            insert_bounded(
                &self.tokens,
                TOKEN_CACHE_SIZE,
                hash.to_string(),
                row.clone(),
            );
        }
        Ok(row)
    }

    /// Records that the token with `hash` and id `id` was used at `now` (in the database and
    /// in the cached row).
    pub async fn touch_token(&self, hash: &str, id: &str, now: i64) -> CatalogResult<()> {
        self.db.touch_token(id, now).await?;
        if let Some(t) = self
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(hash)
        {
            t.last_used_at = t.last_used_at.max(now);
        }
        Ok(())
    }

    /// A view of the catalog acting as `user` (who must exist), with every scope (a local
    /// catalog, or the operator's own tools).
    pub fn as_user(self: &Arc<Self>, user: &str) -> EmbeddedCatalog {
        EmbeddedCatalog {
            backend: Arc::clone(self),
            user: Arc::from(user),
            state: None,
            token: None,
        }
    }

    /// A view acting as `user` for one request, which read the state version `version` of
    /// the database at its start (with its token): caches current at that version are used
    /// without asking the database again.
    pub fn as_user_at_state(self: &Arc<Self>, user: &str, version: i64) -> EmbeddedCatalog {
        EmbeddedCatalog {
            state: Some(version),
            ..self.as_user(user)
        }
    }
}

/// The token a view acts with: what it may do.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub id: String,
    pub scope: Scope,
    pub expires_at: Option<String>,
}

/// The catalog over a database, acting as one user. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedCatalog {
    backend: Arc<CatalogBackend>,
    user: Arc<str>,
    /// The state version read at the start of a request (see [`CatalogBackend::as_user_at_state`]).
    state: Option<i64>,
    /// The request's token; `None`: every scope (a local catalog).
    token: Option<Arc<TokenGrant>>,
}

/// The local OS user's name: `$USER` when it is a valid user name, else `uid-<uid>`.
pub fn local_user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| validate_user_name(u).is_ok())
        .unwrap_or_else(|| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            format!("uid-{uid}")
        })
}

fn not_found(org: &str) -> CatalogError {
    CatalogError::not_found(Missing::Catalog, format!("catalog {org} not found"))
}

fn owner_only(org: &str) -> CatalogError {
    CatalogError::forbidden(
        Refusal::OwnerOnly,
        format!("only the owner of catalog {org} can change it or publish to it"),
    )
}

fn scope_too_narrow(have: Scope, need: Scope, what: &str) -> CatalogError {
    CatalogError::forbidden(
        Refusal::Scope { have, need },
        format!(
            "this token's scope is {have}; {what} needs a {need} token{}",
            if need == Scope::Admin {
                ""
            } else {
                " or an admin one"
            }
        ),
    )
}

impl EmbeddedCatalog {
    /// This view limited to what `token` may do.
    pub fn with_token(mut self, token: TokenGrant) -> EmbeddedCatalog {
        self.token = Some(Arc::new(token));
        self
    }

    /// The scope this view acts with.
    pub fn scope(&self) -> Scope {
        self.token.as_ref().map_or(Scope::Admin, |t| t.scope)
    }

    fn need(&self, need: Scope, what: &str) -> CatalogResult<()> {
        let have = self.scope();
        if have >= need {
            Ok(())
        } else {
            Err(scope_too_narrow(have, need, what))
        }
    }

    /// The catalog if the caller owns it and the token allows `need` (`what` words it).
    async fn owned_for(&self, org: &str, need: Scope, what: &str) -> CatalogResult<CatalogRow> {
        let row = self.owned(org).await?;
        self.need(need, what)?;
        Ok(row)
    }

    /// Opens (creating if needed) a local catalog file, owned by the local OS user.
    pub async fn open(path: &Path) -> CatalogResult<EmbeddedCatalog> {
        let text = path.to_str().ok_or_else(|| {
            CatalogError::BadRequest(format!("catalog path {} is not UTF-8", path.display()))
        })?;
        Self::open_as(text, &local_user_name()).await
    }

    /// Opens a catalog database as `user`, creating the user if missing.
    pub async fn open_as(db_url: &str, user: &str) -> CatalogResult<EmbeddedCatalog> {
        validate_user_name(user)?;
        let backend = CatalogBackend::connect_local(db_url).await?;
        backend.db.ensure_user(user).await?;
        Ok(backend.as_user(user))
    }

    /// The user this view acts as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Waits for the search index file being written in the background (a process need
    /// not: its runtime finishes the write before it exits).
    pub async fn index_written(&self) {
        self.backend.cache.index_written().await;
    }

    /// The backend (database and cache).
    pub fn backend(&self) -> &Arc<CatalogBackend> {
        &self.backend
    }

    fn db(&self) -> &Db {
        &self.backend.db
    }

    /// The listing now (its `changed` left empty) and the lists of the visible catalogs that
    /// `known` does not hold at their version: both forms of `list_changes` are made of it.
    async fn changed_lists(
        &self,
        known: &[ListedCatalog],
    ) -> CatalogResult<(IndexedChanges, Vec<Arc<CatalogIndex>>)> {
        if known.len() > MAX_KNOWN_CATALOGS {
            return Err(CatalogError::BadRequest(format!(
                "at most {MAX_KNOWN_CATALOGS} known catalogs may be sent; list the packages afresh instead"
            )));
        }
        let (visible, etag) = self.visible_catalogs().await?;
        let known: HashMap<&str, &str> = known
            .iter()
            .map(|k| (k.name.as_str(), k.version.as_str()))
            .collect();
        let stale: Vec<CatalogRow> = visible
            .iter()
            .filter(|r| {
                known.get(r.name.as_str()).copied()
                    != Some(list_version(r.created_at, r.generation).as_str())
            })
            .cloned()
            .collect();
        let lists = self.backend.cache.snapshot(self.db(), &stale).await?;
        // A list as read may be newer than the row seen above: it is listed at that version.
        let fetched: HashMap<&str, String> = lists
            .iter()
            .map(|c| (c.name.as_str(), list_version(c.created_at, c.generation)))
            .collect();
        let catalogs = visible
            .iter()
            .map(|r| ListedCatalog {
                name: r.name.clone(),
                version: fetched
                    .get(r.name.as_str())
                    .cloned()
                    .unwrap_or_else(|| list_version(r.created_at, r.generation)),
            })
            .collect();
        let listing = IndexedChanges {
            etag: etag.to_string(),
            catalogs,
            changed: Vec::new(),
        };
        Ok((listing, lists))
    }

    /// The catalogs this user may see and their ETag. One single-row query when nothing
    /// changed since the last call (of any view over this backend); the state version moves
    /// on in the same transaction as every change, so this is never staler than the
    /// database was at the start of the call.
    async fn visible_catalogs(&self) -> CatalogResult<(Arc<Vec<CatalogRow>>, Arc<str>)> {
        let v = self.visible_now().await?;
        Ok((v.rows, v.etag))
    }

    async fn visible_now(&self) -> CatalogResult<Visible> {
        let version = match self.state {
            Some(v) => v,
            None => self.db().state_version().await?,
        };
        let cached = self
            .backend
            .visible
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&self.user)
            .filter(|v| v.version == version)
            .cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        let rows = Arc::new(self.db().visible_catalogs(&self.user).await?);
        let etag: Arc<str> = Arc::from(etag_for(&rows));
        let by_name = Arc::new(
            rows.iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), i))
                .collect(),
        );
        let visible = Visible {
            version,
            rows,
            by_name,
            etag,
        };
        insert_bounded(
            &self.backend.visible,
            VISIBLE_CACHE_USERS,
            Arc::clone(&self.user),
            visible.clone(),
        );
        Ok(visible)
    }

    /// The catalog if the caller may see it, with the caller's role; otherwise the same
    /// `NotFound` as for a missing catalog.
    async fn visible(&self, org: &str) -> CatalogResult<(CatalogRow, Role)> {
        validate_org_name(org)?;
        match self.db().catalog_row_for(org, &self.user).await? {
            Some((row, _)) if row.owner == *self.user => Ok((row, Role::Owner)),
            Some((row, true)) => Ok((row, Role::Reader)),
            // Hidden and missing: the same query, the same answer.
            Some((_, false)) | None => Err(not_found(org)),
        }
    }

    async fn owned(&self, org: &str) -> CatalogResult<CatalogRow> {
        match self.visible(org).await? {
            (row, Role::Owner) => Ok(row),
            (_, Role::Reader) => Err(owner_only(org)),
        }
    }

    async fn info(&self, row: CatalogRow, role: Role) -> CatalogResult<CatalogInfo> {
        let keys = self.db().keys(&row.name).await?;
        Ok(CatalogInfo {
            name: row.name,
            owner: row.owner,
            store_url: row.store_url,
            keys,
            role,
            created_at: rfc3339(row.created_at),
        })
    }
}

/// A public key's name and its canonical text (`name:base64`, as Nix prints it).
fn canonical_key(text: &str) -> CatalogResult<(String, String)> {
    let key = super::parse_public_key_text(text)?;
    Ok((key.name().to_string(), key.to_nix_string()))
}

impl Catalog for EmbeddedCatalog {
    async fn whoami(&self) -> CatalogResult<String> {
        Ok(self.user.to_string())
    }

    async fn create_catalog(
        &self,
        org: &str,
        store_url: &str,
        keys: &[String],
    ) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        let store_url = &canonical_store_url(store_url)?;
        self.need(Scope::Admin, "creating a catalog")?;
        let keys = keys
            .iter()
            .map(|k| canonical_key(k))
            .collect::<CatalogResult<Vec<_>>>()?;
        self.db()
            .insert_catalog(org, &self.user, store_url, &keys)
            .await?;
        tracing::info!(org, owner = %self.user, store_url, keys = keys.len(), "catalog created");
        self.catalog(org).await
    }

    async fn catalog(&self, org: &str) -> CatalogResult<CatalogInfo> {
        let (row, role) = self.visible(org).await?;
        self.info(row, role).await
    }

    async fn catalogs(&self) -> CatalogResult<Vec<CatalogInfo>> {
        let rows = self.db().visible_catalogs(&self.user).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let role = if row.owner == *self.user {
                Role::Owner
            } else {
                Role::Reader
            };
            out.push(self.info(row, role).await?);
        }
        Ok(out)
    }

    async fn set_store(&self, org: &str, store_url: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        let store_url = &canonical_store_url(store_url)?;
        self.owned_for(org, Scope::Admin, "changing the store")
            .await?;
        self.db().set_store(org, store_url, &self.user).await?;
        self.catalog(org).await
    }

    async fn add_key(&self, org: &str, public_key: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        let (name, key) = canonical_key(public_key)?;
        self.owned_for(org, Scope::Admin, "changing the trusted keys")
            .await?;
        self.db().add_key(org, &name, &key, &self.user).await?;
        self.catalog(org).await
    }

    async fn allow(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        validate_org_name(org)?;
        validate_user_name(user)?;
        let row = self
            .owned_for(org, Scope::Admin, "managing the allowlist")
            .await?;
        if !self.db().user_exists(user).await? {
            return Err(CatalogError::not_found(
                Missing::User,
                format!("no user named {user}"),
            ));
        }
        if row.owner != user {
            self.db().allow(org, user, &self.user).await?;
        }
        self.db().allowlist(org).await
    }

    async fn revoke(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        validate_org_name(org)?;
        validate_user_name(user)?;
        self.owned_for(org, Scope::Admin, "managing the allowlist")
            .await?;
        self.db().revoke(org, user, &self.user).await?;
        self.db().allowlist(org).await
    }

    async fn allowlist(&self, org: &str) -> CatalogResult<Vec<String>> {
        self.owned_for(org, Scope::Admin, "managing the allowlist")
            .await?;
        self.db().allowlist(org).await
    }

    async fn register_build(&self, build: &NewBuild) -> CatalogResult<RegisterOutcome> {
        validate_new_build(build)?;
        self.owned_for(&build.org, Scope::Publish, "publishing")
            .await?;
        let keys = self.db().keys(&build.org).await?;
        let key_name = verify_signature(
            &build.store_path,
            &build.nar_hash,
            build.nar_size,
            &build.references,
            &build.signature,
            &keys,
        )?;
        let inserted = self.db().insert_build(build, &key_name, &self.user).await?;
        self.outcome(build, inserted)
    }

    async fn register_builds(&self, org: &str, builds: &[NewBuild]) -> CatalogResult<BatchOutcome> {
        if builds.len() > MAX_BATCH {
            return Err(CatalogError::BadRequest(format!(
                "a batch holds at most {MAX_BATCH} builds, this one {}",
                builds.len()
            )));
        }
        for (i, b) in builds.iter().enumerate() {
            let at = |e: CatalogError| match e {
                CatalogError::BadRequest(m) => {
                    CatalogError::BadRequest(format!("build {} of the batch: {m}", i + 1))
                }
                other => other,
            };
            validate_new_build(b).map_err(at)?;
            if b.org != org {
                return Err(at(CatalogError::BadRequest(format!(
                    "its org {:?} is not the batch's catalog {org:?}",
                    b.org
                ))));
            }
        }
        self.owned_for(org, Scope::Publish, "publishing").await?;
        let keys = self.db().keys(org).await?;
        let mut signed = Vec::with_capacity(builds.len());
        for (i, b) in builds.iter().enumerate() {
            let key_name = verify_signature(
                &b.store_path,
                &b.nar_hash,
                b.nar_size,
                &b.references,
                &b.signature,
                &keys,
            )
            .map_err(|e| match e {
                CatalogError::Forbidden { why, message } => {
                    CatalogError::forbidden(why, format!("build {} of the batch: {message}", i + 1))
                }
                CatalogError::BadRequest(m) => {
                    CatalogError::BadRequest(format!("build {} of the batch: {m}", i + 1))
                }
                other => other,
            })?;
            signed.push((b, key_name));
        }
        let (created, already_published) =
            self.db().insert_builds(org, &signed, &self.user).await?;
        if created > 0 {
            tracing::info!(org, created, already_published, user = %self.user, "builds registered");
        }
        Ok(BatchOutcome {
            created,
            already_published,
        })
    }

    async fn check_build(&self, query: &CheckBuild) -> CatalogResult<Option<BuildRecord>> {
        validate_package_name(&query.name)?;
        validate_revision(&query.revision)?;
        if let Some(system) = &query.system {
            validate_system(system)?;
        }
        self.visible(&query.org).await?;
        self.db()
            .build_by_revision(
                &query.org,
                &query.name,
                &query.revision,
                query.system.as_deref(),
            )
            .await
    }

    async fn list_packages(&self, if_none_match: Option<&str>) -> CatalogResult<Listing> {
        let (visible, etag_arc) = self.visible_catalogs().await?;
        let etag = etag_arc.to_string();
        if if_none_match.is_some_and(|tags| etag_matches(tags, &etag)) {
            return Ok(Listing::NotModified { etag });
        }
        let lists = self
            .backend
            .cache
            .lists(&etag_arc, self.db(), &visible)
            .await?;
        let packages = lists.iter().flat_map(|c| c.packages()).collect();
        Ok(Listing::Packages { etag, packages })
    }

    async fn list_changes(&self, known: &[ListedCatalog]) -> CatalogResult<ListingChanges> {
        let (changes, lists) = self.changed_lists(known).await?;
        Ok(ListingChanges {
            etag: changes.etag,
            catalogs: changes.catalogs,
            changed: lists
                .iter()
                .map(|c| CatalogPackages {
                    name: c.name.clone(),
                    // The list as read, which may be newer than the row seen.
                    version: list_version(c.created_at, c.generation),
                    packages: c.packages().collect(),
                })
                .collect(),
        })
    }

    async fn list_changes_indexed(&self, known: &[ListedCatalog]) -> CatalogResult<IndexedChanges> {
        let (mut changes, lists) = self.changed_lists(known).await?;
        changes.changed = lists
            .iter()
            .map(|c| {
                let listed = ListedCatalog {
                    name: c.name.clone(),
                    version: list_version(c.created_at, c.generation),
                };
                (listed, Arc::clone(&c.index))
            })
            .collect();
        Ok(changes)
    }

    async fn search_answer(&self, query: &str, limit: usize) -> CatalogResult<SearchAnswer> {
        if query.len() > 256 || query.chars().any(char::is_control) {
            return Err(CatalogError::BadRequest(
                "the search query must be at most 256 characters, without control characters"
                    .into(),
            ));
        }
        let limit = limit.clamp(1, MAX_SEARCH_LIMIT);
        let (visible, etag) = self.visible_catalogs().await?;
        let cache = &self.backend.cache;
        if let Some(answer) = cache.cached_result(&etag, query, limit) {
            return Ok(answer.as_ref().clone());
        }
        let lists = cache.lists(&etag, self.db(), &visible).await?;
        let answer = Arc::new(cache.search(lists, query, limit).await?);
        cache.store_result(&etag, query, limit, Arc::clone(&answer));
        Ok(answer.as_ref().clone())
    }

    async fn show(&self, org: &str, package: &str) -> CatalogResult<PackageDetail> {
        validate_org_name(org)?;
        validate_package_name(package)?;
        let visible = self.visible_now().await?;
        // Hidden and missing: the same answer, from the same lookup.
        let row = match visible.by_name.get(org) {
            Some(&i) => &visible.rows[i],
            None => return Err(not_found(org)),
        };
        let key = (org.to_string(), package.to_string());
        let cached = self
            .backend
            .details
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|d| d.created_at == row.created_at && d.generation == row.generation)
            .map(|d| Arc::clone(&d.detail));
        if let Some(detail) = cached {
            return Ok(detail.as_ref().clone());
        }
        // Read under the generation seen now; if a change lands meanwhile, the page is kept
        // under the older generation and never served again.
        let detail = self.read_detail(row, package).await?;
        let builds: usize = detail.versions.iter().map(|v| v.builds.len()).sum();
        if builds > DETAIL_CACHE_MAX_BUILDS {
            return Ok(detail);
        }
        let detail = Arc::new(detail);
        insert_bounded(
            &self.backend.details,
            DETAIL_CACHE_SIZE,
            key,
            CachedDetail {
                created_at: row.created_at,
                generation: row.generation,
                detail: Arc::clone(&detail),
            },
        );
        Ok(detail.as_ref().clone())
    }

    async fn identity(&self) -> CatalogResult<Identity> {
        Ok(Identity {
            user: self.user.to_string(),
            scope: self.scope(),
            token_id: self.token.as_ref().map(|t| t.id.clone()),
            expires_at: self.token.as_ref().and_then(|t| t.expires_at.clone()),
        })
    }

    async fn yank(
        &self,
        org: &str,
        package: &str,
        version: &str,
        yanked: bool,
    ) -> CatalogResult<YankOutcome> {
        validate_org_name(org)?;
        validate_package_name(package)?;
        validate_version(version)?;
        self.owned_for(org, Scope::Publish, "yanking").await?;
        let changed = self
            .db()
            .set_yanked(org, package, version, yanked, &self.user)
            .await?
            .ok_or_else(|| {
                CatalogError::not_found(
                    Missing::Version,
                    format!("{org}/{package} has no version {version}"),
                )
            })?;
        let latest = self
            .db()
            .package(org, package)
            .await?
            .map(|p| p.latest_version)
            .unwrap_or_default();
        if changed > 0 {
            tracing::info!(org, package, version, yanked, user = %self.user, "yank changed");
        }
        Ok(YankOutcome {
            name: format!("{org}/{package}"),
            version: version.to_string(),
            yanked,
            changed,
            latest_version: latest,
        })
    }

    async fn remove_key(&self, org: &str, key_name: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        self.owned_for(org, Scope::Admin, "changing the trusted keys")
            .await?;
        if self.db().remove_key(org, key_name, &self.user).await? == 0 {
            return Err(CatalogError::not_found(
                Missing::Key,
                format!(
                    "catalog {org} trusts no key named {}",
                    super::quote(key_name)
                ),
            ));
        }
        self.catalog(org).await
    }

    async fn audit_log(&self, org: &str, limit: usize) -> CatalogResult<Vec<AuditEntry>> {
        validate_org_name(org)?;
        validate_audit_limit(limit)?;
        self.owned_for(org, Scope::Admin, "reading the audit log")
            .await?;
        self.db()
            .audit_log(org, i64::try_from(limit).unwrap_or(i64::MAX))
            .await
    }

    async fn live_paths(&self, org: &str) -> CatalogResult<LivePaths> {
        validate_org_name(org)?;
        let row = self
            .owned_for(org, Scope::Admin, "collecting garbage")
            .await?;
        // The live set of a store is what every catalog on it needs, whoever owns them: the
        // service sees them all, the caller may not. Store URLs compare in canonical form, so
        // `file:///srv/./cache/` is the same store as `file:///srv/cache`.
        let canonical = canonical_store_url(&row.store_url)?;
        let mut others = Vec::new();
        for (name, url) in self.db().store_urls().await? {
            if name != row.name && canonical_store_url(&url).is_ok_and(|u| u == canonical) {
                others.push(name);
            }
        }
        let paths = self
            .db()
            .live_paths(std::slice::from_ref(&row.name))
            .await?;
        let mut shared = self.db().live_paths(&others).await?;
        shared.retain(|p| paths.binary_search(p).is_err());
        Ok(LivePaths {
            store_url: canonical,
            paths,
            shared: Some(shared),
            catalogs_sharing: others.len(),
        })
    }

    async fn record(&self, org: &str, request: &RecordRequest) -> CatalogResult<()> {
        validate_org_name(org)?;
        if !matches!(request.action.as_str(), "gc" | "re-sign") {
            return Err(CatalogError::BadRequest(format!(
                "unknown action {}: record `gc` or `re-sign`",
                super::quote(&request.action)
            )));
        }
        if request.detail.to_string().len() > 64 * 1024 {
            return Err(CatalogError::BadRequest(
                "the detail of a record must be at most 64 KiB of JSON".into(),
            ));
        }
        self.owned_for(org, Scope::Admin, "recording store maintenance")
            .await?;
        let entry = Audit {
            actor: &self.user,
            action: &request.action,
            subject: org.to_string(),
            detail: request.detail.clone(),
        };
        self.db().record(org, &entry).await
    }
}

impl EmbeddedCatalog {
    /// A registration's answer: created, the same build already there, or a conflict.
    fn outcome(&self, build: &NewBuild, inserted: Inserted) -> CatalogResult<RegisterOutcome> {
        match inserted {
            Inserted::Created(record) => {
                tracing::info!(
                    org = %build.org, package = %build.package, version = %build.version,
                    system = %build.system, user = %self.user,
                    addressing = build.addressing.as_str(), "build registered"
                );
                Ok(RegisterOutcome {
                    status: RegisterStatus::Created,
                    build: record,
                })
            }
            Inserted::Existing(record) if record.nar_hash == build.nar_hash => {
                Ok(RegisterOutcome {
                    status: RegisterStatus::AlreadyPublished,
                    build: record,
                })
            }
            Inserted::Existing(record) => Err(CatalogError::Conflict(super::db::conflict_message(
                build,
                &record.nar_hash,
            ))),
        }
    }

    async fn read_detail(&self, row: &CatalogRow, package: &str) -> CatalogResult<PackageDetail> {
        let org = row.name.as_str();
        let missing = || {
            CatalogError::not_found(
                Missing::Package,
                format!("package {org}/{package} not found"),
            )
        };
        let pkg = self.db().package(org, package).await?.ok_or_else(missing)?;
        let mut builds = self.db().builds_of(org, package).await?;
        builds.sort_by(|a, b| {
            compare_versions(&b.version, &a.version).then_with(|| a.system.cmp(&b.system))
        });
        let mut versions: Vec<VersionDetail> = Vec::new();
        for b in builds {
            match versions.last_mut() {
                Some(v) if v.version == b.version => {
                    v.yanked |= b.yanked_at.is_some();
                    v.builds.push(b)
                }
                _ => versions.push(VersionDetail {
                    version: b.version.clone(),
                    yanked: b.yanked_at.is_some(),
                    builds: vec![b],
                }),
            }
        }
        Ok(PackageDetail {
            name: format!("{org}/{package}"),
            org: org.to_string(),
            package: package.to_string(),
            description: pkg.description,
            latest_version: pkg.latest_version,
            owner: row.owner.clone(),
            keys: self.db().keys(org).await?,
            store_url: row.store_url.clone(),
            versions,
        })
    }
}

/// Whether an `If-None-Match` value (`*`, or a list of possibly weak tags) matches `etag`.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|t| {
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag.strip_prefix("W/").unwrap_or(etag)
    })
}
