//! `.flox/env/pubdeck.lock`: what pubdeck installed for each `[install]` entry it wrote, and
//! from where. The manifest holds only what Flox reads (`ID.store-path`, `ID.systems`); the
//! lock says which org package and version that store path is, which catalog and store it came
//! from (without credentials), its NAR hash and the key that signed it, and whether the user
//! pinned the version (`upgrade` moves only unpinned entries).
//!
//! It is meant to be committed with the manifest: JSON with a format version, entries sorted
//! by id and fields in a fixed order (the same install writes the same bytes), mode 0644,
//! replaced atomically after the manifest. A missing or unreadable lock only means "unknown".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The lock file's name, beside `manifest.toml`.
pub const LOCK_FILE: &str = "pubdeck.lock";

/// The format this version writes.
pub const LOCK_VERSION: u32 = 2;

/// What one `[install]` entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    pub org: String,
    pub package: String,
    pub version: String,
    /// The version the user asked for (`ORG/PKG@VERSION`); `None`: the newest not yanked,
    /// which `upgrade` moves.
    #[serde(default)]
    pub pinned: Option<String>,
    pub system: String,
    /// The catalog it was resolved in: the service's URL or the local catalog file.
    #[serde(default)]
    pub catalog: String,
    /// The store it was downloaded from (no credentials: store URLs never hold any).
    #[serde(default)]
    pub store_url: String,
    pub store_path: String,
    #[serde(default)]
    pub nar_hash: String,
    /// The key whose signature was verified.
    #[serde(default)]
    pub key_name: String,
}

impl Locked {
    /// `org/package`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.org, self.package)
    }

    /// `org/package@version`.
    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.org, self.package, self.version)
    }
}

/// The whole lock: install id → what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lock {
    pub lock_version: u32,
    pub packages: BTreeMap<String, Locked>,
}

impl Default for Lock {
    fn default() -> Self {
        Lock {
            lock_version: LOCK_VERSION,
            packages: BTreeMap::new(),
        }
    }
}

/// Version 1, written before the store-path descriptors: `package` was `org/package`, and
/// the manifest's `version` key said what was pinned.
#[derive(Deserialize)]
struct LockedV1 {
    package: String,
    version: String,
    system: String,
    store_path: String,
}

#[derive(Deserialize)]
struct Any {
    #[serde(default)]
    lock_version: u32,
    #[serde(default)]
    packages: BTreeMap<String, serde_json::Value>,
}

/// Where the lock of the manifest at `manifest` lives.
pub fn path_for(manifest: &Path) -> PathBuf {
    manifest.with_file_name(LOCK_FILE)
}

/// Parses a lock of either version; entries that do not parse are left out.
pub fn parse(bytes: &[u8]) -> Option<Lock> {
    let any: Any = serde_json::from_slice(bytes).ok()?;
    let mut lock = Lock::default();
    for (id, v) in any.packages {
        let entry = if any.lock_version >= 2 {
            serde_json::from_value::<Locked>(v).ok()
        } else {
            serde_json::from_value::<LockedV1>(v).ok().and_then(|o| {
                let (org, package) = o.package.split_once('/')?;
                Some(Locked {
                    org: org.into(),
                    package: package.into(),
                    version: o.version,
                    pinned: None,
                    system: o.system,
                    catalog: String::new(),
                    store_url: String::new(),
                    store_path: o.store_path,
                    nar_hash: String::new(),
                    key_name: String::new(),
                })
            })
        };
        if let Some(e) = entry {
            lock.packages.insert(id, e);
        }
    }
    Some(lock)
}

/// Reads the lock beside `manifest` (empty when missing or unreadable).
pub fn read(manifest: &Path) -> Lock {
    std::fs::read(path_for(manifest))
        .ok()
        .filter(|b| b.len() <= 16 * 1024 * 1024)
        .and_then(|b| parse(&b))
        .unwrap_or_default()
}

/// The lock's text: the same entries always give the same bytes.
pub fn to_text(lock: &Lock) -> String {
    let mut text = serde_json::to_string_pretty(lock).expect("a lock is plain data");
    text.push('\n');
    text
}

/// Sets `entries` (id → what it is) and removes `gone` in the lock beside `manifest`, then
/// writes it atomically, mode 0644.
pub fn update(
    manifest: &Path,
    entries: &[(String, Locked)],
    gone: &[String],
) -> std::io::Result<()> {
    let mut lock = read(manifest);
    lock.lock_version = LOCK_VERSION;
    for id in gone {
        lock.packages.remove(id);
    }
    for (id, e) in entries {
        lock.packages.insert(id.clone(), e.clone());
    }
    let path = path_for(manifest);
    let mut staged = crate::fsutil::Staged::beside(&path)?;
    use std::io::Write as _;
    staged.file().write_all(to_text(&lock).as_bytes())?;
    staged.set_mode(0o644)?;
    staged.commit(&path, crate::fsutil::Replace::Yes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str) -> Locked {
        Locked {
            org: "myorg".into(),
            package: "hello".into(),
            version: v.into(),
            pinned: None,
            system: "x86_64-linux".into(),
            catalog: "http://127.0.0.1:8080".into(),
            store_url: "file:///srv/cache".into(),
            store_path: "/nix/store/00000000000000000000000000000000-hello-1.0".into(),
            nar_hash: format!("sha256:{}", "0".repeat(52)),
            key_name: "myorg-1".into(),
        }
    }

    #[test]
    fn deterministic_0644_and_reads_version_1() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("manifest.toml");
        update(
            &manifest,
            &[("zz".into(), entry("1.0")), ("aa".into(), entry("2.0"))],
            &[],
        )
        .unwrap();
        let first = std::fs::read(path_for(&manifest)).unwrap();
        let mode = std::fs::metadata(path_for(&manifest))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let text = String::from_utf8(first.clone()).unwrap();
        assert!(
            text.find("\"aa\"").unwrap() < text.find("\"zz\"").unwrap(),
            "{text}"
        );
        assert!(text.starts_with("{\n  \"lock_version\": 2,"), "{text}");
        // The same entries give the same bytes.
        update(&manifest, &[("aa".into(), entry("2.0"))], &[]).unwrap();
        assert_eq!(std::fs::read(path_for(&manifest)).unwrap(), first);
        update(&manifest, &[], &["zz".into()]).unwrap();
        assert_eq!(read(&manifest).packages.len(), 1);

        let v1 = r#"{"lock_version":1,"packages":{"hello":{"package":"myorg/hello","version":"1.0","system":"x86_64-linux","store_path":"/nix/store/x"}}}"#;
        let l = parse(v1.as_bytes()).unwrap();
        assert_eq!(l.packages["hello"].name(), "myorg/hello");
        assert_eq!(l.packages["hello"].pinned, None);
    }
}
