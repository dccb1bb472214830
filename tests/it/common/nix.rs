//! Real Nix as the suite's oracle: the same checks `shared/oracle/nix_oracle.sh` makes, run
//! from the suite itself so a fresh clone needs nothing beside it.
//!
//! For a `file://` cache written by pubdeck, [`oracle`]:
//! 1. `nix store verify --all` over the cache (contents and signatures; Nix trusts CA paths
//!    without signatures, so …)
//! 2. … the same again with every `CA:` line removed, so each path must carry a valid `Sig:`;
//! 3. `nix copy --from file://CACHE --to CHROOT` of the given paths (and their closure), with
//!    `require-sigs = true`, into two throw-away chroot stores (with and without CA lines);
//! 4. `nix store verify --all` of both chroot stores (re-dumps the imported trees and
//!    compares them with the registered NarHash).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::skip_or_fail;

/// `NIX_CONFIG` for every Nix call of the suite: no substituters, signatures required.
pub const NIX_CONFIG: &str =
    "experimental-features = nix-command\nsubstituters =\nrequire-sigs = true\nsandbox = false";

/// True when `nix` is usable. Otherwise prints one line saying why `test` does not run, and
/// fails instead under `CI=true` or `PUBDECK_REQUIRE_NIX=1`.
pub fn have_nix(test: &str) -> bool {
    let ok = Command::new("nix")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_or_fail(
            test,
            "nix is not on PATH (apt-get install nix-bin; CI installs it)",
            &["PUBDECK_REQUIRE_NIX"],
        );
    }
    ok
}

/// True when this process may write to the real `/nix/store` (root, as CI runs).
pub fn can_write_nix_store() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `test` can run here: `nix` is installed and the real store is writable; else it
/// says why in one line (and fails under `PUBDECK_REQUIRE_NIX` or `CI=true`).
pub fn nix_store_here(test: &str) -> bool {
    if !super::have_nix(test) {
        return false;
    }
    if !can_write_nix_store() {
        super::skip_or_fail(
            test,
            "the Nix store is not writable here (run as root)",
            &["PUBDECK_REQUIRE_NIX"],
        );
        return false;
    }
    true
}

/// A `Command` for a Nix program with the suite's configuration and a private cache dir.
pub fn nix_cmd(program: &str) -> Command {
    let mut c = Command::new(program);
    c.env("NIX_CONFIG", NIX_CONFIG);
    c
}

/// Runs `c`; on failure returns its output as the error.
pub fn run(mut c: Command) -> Result<Vec<u8>, String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {c:?}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "{c:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Runs `c` and panics with its output when it fails.
pub fn run_ok(c: Command) -> Vec<u8> {
    run(c).unwrap_or_else(|e| panic!("{e}"))
}

/// `nix-store --dump PATH`.
pub fn nix_store_dump(p: &Path) -> Vec<u8> {
    let mut c = nix_cmd("nix-store");
    c.arg("--dump").arg(p);
    run_ok(c)
}

/// The throw-away stores an oracle run imported into; removed on drop.
pub struct Oracle {
    pub work: tempfile::TempDir,
}

impl Oracle {
    /// Where the oracle restored `store_path` (from the cache with CA lines).
    pub fn restored(&self, store_path: &str) -> PathBuf {
        self.work
            .path()
            .join("root")
            .join(store_path.trim_start_matches('/'))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        // Imported trees are read-only.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(self.work.path())
            .status();
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| e.to_string())?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("cp -a {} {} failed", from.display(), to.display()))
    }
}

/// Runs the oracle over `cache` with the public key in `pubkey_file`; `Err` carries what Nix
/// rejected.
pub fn check(cache: &Path, pubkey_file: &Path, store_paths: &[&str]) -> Result<Oracle, String> {
    let pubkey = std::fs::read_to_string(pubkey_file)
        .map_err(|e| format!("cannot read {}: {e}", pubkey_file.display()))?;
    let pubkey = pubkey.trim();
    if !cache.join("nix-cache-info").is_file() {
        return Err("nix-cache-info is missing (Nix would create it silently)".into());
    }
    let narinfos = std::fs::read_dir(cache)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".narinfo"))
        .count();
    if narinfos == 0 {
        return Err("the cache has no .narinfo files".into());
    }
    let work = tempfile::Builder::new()
        .prefix("nix-oracle.")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let oracle = Oracle { work };
    let w = oracle.work.path();
    // Nix writes into a cache it opens: work on copies.
    let with_ca = w.join("cache");
    let no_ca = w.join("cache-noca");
    copy_dir(cache, &with_ca)?;
    copy_dir(cache, &no_ca)?;
    for e in std::fs::read_dir(&no_ca).map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|x| x == "narinfo") {
            let text = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
            let kept: String = text
                .lines()
                .filter(|l| !l.starts_with("CA: "))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&p, kept).map_err(|e| e.to_string())?;
        }
    }
    let nix = |args: &[&str], extra: &[&Path]| {
        let mut c = nix_cmd("nix");
        c.args(args)
            .args(extra)
            .env("XDG_CACHE_HOME", w.join("xdg"));
        c
    };
    for (cache, root) in [(&with_ca, w.join("root")), (&no_ca, w.join("root-noca"))] {
        let url = format!("file://{}", cache.display());
        run(nix(
            &[
                "store",
                "verify",
                "--store",
                &url,
                "--trusted-public-keys",
                pubkey,
                "--all",
            ],
            &[],
        ))?;
        let mut copy = nix(
            &[
                "copy",
                "--from",
                &url,
                "--to",
                &root.display().to_string(),
                "--option",
                "trusted-public-keys",
                pubkey,
            ],
            &[],
        );
        copy.args(store_paths);
        run(copy)?;
        run(nix(
            &[
                "store",
                "verify",
                "--store",
                &root.display().to_string(),
                "--trusted-public-keys",
                pubkey,
                "--all",
            ],
            &[],
        ))?;
    }
    // The NAR listings pubdeck wrote (`<hash>.ls`) must be byte for byte what Nix writes
    // with `write-nar-listing=true`.
    let ls_cache = w.join("ls");
    let mut listed = nix(
        &[
            "copy",
            "--from",
            &w.join("root").display().to_string(),
            "--to",
            &format!(
                "file://{}?write-nar-listing=true&compression=none",
                ls_cache.display()
            ),
        ],
        &[],
    );
    listed.args(store_paths);
    run(listed)?;
    for p in store_paths {
        let hash = p
            .strip_prefix("/nix/store/")
            .and_then(|r| r.split('-').next())
            .unwrap_or_default();
        let ours = cache.join(format!("{hash}.ls"));
        if !ours.exists() {
            continue;
        }
        // Bytes: like Nix, a name that is not UTF-8 goes into the listing as it is.
        let ours = std::fs::read(&ours).map_err(|e| e.to_string())?;
        let theirs = std::fs::read(ls_cache.join(format!("{hash}.ls")))
            .map_err(|e| format!("Nix wrote no listing for {p}: {e}"))?;
        if ours != theirs {
            return Err(format!(
                "the NAR listing of {p} differs from Nix's:\n ours: {}\nNix's: {}",
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            ));
        }
    }
    Ok(oracle)
}

/// [`check`], panicking with Nix's words when it rejects the cache.
pub fn oracle(cache: &Path, pubkey_file: &Path, store_paths: &[&str]) -> Oracle {
    check(cache, pubkey_file, store_paths)
        .unwrap_or_else(|e| panic!("Nix rejected the cache:\n{e}"))
}

/// A store path added to the local Nix store with `nix store add-path`: a directory `share/`
/// holding `data.txt` with `token` in it (a fresh token: no earlier run has that path).
pub fn add_dependency(dir: &Path, token: &str) -> String {
    let dep = dir.join(format!("dep-{token}"));
    std::fs::create_dir_all(dep.join("share")).unwrap();
    std::fs::write(dep.join("share/data.txt"), format!("data {token}\n")).unwrap();
    let mut c = nix_cmd("nix");
    c.args(["store", "add-path"]).arg(&dep);
    String::from_utf8(run_ok(c)).unwrap().trim().to_string()
}

/// Whether the local Nix store has `path` as a valid path.
pub fn is_valid(path: &str) -> bool {
    let mut c = nix_cmd("nix");
    c.args(["path-info", path]);
    run(c).is_ok()
}

/// A manifest whose build `show` (version 2.0.0) needs the store path `dep` (from
/// [`add_dependency`]): it links `share` into it and its `bin/show` prints its data.
pub fn closure_manifest(dep: &str) -> String {
    format!(
        r#"version = 1
[install]
hello.pkg-path = "hello"

[build.show]
version = "2.0.0"
command = '''
  mkdir -p $out/bin
  ln -s {dep}/share $out/share
  printf '#!/bin/sh\ncat {dep}/share/data.txt\n' > $out/bin/show
  chmod +x $out/bin/show
'''
"#
    )
}

/// `nix store add-path` of a directory `name` holding `share/data.txt` = `text`.
pub fn add_path(dir: &Path, name: &str, text: &str) -> String {
    let tree = dir.join(format!("{}-{name}", hex::encode(rand::random::<[u8; 4]>())));
    let tree = tree.join(name);
    std::fs::create_dir_all(tree.join("share")).unwrap();
    std::fs::write(tree.join("share/data.txt"), text).unwrap();
    let mut c = nix_cmd("nix");
    c.args(["store", "add-path"]).arg(&tree);
    String::from_utf8(run_ok(c)).unwrap().trim().to_string()
}

/// A path written straight into the local Nix store under a made-up hash part, so that its
/// `share/data.txt` can name the path itself (as a library names its own directory in its
/// RPATH): `text` with every `{self}` replaced by the path. Registered as referring to itself
/// and to `refs`.
pub fn add_self_referencing(name: &str, text: &str, refs: &[&str]) -> String {
    let hash = pubdeck::nix::random_hash_part();
    let path = format!("/nix/store/{}-{name}", std::str::from_utf8(&hash).unwrap());
    std::fs::create_dir_all(Path::new(&path).join("share")).unwrap();
    std::fs::write(
        Path::new(&path).join("share/data.txt"),
        text.replace("{self}", &path),
    )
    .unwrap();
    let mut all = vec![path.as_str()];
    all.extend_from_slice(refs);
    register(&path, &all);
    path
}

/// What `nix store make-content-addressed` makes of `path` (and writes into the local store).
pub fn nix_make_content_addressed(path: &str) -> String {
    let mut c = nix_cmd("nix");
    c.args(["store", "make-content-addressed", "--json", path]);
    let out: serde_json::Value = serde_json::from_slice(&run_ok(c)).unwrap();
    out["rewrites"][path]
        .as_str()
        .unwrap_or_else(|| panic!("no rewrite of {path} in {out}"))
        .to_string()
}

/// Registers `path` again with its current NarHash and NarSize and `refs` as references.
pub fn register(path: &str, refs: &[&str]) {
    let mut c = nix_cmd("nix");
    c.args(["hash", "path", path]);
    let hash = String::from_utf8(run_ok(c)).unwrap();
    let mut c = nix_cmd("nix-store");
    c.args(["--dump", path]);
    let size = run_ok(c).len();
    let mut input = format!("{path}\n{}\n{size}\n\n{}\n", hash.trim(), refs.len());
    for r in refs {
        input.push_str(r);
        input.push('\n');
    }
    let mut child = std::process::Command::new("nix-store")
        .env("NIX_CONFIG", NIX_CONFIG)
        .args(["--register-validity", "--reregister", "--hash-given"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "register {path}");
}
