//! Published artifacts run where they are installed: a build that refers to its own `$out`,
//! a build that needs another store path, squatting on another org's store path, and a
//! tampered dependency — with real git, the real catalog service on loopback, a file://
//! store, and real Nix (CI runs as root with nix-bin: installs go into the real /nix/store).
//!
//! Every build output carries a random token, so its store path is new on every run and no
//! earlier run's copy in the shared /nix/store can stand in for it.

use crate::common;
use crate::common::catalog_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Repo;
use pubdeck::catalog::{AnyCatalog, Catalog, NewBuild};
use pubdeck::event::{self, Event};
use pubdeck::install::{self, NixStore, PackageRef};
use pubdeck::nix::narinfo::NarInfo;
use pubdeck::nix::sign::SecretKey;
use pubdeck::publish::{self, Plan};
use tokio_util::sync::CancellationToken;

fn token() -> String {
    hex::encode(rand::random::<[u8; 8]>())
}

/// True when installs can go into the real Nix store here; otherwise says why the test does
/// not run (and fails under CI, where they must).
fn nix_store_here(test: &str) -> bool {
    if !common::have_nix(test) {
        return false;
    }
    if !common::nix::can_write_nix_store() && NixStore::detect().is_none() {
        common::skip_or_fail(
            test,
            "the Nix store is not writable here (run as root or with a nix daemon)",
            &["PUBDECK_REQUIRE_NIX"],
        );
        return false;
    }
    true
}

/// A publisher's world: an environment with `manifest`, the catalog service on loopback (as
/// alice, who owns `myorg`), a signing key the catalog trusts, a file:// store.
struct World {
    tmp: tempfile::TempDir,
    fx: catalog_support::Fixture,
    repo: Repo,
    alice: AnyCatalog,
    key_file: PathBuf,
    pub_file: PathBuf,
    store_dir: PathBuf,
}

impl World {
    async fn new(manifest: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let fx = catalog_support::Fixture::start(catalog_support::Kind::SqliteService)
            .await
            .expect("SQLite service");
        let alice = fx.user("alice").await;
        let key = SecretKey::generate("myorg-1").unwrap();
        let key_file = tmp.path().join("myorg-1.key");
        let pub_file = key
            .write_new(&key_file, pubdeck::fsutil::write_new)
            .unwrap();
        let store_dir = tmp.path().join("store");
        alice
            .create_catalog(
                "myorg",
                &format!("file://{}", store_dir.display()),
                &[key.public().to_nix_string()],
            )
            .await
            .unwrap();
        World {
            tmp,
            fx,
            repo: Repo::with_manifest(manifest),
            alice,
            key_file,
            pub_file,
            store_dir,
        }
    }

    async fn publish(&self, build: &str) -> (publish::Published, Vec<Event>) {
        let mut plan = Plan::new(&self.repo.work, build);
        plan.org = Some("myorg".into());
        plan.signing_key = Some(self.key_file.clone());
        plan.fetch = false;
        let (tx, mut rx) = event::channel();
        let collect = tokio::spawn(async move {
            let mut v = Vec::new();
            while let Some(e) = rx.recv().await {
                v.push(e);
            }
            v
        });
        let r = publish::run(&plan, &self.alice, &tx, &CancellationToken::new()).await;
        drop(tx);
        let events = collect.await.unwrap();
        (
            r.unwrap_or_else(|e| panic!("publish: {e}\n{events:#?}")),
            events,
        )
    }

    fn narinfo(&self, store_path: &str) -> NarInfo {
        let hash = &store_path["/nix/store/".len()..]["/nix/store/".len() - 11..32];
        let text = std::fs::read_to_string(self.store_dir.join(format!("{hash}.narinfo"))).unwrap();
        NarInfo::parse(&text).unwrap()
    }

    fn install_request(&self, package: &str, env: &Path) -> install::Request {
        let mut req = install::Request::new(
            PackageRef::parse(package).unwrap(),
            env,
            &self.tmp.path().join("data"),
        );
        req.nix_conf = vec![];
        req
    }
}

async fn install(
    req: &install::Request,
    catalog: &AnyCatalog,
) -> Result<install::Installed, install::InstallError> {
    let (tx, mut rx) = event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    install::install(req, catalog, &tx).await
}

fn consumer() -> Repo {
    Repo::with_manifest("version = 1\n\n[install]\njq.pkg-path = \"jq\"\n")
}

/// Every file's contents and every symlink's target in a tree.
fn texts(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(&p).unwrap();
            out.push((p, t.into_os_string().into_encoded_bytes()));
        } else if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrapper_that_execs_its_own_out_runs_from_the_nix_store() {
    if !nix_store_here("a_wrapper_that_execs_its_own_out_runs_from_the_nix_store") {
        return;
    }
    let tok = token();
    let w = World::new(&format!(
        r#"version = 1
[install]
hello.pkg-path = "hello"

[build.wrap]
version = "1.0.0"
command = '''
  mkdir -p $out/bin $out/libexec
  printf '#!/bin/sh\necho "the real tool {tok}"\n' > $out/libexec/real
  chmod +x $out/libexec/real
  printf '#!/bin/sh\nexec %s/libexec/real "$@"\n' "$out" > $out/bin/wrap
  chmod +x $out/bin/wrap
  ln -s $out/libexec/real $out/bin/real-link
'''
"#
    ))
    .await;
    let (p, events) = w.publish("wrap").await;
    // Built at a private path as long as the store path, never in /nix/store.
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Packed {
            dependency: false,
            ..
        }
    )));
    let info = w.narinfo(&p.store_path);
    assert_eq!(
        info.references
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&p.store_path),
        "it refers to itself and nothing else"
    );
    let ca = pubdeck::cache::require_content_address(&info).unwrap();
    assert!(ca.self_reference);
    assert_ne!(ca.hash, info.nar_hash, "named modulo its self-reference");

    // Real Nix accepts the cache and imports it.
    common::run_oracle(&w.store_dir, &w.pub_file, &[&p.store_path]);

    // Install into the real Nix store; the wrapper runs from there.
    let target = consumer();
    let bob = w.fx.user("bob").await;
    w.alice.allow("myorg", "bob").await.unwrap();
    let mut req = w.install_request("myorg/wrap", &target.work);
    // Without Nix it would go into pubdeck's own store, where it cannot run: ready warns,
    // and does not fail.
    req.nix = None;
    let r = install::ready(&req, &bob).await;
    let runs = r.checks.iter().find(|c| c.id == "runs-here").unwrap();
    assert!(runs.warning && !runs.ok && r.ok(), "{runs:?}");
    assert!(runs.message.contains("will not run"), "{runs:?}");
    let req = w.install_request("myorg/wrap", &target.work);
    assert!(req.nix.is_some(), "Nix is usable here");
    let installed = install(&req, &bob).await.unwrap();
    assert_eq!(installed.path, PathBuf::from(&p.store_path));
    assert_eq!(installed.store, "nix");
    assert_eq!(
        installed.executables,
        vec![
            installed.path.join("bin/real-link"),
            installed.path.join("bin/wrap")
        ]
    );
    let out = Command::new(installed.path.join("bin/wrap"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("the real tool {tok}\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::nix::is_valid(&p.store_path));
    // No installed file names the temporary build directory.
    for (path, text) in texts(&installed.path) {
        assert!(!contains(&text, b"/tmp/"), "{} names /tmp/", path.display());
        if contains(&text, b"/libexec/real") {
            assert!(
                contains(&text, p.store_path.as_bytes()),
                "{}",
                path.display()
            );
        }
    }
    // Installing again reuses the verified path.
    let again = consumer();
    let req = w.install_request("myorg/wrap", &again.work);
    let second = install(&req, &bob).await.unwrap();
    assert_eq!(second.reused, 1);
    w.fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_is_published_whole_and_nix_imports_it() {
    if !nix_store_here("a_closure_is_published_whole_and_nix_imports_it") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tok = token();
    let dep = common::nix::add_dependency(tmp.path(), &tok);
    let w = World::new(&common::nix::closure_manifest(&dep)).await;
    let (p, events) = w.publish("show").await;
    // The dependency was packed, and before the output.
    let packed: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Packed {
                store_path,
                dependency,
                ..
            } => Some((store_path.clone(), *dependency)),
            _ => None,
        })
        .collect();
    assert_eq!(packed, [(dep.clone(), true), (p.store_path.clone(), false)]);
    // A path added with add-path is content-addressed already: it keeps its name.
    let info = w.narinfo(&p.store_path);
    assert_eq!(
        info.references
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        std::slice::from_ref(&dep)
    );
    let dep_info = w.narinfo(&dep);
    assert!(dep_info.references.is_empty());
    pubdeck::cache::require_content_address(&dep_info).unwrap();
    // The catalog records the closure; show lists it with sizes.
    let detail = w.alice.show("myorg", "show").await.unwrap();
    let closure: Vec<(String, u64)> = detail.versions[0].builds[0]
        .closure
        .iter()
        .map(|c| (c.store_path.clone(), c.nar_size))
        .collect();
    assert_eq!(closure.len(), 2);
    assert!(
        closure
            .iter()
            .any(|(s, n)| *s == dep && *n == dep_info.nar_size)
    );
    assert!(
        closure
            .iter()
            .any(|(s, n)| *s == p.store_path && *n == info.nar_size)
    );

    // Real Nix imports the top-level path (and so its closure) from the cache; verify --all.
    let oracle = common::run_oracle(&w.store_dir, &w.pub_file, &[&p.store_path]);
    assert!(oracle.restored(&dep).join("share/data.txt").is_file());

    // Install: the dependency is already in the Nix store (add-path) and is reused.
    let target = consumer();
    let req = w.install_request("myorg/show", &target.work);
    let installed = install(&req, &w.alice).await.unwrap();
    assert_eq!(installed.closure, [dep.clone(), p.store_path.clone()]);
    assert_eq!(installed.reused, 1);
    let out = Command::new(installed.path.join("bin/show"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("data {tok}\n")
    );
    w.fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_dependency_is_refused_and_nothing_is_imported() {
    if !nix_store_here("a_tampered_dependency_is_refused_and_nothing_is_imported") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tok = token();
    let dep = common::nix::add_dependency(tmp.path(), &tok);
    let w = World::new(&common::nix::closure_manifest(&dep)).await;
    let (p, _) = w.publish("show").await;
    // The dependency leaves the local Nix store, so install must fetch it; its NAR in the
    // Catalog Store is tampered with.
    let mut c = common::nix::nix_cmd("nix");
    c.args(["store", "delete", &dep]);
    common::nix::run_ok(c);
    assert!(!common::nix::is_valid(&dep));
    let dep_info = w.narinfo(&dep);
    let nar = w.store_dir.join(&dep_info.url);
    let mut bytes = std::fs::read(&nar).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&nar, bytes).unwrap();

    for use_nix in [true, false] {
        let target = consumer();
        let manifest =
            std::fs::read_to_string(target.work.join(".flox/env/manifest.toml")).unwrap();
        let mut req = w.install_request("myorg/show", &target.work);
        if !use_nix {
            req.nix = None;
        }
        let err = install(&req, &w.alice).await.unwrap_err().to_string();
        assert!(
            err.contains(&dep) || err.contains(&dep_info.url),
            "the error names the tampered dependency: {err}"
        );
        // Nothing was imported into either store, and the manifest is untouched.
        assert!(!common::nix::is_valid(&dep), "{err}");
        assert!(!common::nix::is_valid(&p.store_path), "{err}");
        let own = w.tmp.path().join("data/store");
        let left: Vec<_> = std::fs::read_dir(&own)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "pubdeck's store holds {left:?}");
        assert_eq!(
            std::fs::read_to_string(target.work.join(".flox/env/manifest.toml")).unwrap(),
            manifest
        );
    }
    w.fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatting_another_orgs_store_path_is_refused() {
    // Through the real service on loopback. No Nix needed: the service and pubdeck's own
    // store decide.
    let tok = token();
    let w = World::new(&format!(
        r#"version = 1
[install]
hello.pkg-path = "hello"

[build.hello]
version = "1.0.0"
command = '''
  mkdir -p $out/bin
  printf '#!/bin/sh\necho "honest {tok}"\n' > $out/bin/hello
  chmod +x $out/bin/hello
'''
"#
    ))
    .await;
    let (honest, _) = w.publish("hello").await;

    // mallory owns another catalog and registers her own bytes under alice's store path.
    let mallory = w.fx.user("mallory").await;
    let evil_key = catalog_support::TestKey::new("evil-1", 66);
    mallory
        .create_catalog("evilorg", "file:///tmp/evil-store", &[evil_key.public()])
        .await
        .unwrap();
    let mut squat = catalog_support::build(&evil_key, "evilorg", "hello", "1.0.0", "her content");
    squat.store_path = honest.store_path.clone();
    for ca in [String::new(), format!("fixed:r:{}", honest.nar_hash)] {
        let mut b: NewBuild = squat.clone();
        b.ca = ca;
        evil_key.sign(&mut b);
        let err = mallory.register_build(&b).await.unwrap_err().to_string();
        assert!(
            err.contains(&honest.store_path) && err.contains("does not follow from its content"),
            "{err}"
        );
    }
    // Claiming a self-reference does not help either.
    let mut b = squat.clone();
    b.ca = format!("fixed:r:{}", honest.nar_hash);
    b.references = vec![honest.store_path.clone()];
    evil_key.sign(&mut b);
    let err = mallory.register_build(&b).await.unwrap_err().to_string();
    assert!(err.contains("does not follow from its content"), "{err}");

    // A tree of that name with other contents in pubdeck's own store is never reused.
    let target = consumer();
    let mut req = w.install_request("myorg/hello", &target.work);
    req.nix = None;
    let squatted = req
        .store_dir
        .join(&honest.store_path["/nix/store/".len()..]);
    std::fs::create_dir_all(squatted.join("bin")).unwrap();
    std::fs::write(squatted.join("bin/hello"), "#!/bin/sh\necho squatted\n").unwrap();
    let err = install(&req, &w.alice).await.unwrap_err().to_string();
    assert!(err.contains("other contents"), "{err}");
    // Once it is gone, the honest package installs, with its own bytes.
    pubdeck::fsutil::remove_tree(&squatted).unwrap();
    let installed = install(&req, &w.alice).await.unwrap();
    let out = Command::new(installed.path.join("bin/hello"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("honest {tok}\n")
    );
    w.fx.finish().await;
}
