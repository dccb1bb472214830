//! `pubdeck upgrade`: move the environment's org packages that pin no version to the newest
//! version not yanked. What an entry resolved to before comes from the lock
//! ([`super::lock`]); each upgrade is a whole verified install ([`super::install`] in
//! [`Mode::Upgrade`]) and records the new version in the lock.

use std::path::Path;

use serde::Serialize;

use super::{Installed, Mode, PackageRef, Request, lock};
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

/// What `upgrade` would do for the entries `ids` (all org packages when empty) of the
/// environment at `dir`, on `system`.
pub async fn plan(
    dir: &Path,
    ids: &[String],
    catalog: &AnyCatalog,
    system: &str,
) -> Result<Vec<Step>, UpgradeError> {
    let manifest = Env::find(dir)?.manifest()?;
    for id in ids {
        if !manifest.install.iter().any(|i| &i.id == id) {
            return Err(UpgradeError::NoEntry(id.clone()));
        }
    }
    let locked = lock::read(&manifest.path);
    let mut steps = Vec::new();
    for entry in &manifest.install {
        if !ids.is_empty() && !ids.contains(&entry.id) {
            continue;
        }
        let Some(path) = entry.pkg_path.as_deref() else {
            continue;
        };
        // Only org packages (ORG/PKG); nixpkgs attribute paths are not the catalog's.
        let Ok((org, package)) = parse_package_ref(path) else {
            if !ids.is_empty() {
                steps.push(Step {
                    id: entry.id.clone(),
                    package: path.to_string(),
                    from: None,
                    to: None,
                    status: Status::NotInCatalog,
                    message: None,
                });
            }
            continue;
        };
        let from = locked
            .packages
            .get(&entry.id)
            .filter(|l| l.package == path)
            .map(|l| l.version.clone());
        let mut step = Step {
            id: entry.id.clone(),
            package: path.to_string(),
            from,
            to: None,
            status: Status::Available,
            message: None,
        };
        if let Some(v) = &entry.version {
            step.status = Status::Pinned;
            step.message = Some(format!("pinned to {v}"));
            steps.push(step);
            continue;
        }
        let detail = match catalog.show(&org, &package).await {
            Ok(d) => d,
            Err(CatalogError::NotFound(_)) => {
                step.status = Status::NotInCatalog;
                steps.push(step);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // Versions come highest first.
        step.to = detail
            .versions
            .iter()
            .find(|v| !v.yanked && v.builds.iter().any(|b| b.system == system))
            .map(|v| v.version.clone());
        step.status = match (&step.from, &step.to) {
            (_, None) => Status::NoCandidate,
            (Some(f), Some(t)) if f == t => Status::UpToDate,
            _ => Status::Available,
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Carries out `steps` (those [`Status::Available`]): each is a whole install of the new
/// version; a failure is recorded in its step and the others go on.
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
        req.mode = Mode::Upgrade;
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
