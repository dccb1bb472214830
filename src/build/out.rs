//! Where `$out` is built ([`OutLocation`]: a private directory whose path is exactly as long
//! as the final store path), what a build left there ([`Output`]), and the sweep of the
//! directories of builds that were killed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::closure::BuiltAs;

/// Where `$out` is built: `/tmp/XXXXX/<32 random nix32>-<name>`, exactly as long as the
/// final `/nix/store/<hash>-<name>`, so references to it can be rewritten in place. The
/// `/tmp/XXXXX` directory is created exclusively with mode 0700: no other user can create
/// or replace anything in it. `$out` itself does not exist until the build creates it.
#[derive(Debug)]
pub struct OutLocation {
    pub(super) dir: tempfile::TempDir,
    pub built_as: BuiltAs,
}

/// Length of `/nix/store/`, which the private directory's path (with its `/`) must match.
const STORE_PREFIX_LEN: usize = crate::nix::STORE_PREFIX.len();
/// The private directory's name under `/tmp`: as long as `/nix/store/` less `/tmp/` and `/`.
const OUT_DIR_NAME_LEN: usize = STORE_PREFIX_LEN - "/tmp/".len() - 1;

impl OutLocation {
    /// A fresh location for a store path named `name`.
    pub fn new(name: &str) -> std::io::Result<OutLocation> {
        crate::nix::validate_name(name).map_err(std::io::Error::other)?;
        // "/tmp/" + 5 random characters + "/" is as long as "/nix/store/".
        let dir = tempfile::Builder::new()
            .prefix("")
            .rand_bytes(OUT_DIR_NAME_LEN)
            .tempdir_in("/tmp")?;
        let prefix = format!("{}/", dir.path().display());
        if prefix.len() != STORE_PREFIX_LEN {
            return Err(std::io::Error::other(format!(
                "{prefix} is not as long as /nix/store/"
            )));
        }
        let hash = crate::nix::random_hash_part();
        mark_owner(dir.path())?;
        Ok(OutLocation {
            dir,
            built_as: BuiltAs {
                prefix,
                hash,
                name: name.to_string(),
            },
        })
    }

    /// `$out`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.built_as.path())
    }
}

impl Drop for OutLocation {
    fn drop(&mut self) {
        // Builds often leave read-only directories behind.
        make_writable(self.dir.path());
    }
}

/// A finished build: `$out` in a private temp dir that disappears when this is dropped.
#[derive(Debug)]
pub struct Output {
    pub(super) out: OutLocation,
    pub name: String,
    pub version: Option<String>,
    pub duration: Duration,
}

impl Output {
    /// The path of `$out` (a directory, or a file when the build wrote `$out` as one).
    pub fn path(&self) -> PathBuf {
        self.out.path()
    }

    /// Where `$out` was built (what its references to itself name).
    pub fn built_as(&self) -> &BuiltAs {
        &self.out.built_as
    }

    /// `<name>-<version>` or `<name>`: the store path name.
    pub fn store_name(&self) -> String {
        self.out.built_as.name.clone()
    }

    /// Moves `$out` to `dest` (replacing what was there) and returns `dest`.
    pub fn keep(self, dest: &Path) -> std::io::Result<PathBuf> {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let staged = dest.with_file_name(format!(
            ".{}.new",
            dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        remove_any(&staged)?;
        if std::fs::rename(self.path(), &staged).is_err() {
            crate::fsutil::copy_tree(&self.path(), &staged)?;
        }
        remove_any(dest)?;
        std::fs::rename(&staged, dest)?;
        Ok(dest.to_path_buf())
    }
}

pub(super) fn remove_any(p: &Path) -> std::io::Result<()> {
    crate::fsutil::remove_tree(p)
}

fn make_writable(p: &Path) {
    crate::fsutil::make_writable(p)
}

/// Temporary directories a build makes (the clone's root under `$TMPDIR`, `$out`'s private
/// directory under `/tmp`) hold this file naming the process that made them, so that the next
/// build can remove what a pubdeck killed with -9 left behind.
const OWNER_FILE: &str = ".pubdeck-owner";
pub(super) const CLONE_PREFIX: &str = "pubdeck-build-";

/// This process as `<pid> <start time>` (the start time tells a reused pid apart).
fn owner_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may itself hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    let start = after.split(' ').nth(19)?;
    Some(format!("{pid} {start}"))
}

pub(super) fn mark_owner(dir: &Path) -> std::io::Result<()> {
    let me = owner_id(std::process::id()).unwrap_or_default();
    std::fs::write(dir.join(OWNER_FILE), me)
}

/// Whether the directory's owner (see [`OWNER_FILE`]) is gone: its file names a process that
/// no longer runs. A directory without the file is not ours to judge.
fn owner_is_gone(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    let Some(pid) = text.split(' ').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    owner_id(pid).is_none_or(|now| now != text.trim())
}

/// Removes, once per process, the build directories of pubdecks that died without cleaning up
/// (their processes were killed with them: see [`SUPERVISOR`]). Only this user's directories.
pub(super) fn sweep_stale_once() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        let mut stale = Vec::new();
        let mut look = |dir: &Path, keep: &dyn Fn(&str) -> bool| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                use std::os::unix::fs::MetadataExt as _;
                let name = e.file_name();
                let ours = e
                    .metadata()
                    .is_ok_and(|m| m.is_dir() && !m.file_type().is_symlink() && m.uid() == me);
                if ours && name.to_str().is_some_and(keep) && owner_is_gone(&e.path()) {
                    stale.push(e.path());
                }
            }
        };
        look(&std::env::temp_dir(), &|n| n.starts_with(CLONE_PREFIX));
        look(Path::new("/tmp"), &|n| n.len() == OUT_DIR_NAME_LEN);
        for dir in stale {
            make_writable(&dir);
            if let Err(e) = remove_any(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a stale build directory");
            } else {
                tracing::info!(dir = %dir.display(), "removed a build directory a killed pubdeck left");
            }
        }
    });
}
