//! One search for every face: the service, the CLI (`pubdeck search`) and the workbench's
//! per-keystroke filter all rank with [`Searcher`] over a [`SearchIndex`], so the same query
//! orders results the same way everywhere.
//!
//! Rules. The query is split on whitespace into terms; a package matches when every term
//! does:
//! - a term without `/` matches the package name fuzzily (fzf's algorithm, `nucleo-matcher`,
//!   smart case), or else occurs in the description (case-insensitive substring);
//! - a term with `/` matches the organisation fuzzily with the part before the `/` and the
//!   name with the part after it (an empty part matches anything).
//!
//! Name matches weigh twice a description match. A package whose name equals the whole query
//! (or `org/name` does) ranks first, then names that start with it; ties go to the shorter
//! name, then by name. Highlight positions are char indices into `org/name`.
//!
//! `nucleo-matcher` was chosen by measurement over `fuzzy-matcher`'s skim v2 (see
//! ARCHITECTURE.md): on 100,000 names it is about 15× faster per keystroke.
//!
//! The service keeps one [`SearchIndex`] per catalog in memory ([`SearchCache`]), reloaded when
//! the catalog's `generation` moves on.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use nucleo_matcher::pattern::{Atom, AtomKind, CaseMatching, Normalization};
use nucleo_matcher::{Config, Matcher, Utf32String};
use sha2::{Digest, Sha256};

use super::db::{CatalogRow, Db};
use super::{CatalogResult, PackageSummary, SearchHit};

/// Results the workbench keeps for display.
pub const DISPLAY_CAP: usize = 500;
/// Bonus of an exact name match.
const EXACT: i64 = 10_000;
/// Bonus of a name starting with the query.
const PREFIX: i64 = 1_000;
/// Score of a description match, per character of the term.
const DESCRIPTION_PER_CHAR: i64 = 8;

/// An immutable index over packages: `(org, name, description)` in a fixed order; ids are
/// positions in that order.
#[derive(Default)]
pub struct SearchIndex {
    orgs: Vec<Utf32String>,
    org_chars: Vec<usize>,
    org_of: Vec<u32>,
    names: Vec<Utf32String>,
    lower_names: Vec<Box<str>>,
    lower_orgs: Vec<Box<str>>,
    descriptions: Vec<Box<str>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Indexes `(org, name, description)` entries.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> SearchIndex {
        let mut idx = SearchIndex::default();
        let mut org_ids: HashMap<&str, usize> = HashMap::new();
        for (org, name, description) in entries {
            let oi = *org_ids.entry(org).or_insert_with(|| {
                idx.orgs.push(Utf32String::from(org));
                idx.org_chars.push(org.chars().count());
                idx.lower_orgs.push(org.to_lowercase().into());
                idx.lower_orgs.len() - 1
            });
            idx.org_of.push(u32::try_from(oi).unwrap_or(u32::MAX));
            idx.names.push(Utf32String::from(name));
            idx.lower_names.push(name.to_lowercase().into());
            idx.descriptions.push(description.to_lowercase().into());
        }
        idx
    }

    /// Indexes catalog package summaries.
    pub fn of_packages(packages: &[PackageSummary]) -> SearchIndex {
        SearchIndex::new(
            packages
                .iter()
                .map(|p| (p.org.as_str(), p.package.as_str(), p.description.as_str())),
        )
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn org(&self, id: usize) -> usize {
        self.org_of[id] as usize
    }
}

/// One whitespace-separated term of a query.
struct Term {
    /// Fuzzy pattern for the organisation (`org/…` terms only; `None`: any org).
    org: Option<Atom>,
    /// Fuzzy pattern for the name (`None`: any name).
    name: Option<Atom>,
    /// Lower-cased term for the description (terms without `/` only).
    text: Option<String>,
}

/// A parsed query.
pub struct Query {
    raw: String,
    /// The whole query, trimmed and lower-cased (for the exact and prefix bonuses).
    whole: String,
    terms: Vec<Term>,
}

fn atom(pattern: &str) -> Atom {
    Atom::new(
        pattern,
        CaseMatching::Smart,
        Normalization::Smart,
        AtomKind::Fuzzy,
        false,
    )
}

impl Query {
    pub fn parse(query: &str) -> Query {
        let terms = query
            .split_whitespace()
            .map(|t| match t.split_once('/') {
                Some((o, n)) => Term {
                    org: (!o.is_empty()).then(|| atom(o)),
                    name: (!n.is_empty()).then(|| atom(n)),
                    text: None,
                },
                None => Term {
                    org: None,
                    name: Some(atom(t)),
                    text: Some(t.to_lowercase()),
                },
            })
            .collect();
        Query {
            raw: query.to_string(),
            whole: query.trim().to_lowercase(),
            terms,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// No terms: everything matches, in index order.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether every match of `self` is a match of `earlier` (so `self` can be searched among
    /// `earlier`'s matches): it extends `earlier` without changing how its terms split.
    pub fn narrows(&self, earlier: &Query) -> bool {
        !earlier.raw.trim().is_empty()
            && self.raw.starts_with(&earlier.raw)
            && self.raw.matches('/').count() == earlier.raw.matches('/').count()
    }
}

/// One ranked result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Index into the [`SearchIndex`].
    pub id: usize,
    pub score: i64,
    /// Char indices of the matched characters in `org/name`.
    pub indices: Vec<usize>,
}

thread_local! {
    static MATCHER: RefCell<Matcher> = RefCell::new(Matcher::new(Config::DEFAULT));
}

/// Scores packages against queries (with this thread's matcher scratch space).
pub struct Searcher;

impl Searcher {
    /// The score of package `id` for `q`, or `None` when it does not match.
    pub fn score(idx: &SearchIndex, id: usize, q: &Query) -> Option<i64> {
        MATCHER.with(|m| score_with(&mut m.borrow_mut(), idx, id, q))
    }

    /// Scores `candidates`: every match (in candidate order) and the best `limit` of them,
    /// best first, with highlight positions.
    pub fn rank(
        idx: &SearchIndex,
        q: &Query,
        candidates: impl IntoIterator<Item = usize>,
        limit: usize,
    ) -> (Vec<usize>, Vec<Hit>) {
        MATCHER.with(|m| {
            let m = &mut m.borrow_mut();
            let mut scored: Vec<(i64, usize)> = candidates
                .into_iter()
                .filter_map(|id| Some((score_with(m, idx, id, q)?, id)))
                .collect();
            let matched = scored.iter().map(|&(_, id)| id).collect();
            top(&mut scored, limit, |&(s, id)| {
                (Reverse(s), idx.lower_names[id].len(), &*idx.lower_names[id])
            });
            let hits = scored
                .into_iter()
                .map(|(score, id)| Hit {
                    id,
                    score,
                    indices: indices_with(m, idx, id, q),
                })
                .collect();
            (matched, hits)
        })
    }
}

/// Keeps the best `limit` of `v` by `key` (smallest first), sorted.
fn top<T, K: Ord>(v: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> K) {
    if limit == 0 {
        v.clear();
        return;
    }
    if v.len() > limit {
        v.select_nth_unstable_by(limit - 1, |a, b| key(a).cmp(&key(b)));
        v.truncate(limit);
    }
    v.sort_unstable_by_key(|a| key(a));
}

fn score_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Option<i64> {
    if q.terms.is_empty() {
        return Some(0);
    }
    let mut total = 0i64;
    for t in &q.terms {
        let mut s = 0i64;
        if let Some(o) = &t.org {
            s += i64::from(o.score(idx.orgs[idx.org(id)].slice(..), m)?);
        }
        let name = t.name.as_ref().map(|a| a.score(idx.names[id].slice(..), m));
        match (name, &t.text) {
            (None, _) => {}
            (Some(Some(n)), _) => s += 2 * i64::from(n),
            (Some(None), Some(text)) if idx.descriptions[id].contains(text.as_str()) => {
                s += DESCRIPTION_PER_CHAR * text.chars().count() as i64
            }
            (Some(None), _) => return None,
        }
        total += s;
    }
    let name = &*idx.lower_names[id];
    let full_len = idx.lower_orgs[idx.org(id)].len() + 1 + name.len();
    let is_full = q.whole.len() == full_len
        && q.whole.starts_with(&*idx.lower_orgs[idx.org(id)])
        && q.whole.ends_with(name);
    if name == q.whole || is_full {
        total += EXACT;
    } else if name.starts_with(&q.whole) {
        total += PREFIX;
    }
    Some(total)
}

fn indices_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Vec<usize> {
    let name_at = idx.org_chars[idx.org(id)] + 1;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for t in &q.terms {
        if let Some(o) = &t.org {
            buf.clear();
            o.indices(idx.orgs[idx.org(id)].slice(..), m, &mut buf);
            out.extend(buf.iter().map(|&i| i as usize));
        }
        if let Some(n) = &t.name {
            buf.clear();
            if n.indices(idx.names[id].slice(..), m, &mut buf).is_some() {
                out.extend(buf.iter().map(|&i| name_at + i as usize));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The workbench's per-keystroke filter over one index: when a query extends the previous
/// one, only the previous matches are searched.
#[derive(Debug, Default)]
pub struct Filter {
    index: Arc<SearchIndex>,
    query: String,
    /// Every id matching `query`, in index order.
    matched: Vec<usize>,
    /// The best matches, best first, at most [`DISPLAY_CAP`].
    hits: Vec<Hit>,
}

impl Filter {
    pub fn new(index: Arc<SearchIndex>) -> Filter {
        let mut f = Filter {
            matched: (0..index.len()).collect(),
            index,
            query: String::new(),
            hits: Vec::new(),
        };
        f.hits = first_hits(&f.matched);
        f
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    /// How many packages match (not capped).
    pub fn total(&self) -> usize {
        self.matched.len()
    }

    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// Filters for `query`.
    pub fn set_query(&mut self, query: &str) {
        if query == self.query {
            return;
        }
        let (old, new) = (Query::parse(&self.query), Query::parse(query));
        self.query = query.to_string();
        if new.is_empty() {
            self.matched = (0..self.index.len()).collect();
            self.hits = first_hits(&self.matched);
            return;
        }
        let candidates = if new.narrows(&old) {
            std::mem::take(&mut self.matched)
        } else {
            (0..self.index.len()).collect()
        };
        let (matched, hits) = Searcher::rank(&self.index, &new, candidates, DISPLAY_CAP);
        self.matched = matched;
        self.hits = hits;
    }
}

fn first_hits(matched: &[usize]) -> Vec<Hit> {
    matched
        .iter()
        .take(DISPLAY_CAP)
        .map(|&id| Hit {
            id,
            score: 0,
            indices: Vec::new(),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The service's per-catalog cache

/// A catalog's packages and their index, as of `generation`.
#[derive(Debug)]
pub(crate) struct CachedCatalog {
    generation: i64,
    pub(crate) packages: Vec<PackageSummary>,
    index: SearchIndex,
}

impl CachedCatalog {
    pub(crate) fn new(generation: i64, packages: Vec<PackageSummary>) -> CachedCatalog {
        CachedCatalog {
            generation,
            index: SearchIndex::of_packages(&packages),
            packages,
        }
    }
}

/// Recent search answers kept per (ETag of the visible catalogs, query, limit).
const RESULT_CACHE_SIZE: usize = 512;

type ResultKey = (String, String, usize);

/// Per-catalog package lists shared by all requests of one process.
pub(crate) struct SearchCache {
    catalogs: RwLock<HashMap<String, Arc<CachedCatalog>>>,
    results: RwLock<HashMap<ResultKey, Arc<Vec<SearchHit>>>>,
    reload: tokio::sync::Mutex<()>,
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
            let loaded = Arc::new(CachedCatalog::new(generation, packages));
            self.catalogs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(row.name.clone(), Arc::clone(&loaded));
            out.push(loaded);
        }
        Ok(out)
    }
}

/// The best `limit` packages of `catalogs` for `query`, best first (see the module rules).
pub(crate) fn search(catalogs: &[Arc<CachedCatalog>], query: &str, limit: usize) -> Vec<SearchHit> {
    let q = Query::parse(query);
    let mut hits: Vec<(i64, &PackageSummary)> = Vec::new();
    for cat in catalogs {
        for (id, pkg) in cat.packages.iter().enumerate() {
            if let Some(score) = Searcher::score(&cat.index, id, &q) {
                hits.push((score, pkg));
            }
        }
    }
    top(&mut hits, limit, |&(s, p)| {
        (Reverse(s), p.package.len(), p.name.as_str())
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn summaries(names: &[(&str, &str, &str)]) -> Vec<PackageSummary> {
        names
            .iter()
            .map(|(o, n, d)| PackageSummary {
                name: format!("{o}/{n}"),
                org: (*o).into(),
                package: (*n).into(),
                latest_version: "1".into(),
                description: (*d).into(),
            })
            .collect()
    }

    fn cat(names: &[(&str, &str)]) -> Arc<CachedCatalog> {
        let rows: Vec<(&str, &str, &str)> = names.iter().map(|(n, d)| ("org", *n, *d)).collect();
        Arc::new(CachedCatalog::new(0, summaries(&rows)))
    }

    #[test]
    fn ranking() {
        let c = cat(&[
            ("hello-world", "prints greetings"),
            ("hello", "GNU hello"),
            ("shell-tools", "helpers"),
            ("curl", "transfers data"),
        ]);
        let hits = search(std::slice::from_ref(&c), "hello", 10);
        assert_eq!(hits[0].name, "org/hello");
        assert_eq!(hits[1].name, "org/hello-world", "a prefix match comes next");
        assert!(hits.iter().all(|h| h.name != "org/curl"));
        let hits = search(std::slice::from_ref(&c), "transfers", 10);
        assert_eq!(hits[0].name, "org/curl", "descriptions are searched");
        assert_eq!(search(std::slice::from_ref(&c), "", 2).len(), 2);
        assert_eq!(
            search(std::slice::from_ref(&c), "HELLO", 1)[0].name,
            "org/hello"
        );
        assert_eq!(search(&[c], "org/hello", 1)[0].name, "org/hello");
    }

    fn filter() -> Filter {
        let rows = summaries(&[
            ("myorg", "hello", "says hello"),
            ("myorg", "jq-tools", "json helpers"),
            ("myorg", "json-check", "validates documents"),
            ("myorg", "help2man", "manual pages"),
        ]);
        Filter::new(Arc::new(SearchIndex::of_packages(&rows)))
    }

    #[test]
    fn empty_query_lists_everything_in_order() {
        let f = filter();
        assert_eq!(f.total(), 4);
        assert_eq!(
            f.hits().iter().map(|h| h.id).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn filters_ranks_and_reports_indices() {
        let mut f = filter();
        f.set_query("hel");
        let ids: Vec<_> = f.hits().iter().map(|h| h.id).collect();
        assert_eq!(ids[..2], [0, 3], "name matches first");
        assert_eq!(ids[2], 1, "then the description match (json helpers)");
        assert_eq!(f.hits()[0].indices, vec![6, 7, 8]);
        assert!(
            f.hits()[2].indices.is_empty(),
            "nothing to highlight in the name"
        );
        f.set_query("jsc");
        assert_eq!(f.hits()[0].id, 2);
        assert_eq!(f.hits()[0].indices, vec![6, 7, 11]);
    }

    #[test]
    fn the_org_is_matched_only_when_the_query_names_it() {
        let mut f = filter();
        f.set_query("m");
        assert_eq!(
            f.total(),
            2,
            "help2man by name, json-check by description; not the org of all four"
        );
        f.set_query("m/h");
        assert_eq!(f.total(), 3, "org part matches myorg, name part has an h");
        assert_eq!(f.hits()[0].indices, [0, 6]);
        f.set_query("x/h");
        assert_eq!(f.total(), 0, "no org matches x");
        f.set_query("myorg/");
        assert_eq!(f.total(), 4);
        assert_eq!(f.hits()[0].indices, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn narrowing_equals_a_fresh_search() {
        let mut a = filter();
        for q in ["j", "js", "jso", "json", "json ", "json c"] {
            a.set_query(q);
            let mut b = filter();
            b.set_query(q);
            assert_eq!(a.hits(), b.hits(), "{q:?}");
            assert_eq!(a.total(), b.total(), "{q:?}");
        }
        a.set_query("j");
        assert_eq!(a.total(), 2, "widening searches everything again");
        a.set_query("");
        assert_eq!(a.total(), 4);
    }

    #[test]
    fn every_term_must_match() {
        let mut f = filter();
        f.set_query("json check");
        assert_eq!(f.hits().iter().map(|h| h.id).collect::<Vec<_>>(), [2]);
        f.set_query("json zzz");
        assert_eq!(f.total(), 0);
    }
}
