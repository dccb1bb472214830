//! The lifecycle of a catalog on the store's side, through the real service on loopback
//! (SQLite, and PostgreSQL when `PUBDECK_TEST_PG_URL` is set), with real publishes from a git
//! repository with a bare remote: GC on file:// and S3 (s3s-fs), GC racing a publish that
//! reuses old garbage, key rotation while installs run in a loop, and `ready` on a build
//! signed only by a removed key.

use crate::common;
use crate::common::catalog_support;
use crate::common::s3 as s3srv;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use catalog_support::{Fixture, Kind};
use common::Repo;
use pubdeck::cache::{self, PackOptions};
use pubdeck::catalog::{AnyCatalog, Catalog, CatalogClient, Scope};
use pubdeck::event::{self, Event, Stage};
use pubdeck::install::{self, PackageRef};
use pubdeck::lifecycle::gc::{self, GcOptions, Kind as ObjKind};
use pubdeck::lifecycle::resign;
use pubdeck::nix::sign::SecretKey;
use pubdeck::publish::{self, Plan};
use pubdeck::store::{OpenOptions, Store};
use tokio_util::sync::CancellationToken;

fn manifest(version: &str) -> String {
    format!(
        r#"version = 1

[install]
hello.pkg-path = "hello"

[build.tool]
description = "a tool"
version = "{version}"
command = '''
  mkdir -p $out/bin
  printf '#!/bin/sh\necho tool {version}\n' > $out/bin/tool
  chmod +x $out/bin/tool
'''
"#
    )
}

/// The service, a repository, a store and a catalog `myorg` owned by alice.
struct Lab {
    fx: Fixture,
    repo: Repo,
    catalog: AnyCatalog,
    key_file: PathBuf,
    pub_file: PathBuf,
    store_url: String,
    open: OpenOptions,
    s3: Option<s3srv::TestS3>,
    tmp: tempfile::TempDir,
}

impl Lab {
    async fn start(kind: Kind, s3: bool) -> Option<Lab> {
        let fx = Fixture::start(kind).await?;
        let tmp = tempfile::tempdir().unwrap();
        let catalog = fx.user("alice").await;
        let key = SecretKey::generate("myorg-1").unwrap();
        let key_file = tmp.path().join("myorg-1.key");
        let pub_file = key
            .write_new(&key_file, pubdeck::fsutil::write_new)
            .unwrap();
        let (store_url, open, s3) = if s3 {
            let s = s3srv::TestS3::start().await;
            (s.url(), s3srv::TestS3::open_options(), Some(s))
        } else {
            (
                format!("file://{}", tmp.path().join("store").display()),
                OpenOptions::default(),
                None,
            )
        };
        catalog
            .create_catalog("myorg", &store_url, &[key.public().to_nix_string()])
            .await
            .unwrap();
        let repo = Repo::with_manifest(&manifest("0.0"));
        Some(Lab {
            fx,
            repo,
            catalog,
            key_file,
            pub_file,
            store_url,
            open,
            s3,
            tmp,
        })
    }

    async fn store(&self) -> Store {
        Store::open_str(&self.store_url, &self.open).await.unwrap()
    }

    fn plan(&self, key_file: &Path) -> Plan {
        let mut p = Plan::new(&self.repo.work, "tool");
        p.org = Some("myorg".into());
        p.signing_key = Some(key_file.to_path_buf());
        p.store_open = self.open.clone();
        p
    }

    /// Commits and pushes version `v` of the manifest.
    fn bump(&self, v: &str) {
        self.repo.write(".flox/env/manifest.toml", &manifest(v));
        self.repo.commit_all(&format!("tool {v}"));
        self.repo.git(&["push", "-q"]);
    }

    /// Publishes version `v` (committed and pushed first) with the lab's key.
    async fn publish(&self, v: &str) -> publish::Published {
        self.publish_with(v, &self.key_file.clone()).await.unwrap()
    }

    async fn publish_with(
        &self,
        v: &str,
        key_file: &Path,
    ) -> Result<publish::Published, publish::PublishError> {
        self.bump(v);
        self.publish_head(key_file).await
    }

    /// Publishes what HEAD holds.
    async fn publish_head(
        &self,
        key_file: &Path,
    ) -> Result<publish::Published, publish::PublishError> {
        let (tx, mut rx) = event::channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        publish::run(
            &self.plan(key_file),
            &self.catalog,
            &tx,
            &CancellationToken::new(),
        )
        .await
    }

    /// Uploads version `v` to the store and stops before registering it (a publish that
    /// failed at the last step): what it left is garbage.
    async fn upload_only(&self, v: &str) {
        self.bump(v);
        let (tx, mut rx) = event::channel();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Event::StageFinished {
                    stage: Stage::Upload,
                    ok: true,
                    ..
                } = e
                {
                    stop.cancel();
                }
            }
        });
        let r = publish::run(&self.plan(&self.key_file), &self.catalog, &tx, &cancel).await;
        assert!(
            matches!(r, Err(publish::PublishError::Cancelled)),
            "{:?}",
            r.map(|p| p.reference())
        );
    }

    /// The file backing `key` (file:// or s3s-fs).
    fn object_file(&self, key: &str) -> PathBuf {
        match &self.s3 {
            Some(s) => s.object_path(key),
            None => self.tmp.path().join("store").join(key),
        }
    }

    /// Makes `key` look written `age` ago.
    fn age(&self, key: &str, age: Duration) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.object_file(key))
            .unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    /// Makes every object in the store look written `age` ago.
    async fn age_everything(&self, age: Duration) {
        for o in self.store().await.list("").await.unwrap() {
            self.age(&o.key, age);
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// A fresh environment that installs `package` into pubdeck's own store.
    async fn install_fresh(
        &self,
        package: &str,
        n: usize,
    ) -> Result<install::Installed, install::InstallError> {
        let env = self.tmp.path().join(format!("env-{n}"));
        std::fs::create_dir_all(env.join(".flox/env")).unwrap();
        std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
        let mut req = install::Request::new(
            PackageRef::parse(package).unwrap(),
            &env,
            &self.tmp.path().join(format!("data-{n}")),
        );
        req.nix = None;
        req.store_open = self.open.clone();
        let (tx, mut rx) = event::channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        install::install(&req, &self.catalog, &tx).await
    }

    async fn ready(&self, package: &str) -> install::Readiness {
        let mut req = install::Request::new(
            PackageRef::parse(package).unwrap(),
            &self.repo.work,
            &self.data_dir(),
        );
        req.nix = None;
        req.store_open = self.open.clone();
        install::ready(&req, &self.catalog).await
    }

    async fn gc(&self, opts: &GcOptions) -> gc::GcReport {
        let (tx, mut rx) = event::channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        gc::collect(&self.catalog, "myorg", &self.open, opts, &tx)
            .await
            .unwrap()
    }

    async fn finish(self) {
        self.fx.finish().await;
    }
}

fn keys(objects: &[pubdeck::store::ObjectInfo]) -> Vec<String> {
    objects.iter().map(|o| o.key.clone()).collect()
}

const TWO_DAYS: Duration = Duration::from_secs(2 * 86_400);

/// Runs a test body on a runtime whose threads have 16 MiB stacks: the S3 SDK's futures,
/// unoptimised, need more than the 2 MiB a test thread has.
fn run_big<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_stack_size(16 << 20)
                .enable_all()
                .build()
                .unwrap()
                .block_on(body())
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

macro_rules! on_services_and_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite_file { $(
            #[test]
            fn $name() {
                super::run_big(|| async {
                    if let Some(lab) = super::Lab::start(super::Kind::SqliteService, false).await { super::$name(lab).await }
                })
            }
        )* }
        mod sqlite_s3 { $(
            #[test]
            fn $name() {
                super::run_big(|| async {
                    if let Some(lab) = super::Lab::start(super::Kind::SqliteService, true).await { super::$name(lab).await }
                })
            }
        )* }
        mod postgres_file { $(
            #[test]
            fn $name() {
                super::run_big(|| async {
                    if let Some(lab) = super::Lab::start(super::Kind::PostgresService, false).await { super::$name(lab).await }
                })
            }
        )* }
    };
}

on_services_and_stores!(
    gc_deletes_only_old_garbage_narinfo_first,
    gc_racing_a_publish_that_reuses_old_garbage_leaves_the_build_intact,
    key_rotation_while_installs_run_in_a_loop,
);

async fn gc_deletes_only_old_garbage_narinfo_first(lab: Lab) {
    lab.publish("1.0").await;
    lab.publish("1.1").await;
    lab.catalog
        .yank("myorg", "tool", "1.0", true)
        .await
        .unwrap();
    let store = lab.store().await;
    let live_before = keys(&store.list("").await.unwrap());

    // Garbage: a path nobody registered, its listing, an orphan NAR; all two days old.
    let key = SecretKey::from_file(&lab.key_file).unwrap();
    let junk = lab.tmp.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("data"), "junk ".repeat(1000)).unwrap();
    let (old, _) = cache::add_source(&store, &junk, "junk-1", &[], &PackOptions::default(), &key)
        .await
        .unwrap();
    let listing = format!("{}.ls", old.store_path.hash_part());
    store
        .put_if_absent(&listing, bytes::Bytes::from_static(b"{\"version\":1}"))
        .await
        .unwrap();
    let orphan = format!("nar/{}.nar.zst", "0".repeat(52));
    store
        .put_if_absent(&orphan, bytes::Bytes::from_static(b"orphan"))
        .await
        .unwrap();
    store
        .put_if_absent("log/something", bytes::Bytes::from_static(b"not ours"))
        .await
        .unwrap();
    lab.age_everything(TWO_DAYS).await;
    // A young unregistered path (an upload in progress): kept.
    std::fs::write(junk.join("data"), "young").unwrap();
    let (young, _) = cache::add_source(&store, &junk, "junk-2", &[], &PackOptions::default(), &key)
        .await
        .unwrap();

    let mut expected = vec![
        old.file_name(),
        listing.clone(),
        old.url.clone(),
        orphan.clone(),
    ];
    expected.sort();
    let dry = lab
        .gc(&GcOptions {
            dry_run: true,
            ..Default::default()
        })
        .await;
    let mut planned: Vec<String> = dry.deleted.iter().map(|d| d.key.clone()).collect();
    planned.sort();
    assert_eq!(planned, expected, "{dry:?}");
    let sizes: u64 = store
        .list("")
        .await
        .unwrap()
        .iter()
        .filter(|o| expected.contains(&o.key))
        .map(|o| o.size)
        .sum();
    assert_eq!(dry.bytes, sizes);

    assert!(dry.missing.is_empty());
    // Narinfos and listings come before any NAR.
    let first_nar = dry
        .deleted
        .iter()
        .position(|d| d.kind == ObjKind::Nar)
        .unwrap();
    assert!(
        dry.deleted[..first_nar]
            .iter()
            .all(|d| d.kind != ObjKind::Nar)
    );
    assert!(
        dry.deleted[first_nar..]
            .iter()
            .all(|d| d.kind == ObjKind::Nar)
    );
    for k in &expected {
        assert!(store.exists(k).await.unwrap(), "dry run deleted {k}");
    }

    let done = lab.gc(&GcOptions::default()).await;
    assert_eq!(done.bytes, sizes);
    assert_eq!(done.deleted.len(), 4);
    let after = keys(&store.list("").await.unwrap());
    for k in &expected {
        assert!(!after.contains(k), "{k} survived");
    }
    for k in &live_before {
        assert!(
            after.contains(k),
            "GC deleted {k}, which a registered build needs"
        );
    }
    assert!(after.contains(&young.file_name()) && after.contains(&young.url));
    assert!(after.contains(&"log/something".to_string()));
    // Both versions (the yanked one pinned) still install.
    lab.install_fresh("myorg/tool@1.0", 1).await.unwrap();
    lab.install_fresh("myorg/tool", 2).await.unwrap();
    // Recorded in the audit log.
    let log = lab.catalog.audit_log("myorg", 5).await.unwrap();
    assert_eq!(log[0].action, "gc");
    assert_eq!(log[0].detail["nars"], 2);
    assert_eq!(log[0].detail["narinfos"], 1);
    assert_eq!(log[0].detail["bytes"], sizes);
    // Nothing more to do.
    assert!(lab.gc(&GcOptions::default()).await.deleted.is_empty());
    // Real Nix accepts the store after GC (file:// only: Nix reads it directly).
    if lab.s3.is_none() {
        let info = lab.catalog.show("myorg", "tool").await.unwrap();
        let paths: Vec<&str> = info
            .versions
            .iter()
            .map(|v| v.builds[0].store_path.as_str())
            .collect();
        let _oracle = common::run_oracle(&lab.tmp.path().join("store"), &lab.pub_file, &paths);
    }
    lab.finish().await;
}

/// Another owner's catalog on the same store, spelled another way and hidden from the
/// collector: GC keeps what its builds need, since the catalog computes the live set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_what_a_hidden_catalog_on_the_same_store_needs() {
    let Some(lab) = Lab::start(Kind::SqliteService, false).await else {
        return;
    };
    let bob = lab.fx.user("bob").await;
    let bob_key = SecretKey::generate("bobs-1").unwrap();
    let bob_key_file = lab.tmp.path().join("bobs-1.key");
    bob_key
        .write_new(&bob_key_file, pubdeck::fsutil::write_new)
        .unwrap();
    let same_store = format!("file://{}/./store//", lab.tmp.path().display());
    bob.create_catalog("bobs", &same_store, &[bob_key.public().to_nix_string()])
        .await
        .unwrap();
    assert!(
        lab.catalog.catalog("bobs").await.is_err(),
        "alice must not see bob's catalog"
    );
    lab.bump("7.0");
    let mut plan = lab.plan(&bob_key_file);
    plan.org = Some("bobs".into());
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let bobs = publish::run(&plan, &bob, &tx, &CancellationToken::new())
        .await
        .unwrap();
    lab.publish("1.0").await;
    let store = lab.store().await;
    let before = keys(&store.list("").await.unwrap());
    lab.age_everything(TWO_DAYS).await;

    let report = lab.gc(&GcOptions::default()).await;
    assert!(report.deleted.is_empty(), "{:?}", report.deleted);
    assert_eq!(keys(&store.list("").await.unwrap()), before);
    // Bob's build still installs.
    let info = bob.show("bobs", "tool").await.unwrap();
    assert_eq!(
        info.versions[0].builds[0].store_path,
        bobs.store_path.to_string()
    );
    let env = lab.tmp.path().join("bob-env");
    std::fs::create_dir_all(env.join(".flox/env")).unwrap();
    std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
    let mut req = install::Request::new(
        PackageRef::parse("bobs/tool").unwrap(),
        &env,
        &lab.tmp.path().join("bob-data"),
    );
    req.nix = None;
    req.store_open = lab.open.clone();
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    install::install(&req, &bob, &tx).await.unwrap();
    lab.finish().await;
}

/// A tmpfs of `size` mounted at `dir` for the test's life (root only; `None`: cannot).
struct Mounted(PathBuf);

impl Mounted {
    fn tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mounted(dir.to_path_buf()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Installing onto a file system without room says so: at once when the closure cannot fit,
/// and when it fills up on the way (small files take more room than their bytes), with what
/// was needed and what is free; nothing is installed and the staging directory goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_on_a_full_disk_says_the_disk_is_full() {
    let Some(lab) = Lab::start(Kind::SqliteService, false).await else {
        return;
    };
    let versions = [
        (
            "1.0",
            "mkdir -p $out && head -c 3000000 /dev/urandom > $out/blob",
        ),
        (
            "2.0",
            "mkdir -p $out/many && for i in $(seq 1 600); do echo $i > $out/many/f$i; done",
        ),
    ];
    for (v, command) in versions {
        lab.repo.write(
            ".flox/env/manifest.toml",
            &format!(
                "version = 1\n[install]\nhello.pkg-path = \"hello\"\n[build.tool]\nversion = \"{v}\"\ncommand = '{command}'\n"
            ),
        );
        lab.repo.commit_all(v);
        lab.repo.git(&["push", "-q"]);
        lab.publish_head(&lab.key_file).await.unwrap();
    }
    let full = lab.tmp.path().join("full");
    let Some(_mounted) = Mounted::tmpfs(&full, "1m") else {
        common::skip_or_fail(
            "install_on_a_full_disk_says_the_disk_is_full",
            "cannot mount a tmpfs here (not root, or no mount permission)",
            &[],
        );
        return;
    };
    for v in ["1.0", "2.0"] {
        let env = lab.tmp.path().join(format!("env-{v}"));
        std::fs::create_dir_all(env.join(".flox/env")).unwrap();
        std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
        let mut req = install::Request::new(
            PackageRef::parse(&format!("myorg/tool@{v}")).unwrap(),
            &env,
            &full,
        );
        req.nix = None;
        req.store_open = lab.open.clone();
        let (tx, mut rx) = event::channel();
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let err = install::install(&req, &lab.catalog, &tx).await.unwrap_err();
        let install::InstallError::DiskFull { needed, free, .. } = &err else {
            panic!("{v}: {err}");
        };
        assert!(*needed > 0 && *free <= 1024 * 1024, "{v}: {err}");
        if v == "2.0" {
            // Its bytes fit: the disk filled up on the way, not at the check before.
            assert!(*needed < 512 * 1024, "{v}: {err}");
        }
        let text = err.to_string();
        assert!(text.starts_with("the disk is full"), "{text}");
        assert!(
            !text.contains("signed") && !text.contains("match"),
            "{text}"
        );
        use pubdeck::event::Hinted as _;
        assert!(
            err.hint().unwrap().contains("free space"),
            "{:?}",
            err.hint()
        );
        let left: Vec<_> = std::fs::read_dir(&req.store_dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{v}: left {left:?}");
        assert_eq!(
            std::fs::read_to_string(env.join(".flox/env/manifest.toml")).unwrap(),
            "version = 1\n"
        );
    }
    drop(_mounted);
    lab.finish().await;
}

async fn gc_racing_a_publish_that_reuses_old_garbage_leaves_the_build_intact(lab: Lab) {
    lab.publish("1.0").await;
    // What publishing 2.0 uploads is already in the store, unregistered and old: a publish
    // that failed before registering, two days ago.
    lab.upload_only("2.0").await;
    lab.age_everything(TWO_DAYS).await;
    let store = lab.store().await;
    let before = store.list("").await.unwrap().len();

    // GC in a loop (bounded) while 2.0 is published again.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let gc_task = {
        let (catalog, open, stop, rounds) = (
            lab.catalog.clone(),
            lab.open.clone(),
            Arc::clone(&stop),
            Arc::clone(&rounds),
        );
        tokio::spawn(async move {
            for _ in 0..500 {
                let (tx, mut rx) = event::channel();
                tokio::spawn(async move { while rx.recv().await.is_some() {} });
                gc::collect(&catalog, "myorg", &open, &GcOptions::default(), &tx)
                    .await
                    .unwrap();
                rounds.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        })
    };
    // The same commit again: the same bytes, so the publish reuses the old objects.
    let published = lab.publish_head(&lab.key_file).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    gc_task.await.unwrap();
    assert!(rounds.load(Ordering::SeqCst) >= 1);
    let r = lab.ready("myorg/tool@2.0").await;
    assert!(r.ok(), "{:?}", r.checks);
    lab.install_fresh("myorg/tool@2.0", 1).await.unwrap();
    lab.install_fresh("myorg/tool@1.0", 2).await.unwrap();
    assert!(published.store_path.contains("tool-2.0"));
    // The store holds nothing more than the two builds (with their NARs and cache info).
    let after = store.list("").await.unwrap();
    assert!(after.len() <= before, "{} > {before}", after.len());
    lab.finish().await;
}

async fn key_rotation_while_installs_run_in_a_loop(lab: Lab) {
    lab.publish("1.0").await;
    lab.publish("1.1").await;
    let old_key = SecretKey::from_file(&lab.key_file).unwrap();
    let new_key = SecretKey::generate("myorg-2").unwrap();
    let new_file = lab.tmp.path().join("myorg-2.key");
    new_key
        .write_new(&new_file, pubdeck::fsutil::write_new)
        .unwrap();

    // Installs in a loop until the rotation is over (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let lab = Arc::new(lab);
    let installs = {
        let (lab, stop) = (Arc::clone(&lab), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut ok = 0;
            for n in 0..400 {
                let pkg = if n % 2 == 0 {
                    "myorg/tool@1.0"
                } else {
                    "myorg/tool"
                };
                if let Err(e) = lab.install_fresh(pkg, 100 + n).await {
                    panic!("install {n} failed during the rotation: {e}");
                }
                ok += 1;
                if stop.load(Ordering::SeqCst) && ok >= 3 {
                    break;
                }
            }
            ok
        })
    };
    let c = &lab.catalog;
    c.add_key("myorg", &new_key.public().to_nix_string())
        .await
        .unwrap();
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let store = lab.store().await;
    // An interrupted earlier run signed one narinfo already: the rerun resumes.
    let first = c.show("myorg", "tool").await.unwrap().versions[0].builds[0].clone();
    let name = format!(
        "{}.narinfo",
        first.store_path["/nix/store/".len()..]
            .split('-')
            .next()
            .unwrap()
    );
    let mut info = pubdeck::nix::narinfo::NarInfo::parse(
        std::str::from_utf8(&store.get(&name).await.unwrap()).unwrap(),
    )
    .unwrap();
    info.sign(&new_key);
    store
        .replace(&name, bytes::Bytes::from(info.to_string()))
        .await
        .unwrap();
    let report = resign::resign(c, "myorg", &new_key, &lab.open, None, &tx)
        .await
        .unwrap();
    assert_eq!(report.narinfos, 2);
    assert_eq!((report.signed, report.already_signed), (1, 1), "{report:?}");
    let again = resign::resign(c, "myorg", &new_key, &lab.open, None, &tx)
        .await
        .unwrap();
    assert_eq!((again.signed, again.already_signed), (0, 2));
    c.remove_key("myorg", "myorg-1").await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let ok = installs.await.unwrap();
    assert!(ok >= 3, "{ok} installs");

    // Every narinfo carries both signatures now; the catalog trusts only the new key.
    for o in store.list("").await.unwrap() {
        if o.key.ends_with(".narinfo") {
            let text = String::from_utf8(store.get(&o.key).await.unwrap().to_vec()).unwrap();
            assert!(
                text.contains("Sig: myorg-1:") && text.contains("Sig: myorg-2:"),
                "{text}"
            );
        }
    }
    // Publishing with the old key is refused; with the new one it works.
    let refused = lab.publish_with("1.2", &lab.key_file).await;
    assert!(refused.is_err());
    lab.publish_with("1.3", &new_file).await.unwrap();
    lab.install_fresh("myorg/tool@1.3", 1).await.unwrap();

    // Removing the new key too (without re-signing) leaves builds signed only by removed
    // keys: `ready` says so and how to fix it.
    let third = SecretKey::generate("myorg-3").unwrap();
    c.add_key("myorg", &third.public().to_nix_string())
        .await
        .unwrap();
    c.remove_key("myorg", "myorg-2").await.unwrap();
    let r = lab.ready("myorg/tool@1.0").await;
    let sig = r
        .checks
        .iter()
        .find(|c| c.id == install::id::SIGNATURE)
        .unwrap();
    assert!(!sig.ok);
    assert!(sig.message.contains("no longer trusts"), "{}", sig.message);
    assert!(sig.message.contains("`myorg-1`") && sig.message.contains("`myorg-2`"));
    assert!(
        sig.hint
            .as_deref()
            .unwrap_or("")
            .contains("pubdeck catalog re-sign myorg"),
        "{:?}",
        sig.hint
    );
    let _ = old_key;
    // A read token cannot re-sign or collect garbage.
    let (_, read) = lab
        .fx
        .backend
        .db()
        .create_token("alice", Scope::Read, None)
        .await
        .unwrap();
    let reader = AnyCatalog::Remote(CatalogClient::new(&lab.fx.base_url(), Some(read)).unwrap());
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    assert!(
        gc::collect(&reader, "myorg", &lab.open, &GcOptions::default(), &tx)
            .await
            .is_err()
    );
    let lab = Arc::into_inner(lab).expect("the install loop is done");
    lab.finish().await;
}

// ---- the command line ------------------------------------------------------------------------

/// `pubdeck` against the lab's service, as alice (with `token`), with its own data and
/// config directories and pubdeck's own store for installs.
fn cli(lab: &Lab, token: &str, args: &[&str]) -> std::process::Output {
    let home = lab.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("PUBDECK_CATALOG", lab.fx.base_url())
        .env("PUBDECK_TOKEN", token)
        .env("PUBDECK_DATA_DIR", lab.data_dir())
        .env("PUBDECK_NIX", "0")
        .env_remove("PUBDECK_DB")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("pubdeck runs")
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn cli_tokens_whoami_yank_log_use_gc_and_upgrade() {
    run_big(|| async {
        let Some(lab) = Lab::start(Kind::SqliteService, false).await else {
            return;
        };
        let admin = lab.fx.add_user("alice").await;
        let db = lab.fx.db_url.clone();

        // Tokens: created with a scope and an expiry, listed without the token, revoked.
        let made = json_of(&cli(
            &lab,
            &admin,
            &[
                "user",
                "token",
                "create",
                "alice",
                "--scope",
                "read",
                "--expires",
                "30d",
                "--db",
                &db,
                "--json",
            ],
        ));
        let read = made["token"].as_str().unwrap().to_string();
        let id = made["info"]["id"].as_str().unwrap().to_string();
        assert_eq!(made["info"]["scope"], "read");
        let who = json_of(&cli(&lab, &read, &["whoami", "--json"]));
        assert_eq!(who["user"], "alice");
        assert_eq!(who["scope"], "read");
        assert_eq!(who["token_id"], id.as_str());
        assert!(who["expires_at"].as_str().is_some());
        let listed = cli(
            &lab,
            &admin,
            &["user", "token", "list", "alice", "--db", &db],
        );
        let text = String::from_utf8_lossy(&listed.stdout).into_owned();
        assert!(listed.status.success());
        assert!(text.contains(&id) && text.contains("read") && !text.contains(&read));
        assert!(text.contains("LAST USED"), "{text}");
        let refused = cli(&lab, &read, &["yank", "myorg/tool@1.0"]);
        assert_eq!(refused.status.code(), Some(1));
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(
            err.contains("scope is read") && err.contains("hint:"),
            "{err}"
        );
        json_of(&cli(
            &lab,
            &admin,
            &["user", "token", "revoke", &id, "--db", &db, "--json"],
        ));
        let gone = cli(&lab, &read, &["whoami"]);
        assert_eq!(gone.status.code(), Some(1));
        let err = String::from_utf8_lossy(&gone.stderr);
        assert!(err.contains("revoked"), "{err}");
        assert!(err.contains("pubdeck user token create"), "{err}");
        let bad = cli(
            &lab,
            &admin,
            &[
                "user", "token", "create", "alice", "--scope", "root", "--db", &db,
            ],
        );
        assert_eq!(bad.status.code(), Some(2));

        // Publish 1.0, install it unpinned, then 1.1 and 2.0; yank 2.0.
        lab.publish("1.0").await;
        let env = lab.tmp.path().join("app");
        std::fs::create_dir_all(env.join(".flox/env")).unwrap();
        let manifest = "version = 1\n\n[install]\nhello.pkg-path = \"hello\"\n";
        std::fs::write(env.join(".flox/env/manifest.toml"), manifest).unwrap();
        let envs = env.to_str().unwrap();
        json_of(&cli(
            &lab,
            &admin,
            &["install", "myorg/tool", "--dir", envs, "--json"],
        ));
        let lock: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.join(".flox/env/pubdeck.lock")).unwrap())
                .unwrap();
        assert_eq!(lock["packages"]["tool"]["version"], "1.0");
        let manifest_after_install =
            std::fs::read_to_string(env.join(".flox/env/manifest.toml")).unwrap();
        lab.publish("1.1").await;
        lab.publish("2.0").await;
        let y = json_of(&cli(&lab, &admin, &["yank", "myorg/tool@2.0", "--json"]));
        assert_eq!(y["yanked"], true);
        assert_eq!(y["latest_version"], "1.1");
        let show = json_of(&cli(&lab, &admin, &["show", "myorg/tool", "--json"]));
        assert_eq!(show["latest_version"], "1.1");
        assert_eq!(show["versions"][0]["version"], "2.0");
        assert_eq!(show["versions"][0]["yanked"], true);
        let shown = cli(&lab, &admin, &["show", "myorg/tool"]);
        assert!(String::from_utf8_lossy(&shown.stdout).contains("2.0 (yanked)"));
        let found = json_of(&cli(&lab, &admin, &["search", "tool", "--json"]));
        assert_eq!(found["results"][0]["latest_version"], "1.1");
        let no_version = cli(&lab, &admin, &["yank", "myorg/tool"]);
        assert_eq!(no_version.status.code(), Some(2));

        // Upgrade: dry run says old → new; the run installs the newest not yanked.
        let dry = json_of(&cli(
            &lab,
            &admin,
            &["upgrade", "--dry-run", "--dir", envs, "--json"],
        ));
        assert_eq!(dry["steps"][0]["id"], "tool");
        assert_eq!(dry["steps"][0]["from"], "1.0");
        assert_eq!(dry["steps"][0]["to"], "1.1");
        assert_eq!(dry["steps"][0]["status"], "available");
        let text = cli(&lab, &admin, &["upgrade", "--dry-run", "--dir", envs]);
        assert!(String::from_utf8_lossy(&text.stdout).contains("myorg/tool 1.0 → 1.1"));
        let done = json_of(&cli(&lab, &admin, &["upgrade", "--dir", envs, "--json"]));
        assert_eq!(done["steps"][0]["status"], "upgraded", "{done}");
        let lock: serde_json::Value =
            serde_json::from_slice(&std::fs::read(env.join(".flox/env/pubdeck.lock")).unwrap())
                .unwrap();
        assert_eq!(lock["packages"]["tool"]["version"], "1.1");
        // The descriptor moves with the lock: the store path and the note of 1.1, nothing else.
        let old_path = manifest_after_install
            .lines()
            .find_map(|l| l.strip_prefix("tool.store-path = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let new_path = lock["packages"]["tool"]["store_path"].as_str().unwrap();
        assert_eq!(
            std::fs::read_to_string(env.join(".flox/env/manifest.toml")).unwrap(),
            manifest_after_install
                .replace(&old_path, new_path)
                .replace("myorg/tool@1.0", "myorg/tool@1.1"),
            "the descriptor and its note move to 1.1, the rest stays as the user wrote it"
        );
        let again = json_of(&cli(&lab, &admin, &["upgrade", "--dir", envs, "--json"]));
        assert_eq!(again["steps"][0]["status"], "up-to-date");
        let unknown = cli(&lab, &admin, &["upgrade", "nosuch", "--dir", envs]);
        assert_eq!(unknown.status.code(), Some(1));
        // A pinned entry is left alone.
        json_of(&cli(
            &lab,
            &admin,
            &["yank", "myorg/tool@2.0", "--undo", "--json"],
        ));
        let pinned = lab.tmp.path().join("pinned");
        std::fs::create_dir_all(pinned.join(".flox/env")).unwrap();
        std::fs::write(pinned.join(".flox/env/manifest.toml"), manifest).unwrap();
        let pins = pinned.to_str().unwrap();
        json_of(&cli(
            &lab,
            &admin,
            &["install", "myorg/tool@1.0", "--dir", pins, "--json"],
        ));
        let p = json_of(&cli(
            &lab,
            &admin,
            &["upgrade", "--dry-run", "--dir", pins, "--json"],
        ));
        assert_eq!(p["steps"][0]["status"], "pinned");

        // The audit log.
        let log = json_of(&cli(&lab, &admin, &["catalog", "log", "myorg", "--json"]));
        let actions: Vec<&str> = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions[..2], ["unyank", "yank"]);
        assert!(actions.contains(&"publish") && actions.contains(&"create"));

        // `use`: shows the lines; off a terminal writes only with --yes, keeping the rest.
        let conf = lab.tmp.path().join("nix.conf");
        std::fs::write(&conf, "# mine\nsandbox = true\n").unwrap();
        let confs = conf.to_str().unwrap();
        let asked = cli(&lab, &admin, &["use", "myorg", "--nix-conf", confs]);
        assert_eq!(asked.status.code(), Some(1));
        let out = String::from_utf8_lossy(&asked.stdout);
        assert!(
            out.contains(&format!("extra-substituters = {}", lab.store_url)),
            "{out}"
        );
        assert!(
            out.contains("extra-trusted-public-keys = myorg-1:"),
            "{out}"
        );
        assert!(String::from_utf8_lossy(&asked.stderr).contains("--yes"));
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            "# mine\nsandbox = true\n"
        );
        let wrote = json_of(&cli(
            &lab,
            &admin,
            &["use", "myorg", "--nix-conf", confs, "--yes", "--json"],
        ));
        assert_eq!(wrote["written"], true);
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.starts_with("# mine\nsandbox = true\n"), "{text}");
        assert!(text.contains("extra-substituters = file://"), "{text}");
        let again = json_of(&cli(
            &lab,
            &admin,
            &["use", "myorg", "--nix-conf", confs, "--yes", "--json"],
        ));
        assert_eq!(again["already"], true);
        assert_eq!(std::fs::read_to_string(&conf).unwrap(), text);
        // `ready` now finds Nix configured for the catalog.
        let store_cache_info =
            std::fs::read_to_string(lab.tmp.path().join("store/nix-cache-info")).unwrap();
        assert!(
            store_cache_info.contains("WantMassQuery: 1"),
            "{store_cache_info}"
        );
        assert!(
            store_cache_info.contains("Priority: 41"),
            "{store_cache_info}"
        );

        // GC from the command line: a dry run lists, JSON counts bytes.
        let gc = json_of(&cli(
            &lab,
            &admin,
            &[
                "catalog",
                "gc",
                "myorg",
                "--dry-run",
                "--grace",
                "0s",
                "--json",
            ],
        ));
        assert_eq!(gc["dry_run"], true);
        assert!(gc["deleted"].as_array().unwrap().is_empty(), "{gc}");
        let bad = cli(&lab, &admin, &["catalog", "gc", "myorg", "--grace", "soon"]);
        assert_eq!(bad.status.code(), Some(2));

        // remove-key through the CLI.
        let rk = cli(
            &lab,
            &admin,
            &["catalog", "remove-key", "myorg", "nosuchkey"],
        );
        assert_eq!(rk.status.code(), Some(1));
        lab.finish().await;
    });
}
