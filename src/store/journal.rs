//! Local resume journal for multipart uploads.
//!
//! One JSON file per (store, bucket, key, file identity) in a journal directory,
//! holding the upload id, part size, the file's size/mtime/content hash and the
//! completed parts with their ETags. Every write goes to a temp file in the same
//! directory, is fsynced and renamed over the old one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::StoreError;

const VERSION: u32 = 1;

/// What identifies the local file being uploaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    pub size: u64,
    pub mtime_ns: i128,
    /// Caller-provided content hash (the NAR's FileHash), if any.
    pub content_hash: Option<String>,
}

impl FileIdentity {
    /// Size and mtime of `path`, plus the caller's hash.
    pub fn of(path: &Path, content_hash: Option<&str>) -> Result<Self, StoreError> {
        let meta = std::fs::metadata(path).map_err(|e| StoreError::io("read", path, e))?;
        Ok(FileIdentity {
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
            content_hash: content_hash.map(str::to_owned),
        })
    }
}

pub(crate) fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    match meta.modified() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        },
        Err(_) => 0,
    }
}

/// One completed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalPart {
    pub part: u32,
    pub etag: String,
    pub size: u64,
}

/// A temp file of an atomic write older than a minute: its writer is gone.
fn is_stale_temp(path: &Path) -> bool {
    let temp = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(crate::fsutil::TEMP_PREFIX));
    temp && std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(60))
}

/// The persisted state of one multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    /// The store's display URL (no credentials).
    pub store: String,
    pub bucket: String,
    /// Full object key in the bucket.
    pub key: String,
    pub upload_id: String,
    pub part_size: u64,
    pub file: FileIdentity,
    pub created_unix: u64,
    pub updated_unix: u64,
    pub parts: Vec<JournalPart>,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Journal {
    pub fn new(
        store: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_size: u64,
        file: FileIdentity,
    ) -> Self {
        let now = now_unix();
        Journal {
            version: VERSION,
            store: store.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            part_size,
            file,
            created_unix: now,
            updated_unix: now,
            parts: Vec::new(),
        }
    }

    /// The journal file for this (store, bucket, key, identity).
    pub fn path_for(
        dir: &Path,
        store: &str,
        bucket: &str,
        key: &str,
        file: &FileIdentity,
    ) -> PathBuf {
        let mut h = Sha256::new();
        let identity = match &file.content_hash {
            Some(hash) => format!("hash:{hash}"),
            None => format!("size:{}:mtime:{}", file.size, file.mtime_ns),
        };
        for field in [store, bucket, key, &identity] {
            h.update(field.as_bytes());
            h.update([0u8]);
        }
        let digest = hex::encode(h.finalize());
        dir.join(format!("upload-{}.json", &digest[..32]))
    }

    /// Age since creation.
    pub fn age(&self) -> Duration {
        Duration::from_secs(now_unix().saturating_sub(self.created_unix))
    }

    /// Read a journal; `Ok(None)` when absent or unreadable garbage (treated as absent).
    pub fn load(path: &Path) -> Result<Option<Journal>, StoreError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read the upload journal", path, e)),
        };
        match serde_json::from_slice::<Journal>(&text) {
            Ok(j) if j.version == VERSION => Ok(Some(j)),
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable upload journal");
                Ok(None)
            }
        }
    }

    /// Write atomically (`fsutil::write_atomic`).
    pub fn save(&mut self, path: &Path) -> Result<(), StoreError> {
        self.updated_unix = now_unix();
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io("create the journal directory", dir, e))?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| {
            StoreError::io("encode the upload journal", path, std::io::Error::other(e))
        })?;
        crate::fsutil::write_atomic(path, &json)
            .map_err(|e| StoreError::io("write the upload journal", path, e))
    }

    /// Delete a journal file; a missing one is fine.
    pub fn remove(path: &Path) -> Result<(), StoreError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove the upload journal", path, e)),
        }
    }

    /// Every journal file in `dir` (missing dir = none); removes temp files that a killed
    /// writer left behind.
    pub fn list(dir: &Path) -> Result<Vec<(PathBuf, Option<Journal>)>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read the journal directory", dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("read the journal directory", dir, e))?;
            let path = entry.path();
            let is_journal = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("upload-") && n.ends_with(".json"));
            if is_journal {
                let j = Journal::load(&path)?;
                out.push((path, j));
            } else if is_stale_temp(&path) {
                // Left by a writer killed mid-save; the rename never happened.
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileIdentity {
            size: 10,
            mtime_ns: 5,
            content_hash: Some("sha256:abc".into()),
        };
        let path = Journal::path_for(dir.path(), "s3://b", "b", "nar/x.nar", &id);
        let other = Journal::path_for(dir.path(), "s3://b", "b", "nar/y.nar", &id);
        assert_ne!(path, other);
        let mut j = Journal::new("s3://b", "b", "nar/x.nar", "up-1", 8, id);
        j.parts.push(JournalPart {
            part: 1,
            etag: "\"e\"".into(),
            size: 8,
        });
        j.save(&path).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), Some(j));
        assert_eq!(Journal::list(dir.path()).unwrap().len(), 1);
        std::fs::write(&path, b"{garbage").unwrap();
        assert_eq!(Journal::load(&path).unwrap(), None);
        Journal::remove(&path).unwrap();
        Journal::remove(&path).unwrap();
        assert!(Journal::list(dir.path()).unwrap().is_empty());
    }
}
