//! Plain data the workbench shows. `tui::engine` maps the catalog's types onto these; the
//! outcomes of long jobs are the engine's own typed results ([`Published`], [`Kept`],
//! [`Failure`]), so the face alone chooses the words.

use std::fmt;
use std::path::PathBuf;

use crate::catalog::search::{SearchIndex, SearchIndexBuilder};

pub use crate::build::Kept;
pub use crate::event::Failure;
pub use crate::publish::Published;

/// How a publish or build-only job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Published(Box<Published>),
    Built(Kept),
    Cancelled,
    Failed(Failure),
}

/// One `[build.<name>]` entry of the environment's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildRow {
    pub name: String,
    /// The version as it will be built: the literal, or what `version.file` holds (empty
    /// when the build declares none, or when only `version.command` can tell).
    pub version: String,
    /// Where the version comes from.
    pub version_from: VersionFrom,
    pub description: String,
    /// What the engine knows of earlier runs (e.g. "already published"); `None` if nothing.
    pub last: Option<LastResult>,
    /// A fingerprint of the whole `[build.<name>]` entry: a result of a run is shown only
    /// while the entry (and the version) it ran with is unchanged.
    pub entry: u64,
}

/// Where a build's version is given, so an edit keeps its form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VersionFrom {
    /// `version = "…"` in the manifest.
    #[default]
    Literal,
    /// `version.file`: this file (relative to the environment).
    File(String),
    /// `version.command`: known when the build runs.
    Command,
    /// None declared.
    None,
}

/// The `[build.*]` entries of a manifest as the builds list shows them.
pub fn build_rows(manifest: &crate::manifest::Manifest) -> Vec<BuildRow> {
    manifest
        .builds
        .iter()
        .map(|b| {
            use crate::manifest::{ShownVersion, VersionSpec};
            BuildRow {
                name: b.name.clone(),
                version: match manifest.shown_version(b) {
                    ShownVersion::Known(v) => v,
                    _ => String::new(),
                },
                version_from: match &b.version {
                    Some(VersionSpec::Literal(_)) => VersionFrom::Literal,
                    Some(VersionSpec::File(f)) => VersionFrom::File(f.clone()),
                    Some(VersionSpec::Command(_)) => VersionFrom::Command,
                    None => VersionFrom::None,
                },
                description: b.description.clone().unwrap_or_default(),
                last: None,
                entry: {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    serde_json::to_string(b).unwrap_or_default().hash(&mut h);
                    h.finish()
                },
            }
        })
        .collect()
}

/// The last outcome of a build, as shown in the builds list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastResult {
    Building,
    /// Built (build only), with the kept output.
    Built(PathBuf),
    /// Published, with the catalog reference (`myorg/hello@1.2.3`).
    Published(String),
    /// Failed, with what went wrong.
    Failed(Failure),
    Cancelled,
}

impl LastResult {
    /// A one-word label for the builds list.
    pub fn label(&self) -> &'static str {
        match self {
            LastResult::Building => "building",
            LastResult::Built(_) => "built",
            LastResult::Published(_) => "published",
            LastResult::Failed(_) => "failed",
            LastResult::Cancelled => "cancelled",
        }
    }
}

/// One package in the organisation's catalog, as listed by search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageRow {
    pub org: String,
    pub name: String,
    /// The latest version.
    pub version: String,
    pub description: String,
}

impl PackageRow {
    /// `org/name`, the form `install` and `show` take.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }
}

/// The catalog's package list as the Catalog tab holds it: the search index itself (row `id`
/// is hit `id`), so a list of 100,000 packages arrives without being copied or indexed again.
#[derive(Debug, Clone, Default)]
pub struct PackageList(std::sync::Arc<SearchIndex>);

impl PackageList {
    pub fn new(index: std::sync::Arc<SearchIndex>) -> PackageList {
        PackageList(index)
    }

    /// The index the filter searches.
    pub fn index(&self) -> std::sync::Arc<SearchIndex> {
        std::sync::Arc::clone(&self.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Row `id`, if there is one.
    pub fn get(&self, id: usize) -> Option<PackageRow> {
        (id < self.0.len()).then(|| PackageRow {
            org: self.0.org(id).to_string(),
            name: self.0.name(id).to_string(),
            version: self.0.version(id).to_string(),
            description: self.0.description(id).to_string(),
        })
    }
}

/// The same rows (tests compare actions).
impl PartialEq for PackageList {
    fn eq(&self, other: &PackageList) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
            || (self.len() == other.len() && (0..self.len()).all(|i| self.get(i) == other.get(i)))
    }
}

impl From<Vec<PackageRow>> for PackageList {
    fn from(rows: Vec<PackageRow>) -> PackageList {
        let mut b = SearchIndexBuilder::with_capacity(rows.len(), rows.len() * 96);
        for r in &rows {
            b.push(&r.org, &r.name, &r.version, &r.description);
        }
        PackageList(std::sync::Arc::new(b.finish()))
    }
}

/// One published build of a package version for one system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemBuild {
    pub version: String,
    /// `x86_64-linux`, `aarch64-darwin`, …
    pub system: String,
    pub store_path: String,
    pub publisher: String,
    /// RFC 3339 time of publication.
    pub published_at: String,
    /// Source revision (commit id).
    pub revision: String,
    /// Name of the signing key (`myorg-1`).
    pub key: String,
    /// Where the narinfo lives (`s3://…/<hash>.narinfo`).
    pub store_url: String,
    pub nar_size: u64,
    /// Every store path it needs (itself included) with NAR sizes; empty when unknown.
    pub closure: Vec<(String, u64)>,
}

/// Everything `show ORG/PKG` knows about a package.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackageDetails {
    pub org: String,
    pub name: String,
    pub description: String,
    /// All versions, newest first.
    pub versions: Vec<String>,
    /// The versions that are yanked (skipped for "latest"; installable when pinned).
    pub yanked: Vec<String>,
    /// Builds of all versions, newest first.
    pub builds: Vec<SystemBuild>,
    /// The source repository (credential-free URL).
    pub repository: String,
}

impl PackageDetails {
    pub fn reference(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    pub fn is_yanked(&self, version: &str) -> bool {
        self.yanked.iter().any(|v| v == version)
    }

    /// What an unpinned install takes: the newest version not yanked.
    pub fn latest(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| !self.is_yanked(v))
            .map(String::as_str)
    }
}

/// Which long job is running on the publish tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Publish,
    BuildOnly,
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobKind::Publish => "publish",
            JobKind::BuildOnly => "build",
        })
    }
}
