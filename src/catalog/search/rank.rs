//! Scoring in tiers, ranking a candidate set ([`score`], [`rank`]), and [`order`], the one
//! order of results every face uses.

use super::*;

/// Bonus of an exact name match.
pub(super) const EXACT: i64 = 10_000;
/// Bonus of a name starting with the query.
pub(super) const PREFIX: i64 = 1_000;
/// Score of a description match, per character of the term.
pub(super) const DESCRIPTION_PER_CHAR: i64 = 8;

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
    /// This thread's matcher scratch space.
    pub(super) static MATCHER: RefCell<Matcher> = RefCell::new(Matcher::new(Config::DEFAULT));
}

/// The score of package `id` for `q`, or `None` when it does not match (with this thread's
/// matcher scratch space).
pub fn score(idx: &SearchIndex, id: usize, q: &Query) -> Option<i64> {
    MATCHER.with(|m| score_with(&mut m.borrow_mut(), idx, id, q))
}

/// Scores `candidates`: every match (in candidate order) and the best `limit` of them, best
/// first, with highlight positions. Large candidate sets are scored on all cores; a scoring
/// thread that panics makes the whole an error, never a shorter answer.
pub fn rank(
    idx: &SearchIndex,
    q: &Query,
    candidates: impl IntoIterator<Item = usize>,
    limit: usize,
) -> Result<(Vec<usize>, Vec<Hit>), ScanPanicked> {
    let candidates: Vec<usize> = candidates.into_iter().collect();
    let threads = threads_for(candidates.len());
    let by_order = |a: &(i64, usize), b: &(i64, usize)| order((a.0, idx, a.1), (b.0, idx, b.1));
    // Every match of `ids` (in order) and the best `limit` of them.
    let need = q.character_needs();
    let score_all = |ids: &[usize]| -> (Vec<usize>, Vec<(i64, usize)>) {
        let mut scored: Vec<(i64, usize)> = MATCHER.with(|m| {
            let m = &mut m.borrow_mut();
            ids.iter()
                .filter(|&&id| idx.may_match(id, &need))
                .filter_map(|&id| Some((score_with(m, idx, id, q)?, id)))
                .collect()
        });
        let matched = scored.iter().map(|&(_, id)| id).collect();
        top_by(&mut scored, limit, by_order);
        (matched, scored)
    };
    let parts = candidates
        .chunks(candidates.len().div_ceil(threads).max(1))
        .collect();
    let (mut matched, mut scored) = (Vec::new(), Vec::new());
    for (m, best) in on_cores(parts, &score_all)? {
        matched.extend(m);
        scored.extend(best);
    }
    top_by(&mut scored, limit, by_order);
    Ok(MATCHER.with(|m| {
        let m = &mut m.borrow_mut();
        let hits = scored
            .into_iter()
            .map(|(score, id)| Hit {
                id,
                score,
                indices: indices_with(m, idx, id, q),
            })
            .collect();
        (matched, hits)
    }))
}

/// A scored package: its score, the index holding it and its id there.
pub(super) type Scored<'a> = (i64, &'a SearchIndex, usize);

/// The one order of results, in every face (the workbench's filter, the service's scan, the
/// CLI): score, highest first; then shorter names; then names (their first eight bytes as one
/// integer, so most ties never read a string: a scan orders hundreds of hits, and their text
/// is cache misses); then [`tie_key`]; then id.
#[inline]
pub(super) fn order(a: Scored<'_>, b: Scored<'_>) -> std::cmp::Ordering {
    let head = |(_, idx, id): Scored<'_>| {
        let h = &idx.heads[id];
        (h.len, h.prefix)
    };
    b.0.cmp(&a.0)
        .then_with(|| head(a).cmp(&head(b)))
        .then_with(|| tie_key(a.1, a.2).cmp(&tie_key(b.1, b.2)))
        .then(a.2.cmp(&b.2))
}

/// The order of results of one score and name length, in every face: by name, then by
/// organisation (each lower-cased, then as written).
pub(super) type TieKey<'a> = (&'a str, &'a str, &'a str, &'a str);

pub(super) fn tie_key(idx: &SearchIndex, id: usize) -> TieKey<'_> {
    (
        idx.lower_name(id),
        idx.at(idx.org_entry(id).lower),
        idx.name(id),
        idx.org(id),
    )
}

/// Keeps the best `limit` of `v` by `key` (smallest first), sorted.
pub(super) fn top<T, K: Ord>(v: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> K) {
    top_by(v, limit, |a, b| key(a).cmp(&key(b)));
}

/// Keeps the best `limit` of `v` by `order` (least first), sorted.
pub(super) fn top_by<T>(
    v: &mut Vec<T>,
    limit: usize,
    order: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    if limit == 0 {
        v.clear();
        return;
    }
    if v.len() > limit {
        v.select_nth_unstable_by(limit - 1, &order);
        v.truncate(limit);
    }
    v.sort_unstable_by(order);
}

pub(super) fn score_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Option<i64> {
    score_filtered(m, idx, id, q, true, None)
}

/// Whether the name of package `id` may match term `t` (`filter` false: always).
pub(super) fn name_may(idx: &SearchIndex, id: usize, t: &Term, filter: bool) -> bool {
    !filter || covers(idx.chars[id].name, t.name_chars)
}

/// Whether the description of package `id` may contain term `t`'s text (`filter` false:
/// always).
pub(super) fn text_may(idx: &SearchIndex, id: usize, t: &Term, filter: bool) -> bool {
    !filter
        || (covers(idx.chars[id].description, t.text_chars)
            && (0..PAIR_WORDS).all(|w| covers(idx.pairs[id][w], t.text_pairs[w])))
}

/// The score of package `id` (`None`: no match). `filter`: whether the character filters
/// may skip the matcher; `names`: the terms whose name may match, when the columns told
/// ([`Columns::candidates`]).
pub(super) fn score_filtered(
    m: &mut Matcher,
    idx: &SearchIndex,
    id: usize,
    q: &Query,
    filter: bool,
    names: Option<u64>,
) -> Option<i64> {
    if q.terms.is_empty() {
        return Some(0);
    }
    let mut buf = Vec::new();
    let mut total = 0i64;
    let mut k = 0;
    for t in &q.terms {
        let mut s = 0i64;
        if let Some(o) = &t.org {
            s += i64::from(o.score(Utf32Str::new(idx.org(id), &mut buf), m)?);
        }
        let named = named(names, t, &mut k).filter(|_| filter);
        let name = t.name.as_ref().map(|a| {
            if named.unwrap_or_else(|| name_may(idx, id, t, filter)) {
                a.score(Utf32Str::new(idx.name(id), &mut buf), m)
                    .map(|n| 2 * i64::from(n))
            } else {
                None
            }
        });
        match (name, &t.text) {
            (None, _) => {}
            (Some(Some(n)), None) => s += n,
            // The name holds the term as typed: above anything else the term may match.
            (Some(Some(n)), Some((_, finder)))
                if t.holds(&idx.heads[id], || {
                    finder.find(idx.lower_name(id).as_bytes()).is_some()
                }) =>
            {
                s += t.word + n
            }
            (Some(name), Some(_)) => {
                s += name.max(text_score(idx, id, t, filter, name.unwrap_or(0)))?;
            }
            (Some(None), None) => return None,
        }
        total += s;
    }
    // The lower-cased name (and org) are read only when they may earn a bonus: a name
    // starting with the query, or `org/name` for a query with a `/`.
    if q.may_start(&idx.heads[id]) {
        let name = idx.lower_name(id);
        if name == q.whole {
            return Some(total + EXACT);
        } else if name.starts_with(&q.whole) {
            return Some(total + PREFIX);
        }
    }
    if let Some((org, name)) = &q.org_name
        && idx.lower_name(id) == name
        && idx.at(idx.org_entry(id).lower) == org
    {
        total += EXACT;
    }
    if q.slash {
        let name = idx.lower_name(id);
        let org = idx.at(idx.org_entry(id).lower);
        let is_full = q.whole.len() == org.len() + 1 + name.len()
            && q.whole.as_bytes()[org.len()] == b'/'
            && q.whole.starts_with(org)
            && q.whole.ends_with(name);
        if is_full {
            total += EXACT;
        }
    }
    Some(total)
}

/// The score of term `t` (without `/`) in the organisation or description of package `id`:
/// [`Term::word`] when it names the organisation or is a whole word of the description,
/// [`DESCRIPTION_PER_CHAR`] per character when the description holds it inside a word.
/// `None` when neither holds it, or when only a score of at most `beaten` could be found
/// there (so the description is read only when it may raise the term's score). `filter`:
/// whether the character filters may skip reading it ([`text_may`]).
pub(super) fn text_score(
    idx: &SearchIndex,
    id: usize,
    t: &Term,
    filter: bool,
    beaten: i64,
) -> Option<i64> {
    let (_, finder) = t.text.as_ref()?;
    if t.names_org(idx, id) {
        return Some(t.word);
    }
    let inside = t.inside;
    let whole = t.may_be_whole(idx, id, filter);
    if (!whole && inside <= beaten) || !text_may(idx, id, t, filter) {
        return None;
    }
    let text = idx.lower_description(id).as_bytes();
    if !whole {
        return finder.find(text).map(|_| inside);
    }
    let mut found = false;
    for at in finder.find_iter(text) {
        if whole_word(text, at, finder.needle().len()) {
            return Some(t.word);
        }
        found = true;
    }
    found.then_some(inside)
}

/// Whether `text[at..at + len]` is not part of a longer word: a letter or digit (or any
/// non-ASCII character) neither before it continues its first character nor after it its
/// last.
pub(super) fn whole_word(text: &[u8], at: usize, len: usize) -> bool {
    let end = at + len;
    let starts = at == 0 || !inner(text[at - 1]) || !inner(text[at]);
    let ends = end == text.len() || !inner(text[end]) || !inner(text[end - 1]);
    starts && ends
}

pub(super) fn indices_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Vec<usize> {
    let name_at = idx.org_entry(id).chars + 1;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut chars = Vec::new();
    for t in &q.terms {
        if let Some(o) = &t.org {
            buf.clear();
            o.indices(Utf32Str::new(idx.org(id), &mut chars), m, &mut buf);
            out.extend(buf.iter().map(|&i| i as usize));
        }
        if let Some(n) = &t.name {
            buf.clear();
            if n.indices(Utf32Str::new(idx.name(id), &mut chars), m, &mut buf)
                .is_some()
            {
                out.extend(buf.iter().map(|&i| name_at + i as usize));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}
