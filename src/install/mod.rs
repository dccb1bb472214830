//! Install readiness and install: from `myorg/hello[@1.0]` to its whole closure in the local
//! Nix store (or, without Nix, pubdeck's own store directory) and an `[install]` entry in the
//! environment's manifest.
//!
//! Install goes straight to the Catalog Store (never through the catalog service). Every path
//! of the closure must be content-addressed — its store path follows from its content, name
//! and references — and signed by a key the catalog trusts; every download is checked
//! against its FileHash/FileSize, NarHash/NarSize and content address before anything is
//! imported. A path already present locally is reused only once its contents are proved to
//! be that path (Nix's registered NAR hash, or a re-hash of pubdeck's own copy). Any failure
//! leaves both stores and the manifest as they were.

pub mod lock;
pub mod nix;
pub mod upgrade;

mod error;
mod fetch;
mod ready;
mod run;
mod staging;

pub use error::InstallError;
pub use ready::{Readiness, ready};
pub use run::{Installed, executables, install};

pub use nix::NixStore;

use std::path::{Path, PathBuf};

use crate::catalog::{CatalogError, parse_package_ref};
use crate::nix::current_system;
use crate::store::OpenOptions;

/// Check ids of `ready`, in order.
pub mod id {
    use crate::event::CheckId;

    pub const VISIBLE: CheckId = CheckId::Visible;
    pub const SYSTEM_BUILD: CheckId = CheckId::SystemBuild;
    pub const NARINFO: CheckId = CheckId::Narinfo;
    pub const SIGNATURE: CheckId = CheckId::Signature;
    pub const NAR: CheckId = CheckId::Nar;
    pub const CLOSURE: CheckId = CheckId::Closure;
    pub const RUNS_HERE: CheckId = CheckId::RunsHere;
    pub const NIX_CONFIG: CheckId = CheckId::NixConfig;
    pub const ENVIRONMENT: CheckId = CheckId::Environment;
    pub const NOT_INSTALLED: CheckId = CheckId::NotInstalled;
    /// The other systems asked for (`install --system`), and the ids they get.
    pub const OTHER_SYSTEMS: CheckId = CheckId::OtherSystems;
    /// `[install]` and `pubdeck.lock` agree, and no entry needs FloxHub.
    pub const LOCK: CheckId = CheckId::Lock;
}

/// `org/package[@version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRef {
    pub org: String,
    pub package: String,
    pub version: Option<String>,
}

impl PackageRef {
    pub fn parse(s: &str) -> Result<PackageRef, CatalogError> {
        let (name, version) = match s.split_once('@') {
            Some((n, v)) if !v.is_empty() => {
                crate::catalog::validate::validate_version(v).map_err(|e| {
                    CatalogError::BadRequest(format!(
                        "{} does not name a version after `@`: {e}",
                        crate::catalog::quote(s)
                    ))
                })?;
                (n, Some(v.to_string()))
            }
            Some(_) => {
                return Err(CatalogError::BadRequest(format!(
                    "{} has an empty version after `@`",
                    crate::catalog::quote(s)
                )));
            }
            None => (s, None),
        };
        let (org, package) = parse_package_ref(name)?;
        Ok(PackageRef {
            org,
            package,
            version,
        })
    }

    /// `org/package`
    pub fn name(&self) -> String {
        format!("{}/{}", self.org, self.package)
    }
}

impl std::fmt::Display for PackageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}/{}@{v}", self.org, self.package),
            None => write!(f, "{}/{}", self.org, self.package),
        }
    }
}

/// What to install, where.
#[derive(Debug, Clone)]
pub struct Request {
    pub package: PackageRef,
    /// The environment directory.
    pub dir: PathBuf,
    /// The local store directory (`$PUBDECK_DATA_DIR/store`).
    pub store_dir: PathBuf,
    pub system: String,
    pub store_open: OpenOptions,
    /// Nix configuration files to inspect (warnings only).
    pub nix_conf: Vec<PathBuf>,
    /// Where installs go: the local Nix store, or `None` for pubdeck's own `store_dir`.
    pub nix: Option<NixStore>,
    /// A new `[install]` entry, or another version for an existing one (`upgrade`).
    pub mode: Mode,
    /// The `[install]` id (default: the package's name).
    pub id: Option<String>,
    /// Other systems to write descriptors for (`install --system`): their closures are
    /// downloaded and verified, not imported. Each gets the id `<id>-<system>`.
    pub extra_systems: Vec<String>,
    /// The catalog, as the lock records it (its service URL or local file).
    pub catalog_label: String,
}

/// What an install does to the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Adds an `[install]` entry (which must not exist yet).
    #[default]
    Add,
    /// Installs another version for the existing entry: its descriptor and lock entry move
    /// together.
    Upgrade,
    /// Rewrites an entry of the form earlier versions wrote (`pkg-path = "ORG/PKG"`, which
    /// only FloxHub resolves) to the store-path form, under the same id.
    Migrate,
}

impl Request {
    pub fn new(package: PackageRef, dir: &Path, data_dir: &Path) -> Request {
        let mut nix_conf = vec![PathBuf::from("/etc/nix/nix.conf")];
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
        if let Some(c) = config_home {
            nix_conf.push(c.join("nix/nix.conf"));
        }
        Request {
            package,
            dir: dir.to_path_buf(),
            store_dir: data_dir.join("store"),
            system: current_system(),
            store_open: OpenOptions::default(),
            nix_conf,
            nix: NixStore::detect(),
            mode: Mode::Add,
            id: None,
            extra_systems: Vec::new(),
            catalog_label: String::new(),
        }
    }

    /// The `[install]` id this request writes for its own system.
    pub fn install_id(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| self.package.package.clone())
    }
}

/// The `[install]` id of `id`'s descriptor for another system: `<id>-<system>`
/// (`api-gateway-aarch64-darwin`), with `systems = ["<system>"]`.
pub fn other_system_id(id: &str, system: &str) -> String {
    format!("{id}-{system}")
}

#[cfg(test)]
mod tests;
