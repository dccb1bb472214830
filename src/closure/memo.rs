//! What each dependency became, remembered locally so the next publish knows a dependency's
//! published form without reading its bytes.
//!
//! A path in `/nix/store` never changes while it is valid, so what it becomes (its
//! content-addressed path and that path's NarHash, NarSize, references and CA) follows from
//! the path and the NarHash Nix registered for it. One small JSON file per entry, named by
//! both, under `<data dir>/closure-memo/v1/`; `v1` changes whenever the way pubdeck makes
//! paths content-addressed does. Files are written whole (temp file + rename) and need no
//! fsync: a lost or unreadable entry only costs a re-pack. An entry is a claim to check, never
//! a fact: the store must still hold a narinfo saying exactly this, signed by the publisher's
//! key, with its NAR, and the entry's references must be what the dependency's own
//! dependencies became in this publish.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::nix::sign::Signature;
use crate::nix::{Sha256Hash, StorePath};

/// Most bytes read from one entry (references included).
const MAX_ENTRY_BYTES: u64 = 1024 * 1024;
/// The layout and the content-addressing rules the entries follow.
const VERSION: &str = "v1";

/// The memo directory.
#[derive(Debug, Clone)]
pub struct Memo {
    dir: PathBuf,
}

/// What a local store path (with its registered NarHash) became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Became {
    pub store_path: StorePath,
    pub nar_hash: Sha256Hash,
    pub nar_size: u64,
    /// Sorted; itself included when it refers to itself.
    pub references: Vec<StorePath>,
    /// Its content address (`CA: fixed:r:sha256:<this>`).
    pub ca_hash: Sha256Hash,
    /// The narinfo's signature as pubdeck made it, and the public key of the key that made
    /// it: with that key, the store's narinfo is checked without signing again.
    pub signed: Option<Signed>,
}

/// A signature pubdeck made over a narinfo, and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `name:base64`, as `nix.conf` spells a public key.
    pub public_key: String,
    pub sig: Signature,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    local: String,
    local_nar_hash: String,
    store_path: String,
    nar_hash: String,
    nar_size: u64,
    references: Vec<String>,
    ca: String,
    /// [`Signed`]: the public key, then the `Sig` value (absent in older entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed: Option<(String, String)>,
}

impl Memo {
    /// The memo kept in `dir` (`<data dir>/closure-memo`).
    pub fn new(dir: &Path) -> Memo {
        Memo {
            dir: dir.join(VERSION),
        }
    }

    fn file(&self, local: &StorePath, nar_hash: &Sha256Hash) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.json",
            local.hash_part(),
            nar_hash.to_nix32()
        ))
    }

    /// What `local`, registered with `nar_hash`, became; `None` when not remembered (or the
    /// entry is unreadable, or names another path or hash).
    pub fn get(&self, local: &StorePath, nar_hash: &Sha256Hash) -> Option<Became> {
        let f = std::fs::File::open(self.file(local, nar_hash)).ok()?;
        let mut text = Vec::new();
        f.take(MAX_ENTRY_BYTES).read_to_end(&mut text).ok()?;
        let e: Entry = serde_json::from_slice(&text).ok()?;
        if e.local != local.to_string()
            || Sha256Hash::parse_any(&e.local_nar_hash).ok()? != *nar_hash
        {
            return None;
        }
        let mut references = e
            .references
            .iter()
            .map(|r| StorePath::parse(r).ok())
            .collect::<Option<Vec<_>>>()?;
        references.sort();
        let store_path = StorePath::parse(&e.store_path).ok()?;
        (store_path.name() == local.name()).then_some(())?;
        Some(Became {
            store_path,
            nar_hash: Sha256Hash::parse_any(&e.nar_hash).ok()?,
            nar_size: e.nar_size,
            references,
            ca_hash: Sha256Hash::parse_any(e.ca.strip_prefix("fixed:r:")?).ok()?,
            // A signature that does not parse is not remembered: the store's is signed again.
            signed: e.signed.and_then(|(public_key, sig)| {
                Some(Signed {
                    sig: Signature::parse(&sig).ok()?,
                    public_key,
                })
            }),
        })
    }

    /// Remembers what `local` (registered with `nar_hash`) became. Best effort: a memo that
    /// cannot be written only means a re-pack next time.
    pub fn put(&self, local: &StorePath, nar_hash: &Sha256Hash, became: &Became) {
        let e = Entry {
            local: local.to_string(),
            local_nar_hash: nar_hash.to_string(),
            store_path: became.store_path.to_string(),
            nar_hash: became.nar_hash.to_string(),
            nar_size: became.nar_size,
            references: became.references.iter().map(|r| r.to_string()).collect(),
            ca: crate::nix::narinfo::ca_recursive_sha256(&became.ca_hash),
            signed: became
                .signed
                .as_ref()
                .map(|s| (s.public_key.clone(), s.sig.to_string())),
        };
        let bytes = serde_json::to_vec(&e).expect("an entry serialises");
        let file = self.file(local, nar_hash);
        let written = std::fs::create_dir_all(&self.dir).and_then(|_| {
            crate::fsutil::write_atomic_with(&file, &bytes, crate::fsutil::Durability::Deferred)
        });
        if let Err(error) = written {
            tracing::warn!(file = %file.display(), %error, "could not remember a packed dependency");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_found_only_under_its_path_and_hash() {
        let t = tempfile::tempdir().unwrap();
        let memo = Memo::new(t.path());
        let local = StorePath::parse("/nix/store/hh5vzg99107rz2b0hwawxkbls4i48zrs-dep-a").unwrap();
        let other = StorePath::parse("/nix/store/aa5vzg99107rz2b0hwawxkbls4i48zrs-dep-a").unwrap();
        let h = Sha256Hash::of(b"one");
        let became = Became {
            store_path: StorePath::parse("/nix/store/0s1hsdc8swkp6qckh33r9d5mkjplbff2-dep-a")
                .unwrap(),
            nar_hash: Sha256Hash::of(b"two"),
            nar_size: 8,
            references: vec![],
            ca_hash: Sha256Hash::of(b"two"),
            signed: None,
        };
        assert_eq!(memo.get(&local, &h), None);
        memo.put(&local, &h, &became);
        assert_eq!(memo.get(&local, &h), Some(became.clone()));
        assert_eq!(memo.get(&local, &Sha256Hash::of(b"changed")), None);
        assert_eq!(memo.get(&other, &h), None);
        // A torn or foreign file is no entry.
        std::fs::write(memo.file(&local, &h), b"{\"local\":").unwrap();
        assert_eq!(memo.get(&local, &h), None);
    }
}
