//! Test fixtures: throw-away git repositories with a bare `file://` remote, holding a
//! Flox environment. Built with the real git CLI, the way a user's repository is.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MANIFEST: &str = r#"version = 1

[install]
hello.pkg-path = "hello"

[build.hello]
description = "says hello"
version = "1.0"
command = '''
  mkdir -p $out/bin
  printf '#!/bin/sh\necho hello\n' > $out/bin/hello
  chmod +x $out/bin/hello
'''

[build.world]
command = "mkdir -p $out && echo world > $out/world.txt"
"#;

pub struct Repo {
    pub tmp: tempfile::TempDir,
    /// The work tree (also the environment directory).
    pub work: PathBuf,
    /// The bare remote.
    pub remote: PathBuf,
}

pub fn git_in(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Repo {
    /// A repository with an environment using `manifest`, committed and pushed.
    pub fn with_manifest(manifest: &str) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("remote.git");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git_in(
            tmp.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        git_in(&work, &["init", "-q", "-b", "main"]);
        let repo = Repo { tmp, work, remote };
        repo.write(".flox/env.json", "{\"name\": \"test\", \"version\": 1}\n");
        repo.write(".flox/.gitignore", "run/\ncache/\nlib/\nlog/\n");
        repo.write(".flox/env/manifest.toml", manifest);
        repo.commit_all("add environment");
        let url = format!("file://{}", repo.remote.display());
        repo.git(&["remote", "add", "origin", &url]);
        repo.git(&["push", "-q", "-u", "origin", "main"]);
        repo
    }

    pub fn new() -> Repo {
        Repo::with_manifest(MANIFEST)
    }

    pub fn git(&self, args: &[&str]) -> Output {
        git_in(&self.work, args)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }

    pub fn head(&self) -> String {
        String::from_utf8(self.git(&["rev-parse", "HEAD"]).stdout)
            .unwrap()
            .trim()
            .to_string()
    }
}

/// Runs the pubdeck binary.
pub fn pubdeck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PUBDECK_CATALOG")
        .env_remove("PUBDECK_TOKEN")
        .output()
        .expect("pubdeck runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The repository root of pubdeck's checkout.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Repo {
    /// A pushed repository holding a copy of `assets/sample-env`.
    pub fn sample_env() -> Repo {
        let src = crate_dir().join("assets/sample-env");
        let repo = Repo::new();
        std::fs::remove_dir_all(repo.work.join(".flox")).unwrap();
        copy_dir(&src, &repo.work);
        repo.commit_all("sample environment");
        repo.git(&["push", "-q"]);
        repo
    }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

pub mod batched;
#[macro_use]
pub mod catalog_support;
pub mod nix;
pub mod proc;
pub mod s3;
mod skip;
pub mod tmux;

pub use skip::skip_or_fail;

#[allow(unused_imports)]
pub use nix::have_nix;

/// Runs the real-Nix oracle over a file:// cache (see `nix::check`); the returned guard
/// holds the restored trees until dropped.
pub fn run_oracle(cache: &Path, pubkey_file: &Path, store_paths: &[&str]) -> nix::Oracle {
    nix::oracle(cache, pubkey_file, store_paths)
}

/// `diff -r --no-dereference` of two trees; panics with the diff when they differ.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
