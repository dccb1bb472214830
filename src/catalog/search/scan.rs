//! The service's scan: the best `limit` packages of a visible set ([`ScanSet`]), bounded by
//! [`Query::bound`] and merged into one index from the set's second search.

use super::*;

/// The package lists of a visible set of catalogs, in its order.
pub(crate) type Lists = Arc<ScanSet>;

/// Memory the merged indexes of [`ScanSet`]s may take together: about five visible sets of
/// 100,000 packages (45 MB each, columns included). A set that does not fit is searched
/// catalog by catalog, each with its own columns.
pub(crate) const MERGED_BYTES: usize = 256 << 20;

/// The catalogs one search reads (a visible set), in order. From its second search on, a set
/// is searched as one merged index with one set of [`Columns`]: at hundreds of catalogs, a
/// column pass per catalog reads a few words of each set, each one a cache miss, where the
/// merged index's sets are read from end to end. A set searched once (`pubdeck search`)
/// never pays for merging.
pub struct ScanSet {
    pub(super) catalogs: Vec<Arc<CatalogIndex>>,
    pub(super) searches: std::sync::atomic::AtomicU32,
    /// Set by the search that merges (others go on catalog by catalog meanwhile).
    pub(super) merging: std::sync::atomic::AtomicBool,
    /// The merged index, or `None` when it did not fit the budget.
    pub(super) merged: std::sync::OnceLock<Option<Merged>>,
    /// Bytes left for merged indexes, shared by the sets of one [`SearchCache`].
    pub(super) budget: Arc<std::sync::atomic::AtomicUsize>,
}

pub(crate) struct Merged {
    pub(super) catalog: Arc<CatalogIndex>,
    /// What it took of the budget (given back on drop).
    pub(super) bytes: usize,
}

impl std::fmt::Debug for ScanSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanSet")
            .field("catalogs", &self.catalogs.len())
            .field("merged", &self.merged().is_some())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for ScanSet {
    type Target = [Arc<CatalogIndex>];
    fn deref(&self) -> &Self::Target {
        &self.catalogs
    }
}

impl Drop for ScanSet {
    fn drop(&mut self) {
        if let Some(Some(m)) = self.merged.get() {
            self.budget
                .fetch_add(m.bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl ScanSet {
    /// The set of `catalogs`, whose merged index may take what is left of `budget`.
    pub fn new(
        catalogs: Vec<Arc<CatalogIndex>>,
        budget: Arc<std::sync::atomic::AtomicUsize>,
    ) -> ScanSet {
        ScanSet {
            catalogs,
            searches: std::sync::atomic::AtomicU32::new(0),
            merging: std::sync::atomic::AtomicBool::new(false),
            merged: std::sync::OnceLock::new(),
            budget,
        }
    }

    /// A set with a budget of its own of [`MERGED_BYTES`] (tests, benchmarks).
    pub fn standalone(catalogs: Vec<Arc<CatalogIndex>>) -> ScanSet {
        ScanSet::new(
            catalogs,
            Arc::new(std::sync::atomic::AtomicUsize::new(MERGED_BYTES)),
        )
    }

    pub(crate) fn merged(&self) -> Option<&Merged> {
        self.merged.get().and_then(Option::as_ref)
    }

    /// What a search reads: the merged index once there is one. Counts the search; the
    /// second one merges, or (over budget) builds each catalog's columns instead.
    pub(super) fn for_search(&self) -> &[Arc<CatalogIndex>] {
        use std::sync::atomic::Ordering;
        if let Some(done) = self.merged.get() {
            return done
                .as_ref()
                .map_or(&self.catalogs[..], |m| std::slice::from_ref(&m.catalog));
        }
        if self.searches.fetch_add(1, Ordering::Relaxed) == 0
            || self.merging.swap(true, Ordering::AcqRel)
        {
            return &self.catalogs;
        }
        let done = self.merged.get_or_init(|| self.merge());
        match done {
            Some(m) => std::slice::from_ref(&m.catalog),
            None => {
                self.catalogs.iter().for_each(|c| c.index.build_columns());
                &self.catalogs
            }
        }
    }

    /// The merged index with its columns, if its bytes fit what is left of the budget.
    pub(super) fn merge(&self) -> Option<Merged> {
        use std::sync::atomic::Ordering;
        let packages: usize = self.catalogs.iter().map(|c| c.index.len()).sum();
        // The parts' own bytes and the merged columns.
        let bytes = self
            .catalogs
            .iter()
            .map(|c| c.index.heap_bytes())
            .sum::<usize>()
            + Columns::bytes_for(packages);
        self.budget
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .ok()?;
        let parts: Vec<&SearchIndex> = self.catalogs.iter().map(|c| &*c.index).collect();
        let index = SearchIndex::concat(&parts);
        index.build_columns();
        Some(Merged {
            catalog: Arc::new(CatalogIndex {
                name: String::new(),
                created_at: 0,
                generation: 0,
                index: Arc::new(index),
            }),
            bytes,
        })
    }

    /// The best `limit` packages for `query` on `threads` threads (`None`: as many as the
    /// package count calls for).
    /// With no result, the names nearest to the query ([`suggest`]).
    pub(crate) fn search(
        &self,
        query: &str,
        limit: usize,
        threads: Option<usize>,
    ) -> Result<SearchAnswer, ScanPanicked> {
        let catalogs = self.for_search();
        let results = search_on(catalogs, query, limit, threads)?;
        let suggestions = if results.is_empty() {
            let indexes: Vec<&SearchIndex> = catalogs.iter().map(|c| &*c.index).collect();
            suggest(&indexes, query)
                .into_iter()
                .map(|(i, id)| format!("{}/{}", indexes[i].org(id), indexes[i].name(id)))
                .collect()
        } else {
            Vec::new()
        };
        Ok(SearchAnswer {
            results,
            suggestions,
        })
    }

    /// The best `limit` packages of this set for `query` as a search of the service reads
    /// it, scanned on this thread, and how many packages were scored. With `bounded` false
    /// every candidate is scored, as before the score bounds: `benches/scan.rs` measures one
    /// against the other.
    pub fn scan(&self, query: &str, limit: usize, bounded: bool) -> (Vec<(i64, String)>, usize) {
        let (hits, scored) = scan_bounded(self.for_search(), &Query::parse(query), limit, bounded);
        let hits = hits
            .into_iter()
            .map(|(score, c, id)| (score, format!("{}/{}", c.index.org(id), c.index.name(id))))
            .collect();
        (hits, scored)
    }
}

/// The best `limit` packages of `catalogs` for `query`, best first (see the module rules).
/// Large scans are split across the machine's cores.
#[cfg(test)]
pub(crate) fn search(catalogs: &[Arc<CatalogIndex>], query: &str, limit: usize) -> Vec<SearchHit> {
    search_on(catalogs, query, limit, None).expect("no scan thread panics")
}

/// [`search`] on `threads` threads (`None`: as many as [`threads_for`] the package count).
pub(super) fn search_on(
    catalogs: &[Arc<CatalogIndex>],
    query: &str,
    limit: usize,
    threads: Option<usize>,
) -> Result<Vec<SearchHit>, ScanPanicked> {
    let q = Query::parse(query);
    let total: usize = catalogs.iter().map(|c| c.index.len()).sum();
    let threads = threads.unwrap_or_else(|| threads_for(total));
    let parts = even_runs(catalogs, threads, |c| c.index.len());
    let mut hits: Vec<(i64, &CatalogIndex, usize)> =
        on_cores(parts, &|part| scan(part, &q, limit))?.concat();
    top_by(&mut hits, limit, |a, b| {
        order((a.0, &a.1.index, a.2), (b.0, &b.1.index, b.2))
    });
    Ok(hits
        .into_iter()
        .map(|(score, c, id)| {
            let p = c.index.summary(id);
            SearchHit {
                name: p.name,
                org: p.org,
                package: p.package,
                latest_version: p.latest_version,
                description: p.description,
                score,
            }
        })
        .collect())
}

/// The best `limit` matches among `catalogs`. Once `limit` matches are found, a package
/// whose [`Query::bound`] cannot reach the `limit`-th best so far is not scored: at 100,000
/// packages most of a common query's matches are never scored.
pub(super) fn scan<'a>(
    catalogs: &'a [Arc<CatalogIndex>],
    q: &Query,
    limit: usize,
) -> Vec<(i64, &'a CatalogIndex, usize)> {
    scan_bounded(catalogs, q, limit, true).0
}

/// [`scan`], skipping what cannot rank when `bounded` (tests compare both), and how many
/// packages were scored.
pub(super) fn scan_bounded<'a>(
    catalogs: &'a [Arc<CatalogIndex>],
    q: &Query,
    limit: usize,
    bounded: bool,
) -> (Vec<(i64, &'a CatalogIndex, usize)>, usize) {
    let mut best = Best::new(limit, bounded);
    if limit == 0 {
        return (Vec::new(), 0);
    }
    MATCHER.with(|m| {
        let m = &mut m.borrow_mut();
        if bounded && q.by_prefix {
            best = prefix_pass(m, catalogs, q, limit);
            if best.settled(q) {
                return;
            }
            // Too few names start with the query: scan everything instead.
            best = Best {
                scored: best.scored,
                ..Best::new(limit, bounded)
            };
        }
        let need = q.character_needs();
        if !bounded {
            for cat in catalogs {
                cat.index
                    .candidates(&need)
                    .for_each(|id| best.offer(m, q, cat, id));
            }
            return;
        }
        CANDIDATES.with(|c| {
            let cands = &mut c.borrow_mut();
            best_first(m, catalogs, q, &need, &mut best, cands);
        });
    });
    best.finish()
}

thread_local! {
    /// A scan's candidates with their bounds (kept between scans: no allocation per query).
    static CANDIDATES: RefCell<Vec<Candidate>> = const { RefCell::new(Vec::new()) };
}

/// How many candidates ahead a scan asks for the memory it will read.
pub(super) const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring `x`'s cache line in without waiting for it.
pub(super) fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault; `x` is a valid
    // reference anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// A package that passed a scan's filters, with its score bound.
#[derive(Clone, Copy)]
pub(super) struct Candidate {
    pub(super) bound: i64,
    /// Its name's length ([`Head::len`]).
    pub(super) len: u32,
    /// Its catalog's position among the scan's.
    pub(super) cat: u32,
    pub(super) id: u32,
    /// The terms whose name may match, when the columns told ([`Columns::candidates`]).
    pub(super) names: Option<u64>,
}

/// The bounded scan, best bound first: every candidate's [`Query::bound`] is computed, those
/// with the highest bounds are scored first (they set a high bar at once), then the rest
/// only where their bound reaches the bar.
pub(super) fn best_first<'a>(
    m: &mut Matcher,
    catalogs: &'a [Arc<CatalogIndex>],
    q: &Query,
    need: &[Need],
    best: &mut Best<'a>,
    cands: &mut Vec<Candidate>,
) {
    cands.clear();
    let columns = q.column_needs();
    for (c, cat) in catalogs.iter().enumerate() {
        cat.index.for_candidates(need, &columns, |id, names| {
            cands.push(Candidate {
                bound: 0,
                len: 0,
                cat: c as u32,
                id: id as u32,
                names,
            });
        });
    }
    // The bounds, each a [`Head`]: a cache miss per candidate unless fetched ahead.
    let head = |c: &Candidate| &catalogs[c.cat as usize].index.heads[c.id as usize];
    for i in 0..cands.len() {
        if let Some(next) = cands.get(i + PREFETCH_AHEAD) {
            prefetch(head(next));
        }
        let c = &mut cands[i];
        let idx = &catalogs[c.cat as usize].index;
        c.bound = q.bound(idx, c.id as usize, c.names);
        c.len = idx.heads[c.id as usize].len;
    }
    let first = (best.limit + 128).min(cands.len());
    if first == 0 {
        return;
    }
    let key = |c: &Candidate| (Reverse(c.bound), c.len, c.cat, c.id);
    if first < cands.len() {
        cands.select_nth_unstable_by_key(first - 1, key);
    }
    let (head, rest) = cands.split_at(first);
    let score = |best: &mut Best<'a>, m: &mut Matcher, c: &Candidate| {
        best.score(m, q, &catalogs[c.cat as usize], c.id as usize, c.names);
    };
    // Scoring reads a package's entry, then its name: both asked for ahead.
    let index = |c: &Candidate| &*catalogs[c.cat as usize].index;
    let ahead = |list: &[Candidate], i: usize| {
        if let Some(c) = list.get(i + PREFETCH_AHEAD) {
            prefetch(&index(c).entries[c.id as usize]);
        }
        if let Some(c) = list.get(i + PREFETCH_AHEAD / 2) {
            index(c).prefetch_name(c.id as usize);
        }
    };
    for (i, c) in head.iter().enumerate() {
        ahead(head, i);
        score(best, m, c);
    }
    best.raise_bar();
    for (i, c) in rest.iter().enumerate() {
        if best.reaches(c.bound, c.len) {
            ahead(rest, i);
            score(best, m, c);
        }
    }
}

/// The names of `catalogs` that start with the query (`q.by_prefix`), scored: when `limit`
/// of them outscore every other name ([`Best::settled`]), they are the answer, found without
/// reading the other packages' masks. Names starting with the query earn the prefix bonus,
/// which outweighs any fuzzy or description score of a short query.
pub(super) fn prefix_pass<'a>(
    m: &mut Matcher,
    catalogs: &'a [Arc<CatalogIndex>],
    q: &Query,
    limit: usize,
) -> Best<'a> {
    let mut best = Best::new(limit, true);
    let long = q.whole.len() > 8;
    // With columns: only the names with the query's first two bytes are read.
    let sets: Vec<ColumnNeed> = vec![(
        [Columns::FIRST, Columns::SECOND]
            .iter()
            .zip(q.whole.bytes())
            .map(|(&at, b)| (at + usize::from(CHAR_BITS[usize::from(b)])) as u16)
            .collect(),
        None,
    )];
    for cat in catalogs {
        let idx = &cat.index;
        let mut offer = |id: usize| {
            if q.may_start(&idx.heads[id]) && (!long || idx.lower_name(id).starts_with(&q.whole)) {
                best.offer(m, q, cat, id);
            }
        };
        match idx.columns() {
            Some(cols) => cols.candidates(&sets, idx.len(), |id, _| offer(id)),
            None => (0..idx.len()).for_each(offer),
        }
    }
    best
}

/// The best `limit` hits of a scan so far.
pub(super) struct Best<'a> {
    pub(super) hits: Vec<(i64, &'a CatalogIndex, usize)>,
    pub(super) limit: usize,
    /// Whether packages that cannot reach the bar are skipped.
    pub(super) bounded: bool,
    /// The score and name length of the `limit`-th best hit so far, once known.
    pub(super) bar: Option<(i64, u32)>,
    /// How many packages were scored.
    pub(super) scored: usize,
}

impl<'a> Best<'a> {
    pub(super) fn new(limit: usize, bounded: bool) -> Best<'a> {
        Best {
            hits: Vec::new(),
            limit,
            bounded,
            bar: None,
            scored: 0,
        }
    }

    /// Scores package `id` of `cat` unless its bound cannot reach the bar.
    pub(super) fn offer(&mut self, m: &mut Matcher, q: &Query, cat: &'a CatalogIndex, id: usize) {
        if self.bar.is_none()
            || self.reaches(q.bound(&cat.index, id, None), cat.index.heads[id].len)
        {
            self.score(m, q, cat, id, None);
        }
    }

    /// Whether a package whose score is at most `bound` and whose name is `len` bytes long
    /// may rank with the hits so far.
    pub(super) fn reaches(&self, bound: i64, len: u32) -> bool {
        self.bar
            .is_none_or(|(score, bar_len)| bound > score || (bound == score && len <= bar_len))
    }

    /// Scores package `id` of `cat` and keeps it if it matches.
    /// `names`: the terms whose name may match, when the columns told.
    pub(super) fn score(
        &mut self,
        m: &mut Matcher,
        q: &Query,
        cat: &'a CatalogIndex,
        id: usize,
        names: Option<u64>,
    ) {
        self.scored += 1;
        if let Some(score) = score_filtered(m, &cat.index, id, q, true, names) {
            self.hits.push((score, cat, id));
            if self.bounded && self.hits.len() >= self.limit + 128 {
                self.raise_bar();
            }
        }
    }

    /// Keeps the best `limit` hits and, once there are that many, bars what cannot beat
    /// the last of them.
    pub(super) fn raise_bar(&mut self) {
        self.trim();
        if self.bounded && self.hits.len() >= self.limit {
            self.bar = self
                .hits
                .last()
                .map(|&(s, c, id)| (s, c.index.heads[id].len));
        }
    }

    pub(super) fn trim(&mut self) {
        top_by(&mut self.hits, self.limit, |a, b| {
            order((a.0, &a.1.index, a.2), (b.0, &b.1.index, b.2))
        });
    }

    /// Whether no package outside those offered can rank: `limit` hits score above
    /// `q.other_bound`.
    pub(super) fn settled(&mut self, q: &Query) -> bool {
        self.trim();
        self.hits.len() >= self.limit
            && self.hits.last().is_some_and(|&(s, _, _)| s > q.other_bound)
    }

    /// The best `limit` hits, best first, and how many packages were scored.
    pub(super) fn finish(mut self) -> (Vec<(i64, &'a CatalogIndex, usize)>, usize) {
        self.trim();
        (self.hits, self.scored)
    }
}
