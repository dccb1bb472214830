//! The memo cannot lie (issue 27): a publish reuses a dependency without reading it only when
//! the store holds exactly what the memo says it became, signed by the publisher's key, with
//! its NAR. Each test changes a dependency behind pubdeck's back — a different path with the
//! same name, another NarHash registered by Nix, a store that lost the NAR or the narinfo, a
//! narinfo signed by another key — and pubdeck re-packs or refuses; it never skips. Real
//! Nix imports every closure that was published.
//!
//! The dependencies are a chain in the real Nix store: `leaf-<token>` (added with `nix store
//! add-path`, content-addressed already) and `mid-<token>`, which names the leaf and is
//! registered with it as its reference (`nix-store --register-validity`), so it is not
//! content-addressed and only the memo can say what it becomes.

use crate::common;

use std::path::{Path, PathBuf};

use common::Repo;
use common::nix::{add_path, add_self_referencing, nix_make_content_addressed, register};
use pubdeck::catalog::{AnyCatalog, Catalog, EmbeddedCatalog};
use pubdeck::event::{self, Event};
use pubdeck::nix::narinfo::NarInfo;
use pubdeck::nix::sign::SecretKey;
use pubdeck::publish::{self, Plan, PublishError};
use tokio_util::sync::CancellationToken;

use crate::common::nix::nix_store_here;

/// A path named `mid-<token>` that names `leaf` and is registered with it as its reference.
fn add_mid(dir: &Path, token: &str, leaf: &str, text: &str) -> String {
    let mid = add_path(
        dir,
        &format!("mid-{token}"),
        &format!("{text} uses {leaf}\n"),
    );
    register(&mid, &[leaf]);
    mid
}

/// The manifest of build `show` at `version`, which links `dep`'s `share`.
fn manifest(dep: &str, version: u32) -> String {
    common::nix::closure_manifest(dep).replace("\"2.0.0\"", &format!("\"{version}.0.0\""))
}

struct World {
    tmp: tempfile::TempDir,
    token: String,
    leaf: String,
    mid: String,
    repo: Repo,
    catalog: AnyCatalog,
    key_file: PathBuf,
    pub_file: PathBuf,
    store_dir: PathBuf,
    memo_dir: PathBuf,
    /// How many publishes ran.
    published: std::cell::Cell<u32>,
}

/// What one publish did.
struct Run {
    published: Result<publish::Published, PublishError>,
    /// The dependencies it packed (their content-addressed paths).
    packed_deps: Vec<String>,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let token = hex::encode(rand::random::<[u8; 8]>());
        let leaf = add_path(tmp.path(), &format!("leaf-{token}"), "leaf\n");
        let mid = add_mid(tmp.path(), &token, &leaf, "one");
        let key = SecretKey::generate("myorg-1").unwrap();
        let key_file = tmp.path().join("myorg-1.key");
        let pub_file = key
            .write_new(&key_file, pubdeck::fsutil::write_new)
            .unwrap();
        let catalog = AnyCatalog::Embedded(
            EmbeddedCatalog::open(&tmp.path().join("catalog.sqlite"))
                .await
                .unwrap(),
        );
        let store_dir = tmp.path().join("store");
        catalog
            .create_catalog(
                "myorg",
                &format!("file://{}", store_dir.display()),
                &[key.public().to_nix_string()],
            )
            .await
            .unwrap();
        let repo = Repo::with_manifest(&manifest(&mid, 1));
        World {
            memo_dir: tmp.path().join("data/closure-memo"),
            tmp,
            token,
            leaf,
            mid,
            repo,
            catalog,
            key_file,
            pub_file,
            store_dir,
            published: std::cell::Cell::new(0),
        }
    }

    /// Publishes the next version, whose output refers to `dep`.
    async fn publish_next(&self, dep: &str) -> Run {
        // Version 1 first (as committed unless `dep` is another path), then each publish
        // commits the next.
        let done = self.published.get();
        self.published.set(done + 1);
        self.repo
            .write(".flox/env/manifest.toml", &manifest(dep, done + 1));
        if !self.repo.git(&["status", "--porcelain"]).stdout.is_empty() {
            self.repo.commit_all("next version");
            self.repo.git(&["push", "-q"]);
        }
        let mut plan = Plan::new(&self.repo.work, "show");
        plan.org = Some("myorg".into());
        plan.signing_key = Some(self.key_file.clone());
        plan.fetch = false;
        plan.memo_dir = Some(self.memo_dir.clone());
        let (tx, mut rx) = event::channel();
        let collect = tokio::spawn(async move {
            let mut v = Vec::new();
            while let Some(e) = rx.recv().await {
                v.push(e);
            }
            v
        });
        let published = publish::run(&plan, &self.catalog, &tx, &CancellationToken::new()).await;
        drop(tx);
        let events = collect.await.unwrap();
        let packed_deps = events
            .iter()
            .filter_map(|e| match e {
                Event::Packed {
                    store_path,
                    dependency: true,
                    ..
                } => Some(store_path.clone()),
                _ => None,
            })
            .collect();
        Run {
            published,
            packed_deps,
        }
    }

    fn narinfo_file(&self, store_path: &str) -> PathBuf {
        let hash = &store_path["/nix/store/".len()..]["/nix/store/".len() - 11..32];
        self.store_dir.join(format!("{hash}.narinfo"))
    }

    fn narinfo(&self, store_path: &str) -> NarInfo {
        NarInfo::parse(&std::fs::read_to_string(self.narinfo_file(store_path)).unwrap()).unwrap()
    }

    /// The published form of `mid` the output of `p` refers to.
    fn mid_of(&self, p: &publish::Published) -> String {
        let refs = self.narinfo(&p.store_path).references;
        assert_eq!(refs.len(), 1, "the output refers to mid only");
        refs[0].to_string()
    }

    /// Real Nix imports `p`'s closure from the store; returns the text `mid` holds there.
    fn imported_mid_text(&self, p: &publish::Published) -> String {
        let oracle = common::run_oracle(&self.store_dir, &self.pub_file, &[&p.store_path]);
        std::fs::read_to_string(oracle.restored(&self.mid_of(p)).join("share/data.txt")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_version_reads_no_dependency_and_nix_imports_it() {
    if !nix_store_here("the_next_version_reads_no_dependency_and_nix_imports_it") {
        return;
    }
    let w = World::new().await;
    let first = w.publish_next(&w.mid).await;
    let p1 = first.published.unwrap();
    let mid1 = w.mid_of(&p1);
    assert_ne!(
        mid1, w.mid,
        "mid is made content-addressed: it changes name"
    );
    let mut packed = first.packed_deps.clone();
    packed.sort();
    let mut want = vec![w.leaf.clone(), mid1.clone()];
    want.sort();
    assert_eq!(packed, want, "the first publish packs both dependencies");

    let second = w.publish_next(&w.mid).await;
    let p2 = second.published.unwrap();
    assert!(
        second.packed_deps.is_empty(),
        "no dependency packed: {:?}",
        second.packed_deps
    );
    assert_eq!(w.mid_of(&p2), mid1);
    let detail = w.catalog.show("myorg", "show").await.unwrap();
    let v2 = detail
        .versions
        .iter()
        .find(|v| v.version == "2.0.0")
        .unwrap();
    let mut closure: Vec<String> = v2.builds[0]
        .closure
        .iter()
        .map(|c| c.store_path.clone())
        .collect();
    closure.sort();
    let mut want = vec![w.leaf.clone(), mid1.clone(), p2.store_path.clone()];
    want.sort();
    assert_eq!(closure, want, "the catalog records the whole closure");
    assert_eq!(w.imported_mid_text(&p2), format!("one uses {}\n", w.leaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_path_with_the_same_name_is_packed() {
    if !nix_store_here("a_different_path_with_the_same_name_is_packed") {
        return;
    }
    let w = World::new().await;
    let p1 = w.publish_next(&w.mid).await.published.unwrap();
    let mid1 = w.mid_of(&p1);
    let other = add_mid(w.tmp.path(), &w.token, &w.leaf, "two");
    assert_ne!(other, w.mid);
    let run = w.publish_next(&other).await;
    let p2 = run.published.unwrap();
    let mid2 = w.mid_of(&p2);
    assert_ne!(mid2, mid1);
    assert_eq!(
        run.packed_deps,
        std::slice::from_ref(&mid2),
        "the new mid is packed, leaf is not"
    );
    assert_eq!(w.imported_mid_text(&p2), format!("two uses {}\n", w.leaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nar_hash_registered_by_nix_is_packed() {
    if !nix_store_here("another_nar_hash_registered_by_nix_is_packed") {
        return;
    }
    let w = World::new().await;
    let p1 = w.publish_next(&w.mid).await.published.unwrap();
    let mid1 = w.mid_of(&p1);
    // The same local path now holds other bytes, and Nix registered them.
    let data = Path::new(&w.mid).join("share/data.txt");
    let dir = data.parent().unwrap();
    let mode = |p: &Path, m| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(dir, 0o755);
    mode(&data, 0o644);
    std::fs::write(&data, format!("three uses {}\n", w.leaf)).unwrap();
    mode(&data, 0o444);
    mode(dir, 0o555);
    register(&w.mid, &[&w.leaf]);

    let run = w.publish_next(&w.mid).await;
    let p2 = run.published.unwrap();
    let mid2 = w.mid_of(&p2);
    assert_ne!(mid2, mid1, "the memo entry of the old NarHash was not used");
    assert_eq!(run.packed_deps, std::slice::from_ref(&mid2));
    assert_eq!(w.imported_mid_text(&p2), format!("three uses {}\n", w.leaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_lost_the_nar_or_the_narinfo_gets_it_packed_again() {
    if !nix_store_here("a_store_that_lost_the_nar_or_the_narinfo_gets_it_packed_again") {
        return;
    }
    let w = World::new().await;
    let p1 = w.publish_next(&w.mid).await.published.unwrap();
    let mid1 = w.mid_of(&p1);
    let info = w.narinfo(&mid1);

    std::fs::remove_file(w.store_dir.join(&info.url)).unwrap();
    let run = w.publish_next(&w.mid).await;
    let p2 = run.published.unwrap();
    assert_eq!(
        run.packed_deps,
        std::slice::from_ref(&mid1),
        "the NAR was lost: mid is packed"
    );
    assert!(w.store_dir.join(&info.url).is_file(), "the NAR is back");
    assert_eq!(w.imported_mid_text(&p2), format!("one uses {}\n", w.leaf));

    std::fs::remove_file(w.narinfo_file(&mid1)).unwrap();
    let run = w.publish_next(&w.mid).await;
    let p3 = run.published.unwrap();
    assert_eq!(
        run.packed_deps,
        std::slice::from_ref(&mid1),
        "the narinfo was lost: mid is packed"
    );
    assert_eq!(w.narinfo(&mid1), info, "the narinfo is back, the same");
    assert_eq!(w.imported_mid_text(&p3), format!("one uses {}\n", w.leaf));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narinfo_signed_by_another_key_is_packed_and_refused() {
    if !nix_store_here("a_narinfo_signed_by_another_key_is_packed_and_refused") {
        return;
    }
    let w = World::new().await;
    let p1 = w.publish_next(&w.mid).await.published.unwrap();
    let mid1 = w.mid_of(&p1);
    let mut info = w.narinfo(&mid1);
    info.sigs.clear();
    info.sign(&SecretKey::generate("intruder-1").unwrap());
    let text = info.to_string();
    std::fs::write(w.narinfo_file(&mid1), &text).unwrap();

    let run = w.publish_next(&w.mid).await;
    assert_eq!(
        run.packed_deps,
        std::slice::from_ref(&mid1),
        "mid is packed, not skipped"
    );
    let err = run
        .published
        .expect_err("a narinfo pubdeck did not sign is refused");
    assert!(
        matches!(err, PublishError::Conflict(_)) && err.to_string().contains(&info.file_name()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(w.narinfo_file(&mid1)).unwrap(),
        text,
        "the store's narinfo is left as it was"
    );
    let detail = w.catalog.show("myorg", "show").await.unwrap();
    assert_eq!(
        detail.versions.len(),
        1,
        "the next version is not registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_whose_references_are_rewritten_is_imported_by_nix() {
    if !nix_store_here("a_chain_whose_references_are_rewritten_is_imported_by_nix") {
        return;
    }
    let w = World::new().await;
    // upper -> mid -> leaf: mid changes name, so upper's reference to it is rewritten.
    let upper = add_path(
        w.tmp.path(),
        &format!("upper-{}", w.token),
        &format!("upper uses {}\n", w.mid),
    );
    register(&upper, &[&w.mid]);
    let p1 = w.publish_next(&upper).await.published.unwrap();
    let upper1 = w.narinfo(&p1.store_path).references[0].to_string();
    let info = w.narinfo(&upper1);
    assert_eq!(info.references.len(), 1);
    let mid1 = info.references[0].to_string();
    assert_ne!(mid1, w.mid);
    let oracle = common::run_oracle(&w.store_dir, &w.pub_file, &[&p1.store_path]);
    assert_eq!(
        std::fs::read_to_string(oracle.restored(&upper1).join("share/data.txt")).unwrap(),
        format!("upper uses {mid1}\n"),
        "the reference in upper's bytes names what mid became"
    );
    let again = w.publish_next(&upper).await;
    assert!(again.packed_deps.is_empty(), "{:?}", again.packed_deps);
    common::run_oracle(
        &w.store_dir,
        &w.pub_file,
        &[&again.published.unwrap().store_path],
    );
}

/// A dependency that names itself (made content-addressed in memory, modulo its own hash
/// part) gets the path `nix store make-content-addressed` gives it, its bytes name that new
/// path, real Nix imports the closure, and the next version reads it no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_that_names_itself_gets_the_path_nix_gives_it() {
    if !nix_store_here("a_dependency_that_names_itself_gets_the_path_nix_gives_it") {
        return;
    }
    let w = World::new().await;
    let lib = add_self_referencing(
        &format!("lib-{}", w.token),
        "rpath {self}/lib\nuses {leaf}\nand again {self}\n"
            .replace("{leaf}", &w.leaf)
            .as_str(),
        &[&w.leaf],
    );
    let first = w.publish_next(&lib).await;
    let p1 = first.published.unwrap();
    let lib1 = w.mid_of(&p1);
    assert_ne!(lib1, lib);
    assert_eq!(
        lib1,
        nix_make_content_addressed(&lib),
        "the path Nix gives it"
    );
    let info = w.narinfo(&lib1);
    let mut refs: Vec<String> = info.references.iter().map(|r| r.to_string()).collect();
    refs.sort();
    let mut want = vec![lib1.clone(), w.leaf.clone()];
    want.sort();
    assert_eq!(refs, want, "itself and the leaf");
    assert!(
        info.ca
            .as_deref()
            .is_some_and(|ca| ca.starts_with("fixed:r:sha256:"))
    );
    let oracle = common::run_oracle(&w.store_dir, &w.pub_file, &[&p1.store_path]);
    assert_eq!(
        std::fs::read_to_string(oracle.restored(&lib1).join("share/data.txt")).unwrap(),
        format!("rpath {lib1}/lib\nuses {}\nand again {lib1}\n", w.leaf),
        "its bytes name its new path"
    );
    let again = w.publish_next(&lib).await;
    assert!(again.packed_deps.is_empty(), "{:?}", again.packed_deps);
    again.published.unwrap();
}

/// The memo keeps the signature each packed narinfo got, to check the store's without
/// signing again; a new key of the same name must not take that signature for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_signature_counts_only_for_the_key_that_made_it() {
    if !nix_store_here("a_remembered_signature_counts_only_for_the_key_that_made_it") {
        return;
    }
    let w = World::new().await;
    let p1 = w.publish_next(&w.mid).await.published.unwrap();
    let mid1 = w.mid_of(&p1);
    let signed_by_old = w.narinfo(&mid1);
    // The same key name, another secret.
    let new_key = SecretKey::generate("myorg-1").unwrap();
    std::fs::write(&w.key_file, new_key.to_nix_string()).unwrap();
    std::fs::set_permissions(
        &w.key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    w.catalog.remove_key("myorg", "myorg-1").await.unwrap();
    w.catalog
        .add_key("myorg", &new_key.public().to_nix_string())
        .await
        .unwrap();

    let run = w.publish_next(&w.mid).await;
    // Neither is taken as present: both are packed again, unless the leaf's narinfo (which
    // may not replace the old key's) stops the run before mid is packed. The leaf's upload
    // starts only once it is packed, so the leaf is always among them.
    let mut packed = run.packed_deps.clone();
    packed.sort();
    packed.dedup();
    assert!(
        packed.contains(&w.leaf) && packed.iter().all(|p| *p == w.leaf || *p == mid1),
        "the leaf (and mid, if reached) packed again: the store's narinfos are not signed by \
         the key in use: {:?}",
        run.packed_deps
    );
    assert!(
        run.published.is_err(),
        "the old key's narinfo is not replaced"
    );
    assert_eq!(w.narinfo(&mid1), signed_by_old);
}

/// A dependency whose bytes are not what Nix registered is refused (and so not remembered):
/// `nix copy` would publish it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_corrupted_in_the_nix_store_is_refused() {
    if !nix_store_here("a_dependency_corrupted_in_the_nix_store_is_refused") {
        return;
    }
    let w = World::new().await;
    // Other bytes, of the same length, behind Nix's back.
    let data = Path::new(&w.mid).join("share/data.txt");
    let dir = data.parent().unwrap();
    let mode = |p: &Path, m| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let good = std::fs::read_to_string(&data).unwrap();
    mode(dir, 0o755);
    mode(&data, 0o644);
    std::fs::write(&data, good.replacen("one", "two", 1)).unwrap();
    mode(&data, 0o444);
    mode(dir, 0o555);

    let run = w.publish_next(&w.mid).await;
    let err = run
        .published
        .expect_err("a corrupted dependency is refused");
    let text = err.to_string();
    assert!(
        text.contains("corrupted") && text.contains(&w.mid) && text.contains("nix store repair"),
        "{text}"
    );
    // Nothing names it: no narinfo of a `mid`, no version registered, nothing remembered.
    let mids: Vec<String> = std::fs::read_dir(&w.store_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|t| t.starts_with("StorePath: ") && t.lines().next().unwrap().contains("-mid-"))
        .collect();
    assert!(mids.is_empty(), "{mids:?}");
    assert!(w.catalog.show("myorg", "show").await.is_err());
    let remembered = std::fs::read_dir(&w.memo_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(
        remembered <= 1,
        "at most the leaf is remembered: {remembered}"
    );

    // Repaired, it publishes.
    mode(dir, 0o755);
    mode(&data, 0o644);
    std::fs::write(&data, &good).unwrap();
    mode(&data, 0o444);
    mode(dir, 0o555);
    let run = w.publish_next(&w.mid).await;
    run.published.expect("the repaired path publishes");
}
