//! The sample environment built by pubdeck, packed into a file:// cache with a pubdeck key,
//! is accepted by real Nix, and the tree Nix restores equals the build output.

use crate::common;

use std::os::unix::fs::PermissionsExt;

use common::{Repo, pubdeck, stdout};

#[test]
fn nix_imports_what_pubdeck_built_packed_and_signed() {
    if !common::have_nix("nix_imports_what_pubdeck_built_packed_and_signed") {
        return;
    }
    let repo = Repo::sample_env();
    let dir = repo.work.to_str().unwrap();
    let built = pubdeck(&["build", "hello", "--dir", dir]);
    assert_eq!(built.status.code(), Some(0), "{}", common::stderr(&built));
    let result = std::path::PathBuf::from(stdout(&built).trim());

    let keys = tempfile::tempdir().unwrap();
    let sk = keys.path().join("myorg-1.key");
    let gen_ = pubdeck(&[
        "key",
        "generate",
        "--name",
        "myorg-1",
        "--out",
        sk.to_str().unwrap(),
    ]);
    assert_eq!(gen_.status.code(), Some(0), "{}", common::stderr(&gen_));
    assert_eq!(
        std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pk = keys.path().join("myorg-1.key.pub");
    assert_eq!(stdout(&gen_).trim(), std::fs::read_to_string(&pk).unwrap());
    let again = pubdeck(&[
        "key",
        "generate",
        "--name",
        "myorg-1",
        "--out",
        sk.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1), "refuses to overwrite");
    let public = pubdeck(&["key", "public", sk.to_str().unwrap()]);
    assert_eq!(
        stdout(&public).trim(),
        std::fs::read_to_string(&pk).unwrap()
    );

    let cache = tempfile::tempdir().unwrap();
    let target = std::fs::canonicalize(&result).unwrap();
    for compression in ["zstd", "xz", "none"] {
        let cache_dir = cache.path().join(compression);
        let packed = pubdeck(&[
            "pack",
            target.to_str().unwrap(),
            "--name",
            "hello-1.0.0",
            "--to",
            &format!("file://{}", cache_dir.display()),
            "--signing-key",
            sk.to_str().unwrap(),
            "--compression",
            compression,
            "--json",
        ]);
        assert_eq!(packed.status.code(), Some(0), "{}", common::stderr(&packed));
        let v: serde_json::Value = serde_json::from_str(&stdout(&packed)).unwrap();
        let store_path = v["store_path"].as_str().unwrap().to_string();
        assert!(store_path.ends_with("-hello-1.0.0"));
        let oracle = common::run_oracle(&cache_dir, &pk, &[&store_path]);
        common::assert_same_tree(&target, &oracle.restored(&store_path));
    }
}

/// A narinfo edit, by name.
type Edit<'a> = Box<dyn Fn(&str) -> String + 'a>;

mod stores_other_tools_wrote {
    use std::path::{Path, PathBuf};

    use pubdeck::catalog::{AnyCatalog, Catalog, EmbeddedCatalog, NewBuild};
    use pubdeck::install::{self, PackageRef};
    use pubdeck::nix::narinfo::NarInfo;
    use pubdeck::nix::sign::SecretKey;

    use super::common;

    /// What `nix copy --to file://…?compression=X` writes, for every X Nix 2.8 writes with a
    /// library pubdeck reads it with.
    pub const COMPRESSIONS: &[&str] = &["xz", "bzip2", "br", "gzip", "zstd", "none", "lz4", "lzma"];

    pub struct World {
        pub tmp: tempfile::TempDir,
        pub key_file: PathBuf,
        pub key: SecretKey,
        pub dep: String,
        pub token: String,
        pub catalog: AnyCatalog,
    }

    impl World {
        pub async fn new() -> World {
            let tmp = tempfile::tempdir().unwrap();
            let key = SecretKey::generate("myorg-1").unwrap();
            let key_file = tmp.path().join("myorg-1.key");
            key.write_new(&key_file, pubdeck::fsutil::write_new)
                .unwrap();
            let token = hex::encode(rand::random::<[u8; 8]>());
            let dep = common::nix::add_dependency(tmp.path(), &token);
            let catalog = AnyCatalog::Embedded(
                EmbeddedCatalog::open(&tmp.path().join("catalog.sqlite"))
                    .await
                    .unwrap(),
            );
            World {
                tmp,
                key_file,
                key,
                dep,
                token,
                catalog,
            }
        }

        /// `nix copy` of the dependency into `cache-NAME`, signed with the org's key.
        pub fn nix_copy(&self, name: &str, compression: &str) -> PathBuf {
            let dir = self.tmp.path().join(format!("cache-{name}"));
            let mut c = common::nix::nix_cmd("nix");
            c.args(["copy", "--to"])
                .arg(format!(
                    "file://{}?compression={compression}&secret-key={}",
                    dir.display(),
                    self.key_file.display()
                ))
                .arg(&self.dep);
            common::nix::run_ok(c);
            dir
        }

        /// The catalog `org` on the store in `dir`, registering the dependency's narinfo
        /// there as package `dep` 1.0.
        pub async fn register(&self, org: &str, dir: &Path) -> Result<(), String> {
            self.catalog
                .create_catalog(
                    org,
                    &format!("file://{}", dir.display()),
                    &[self.key.public().to_nix_string()],
                )
                .await
                .map_err(|e| e.to_string())?;
            let hash = self.dep.trim_start_matches("/nix/store/")[..32].to_string();
            let text = std::fs::read_to_string(dir.join(format!("{hash}.narinfo"))).unwrap();
            let info = NarInfo::parse(&text).map_err(|e| e.to_string())?;
            let b = NewBuild {
                org: org.into(),
                package: "dep".into(),
                version: "1.0".into(),
                description: "pushed with nix copy".into(),
                system: pubdeck::publish::current_system(),
                store_path: info.store_path.to_string(),
                narinfo_url: format!("file://{}/{hash}.narinfo", dir.display()),
                nar_hash: info.nar_hash.to_string(),
                nar_size: info.nar_size,
                references: vec![],
                signature: info.sigs.first().map(|s| s.to_string()).unwrap_or_default(),
                key_name: "myorg-1".into(),
                source_url: "https://example.invalid/org/repo.git".into(),
                revision: "0".repeat(40),
                branch: "main".into(),
                build_name: "dep".into(),
                installed_packages: vec!["hello".into()],
                ca: pubdeck::nix::narinfo::ca_recursive_sha256(&info.nar_hash),
                closure: vec![],
                ..Default::default()
            };
            self.catalog
                .register_build(&b)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }

        /// Installs `org/dep` into pubdeck's own store; the installed tree's data file.
        pub async fn install(&self, org: &str) -> Result<String, String> {
            let env = self.tmp.path().join(format!("env-{org}"));
            std::fs::create_dir_all(env.join(".flox/env")).unwrap();
            std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
            let mut req = install::Request::new(
                PackageRef::parse(&format!("{org}/dep")).unwrap(),
                &env,
                &self.tmp.path().join(format!("data-{org}")),
            );
            req.nix = None;
            let (tx, mut rx) = pubdeck::event::channel();
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let done = install::install(&req, &self.catalog, &tx)
                .await
                .map_err(|e| e.to_string())?;
            Ok(std::fs::read_to_string(done.path.join("share/data.txt")).unwrap())
        }

        /// A copy of the xz cache whose narinfo text is `edit`ed.
        pub fn variant(&self, name: &str, edit: &dyn Fn(&str) -> String) -> PathBuf {
            let from = self.tmp.path().join("cache-xz");
            let to = self.tmp.path().join(format!("cache-{name}"));
            common::copy_dir(&from, &to);
            let hash = &self.dep.trim_start_matches("/nix/store/")[..32];
            let file = to.join(format!("{hash}.narinfo"));
            let text = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, edit(&text)).unwrap();
            to
        }
    }
}

/// Stores `nix copy` wrote, in every compression, and the narinfo variants other tools write
/// (no FileHash/FileSize, `Deriver: unknown-deriver`, keys with '-', NarHash in base16 or SRI,
/// no Compression line with a bzip2 NAR): pubdeck registers, verifies and installs each; what
/// Nix refuses, or what does not verify, stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_from_stores_nix_copy_wrote_in_every_compression_and_narinfo_variant() {
    use stores_other_tools_wrote::{COMPRESSIONS, World};
    if !common::have_nix("installs_from_stores_nix_copy_wrote") {
        return;
    }
    let w = World::new().await;
    let want = format!("data {}\n", w.token);
    for c in COMPRESSIONS {
        let dir = w.nix_copy(c, c);
        let org = format!("c-{c}");
        w.register(&org, &dir).await.unwrap();
        assert_eq!(w.install(&org).await.unwrap(), want, "{c}");
    }
    let nar_hash = |t: &str| -> pubdeck::nix::Sha256Hash {
        pubdeck::nix::narinfo::NarInfo::parse(t).unwrap().nar_hash
    };
    let drop_lines = |t: &str, prefixes: &[&str]| -> String {
        t.lines()
            .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let variants: Vec<(&str, Edit<'_>)> = vec![
        (
            "no-file-hash",
            Box::new(|t: &str| drop_lines(t, &["FileHash", "FileSize"])),
        ),
        (
            "unknown-deriver",
            Box::new(|t: &str| format!("{t}Deriver: unknown-deriver\nX-Attic-Chunk: 1\n")),
        ),
        (
            "base16",
            Box::new(move |t: &str| {
                let h = nar_hash(t);
                t.replace(&h.to_string(), &format!("sha256:{}", h.to_hex()))
            }),
        ),
        (
            "sri",
            Box::new(move |t: &str| {
                use base64::Engine as _;
                let h = nar_hash(t);
                let b64 = base64::engine::general_purpose::STANDARD.encode(h.0);
                t.replacen(&h.to_string(), &format!("sha256-{b64}"), 1)
            }),
        ),
    ];
    for (name, edit) in &variants {
        let dir = w.variant(name, edit.as_ref());
        let org = format!("v-{name}");
        w.register(&org, &dir).await.unwrap();
        assert_eq!(w.install(&org).await.unwrap(), want, "{name}");
    }
    // No Compression line: Nix takes bzip2, and so does pubdeck.
    let bz = w.nix_copy("bz-bare", "bzip2");
    let hash = &w.dep.trim_start_matches("/nix/store/")[..32];
    let file = bz.join(format!("{hash}.narinfo"));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, drop_lines(&text, &["Compression"])).unwrap();
    w.register("v-bare", &bz).await.unwrap();
    assert_eq!(w.install("v-bare").await.unwrap(), want);

    // Refused: what Nix refuses, what does not verify, what pubdeck cannot decompress.
    let refused: Vec<(&str, Edit<'_>, &str)> = vec![
        (
            "zero-size",
            Box::new(|t: &str| {
                t.lines()
                    .map(|l| {
                        if l.starts_with("NarSize") {
                            "NarSize: 0".into()
                        } else {
                            l.to_string()
                        }
                    })
                    .map(|l| l + "\n")
                    .collect()
            }),
            "NarSize",
        ),
        (
            "file-hash",
            Box::new(|t: &str| {
                t.lines()
                    .map(|l| {
                        if l.starts_with("FileHash") {
                            format!("FileHash: sha256:{}", "0".repeat(52))
                        } else {
                            l.to_string()
                        }
                    })
                    .map(|l| l + "\n")
                    .collect()
            }),
            "corrupt",
        ),
        (
            "unsigned",
            Box::new(|t: &str| drop_lines(t, &["Sig"])),
            "sign",
        ),
    ];
    for (name, edit, needle) in &refused {
        let dir = w.variant(name, edit.as_ref());
        let org = format!("r-{name}");
        let outcome = match w.register(&org, &dir).await {
            Err(e) => Err(e),
            Ok(()) => w.install(&org).await,
        };
        let err = outcome.expect_err(name);
        assert!(err.contains(needle), "{name}: {err}");
    }
    let lzip = w.nix_copy("lzip", "lzip");
    let err = match w.register("r-lzip", &lzip).await {
        Err(e) => e,
        Ok(()) => w.install("r-lzip").await.unwrap_err(),
    };
    assert!(err.contains("lzip"), "{err}");
}

/// A closure whose dependency another tool pushed (`nix copy`, bzip2, signed with the org's
/// key) and whose top-level path pubdeck published: the publish takes the dependency as
/// already there, and the install into the real Nix store runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_half_pushed_by_nix_copy_installs_and_runs() {
    use pubdeck::catalog::Catalog;
    use stores_other_tools_wrote::World;
    let test = "a_closure_half_pushed_by_nix_copy_installs_and_runs";
    if !common::have_nix(test) {
        return;
    }
    if !common::nix::can_write_nix_store() {
        common::skip_or_fail(
            test,
            "the Nix store is not writable here (run as root)",
            &[],
        );
        return;
    }
    let w = World::new().await;
    let store = w.nix_copy("org", "bzip2");
    let hash = &w.dep.trim_start_matches("/nix/store/")[..32];
    let dep_narinfo = std::fs::read_to_string(store.join(format!("{hash}.narinfo"))).unwrap();
    w.catalog
        .create_catalog(
            "myorg",
            &format!("file://{}", store.display()),
            &[w.key.public().to_nix_string()],
        )
        .await
        .unwrap();
    let repo = Repo::with_manifest(&common::nix::closure_manifest(&w.dep));
    let mut plan = pubdeck::publish::Plan::new(&repo.work, "show");
    plan.org = Some("myorg".into());
    plan.signing_key = Some(w.key_file.clone());
    let (tx, mut rx) = pubdeck::event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let published = pubdeck::publish::run(
        &plan,
        &w.catalog,
        &tx,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(store.join(format!("{hash}.narinfo"))).unwrap(),
        dep_narinfo,
        "the dependency's narinfo is the one nix copy wrote"
    );

    let env = w.tmp.path().join("app");
    std::fs::create_dir_all(env.join(".flox/env")).unwrap();
    std::fs::write(env.join(".flox/env/manifest.toml"), "version = 1\n").unwrap();
    let req = pubdeck::install::Request::new(
        pubdeck::install::PackageRef::parse("myorg/show").unwrap(),
        &env,
        &w.tmp.path().join("data"),
    );
    assert!(req.nix.is_some(), "nix is on PATH");
    let (tx, mut rx) = pubdeck::event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let done = pubdeck::install::install(&req, &w.catalog, &tx)
        .await
        .unwrap();
    assert_eq!(done.store_path, published.store_path.to_string());
    let out = std::process::Command::new(done.path.join("bin/show"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("data {}\n", w.token)
    );
}
