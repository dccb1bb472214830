//! Closures: which store paths a build output refers to, and how the output and everything
//! it needs become content-addressed store paths, as `nix store make-content-addressed` makes
//! them.
//!
//! The output is built at a private temporary path exactly as long as its final store path
//! (`/tmp/XXXXX/<32 random nix32>-<name>` against `/nix/store/<hash>-<name>`). Packing it
//! scans the NAR, in the same pass, for the hash parts of the paths in the local Nix store
//! and for its own temporary hash part. Each referenced store path is packed and scanned the
//! same way, recursively. Then, dependencies first, every path is made content-addressed:
//!
//! - its references to other paths are rewritten to their new paths (full path strings,
//!   `/nix/store/<old>-<name>` → `/nix/store/<new>-<name>`, as Nix does);
//! - its own build location becomes `/nix/store/` (the output only);
//! - its name is computed from the SHA-256 of the NAR modulo its own hash part (every
//!   occurrence replaced by NULs, then `|<offset>` per occurrence), its references and
//!   whether it refers to itself (`source:<refs>:self:sha256:…`);
//! - its own hash part is rewritten to the new one.
//!
//! A path that neither refers to itself nor to a rewritten path keeps its first packing: its
//! content-address is its NAR hash. Paths already content-addressed (`nix store add-path`)
//! come out unchanged.

pub mod memo;
pub mod nixdb;

mod content_address;
mod parallel;
mod prepare;
mod self_reference;

pub use content_address::pack_closure;
pub use parallel::{EarlyUpload, OnPacked};
pub use prepare::{Closure, ReusedPath, Sources, prepare, repack};

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cache::{self, CacheError, PackedNar};
use crate::nix::nar::HashPart;
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::SecretKey;
use crate::nix::{STORE_DIR, STORE_PREFIX, Sha256Hash, StorePath, StorePathError};

pub use memo::{Became, Memo, Signed};
pub use nixdb::{NixDb, NixDbError, Registered};

/// The store paths present in a local Nix store directory, by hash part.
#[derive(Debug, Default, Clone)]
pub struct KnownPaths {
    dir: PathBuf,
    by_hash: HashMap<HashPart, StorePath>,
}

impl KnownPaths {
    /// The paths in `dir` (`/nix/store`); none when it does not exist.
    pub fn scan(dir: &Path) -> io::Result<KnownPaths> {
        let mut by_hash = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(KnownPaths {
                    dir: dir.to_owned(),
                    by_hash,
                });
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            // Lock files and Nix's own bookkeeping are not store paths.
            if name.ends_with(".lock") || name.starts_with('.') {
                continue;
            }
            if let Ok(p) = StorePath::from_base_name(name) {
                by_hash.insert(p.hash_bytes(), p);
            }
        }
        Ok(KnownPaths {
            dir: dir.to_owned(),
            by_hash,
        })
    }

    /// The paths of the local Nix store.
    pub fn local() -> io::Result<KnownPaths> {
        KnownPaths::scan(Path::new(STORE_DIR))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn get(&self, hash: &HashPart) -> Option<&StorePath> {
        self.by_hash.get(hash)
    }

    /// Where `path`'s tree is on this machine.
    pub fn location(&self, path: &StorePath) -> PathBuf {
        self.dir.join(path.base_name())
    }

    fn hashes(&self) -> impl Iterator<Item = HashPart> + '_ {
        self.by_hash.keys().copied()
    }
}

/// Where a tree was built, which is what its references to itself name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltAs {
    /// The directory, with its trailing `/`: exactly as long as `/nix/store/`.
    pub prefix: String,
    /// The (temporary) hash part.
    pub hash: HashPart,
    /// The store path name (`<build>-<version>`).
    pub name: String,
}

impl BuiltAs {
    /// `<prefix><hash>-<name>`.
    pub fn path(&self) -> String {
        format!(
            "{}{}-{}",
            self.prefix,
            String::from_utf8_lossy(&self.hash),
            self.name
        )
    }

    fn of_store_path(p: &StorePath) -> BuiltAs {
        BuiltAs {
            prefix: STORE_PREFIX.into(),
            hash: p.hash_bytes(),
            name: p.name().to_string(),
        }
    }
}

/// A tree to publish: where it is and where it was built.
#[derive(Debug, Clone)]
pub struct Input {
    pub tree: PathBuf,
    pub built_as: BuiltAs,
}

/// One path of a closure, content-addressed and packed.
#[derive(Debug)]
pub struct PackedPath {
    pub store_path: StorePath,
    /// What it was: the local store path of a dependency, or the output's build location.
    pub was: String,
    pub packed: PackedNar,
    /// The content address: the NAR hash, or the hash modulo its own hash part.
    pub ca_hash: Sha256Hash,
    /// What it refers to (itself included when it does).
    pub references: Vec<StorePath>,
    pub self_reference: bool,
}

impl PackedPath {
    /// Its narinfo, signed by `key`: `References` includes the path itself when it refers to
    /// itself, and `CA` is `fixed:r:sha256:<content address>`.
    pub fn narinfo(&self, key: &SecretKey) -> NarInfo {
        let s = &self.packed.summary;
        let mut info = NarInfo {
            store_path: self.store_path.clone(),
            url: format!(
                "nar/{}{}",
                s.file_hash.to_nix32(),
                s.compression.extension()
            ),
            compression: s.compression,
            file_hash: Some(s.file_hash),
            file_size: Some(s.file_size),
            nar_hash: s.nar.nar_hash,
            nar_size: s.nar.nar_size,
            references: self.references.clone(),
            deriver: None,
            system: None,
            sigs: Vec::new(),
            ca: Some(crate::nix::narinfo::ca_recursive_sha256(&self.ca_hash)),
            extra: Vec::new(),
        };
        info.references.sort();
        info.references.dedup();
        info.sign(key);
        info
    }
}

/// What [`add_closure`] did with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Uploaded,
    /// A dependency the store already had (its narinfo names its content).
    AlreadyThere,
}

/// Adds the packed paths of a closure to `store` with `cache::add_path`, dependencies first,
/// so no narinfo names a path whose references are missing. Every path goes through
/// `add_path`: an identical narinfo (or the same path signed alike by another tool) is taken
/// as already there, a different one refused — a dependency that was packed is one whose
/// published form could not be confirmed, so nothing already in the store is trusted blindly.
/// `progress(i)` gives the progress sink for the `i`-th path.
pub async fn add_closure(
    store: &crate::store::Store,
    closure: &[PackedPath],
    infos: &[NarInfo],
    put: &crate::store::PutOptions,
    mut progress: impl FnMut(usize) -> crate::store::ProgressSink,
) -> Result<Vec<Added>, CacheError> {
    let last = closure.len().saturating_sub(1);
    let mut out = Vec::with_capacity(closure.len());
    for (i, (p, info)) in closure.iter().zip(infos).enumerate() {
        let outcome = cache::add_path_listed(
            store,
            &p.packed.file,
            p.packed.listing.as_deref(),
            info,
            put,
            &progress(i),
        )
        .await?;
        out.push(match outcome {
            cache::Outcome::Added => Added::Uploaded,
            cache::Outcome::AlreadyPresent if i < last => Added::AlreadyThere,
            cache::Outcome::AlreadyPresent => Added::Uploaded,
        });
        if i < last {
            crate::failpoint::pause("upload-closure").await;
        }
    }
    Ok(out)
}

/// The tree at `tree` as an [`Input`] not built by pubdeck (`pubdeck pack`): it refers to
/// no temporary location of its own.
pub fn input_for_tree(tree: &Path, name: &str) -> Result<Input, StorePathError> {
    crate::nix::validate_name(name)?;
    let hash = crate::nix::random_hash_part();
    Ok(Input {
        tree: tree.to_path_buf(),
        built_as: BuiltAs {
            prefix: STORE_PREFIX.into(),
            hash,
            name: name.to_string(),
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error(transparent)]
    Pack(#[from] CacheError),
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("the store paths {0} refer to each other in a cycle, which Nix cannot store")]
    Cycle(String),
    #[error("packing was cancelled")]
    Cancelled,
    /// A dependency uploaded while the rest was packing ([`EarlyUpload`]) was not.
    #[error(transparent)]
    Upload(CacheError),
    #[error(transparent)]
    NixDb(#[from] NixDbError),
    #[error("{path} was deleted from the store while publishing, and packing it again gave {got}")]
    Repacked { path: StorePath, got: StorePath },
    /// A dependency's bytes are not what Nix registered for it.
    #[error(
        "{path} in the Nix store is corrupted: its contents hash to {read}, but Nix registered {registered}; `nix store repair {path}` restores it"
    )]
    Corrupted {
        path: StorePath,
        registered: Sha256Hash,
        read: Sha256Hash,
    },
}
