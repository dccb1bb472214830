//! End to end with real parts: a git repository with a bare remote, the embedded catalog (the
//! same code the service runs per request), file:// and s3:// (s3s-fs on loopback) stores,
//! and real Nix importing what was published.
//! publish → search → show → ready → install, dedup, refusals before any build.

use crate::common;
use crate::common::catalog_support;
use crate::common::s3 as s3srv;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Repo;
use pubdeck::catalog::embedded::CatalogBackend;
use pubdeck::catalog::{AnyCatalog, Catalog};
use pubdeck::event::{self, Event, Stage};
use pubdeck::install::{self, PackageRef};
use pubdeck::nix::sign::SecretKey;
use pubdeck::publish::{self, Plan, PublishError};
use tokio_util::sync::CancellationToken;

struct World {
    tmp: tempfile::TempDir,
    repo: Repo,
    backend: Arc<CatalogBackend>,
    catalog: AnyCatalog,
    key_file: PathBuf,
    pub_file: PathBuf,
    store_dir: PathBuf,
}

impl World {
    /// Sample environment, an embedded catalog owned by `alice` with org `myorg` trusting a
    /// fresh key, and the given store URL (default: a file:// store in the temp dir).
    async fn new(store_url: Option<String>) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Repo::sample_env();
        let backend = CatalogBackend::connect(&format!(
            "sqlite://{}",
            tmp.path().join("catalog.sqlite").display()
        ))
        .await
        .unwrap();
        backend.db().add_user("alice").await.unwrap();
        backend.db().add_user("bob").await.unwrap();
        let catalog = AnyCatalog::Embedded(backend.as_user("alice"));
        let key = SecretKey::generate("myorg-1").unwrap();
        let key_file = tmp.path().join("myorg-1.key");
        let pub_file = key
            .write_new(&key_file, pubdeck::fsutil::write_new)
            .unwrap();
        let store_dir = tmp.path().join("store");
        let url = store_url.unwrap_or_else(|| format!("file://{}", store_dir.display()));
        catalog
            .create_catalog("myorg", &url, &[key.public().to_nix_string()])
            .await
            .unwrap();
        World {
            tmp,
            repo,
            backend,
            catalog,
            key_file,
            pub_file,
            store_dir,
        }
    }

    fn plan(&self, build: &str) -> Plan {
        let mut p = Plan::new(&self.repo.work, build);
        p.org = Some("myorg".into());
        p.signing_key = Some(self.key_file.clone());
        p.put.journal_dir = Some(self.tmp.path().join("journals"));
        p
    }

    fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// Installs `package` into `env` with pubdeck's own store (never Nix's: it may hold the
    /// path from another test), its events drained.
    async fn install_own_store(
        &self,
        package: &str,
        env: &Repo,
    ) -> Result<install::Installed, install::InstallError> {
        let mut req = install::Request::new(
            PackageRef::parse(package).unwrap(),
            &env.work,
            &self.data_dir(),
        );
        req.nix = None;
        let (tx, mut rx) = event::channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        install::install(&req, &self.catalog, &tx).await
    }
}

async fn publish_collect(
    plan: &Plan,
    catalog: &AnyCatalog,
) -> (Result<publish::Published, PublishError>, Vec<Event>) {
    let (tx, mut rx) = event::channel();
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(e) = rx.recv().await {
            v.push(e);
        }
        v
    });
    let r = publish::run(plan, catalog, &tx, &CancellationToken::new()).await;
    drop(tx);
    (r, collect.await.unwrap())
}

fn stages(events: &[Event]) -> Vec<Stage> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StageFinished {
                stage, ok: true, ..
            } => Some(*stage),
            _ => None,
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A consumer environment (another repository) to install into.
fn consumer() -> Repo {
    Repo::with_manifest(
        "version = 1\n\n# our tools\n[install]\njq.pkg-path = \"jq\" # from the base catalog\n",
    )
}

#[tokio::test]
async fn publish_search_show_ready_install_on_file_store() {
    let w = World::new(None).await;
    let (r, events) = publish_collect(&w.plan("hello"), &w.catalog).await;
    let p = r.unwrap_or_else(|e| panic!("{e}: {events:#?}"));
    assert_eq!(
        stages(&events),
        [
            Stage::Check,
            Stage::Clone,
            Stage::Build,
            Stage::Pack,
            Stage::Sign,
            Stage::Upload,
            Stage::Register
        ]
    );
    assert_eq!(p.reference(), "myorg/hello@1.0.0");
    assert!(p.store_path.ends_with("-hello-1.0.0"));
    assert!(!p.already_published);
    assert!(events.iter().any(
        |e| matches!(e, Event::Log { lines, .. } if lines.iter().any(|l| l == "built hello 1.0.0"))
    ));
    assert!(
        matches!(events.last(), Some(Event::Published { reference }) if reference == "myorg/hello@1.0.0")
    );

    // the store is a Nix binary cache real Nix accepts
    let hash_part = p
        .store_path
        .trim_start_matches("/nix/store/")
        .split('-')
        .next()
        .unwrap();
    assert!(w.store_dir.join(format!("{hash_part}.narinfo")).is_file());
    let mut restored = None;
    if common::have_nix("publish_search_show_ready_install_on_file_store") {
        restored = Some(common::run_oracle(
            &w.store_dir,
            &w.pub_file,
            &[&p.store_path],
        ));
    }

    // search and show see it
    let hits = w.catalog.search("hello", 10).await.unwrap();
    assert_eq!(hits[0].name, "myorg/hello");
    let detail = w.catalog.show("myorg", "hello").await.unwrap();
    assert_eq!(detail.versions[0].version, "1.0.0");
    let rec = &detail.versions[0].builds[0];
    assert_eq!(rec.store_path, p.store_path);
    assert_eq!(rec.revision, w.repo.head());
    assert_eq!(rec.branch, "main");
    assert_eq!(
        rec.source_url,
        format!("file://{}", w.repo.remote.display())
    );
    assert!(
        rec.installed_packages.contains(&"jq@^1.7".to_string()),
        "{:?}",
        rec.installed_packages
    );

    // ready + install into another environment
    let target = consumer();
    let mut req = install::Request::new(
        PackageRef::parse("myorg/hello").unwrap(),
        &target.work,
        &w.data_dir(),
    );
    req.nix_conf = vec![];
    let ready = install::ready(&req, &w.catalog).await;
    assert!(ready.ok(), "{:#?}", ready.checks);
    let ids: Vec<_> = ready.checks.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [
            "visible",
            "system-build",
            "narinfo",
            "signature",
            "closure",
            "nar",
            "runs-here",
            "nix-config",
            "environment",
            "not-installed",
            "lock"
        ]
    );
    let nix = ready.checks.iter().find(|c| c.id == "nix-config").unwrap();
    assert!(
        nix.warning && !nix.ok,
        "no nix.conf given, so a warning: {nix:?}"
    );
    assert!(
        nix.hint
            .as_ref()
            .unwrap()
            .contains("extra-trusted-public-keys = myorg-1:")
    );

    let (tx, _rx) = event::channel();
    let drain = tokio::spawn(async move {
        let mut rx = _rx;
        while rx.recv().await.is_some() {}
    });
    let installed = install::install(&req, &w.catalog, &tx).await.unwrap();
    drop(tx);
    drain.await.unwrap();
    // Into the Nix store when Nix can take it here (CI: root), else pubdeck's own store.
    let expected = match &req.nix {
        Some(_) => std::path::PathBuf::from(&p.store_path),
        None => w
            .data_dir()
            .join("store")
            .join(p.store_path.trim_start_matches("/nix/store/")),
    };
    assert_eq!(installed.path, expected);
    assert_eq!(installed.store == "nix", req.nix.is_some());
    assert_eq!(installed.executables, vec![expected.join("bin/hello")]);
    let hello = std::process::Command::new(installed.path.join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout),
        "Hello from hello 1.0.0\n"
    );
    let manifest = std::fs::read_to_string(target.work.join(".flox/env/manifest.toml")).unwrap();
    assert_eq!(
        manifest,
        format!(
            "version = 1\n\n# our tools\n[install]\njq.pkg-path = \"jq\" # from the base catalog\n# pubdeck: myorg/hello@1.0.0\nhello.store-path = \"{}\"\nhello.systems = [\"{}\"]\n",
            p.store_path,
            pubdeck::publish::current_system()
        )
    );
    if let Some(oracle) = restored {
        common::assert_same_tree(&oracle.restored(&p.store_path), &installed.path);
    }

    // installing again is refused by readiness, and changes nothing
    let again = install::ready(&req, &w.catalog).await;
    assert!(!again.ok());
    assert_eq!(
        again
            .checks
            .iter()
            .filter(|c| c.blocks())
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        ["not-installed"]
    );

    // a second publish of the same revision is skipped, nothing is rebuilt
    let (r2, events2) = publish_collect(&w.plan("hello"), &w.catalog).await;
    let p2 = r2.unwrap();
    assert!(p2.already_published);
    assert_eq!(p2.store_path, p.store_path);
    assert!(
        !events2
            .iter()
            .any(|e| matches!(e, Event::Cloned { .. } | Event::Log { .. }))
    );
    assert_eq!(
        events2
            .iter()
            .filter(|e| matches!(e, Event::StageSkipped { .. }))
            .count(),
        6
    );
}

#[tokio::test]
async fn tampered_artifact_is_refused_and_nothing_is_written() {
    let w = World::new(None).await;
    let (r, _) = publish_collect(&w.plan("hello"), &w.catalog).await;
    let p = r.unwrap();
    let nar = files_under(&w.store_dir.join("nar"));
    assert_eq!(nar.len(), 1);
    let mut bytes = std::fs::read(&nar[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&nar[0], bytes).unwrap();

    let target = consumer();
    let manifest_before =
        std::fs::read_to_string(target.work.join(".flox/env/manifest.toml")).unwrap();
    let err = w
        .install_own_store("myorg/hello@1.0.0", &target)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("FileHash") || msg.contains("SHA-256") || msg.contains("sha256"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(target.work.join(".flox/env/manifest.toml")).unwrap(),
        manifest_before
    );
    let store = w.data_dir().join("store");
    assert!(
        files_under(&store).is_empty(),
        "left behind: {:?}",
        files_under(&store)
    );
    assert!(
        !store
            .join(p.store_path.trim_start_matches("/nix/store/"))
            .exists()
    );
}

#[tokio::test]
async fn every_failing_precondition_is_reported_before_any_build() {
    let w = World::new(None).await;
    // dirty, unpushed, untracked .flox file, typo'd build, no key, wrong org
    w.repo.write("README-hello.txt", "changed\n");
    w.repo.write(".flox/env/notes.json", "{}");
    let mut plan = w.plan("helo");
    plan.signing_key = None;
    plan.org = Some("nosuchorg".into());
    let (r, events) = publish_collect(&plan, &w.catalog).await;
    let PublishError::Preconditions(checks) = r.unwrap_err() else {
        panic!("not a precondition failure")
    };
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.id).collect();
    assert_eq!(
        failed,
        [
            "env-tracked",
            "clean",
            "build-exists",
            "signing-key",
            "catalog",
            "may-publish",
            "key-trusted",
            "store"
        ]
    );
    assert!(checks.iter().filter(|c| !c.ok).all(|c| c.hint.is_some()));
    assert!(!events.iter().any(|e| matches!(
        e,
        Event::Cloned { .. }
            | Event::StageStarted {
                stage: Stage::Build
            }
    )));
    assert!(files_under(&w.store_dir).is_empty());
}

#[tokio::test]
async fn reader_may_not_publish_and_untrusted_key_is_refused_before_upload() {
    let w = World::new(None).await;
    w.catalog.allow("myorg", "bob").await.unwrap();
    let bob = AnyCatalog::Embedded(w.backend.as_user("bob"));
    let (r, events) = publish_collect(&w.plan("hello"), &bob).await;
    let PublishError::Preconditions(checks) = r.unwrap_err() else {
        panic!()
    };
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.id).collect();
    assert_eq!(failed, ["may-publish"]);
    assert!(!events.iter().any(|e| matches!(e, Event::Cloned { .. })));

    let other = SecretKey::generate("rogue-1").unwrap();
    let rogue = w.tmp.path().join("rogue.key");
    other.write_new(&rogue, pubdeck::fsutil::write_new).unwrap();
    let mut plan = w.plan("hello");
    plan.signing_key = Some(rogue);
    let (r, _) = publish_collect(&plan, &w.catalog).await;
    let PublishError::Preconditions(checks) = r.unwrap_err() else {
        panic!()
    };
    let kt = checks.iter().find(|c| c.id == "key-trusted").unwrap();
    assert!(!kt.ok);
    assert!(
        kt.hint
            .as_ref()
            .unwrap()
            .contains("pubdeck catalog add-key myorg")
    );
    assert!(files_under(&w.store_dir).is_empty(), "nothing uploaded");
    assert!(
        w.catalog.search("hello", 5).await.unwrap().is_empty(),
        "nothing registered"
    );
}

#[tokio::test]
async fn failed_build_registers_nothing() {
    let w = World::new(None).await;
    let (r, events) = publish_collect(&w.plan("broken"), &w.catalog).await;
    let e = r.unwrap_err();
    assert_eq!(e.to_string(), "build `broken` failed with exit code 3");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Log { lines, .. } if lines.iter().any(|l| l == "error: libfoo is required")))
    );
    assert!(files_under(&w.store_dir.join("nar")).is_empty());
    assert!(w.catalog.show("myorg", "broken").await.is_err());
}

#[tokio::test]
async fn publish_to_s3_and_nix_reads_the_bucket() {
    let s3 = s3srv::TestS3::start().await;
    let w = World::new(Some(s3.url())).await;
    let mut plan = w.plan("report");
    plan.store_open = s3srv::TestS3::open_options();
    let (r, events) = publish_collect(&plan, &w.catalog).await;
    let p =
        r.unwrap_or_else(|e| panic!("{e}: {:?}", events.iter().rev().take(5).collect::<Vec<_>>()));
    assert_eq!(p.reference(), "myorg/report@2.3.1");
    assert!(
        p.narinfo_url.starts_with("s3://cache/"),
        "{}",
        p.narinfo_url
    );
    assert!(!p.narinfo_url.contains("devsecret") && !p.narinfo_url.contains("AKIA"));
    let logs: usize = events
        .iter()
        .map(|e| match e {
            Event::Log { lines, .. } => lines.len(),
            _ => 0,
        })
        .sum();
    assert!(logs > 2000, "the long log streamed: {logs}");
    let uploads: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Transfer { sent, total, .. } => Some((*sent, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(
        uploads.last().map(|(s, t)| s == t),
        Some(true),
        "{uploads:?}"
    );

    // The bucket as a directory is a binary cache (s3s-fs keeps objects as files).
    if common::have_nix("publish_to_s3_and_nix_reads_the_bucket") {
        let bucket = s3.object_path("");
        common::run_oracle(&bucket, &w.pub_file, &[&p.store_path]);
    }

    // and install reads it back through S3
    let target = consumer();
    let mut req = install::Request::new(
        PackageRef::parse("myorg/report").unwrap(),
        &target.work,
        &w.data_dir(),
    );
    req.store_open = s3srv::TestS3::open_options();
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let i = install::install(&req, &w.catalog, &tx).await.unwrap();
    assert!(i.path.join("bin/report").is_file());
}

#[tokio::test]
async fn publish_and_install_through_the_catalog_service_on_loopback() {
    let fx = catalog_support::Fixture::start(catalog_support::Kind::SqliteService)
        .await
        .unwrap();
    let alice = fx.user("alice").await;
    let bob = fx.user("bob").await;
    assert!(matches!(alice, AnyCatalog::Remote(_)), "over HTTP");
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::generate("myorg-1").unwrap();
    let key_file = tmp.path().join("k.key");
    key.write_new(&key_file, pubdeck::fsutil::write_new)
        .unwrap();
    let store = tmp.path().join("store");
    alice
        .create_catalog(
            "myorg",
            &format!("file://{}", store.display()),
            &[key.public().to_nix_string()],
        )
        .await
        .unwrap();
    let repo = Repo::sample_env();
    let mut plan = Plan::new(&repo.work, "hello");
    plan.org = Some("myorg".into());
    plan.signing_key = Some(key_file);
    let (r, _) = publish_collect(&plan, &alice).await;
    let p = r.unwrap();
    assert_eq!(p.reference(), "myorg/hello@1.0.0");

    // bob cannot see it until alice allows him; then he can install but not publish
    let target = consumer();
    let req = install::Request::new(
        PackageRef::parse("myorg/hello").unwrap(),
        &target.work,
        &tmp.path().join("bob-data"),
    );
    let hidden = install::ready(&req, &bob).await;
    assert_eq!(hidden.checks[0].id, "visible");
    assert!(!hidden.checks[0].ok);
    alice.allow("myorg", "bob").await.unwrap();
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let installed = install::install(&req, &bob, &tx).await.unwrap();
    assert!(installed.path.join("bin/hello").is_file());
    let (r, events) = publish_collect(&plan, &bob).await;
    let PublishError::Preconditions(checks) = r.unwrap_err() else {
        panic!()
    };
    assert_eq!(
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        ["may-publish"]
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Cloned { .. })));
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_installs_of_one_package_both_succeed() {
    let w = World::new(None).await;
    publish_collect(&w.plan("hello"), &w.catalog)
        .await
        .0
        .unwrap();
    let (a, b) = (consumer(), consumer());
    let (x, y) = tokio::join!(
        w.install_own_store("myorg/hello", &a),
        w.install_own_store("myorg/hello", &b)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.path, y.path);
    assert!(x.path.join("bin/hello").is_file());
    // One of them may have found the other's copy and proved it.
    assert!(x.reused + y.reused <= 1);
}

#[tokio::test]
async fn an_extra_bogus_signature_does_not_block_install() {
    let w = World::new(None).await;
    let p = publish_collect(&w.plan("hello"), &w.catalog)
        .await
        .0
        .unwrap();
    let hash = &p.store_path["/nix/store/".len().."/nix/store/".len() + 32];
    let narinfo = w.store_dir.join(format!("{hash}.narinfo"));
    let mut info =
        pubdeck::nix::narinfo::NarInfo::parse(&std::fs::read_to_string(&narinfo).unwrap()).unwrap();
    // A well-formed signature by an unknown key and one by the right key name that does not
    // verify, before the good one.
    let stranger = SecretKey::generate("stranger-1").unwrap();
    let impostor = SecretKey::generate("myorg-1").unwrap();
    let fp = info.fingerprint();
    let mut sigs = vec![stranger.sign(fp.as_bytes()), impostor.sign(fp.as_bytes())];
    sigs.append(&mut info.sigs);
    info.sigs = sigs;
    std::fs::write(&narinfo, info.to_string()).unwrap();
    let target = consumer();
    let i = w.install_own_store("myorg/hello", &target).await.unwrap();
    assert!(i.path.join("bin/hello").is_file());
}

#[tokio::test]
async fn installing_a_symlink_root_never_changes_what_it_points_to() {
    use std::os::unix::fs::PermissionsExt;
    // A package whose root is a symlink to a directory outside; install makes installed trees
    // read-only and cleans up staging, and neither may follow the link.
    let outside = tempfile::tempdir().unwrap();
    let target_dir = outside.path().join("shared");
    std::fs::create_dir(&target_dir).unwrap();
    std::fs::write(target_dir.join("file"), "x").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (dir_mode, file_mode) = (mode(&target_dir), mode(&target_dir.join("file")));
    assert_ne!(dir_mode & 0o200, 0);
    let repo = Repo::with_manifest(&format!(
        "version = 1\n[install]\nh.pkg-path = \"h\"\n[build.link]\nversion = \"1.0\"\ncommand = \"ln -s {} $out\"\n",
        target_dir.display()
    ));
    let mut w = World::new(None).await;
    w.repo = repo;
    publish_collect(&w.plan("link"), &w.catalog)
        .await
        .0
        .unwrap();
    let target = consumer();
    let i = w.install_own_store("myorg/link", &target).await.unwrap();
    assert!(
        std::fs::symlink_metadata(&i.path)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        mode(&target_dir),
        dir_mode,
        "the link's target changed mode"
    );
    assert_eq!(mode(&target_dir.join("file")), file_mode);
    let left: Vec<_> = std::fs::read_dir(w.data_dir().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".pubdeck-install-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
