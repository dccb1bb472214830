//! `pubdeck upgrade` and `pubdeck migrate`.
//!
//! `upgrade` moves the environment's org packages that pin no version to the newest version
//! not yanked: the store-path descriptors pubdeck wrote (the lock says which package, which
//! version and whether it is pinned) and entries of the form earlier versions wrote
//! (`pkg-path = "ORG/PKG"`, which only FloxHub resolves: they are migrated on the way). Each
//! is a whole verified install ([`super::install`]) that moves the descriptor, those of the
//! other systems it was installed for, and their lock entries together.
//!
//! `migrate` rewrites the old form to store-path descriptors at the version they had (the
//! pinned one, or the one the lock recorded, or else the newest not yanked), and drops lock
//! entries whose descriptor is gone.

use std::path::Path;

use serde::Serialize;

use super::{Installed, Mode, PackageRef, Request, lock, other_system_id};
use crate::catalog::{AnyCatalog, Catalog, CatalogError, parse_package_ref};
use crate::event::{EventTx, Hinted};
use crate::manifest::{Env, ManifestError};

/// What upgrade does (or did) to one `[install]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A newer version is available (dry run) or about to be installed.
    Available,
    /// Installed and locked.
    Upgraded,
    /// Already the newest version not yanked.
    UpToDate,
    /// The entry pins a version: left alone.
    Pinned,
    /// No version that is not yanked has a build for this system.
    NoCandidate,
    /// Not a package of a catalog you can see (e.g. a nixpkgs package).
    NotInCatalog,
    /// The install failed (message says why); the entry keeps its version.
    Failed,
}

/// One entry's upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The `[install]` id.
    pub id: String,
    /// `org/package`.
    pub package: String,
    /// The version installed before (from the lock), when known.
    pub from: Option<String>,
    /// The newest version not yanked, when there is one.
    pub to: Option<String>,
    pub status: Status,
    /// Why it failed, or what the pinned version is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The entry has the form only FloxHub resolves: the install rewrites it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub migrates: bool,
    /// Other systems the entry was installed for (their descriptors move with it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_systems: Vec<String>,
}

/// Why upgrade could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the environment has no [install] entry {0:?}")]
    NoEntry(String),
    #[error("{0}")]
    Catalog(#[from] CatalogError),
}

impl Hinted for UpgradeError {
    fn hint(&self) -> Option<String> {
        match self {
            UpgradeError::Manifest(e) => e.hint(),
            UpgradeError::NoEntry(_) => {
                Some("name the ids of [install] entries, or none for all of them".into())
            }
            UpgradeError::Catalog(e) => e.hint(),
        }
    }
}

/// What `upgrade` (or, with `migrate_only`, `migrate`) would do for the entries `ids` (all
/// org packages when empty) of the environment at `dir`, on `system`.
pub async fn plan(
    dir: &Path,
    ids: &[String],
    catalog: &AnyCatalog,
    system: &str,
) -> Result<Vec<Step>, UpgradeError> {
    plan_with(dir, ids, catalog, system, false).await
}

/// What `migrate` would do: every entry of the old form, at the version it had.
pub async fn plan_migration(
    dir: &Path,
    catalog: &AnyCatalog,
    system: &str,
) -> Result<Vec<Step>, UpgradeError> {
    plan_with(dir, &[], catalog, system, true).await
}

async fn plan_with(
    dir: &Path,
    ids: &[String],
    catalog: &AnyCatalog,
    system: &str,
    migrate_only: bool,
) -> Result<Vec<Step>, UpgradeError> {
    let manifest = Env::find(dir)?.manifest()?;
    for id in ids {
        if !manifest.install.iter().any(|i| &i.id == id) {
            return Err(UpgradeError::NoEntry(id.clone()));
        }
    }
    let locked = lock::read(&manifest.path);
    // The descriptors of other systems move with their entry, not on their own.
    let others_of = |id: &str, name: &str| -> Vec<String> {
        locked
            .packages
            .iter()
            .filter(|(oid, l)| {
                l.name() == name && l.system != system && **oid == other_system_id(id, &l.system)
            })
            .map(|(_, l)| l.system.clone())
            .collect()
    };
    let is_other = |id: &str| {
        locked.packages.get(id).is_some_and(|l| {
            l.system != system
                && manifest.install.iter().any(|e| {
                    locked.packages.get(&e.id).is_some_and(|m| {
                        m.name() == l.name() && other_system_id(&e.id, &l.system) == id
                    })
                })
        })
    };
    let mut steps = Vec::new();
    for entry in &manifest.install {
        if !ids.is_empty() && !ids.contains(&entry.id) {
            continue;
        }
        // What the entry is: a descriptor pubdeck wrote (the lock says), or the old form.
        let (name, from, pinned, migrates) = match (&entry.store_path, &entry.pkg_path) {
            (Some(_), _) => match locked.packages.get(&entry.id) {
                Some(l) if !is_other(&entry.id) => {
                    (l.name(), Some(l.version.clone()), l.pinned.clone(), false)
                }
                _ => continue,
            },
            (None, Some(path)) => match parse_package_ref(path) {
                Ok(_) => (
                    path.clone(),
                    locked
                        .packages
                        .get(&entry.id)
                        .filter(|l| &l.name() == path)
                        .map(|l| l.version.clone()),
                    entry.version.clone(),
                    true,
                ),
                Err(_) => {
                    // A nixpkgs attribute path is not the catalog's.
                    if !ids.is_empty() && !migrate_only {
                        steps.push(Step {
                            id: entry.id.clone(),
                            package: path.to_string(),
                            from: None,
                            to: None,
                            status: Status::NotInCatalog,
                            message: None,
                            migrates: false,
                            other_systems: Vec::new(),
                        });
                    }
                    continue;
                }
            },
            _ => continue,
        };
        if migrate_only && !migrates {
            continue;
        }
        let (org, package) = parse_package_ref(&name)?;
        let mut step = Step {
            id: entry.id.clone(),
            package: name.clone(),
            from: from.clone(),
            to: None,
            status: Status::Available,
            message: None,
            migrates,
            other_systems: others_of(&entry.id, &name),
        };
        let detail = match catalog.show(&org, &package).await {
            Ok(d) => d,
            Err(CatalogError::NotFound { .. }) => {
                step.status = Status::NotInCatalog;
                steps.push(step);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let has = |v: &str| {
            detail
                .versions
                .iter()
                .any(|x| x.version == v && x.builds.iter().any(|b| b.system == system))
        };
        // Versions come highest first.
        let newest = detail
            .versions
            .iter()
            .find(|v| !v.yanked && v.builds.iter().any(|b| b.system == system))
            .map(|v| v.version.clone());
        step.to = match (&pinned, migrate_only) {
            (Some(v), _) => Some(v.clone()),
            // A migration keeps what was installed when the lock knows it.
            (None, true) => from.clone().filter(|v| has(v)).or(newest),
            (None, false) => newest,
        };
        step.status = match (&pinned, &step.from, &step.to) {
            (_, _, None) => Status::NoCandidate,
            (Some(v), _, _) if !migrates => {
                step.message = Some(format!("pinned to {v}"));
                Status::Pinned
            }
            (_, Some(f), Some(t)) if f == t && !migrates => Status::UpToDate,
            _ => Status::Available,
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Carries out `steps` (those [`Status::Available`]): each is a whole install of the new
/// version (or, for the old form, of the version it migrates to); a failure is recorded in its
/// step and the others go on.
pub async fn apply(
    steps: &mut [Step],
    template: &Request,
    catalog: &AnyCatalog,
    tx: &EventTx,
) -> Vec<Installed> {
    let mut done = Vec::new();
    for step in steps.iter_mut().filter(|s| s.status == Status::Available) {
        let (Ok((org, package)), Some(to)) = (parse_package_ref(&step.package), &step.to) else {
            continue;
        };
        let mut req = template.clone();
        req.package = PackageRef {
            org,
            package,
            version: Some(to.clone()),
        };
        req.id = Some(step.id.clone());
        req.mode = if step.migrates {
            Mode::Migrate
        } else {
            Mode::Upgrade
        };
        req.extra_systems = step.other_systems.clone();
        match super::install(&req, catalog, tx).await {
            Ok(i) => {
                step.status = Status::Upgraded;
                done.push(i);
            }
            Err(e) => {
                step.status = Status::Failed;
                step.message = Some(e.to_string());
            }
        }
    }
    done
}

/// Drops the lock entries of the environment at `dir` whose `[install]` entry is gone;
/// returns their ids.
pub fn prune_lock(dir: &Path) -> Result<Vec<String>, UpgradeError> {
    let manifest = Env::find(dir)?.manifest()?;
    let locked = lock::read(&manifest.path);
    let gone: Vec<String> = locked
        .packages
        .keys()
        .filter(|id| !manifest.install.iter().any(|e| &e.id == *id))
        .cloned()
        .collect();
    if !gone.is_empty() {
        lock::update(&manifest.path, &[], &gone).map_err(|source| {
            UpgradeError::Manifest(ManifestError::Write {
                path: lock::path_for(&manifest.path),
                source,
            })
        })?;
    }
    Ok(gone)
}
