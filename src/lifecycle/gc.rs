//! `pubdeck catalog gc`: delete what no registered build needs from a catalog's store.
//!
//! Live is every store path in the closure of a registered build (yanked builds included),
//! of this catalog and of every other catalog on the same store, whoever owns it: the catalog
//! computes that set, since only it sees every catalog. Everything else —
//! narinfos (and their `.ls` listings) of unregistered paths, NARs no kept narinfo names — is
//! garbage once older than the grace period, which keeps an upload in progress safe: a publish
//! writes its NARs and narinfos before it registers, and touches what it reuses
//! ([`crate::cache::add_path`]).
//!
//! Deletion runs narinfo before NAR, the reverse of publish, so a reader never finds a
//! narinfo without its NAR; each object is looked at again just before it goes, and one
//! written or touched since the listing stays. Objects pubdeck does not know (`nix-cache-info`,
//! logs, anything else) are never touched.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use serde::Serialize;

use super::{LifecycleError, hash_part, is_hash, narinfo_hash};
use crate::catalog::{Catalog, RecordRequest};
use crate::event::{Event, EventTx, Work};
use crate::nix::narinfo::NarInfo;
use crate::store::{ObjectInfo, OpenOptions, Store};

/// Default grace period.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Narinfos read at once.
const READ_CONCURRENCY: usize = 16;

/// How to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Objects written (or touched) more recently than this are kept.
    pub grace: Duration,
    /// Only report what would go.
    pub dry_run: bool,
    /// Where the audit entry waits when the catalog cannot take it after the deletions.
    pub outbox: Option<super::outbox::Outbox>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: DEFAULT_GRACE,
            dry_run: false,
            outbox: None,
        }
    }
}

/// What kind of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Narinfo,
    Listing,
    Nar,
}

/// One object GC deletes (or, in a dry run, would delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Doomed {
    pub key: String,
    pub kind: Kind,
    pub size: u64,
}

/// What a collection found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub org: String,
    /// The store, without credentials.
    pub store_url: String,
    pub dry_run: bool,
    pub grace_secs: u64,
    /// Store paths registered builds need.
    pub live_paths: usize,
    /// Live store paths whose narinfo is not in the store (a damaged store; `ready` will say).
    pub missing: Vec<String>,
    /// Garbage younger than the grace period, kept.
    pub kept_young: usize,
    /// Deleted (or, in a dry run, to delete): narinfos and listings first, then NARs.
    pub deleted: Vec<Doomed>,
    /// Candidates written or touched again after the listing, kept.
    pub spared: usize,
    /// Bytes freed (or, in a dry run, that would be).
    pub bytes: u64,
    /// `None` when the audit log has the entry; else why it waits in the outbox.
    pub audit_pending: Option<String>,
}

/// Collects the garbage of catalog `org`'s store (owner, admin scope).
pub async fn collect(
    catalog: &impl Catalog,
    org: &str,
    open: &OpenOptions,
    opts: &GcOptions,
    tx: &EventTx,
) -> Result<GcReport, LifecycleError> {
    let first = catalog.live_paths(org).await?;
    let store_url = first.store_url.clone();
    let store = Store::open_str(&store_url, open).await?;
    let objects = store.list("").await?;
    // The live set is read after the listing: a build registered before this read is kept;
    // one registered after it was uploaded after the listing began, or touched its reused
    // objects, and both are younger than the grace period. It covers every catalog on the
    // same store, which only the catalog (seeing all of them) can compute.
    let now_live = catalog.live_paths(org).await?;
    let Some(shared) = &now_live.shared else {
        return Err(LifecycleError::Refused(format!(
            "the catalog does not say what other catalogs on the store {store_url} need, so GC deletes nothing; upgrade the catalog service"
        )));
    };
    let live: HashSet<String> = now_live
        .paths
        .iter()
        .chain(shared)
        .filter_map(|p| hash_part(p))
        .map(str::to_string)
        .collect();
    // (Registrations are never removed, yanked ones included: this read holds `first`'s.)
    let live_count = live.len();

    let now = SystemTime::now();
    let young = |o: &ObjectInfo| match o.modified {
        // A store that does not say when: never old enough.
        None => true,
        Some(t) => now.duration_since(t).unwrap_or_default() < opts.grace,
    };
    let mut narinfos: BTreeMap<&str, &ObjectInfo> = BTreeMap::new();
    let mut listings: Vec<(&str, &ObjectInfo)> = Vec::new();
    let mut nars: Vec<&ObjectInfo> = Vec::new();
    for o in &objects {
        if let Some(h) = narinfo_hash(&o.key) {
            narinfos.insert(h, o);
        } else if let Some(h) = o.key.strip_suffix(".ls").filter(|h| is_hash(h)) {
            listings.push((h, o));
        } else if o.key.starts_with("nar/") && !o.key[4..].contains('/') {
            nars.push(o);
        }
    }
    let mut missing: Vec<String> = first
        .paths
        .iter()
        .filter(|p| hash_part(p).is_some_and(|h| !narinfos.contains_key(h)))
        .cloned()
        .collect();
    missing.sort();

    // Which narinfos stay, and which NARs they name.
    let kept: Vec<&ObjectInfo> = narinfos
        .iter()
        .filter(|(h, o)| live.contains(**h) || young(o))
        .map(|(_, o)| *o)
        .collect();
    let mut kept_young = narinfos
        .iter()
        .filter(|(h, o)| !live.contains(**h) && young(o))
        .count();
    let needed = nars_named_by(&store, &kept, tx).await?;

    let mut doomed = Vec::new();
    for (h, o) in &narinfos {
        if !live.contains(*h) && !young(o) {
            doomed.push(Doomed {
                key: o.key.clone(),
                kind: Kind::Narinfo,
                size: o.size,
            });
        }
    }
    for (h, o) in &listings {
        // A listing goes with its narinfo: kept while that is live or young.
        if live.contains(*h) || narinfos.get(h).is_some_and(|n| young(n)) {
            continue;
        }
        if young(o) {
            kept_young += 1;
            continue;
        }
        doomed.push(Doomed {
            key: o.key.clone(),
            kind: Kind::Listing,
            size: o.size,
        });
    }
    for o in &nars {
        if needed.contains(o.key.as_str()) {
            continue;
        }
        if young(o) {
            kept_young += 1;
            continue;
        }
        doomed.push(Doomed {
            key: o.key.clone(),
            kind: Kind::Nar,
            size: o.size,
        });
    }
    // Narinfos and listings before NARs (the order above), so no reader meets a narinfo
    // whose NAR is gone.
    let mut report = GcReport {
        org: org.to_string(),
        store_url: store.url().to_string(),
        dry_run: opts.dry_run,
        grace_secs: opts.grace.as_secs(),
        live_paths: live_count,
        missing,
        kept_young,
        deleted: Vec::new(),
        spared: 0,
        bytes: 0,
        audit_pending: None,
    };
    if opts.dry_run {
        report.bytes = doomed.iter().map(|d| d.size).sum();
        report.deleted = doomed;
        return Ok(report);
    }
    let total = doomed.len() as u64;
    let mut stopped = None;
    for (i, d) in doomed.into_iter().enumerate() {
        crate::failpoint::pause("gc-delete").await;
        // Looked at again just before it goes: written or touched since the listing, it stays.
        let gone = async {
            match store.stat(&d.key).await? {
                Some(now_info) if !young(&now_info) && now_info.size == d.size => {
                    store.delete(&d.key).await?;
                    Ok::<_, crate::store::StoreError>(true)
                }
                Some(_) => {
                    report.spared += 1;
                    Ok(false)
                }
                None => Ok(false),
            }
        }
        .await;
        match gone {
            Ok(true) => {
                report.bytes += d.size;
                report.deleted.push(d);
            }
            Ok(false) => {}
            Err(e) => {
                // What was deleted so far is recorded all the same.
                stopped = Some(e);
                break;
            }
        }
        let _ = tx
            .send(Event::Progress {
                work: Work::GcDelete,
                done: i as u64 + 1,
                total,
            })
            .await;
    }
    let narinfos = report
        .deleted
        .iter()
        .filter(|d| d.kind == Kind::Narinfo)
        .count();
    let nars = report
        .deleted
        .iter()
        .filter(|d| d.kind == Kind::Nar)
        .count();
    let request = RecordRequest {
        action: "gc".into(),
        detail: serde_json::json!({
            "narinfos": narinfos,
            "nars": nars,
            "bytes": report.bytes,
            "grace_secs": report.grace_secs,
            "store_url": report.store_url,
            "complete": stopped.is_none(),
        }),
    };
    crate::failpoint::pause("gc-record").await;
    if !report.deleted.is_empty() || stopped.is_none() {
        report.audit_pending =
            super::outbox::record_or_keep(catalog, opts.outbox.as_ref(), org, request).await?;
    }
    match stopped {
        None => Ok(report),
        Some(source) => Err(LifecycleError::GcStopped {
            deleted: report.deleted.len(),
            bytes: report.bytes,
            source,
        }),
    }
}

/// The NAR keys (`nar/…`) the narinfos `kept` name, read 16 at a time. A kept narinfo that
/// cannot be read stops the collection: GC cannot know which NAR it needs.
async fn nars_named_by(
    store: &Store,
    kept: &[&ObjectInfo],
    tx: &EventTx,
) -> Result<HashSet<String>, LifecycleError> {
    let total = kept.len() as u64;
    // Collected first: a lazily mapped iterator of futures trips the compiler's Send check
    // when the collection runs in a spawned task.
    let reads: Vec<_> = kept
        .iter()
        .map(|o| {
            let key = o.key.clone();
            async move {
                let bytes = store.get(&key).await;
                (key, bytes)
            }
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffer_unordered(READ_CONCURRENCY);
    let mut needed = HashSet::new();
    let mut done = 0u64;
    while let Some((key, bytes)) = reads.next().await {
        let bad = |reason: String| LifecycleError::BadNarinfo {
            store: store.url().to_string(),
            key: key.clone(),
            reason,
        };
        let bytes = match bytes {
            Ok(b) => b,
            // Deleted meanwhile (another GC): it names nothing any more.
            Err(crate::store::StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8".into()))?;
        let info = NarInfo::parse(text).map_err(|e| bad(e.to_string()))?;
        needed.insert(info.url);
        done += 1;
        if done.is_multiple_of(256) || done == total {
            let _ = tx
                .send(Event::Progress {
                    work: Work::GcScan,
                    done,
                    total,
                })
                .await;
        }
    }
    Ok(needed)
}
