//! Install itself: readiness, then download and verify every missing path into a staging
//! directory, import them all, and edit the manifest and `pubdeck.lock` last.

use std::path::{Path, PathBuf};

use crate::cache;
use crate::catalog::{AnyCatalog, BuildRecord};
use crate::event::{Event, EventTx};
use crate::manifest::edit::StorePathInstall;
use crate::nix::StorePath;
use crate::nix::narinfo::NarInfo;
use crate::store::Store;

use super::error::InstallError;
use super::ready::ready;
use super::staging::{Staging, present, stage};
use super::{Mode, Request, lock, other_system_id};

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub package: String,
    pub version: String,
    pub system: String,
    pub store_path: String,
    /// Where the contents live locally.
    pub path: PathBuf,
    pub manifest: PathBuf,
    /// The install id added to `[install]`.
    pub id: String,
    /// The executables it provides: the entries of its `bin/`, as full paths.
    pub executables: Vec<PathBuf>,
    /// Every store path it needs, itself included (dependencies first).
    pub closure: Vec<String>,
    /// Where they are: `nix` (the Nix store) or `pubdeck` (pubdeck's own store).
    pub store: &'static str,
    /// How many paths of the closure were already there and reused.
    pub reused: usize,
}

/// Readiness; then every path of the closure not already (provably) here is downloaded and
/// verified into a staging directory; only when all of them passed are they imported (into
/// the Nix store with `nix copy` from the verified copy, or into pubdeck's own store); the
/// manifest is edited last.
pub async fn install(
    req: &Request,
    catalog: &AnyCatalog,
    tx: &EventTx,
) -> Result<Installed, InstallError> {
    let readiness = ready(req, catalog).await;
    for c in &readiness.checks {
        let _ = tx.send(Event::Check(c.clone())).await;
    }
    let pkg = readiness.package.clone();
    let Some(r) = readiness
        .resolved
        .filter(|_| readiness.checks.iter().all(|c| !c.blocks()))
    else {
        return Err(InstallError::NotReady(pkg, readiness.checks));
    };
    // The manifest text is computed (and validated) before anything is written: a
    // store-path descriptor for this system, one for each other system asked for.
    let entry_id = req.install_id();
    let reference = format!("{}@{}", pkg.name(), r.build.version);
    let this_system = [r.build.system.clone()];
    let other_ids: Vec<(String, [String; 1])> = r
        .others
        .iter()
        .map(|o| (other_system_id(&entry_id, &o.system), [o.system.clone()]))
        .collect();
    let mut descriptors = vec![StorePathInstall {
        id: &entry_id,
        store_path: &r.build.store_path,
        systems: &this_system,
        reference: &reference,
    }];
    for (o, (oid, systems)) in r.others.iter().zip(&other_ids) {
        descriptors.push(StorePathInstall {
            id: oid,
            store_path: &o.build.store_path,
            systems,
            reference: &reference,
        });
    }
    let new_manifest = r.manifest.with_store_paths(&descriptors)?;
    // Pinned: what the user asked for; an upgrade keeps the entry's, a migration takes the
    // version the old entry named.
    let pinned = match req.mode {
        Mode::Add => pkg.version.clone(),
        Mode::Upgrade => lock::read(&r.manifest.path)
            .packages
            .get(&entry_id)
            .and_then(|l| l.pinned.clone()),
        Mode::Migrate => r
            .manifest
            .install
            .iter()
            .find(|i| i.id == entry_id)
            .and_then(|i| i.version.clone()),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    tokio::fs::create_dir_all(&req.store_dir)
        .await
        .map_err(io(&req.store_dir))?;
    let top = r
        .closure
        .last()
        .expect("the closure holds the package")
        .clone();

    // 1. What is here already, proved to be those paths.
    let mut missing = Vec::new();
    for info in &r.closure {
        if !present(req, info).await? {
            missing.push(info.clone());
        }
    }
    let reused = r.closure.len() - missing.len();

    // 2. Download and verify everything missing into a staging directory: the compressed
    //    files, and (without Nix) the unpacked trees. Said at once when the disk cannot
    //    hold them, and said as such when it fills up on the way.
    let needed: u64 = missing
        .iter()
        .map(|i| {
            i.file_size
                .unwrap_or(i.nar_size)
                .saturating_add(if req.nix.is_none() { i.nar_size } else { 0 })
        })
        .sum();
    if let Ok(free) = crate::fsutil::free_bytes(&req.store_dir)
        && free < needed
    {
        return Err(InstallError::DiskFull {
            dir: req.store_dir.clone(),
            needed,
            free,
        });
    }
    let full = |e: InstallError| e.or_disk_full(&req.store_dir, needed);
    let staging = Staging::new(&req.store_dir)
        .map_err(io(&req.store_dir))
        .map_err(full)?;
    for info in &missing {
        stage(
            &r.store,
            &r.keys,
            info,
            staging.path(),
            req.nix.is_none(),
            tx,
        )
        .await
        .map_err(full)?;
    }
    // The other systems' closures: downloaded and verified only (they do not run here).
    for o in &r.others {
        let verify = staging.path().join("other").join(&o.system);
        for info in &o.closure {
            stage(&o.store, &o.keys, info, &verify, false, tx)
                .await
                .map_err(full)?;
        }
    }

    // 3. Import: the dependencies, then the package, so that a kill in between leaves only
    //    complete paths whose references are all there, and no package.
    let (deps, package): (Vec<&NarInfo>, Vec<&NarInfo>) =
        missing.iter().partition(|i| i.store_path != top.store_path);
    let location = match &req.nix {
        Some(nix) => {
            // The verified copy as a binary cache: every narinfo of the closure (Nix
            // computes the closure from them), the NARs of the missing paths.
            let cache_dir = staging.path().join("cache");
            for info in &r.closure {
                crate::fsutil::create_atomic(
                    &cache_dir.join(info.file_name()),
                    info.to_string().as_bytes(),
                )
                .map_err(io(&cache_dir))?;
            }
            crate::fsutil::create_atomic(
                &cache_dir.join("nix-cache-info"),
                cache::NIX_CACHE_INFO.as_bytes(),
            )
            .map_err(io(&cache_dir))?;
            for batch in [deps, package] {
                if batch.is_empty() {
                    continue;
                }
                let paths: Vec<&StorePath> = batch.iter().map(|i| &i.store_path).collect();
                nix.import(&cache_dir, &paths, &r.keys).await.map_err(|e| {
                    let unpacked = batch.iter().map(|i| i.nar_size).sum();
                    InstallError::from(e).or_disk_full(Path::new(crate::nix::STORE_DIR), unpacked)
                })?;
                crate::failpoint::pause("install-import").await;
            }
            PathBuf::from(top.store_path.to_string())
        }
        None => {
            for batch in [deps, package] {
                for info in &batch {
                    let staged = staging
                        .path()
                        .join("trees")
                        .join(info.store_path.base_name());
                    let dest = req.store_dir.join(info.store_path.base_name());
                    match crate::fsutil::rename_noreplace(&staged, &dest) {
                        Ok(()) => {}
                        // Installed meanwhile (a concurrent install): fine once it is proved.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            if !present(req, info).await? {
                                return Err(InstallError::Occupied {
                                    path: dest.display().to_string(),
                                    where_: "pubdeck's store".into(),
                                    detail: "it changed while installing".into(),
                                });
                            }
                        }
                        Err(e) => return Err(io(&dest)(e)),
                    }
                }
                if !batch.is_empty() {
                    crate::failpoint::pause("install-import").await;
                }
            }
            req.store_dir.join(top.store_path.base_name())
        }
    };
    drop(staging);
    let _ = tx
        .send(Event::Note {
            message: format!("{} is in {}", top.store_path, location.display()),
        })
        .await;

    // 4. The manifest, last; then the lock (what each entry is, and from where).
    r.manifest.write(&new_manifest)?;
    let locked = |build: &BuildRecord, store: &Store, key_name: &str| lock::Locked {
        org: pkg.org.clone(),
        package: pkg.package.clone(),
        version: build.version.clone(),
        pinned: pinned.clone(),
        system: build.system.clone(),
        catalog: req.catalog_label.clone(),
        store_url: store.url().to_string(),
        store_path: build.store_path.clone(),
        nar_hash: build.nar_hash.clone(),
        key_name: key_name.to_string(),
    };
    let mut entries = vec![(entry_id.clone(), locked(&r.build, &r.store, &r.key_name))];
    for (o, (oid, _)) in r.others.iter().zip(&other_ids) {
        entries.push((oid.clone(), locked(&o.build, &o.store, &o.key_name)));
    }
    if let Err(e) = lock::update(&r.manifest.path, &entries, &[]) {
        let _ = tx
            .send(Event::Note {
                message: format!(
                    "could not record the install in {}: {e}",
                    lock::path_for(&r.manifest.path).display()
                ),
            })
            .await;
    }
    Ok(Installed {
        package: pkg.name(),
        version: r.build.version.clone(),
        system: r.build.system.clone(),
        store_path: r.build.store_path.clone(),
        manifest: r.manifest.path.clone(),
        id: entry_id,
        executables: executables(&location),
        path: location,
        closure: r.closure.iter().map(|i| i.store_path.to_string()).collect(),
        store: if req.nix.is_some() { "nix" } else { "pubdeck" },
        reused,
    })
}

/// The entries of `root/bin` (sorted full paths); none when it has no `bin/`.
pub fn executables(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join("bin"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}
