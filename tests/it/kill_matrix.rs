//! `kill -9` at three more points (tests/it/publish_crash.rs has the first five): between two
//! paths of a closure upload (also in the middle of a wide closure packed and uploaded in
//! parallel), during an install's import (pubdeck's store and the real Nix
//! store), and of the catalog service inside its register transaction (SQLite and
//! PostgreSQL). After each kill nothing partial is visible, and a rerun succeeds.
//!
//! `PUBDECK_FAILPOINT_PAUSE=<point>` (src/failpoint.rs) stops the process exactly at the point
//! and says so on stderr; the test SIGKILLs it there.

use crate::common;
use crate::common::catalog_support;
use crate::common::proc;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use catalog_support::{Fixture, Kind};
use common::Repo;
use proc::{PATIENCE, Proc, pubdeck, start_service, start_service_on};
use pubdeck::catalog::{AnyCatalog, Catalog, CatalogClient, CheckBuild, EmbeddedCatalog};
use pubdeck::nix::narinfo::NarInfo;
use pubdeck::nix::sign::SecretKey;

fn run_ok(mut cmd: Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

use crate::common::nix::nix_store_here;

/// A publisher's world on an embedded catalog (`PUBDECK_CATALOG` = a SQLite file): `myorg`
/// trusts a fresh key and stores into a file:// store; the environment builds `show`, whose
/// output needs `dep` (a path in the real Nix store).
struct World {
    tmp: tempfile::TempDir,
    repo: Repo,
    catalog: AnyCatalog,
    store_dir: PathBuf,
    pub_file: PathBuf,
    dep: String,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let token = hex::encode(rand::random::<[u8; 8]>());
        let dep = common::nix::add_dependency(tmp.path(), &token);
        let key = SecretKey::generate("myorg-1").unwrap();
        let pub_file = key
            .write_new(&tmp.path().join("myorg-1.key"), pubdeck::fsutil::write_new)
            .unwrap();
        let db = tmp.path().join("catalog.sqlite");
        let catalog = AnyCatalog::Embedded(EmbeddedCatalog::open(&db).await.unwrap());
        let store_dir = tmp.path().join("store");
        catalog
            .create_catalog(
                "myorg",
                &format!("file://{}", store_dir.display()),
                &[key.public().to_nix_string()],
            )
            .await
            .unwrap();
        let repo = Repo::with_manifest(&common::nix::closure_manifest(&dep));
        World {
            tmp,
            repo,
            catalog,
            store_dir,
            pub_file,
            dep,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = pubdeck(args, self.tmp.path());
        c.env("PUBDECK_CATALOG", self.tmp.path().join("catalog.sqlite"));
        c
    }

    fn publish(&self) -> Command {
        let mut c = self.cmd(&["publish", "show", "--dir"]);
        c.arg(&self.repo.work);
        c
    }

    fn narinfo_of(&self, store_path: &str) -> Option<NarInfo> {
        let hash = &store_path["/nix/store/".len()..]["/nix/store/".len() - 11..32];
        let text = std::fs::read_to_string(self.store_dir.join(format!("{hash}.narinfo"))).ok()?;
        Some(NarInfo::parse(&text).unwrap())
    }
}

/// The store holds only finished artifacts: every narinfo's NAR is there at its full size,
/// every reference of a narinfo has its own narinfo, and there are no other files (no
/// half-written temporaries). Returns the store paths it has narinfos for.
fn assert_store_complete(store_dir: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut infos = Vec::new();
    for e in std::fs::read_dir(store_dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        match name.as_str() {
            "nix-cache-info" | "nar" => {}
            // A NAR listing is written whole (it may precede a narinfo a kill prevented).
            n if n.ends_with(".ls") => {
                let text = std::fs::read_to_string(e.path()).unwrap();
                let doc: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|err| panic!("{n} is not whole: {err}: {text}"));
                assert_eq!(doc["version"], 1, "{n}: {text}");
            }
            n if n.ends_with(".narinfo") => {
                let info = NarInfo::parse(&std::fs::read_to_string(e.path()).unwrap()).unwrap();
                paths.push(info.store_path.to_string());
                infos.push(info);
            }
            other => panic!("unexpected file in the store: {other}"),
        }
    }
    let nars: Vec<String> = std::fs::read_dir(store_dir.join("nar"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    for n in &nars {
        assert!(!n.starts_with('.'), "a temporary file is visible: nar/{n}");
    }
    for info in &infos {
        let nar = store_dir.join(&info.url);
        let len = std::fs::metadata(&nar)
            .unwrap_or_else(|_| panic!("{} has a narinfo but no NAR", info.store_path))
            .len();
        assert_eq!(
            Some(len),
            info.file_size,
            "{} NAR is partial",
            info.store_path
        );
        for r in &info.references {
            assert!(
                paths.contains(&r.to_string()),
                "{} refers to {r}, which the store lacks",
                info.store_path
            );
        }
    }
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_between_two_paths_of_a_closure_upload() {
    let test = "kill_nine_between_two_paths_of_a_closure_upload";
    if !nix_store_here(test) {
        return;
    }
    let w = World::new().await;
    let mut p = w.publish();
    p.env("PUBDECK_FAILPOINT_PAUSE", "upload-closure");
    let mut proc = Proc::spawn(p);
    proc.wait_for("failpoint: paused at upload-closure");
    proc.kill_nine();

    // The dependency is in the store, complete; the output is not; the catalog shows nothing.
    let in_store = assert_store_complete(&w.store_dir);
    assert_eq!(
        in_store,
        std::slice::from_ref(&w.dep),
        "exactly the dependency was uploaded"
    );
    assert!(w.catalog.search("show", 10).await.unwrap().is_empty());
    assert!(w.catalog.show("myorg", "show").await.is_err());

    // The rerun finds the dependency there, uploads the rest, registers.
    let out = run_ok(w.publish());
    assert_eq!(out.trim(), "myorg/show@2.0.0");
    let detail = w.catalog.show("myorg", "show").await.unwrap();
    let top = detail.versions[0].builds[0].store_path.clone();
    let mut expect = vec![w.dep.clone(), top.clone()];
    expect.sort();
    assert_eq!(assert_store_complete(&w.store_dir), expect);
    assert_eq!(
        w.narinfo_of(&top).unwrap().references[0].to_string(),
        w.dep,
        "the output refers to the dependency uploaded before the kill"
    );
    // Real Nix accepts the store as the rerun left it.
    common::run_oracle(&w.store_dir, &w.pub_file, &[&top]);
}

/// A closure wide and deep enough to be packed and uploaded in parallel, in the real Nix
/// store: four content-addressed leaves; six paths that each name two leaves (registered with
/// them as references, so they change name when made content-addressed); a root naming all
/// six, whose references are therefore rewritten. The output links the root. Returns the
/// root and every path.
fn add_wide_closure(dir: &Path, token: &str) -> (String, Vec<String>) {
    use common::nix::{add_path, register};
    let leaves: Vec<String> = (0..4)
        .map(|i| add_path(dir, &format!("leaf{i}-{token}"), &format!("leaf {i}\n")))
        .collect();
    let mids: Vec<String> = (0..6)
        .map(|i| {
            let (a, b) = (&leaves[i % 4], &leaves[(i + 1) % 4]);
            let text = format!("mid {i} uses {a} and {b}\n").repeat(2000);
            let mid = add_path(dir, &format!("mid{i}-{token}"), &text);
            register(&mid, &[a, b]);
            mid
        })
        .collect();
    let text: String = mids.iter().map(|m| format!("root uses {m}\n")).collect();
    let root = add_path(dir, &format!("root-{token}"), &text);
    let refs: Vec<&str> = mids.iter().map(String::as_str).collect();
    register(&root, &refs);
    let mut all = leaves;
    all.extend(mids);
    all.push(root.clone());
    (root, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_in_the_middle_of_a_parallel_closure_upload() {
    let test = "kill_nine_in_the_middle_of_a_parallel_closure_upload";
    if !nix_store_here(test) {
        return;
    }
    let w = World::new().await;
    let token = hex::encode(rand::random::<[u8; 8]>());
    let (root, local) = add_wide_closure(w.tmp.path(), &token);
    w.repo.write(
        ".flox/env/manifest.toml",
        &common::nix::closure_manifest(&root),
    );
    w.repo.commit_all("a wide closure");
    w.repo.git(&["push", "-q"]);

    let mut p = w.publish();
    p.env("PUBDECK_FAILPOINT_PAUSE", "upload-closure");
    let mut proc = Proc::spawn(p);
    proc.wait_for("failpoint: paused at upload-closure");
    // The other uploads go on while one is paused: let them get as far as they can (a pause,
    // not an assertion about time: any moment is a valid moment to kill).
    std::thread::sleep(Duration::from_millis(300));
    proc.kill_nine();

    // Some of the closure is in the store, every narinfo there with its NAR and everything
    // it refers to; the output is not; the catalog shows nothing.
    let before = assert_store_complete(&w.store_dir);
    assert!(!before.is_empty(), "the kill came during the upload");
    assert!(
        before.len() < local.len(),
        "the kill came before the whole closure was up: {before:?}"
    );
    assert!(w.catalog.search("show", 10).await.unwrap().is_empty());

    // The rerun completes: the whole closure and the output, and real Nix imports it.
    let out = run_ok(w.publish());
    assert_eq!(out.trim(), "myorg/show@2.0.0");
    let detail = w.catalog.show("myorg", "show").await.unwrap();
    let top = detail.versions[0].builds[0].store_path.clone();
    let after = assert_store_complete(&w.store_dir);
    assert_eq!(
        after.len(),
        local.len() + 1,
        "every path and the output: {after:?}"
    );
    for p in &before {
        assert!(
            after.contains(p),
            "{p} uploaded before the kill is still there"
        );
    }
    common::run_oracle(&w.store_dir, &w.pub_file, &[&top]);
}

/// Names of the entries of `dir` (sorted), empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_an_install_import_into_either_store() {
    let test = "kill_nine_during_an_install_import_into_either_store";
    if !nix_store_here(test) {
        return;
    }
    let w = World::new().await;
    run_ok(w.publish());
    let top = w.catalog.show("myorg", "show").await.unwrap().versions[0].builds[0]
        .store_path
        .clone();
    let top_base = top.trim_start_matches("/nix/store/").to_string();
    let dep_base = w.dep.trim_start_matches("/nix/store/").to_string();

    for nix in ["0", "1"] {
        let consumer = Repo::with_manifest("version = 1\n\n[install]\njq.pkg-path = \"jq\"\n");
        let manifest_path = consumer.work.join(".flox/env/manifest.toml");
        let manifest_before = std::fs::read(&manifest_path).unwrap();
        let data = w.tmp.path().join(format!("consumer-data-{nix}"));
        let install = |failpoint: Option<&str>| {
            let mut c = w.cmd(&["install", "myorg/show", "--dir"]);
            c.arg(&consumer.work)
                .env("PUBDECK_DATA_DIR", &data)
                .env("PUBDECK_NIX", nix);
            if let Some(point) = failpoint {
                c.env("PUBDECK_FAILPOINT_PAUSE", point);
            }
            c
        };
        if nix == "1" {
            // The dependency must be imported too: take it out of the Nix store.
            let mut c = common::nix::nix_cmd("nix");
            c.args(["store", "delete", &w.dep]);
            common::nix::run_ok(c);
            assert!(!common::nix::is_valid(&w.dep));
        }

        let mut proc = Proc::spawn(install(Some("install-import")));
        proc.wait_for("failpoint: paused at install-import");
        proc.kill_nine();

        // The dependency is in, whole; the package is not; the manifest is untouched.
        let store = data.join("store");
        if nix == "1" {
            assert!(
                common::nix::is_valid(&w.dep),
                "the dependency was imported before the kill"
            );
            assert!(
                !common::nix::is_valid(&top),
                "the package must not be in the Nix store yet"
            );
            assert!(!Path::new(&top).exists(), "{top} is half there");
            // Nix itself still finds its store consistent.
            let mut c = common::nix::nix_cmd("nix");
            c.args(["store", "verify", &w.dep]);
            common::nix::run_ok(c);
        } else {
            let names = entries(&store);
            assert!(names.contains(&dep_base), "{names:?}");
            assert!(!names.contains(&top_base), "{names:?}");
            let summary =
                pubdeck::nix::nar::dump_path(&store.join(&dep_base), std::io::sink()).unwrap();
            let dep_info = w.narinfo_of(&w.dep).unwrap();
            assert_eq!(
                summary.nar_hash, dep_info.nar_hash,
                "the dependency is whole"
            );
        }
        assert_eq!(
            std::fs::read(&manifest_path).unwrap(),
            manifest_before,
            "the manifest changed before the install finished"
        );
        // What the killed install staged is still there, until the next install clears it.
        assert!(
            entries(&store)
                .iter()
                .any(|n| n.starts_with(".pubdeck-install-")),
            "{:?}",
            entries(&store)
        );

        // The rerun reuses the dependency, imports the package, edits the manifest, and
        // removes the killed install's staging directory.
        run_ok(install(None));
        let names = entries(&store);
        assert!(
            !names.iter().any(|n| n.starts_with(".pubdeck-install-")),
            "staging left behind: {names:?}"
        );
        let root = if nix == "1" {
            assert!(common::nix::is_valid(&top));
            PathBuf::from(&top)
        } else {
            store.join(&top_base)
        };
        let manifest = std::fs::read_to_string(&manifest_path).unwrap();
        assert!(manifest.contains("myorg/show"), "{manifest}");
        if nix == "1" {
            let out = Command::new(root.join("bin/show")).output().unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).starts_with("data "),
                "{out:?}"
            );
        } else {
            assert!(root.join("bin/show").is_file());
        }
    }
}

async fn register_kill(kind: Kind) {
    let Some(fx) = Fixture::start(kind).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let token = fx.add_user("alice").await;
    let key = SecretKey::generate("myorg-1").unwrap();
    key.write_new(&tmp.path().join("myorg-1.key"), pubdeck::fsutil::write_new)
        .unwrap();
    let store_dir = tmp.path().join("store");
    fx.user("alice")
        .await
        .create_catalog(
            "myorg",
            &format!("file://{}", store_dir.display()),
            &[key.public().to_nix_string()],
        )
        .await
        .unwrap();
    let repo = Repo::with_manifest(
        "version = 1\n[install]\nhello.pkg-path = \"hello\"\n[build.slow]\nversion = \"1.0\"\ncommand = 'mkdir -p $out && echo done > $out/result'\n",
    );
    let publish = |url: &str| {
        let mut c = pubdeck(&["publish", "slow", "--dir"], tmp.path());
        c.arg(&repo.work)
            .env("PUBDECK_CATALOG", url)
            .env("PUBDECK_TOKEN", &token);
        c
    };
    let client =
        |url: &str| AnyCatalog::Remote(CatalogClient::new(url, Some(token.clone())).unwrap());

    // The service stops inside the transaction; publish is waiting for its answer.
    let service = start_service(tmp.path(), &fx.db_url, Some("register-transaction"));
    let mut publisher = Proc::spawn(publish(&service.url));
    let mut service_proc = service.proc;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(line) = service_proc.lines.recv_timeout(Duration::from_millis(50)) {
            if line.contains("failpoint: paused at register-transaction") {
                break;
            }
            service_proc.seen.push(line);
        }
        if let Some(status) = publisher.child.try_wait().unwrap() {
            publisher.seen.extend(publisher.lines.try_iter());
            panic!(
                "publish exited ({status}) before registering:\n{}\nservice:\n{}",
                publisher.seen.join("\n"),
                service_proc.seen.join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the service never reached the failpoint"
        );
    }
    service_proc.kill_nine();
    let (status, log) = publisher.wait();
    assert!(
        !status.success(),
        "publish succeeded against a killed service:\n{log}"
    );

    // Restarted on the same database: the build is not there, in any view.
    let service = start_service(tmp.path(), &fx.db_url, None);
    let alice = client(&service.url);
    assert!(alice.search("slow", 10).await.unwrap().is_empty());
    assert!(alice.show("myorg", "slow").await.is_err());
    let listing = alice.catalogs().await.unwrap();
    assert_eq!(listing.len(), 1);
    let query = CheckBuild {
        org: "myorg".into(),
        name: "slow".into(),
        revision: repo.head(),
        system: None,
    };
    assert_eq!(alice.check_build(&query).await.unwrap(), None);
    // The other instance (the fixture's own service on the same database) agrees.
    assert!(fx.user("alice").await.show("myorg", "slow").await.is_err());

    // The rerun publishes.
    let out = run_ok(publish(&service.url));
    assert_eq!(out.trim(), "myorg/slow@1.0");
    let detail = alice.show("myorg", "slow").await.unwrap();
    assert_eq!(detail.versions.len(), 1);
    assert_eq!(
        alice.search("slow", 10).await.unwrap()[0].name,
        "myorg/slow"
    );
    assert!(alice.check_build(&query).await.unwrap().is_some());
    service.proc.kill_nine();
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_the_sqlite_service_inside_the_register_transaction() {
    register_kill(Kind::SqliteService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_of_the_postgres_service_inside_the_register_transaction() {
    register_kill(Kind::PostgresService).await;
}

/// The catalog service dies while GC deletes: the deletions complete, GC reports them and
/// exits 0, saying that the audit entry waits; the next maintenance command against the
/// restarted service sends it (with the time the work was done), and nothing waits any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_outlives_the_service_and_its_audit_entry_is_sent_at_the_next_contact() {
    let Some(fx) = Fixture::start(Kind::SqliteService).await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let token = fx.add_user("alice").await;
    let key = SecretKey::generate("myorg-1").unwrap();
    key.write_new(&tmp.path().join("myorg-1.key"), pubdeck::fsutil::write_new)
        .unwrap();
    let store_dir = tmp.path().join("store");
    let alice = fx.user("alice").await;
    alice
        .create_catalog(
            "myorg",
            &format!("file://{}", store_dir.display()),
            &[key.public().to_nix_string()],
        )
        .await
        .unwrap();
    // Garbage: three unregistered paths, two days old.
    let store = pubdeck::store::Store::open_str(
        &format!("file://{}", store_dir.display()),
        &Default::default(),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let dir = tmp.path().join(format!("junk{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("f"), format!("junk {i}")).unwrap();
        pubdeck::cache::add_source(
            &store,
            &dir,
            &format!("junk-{i}"),
            &[],
            &Default::default(),
            &key,
        )
        .await
        .unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    for e in walk(&store_dir) {
        let f = std::fs::OpenOptions::new().write(true).open(&e).unwrap();
        f.set_modified(old).unwrap();
    }

    let service = start_service(tmp.path(), &fx.db_url, None);
    let gc = |url: &str, failpoint: Option<&str>| {
        let mut c = pubdeck(&["catalog", "gc", "myorg", "--json"], tmp.path());
        c.env("PUBDECK_CATALOG", url).env("PUBDECK_TOKEN", &token);
        if let Some(p) = failpoint {
            c.env("PUBDECK_FAILPOINT_PAUSE", p);
        }
        c
    };
    let mut collector = Proc::spawn(gc(&service.url, Some("gc-record")));
    collector.wait_for("failpoint: paused at gc-record");
    service.proc.kill_nine();
    // SAFETY: signalling our own child to go on past its failpoint.
    unsafe { libc::kill(collector.child.id() as i32, libc::SIGUSR2) };
    let mut out = String::new();
    use std::io::Read as _;
    collector
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let (status, log) = collector.wait();
    assert!(status.success(), "{log}\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"].as_array().unwrap().len(), 9, "{report}");
    assert!(report["audit_pending"].as_str().is_some(), "{report}");
    assert!(
        log.contains("warning: the catalog did not take the audit entry"),
        "{log}"
    );
    let pending_dir = tmp.path().join("data/pending-audit");
    assert_eq!(std::fs::read_dir(&pending_dir).unwrap().count(), 1);

    // The service, restarted where it was, gets the entry at the next maintenance command.
    let listen = service.url.strip_prefix("http://").unwrap().to_string();
    let service = start_service_on(&listen, tmp.path(), &fx.db_url, None);
    let mut c = pubdeck(&["catalog", "log", "myorg", "--json"], tmp.path());
    c.env("PUBDECK_CATALOG", &service.url)
        .env("PUBDECK_TOKEN", &token);
    let log: serde_json::Value = serde_json::from_str(&run_ok(c)).unwrap();
    let entry = &log["entries"][0];
    assert_eq!(entry["action"], "gc", "{log}");
    assert_eq!(entry["detail"]["narinfos"], 3);
    assert_eq!(entry["detail"]["complete"], true);
    assert!(entry["detail"]["performed_at"].as_str().is_some());
    assert_eq!(std::fs::read_dir(&pending_dir).unwrap().count(), 0);
    service.proc.kill_nine();
    fx.finish().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
