//! Install readiness and install: from `myorg/hello[@1.0]` to a verified, unpacked store path
//! under the local store directory and an `[install]` entry in the environment's manifest.
//!
//! Install goes straight to the Catalog Store (never through the catalog service) and always
//! verifies the narinfo signature against the catalog's keys, the compressed file's
//! FileHash/FileSize and the NarHash/NarSize — it does not trust CA paths the way Nix does.
//! Any failure leaves both the local store and the manifest as they were.

use crate::event::Hinted;
use std::path::{Path, PathBuf};

use crate::cache;
use crate::catalog::{
    AnyCatalog, BuildRecord, Catalog, CatalogError, PackageDetail, parse_package_ref,
};
use crate::event::{Event, EventTx};
use crate::git::Check;
use crate::manifest::edit::NewInstall;
use crate::manifest::{Env, Manifest};
use crate::narinfo::NarInfo;
use crate::publish::current_system;
use crate::sign::PublicKey;
use crate::store::{DownloadOptions, OpenOptions, ProgressSink, Store};

/// Check ids of `ready`, in order.
pub mod id {
    pub const VISIBLE: &str = "visible";
    pub const SYSTEM_BUILD: &str = "system-build";
    pub const NARINFO: &str = "narinfo";
    pub const SIGNATURE: &str = "signature";
    pub const NAR: &str = "nar";
    pub const NIX_CONFIG: &str = "nix-config";
    pub const ENVIRONMENT: &str = "environment";
    pub const NOT_INSTALLED: &str = "not-installed";
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
            Some((n, v)) if !v.is_empty() => (n, Some(v.to_string())),
            Some(_) => {
                return Err(CatalogError::BadRequest(format!(
                    "{s:?} has an empty version after `@`"
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
        }
    }
}

/// Everything `ready` found, for `install` to act on.
struct Resolved {
    build: BuildRecord,
    store: Store,
    narinfo: NarInfo,
    keys: Vec<PublicKey>,
    manifest: Manifest,
}

/// The readiness report.
pub struct Readiness {
    pub package: PackageRef,
    pub checks: Vec<Check>,
    /// The version that would be installed.
    pub version: Option<String>,
    resolved: Option<Resolved>,
}

impl Readiness {
    /// Ready when no blocking check failed (warnings do not count).
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(Check::blocks)
    }
}

/// Evaluates every install-readiness check, all at once.
pub async fn ready(req: &Request, catalog: &AnyCatalog) -> Readiness {
    let pkg = &req.package;
    let mut checks = Vec::new();
    let not_checked = |id, why: &str| {
        Check::fail(
            id,
            format!("not checked: {why}"),
            "fix the checks above first",
        )
    };

    // visible + a build for this system
    let detail = match catalog.show(&pkg.org, &pkg.package).await {
        Ok(d) => {
            checks.push(Check::pass(
                id::VISIBLE,
                format!("{} is visible to you (catalog owner: {})", d.name, d.owner),
            ));
            Some(d)
        }
        Err(CatalogError::NotFound(_)) => {
            checks.push(Check::fail(
                id::VISIBLE,
                format!("there is no package {} in the catalogs you can see", pkg.name()),
                format!(
                    "check the name with `pubdeck search {}`, or ask the owner of `{}` to run `pubdeck catalog allow {} <you>`",
                    pkg.package, pkg.org, pkg.org
                ),
            ));
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                id::VISIBLE,
                e.to_string(),
                e.hint()
                    .unwrap_or_else(|| "check the catalog URL and token".into()),
            ));
            None
        }
    };
    let build = detail
        .as_ref()
        .and_then(|d| pick_build(d, pkg, &req.system, &mut checks));
    if detail.is_none() {
        checks.push(not_checked(id::SYSTEM_BUILD, "the package is not visible"));
    }
    let version = build.as_ref().map(|b| b.version.clone());

    // narinfo + signature + nar, straight from the store
    let keys: Vec<PublicKey> = detail
        .as_ref()
        .map(|d| {
            d.keys
                .iter()
                .filter_map(|k| PublicKey::parse(k).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut store = None;
    let mut narinfo = None;
    match (&detail, &build) {
        (Some(d), Some(b)) => match fetch_narinfo(d, b, &req.store_open).await {
            Ok((s, info)) => {
                checks.push(Check::pass(id::NARINFO, format!("{} has the narinfo of {}", s.url(), b.store_path)));
                store = Some(s);
                narinfo = Some(info);
            }
            Err(msg) => checks.push(Check::fail(
                id::NARINFO,
                msg,
                "the publisher's upload did not complete or the store moved; ask them to publish again",
            )),
        },
        _ => checks.push(not_checked(id::NARINFO, "no build to look up")),
    }
    match &narinfo {
        Some(info) => match info.verify(&keys) {
            Ok(name) => checks.push(Check::pass(id::SIGNATURE, format!("signed by `{name}`, a key catalog `{}` trusts", pkg.org))),
            Err(e) => checks.push(Check::fail(
                id::SIGNATURE,
                e.to_string(),
                format!("the catalog owner must add the signing key (`pubdeck catalog add-key {} KEY.pub`) or republish", pkg.org),
            )),
        },
        None => checks.push(not_checked(id::SIGNATURE, "no narinfo")),
    }
    match (&store, &narinfo) {
        (Some(s), Some(info)) => match s.head(&info.url).await {
            Ok(Some(size)) if size == info.file_size => checks.push(Check::pass(
                id::NAR,
                format!("{} is in the store ({} bytes)", info.url, size),
            )),
            Ok(Some(size)) => checks.push(Check::fail(
                id::NAR,
                format!(
                    "{} has {size} bytes but the narinfo says {}",
                    info.url, info.file_size
                ),
                "the artifact is damaged; ask the publisher to publish again",
            )),
            Ok(None) => checks.push(Check::fail(
                id::NAR,
                format!("{} is missing from {}", info.url, s.url()),
                "the artifact is gone from the store; ask the publisher to publish again",
            )),
            Err(e) => checks.push(Check::fail(
                id::NAR,
                e.to_string(),
                "check access to the store",
            )),
        },
        _ => checks.push(not_checked(id::NAR, "no narinfo")),
    }

    // Nix configuration: a warning only, pubdeck's own install does not go through Nix.
    if let Some(d) = &detail {
        checks.push(nix_config(d, &req.nix_conf));
    }

    // the environment
    let manifest = match Env::find(&req.dir).and_then(|e| e.manifest()) {
        Ok(m) => {
            checks.push(Check::pass(
                id::ENVIRONMENT,
                format!("environment {}", req.dir.display()),
            ));
            Some(m)
        }
        Err(e) => {
            checks.push(Check::fail(
                id::ENVIRONMENT,
                e.to_string(),
                e.hint().unwrap_or_else(|| "fix the manifest first".into()),
            ));
            None
        }
    };
    match &manifest {
        Some(m) => {
            let full = pkg.name();
            match m
                .install
                .iter()
                .find(|i| i.id == pkg.package || i.pkg_path.as_deref() == Some(full.as_str()))
            {
                Some(i) => checks.push(Check::fail(
                    id::NOT_INSTALLED,
                    format!(
                        "the environment already installs `{}` ({})",
                        i.id,
                        i.describe()
                    ),
                    format!(
                        "remove `{}` from [install] to install another version",
                        i.id
                    ),
                )),
                None => checks.push(Check::pass(
                    id::NOT_INSTALLED,
                    format!("{full} is not installed yet"),
                )),
            }
        }
        None => checks.push(not_checked(id::NOT_INSTALLED, "no environment")),
    }

    let resolved = match (build, store, narinfo, manifest) {
        (Some(build), Some(store), Some(narinfo), Some(manifest)) => Some(Resolved {
            build,
            store,
            narinfo,
            keys,
            manifest,
        }),
        _ => None,
    };
    Readiness {
        package: pkg.clone(),
        checks,
        version,
        resolved,
    }
}

fn pick_build(
    d: &PackageDetail,
    pkg: &PackageRef,
    system: &str,
    checks: &mut Vec<Check>,
) -> Option<BuildRecord> {
    let version = match &pkg.version {
        Some(v) => d.versions.iter().find(|x| &x.version == v),
        None => d.versions.first(),
    };
    let Some(version) = version else {
        let known: Vec<&str> = d.versions.iter().map(|v| v.version.as_str()).collect();
        checks.push(Check::fail(
            id::SYSTEM_BUILD,
            format!(
                "{} has no version {}",
                d.name,
                pkg.version.as_deref().unwrap_or("at all")
            ),
            format!(
                "published versions: {}",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ),
        ));
        return None;
    };
    match version.builds.iter().find(|b| b.system == system) {
        Some(b) => {
            checks.push(Check::pass(
                id::SYSTEM_BUILD,
                format!("{}@{} has a build for {system}", d.name, version.version),
            ));
            Some(b.clone())
        }
        None => {
            let systems: Vec<&str> = version.builds.iter().map(|b| b.system.as_str()).collect();
            checks.push(Check::fail(
                id::SYSTEM_BUILD,
                format!(
                    "{}@{} has builds for {} only, not {system}",
                    d.name,
                    version.version,
                    systems.join(", ")
                ),
                format!("publish it from a {system} machine"),
            ));
            None
        }
    }
}

async fn fetch_narinfo(
    d: &PackageDetail,
    b: &BuildRecord,
    open: &OpenOptions,
) -> Result<(Store, NarInfo), String> {
    let store = Store::open_str(&d.store_url, open)
        .await
        .map_err(|e| e.to_string())?;
    let hash_part = b
        .store_path
        .strip_prefix("/nix/store/")
        .and_then(|r| r.split('-').next())
        .ok_or_else(|| format!("the catalog's store path {:?} is malformed", b.store_path))?;
    let key = format!("{hash_part}.narinfo");
    let bytes = store
        .get(&key)
        .await
        .map_err(|e| format!("cannot read {key} from {}: {e}", store.url()))?;
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| format!("{key} is not UTF-8"))?;
    let info =
        NarInfo::parse(&text).map_err(|e| format!("{key} in {} is invalid: {e}", store.url()))?;
    if info.store_path.to_string() != b.store_path
        || info.nar_hash.to_string() != b.nar_hash
        || info.nar_size != b.nar_size
    {
        return Err(format!(
            "{key} in {} describes other contents than the catalog registered for {}",
            store.url(),
            b.store_path
        ));
    }
    Ok((store, info))
}

/// Does the local Nix configuration trust the catalog's keys and list its store?
fn nix_config(d: &PackageDetail, files: &[PathBuf]) -> Check {
    let mut substituters = Vec::new();
    let mut trusted = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let values = v.split_whitespace().map(str::to_string);
            match k.trim() {
                "substituters" | "extra-substituters" | "trusted-substituters" => {
                    substituters.extend(values)
                }
                "trusted-public-keys" | "extra-trusted-public-keys" => trusted.extend(values),
                _ => {}
            }
        }
    }
    let store_ok = substituters
        .iter()
        .any(|s| s.trim_end_matches('/') == d.store_url.trim_end_matches('/'));
    let missing_keys: Vec<&String> = d.keys.iter().filter(|k| !trusted.contains(k)).collect();
    if store_ok && missing_keys.is_empty() {
        return Check::pass(
            id::NIX_CONFIG,
            "Nix trusts the catalog's keys and lists its store",
        );
    }
    let mut lines = Vec::new();
    if !store_ok {
        lines.push(format!("extra-substituters = {}", d.store_url));
    }
    if !missing_keys.is_empty() {
        lines.push(format!(
            "extra-trusted-public-keys = {}",
            missing_keys
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    Check::warn(
        id::NIX_CONFIG,
        "Nix is not configured for this catalog (pubdeck's own install does not need it)",
        format!(
            "to let Nix substitute from it, add to ~/.config/nix/nix.conf: {}",
            lines.join(" ; ")
        ),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{} is not ready to install: {}", .0, .1.iter().filter(|c| c.blocks()).map(|c| c.id).collect::<Vec<_>>().join(", "))]
    NotReady(PackageRef, Vec<Check>),
    #[error("download of {key} from {store} failed: {message}")]
    Download {
        store: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Verify(String),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("cannot prepare {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl crate::event::Hinted for InstallError {
    fn hint(&self) -> Option<String> {
        match self {
            InstallError::NotReady(p, _) => Some(format!("run `pubdeck ready {p}` for the details and fixes")),
            InstallError::Verify(_) => Some("the artifact in the store does not match what was signed; nothing was installed. Ask the publisher to publish again".into()),
            InstallError::Manifest(e) => e.hint(),
            _ => None,
        }
    }
}

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
}

/// Readiness, download, verify, unpack atomically, then edit the manifest.
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
    // The manifest text is computed (and validated) before anything is written.
    let new_manifest = r.manifest.with_install(&NewInstall {
        id: &pkg.package,
        pkg_path: &pkg.name(),
        pkg_group: Some(&pkg.package),
        version: pkg.version.as_deref(),
    })?;

    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    tokio::fs::create_dir_all(&req.store_dir)
        .await
        .map_err(io(&req.store_dir))?;
    let dest = req.store_dir.join(r.narinfo.store_path.base_name());
    let existed = tokio::fs::symlink_metadata(&dest).await.is_ok();
    if !existed {
        let tmp = tempfile::Builder::new()
            .prefix(".pubdeck-download-")
            .tempdir_in(&req.store_dir)
            .map_err(io(&req.store_dir))?;
        let file = tmp.path().join("nar");
        let (sink, progress) = ProgressSink::channel();
        let forward = tokio::spawn(crate::store::forward_as_events(
            progress,
            tx.clone(),
            crate::event::Direction::Download,
            r.narinfo.url.clone(),
        ));
        let opts = DownloadOptions {
            expected_size: Some(r.narinfo.file_size),
            expected_sha256: Some(r.narinfo.file_hash.0),
            ..Default::default()
        };
        let downloaded = r.store.download(&r.narinfo.url, &file, &opts, &sink).await;
        drop(sink);
        let _ = forward.await;
        downloaded.map_err(|e| InstallError::Download {
            store: r.store.url().to_string(),
            key: r.narinfo.url.clone(),
            message: e.to_string(),
        })?;
        let (info, keys, dest2) = (r.narinfo.clone(), r.keys.clone(), dest.clone());
        tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&file).map_err(|e| InstallError::Verify(e.to_string()))?;
            cache::fetch_nar(&info, &keys, std::io::BufReader::new(f), &dest2)
                .map_err(|e| InstallError::Verify(e.to_string()))
        })
        .await
        .expect("verify task panicked")?;
    }
    let _ = tx
        .send(Event::Note {
            message: format!("{} is in {}", r.narinfo.store_path, dest.display()),
        })
        .await;
    if let Err(e) = r.manifest.write(&new_manifest) {
        if !existed {
            let _ = remove_tree(&dest);
        }
        return Err(e.into());
    }
    Ok(Installed {
        package: pkg.name(),
        version: r.build.version.clone(),
        system: r.build.system.clone(),
        store_path: r.build.store_path.clone(),
        manifest: r.manifest.path.clone(),
        id: pkg.package.clone(),
        executables: executables(&dest),
        path: dest,
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

/// Unpacked trees are read-only; make them writable, then remove.
fn remove_tree(p: &Path) -> std::io::Result<()> {
    let _ = std::process::Command::new("chmod")
        .arg("-R")
        .arg("u+w")
        .arg(p)
        .status();
    std::fs::remove_dir_all(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_refs() {
        let r = PackageRef::parse("myorg/hello@1.2.0").unwrap();
        assert_eq!(
            (r.org.as_str(), r.package.as_str(), r.version.as_deref()),
            ("myorg", "hello", Some("1.2.0"))
        );
        assert_eq!(r.to_string(), "myorg/hello@1.2.0");
        assert_eq!(PackageRef::parse("myorg/hello").unwrap().version, None);
        assert!(PackageRef::parse("myorg/hello@").is_err());
        assert!(PackageRef::parse("hello").is_err());
        assert!(PackageRef::parse("myorg/../x").is_err());
    }
}
