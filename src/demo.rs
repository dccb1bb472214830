//! The demo workspace: everything pubdeck needs, on one machine, with nothing running.
//!
//! `pubdeck demo` creates (once) a git repository with a bare remote (pushed), the sample
//! environment with three builds (fast, chatty, failing), a signing key, an embedded catalog
//! with the org `myorg` trusting that key, a `file://` store, and a few hundred realistic
//! packages — each with a real, signed, installable artifact — so searching is meaningful.

use std::path::{Path, PathBuf};

use git2::{IndexAddOption, Repository, Signature};
use serde::Deserialize;

use crate::cache::{self, PackOptions};
use crate::catalog::{AnyCatalog, Catalog, EmbeddedCatalog, NewBuild};
use crate::nix::current_system;
use crate::nix::sign::SecretKey;
use crate::store::Store;

pub const ORG: &str = "myorg";
const KEY_NAME: &str = "myorg-1";

/// The sample environment, compiled in so `pubdeck demo` works from any directory.
const SAMPLE_ENV: &[(&str, &str)] = &[
    (
        ".flox/env.json",
        include_str!("../assets/sample-env/.flox/env.json"),
    ),
    (
        ".flox/.gitignore",
        include_str!("../assets/sample-env/.flox/.gitignore"),
    ),
    (
        ".flox/env/manifest.toml",
        include_str!("../assets/sample-env/.flox/env/manifest.toml"),
    ),
    (
        "src/hello.sh",
        include_str!("../assets/sample-env/src/hello.sh"),
    ),
    (
        "src/report.sh",
        include_str!("../assets/sample-env/src/report.sh"),
    ),
    (
        "README-hello.txt",
        include_str!("../assets/sample-env/README-hello.txt"),
    ),
    (
        "REPORT_VERSION",
        include_str!("../assets/sample-env/REPORT_VERSION"),
    ),
];
const PACKAGES: &str = include_str!("../assets/demo/packages.json");

/// Where everything of a demo workspace is.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub fn env_dir(&self) -> PathBuf {
        self.root.join("workspace")
    }
    pub fn remote(&self) -> PathBuf {
        self.root.join("remote.git")
    }
    pub fn key_file(&self) -> PathBuf {
        self.root.join("keys").join(format!("{KEY_NAME}.key"))
    }
    pub fn catalog_file(&self) -> PathBuf {
        self.root.join("catalog.sqlite")
    }
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }
    pub fn store_url(&self) -> String {
        format!("file://{}", self.store_dir().display())
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    fn ready_marker(&self) -> PathBuf {
        self.root.join(".demo-ready")
    }

    /// The environment variables that point pubdeck at this workspace.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PUBDECK_CATALOG", self.catalog_file().display().to_string()),
            ("PUBDECK_ORG", ORG.to_string()),
            ("PUBDECK_SIGNING_KEY", self.key_file().display().to_string()),
            ("PUBDECK_DATA_DIR", self.data_dir().display().to_string()),
        ]
    }

    pub async fn catalog(&self) -> Result<AnyCatalog, DemoError> {
        Ok(AnyCatalog::Embedded(
            EmbeddedCatalog::open(&self.catalog_file())
                .await
                .map_err(|e| DemoError(format!("cannot open the demo catalog: {e}")))?,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(String);

/// What [`ensure_with`] is doing, for a face to show while a new workspace is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoStep {
    /// The sample environment and its git repository with a bare remote.
    Repository,
    /// The signing key and the catalog.
    Catalog,
    /// Packing and signing the seed packages: `done` of `total` versions.
    Seeding { done: usize, total: usize },
    /// Registering them with the catalog.
    Registering { total: usize },
}

/// The project file the demo environment carries ([`crate::config::PROJECT_FILE`]): paths
/// relative to the environment, so it holds wherever the workspace is.
pub const PROJECT_SETTINGS: &str = "\
# pubdeck's settings for this environment (README, \"Project settings\"): relative paths are
# taken from this file's directory. No token belongs here.
catalog = \"../catalog.sqlite\"
org = \"myorg\"
signing-key = \"../keys/myorg-1.key\"
data-dir = \"../data\"
";

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |e| DemoError(format!("{what}: {e}"))
}

/// One package the demo catalog is seeded with (`assets/demo/packages.json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SeedPackage {
    pub name: String,
    pub description: String,
    /// Oldest first.
    pub versions: Vec<String>,
}

/// The packages the demo catalog is seeded with, by name.
pub fn seed_packages() -> Vec<SeedPackage> {
    let mut p: Vec<SeedPackage> =
        serde_json::from_str(PACKAGES).expect("assets/demo/packages.json is valid");
    p.sort_by(|a, b| a.name.cmp(&b.name));
    p
}

/// The sample environment's manifest, as `pubdeck demo` writes it.
pub fn sample_manifest() -> crate::manifest::Manifest {
    let (path, text) = SAMPLE_ENV
        .iter()
        .find(|(p, _)| *p == ".flox/env/manifest.toml")
        .expect("the sample environment has a manifest");
    crate::manifest::Manifest::parse(Path::new(path), text.to_string())
        .expect("the sample manifest is valid")
}

/// A file of the sample environment, as `pubdeck demo` writes it.
pub fn sample_file(rel: &str) -> Option<&'static str> {
    SAMPLE_ENV.iter().find(|(p, _)| *p == rel).map(|(_, t)| *t)
}

/// The version a clean build of `build` of the sample environment resolves to (literal
/// versions and `version.file`; the sample has no `version.command`).
pub fn sample_version(build: &str) -> Option<String> {
    use crate::manifest::VersionSpec;
    match sample_manifest().build(build)?.version.as_ref()? {
        VersionSpec::Literal(v) => Some(v.clone()),
        VersionSpec::File(f) => sample_file(f).map(|t| t.trim().to_string()),
        VersionSpec::Command(_) => None,
    }
}

/// The demo's signing key name.
pub const DEMO_KEY_NAME: &str = KEY_NAME;

/// A seed package's artifact: `bin/<name>`, a script printing its name and version.
fn seed_tree(tree: &Path, p: &SeedPackage, v: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(tree.join("bin"))?;
    let exe = tree.join("bin").join(&p.name);
    let text = format!(
        "#!/bin/sh\necho '{} {v}: {}'\n",
        p.name,
        p.description.replace('\'', "")
    );
    std::fs::write(&exe, text)?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
}

/// Creates the workspace at `root` unless a complete one is already there.
pub async fn ensure(root: &Path) -> Result<Workspace, DemoError> {
    ensure_with(root, &|_| {}).await
}

/// [`ensure`], telling `progress` each step of creating a new workspace.
pub async fn ensure_with(
    root: &Path,
    progress: &(dyn Fn(DemoStep) + Sync),
) -> Result<Workspace, DemoError> {
    let ws = Workspace {
        root: std::path::absolute(root).map_err(err("cannot resolve the demo path"))?,
    };
    if ws.ready_marker().is_file() {
        // Workspaces made before the project file existed get one (untracked).
        let project = ws.env_dir().join(crate::config::PROJECT_FILE);
        if !project.exists() {
            std::fs::write(&project, PROJECT_SETTINGS)
                .map_err(err("cannot write the demo project file"))?;
        }
        return Ok(ws);
    }
    if ws.root.exists()
        && std::fs::read_dir(&ws.root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(DemoError(format!(
            "{} exists and is not a complete demo workspace; remove it or pass another --path",
            ws.root.display()
        )));
    }
    std::fs::create_dir_all(&ws.root).map_err(err("cannot create the demo directory"))?;
    progress(DemoStep::Repository);
    let ws2 = ws.clone();
    tokio::task::spawn_blocking(move || create_repository(&ws2))
        .await
        .expect("demo task panicked")?;

    progress(DemoStep::Catalog);
    std::fs::create_dir_all(ws.root.join("keys"))
        .map_err(err("cannot create the keys directory"))?;
    let key = SecretKey::generate(KEY_NAME).map_err(err("cannot generate a key"))?;
    key.write_new(&ws.key_file(), crate::fsutil::write_new)
        .map_err(err("cannot write the demo key"))?;

    let catalog = ws.catalog().await?;
    catalog
        .create_catalog(ORG, &ws.store_url(), &[key.public().to_nix_string()])
        .await
        .map_err(err("cannot create the demo catalog"))?;
    seed(&ws, &catalog, &key, progress).await?;
    std::fs::write(ws.ready_marker(), "").map_err(err("cannot finish the demo workspace"))?;
    Ok(ws)
}

fn create_repository(ws: &Workspace) -> Result<(), DemoError> {
    let g = |e: git2::Error| {
        DemoError(format!(
            "cannot set up the demo git repository: {}",
            e.message()
        ))
    };
    Repository::init_bare(ws.remote()).map_err(g)?;
    let env = ws.env_dir();
    for (rel, text) in SAMPLE_ENV {
        let p = env.join(rel);
        std::fs::create_dir_all(p.parent().expect("relative path has a parent"))
            .map_err(err("cannot write the sample environment"))?;
        std::fs::write(&p, text).map_err(err("cannot write the sample environment"))?;
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(err("cannot chmod"))?;
        }
    }
    std::fs::write(env.join(crate::config::PROJECT_FILE), PROJECT_SETTINGS)
        .map_err(err("cannot write the demo project file"))?;
    let repo = Repository::init(&env).map_err(g)?;
    // The demo's own identity, so the workbench's commit fix-it works on a machine where git
    // knows no user.
    {
        let mut config = repo.config().map_err(g)?;
        config.set_str("user.name", "pubdeck demo").map_err(g)?;
        config
            .set_str("user.email", "demo@pubdeck.invalid")
            .map_err(g)?;
    }
    let mut index = repo.index().map_err(g)?;
    index
        .add_all(["*"], IndexAddOption::DEFAULT, None)
        .map_err(g)?;
    index.write().map_err(g)?;
    let tree = repo.find_tree(index.write_tree().map_err(g)?).map_err(g)?;
    let sig = Signature::now("pubdeck demo", "demo@pubdeck.invalid").map_err(g)?;
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        "Add the sample environment",
        &tree,
        &[],
    )
    .map_err(g)?;
    repo.set_head("refs/heads/main").map_err(g)?;
    let url = format!("file://{}", ws.remote().display());
    let mut remote = repo.remote("origin", &url).map_err(g)?;
    remote
        .push(&["refs/heads/main:refs/heads/main"], None)
        .map_err(g)?;
    remote
        .fetch(&["refs/heads/main:refs/remotes/origin/main"], None, None)
        .map_err(g)?;
    let mut branch = repo
        .find_branch("main", git2::BranchType::Local)
        .map_err(g)?;
    branch.set_upstream(Some("origin/main")).map_err(g)?;
    Ok(())
}

/// Registers every seed package version with a tiny real artifact in the store, written
/// through the one store write path (`cache::add_path`).
async fn seed(
    ws: &Workspace,
    catalog: &AnyCatalog,
    key: &SecretKey,
    progress: &(dyn Fn(DemoStep) + Sync),
) -> Result<(), DemoError> {
    use futures::StreamExt;
    // Hundreds of small objects: fsynced once at the end, not each (the workspace counts
    // only once its ready marker is written, after that sync).
    let open = crate::store::OpenOptions {
        file_durability: crate::fsutil::Durability::Deferred,
        ..Default::default()
    };
    let store = Store::open_str(&ws.store_url(), &open)
        .await
        .map_err(err("cannot open the demo store"))?;
    let scratch = tempfile::tempdir().map_err(err("cannot create a temp dir"))?;
    // Tiny trees: one zstd thread avoids a thread pool per artifact.
    let seed_opts = PackOptions {
        zstd_threads: 1,
        ..PackOptions::with(cache::Compression::Zstd)
    };
    let jobs: Vec<(SeedPackage, String)> = seed_packages()
        .into_iter()
        .flat_map(|p| p.versions.clone().into_iter().map(move |v| (p.clone(), v)))
        .collect();
    let total = jobs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    progress(DemoStep::Seeding { done: 0, total });
    let builds: Vec<Result<NewBuild, DemoError>> = futures::stream::iter(jobs)
        .map(|(p, v)| {
            let (store, scratch, key, done) = (&store, scratch.path(), key, &done);
            async move {
                let tree = scratch.join(format!("{}-{v}", p.name));
                seed_tree(&tree, &p, &v).map_err(err("cannot write a seed artifact"))?;
                let (info, _) = cache::add_source(
                    store,
                    &tree,
                    &format!("{}-{v}", p.name),
                    &[],
                    &seed_opts,
                    key,
                )
                .await
                .map_err(err("cannot pack a seed artifact"))?;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(DemoStep::Seeding { done: n, total });
                Ok(NewBuild {
                    org: ORG.into(),
                    package: p.name.clone(),
                    version: v.clone(),
                    description: p.description.clone(),
                    system: current_system(),
                    store_path: info.store_path.to_string(),
                    narinfo_url: store.url().object_url(&info.file_name()),
                    nar_hash: info.nar_hash.to_string(),
                    nar_size: info.nar_size,
                    references: vec![],
                    signature: info.sigs.first().map(|s| s.to_string()).unwrap_or_default(),
                    key_name: KEY_NAME.into(),
                    source_url: "https://git.myorg.example/platform/tools.git".into(),
                    revision: crate::nix::Sha256Hash::of(format!("{}{v}", p.name).as_bytes())
                        .to_hex()[..40]
                        .to_string(),
                    branch: "main".into(),
                    build_name: p.name.clone(),
                    installed_packages: vec!["bash".into(), "coreutils".into()],
                    ca: info.ca.clone().unwrap_or_default(),
                    closure: vec![crate::catalog::ClosurePath {
                        store_path: info.store_path.to_string(),
                        nar_size: info.nar_size,
                    }],
                    ..NewBuild::default()
                })
            }
        })
        .buffered(8)
        .collect()
        .await;
    let builds = builds.into_iter().collect::<Result<Vec<_>, _>>()?;
    // Artifacts on disk before the catalog names them.
    store
        .sync()
        .await
        .map_err(err("cannot flush the demo store"))?;
    progress(DemoStep::Registering { total });
    // In batches: one transaction each, not one per build.
    for batch in builds.chunks(crate::catalog::MAX_BATCH) {
        catalog
            .register_builds(ORG, batch)
            .await
            .map_err(err("cannot register the seed packages"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_list_is_valid_and_sizeable() {
        let p = seed_packages();
        assert!(p.len() >= 200);
        for x in &p {
            crate::catalog::validate_package_name(&x.name).unwrap();
            assert!(!x.versions.is_empty() && !x.description.is_empty());
        }
        assert!(
            !p.iter().any(|x| x.name == "hello" || x.name == "report"),
            "the demo builds publish these"
        );
    }
}
