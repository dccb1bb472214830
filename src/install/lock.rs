//! `.flox/env/pubdeck.lock`: what pubdeck installed for each `[install]` entry of an org
//! package (version, system, store path). The manifest says what the user asked for (a
//! package, maybe a pinned version); the lock says what it resolved to, so `upgrade` knows
//! what it moves from. Written atomically after the manifest; a missing or unreadable lock
//! only means "unknown".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name, beside `manifest.toml`.
pub const LOCK_FILE: &str = "pubdeck.lock";

/// What one install entry resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    /// `org/package`.
    pub package: String,
    pub version: String,
    pub system: String,
    pub store_path: String,
}

/// The whole lock: install id → what it resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default = "one")]
    pub lock_version: u32,
    #[serde(default)]
    pub packages: BTreeMap<String, Locked>,
}

fn one() -> u32 {
    1
}

/// Where the lock of the manifest at `manifest` lives.
pub fn path_for(manifest: &Path) -> PathBuf {
    manifest.with_file_name(LOCK_FILE)
}

/// Reads the lock beside `manifest` (empty when missing or unreadable).
pub fn read(manifest: &Path) -> Lock {
    std::fs::read(path_for(manifest))
        .ok()
        .filter(|b| b.len() <= 16 * 1024 * 1024)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records `id` → `locked` in the lock beside `manifest`, atomically.
pub fn record(manifest: &Path, id: &str, locked: Locked) -> std::io::Result<()> {
    let mut lock = read(manifest);
    lock.lock_version = 1;
    lock.packages.insert(id.to_string(), locked);
    let mut text = serde_json::to_string_pretty(&lock).map_err(std::io::Error::other)?;
    text.push('\n');
    crate::fsutil::write_atomic(&path_for(manifest), text.as_bytes())
}
