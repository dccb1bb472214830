//! The staging directory an install downloads into (locked while it runs, removed when an
//! install was killed), and proving a local copy is the path it claims to be.

use std::path::Path;

use crate::cache;
use crate::event::EventTx;
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::PublicKey;
use crate::store::{DownloadOptions, ProgressSink, Store};

use super::Request;
use super::error::{InstallError, message_of};

/// Where an install stages its verified downloads: `<store dir>/.pubdeck-install-XXXXXX`,
/// removed on drop even when it holds read-only trees, never following a symlink out of it.
/// The install holds an exclusive lock on `<staging>/lock` while it runs; a staging
/// directory whose lock is free was left by an install that was killed, and the next install
/// removes it.
pub(super) struct Staging {
    pub(super) dir: tempfile::TempDir,
    _lock: std::fs::File,
}

const STAGING_PREFIX: &str = ".pubdeck-install-";

impl Staging {
    pub(super) fn new(store_dir: &Path) -> std::io::Result<Staging> {
        remove_abandoned_staging(store_dir);
        let dir = tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(store_dir)?;
        let lock = std::fs::File::create(dir.path().join("lock"))?;
        if !try_lock(&lock) {
            return Err(std::io::Error::other("cannot lock a new staging directory"));
        }
        Ok(Staging { dir, _lock: lock })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        crate::fsutil::make_writable(self.dir.path());
    }
}

/// An exclusive, non-blocking `flock`; released when the file is closed (or its process dies).
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Removes the staging directories of installs that were killed (their lock is free). One
/// that is still locked belongs to a running install and is left alone.
fn remove_abandoned_staging(store_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(store_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let is_staging = name.to_str().is_some_and(|n| n.starts_with(STAGING_PREFIX));
        if !is_staging || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let dir = e.path();
        let Ok(lock) = std::fs::File::open(dir.join("lock")) else {
            // No lock file: killed between creating the directory and its lock, or older.
            // Only a directory this old is certainly abandoned.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600));
            if old {
                let _ = crate::fsutil::remove_tree(&dir);
            }
            continue;
        };
        if try_lock(&lock) {
            let _ = crate::fsutil::remove_tree(&dir);
        }
    }
}

/// Whether `info`'s path is already here with exactly its contents. A path present with
/// other contents is an error: it is never replaced silently, never reused.
pub(super) async fn present(req: &Request, info: &NarInfo) -> Result<bool, InstallError> {
    match &req.nix {
        Some(nix) => match nix.nar_hash(&info.store_path).await? {
            None => Ok(false),
            Some(h) if h == info.nar_hash => Ok(true),
            Some(h) => Err(InstallError::Occupied {
                path: info.store_path.to_string(),
                where_: "the Nix store".into(),
                detail: format!(
                    "Nix registered NarHash {h}, the narinfo says {}",
                    info.nar_hash
                ),
            }),
        },
        None => {
            let dest = req.store_dir.join(info.store_path.base_name());
            if std::fs::symlink_metadata(&dest).is_err() {
                return Ok(false);
            }
            let d = dest.clone();
            let summary = tokio::task::spawn_blocking(move || {
                crate::nix::nar::dump_path(&d, std::io::sink())
            })
            .await
            .expect("hash task panicked");
            match summary {
                Ok(s) if s.nar_hash == info.nar_hash && s.nar_size == info.nar_size => Ok(true),
                Ok(s) => Err(InstallError::Occupied {
                    path: dest.display().to_string(),
                    where_: "pubdeck's store".into(),
                    detail: format!(
                        "its NAR hash is {}, the narinfo says {}",
                        s.nar_hash, info.nar_hash
                    ),
                }),
                Err(e) => Err(InstallError::Occupied {
                    path: dest.display().to_string(),
                    where_: "pubdeck's store".into(),
                    detail: e.to_string(),
                }),
            }
        }
    }
}

/// Downloads `info`'s NAR into `staging` and verifies it completely (FileHash, NarHash, CA);
/// without Nix it is unpacked (read-only) into `staging/trees/<base name>`.
pub(super) async fn stage(
    store: &Store,
    keys: &[PublicKey],
    info: &NarInfo,
    staging: &Path,
    unpack: bool,
    tx: &EventTx,
) -> Result<(), InstallError> {
    let file = staging.join("cache").join(&info.url);
    let (sink, progress) = ProgressSink::channel();
    let forward = tokio::spawn(crate::store::forward_as_events(
        progress,
        tx.clone(),
        crate::event::Direction::Download,
        info.url.clone(),
    ));
    let opts = DownloadOptions {
        expected_size: info.file_size,
        expected_sha256: info.file_hash.map(|h| h.0),
        // Without a FileSize, the download is bounded by what the NAR could take compressed.
        max_size: info.compressed_limit().saturating_sub(1),
        ..Default::default()
    };
    if let Some(dir) = file.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| InstallError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    let downloaded = store.download(&info.url, &file, &opts, &sink).await;
    drop(sink);
    let _ = forward.await;
    downloaded.map_err(|e| InstallError::Download {
        store: store.url().to_string(),
        key: info.url.clone(),
        message: message_of(&e),
    })?;
    let (info, keys) = (info.clone(), keys.to_vec());
    let unpack_to = unpack.then(|| staging.join("trees").join(info.store_path.base_name()));
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&file).map_err(|e| InstallError::Verify(message_of(&e)))?;
        let f = std::io::BufReader::new(f);
        let verified = match &unpack_to {
            Some(dest) => {
                std::fs::create_dir_all(dest.parent().expect("trees/<name>"))
                    .map_err(|e| InstallError::Verify(message_of(&e)))?;
                cache::fetch_nar(&info, &keys, f, dest)
            }
            None => cache::verify_nar(&info, &keys, f),
        };
        verified.map_err(|e| InstallError::Verify(message_of(&e)))?;
        if let Some(dest) = &unpack_to {
            crate::fsutil::make_read_only(dest).map_err(|source| InstallError::Io {
                path: dest.clone(),
                source,
            })?;
        }
        Ok(())
    })
    .await
    .expect("verify task panicked")
}
