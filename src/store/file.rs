//! `file://` backend: the cache root is a local directory.
//!
//! Writes go to a temp file in the destination directory, are fsynced and renamed
//! into place, so a partial file is never visible under its final name;
//! `put_if_absent` renames without replacing (renameat2 NOREPLACE / link), so
//! concurrent writers can't overwrite each other.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::progress::{Meter, Progress, ProgressSink, begin_single};
use super::{
    DownloadOptions, ObjectInfo, PutIfAbsent, PutOptions, PutOutcome, StoreError, StoreUrl,
    partial_path,
};
use crate::fsutil;

/// File names starting with this are in-progress writes, never listed.
pub(crate) use crate::fsutil::TEMP_PREFIX;
const CHUNK: usize = 1024 * 1024;

/// A cache rooted at a local directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    url: StoreUrl,
    durability: fsutil::Durability,
}

fn blocking_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::io("finish a background task for", "", std::io::Error::other(e))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(blocking_err)?
}

impl FileStore {
    pub fn new(root: PathBuf, url: StoreUrl, durability: fsutil::Durability) -> Self {
        FileStore {
            root,
            url,
            durability,
        }
    }

    /// Flushes every write to disk (a store opened with deferred durability relies on this).
    pub async fn sync(&self) -> Result<(), StoreError> {
        let root = self.root.clone();
        blocking(move || {
            if !root.exists() {
                return Ok(());
            }
            fsutil::sync_filesystem(&root).map_err(|e| StoreError::io("sync", &root, e))
        })
        .await
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn not_found(&self, key: &str) -> StoreError {
        StoreError::NotFound {
            store: self.url.to_string(),
            key: key.to_owned(),
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.head_now(&key)).await
    }

    /// Whether every key is there, in one blocking call.
    pub async fn exists_all(&self, keys: Vec<String>) -> Result<bool, StoreError> {
        let this = self.clone();
        blocking(move || {
            for k in &keys {
                if this.head_now(k)?.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        })
        .await
    }

    fn head_now(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(match self.open_regular(key)? {
            Some(f) => Some(
                f.metadata()
                    .map_err(|e| StoreError::io("inspect", self.path(key), e))?
                    .len(),
            ),
            None => None,
        })
    }

    /// Opens `key` for reading when it is a regular file inside the store (`None` when it
    /// does not exist). A FIFO, a device, a directory, or a symlink leading out of the
    /// store is refused without ever blocking on it.
    fn open_regular(&self, key: &str) -> Result<Option<File>, StoreError> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = self.path(key);
        let refuse = |what: &str| StoreError::NotAFile {
            store: self.url.to_string(),
            key: key.to_owned(),
            what: what.to_owned(),
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("inspect", path, e)),
        };
        let real = if meta.file_type().is_symlink() {
            let real = match std::fs::canonicalize(&path) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io("inspect", path, e)),
            };
            let root = std::fs::canonicalize(&self.root)
                .map_err(|e| StoreError::io("inspect", &self.root, e))?;
            if !real.starts_with(&root) {
                return Err(refuse("a symlink leading out of the store"));
            }
            real
        } else {
            path
        };
        // O_NONBLOCK: opening a FIFO never waits for a writer; O_NOFOLLOW: the checked path
        // is the opened one.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&real)
            .map_err(|e| StoreError::io("open", &real, e))?;
        let ft = f
            .metadata()
            .map_err(|e| StoreError::io("inspect", &real, e))?
            .file_type();
        if ft.is_file() {
            return Ok(Some(f));
        }
        Err(refuse(if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a special file"
        }))
    }

    pub async fn put_file(
        &self,
        key: &str,
        src: &Path,
        opts: &PutOptions,
        progress: &ProgressSink,
    ) -> Result<PutOutcome, StoreError> {
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| StoreError::io("read", src, e))?
            .len();
        if self.head(key).await? == Some(size) {
            progress.send(Progress::Skipped {
                key: key.to_owned(),
                size,
            });
            return Ok(PutOutcome::Skipped { size });
        }
        let (meter, _ticker, started) = begin_single(progress, key, size, 0, true, opts.timing);
        let dest = self.path(key);
        let src = src.to_owned();
        let m = Arc::clone(&meter);
        let durability = self.durability;
        blocking(move || copy_into_place(&src, &dest, size, &m, durability)).await?;
        progress.send(Progress::PartFinished {
            part: 1,
            bytes: size,
        });
        progress.send(Progress::Finished {
            key: key.to_owned(),
            total_bytes: size,
            sent_bytes: meter.reported(),
            resumed_bytes: 0,
            elapsed: started.elapsed(),
        });
        Ok(PutOutcome::Uploaded {
            size,
            sent_bytes: meter.reported(),
            resumed_bytes: 0,
        })
    }

    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutIfAbsent, StoreError> {
        let dest = self.path(key);
        let durability = self.durability;
        blocking(move || {
            if let Some(existing) = read_if_exists(&dest)? {
                return Ok(compare(&existing, &bytes));
            }
            match fsutil::create_atomic_as(&dest, &bytes, durability, fsutil::Sharing::Umask) {
                Ok(()) => Ok(PutIfAbsent::Created),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let existing =
                        std::fs::read(&dest).map_err(|e| StoreError::io("read", &dest, e))?;
                    Ok(compare(&existing, &bytes))
                }
                Err(e) => Err(StoreError::io("create", &dest, e)),
            }
        })
        .await
    }

    /// Reads `key` whole, at most `max` bytes (more is [`StoreError::Oversized`]).
    pub async fn get(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.get_now(&key, max)).await
    }

    /// [`Self::get`] of every key in one blocking call, each answer in its place.
    pub async fn get_many(
        &self,
        keys: Vec<String>,
        max: u64,
    ) -> Result<Vec<Result<Bytes, StoreError>>, StoreError> {
        let this = self.clone();
        blocking(move || Ok(keys.iter().map(|k| this.get_now(k, max)).collect())).await
    }

    fn get_now(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
        let Some(f) = self.open_regular(key)? else {
            return Err(self.not_found(key));
        };
        let mut buf = Vec::new();
        f.take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::io("read", self.path(key), e))?;
        if buf.len() as u64 > max {
            return Err(StoreError::Oversized {
                store: self.url.to_string(),
                key: key.to_owned(),
                limit: max,
            });
        }
        Ok(Bytes::from(buf))
    }

    pub async fn download(
        &self,
        key: &str,
        dest: &Path,
        opts: &DownloadOptions,
        progress: &ProgressSink,
    ) -> Result<u64, StoreError> {
        let Some(size) = self.head(key).await? else {
            return Err(self.not_found(key));
        };
        if let Some(expected) = opts.expected_size
            && size != expected
        {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                what: format!("it has {size} bytes, {expected} were declared"),
            });
        }
        let src = self.path(key);
        let partial = partial_path(dest);
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let resumed = if have <= size { have } else { 0 };
        let (meter, _ticker, started) =
            begin_single(progress, key, size, resumed, false, opts.timing);
        let m = Arc::clone(&meter);
        let p = partial.clone();
        let (this, key_s) = (self.clone(), key.to_owned());
        blocking(move || {
            let mut out = open_partial(&p, resumed)?;
            let mut input = this
                .open_regular(&key_s)?
                .ok_or_else(|| this.not_found(&key_s))?;
            input
                .seek(SeekFrom::Start(resumed))
                .map_err(|e| StoreError::io("read", &src, e))?;
            // Never more than the size it had when the download started.
            let mut input = input.take(size - resumed);
            copy_counting(&mut input, &src, &mut out, &p, &m)?;
            out.sync_all().map_err(|e| StoreError::io("write", &p, e))
        })
        .await?;
        let (key_s, dest_s, opts_s) = (key.to_owned(), dest.to_owned(), opts.clone());
        let len =
            blocking(move || finish_download(&key_s, &partial, &dest_s, size, &opts_s)).await?;
        progress.send(Progress::Finished {
            key: key.to_owned(),
            total_bytes: size,
            sent_bytes: meter.reported(),
            resumed_bytes: resumed,
            elapsed: started.elapsed(),
        });
        Ok(len)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            walk(&root, "", &mut out)?;
            out.retain(|o| o.key.starts_with(&prefix));
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path(key);
        match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("stat", path, e)),
        }
    }

    pub async fn replace(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let dest = self.path(key);
        let durability = self.durability;
        blocking(move || {
            fsutil::write_atomic_as(&dest, &bytes, durability, fsutil::Sharing::Umask)
                .map_err(|e| StoreError::io("write", &dest, e))
        })
        .await
    }

    pub async fn touch(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.path(key);
        blocking(move || touch_now(&path)).await
    }

    /// [`FileStore::touch`] of every key, in one blocking call; `false` when any is absent.
    pub async fn touch_all(&self, keys: &[&str]) -> Result<bool, StoreError> {
        let paths: Vec<PathBuf> = keys.iter().map(|k| self.path(k)).collect();
        blocking(move || {
            let mut all = true;
            for p in &paths {
                all &= touch_now(p)?;
            }
            Ok(all)
        })
        .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("delete", path, e)),
        }
    }
}

fn compare(existing: &[u8], wanted: &[u8]) -> PutIfAbsent {
    if existing == wanted {
        PutIfAbsent::SameContent
    } else {
        PutIfAbsent::DifferentContent
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("read", path, e)),
    }
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fsutil::sync_dir(dir).map_err(|e| StoreError::io("sync the directory", dir, e))
}

fn copy_counting(
    input: &mut impl Read,
    src: &Path,
    out: &mut File,
    dst: &Path,
    meter: &Meter,
) -> Result<u64, StoreError> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io("read", src, e)),
        };
        out.write_all(&buf[..n])
            .map_err(|e| StoreError::io("write", dst, e))?;
        total += n as u64;
        meter.add(n as u64);
    }
}

fn copy_into_place(
    src: &Path,
    dest: &Path,
    size: u64,
    meter: &Meter,
    durability: fsutil::Durability,
) -> Result<(), StoreError> {
    let mut input = File::open(src).map_err(|e| StoreError::io("read", src, e))?;
    let mut staged = fsutil::Staged::beside_with(dest, fsutil::Sharing::Umask)
        .map_err(|e| StoreError::io("create a temporary file beside", dest, e))?;
    let tmp_path = staged.path().to_owned();
    let copied = copy_counting(&mut input, src, staged.file(), &tmp_path, meter)?;
    if copied != size {
        return Err(StoreError::SourceChanged {
            path: src.to_owned(),
            what: format!("{size} bytes became {copied}"),
        });
    }
    staged
        .commit_with(dest, fsutil::Replace::Yes, durability)
        .map_err(|e| StoreError::io("rename into place", dest, e))
}

/// Open the partial download file, keeping its first `keep` bytes.
pub(crate) fn open_partial(path: &Path, keep: u64) -> Result<File, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io("create the directory", dir, e))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io("write", path, e))?;
    f.set_len(keep)
        .and_then(|_| f.seek(SeekFrom::Start(keep)).map(|_| ()))
        .map_err(|e| StoreError::io("write", path, e))?;
    Ok(f)
}

/// Verify the complete partial file and rename it to `dest`; a bad one is deleted.
pub(crate) fn finish_download(
    key: &str,
    partial: &Path,
    dest: &Path,
    size: u64,
    opts: &DownloadOptions,
) -> Result<u64, StoreError> {
    let corrupt = |what: String| {
        let _ = std::fs::remove_file(partial);
        Err(StoreError::Corrupt {
            key: key.to_owned(),
            what,
        })
    };
    let len = std::fs::metadata(partial)
        .map_err(|e| StoreError::io("read", partial, e))?
        .len();
    if len != size {
        return corrupt(format!("got {len} bytes, the store said {size}"));
    }
    if let Some(expected) = opts.expected_size
        && expected != len
    {
        return corrupt(format!("got {len} bytes, expected {expected}"));
    }
    if let Some(expected) = opts.expected_sha256 {
        let mut f = File::open(partial).map_err(|e| StoreError::io("read", partial, e))?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(|e| StoreError::io("read", partial, e))?;
        let got: [u8; 32] = h.finalize().into();
        if got != expected {
            return corrupt(format!(
                "its SHA-256 is {}, expected {}",
                hex::encode(got),
                hex::encode(expected)
            ));
        }
    }
    std::fs::rename(partial, dest).map_err(|e| StoreError::io("rename into place", dest, e))?;
    sync_parent(dest)?;
    Ok(len)
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry
            .file_type()
            .map_err(|e| StoreError::io("list", dir, e))?;
        if ft.is_dir() {
            walk(&entry.path(), &key, out)?;
        } else if ft.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| StoreError::io("list", dir, e))?;
            out.push(ObjectInfo {
                key,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
    }
    Ok(())
}

/// Sets `path`'s modification time to now; `false` when it does not exist.
fn touch_now(path: &Path) -> Result<bool, StoreError> {
    let f = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io("open", path, e)),
    };
    f.set_modified(std::time::SystemTime::now())
        .map_err(|e| StoreError::io("touch", path, e))?;
    Ok(true)
}
