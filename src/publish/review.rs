//! The review before upload: where the build goes, its closure with sizes, and what changed
//! against the last published version of the package — files added, removed and changed, from
//! the NAR listings (`<hash>.ls`) pubdeck writes beside each NAR, so nothing old is
//! downloaded but one small JSON file.

use std::collections::BTreeMap;

use crate::cache;
use crate::catalog::{AnyCatalog, Catalog};
use crate::closure::{Closure, PackedPath};
use crate::nix::narinfo::NarInfo;
use crate::store::Store;

pub use crate::event::review::{
    FileChange, FileDiff, FileEntry, Node, Previous, Review, ReviewPath,
};

/// Every path of a `.ls` document, by path.
pub fn flatten(listing: &str) -> Result<BTreeMap<String, Node>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(listing).map_err(|e| format!("not a NAR listing: {e}"))?;
    let root = doc.get("root").ok_or("a NAR listing without a root")?;
    let mut out = BTreeMap::new();
    walk(root, String::new(), &mut out, 0)?;
    Ok(out)
}

fn walk(
    v: &serde_json::Value,
    path: String,
    out: &mut BTreeMap<String, Node>,
    depth: usize,
) -> Result<(), String> {
    if depth > 256 {
        return Err("a NAR listing nested too deeply".into());
    }
    match v.get("type").and_then(|t| t.as_str()) {
        Some("regular") => {
            let size = v.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            let executable = v.get("executable").and_then(|e| e.as_bool()) == Some(true);
            out.insert(path, Node::Regular { size, executable });
        }
        Some("symlink") => {
            let target = v.get("target").and_then(|t| t.as_str()).unwrap_or_default();
            out.insert(
                path,
                Node::Symlink {
                    target: target.to_string(),
                },
            );
        }
        Some("directory") => {
            if let Some(entries) = v.get("entries").and_then(|e| e.as_object()) {
                for (name, child) in entries {
                    let p = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    walk(child, p, out, depth + 1)?;
                }
            }
            out.insert(path, Node::Directory);
        }
        other => return Err(format!("a NAR listing node of type {other:?}")),
    }
    Ok(())
}

/// What changed from `before` to `after` (listings as `.ls` text).
pub fn diff(before: &str, after: &str) -> Result<FileDiff, String> {
    let (a, b) = (flatten(before)?, flatten(after)?);
    let mut d = FileDiff::default();
    for (path, node) in &b {
        match a.get(path) {
            None => d.added.push(FileEntry {
                path: path.clone(),
                node: node.clone(),
            }),
            Some(old) if old != node => d.changed.push(FileChange {
                path: path.clone(),
                before: old.clone(),
                after: node.clone(),
            }),
            Some(_) => {}
        }
    }
    for (path, node) in &a {
        if !b.contains_key(path) {
            d.removed.push(FileEntry {
                path: path.clone(),
                node: node.clone(),
            });
        }
    }
    Ok(d)
}

/// Where a catalog lives, for the review (no credentials: the client refuses them in URLs).
pub fn catalog_location(catalog: &AnyCatalog) -> String {
    match catalog {
        AnyCatalog::Remote(c) => c.base_url().trim_end_matches('/').to_string(),
        AnyCatalog::Embedded(_) => "the local catalog file".to_string(),
    }
}

/// Assembles the review of `closure` (signed as `infos`) of `org/package@version`.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    catalog: &AnyCatalog,
    store: &Store,
    org: &str,
    package: &str,
    version: &str,
    system: &str,
    key_name: &str,
    closure: &Closure,
    infos: &[NarInfo],
) -> Review {
    let mut paths = Vec::with_capacity(closure.reused.len() + closure.packed.len());
    // Reused dependencies are in the store: their narinfos were just read there.
    for r in &closure.reused {
        paths.push(ReviewPath {
            store_path: r.store_path.to_string(),
            nar_size: r.info.nar_size,
            file_size: r.info.file_size.unwrap_or_default(),
            in_store: true,
        });
    }
    for (p, info) in closure.packed.iter().zip(infos) {
        let in_store = store.exists(&info.file_name()).await.unwrap_or(false);
        paths.push(ReviewPath {
            store_path: p.store_path.to_string(),
            nar_size: p.packed.summary.nar.nar_size,
            file_size: p.packed.summary.file_size,
            in_store,
        });
    }
    let top = closure.top();
    let previous = previous(catalog, store, org, package, version, system, top).await;
    Review {
        reference: format!("{org}/{package}@{version}"),
        system: system.to_string(),
        catalog: catalog_location(catalog),
        org: org.to_string(),
        store_url: store.url().to_string(),
        key_name: key_name.to_string(),
        store_path: top.store_path.to_string(),
        nar_total: paths.iter().map(|p| p.nar_size).sum(),
        upload_bytes: paths
            .iter()
            .filter(|p| !p.in_store)
            .map(|p| p.file_size)
            .sum(),
        closure: paths,
        previous,
    }
}

/// The most recently registered other version of the package for `system` (by the catalog's
/// sequence: two versions registered within one second have the same `published_at`),
/// compared.
async fn previous(
    catalog: &AnyCatalog,
    store: &Store,
    org: &str,
    package: &str,
    version: &str,
    system: &str,
    top: &PackedPath,
) -> Option<Previous> {
    let detail = catalog.show(org, package).await.ok()?;
    let last = detail
        .versions
        .iter()
        .filter(|v| v.version != version)
        .flat_map(|v| v.builds.iter())
        .filter(|b| b.system == system)
        .max_by(|a, b| (a.seq, &a.published_at).cmp(&(b.seq, &b.published_at)))?
        .clone();
    let nar_size = top.packed.summary.nar.nar_size;
    let mut prev = Previous {
        version: last.version.clone(),
        store_path: last.store_path.clone(),
        nar_size: last.nar_size,
        size_delta: i64::try_from(nar_size).unwrap_or(i64::MAX)
            - i64::try_from(last.nar_size).unwrap_or(i64::MAX),
        diff: None,
        note: None,
    };
    let key = match crate::nix::StorePath::parse(&last.store_path) {
        Ok(p) => cache::listing_key(&p),
        Err(e) => {
            prev.note = Some(format!("cannot name its NAR listing: {e}"));
            return Some(prev);
        }
    };
    let old = match store.get(&key).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(crate::store::StoreError::NotFound { .. }) => {
            prev.note = Some(format!(
                "{} has no NAR listing in the store (published before pubdeck wrote them): sizes only",
                last.version
            ));
            return Some(prev);
        }
        Err(e) => {
            prev.note = Some(format!("cannot read its NAR listing: {e}"));
            return Some(prev);
        }
    };
    let new = match &top.packed.listing {
        Some(l) => Ok(Ok(l.clone())),
        None => {
            let source = top.packed.file.source();
            let compression = top.packed.summary.compression;
            tokio::task::spawn_blocking(move || cache::nar_listing(source, compression)).await
        }
    };
    match new {
        Ok(Ok(new)) => match diff(&old, &String::from_utf8_lossy(&new)) {
            Ok(d) => prev.diff = Some(d),
            Err(e) => prev.note = Some(e),
        },
        Ok(Err(e)) => prev.note = Some(e.to_string()),
        Err(e) => prev.note = Some(e.to_string()),
    }
    Some(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_two_listings() {
        let before = r#"{"version":1,"root":{"type":"directory","entries":{"bin":{"type":"directory","entries":{"hello":{"type":"regular","size":24,"executable":true,"narOffset":400}}},"old":{"type":"regular","size":3,"narOffset":600},"ln":{"type":"symlink","target":"bin/hello"}}}}"#;
        let after = r#"{"version":1,"root":{"type":"directory","entries":{"bin":{"type":"directory","entries":{"hello":{"type":"regular","size":30,"executable":true,"narOffset":400}}},"new":{"type":"regular","size":5,"narOffset":600},"ln":{"type":"symlink","target":"bin/other"}}}}"#;
        let d = diff(before, after).unwrap();
        assert_eq!(
            d.added,
            vec![FileEntry {
                path: "new".into(),
                node: Node::Regular {
                    size: 5,
                    executable: false
                }
            }]
        );
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].path, "old");
        let changed: Vec<&str> = d.changed.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(changed, ["bin/hello", "ln"]);
        assert_eq!(d.changed[0].after.to_string(), "executable, 30 B");
        assert!(diff(before, before).unwrap().is_empty());
        assert!(diff("{}", after).is_err());
    }
}
