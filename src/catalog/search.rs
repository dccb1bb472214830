//! In-memory package lists per catalog, for listing (with ETags) and fuzzy search.
//!
//! Each catalog's list is cached with the catalog's `generation`, which every registration
//! bumps in the database. A request reads the generations of the caller's visible catalogs
//! (one small query) and reloads only stale lists, so several service instances sharing one
//! PostgreSQL database stay correct.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;
use sha2::{Digest, Sha256};

use super::db::{CatalogRow, Db};
use super::{CatalogResult, PackageSummary, SearchHit};

/// A catalog's packages with lower-cased text for the prefilter.
#[derive(Debug)]
pub(crate) struct CachedCatalog {
    generation: i64,
    pub(crate) packages: Vec<PackageSummary>,
    lower_names: Vec<String>,
    lower_descriptions: Vec<String>,
}

/// Recent search answers kept per (ETag of the visible catalogs, query, limit).
const RESULT_CACHE_SIZE: usize = 512;

type ResultKey = (String, String, usize);

/// Per-catalog package lists shared by all requests of one process.
pub(crate) struct SearchCache {
    catalogs: RwLock<HashMap<String, Arc<CachedCatalog>>>,
    results: RwLock<HashMap<ResultKey, Arc<Vec<SearchHit>>>>,
    reload: tokio::sync::Mutex<()>,
    matcher: SkimMatcherV2,
}

impl std::fmt::Debug for SearchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchCache").finish_non_exhaustive()
    }
}

impl Default for SearchCache {
    fn default() -> Self {
        SearchCache {
            catalogs: RwLock::default(),
            results: RwLock::default(),
            reload: tokio::sync::Mutex::new(()),
            matcher: SkimMatcherV2::default().ignore_case(),
        }
    }
}

/// The ETag of a list made of these catalogs at these generations.
pub(crate) fn etag_for(visible: &[CatalogRow]) -> String {
    let mut h = Sha256::new();
    for c in visible {
        h.update(c.name.as_bytes());
        h.update(b":");
        h.update(c.generation.to_string().as_bytes());
        h.update(b"\n");
    }
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

impl SearchCache {
    /// A cached answer for this visible set (by ETag), query and limit.
    pub(crate) fn cached_result(
        &self,
        etag: &str,
        query: &str,
        limit: usize,
    ) -> Option<Arc<Vec<SearchHit>>> {
        let key = (etag.to_string(), query.to_string(), limit);
        self.results
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    /// Remembers an answer; the whole cache is dropped when full (entries keyed by stale
    /// ETags are never hit again).
    pub(crate) fn store_result(
        &self,
        etag: &str,
        query: &str,
        limit: usize,
        hits: Arc<Vec<SearchHit>>,
    ) {
        let mut map = self.results.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= RESULT_CACHE_SIZE {
            map.clear();
        }
        map.insert((etag.to_string(), query.to_string(), limit), hits);
    }

    fn cached(&self, name: &str, generation: i64) -> Option<Arc<CachedCatalog>> {
        let map = self.catalogs.read().unwrap_or_else(|e| e.into_inner());
        map.get(name)
            .filter(|c| c.generation >= generation)
            .cloned()
    }

    /// Current package lists of `visible` catalogs (reloading stale ones), in their order.
    pub(crate) async fn snapshot(
        &self,
        db: &Db,
        visible: &[CatalogRow],
    ) -> CatalogResult<Vec<Arc<CachedCatalog>>> {
        let mut out = Vec::with_capacity(visible.len());
        for row in visible {
            if let Some(c) = self.cached(&row.name, row.generation) {
                out.push(c);
                continue;
            }
            let _guard = self.reload.lock().await;
            if let Some(c) = self.cached(&row.name, row.generation) {
                out.push(c);
                continue;
            }
            let (generation, packages) = db.package_summaries(&row.name).await?;
            let loaded = Arc::new(CachedCatalog {
                generation,
                lower_names: packages.iter().map(|p| p.name.to_lowercase()).collect(),
                lower_descriptions: packages
                    .iter()
                    .map(|p| p.description.to_lowercase())
                    .collect(),
                packages,
            });
            self.catalogs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(row.name.clone(), Arc::clone(&loaded));
            out.push(loaded);
        }
        Ok(out)
    }

    /// Search: every whitespace-separated term must match the name fuzzily (double weight)
    /// or occur in the description (case-insensitive substring); an exact or prefix package
    /// name match ranks first.
    pub(crate) fn search(
        &self,
        catalogs: &[Arc<CachedCatalog>],
        query: &str,
        limit: usize,
    ) -> Vec<SearchHit> {
        let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let whole = query.trim().to_lowercase();
        let mut hits: Vec<(i64, &PackageSummary)> = Vec::new();
        for cat in catalogs {
            for (i, pkg) in cat.packages.iter().enumerate() {
                if terms.is_empty() {
                    hits.push((0, pkg));
                    continue;
                }
                if let Some(score) = self.score(cat, i, &terms, &whole) {
                    hits.push((score, pkg));
                }
            }
        }
        let by_rank = |a: &(i64, &PackageSummary), b: &(i64, &PackageSummary)| {
            Reverse(a.0)
                .cmp(&Reverse(b.0))
                .then_with(|| a.1.name.cmp(&b.1.name))
        };
        if hits.len() > limit && limit > 0 {
            hits.select_nth_unstable_by(limit - 1, by_rank);
            hits.truncate(limit);
        }
        hits.truncate(limit);
        hits.sort_by(by_rank);
        hits.into_iter()
            .map(|(score, p)| SearchHit {
                name: p.name.clone(),
                org: p.org.clone(),
                package: p.package.clone(),
                latest_version: p.latest_version.clone(),
                description: p.description.clone(),
                score,
            })
            .collect()
    }

    fn score(&self, cat: &CachedCatalog, i: usize, terms: &[String], whole: &str) -> Option<i64> {
        let (name, lname) = (&cat.packages[i].name, &cat.lower_names[i]);
        let (desc, ldesc) = (&cat.packages[i].description, &cat.lower_descriptions[i]);
        let mut total = 0;
        for term in terms {
            let n = if is_subsequence(term.as_bytes(), lname.as_bytes()) {
                self.matcher.fuzzy_match(name, term).map(|s| s * 2)
            } else {
                None
            };
            let d = if ldesc.contains(term.as_str()) {
                self.matcher.fuzzy_match(desc, term)
            } else {
                None
            };
            total += n.max(d)?;
        }
        let package = lname.rsplit('/').next().unwrap_or(lname);
        if package == whole || lname == whole {
            total += 10_000;
        } else if package.starts_with(whole) {
            total += 1_000;
        }
        Some(total)
    }
}

/// Whether `needle`'s bytes appear in order in `hay` (a necessary condition for a fuzzy match).
fn is_subsequence(needle: &[u8], hay: &[u8]) -> bool {
    let mut rest = hay;
    for &b in needle {
        match rest.iter().position(|&h| h == b) {
            Some(p) => rest = &rest[p + 1..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(names: &[(&str, &str)]) -> Arc<CachedCatalog> {
        let packages: Vec<PackageSummary> = names
            .iter()
            .map(|(n, d)| PackageSummary {
                name: format!("org/{n}"),
                org: "org".into(),
                package: (*n).into(),
                latest_version: "1".into(),
                description: (*d).into(),
            })
            .collect();
        Arc::new(CachedCatalog {
            generation: 0,
            lower_names: packages.iter().map(|p| p.name.to_lowercase()).collect(),
            lower_descriptions: packages
                .iter()
                .map(|p| p.description.to_lowercase())
                .collect(),
            packages,
        })
    }

    #[test]
    fn ranking() {
        let c = cat(&[
            ("hello-world", "prints greetings"),
            ("hello", "GNU hello"),
            ("shell-tools", "helpers"),
            ("curl", "transfers data"),
        ]);
        let cache = SearchCache::default();
        let hits = cache.search(std::slice::from_ref(&c), "hello", 10);
        assert_eq!(hits[0].name, "org/hello");
        assert!(hits.iter().all(|h| h.name != "org/curl"));
        let hits = cache.search(std::slice::from_ref(&c), "transfers", 10);
        assert_eq!(hits[0].name, "org/curl");
        assert_eq!(cache.search(std::slice::from_ref(&c), "", 2).len(), 2);
        assert_eq!(cache.search(&[c], "HELLO", 1)[0].name, "org/hello");
    }

    #[test]
    fn subsequence() {
        assert!(is_subsequence(b"hlo", b"hello"));
        assert!(!is_subsequence(b"olh", b"hello"));
        assert!(is_subsequence(b"", b"x"));
    }
}
