//! Readiness (`pubdeck ready`, and the first step of install): every check in order, each
//! with its hint, and what they found (`Resolved`) for install to act on.

use std::path::PathBuf;

use crate::catalog::{
    Addressing, AnyCatalog, BuildRecord, Catalog, CatalogError, PackageDetail, parse_package_ref,
};
use crate::event::Hinted;
use crate::git::Check;
use crate::manifest::{Env, Manifest};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::PublicKey;
use crate::store::Store;

use super::fetch::{fetch_narinfo, missing_nars, walk_closure};
use super::{Mode, PackageRef, Request, id, lock, other_system_id};

/// Everything `ready` found, for `install` to act on.
pub(super) struct Resolved {
    pub(super) build: BuildRecord,
    pub(super) store: Store,
    /// The key whose signature on the package's narinfo verified.
    pub(super) key_name: String,
    /// The closure's narinfos, dependencies first, the package last.
    pub(super) closure: Vec<NarInfo>,
    pub(super) keys: Vec<PublicKey>,
    pub(super) manifest: Manifest,
    /// The same version for the other systems asked for: verified, not imported.
    pub(super) others: Vec<Other>,
}

/// A build of the package for another system (`install --system`).
pub(super) struct Other {
    pub(super) system: String,
    pub(super) build: BuildRecord,
    pub(super) store: Store,
    pub(super) key_name: String,
    pub(super) closure: Vec<NarInfo>,
    pub(super) keys: Vec<PublicKey>,
}

/// The readiness report.
pub struct Readiness {
    pub package: PackageRef,
    pub checks: Vec<Check>,
    /// The version that would be installed.
    pub version: Option<String>,
    pub(super) resolved: Option<Resolved>,
}

impl Readiness {
    /// Ready when no blocking check failed (warnings do not count).
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(Check::blocks)
    }
}

/// The same version for each system of `req.extra_systems`: one check that says which ids
/// they get, or why one cannot be installed.
pub(super) async fn other_systems(
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
pub(super) struct Found {
    pub(super) detail: Option<PackageDetail>,
    pub(super) build: Option<BuildRecord>,
    pub(super) store: Option<Store>,
    pub(super) closure: Option<Vec<NarInfo>>,
    pub(super) keys: Vec<PublicKey>,
    pub(super) key_name: Option<String>,
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
pub(super) async fn find(
    req: &Request,
    system: &str,
    catalog: &AnyCatalog,
    checks: &mut Vec<Check>,
) -> Found {
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
