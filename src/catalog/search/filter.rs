//! The workbench's per-keystroke [`Filter`].

use super::*;

/// The workbench's per-keystroke filter over one index: when a query extends the previous
/// one, only the previous matches are searched.
#[derive(Debug, Default)]
pub struct Filter {
    pub(super) index: Arc<SearchIndex>,
    pub(super) query: String,
    /// Every id matching `query`, in index order.
    pub(super) matched: Vec<usize>,
    /// The best matches, best first, at most [`DISPLAY_CAP`].
    pub(super) hits: Vec<Hit>,
    /// When nothing matches a query: the ids of the nearest names ([`suggest`]).
    pub(super) suggestions: Vec<usize>,
}

impl Filter {
    pub fn new(index: Arc<SearchIndex>) -> Filter {
        let mut f = Filter {
            matched: (0..index.len()).collect(),
            index,
            query: String::new(),
            hits: Vec::new(),
            suggestions: Vec::new(),
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

    /// When nothing matches the query: the ids of the packages whose names are nearest to
    /// it ([`suggest`]), nearest first; else empty.
    pub fn suggestions(&self) -> &[usize] {
        &self.suggestions
    }

    /// Filters for `query`.
    pub fn set_query(&mut self, query: &str) {
        if query == self.query {
            return;
        }
        let (old, new) = (Query::parse(&self.query), Query::parse(query));
        self.query = query.to_string();
        self.suggestions.clear();
        if new.is_empty() {
            self.matched = (0..self.index.len()).collect();
            self.hits = first_hits(&self.matched);
            return;
        }
        // A term naming an organisation matches packages the shorter term did not.
        let candidates = if new.narrows(&old) && !self.index.names_an_org(&new) {
            std::mem::take(&mut self.matched)
        } else {
            (0..self.index.len()).collect()
        };
        // A scoring thread that panicked is a bug: the workbench fails as a scan on this
        // thread would, rather than showing the other threads' matches as the answer.
        let (matched, hits) =
            rank(&self.index, &new, candidates, DISPLAY_CAP).unwrap_or_else(|e| panic!("{e}"));
        self.matched = matched;
        self.hits = hits;
        if self.matched.is_empty() {
            self.suggestions = suggest(&[&*self.index], query)
                .into_iter()
                .map(|(_, id)| id)
                .collect();
        }
    }
}

pub(super) fn first_hits(matched: &[usize]) -> Vec<Hit> {
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
