//! Audit entries of store maintenance (GC, re-sign) that the catalog could not take when the
//! work was done: the deletions or signatures happened, so their record must not be lost. Each
//! is kept as a file (0600) under `<data dir>/pending-audit/` and sent on the next contact
//! with the same catalog ([`flush`]), oldest first, with the time the work was done in its
//! detail (`performed_at`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, CatalogResult, RecordRequest};

/// Where a process keeps entries for one catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    /// `<data dir>/pending-audit`.
    pub dir: PathBuf,
    /// The catalog the entries belong to (its service URL or local file), so that entries
    /// are only ever sent where the work was recorded for.
    pub catalog: String,
}

/// One kept entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    catalog: String,
    org: String,
    request: RecordRequest,
}

/// What [`Outbox::flush`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Entries the catalog took (and that were removed here).
    pub sent: usize,
    /// Entries for this catalog still kept (the catalog refused or could not be reached).
    pub kept: usize,
}

impl Outbox {
    /// The outbox under `data_dir` for entries meant for `catalog`.
    pub fn new(data_dir: &Path, catalog: impl Into<String>) -> Outbox {
        Outbox {
            dir: data_dir.join("pending-audit"),
            catalog: catalog.into(),
        }
    }

    /// Keeps `request` for `org` until [`Outbox::flush`] sends it; returns the file.
    pub fn keep(&self, org: &str, request: &RecordRequest) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let pending = Pending {
            catalog: self.catalog.clone(),
            org: org.to_string(),
            request: request.clone(),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let file = self.dir.join(format!(
            "{nanos:024}-{}.json",
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let text = serde_json::to_vec_pretty(&pending).map_err(std::io::Error::other)?;
        crate::fsutil::create_atomic(&file, &text)?;
        Ok(file)
    }

    /// Sends every kept entry for this catalog, oldest first; stops at the first the catalog
    /// does not take (it stays, as do all after it, so the log keeps their order).
    pub async fn flush(&self, catalog: &impl Catalog) -> Flushed {
        let mut out = Flushed::default();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => return out,
        };
        files.sort();
        let mut stuck = false;
        for file in files {
            let Some(pending) = std::fs::read(&file)
                .ok()
                .and_then(|b| serde_json::from_slice::<Pending>(&b).ok())
            else {
                continue;
            };
            if pending.catalog != self.catalog {
                continue;
            }
            if !stuck && send(catalog, &pending).await.is_ok() {
                let _ = std::fs::remove_file(&file);
                out.sent += 1;
            } else {
                stuck = true;
                out.kept += 1;
            }
        }
        out
    }
}

async fn send(catalog: &impl Catalog, p: &Pending) -> CatalogResult<()> {
    catalog.record(&p.org, &p.request).await
}

/// Records `request` for `org`, or, when the catalog cannot take it, keeps it in `outbox`
/// (when there is one). `Ok(None)`: recorded; `Ok(Some(why))`: kept, not yet recorded.
pub async fn record_or_keep(
    catalog: &impl Catalog,
    outbox: Option<&Outbox>,
    org: &str,
    mut request: RecordRequest,
) -> CatalogResult<Option<String>> {
    if let serde_json::Value::Object(m) = &mut request.detail {
        m.insert(
            "performed_at".into(),
            crate::time::rfc3339(crate::time::now_secs()).into(),
        );
    }
    match (catalog.record(org, &request).await, outbox) {
        (Ok(()), _) => Ok(None),
        (Err(e), Some(outbox)) => match outbox.keep(org, &request) {
            Ok(file) => Ok(Some(format!(
                "the catalog did not take the audit entry ({e}); it is kept in {} and sent at the next maintenance command",
                file.display()
            ))),
            Err(io) => Err(crate::catalog::CatalogError::Internal(format!(
                "{e}; the audit entry could not be kept either ({io})"
            ))),
        },
        (Err(e), None) => Err(e),
    }
}
