//! The sample environment built by pubdeck, packed into a file:// cache with a pubdeck key,
//! is accepted by real Nix, and the tree Nix restores equals the build output.

mod common;

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
