//! `pubdeck catalog re-sign ORG --signing-key NEW`: add a new key's `Sig:` to the narinfo of
//! every store path the catalog's registered builds need.
//!
//! With `catalog add-key` before and `catalog remove-key` after, a catalog moves to a new key
//! and no install fails at any moment: every narinfo carries a signature by a trusted key
//! throughout. Each narinfo is checked first (its signatures must verify against a key the
//! catalog trusts: re-sign vouches only for what the catalog already vouched for) and then
//! written whole, atomically. Narinfos already signed by the new key are skipped, so an
//! interrupted run is resumed by running it again.

use futures::StreamExt as _;
use serde::Serialize;

use super::{LifecycleError, hash_part};
use crate::catalog::{Catalog, RecordRequest};
use crate::event::{Event, EventTx, Work};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::{PublicKey, SecretKey};
use crate::store::{OpenOptions, Store, StoreError};

/// Narinfos re-signed at once.
const CONCURRENCY: usize = 8;

/// What a re-sign did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResignReport {
    pub org: String,
    pub store_url: String,
    /// The new key's name.
    pub key_name: String,
    /// Narinfos looked at (one per store path the registered builds need).
    pub narinfos: usize,
    /// Signed by this run.
    pub signed: usize,
    /// Already signed by the key (an earlier, interrupted run).
    pub already_signed: usize,
    /// Live store paths whose narinfo is not in the store.
    pub missing: Vec<String>,
    /// `None` when the audit log has the entry; else why it waits in the outbox.
    pub audit_pending: Option<String>,
}

enum One {
    Signed,
    Already,
    Missing(String),
}

/// Adds `key`'s signature to every narinfo catalog `org`'s registered builds need (owner,
/// admin scope). The catalog must already trust `key`.
pub async fn resign(
    catalog: &impl Catalog,
    org: &str,
    key: &SecretKey,
    open: &OpenOptions,
    outbox: Option<&super::outbox::Outbox>,
    tx: &EventTx,
) -> Result<ResignReport, LifecycleError> {
    let info = catalog.catalog(org).await?;
    let public = key.public().to_nix_string();
    if !info.keys.iter().any(|k| k.trim() == public) {
        return Err(LifecycleError::Refused(format!(
            "catalog {org} does not trust the key {} yet; add it first (`pubdeck catalog add-key {org} KEY.pub`), then re-sign",
            key.name()
        )));
    }
    let trusted: Vec<PublicKey> = info
        .keys
        .iter()
        .filter_map(|k| PublicKey::parse(k).ok())
        .collect();
    let live = catalog.live_paths(org).await?;
    let store = Store::open_str(&live.store_url, open).await?;
    let total = live.paths.len() as u64;
    // Collected first (see `gc`): keeps the future Send in a spawned task.
    let jobs: Vec<_> = live
        .paths
        .iter()
        .map(|path| resign_one(&store, path, key, &trusted))
        .collect();
    let mut jobs = futures::stream::iter(jobs).buffer_unordered(CONCURRENCY);
    let mut report = ResignReport {
        org: org.to_string(),
        store_url: store.url().to_string(),
        key_name: key.name().to_string(),
        narinfos: live.paths.len(),
        signed: 0,
        already_signed: 0,
        missing: Vec::new(),
        audit_pending: None,
    };
    let mut done = 0u64;
    while let Some(one) = jobs.next().await {
        match one? {
            One::Signed => report.signed += 1,
            One::Already => report.already_signed += 1,
            One::Missing(p) => report.missing.push(p),
        }
        done += 1;
        let _ = tx
            .send(Event::Progress {
                work: Work::ReSign,
                done,
                total,
            })
            .await;
    }
    drop(jobs);
    report.missing.sort();
    if report.signed > 0 {
        let request = RecordRequest {
            action: "re-sign".into(),
            detail: serde_json::json!({
                "key": report.key_name,
                "signed": report.signed,
                "already_signed": report.already_signed,
            }),
        };
        report.audit_pending = super::outbox::record_or_keep(catalog, outbox, org, request).await?;
    }
    Ok(report)
}

async fn resign_one(
    store: &Store,
    path: &str,
    key: &SecretKey,
    trusted: &[PublicKey],
) -> Result<One, LifecycleError> {
    let Some(hash) = hash_part(path) else {
        return Ok(One::Missing(path.to_string()));
    };
    let file = crate::cache::narinfo_key(hash);
    let bad = |reason: String| LifecycleError::BadNarinfo {
        store: store.url().to_string(),
        key: file.clone(),
        reason,
    };
    let bytes = match store.get(&file).await {
        Ok(b) => b,
        Err(StoreError::NotFound { .. }) => return Ok(One::Missing(path.to_string())),
        Err(e) => return Err(e.into()),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
    let mut info = NarInfo::parse(text).map_err(|e| bad(e.to_string()))?;
    if info.store_path.to_string() != path {
        return Err(bad(format!("it describes {}, not {path}", info.store_path)));
    }
    let mine = [key.public()];
    if info.verify(&mine).is_ok() {
        return Ok(One::Already);
    }
    info.verify(trusted).map_err(|e| {
        bad(format!(
            "{e}; re-sign adds signatures only to narinfos the catalog trusts"
        ))
    })?;
    info.sign(key);
    store
        .replace(&file, bytes::Bytes::from(info.to_string()))
        .await?;
    Ok(One::Signed)
}
