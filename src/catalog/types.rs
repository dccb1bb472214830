//! Data exchanged with a catalog (the JSON shapes of the `/v1` API).

use serde::{Deserialize, Serialize};

/// The caller's relation to a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created it: may publish and administer.
    Owner,
    /// On the allowlist: may read.
    Reader,
}

/// A catalog (organisation) as its owner or a reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogInfo {
    /// Catalog name, e.g. `myorg`.
    pub name: String,
    /// The owning user.
    pub owner: String,
    /// Where the builds are stored (`file://…`, `s3://…`).
    pub store_url: String,
    /// Trusted public keys `name:base64`.
    pub keys: Vec<String>,
    /// The caller's role.
    pub role: Role,
    /// Creation time (RFC 3339, UTC).
    pub created_at: String,
}

/// A build to register (what `publish` sends after uploading).
/// Fields the server sets itself (`published_by`, `published_at`) are ignored if sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBuild {
    /// Catalog name.
    pub org: String,
    /// Package name.
    pub package: String,
    /// Version string.
    pub version: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// Nix system, e.g. `x86_64-linux`.
    pub system: String,
    /// `/nix/store/<hash>-<name>-<version>`.
    pub store_path: String,
    /// Where the narinfo lives in the store.
    pub narinfo_url: String,
    /// `sha256:<nix32>`.
    pub nar_hash: String,
    /// NAR size in bytes.
    pub nar_size: u64,
    /// Store paths referenced (base names or full paths); usually empty.
    #[serde(default)]
    pub references: Vec<String>,
    /// `keyname:base64(ed25519 signature over the narinfo fingerprint)`.
    pub signature: String,
    /// Name of the signing key (optional; must match the signature's when given).
    #[serde(default)]
    pub key_name: String,
    /// Source repository URL, without credentials.
    pub source_url: String,
    /// Git revision built.
    pub revision: String,
    /// Git branch built.
    #[serde(default)]
    pub branch: String,
    /// `[build.<name>]` of the manifest.
    pub build_name: String,
    /// The environment's `[install]` packages at that revision.
    #[serde(default)]
    pub installed_packages: Vec<String>,
    /// The content address `fixed:r:sha256:<nix32>` the store path follows from (with the
    /// name and references). Empty from older clients: then it is the NAR hash.
    #[serde(default)]
    pub ca: String,
    /// Every store path the build needs, itself included, with NAR sizes.
    #[serde(default)]
    pub closure: Vec<ClosurePath>,
    /// How the store path follows from the build (pubdeck's publish: from its content).
    #[serde(default)]
    pub addressing: Addressing,
    /// Commits reachable from `revision` (Flox's `rev_count`); 0 when not recorded.
    #[serde(default)]
    pub rev_count: u64,
    /// The commit time of `revision` (RFC 3339, UTC); empty when not recorded.
    #[serde(default)]
    pub rev_date: String,
    /// The `.drv` path the build came from (Flox builds); empty for pubdeck's own.
    #[serde(default)]
    pub derivation: String,
}

/// How a build's store path follows from the build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressing {
    /// From its content (its CA, name and references): pubdeck's publish. The catalog checks
    /// the store path against the NAR hash, so no two contents share a path.
    #[default]
    Content,
    /// From its inputs (a derivation): builds the Flox CLI published with `nix copy`. The
    /// catalog registers one only when its whole closure is in the org's store, signed by a
    /// key the org trusts, and no other org has the path with other content.
    Input,
}

impl Addressing {
    /// `content` or `input`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Addressing::Content => "content",
            Addressing::Input => "input",
        }
    }

    /// The stored form back (anything unknown reads as content, the stricter rule).
    pub fn parse(s: &str) -> Addressing {
        match s {
            "input" => Addressing::Input,
            _ => Addressing::Content,
        }
    }
}

/// One store path of a build's closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosurePath {
    /// `/nix/store/<hash>-<name>`.
    pub store_path: String,
    /// NAR size in bytes.
    pub nar_size: u64,
}

/// A registered build, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Catalog name.
    pub org: String,
    /// Package name.
    pub package: String,
    /// Version.
    pub version: String,
    /// Description given with this build.
    pub description: String,
    /// Nix system.
    pub system: String,
    /// Store path.
    pub store_path: String,
    /// narinfo URL.
    pub narinfo_url: String,
    /// `sha256:<nix32>`.
    pub nar_hash: String,
    /// NAR size in bytes.
    pub nar_size: u64,
    /// References.
    pub references: Vec<String>,
    /// The narinfo signature.
    pub signature: String,
    /// Name of the key that signed (verified by the catalog).
    pub key_name: String,
    /// Source repository URL.
    pub source_url: String,
    /// Git revision.
    pub revision: String,
    /// Git branch.
    pub branch: String,
    /// Build name in the manifest.
    pub build_name: String,
    /// Installed packages of the environment.
    pub installed_packages: Vec<String>,
    /// User who registered it (from the token).
    pub published_by: String,
    /// Registration time (RFC 3339, UTC, server clock).
    pub published_at: String,
    /// The content address (empty for builds registered before content addresses were
    /// recorded).
    #[serde(default)]
    pub ca: String,
    /// Every store path the build needs, itself included (empty for old builds).
    #[serde(default)]
    pub closure: Vec<ClosurePath>,
    /// When its version was yanked (RFC 3339); `None` when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked_at: Option<String>,
    /// The order of registration among the package's builds: higher was registered later
    /// (`published_at` has one-second resolution). 0 for builds registered before the catalog
    /// counted (migration 0006), which order by `published_at` among themselves.
    #[serde(default)]
    pub seq: i64,
    /// How the store path follows from the build.
    #[serde(default)]
    pub addressing: Addressing,
    /// Commits reachable from `revision`; 0 when not recorded.
    #[serde(default)]
    pub rev_count: u64,
    /// The commit time of `revision` (RFC 3339); empty when not recorded.
    #[serde(default)]
    pub rev_date: String,
    /// The `.drv` path the build came from; empty for pubdeck's own builds.
    #[serde(default)]
    pub derivation: String,
}

/// Whether a registration created a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterStatus {
    /// New record (HTTP 201).
    Created,
    /// The same NAR was already registered for this version and system (HTTP 200).
    AlreadyPublished,
}

/// Answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterOutcome {
    /// Created or already there.
    pub status: RegisterStatus,
    /// The stored record.
    pub build: BuildRecord,
}

/// Query for an already-published build of a source revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBuild {
    /// Catalog name.
    pub org: String,
    /// Package name or build name.
    pub name: String,
    /// Git revision.
    pub revision: String,
    /// Restrict to one system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// One package in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSummary {
    /// `org/package`.
    pub name: String,
    /// Catalog name.
    pub org: String,
    /// Package name.
    pub package: String,
    /// The highest version not yanked.
    pub latest_version: String,
    /// Description of the latest version.
    pub description: String,
}

/// Answer to a package listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// The caller's copy (by ETag) is current.
    NotModified {
        /// The current ETag.
        etag: String,
    },
    /// The full list.
    Packages {
        /// Opaque version tag of this list; send it back as `if_none_match`.
        etag: String,
        /// Packages sorted by name.
        packages: Vec<PackageSummary>,
    },
}

/// A visible catalog in a listing, and the version of its package list (opaque: it changes
/// whenever the list may have).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedCatalog {
    pub name: String,
    pub version: String,
}

/// One catalog's package list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogPackages {
    pub name: String,
    pub version: String,
    /// Sorted by name.
    pub packages: Vec<PackageSummary>,
}

/// Answer to "what changed in the listing since these catalog versions".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingChanges {
    /// The ETag of the whole listing now (as [`Listing`] gives it).
    pub etag: String,
    /// Every visible catalog, in listing order, with its version. A catalog the caller knew
    /// that is not here is gone (or no longer visible: the same answer).
    pub catalogs: Vec<ListedCatalog>,
    /// The package lists of the visible catalogs whose version the caller did not know.
    pub changed: Vec<CatalogPackages>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    /// `org/package`.
    pub name: String,
    /// Catalog name.
    pub org: String,
    /// Package name.
    pub package: String,
    /// The highest version not yanked.
    pub latest_version: String,
    /// Description.
    pub description: String,
    /// Fuzzy score (higher is better).
    pub score: i64,
}

/// What a search answers: the results, best first, and, only when there are none, the
/// names (`org/package`) of the packages nearest to the query by edit distance, nearest
/// first (`catalog::search::suggest`). The face words them ("did you mean …?").
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchAnswer {
    pub results: Vec<SearchHit>,
    /// Absent from the answers of services older than suggestions: empty.
    #[serde(default)]
    pub suggestions: Vec<String>,
}

/// All versions and builds of one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageDetail {
    /// `org/package`.
    pub name: String,
    /// Catalog name.
    pub org: String,
    /// Package name.
    pub package: String,
    /// Description of the latest version.
    pub description: String,
    /// The highest version not yanked; empty when every version is yanked.
    pub latest_version: String,
    /// Catalog owner.
    pub owner: String,
    /// Store URL of the catalog.
    pub store_url: String,
    /// Keys the catalog trusts.
    pub keys: Vec<String>,
    /// Versions, highest first.
    pub versions: Vec<VersionDetail>,
}

/// One version of a package with its builds per system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDetail {
    /// Version.
    pub version: String,
    /// Yanked: skipped for the latest version and `upgrade`, still installable when pinned.
    #[serde(default)]
    pub yanked: bool,
    /// Builds, one per system, sorted by system.
    pub builds: Vec<BuildRecord>,
}

/// Body of `POST /v1/catalogs`: what the client sends and the service reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateCatalogRequest {
    pub name: String,
    pub store_url: String,
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Body of `PUT /v1/catalogs/{org}/store`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetStoreRequest {
    pub store_url: String,
}

/// Body of `POST /v1/catalogs/{org}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddKeyRequest {
    pub key: String,
}

/// Query of `GET /v1/catalogs/{org}/check-build` (the org comes from the path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBuildQuery {
    pub name: String,
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// Query of `GET /v1/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Body of `POST /v1/catalogs/{org}/builds/batch`: at most [`MAX_BATCH`] builds, and like
/// every request body at most 1 MiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBatchRequest {
    pub builds: Vec<NewBuild>,
}

/// Body of `POST /v1/packages/changes`: the catalogs of the caller's copy of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListChangesRequest {
    pub known: Vec<ListedCatalog>,
}

/// Most builds in one batch registration.
pub const MAX_BATCH: usize = 1000;

/// What a batch registration did: all of the batch, or (on error) none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// Builds that are new.
    pub created: usize,
    /// Builds already there with the same NAR hash.
    pub already_published: usize,
}

/// What a token may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Search, show, install.
    Read,
    /// Also register builds and yank versions.
    Publish,
    /// Also create catalogs and manage their store, keys, allowlist, GC and audit log.
    Admin,
}

impl Scope {
    /// `read`, `publish` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Publish => "publish",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `s`.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "publish" => Some(Scope::Publish),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// `tok-…` (or `legacy-<user>` for a token from before scopes).
    pub id: String,
    /// Whose token it is.
    pub user: String,
    pub scope: Scope,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// `None`: never expires.
    pub expires_at: Option<String>,
    /// Last request made with it (to the minute); `None`: never used.
    pub last_used_at: Option<String>,
    /// `None`: not revoked.
    pub revoked_at: Option<String>,
}

/// Who the catalog takes the caller for (`GET /v1/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user: String,
    pub scope: Scope,
    /// The token's id; `None` for a local catalog (no token).
    #[serde(default)]
    pub token_id: Option<String>,
    /// When the token expires; `None`: never.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// One entry of a catalog's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Counts up from 1 per catalog.
    pub seq: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// The user who did it.
    pub actor: String,
    /// `create`, `publish`, `import`, `yank`, `unyank`, `set-store`, `add-key`, `remove-key`,
    /// `allow`, `revoke`, `gc`, `re-sign`.
    pub action: String,
    /// What it was done to: `org/pkg@ver`, a user, a key name, the catalog.
    pub subject: String,
    /// The details (counts, keys, URLs), as JSON.
    pub detail: serde_json::Value,
}

/// What a yank (or its undo) did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YankOutcome {
    /// `org/package`.
    pub name: String,
    pub version: String,
    /// The version's state now.
    pub yanked: bool,
    /// Builds whose flag changed (0: it was already so).
    pub changed: u64,
    /// The package's latest version now (the highest not yanked; empty when none is left).
    pub latest_version: String,
}

/// Body of `POST /v1/catalogs/{org}/log`: a change made outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRequest {
    /// `gc` or `re-sign`.
    pub action: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// Answer of `GET /v1/catalogs/{org}/live-paths`: what GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LivePaths {
    pub store_url: String,
    /// Every store path a registered build of this catalog needs (yanked builds included),
    /// sorted.
    pub paths: Vec<String>,
    /// Store paths only other catalogs on the same store need (whoever owns them: the service
    /// sees every catalog), sorted. Live for GC, not this catalog's to re-sign. `None` from a
    /// service too old to tell, which GC takes as "cannot know".
    #[serde(default)]
    pub shared: Option<Vec<String>>,
    /// How many other catalogs use the same store.
    #[serde(default)]
    pub catalogs_sharing: usize,
}
