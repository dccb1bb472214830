//! The lifecycle of a long-lived catalog, on the store's side: garbage collection
//! ([`gc`]), adding a new key's signature to every narinfo ([`resign`]), and pointing the
//! local Nix at a catalog ([`nixconf`], `pubdeck use`). The catalog's side (yank, tokens,
//! key removal, the audit log) lives in [`crate::catalog`].

pub mod gc;
pub mod nixconf;
pub mod outbox;
pub mod resign;

use crate::catalog::CatalogError;
use crate::store::StoreError;

/// What can stop a maintenance job.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
    #[error("GC stopped after deleting {deleted} object(s) ({bytes} bytes): {source}")]
    GcStopped {
        deleted: usize,
        bytes: u64,
        source: StoreError,
    },
    #[error("{key} in {store} is not a valid narinfo ({reason}); nothing was deleted")]
    BadNarinfo {
        store: String,
        key: String,
        reason: String,
    },
}

impl crate::event::Hinted for LifecycleError {
    fn hint(&self) -> Option<String> {
        match self {
            LifecycleError::Catalog(e) => e.hint(),
            LifecycleError::Store(e) => e.hint(),
            LifecycleError::BadNarinfo { key, .. } => Some(format!(
                "inspect it (`pubdeck store get {key}`); a damaged narinfo of a registered build needs a republish"
            )),
            _ => None,
        }
    }
}

/// The hash part of `/nix/store/<hash>-<name>`.
pub(crate) fn hash_part(store_path: &str) -> Option<&str> {
    store_path
        .strip_prefix(crate::nix::STORE_PREFIX)
        .and_then(|r| r.split('-').next())
        .filter(|h| h.len() == 32)
}

/// `<hash>.narinfo` → `<hash>` (only a top-level key of 32 nix32 characters).
pub(crate) fn narinfo_hash(key: &str) -> Option<&str> {
    key.strip_suffix(".narinfo").filter(|h| is_hash(h))
}

fn is_hash(h: &str) -> bool {
    h.len() == 32 && h.bytes().all(crate::nix::is_nix32)
}
