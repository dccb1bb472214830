//! Suggestions: the names nearest to a query nothing matched

use super::*;

/// How many names a search nothing matched suggests, at most.
pub const SUGGESTIONS: usize = 3;

/// The largest edit distance a suggestion may be from the query (cargo's rule, a third of
/// the query's length, at least 1, capped here).
pub(super) const MAX_DISTANCE: usize = 3;

/// A query nothing matched, as [`suggest`] compares it: the name it asked for, and the
/// organisation when it named one (`org/name`, or the two terms `org name`), lower-cased.
pub(super) struct Near {
    pub(super) org: Option<(Vec<char>, usize)>,
    pub(super) name: Vec<char>,
    /// [`char_mask`] of the name.
    pub(super) mask: u64,
    /// The largest distance of the name.
    pub(super) max: usize,
}

impl Near {
    pub(super) fn parse(query: &str) -> Option<Near> {
        let whole = query.trim().to_lowercase();
        let terms: Vec<&str> = whole.split_whitespace().collect();
        let (org, name) = match terms[..] {
            [t] => match t.split_once('/') {
                Some((o, n)) => ((!o.is_empty()).then_some(o), n),
                None => (None, t),
            },
            [o, n] if !whole.contains('/') => (Some(o), n),
            _ => return None,
        };
        let largest = |s: &[char]| (s.len().max(3) / 3).min(MAX_DISTANCE);
        let name: Vec<char> = name.chars().collect();
        (!name.is_empty()).then(|| Near {
            org: org.map(|o| {
                let o: Vec<char> = o.chars().collect();
                let max = largest(&o);
                (o, max)
            }),
            mask: char_mask(name.iter().collect::<String>().as_bytes()),
            max: largest(&name),
            name,
        })
    }
}

/// The packages of `indexes` whose names are nearest to `query` by edit distance (optimal
/// string alignment: insertions, deletions, substitutions and swaps of adjacent characters
/// each count one; case does not matter), at most [`SUGGESTIONS`], nearest first, then in
/// the order of results: `(position in indexes, id)`. A query `org/name` (or `org name`)
/// asks for names near `name` in organisations near `org`. A name is compared only within
/// a third of the query's length (at most [`MAX_DISTANCE`]), and only when its characters
/// allow it (each character one has and the other lacks costs an edit): a pass over 16
/// bytes per package, and the distance of the few names that pass.
pub fn suggest(indexes: &[&SearchIndex], query: &str) -> Vec<(usize, usize)> {
    let Some(near) = Near::parse(query) else {
        return Vec::new();
    };
    let mut found: Vec<(usize, usize, usize)> = Vec::new();
    let mut scratch = Vec::new();
    for (i, idx) in indexes.iter().enumerate() {
        // Per organisation: its distance, when within bounds (`None`: any organisation).
        let orgs: Option<Vec<Option<usize>>> = near.org.as_ref().map(|(o, max)| {
            idx.orgs
                .iter()
                .map(|e| {
                    let lower: Vec<char> = idx.at(e.lower).chars().collect();
                    distance(o, &lower, *max, &mut scratch)
                })
                .collect()
        });
        if orgs.as_ref().is_some_and(|d| d.iter().all(Option::is_none)) {
            continue;
        }
        for (id, c) in idx.chars.iter().enumerate() {
            let missing = (near.mask & !c.name).count_ones() as usize;
            let extra = (c.name & !near.mask).count_ones() as usize;
            if missing > near.max || (c.name != u64::MAX && extra > near.max) {
                continue;
            }
            let org = match &orgs {
                Some(d) => match d[idx.entries[id].org as usize] {
                    Some(d) => d,
                    None => continue,
                },
                None => 0,
            };
            let lower = idx.lower_name(id);
            if lower.is_ascii() && lower.len().abs_diff(near.name.len()) > near.max {
                continue;
            }
            let lower: Vec<char> = lower.chars().collect();
            if let Some(d) = distance(&near.name, &lower, near.max, &mut scratch) {
                found.push((org + d, i, id));
            }
        }
    }
    let key = |&(d, i, id): &(usize, usize, usize)| {
        let idx = indexes[i];
        (d, idx.heads[id].len, idx.heads[id].prefix, tie_key(idx, id))
    };
    top(&mut found, SUGGESTIONS, key);
    found.into_iter().map(|(_, i, id)| (i, id)).collect()
}

/// The optimal string alignment distance of `a` and `b` when it is at most `max`.
/// `rows`: scratch space.
pub(super) fn distance(a: &[char], b: &[char], max: usize, rows: &mut Vec<usize>) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let w = b.len() + 1;
    rows.clear();
    rows.resize(3 * w, 0);
    // Rows i-2, i-1 and i, in turn.
    let (mut two, mut one, mut cur) = (0, w, 2 * w);
    for j in 0..w {
        rows[one + j] = j;
    }
    for i in 1..=a.len() {
        rows[cur] = i;
        let mut least = i;
        for j in 1..w {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (rows[one + j] + 1)
                .min(rows[cur + j - 1] + 1)
                .min(rows[one + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(rows[two + j - 2] + 1);
            }
            rows[cur + j] = v;
            least = least.min(v);
        }
        if least > max {
            return None;
        }
        (two, one, cur) = (one, cur, two);
    }
    let d = rows[one + b.len()];
    (d <= max).then_some(d)
}
