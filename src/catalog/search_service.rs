//! The service side of the search: per-catalog indexes kept in memory by generation, the
//! visible sets they make (by ETag), search answers in a bounded cache, the index file beside
//! a local catalog database, and the pool of threads scans run on. The search itself (its
//! rules, index and ranking) is [`super::search`], which knows nothing of this file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::db::{CatalogRow, Db};
use super::index_file;
use super::scan_pool::ScanPool;
use super::search::{CatalogIndex, Lists, MERGED_BYTES, ScanSet, even_runs, on_cores, threads_for};
use super::{CatalogResult, PackageSummary, SearchAnswer, SearchHit};

/// The index file beside a local catalog database (see [`super::index_file`]).
#[derive(Debug)]
struct Disk {
    path: PathBuf,
    db_path: PathBuf,
    /// Entries of the file that are not (yet) in memory; `None` until the file was read.
    others: std::sync::Mutex<Option<Vec<Arc<CatalogIndex>>>>,
    /// Writes under way ([`SearchCache::index_written`] waits for them).
    writes: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Writes started, and the latest one that landed: an older snapshot never replaces a
    /// newer one.
    started: std::sync::atomic::AtomicU64,
    landed: Arc<std::sync::Mutex<u64>>,
}

/// Memory for search answers kept per (ETag of the visible catalogs, query, limit): about
/// 8,000 answers of 20 hits.
const RESULT_CACHE_BYTES: usize = 32 << 20;

type ResultKey = (String, String, usize);

/// Search answers, at most `budget` bytes of them (strings and their headers). When full, a
/// randomly chosen answer makes room: a load rotating through more distinct queries than fit
/// still finds the share that fits, where dropping everything (or the oldest) finds nothing.
/// Answers under stale ETags are never asked for again and leave the same way.
struct ResultCache {
    map: HashMap<ResultKey, (Arc<SearchAnswer>, usize)>,
    /// The keys of `map`, for the random choice; `map` holds each one's position.
    keys: Vec<ResultKey>,
    bytes: usize,
    budget: usize,
    rng: u64,
}

impl ResultCache {
    fn new(budget: usize) -> ResultCache {
        ResultCache {
            map: HashMap::new(),
            keys: Vec::new(),
            bytes: 0,
            budget,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn get(&self, key: &ResultKey) -> Option<Arc<SearchAnswer>> {
        self.map.get(key).map(|(hits, _)| Arc::clone(hits))
    }

    /// The memory an entry holds (the key twice: in `map` and in `keys`).
    fn size(key: &ResultKey, answer: &SearchAnswer) -> usize {
        let key = key.0.len() + key.1.len() + std::mem::size_of::<ResultKey>();
        let suggestions: usize = answer
            .suggestions
            .iter()
            .map(|s| std::mem::size_of::<String>() + s.len())
            .sum();
        let hits: usize = answer
            .results
            .iter()
            .map(|h| {
                std::mem::size_of::<SearchHit>()
                    + h.name.len()
                    + h.org.len()
                    + h.package.len()
                    + h.latest_version.len()
                    + h.description.len()
            })
            .sum();
        2 * key + hits + suggestions + 64
    }

    fn insert(&mut self, key: ResultKey, hits: Arc<SearchAnswer>) {
        let size = ResultCache::size(&key, &hits);
        if size > self.budget || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + size > self.budget && !self.keys.is_empty() {
            // xorshift64: a victim chosen evenly, with no state but this word.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let at = (self.rng % self.keys.len() as u64) as usize;
            let victim = self.keys.swap_remove(at);
            if let Some(moved) = self.keys.get(at)
                && let Some(entry) = self.map.get_mut(moved)
            {
                entry.1 = at;
            }
            if let Some((hits, _)) = self.map.remove(&victim) {
                self.bytes -= ResultCache::size(&victim, &hits);
            }
        }
        self.bytes += size;
        self.keys.push(key.clone());
        self.map.insert(key, (hits, self.keys.len() - 1));
    }
}

/// Visible sets whose lists are kept at once (the map is dropped when full).
const SET_CACHE_SIZE: usize = 256;

/// Per-catalog package lists shared by all requests of one process.
pub(crate) struct SearchCache {
    catalogs: RwLock<HashMap<String, Arc<CatalogIndex>>>,
    /// The lists of a visible set, by its ETag: a request whose set was seen before gets its
    /// lists with one lookup, not one per catalog.
    sets: RwLock<HashMap<Arc<str>, Lists>>,
    /// Bytes left for the sets' merged indexes ([`MERGED_BYTES`]).
    merge_budget: Arc<std::sync::atomic::AtomicUsize>,
    results: RwLock<ResultCache>,
    /// Searches scanning or queued now: while others wait, a search keeps to one core.
    scanning: Arc<std::sync::atomic::AtomicUsize>,
    /// Where scans run: one thread per core, started with the first scan.
    pool: std::sync::OnceLock<std::io::Result<ScanPool>>,
    reload: tokio::sync::Mutex<()>,
    disk: Option<Disk>,
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
            sets: RwLock::default(),
            merge_budget: Arc::new(std::sync::atomic::AtomicUsize::new(MERGED_BYTES)),
            results: RwLock::new(ResultCache::new(RESULT_CACHE_BYTES)),
            scanning: Arc::default(),
            pool: std::sync::OnceLock::new(),
            reload: tokio::sync::Mutex::new(()),
            disk: None,
        }
    }
}

/// Inserts into a cache map of at most `cap` entries: a full map is emptied first (its
/// entries are keyed by versions that only move on, so old ones are rarely hit again).
pub(crate) fn insert_bounded<K: Eq + std::hash::Hash, V>(
    map: &RwLock<HashMap<K, V>>,
    cap: usize,
    key: K,
    value: V,
) {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= cap {
        map.clear();
    }
    map.insert(key, value);
}

/// The ETag of a list made of these catalogs at these generations.
pub(crate) fn etag_for(visible: &[CatalogRow]) -> String {
    let mut h = Sha256::new();
    for c in visible {
        h.update(c.name.as_bytes());
        h.update(b":");
        h.update(c.created_at.to_string().as_bytes());
        h.update(b":");
        h.update(c.generation.to_string().as_bytes());
        h.update(b"\n");
    }
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

impl SearchCache {
    /// A cache that also keeps its package lists in an index file beside the local catalog
    /// database at `db_path`, so the next process starts warm.
    pub(crate) fn with_index_file(db_path: &Path) -> SearchCache {
        SearchCache {
            disk: Some(Disk {
                path: index_file::path_for(db_path),
                db_path: db_path.to_path_buf(),
                others: std::sync::Mutex::new(None),
                writes: std::sync::Mutex::default(),
                started: std::sync::atomic::AtomicU64::new(0),
                landed: Arc::default(),
            }),
            ..SearchCache::default()
        }
    }

    /// A cached answer for this visible set (by ETag), query and limit.
    pub(crate) fn cached_result(
        &self,
        etag: &str,
        query: &str,
        limit: usize,
    ) -> Option<Arc<SearchAnswer>> {
        let key = (etag.to_string(), query.to_string(), limit);
        self.results
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
    }

    /// Remembers an answer (see [`ResultCache`]).
    pub(crate) fn store_result(
        &self,
        etag: &str,
        query: &str,
        limit: usize,
        hits: Arc<SearchAnswer>,
    ) {
        self.results
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((etag.to_string(), query.to_string(), limit), hits);
    }

    fn cached(&self, row: &CatalogRow) -> Option<Arc<CatalogIndex>> {
        let map = self.catalogs.read().unwrap_or_else(|e| e.into_inner());
        map.get(&row.name)
            .filter(|c| c.created_at == row.created_at && c.generation >= row.generation)
            .cloned()
    }

    fn insert(&self, c: Arc<CatalogIndex>) {
        self.catalogs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.name.clone(), c);
    }

    /// [`SearchCache::snapshot`] of the visible set whose ETag is `etag`, remembered.
    pub(crate) async fn lists(
        &self,
        etag: &Arc<str>,
        db: &Db,
        visible: &[CatalogRow],
    ) -> CatalogResult<Lists> {
        if let Some(l) = self
            .sets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(etag)
        {
            return Ok(Arc::clone(l));
        }
        let lists = Arc::new(ScanSet::new(
            self.snapshot(db, visible).await?,
            Arc::clone(&self.merge_budget),
        ));
        self.forget_stale_sets();
        insert_bounded(
            &self.sets,
            SET_CACHE_SIZE,
            Arc::clone(etag),
            Arc::clone(&lists),
        );
        Ok(lists)
    }

    /// Forgets the visible sets holding a catalog older than the one in memory: their ETags
    /// are not asked for again, and their merged indexes go back to the budget.
    fn forget_stale_sets(&self) {
        let current = self.catalogs.read().unwrap_or_else(|e| e.into_inner());
        let fresh = |set: &Lists| {
            set.iter()
                .all(|c| current.get(&c.name).is_none_or(|now| Arc::ptr_eq(now, c)))
        };
        self.sets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, set| fresh(set));
    }

    /// The best `limit` packages of `lists` for `query`, off the async threads: on every
    /// core while no other search runs, on one while others do (under load, splitting each
    /// scan only adds threads).
    pub(crate) async fn search(
        &self,
        lists: Lists,
        query: &str,
        limit: usize,
    ) -> CatalogResult<SearchAnswer> {
        use std::sync::atomic::Ordering;
        struct Scanning<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Scanning<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        // Counted while queued too: a scan takes every core only when it is the only one.
        let _scanning = Scanning(&self.scanning);
        self.scanning.fetch_add(1, Ordering::Relaxed);
        let pool = self
            .pool
            .get_or_init(|| {
                ScanPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
            })
            .as_ref()
            .map_err(|e| {
                crate::catalog::CatalogError::Internal(format!("cannot start search threads: {e}"))
            })?;
        let scanning = Arc::clone(&self.scanning);
        let q = query.to_string();
        let answer = pool
            .run(move || {
                let threads = (scanning.load(Ordering::Relaxed) > 1).then_some(1);
                lists.search(&q, limit, threads)
            })
            .await
            .ok_or_else(|| crate::catalog::CatalogError::Internal("the search scan failed".into()))
            .map_err(|e| {
                crate::catalog::CatalogError::Internal(format!("search task failed: {e}"))
            })?;
        Ok(answer?)
    }

    /// Current package lists of `visible` catalogs (reloading stale ones), in their order.
    pub(crate) async fn snapshot(
        &self,
        db: &Db,
        visible: &[CatalogRow],
    ) -> CatalogResult<Vec<Arc<CatalogIndex>>> {
        let mut out: Vec<Option<Arc<CatalogIndex>>> =
            visible.iter().map(|row| self.cached(row)).collect();
        if out.iter().all(Option::is_some) {
            return Ok(out.into_iter().flatten().collect());
        }
        let _guard = self.reload.lock().await;
        if let Some(disk) = &self.disk {
            self.read_index_file(disk, visible).await;
        }
        let mut stale = Vec::new();
        for (i, (slot, row)) in out.iter_mut().zip(visible).enumerate() {
            if slot.is_none() {
                *slot = self.cached(row);
                if slot.is_none() {
                    stale.push(i);
                }
            }
        }
        let changed = !stale.is_empty();
        if changed {
            let names: Vec<&str> = stale.iter().map(|&i| visible[i].name.as_str()).collect();
            let mut loaded: HashMap<String, (i64, Vec<PackageSummary>)> = db
                .package_summaries_many(&names)
                .await?
                .into_iter()
                .map(|(name, generation, list)| (name, (generation, list)))
                .collect();
            let jobs: Vec<(usize, i64, Vec<PackageSummary>)> = stale
                .into_iter()
                .map(|i| {
                    // A catalog gone meanwhile is listed empty, under no generation.
                    let (generation, packages) =
                        loaded.remove(&visible[i].name).unwrap_or((-1, Vec::new()));
                    (i, generation, packages)
                })
                .collect();
            // Indexed on every core when there are packages enough.
            let threads = threads_for(jobs.iter().map(|j| j.2.len()).sum());
            let parts = even_runs(&jobs, threads, |j| j.2.len());
            let built = on_cores(parts, &|part| {
                part.iter()
                    .map(|(i, generation, packages)| {
                        let row = &visible[*i];
                        let index =
                            CatalogIndex::new(&row.name, row.created_at, *generation, packages);
                        (*i, Arc::new(index))
                    })
                    .collect::<Vec<_>>()
            })?;
            for (i, index) in built.into_iter().flatten() {
                self.insert(Arc::clone(&index));
                out[i] = Some(index);
            }
        }
        if changed && let Some(disk) = &self.disk {
            self.write_index_file(disk);
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Reads the index file once: entries that are current for `visible` go into memory, the
    /// others are kept to be written back.
    async fn read_index_file(&self, disk: &Disk, visible: &[CatalogRow]) {
        if disk
            .others
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let path = disk.path.clone();
        let current: HashMap<String, (i64, i64)> = visible
            .iter()
            .map(|r| (r.name.clone(), (r.created_at, r.generation)))
            .collect();
        let read = tokio::task::spawn_blocking(move || {
            let mut fresh = Vec::new();
            let mut others = Vec::new();
            for e in index_file::load(&path).unwrap_or_default() {
                if current.get(&e.name) == Some(&(e.created_at, e.generation)) {
                    fresh.push(Arc::new(e));
                } else {
                    others.push(Arc::new(e));
                }
            }
            (fresh, others)
        })
        .await;
        let (fresh, others) = read.unwrap_or_default();
        for c in fresh {
            if self.cached_by_name(&c.name).is_none() {
                self.insert(c);
            }
        }
        *disk.others.lock().unwrap_or_else(|e| e.into_inner()) = Some(others);
    }

    fn cached_by_name(&self, name: &str) -> Option<Arc<CatalogIndex>> {
        let map = self.catalogs.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).cloned()
    }

    /// Waits for the index file writes under way. Nothing else needs to: a process ends
    /// after its runtime's blocking work, and a write lands whole or not at all.
    pub(crate) async fn index_written(&self) {
        let Some(disk) = &self.disk else { return };
        let writes: Vec<_> =
            std::mem::take(&mut *disk.writes.lock().unwrap_or_else(|e| e.into_inner()));
        for w in writes {
            let _ = w.await;
        }
    }

    /// Rewrites the index file with every catalog in memory and the file's other entries,
    /// in the background: the answer that read the lists does not wait for the file. A
    /// failure costs only speed: it is logged.
    fn write_index_file(&self, disk: &Disk) {
        let in_memory: Vec<Arc<CatalogIndex>> = self
            .catalogs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let others: Vec<Arc<CatalogIndex>> = {
            let mut guard = disk.others.lock().unwrap_or_else(|e| e.into_inner());
            let names: std::collections::HashSet<&str> =
                in_memory.iter().map(|c| c.name.as_str()).collect();
            let kept = guard.take().unwrap_or_default();
            let kept: Vec<Arc<CatalogIndex>> = kept
                .into_iter()
                .filter(|e| !names.contains(e.name.as_str()))
                .collect();
            *guard = Some(kept.clone());
            kept
        };
        let (path, like) = (disk.path.clone(), disk.db_path.clone());
        let seq = disk
            .started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let landed = Arc::clone(&disk.landed);
        let write = tokio::task::spawn_blocking(move || {
            let mut last = landed.lock().unwrap_or_else(|e| e.into_inner());
            if *last > seq {
                return;
            }
            let mut entries: Vec<&CatalogIndex> =
                in_memory.iter().chain(&others).map(|c| &**c).collect();
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            match index_file::save(&path, &like, &entries) {
                Ok(()) => *last = seq,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not write the search index")
                }
            }
        });
        let mut writes = disk.writes.lock().unwrap_or_else(|e| e.into_inner());
        writes.retain(|w| !w.is_finished());
        writes.push(write);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::search::tests::{cat, summaries};

    /// A set holding a catalog that moved on is forgotten when another set is listed, and
    /// its merged index goes back to the budget; a current set stays.
    #[test]
    fn stale_sets_give_their_merged_bytes_back() {
        let cache = SearchCache::default();
        let old = cat(&[("py-dhcp", "a daemon")]);
        let other = Arc::new(CatalogIndex::new(
            "beta",
            0,
            0,
            &summaries(&[("beta", "pdns", "dns")]),
        ));
        cache.insert(Arc::clone(&old));
        cache.insert(Arc::clone(&other));
        let budget = || {
            cache
                .merge_budget
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let list = |catalogs: Vec<Arc<CatalogIndex>>, etag: &str| {
            let set = Arc::new(ScanSet::new(catalogs, Arc::clone(&cache.merge_budget)));
            set.search("pd", 20, Some(1)).unwrap();
            set.search("pd", 20, Some(1)).unwrap();
            assert!(set.merged().is_some());
            insert_bounded(&cache.sets, SET_CACHE_SIZE, Arc::from(etag), set);
        };
        list(vec![Arc::clone(&old), Arc::clone(&other)], "both");
        list(vec![Arc::clone(&other)], "beta");
        assert!(budget() < MERGED_BYTES);
        cache.forget_stale_sets();
        assert_eq!(cache.sets.read().unwrap().len(), 2, "nothing moved on yet");
        // `org` publishes: its catalog in memory is a newer one.
        cache.insert(Arc::new(CatalogIndex::new(
            "org",
            0,
            1,
            &summaries(&[("org", "py-dhcp", "a daemon"), ("org", "lua", "")]),
        )));
        let with_beta = budget();
        cache.forget_stale_sets();
        let sets = cache.sets.read().unwrap();
        assert_eq!(sets.keys().map(|k| &**k).collect::<Vec<_>>(), ["beta"]);
        assert!(budget() > with_beta, "the stale set's bytes came back");
        drop(sets);
        cache.sets.write().unwrap().clear();
        assert_eq!(budget(), MERGED_BYTES);
    }
    /// The answer cache stays within its budget, returns what it was given, and a rotation
    /// through twice the answers that fit still finds a share of them.
    #[test]
    fn the_answer_cache_keeps_a_share_of_a_long_rotation() {
        let hit = |i: usize| SearchHit {
            name: format!("org/p{i}"),
            org: "org".into(),
            package: format!("p{i}"),
            latest_version: "1.0".into(),
            description: "d".repeat(100),
            score: i as i64,
        };
        let key = |i: usize| ("\"etag\"".to_string(), format!("query {i}"), 20);
        let answer = |i: usize| {
            Arc::new(SearchAnswer {
                results: (0..20).map(|j| hit(i * 100 + j)).collect(),
                suggestions: Vec::new(),
            })
        };
        let one = ResultCache::size(&key(0), &answer(0));
        let mut cache = ResultCache::new(one * 500);
        // Two passes over 1,000 queries: the second finds some in the cache.
        let mut found = 0;
        for pass in 0..2 {
            for i in 0..1000 {
                match cache.get(&key(i)) {
                    Some(got) => {
                        assert_eq!(got, answer(i), "answer {i}");
                        found += 1;
                    }
                    None => cache.insert(key(i), answer(i)),
                }
                assert!(
                    cache.bytes <= cache.budget,
                    "{} > {}",
                    cache.bytes,
                    cache.budget
                );
                assert_eq!(cache.map.len(), cache.keys.len());
            }
            assert!(pass == 1 || found == 0);
        }
        assert!(
            (100..=600).contains(&found),
            "{found} of 1,000 found on the second pass"
        );
        // Positions stay true through the removals.
        for (at, k) in cache.keys.iter().enumerate() {
            assert_eq!(cache.map[k].1, at);
        }
        // A rotation that fits is found whole.
        let mut cache = ResultCache::new(one * 500);
        (0..400).for_each(|i| cache.insert(key(i), answer(i)));
        assert!((0..400).all(|i| cache.get(&key(i)).is_some()));
    }
}
