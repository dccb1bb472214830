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

pub use nix::NixStore;

use crate::event::Hinted;
use std::path::{Path, PathBuf};

use crate::cache;
use crate::catalog::{
    Addressing, AnyCatalog, BuildRecord, Catalog, CatalogError, PackageDetail, parse_package_ref,
};
use crate::event::{Event, EventTx};
use crate::git::Check;
use crate::manifest::edit::StorePathInstall;
use crate::manifest::{Env, Manifest};
use crate::nix::StorePath;
use crate::nix::current_system;
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::PublicKey;
use crate::store::{DownloadOptions, OpenOptions, ProgressSink, Store, StoreError};
use std::collections::HashMap;

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

/// Everything `ready` found, for `install` to act on.
struct Resolved {
    build: BuildRecord,
    store: Store,
    /// The key whose signature on the package's narinfo verified.
    key_name: String,
    /// The closure's narinfos, dependencies first, the package last.
    closure: Vec<NarInfo>,
    keys: Vec<PublicKey>,
    manifest: Manifest,
    /// The same version for the other systems asked for: verified, not imported.
    others: Vec<Other>,
}

/// A build of the package for another system (`install --system`).
struct Other {
    system: String,
    build: BuildRecord,
    store: Store,
    key_name: String,
    closure: Vec<NarInfo>,
    keys: Vec<PublicKey>,
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

/// The same version for each system of `req.extra_systems`: one check that says which ids
/// they get, or why one cannot be installed.
async fn other_systems(
    req: &Request,
    catalog: &AnyCatalog,
    version: Option<&str>,
    checks: &mut Vec<Check>,
) -> Vec<Other> {
    let mut systems: Vec<&String> = req
        .extra_systems
        .iter()
        .filter(|s| **s != req.system)
        .collect();
    systems.sort();
    systems.dedup();
    if systems.is_empty() {
        return Vec::new();
    }
    let Some(version) = version else {
        checks.push(Check::fail(
            id::OTHER_SYSTEMS,
            "other systems not checked: no version for this system",
            "fix the checks above first",
        ));
        return Vec::new();
    };
    let id = req.install_id();
    let mut out = Vec::new();
    let mut said = Vec::new();
    for system in systems {
        let mut sub = req.clone();
        sub.package.version = Some(version.to_string());
        let mut sub_checks = Vec::new();
        let f = find(&sub, system, catalog, &mut sub_checks).await;
        if let Some(bad) = sub_checks.iter().find(|c| c.blocks()) {
            checks.push(Check::fail(
                id::OTHER_SYSTEMS,
                format!("for {system}: {}", bad.message),
                bad.hint.clone().unwrap_or_default(),
            ));
            return Vec::new();
        }
        match (f.build, f.store, f.closure, f.key_name) {
            (Some(build), Some(store), Some(closure), Some(key_name)) => {
                said.push(format!(
                    "`{}` for {system} ({} store path{}, verified, not imported)",
                    other_system_id(&id, system),
                    closure.len(),
                    if closure.len() == 1 { "" } else { "s" }
                ));
                out.push(Other {
                    system: system.clone(),
                    build,
                    store,
                    key_name,
                    closure,
                    keys: f.keys,
                });
            }
            _ => {
                checks.push(Check::fail(
                    id::OTHER_SYSTEMS,
                    format!("for {system}: the build could not be resolved"),
                    "run `pubdeck ready` for that system's details",
                ));
                return Vec::new();
            }
        }
    }
    checks.push(Check::pass(
        id::OTHER_SYSTEMS,
        format!(
            "also writes {} (each with systems = [\"<that system>\"]; `{id}` is for {})",
            said.join(", "),
            req.system
        ),
    ));
    out
}

/// Whether `req` may write its `[install]` entry: a new id, or (upgrade, migrate, or an
/// install over the form earlier versions wrote) the entry it replaces.
fn not_installed(req: &Request, m: &Manifest) -> Check {
    let id = req.install_id();
    let full = req.package.name();
    let entry = m.install.iter().find(|i| i.id == id);
    let locked = lock::read(&m.path);
    match (req.mode, entry) {
        (Mode::Upgrade | Mode::Migrate, Some(_)) => {
            Check::pass(id::NOT_INSTALLED, format!("`{id}` installs {full}"))
        }
        (Mode::Upgrade | Mode::Migrate, None) => Check::fail(
            id::NOT_INSTALLED,
            format!("the environment has no [install] entry `{id}`"),
            format!("install it with `pubdeck install {full}`"),
        ),
        (Mode::Add, None) => {
            // The ids of the other systems must be free too, or pubdeck's own for this package.
            let taken = req
                .extra_systems
                .iter()
                .map(|s| other_system_id(&id, s))
                .find(|x| {
                    m.install.iter().any(|i| &i.id == x)
                        && locked.packages.get(x).is_none_or(|l| l.name() != full)
                });
            match taken {
                Some(x) => Check::fail(
                    id::NOT_INSTALLED,
                    format!(
                        "the environment already has an [install] entry `{x}`, the id pubdeck would give another system's build"
                    ),
                    format!("rename or remove `{x}`"),
                ),
                None => Check::pass(id::NOT_INSTALLED, format!("{full} is not installed yet")),
            }
        }
        (Mode::Add, Some(i)) if i.pkg_path.as_deref() == Some(full.as_str()) => Check::pass(
            id::NOT_INSTALLED,
            format!(
                "`{id}` names {full} in the form only FloxHub resolves; installing rewrites it to a store path"
            ),
        ),
        (Mode::Add, Some(i)) => Check::fail(
            id::NOT_INSTALLED,
            format!("the environment already installs `{id}` ({})", i.describe()),
            format!(
                "`pubdeck upgrade {id}` moves it to the newest version; remove `{id}` from [install] to install another"
            ),
        ),
    }
}

/// Whether `[install]` and `pubdeck.lock` agree, and no entry names an org package in the
/// form only FloxHub resolves. A warning: nothing about this install depends on it.
async fn lock_agrees(m: &Manifest, catalog: &AnyCatalog) -> Check {
    let locked = lock::read(&m.path);
    let orgs: Vec<String> = catalog
        .catalogs()
        .await
        .map(|cs| cs.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    for e in &m.install {
        if let (Some(sp), Some(l)) = (&e.store_path, locked.packages.get(&e.id))
            && sp != &l.store_path
        {
            problems.push(format!(
                "`{}` is {sp}, not {} (pubdeck.lock: {})",
                e.id,
                l.store_path,
                l.reference()
            ));
            hints.push(format!("`pubdeck upgrade {}` writes both again", e.id));
        }
        if let Some(p) = &e.pkg_path
            && let Ok((org, _)) = parse_package_ref(p)
            && orgs.contains(&org)
        {
            problems.push(format!(
                "FloxHub cannot resolve `{}` ({p}): Flox looks org packages up on FloxHub only",
                e.id
            ));
            hints.push("`pubdeck migrate` rewrites it to the store path pubdeck verifies".into());
        }
    }
    for (id, l) in &locked.packages {
        if !m.install.iter().any(|e| &e.id == id) {
            problems.push(format!(
                "pubdeck.lock records `{id}` ({}), which [install] no longer has",
                l.reference()
            ));
            hints.push("`pubdeck migrate` removes it from the lock".into());
        }
    }
    hints.dedup();
    if problems.is_empty() {
        Check::pass(
            id::LOCK,
            format!(
                "[install] and pubdeck.lock agree ({} entr{} from catalogs)",
                locked.packages.len(),
                if locked.packages.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ),
        )
    } else {
        Check::warn(id::LOCK, problems.join("; "), hints.join("; "))
    }
}

/// What the catalog and its store say about a package for one system.
struct Found {
    detail: Option<PackageDetail>,
    build: Option<BuildRecord>,
    store: Option<Store>,
    closure: Option<Vec<NarInfo>>,
    keys: Vec<PublicKey>,
    key_name: Option<String>,
}

/// Evaluates every install-readiness check, all at once.
pub async fn ready(req: &Request, catalog: &AnyCatalog) -> Readiness {
    let pkg = &req.package;
    let mut checks = Vec::new();
    let found = find(req, &req.system, catalog, &mut checks).await;
    let version = found.build.as_ref().map(|b| b.version.clone());
    if let Some(all) = &found.closure {
        checks.push(runs_here(req, all));
    }
    let others = other_systems(req, catalog, version.as_deref(), &mut checks).await;

    // Nix configuration: a warning only, pubdeck's own install does not go through Nix.
    if let Some(d) = &found.detail {
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
            checks.push(not_installed(req, m));
            checks.push(lock_agrees(m, catalog).await);
        }
        None => checks.push(Check::fail(
            id::NOT_INSTALLED,
            "installed state not checked: no environment",
            "fix the checks above first",
        )),
    }

    let Found {
        build,
        store,
        closure,
        keys,
        key_name,
        ..
    } = found;
    let resolved = match (build, store, closure, manifest, key_name) {
        (Some(build), Some(store), Some(closure), Some(manifest), Some(key_name)) => {
            Some(Resolved {
                build,
                store,
                key_name,
                closure,
                keys,
                manifest,
                others,
            })
        }
        _ => None,
    };
    Readiness {
        package: pkg.clone(),
        checks,
        version,
        resolved,
    }
}

/// The catalog's and the store's checks of `req.package` for `system`: visible, a build for
/// the system, its narinfo, signature, closure and NARs.
async fn find(req: &Request, system: &str, catalog: &AnyCatalog, checks: &mut Vec<Check>) -> Found {
    let pkg = &req.package;
    let not_checked = |id, what: &str, why: &str| {
        Check::fail(
            id,
            format!("{what} not checked: {why}"),
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
        Err(CatalogError::NotFound { .. }) => {
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
        .and_then(|d| pick_build(d, pkg, system, checks));
    if detail.is_none() {
        checks.push(not_checked(
            id::SYSTEM_BUILD,
            "build for this system",
            "the package is not visible",
        ));
    }

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
    let mut key_name = None;
    match (&detail, &build) {
        (Some(d), Some(b)) => match fetch_narinfo(d, b, &req.store_open).await {
            Ok((s, info)) => {
                checks.push(Check::pass(
                    id::NARINFO,
                    match b.addressing {
                        Addressing::Content => format!(
                            "{} has the narinfo of {}, named by its content",
                            s.url(),
                            b.store_path
                        ),
                        Addressing::Input => format!(
                            "{} has the narinfo of {}, as the catalog registered it",
                            s.url(),
                            b.store_path
                        ),
                    },
                ));
                store = Some(s);
                narinfo = Some(info);
            }
            Err((msg, hint)) => checks.push(Check::fail(
                id::NARINFO,
                msg,
                hint.unwrap_or_else(|| "the publisher's upload did not complete, the store moved, or its narinfo was replaced; ask them to publish again".into()),
            )),
        },
        _ => checks.push(not_checked(id::NARINFO, "narinfo", "no build to look up")),
    }
    match &narinfo {
        Some(info) => match info.verify(&keys) {
            Ok(name) => {
                checks.push(Check::pass(
                    id::SIGNATURE,
                    format!("signed by `{name}`, a key catalog `{}` trusts", pkg.org),
                ));
                key_name = Some(name);
            }
            Err(e) => checks.push(untrusted_signature(info, &keys, &pkg.org, e.to_string())),
        },
        None => checks.push(not_checked(id::SIGNATURE, "signature", "no narinfo")),
    }
    let mut closure = None;
    let rule = build.as_ref().map_or(Addressing::Content, |b| b.addressing);
    match (&store, &narinfo) {
        (Some(s), Some(info)) => match walk_closure(s, info, &keys, rule).await {
            Ok(all) => {
                checks.push(Check::pass(
                    id::CLOSURE,
                    match all.len() {
                        1 => "it needs no other store path".to_string(),
                        n => match rule {
                            Addressing::Content => format!(
                                "its closure of {n} store paths is in the store, signed and content-addressed"
                            ),
                            Addressing::Input => format!(
                                "its closure of {n} store paths is in the store and signed (an input-addressed Flox build)"
                            ),
                        },
                    },
                ));
                closure = Some(all);
            }
            Err(msg) => checks.push(Check::fail(
                id::CLOSURE,
                msg,
                "ask the publisher to publish again; pubdeck uploads a package's closure with it",
            )),
        },
        _ => checks.push(not_checked(id::CLOSURE, "closure", "no narinfo")),
    }
    match (&store, &closure) {
        (Some(s), Some(all)) => match missing_nars(s, all).await {
            Ok(None) => {
                let bytes: u64 = all.iter().map(|i| i.file_size.unwrap_or(i.nar_size)).sum();
                checks.push(Check::pass(
                    id::NAR,
                    format!("every NAR is in the store ({bytes} bytes to download at most)"),
                ))
            }
            Ok(Some(msg)) => checks.push(Check::fail(
                id::NAR,
                msg,
                "the artifact is gone or damaged in the store; ask the publisher to publish again",
            )),
            Err(e) => checks.push(Check::fail(
                id::NAR,
                e.to_string(),
                "check access to the store",
            )),
        },
        _ => checks.push(not_checked(id::NAR, "NAR files", "no closure")),
    }

    Found {
        detail,
        build,
        store,
        closure,
        keys,
        key_name,
    }
}

/// The failed signature check, explained: a narinfo whose keys the catalog no longer trusts
/// (removed in a rotation without a re-sign) says so and how to fix it.
fn untrusted_signature(info: &NarInfo, keys: &[PublicKey], org: &str, error: String) -> Check {
    let names: Vec<&str> = info.sigs.iter().map(|s| s.key_name()).collect();
    let known = names.iter().any(|n| keys.iter().any(|k| k.name() == *n));
    if !names.is_empty() && !known {
        return Check::fail(
            id::SIGNATURE,
            format!(
                "{} is signed only by {}, which catalog `{org}` no longer trusts (a removed key?)",
                info.store_path,
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "the catalog owner signs it with a trusted key: `pubdeck catalog re-sign {org} --signing-key KEY.sec` (or adds the old key back)"
            ),
        );
    }
    Check::fail(
        id::SIGNATURE,
        error,
        format!(
            "the catalog owner must add the signing key (`pubdeck catalog add-key {org} KEY.pub`) or republish"
        ),
    )
}

fn pick_build(
    d: &PackageDetail,
    pkg: &PackageRef,
    system: &str,
    checks: &mut Vec<Check>,
) -> Option<BuildRecord> {
    // Pinned: exactly that version, yanked or not (environments that pin it keep working).
    // Otherwise the newest version not yanked.
    let version = match &pkg.version {
        Some(v) => d.versions.iter().find(|x| &x.version == v),
        None => d.versions.iter().find(|x| !x.yanked),
    };
    let Some(version) = version else {
        let known: Vec<&str> = d.versions.iter().map(|v| v.version.as_str()).collect();
        checks.push(Check::fail(
            id::SYSTEM_BUILD,
            match &pkg.version {
                Some(v) => format!("{} has no version {v}", d.name),
                None if !known.is_empty() => format!("every version of {} is yanked", d.name),
                None => format!("{} has no version at all", d.name),
            },
            match &pkg.version {
                None if !known.is_empty() => format!(
                    "pin one to install it anyway ({}@VERSION; yanked: {})",
                    d.name,
                    known.join(", ")
                ),
                _ => format!(
                    "published versions: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            },
        ));
        return None;
    };
    match version.builds.iter().find(|b| b.system == system) {
        Some(b) => {
            checks.push(Check::pass(
                id::SYSTEM_BUILD,
                if version.yanked {
                    format!(
                        "{}@{} has a build for {system} (yanked: installed only because it is pinned)",
                        d.name, version.version
                    )
                } else {
                    format!("{}@{} has a build for {system}", d.name, version.version)
                },
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

/// The build's narinfo from the catalog's store, checked against the catalog's record. An error
/// is its message and, when the store could not be opened, that error's own hint.
async fn fetch_narinfo(
    d: &PackageDetail,
    b: &BuildRecord,
    open: &OpenOptions,
) -> Result<(Store, NarInfo), (String, Option<String>)> {
    use crate::event::Hinted as _;
    let store = Store::open_str(&d.store_url, open)
        .await
        .map_err(|e| (e.to_string(), e.hint()))?;
    fetch_checked_narinfo(&store, b)
        .await
        .map(|info| (store, info))
        .map_err(|msg| (msg, None))
}

async fn fetch_checked_narinfo(store: &Store, b: &BuildRecord) -> Result<NarInfo, String> {
    let hash_part = b
        .store_path
        .strip_prefix(crate::nix::STORE_PREFIX)
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
    if b.addressing == Addressing::Content {
        cache::require_content_address(&info).map_err(|e| e.to_string())?;
    }
    Ok(info)
}

/// Longest closure install follows.
const MAX_CLOSURE: usize = 10_000;

/// The narinfos of `top`'s closure, dependencies first and `top` last; each must be in the
/// store and signed by one of `keys`, and, for a content-addressed build, content-addressed
/// (an input-addressed build, which Flox published, refers to input-addressed paths: the
/// catalog registered it only after finding this same closure signed in the store).
async fn walk_closure(
    store: &Store,
    top: &NarInfo,
    keys: &[PublicKey],
    rule: Addressing,
) -> Result<Vec<NarInfo>, String> {
    let mut infos: Vec<NarInfo> = vec![top.clone()];
    let mut seen: std::collections::HashSet<StorePath> = [top.store_path.clone()].into();
    let mut next = 0;
    while next < infos.len() {
        let refs = infos[next].references.clone();
        next += 1;
        for r in refs {
            if !seen.insert(r.clone()) {
                continue;
            }
            if seen.len() > MAX_CLOSURE {
                return Err(format!("the closure has more than {MAX_CLOSURE} paths"));
            }
            let info = match cache::narinfo(store, r.hash_part()).await {
                Ok(Some(i)) => i,
                Ok(None) => {
                    return Err(format!(
                        "{} needs {r}, but {} has no narinfo for it",
                        top.store_path,
                        store.url()
                    ));
                }
                Err(e) => return Err(format!("cannot read the narinfo of {r}: {e}")),
            };
            if info.store_path != r {
                return Err(format!(
                    "the narinfo for {r} in {} names {}",
                    store.url(),
                    info.store_path
                ));
            }
            info.verify(keys).map_err(|e| e.to_string())?;
            match rule {
                Addressing::Content => {
                    cache::require_content_address(&info).map_err(|e| e.to_string())?;
                }
                // A CA line, where there is one, must still hold.
                Addressing::Input => {
                    cache::check_ca(&info).map_err(|e| e.to_string())?;
                }
            }
            infos.push(info);
        }
    }
    // Breadth-first from the top; reversed, every path comes after what it refers to
    // (closures have no cycles but self-references).
    let order = dependencies_first(&infos);
    Ok(order.into_iter().map(|i| infos[i].clone()).collect())
}

/// Indices of `infos` ordered so each comes after the paths it refers to.
fn dependencies_first(infos: &[NarInfo]) -> Vec<usize> {
    let index: HashMap<&StorePath, usize> = infos
        .iter()
        .enumerate()
        .map(|(i, n)| (&n.store_path, i))
        .collect();
    let mut done = vec![false; infos.len()];
    let mut order = Vec::with_capacity(infos.len());
    fn visit(
        i: usize,
        infos: &[NarInfo],
        index: &HashMap<&StorePath, usize>,
        done: &mut [bool],
        order: &mut Vec<usize>,
    ) {
        let mut stack = vec![(i, 0usize)];
        done[i] = true;
        while let Some((n, k)) = stack.pop() {
            let refs = &infos[n].references;
            if let Some(r) = refs.get(k) {
                stack.push((n, k + 1));
                if let Some(&j) = index.get(r)
                    && !done[j]
                {
                    done[j] = true;
                    stack.push((j, 0));
                }
            } else {
                order.push(n);
            }
        }
    }
    for i in 0..infos.len() {
        if !done[i] {
            visit(i, infos, &index, &mut done, &mut order);
        }
    }
    order
}

/// `None` when every NAR of `closure` is in the store with its declared size.
async fn missing_nars(store: &Store, closure: &[NarInfo]) -> Result<Option<String>, StoreError> {
    for info in closure {
        match store.head(&info.url).await? {
            Some(size) if info.file_size.is_none_or(|want| size == want) => {}
            Some(size) => {
                return Ok(Some(format!(
                    "{} has {size} bytes but the narinfo of {} says {}",
                    info.url,
                    info.store_path,
                    info.file_size.unwrap_or_default()
                )));
            }
            None => {
                return Ok(Some(format!(
                    "{} (the NAR of {}) is missing from {}",
                    info.url,
                    info.store_path,
                    store.url()
                )));
            }
        }
    }
    Ok(None)
}

/// Whether the package will run once installed here: from the Nix store always; from
/// pubdeck's own store only when it refers to no store path, itself included.
fn runs_here(req: &Request, closure: &[NarInfo]) -> Check {
    if req.nix.is_some() {
        return Check::pass(id::RUNS_HERE, "it installs into the Nix store, /nix/store");
    }
    let top = closure.last().expect("the closure holds the package");
    if top.references.is_empty() {
        return Check::pass(
            id::RUNS_HERE,
            "it refers to no store path, so it runs from pubdeck's own store",
        );
    }
    Check::warn(
        id::RUNS_HERE,
        format!(
            "{} refers to {} (itself included); without Nix it goes into pubdeck's own store, where those paths do not exist, so it will not run",
            top.store_path,
            if top.references.len() == 1 {
                "a store path".to_string()
            } else {
                format!("{} store paths", top.references.len())
            }
        ),
        "install Nix (e.g. `apt-get install nix-bin`) to install it into /nix/store",
    )
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
            "`pubdeck use {}` adds to nix.conf: {}",
            d.org,
            lines.join(" ; ")
        ),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{} is not ready to install: {}", .0, .1.iter().filter(|c| c.blocks()).map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "))]
    NotReady(PackageRef, Vec<Check>),
    #[error("download of {key} from {store} failed: {message}")]
    Download {
        store: String,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Verify(String),
    #[error("{path} is already in {where_} with other contents than the catalog's ({detail})")]
    Occupied {
        path: String,
        where_: String,
        detail: String,
    },
    #[error("importing into the Nix store failed: {0}")]
    Import(#[from] nix::NixError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("cannot prepare {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the disk is full: installing needs {} in {} and {} is free; nothing was installed",
        crate::text::human_bytes(*.needed),
        .dir.display(),
        crate::text::human_bytes(*.free)
    )]
    DiskFull {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
}

impl InstallError {
    /// This error, or [`InstallError::DiskFull`] when what stopped it was a full disk (or a
    /// quota) under `dir`, where the install needed `needed` bytes.
    fn or_disk_full(self, dir: &Path, needed: u64) -> InstallError {
        let full = match &self {
            InstallError::Io { source, .. } => crate::fsutil::is_disk_full(source),
            InstallError::Import(nix::NixError::Failed { message, .. }) => {
                message.contains("No space left on device")
            }
            InstallError::Download { message, .. } | InstallError::Verify(message) => {
                message.contains(DISK_FULL_MARK)
            }
            _ => false,
        };
        if full {
            InstallError::DiskFull {
                dir: dir.to_path_buf(),
                needed,
                free: crate::fsutil::free_bytes(dir).unwrap_or(0),
            }
        } else {
            self
        }
    }
}

/// Put in front of a message whose cause was a full disk, before the cause is flattened into
/// the message (so [`InstallError::or_disk_full`] still knows).
const DISK_FULL_MARK: &str = "(disk full) ";

fn message_of(e: &(dyn std::error::Error + 'static)) -> String {
    if crate::fsutil::is_disk_full(e) {
        format!("{DISK_FULL_MARK}{e}")
    } else {
        e.to_string()
    }
}

impl crate::event::Hinted for InstallError {
    fn hint(&self) -> Option<String> {
        match self {
            InstallError::NotReady(p, _) => Some(format!("run `pubdeck ready {p}` for the details and fixes")),
            InstallError::Verify(_) => Some("the artifact in the store does not match what was signed; nothing was installed. Ask the publisher to publish again".into()),
            InstallError::Occupied { where_, path, .. } if where_ == "the Nix store" => Some(format!("check it with `nix store verify {path}`; `nix store delete {path}` removes it if nothing uses it")),
            InstallError::Occupied { path, .. } => Some(format!("remove {path} (chmod -R u+w first) and install again")),
            InstallError::Manifest(e) => e.hint(),
            InstallError::DiskFull { dir, .. } => Some(format!(
                "free space on the file system of {}, or install elsewhere with PUBDECK_DATA_DIR",
                dir.display()
            )),
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

/// Where an install stages its verified downloads: `<store dir>/.pubdeck-install-XXXXXX`,
/// removed on drop even when it holds read-only trees, never following a symlink out of it.
/// The install holds an exclusive lock on `<staging>/lock` while it runs; a staging
/// directory whose lock is free was left by an install that was killed, and the next install
/// removes it.
struct Staging {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

const STAGING_PREFIX: &str = ".pubdeck-install-";

impl Staging {
    fn new(store_dir: &Path) -> std::io::Result<Staging> {
        remove_abandoned_staging(store_dir);
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(store_dir)?;
        let lock = std::fs::File::create(dir.path().join("lock"))?;
        if !try_lock(&lock) {
            return Err(std::io::Error::other("cannot lock a new staging directory"));
        }
        Ok(Staging { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        crate::fsutil::make_writable(self.dir.path());
    }
}

/// An exclusive, non-blocking `flock`; released when the file is closed (or its process dies).
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes the staging directories of installs that were killed (their lock is free). One
/// that is still locked belongs to a running install and is left alone.
fn remove_abandoned_staging(store_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(store_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_staging = name.to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if !is_staging || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        let Ok(lock) = std::fs::File::open(dir.join("lock")) else {
            // No lock file: killed between creating the directory and its lock, or older.
            // Only a directory this old is certainly abandoned.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if old {
                let _ = crate::fsutil::remove_tree(&dir);
            }
            continue;
        };
        if try_lock(&lock) {
            let _ = crate::fsutil::remove_tree(&dir);
        }
    }
}

/// Whether `info`'s path is already here with exactly its contents. A path present with
/// other contents is an error: it is never replaced silently, never reused.
async fn present(req: &Request, info: &NarInfo) -> Result<bool, InstallError> {
    match &req.nix {
        Some(nix) => match nix.nar_hash(&info.store_path).await? {
            None => Ok(false),
            Some(h) if h == info.nar_hash => Ok(true),
            Some(h) => Err(InstallError::Occupied {
                path: info.store_path.to_string(),
                where_: "the Nix store".into(),
                detail: format!(
                    "Nix registered NarHash {h}, the narinfo says {}",
                    info.nar_hash
                ),
            }),
        },
        None => {
            let dest = req.store_dir.join(info.store_path.base_name());
            if std::fs::symlink_metadata(&dest).is_err() {
                return Ok(false);
            }
            let d = dest.clone();
            let summary = tokio::task::spawn_blocking(move || {
                crate::nix::nar::dump_path(&d, std::io::sink())
            })
            .await
            .expect("hash task panicked");
            match summary {
                Ok(s) if s.nar_hash == info.nar_hash && s.nar_size == info.nar_size => Ok(true),
                Ok(s) => Err(InstallError::Occupied {
                    path: dest.display().to_string(),
                    where_: "pubdeck's store".into(),
                    detail: format!(
                        "its NAR hash is {}, the narinfo says {}",
                        s.nar_hash, info.nar_hash
                    ),
                }),
                Err(e) => Err(InstallError::Occupied {
                    path: dest.display().to_string(),
                    where_: "pubdeck's store".into(),
                    detail: e.to_string(),
                }),
            }
        }
    }
}

/// Downloads `info`'s NAR into `staging` and verifies it completely (FileHash, NarHash, CA);
/// without Nix it is unpacked (read-only) into `staging/trees/<base name>`.
async fn stage(
    store: &Store,
    keys: &[PublicKey],
    info: &NarInfo,
    staging: &Path,
    unpack: bool,
    tx: &EventTx,
) -> Result<(), InstallError> {
    let file = staging.join("cache").join(&info.url);
    let (sink, progress) = ProgressSink::channel();
    let forward = tokio::spawn(crate::store::forward_as_events(
        progress,
        tx.clone(),
        crate::event::Direction::Download,
        info.url.clone(),
    ));
    let opts = DownloadOptions {
        expected_size: info.file_size,
        expected_sha256: info.file_hash.map(|h| h.0),
        // Without a FileSize, the download is bounded by what the NAR could take compressed.
        max_size: info.compressed_limit().saturating_sub(1),
        ..Default::default()
    };
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| InstallError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let downloaded = store.download(&info.url, &file, &opts, &sink).await;
    drop(sink);
    let _ = forward.await;
    downloaded.map_err(|e| InstallError::Download {
        store: store.url().to_string(),
        key: info.url.clone(),
        message: message_of(&e),
    })?;
    let (info, keys) = (info.clone(), keys.to_vec());
    let unpack_to = unpack.then(|| staging.join("trees").join(info.store_path.base_name()));
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&file).map_err(|e| InstallError::Verify(message_of(&e)))?;
        let f = std::io::BufReader::new(f);
        let verified = match &unpack_to {
            Some(dest) => {
                std::fs::create_dir_all(dest.parent().expect("trees/<name>"))
                    .map_err(|e| InstallError::Verify(message_of(&e)))?;
                cache::fetch_nar(&info, &keys, f, dest)
            }
            None => cache::verify_nar(&info, &keys, f),
        };
        verified.map_err(|e| InstallError::Verify(message_of(&e)))?;
        if let Some(dest) = &unpack_to {
            crate::fsutil::make_read_only(dest).map_err(|source| InstallError::Io {
                path: dest.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .await
    .expect("verify task panicked")
}

/// The entries of `root/bin` (sorted full paths); none when it has no `bin/`.
pub fn executables(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root.join("bin"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
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
