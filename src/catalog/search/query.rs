//! A query parsed into terms, and what each term needs of a package (characters, pairs,
//! names) before it is scored, with its score bound.

use super::*;

/// One whitespace-separated term of a query.
pub(super) struct Term {
    /// Fuzzy pattern for the organisation (`org/…` terms only; `None`: any org).
    pub(super) org: Option<Atom>,
    /// Fuzzy pattern for the name (`None`: any name).
    pub(super) name: Option<Atom>,
    /// The characters a name needs to match `name` (0: no filter).
    pub(super) name_chars: u64,
    /// Lower-cased term (terms without `/` only: it may also be held by the name as typed,
    /// name the organisation, or occur in the description), with its searcher.
    pub(super) text: Option<(usize, memchr::memmem::Finder<'static>)>,
    /// The characters and pairs a description (with its organisation) needs to contain
    /// `text`.
    pub(super) text_chars: u64,
    pub(super) text_pairs: [u64; PAIR_WORDS],
    /// [`word_bit`] of the first word of `text` (0: it has none): a description holding
    /// `text` as a whole word has it in its [`word_mask`].
    pub(super) text_word: u64,
    /// The score of a description holding `text` inside a word ([`DESCRIPTION_PER_CHAR`]
    /// per character).
    pub(super) inside: i64,
    /// Score bounds: of the org pattern; of the name pattern on any name and on a plain
    /// name that does not start with `first` (the pattern's first character, lower-cased
    /// ASCII; 0: none).
    pub(super) org_bound: i64,
    pub(super) name_bound: i64,
    pub(super) first: u8,
    /// Per character of the name pattern (ASCII only; else empty): its [`char_bit`] and the
    /// [`pair_slot`] of it after the previous one.
    pub(super) needle: Vec<(u8, usize, u32)>,
    /// `W(n)` of the module rules (terms without `/`; else 0): the score of a whole-word
    /// description match or of the organisation's name, and the bonus of a name holding
    /// the term. Above twice any fuzzy name score of the term (`2 * name_bound`).
    pub(super) word: i64,
}

impl Term {
    pub(super) fn new(
        org: Option<Atom>,
        name: Option<Atom>,
        name_chars: u64,
        text: Option<(usize, memchr::memmem::Finder<'static>)>,
    ) -> Term {
        let chars = |a: &Option<Atom>| a.as_ref().map_or(0, |a| a.needle_text().len() as i64);
        let first = name
            .as_ref()
            .and_then(|a| a.needle_text().chars().next())
            .filter(char::is_ascii)
            .map_or(0, |c| c.to_ascii_lowercase() as u8);
        let name_bound = fuzzy_bound(chars(&name), BONUS_MAX);
        let (text_chars, text_pairs, word) = match &text {
            Some((n, finder)) => {
                let (c, p) = char_and_pair_masks(finder.needle());
                (c, p, 2 * name_bound + DESCRIPTION_PER_CHAR * *n as i64)
            }
            None => (0, [0; PAIR_WORDS], 0),
        };
        let text_word = text.as_ref().map_or(0, |(_, f)| {
            f.needle()
                .split(|&b| !inner(b))
                .find(|w| !w.is_empty())
                .map_or(0, word_bit)
        });
        let inside = text
            .as_ref()
            .map_or(0, |(n, _)| DESCRIPTION_PER_CHAR * *n as i64);
        let mut needle = Vec::new();
        if let Some(a) = &name
            && a.needle_text().is_ascii()
        {
            let mut prev = None;
            for c in a.needle_text().chars() {
                let bit = CHAR_BITS[usize::from(c.to_ascii_lowercase() as u8)];
                let (word, pair) = prev.map_or((0, 0), |p| pair_slot(p, u32::from(bit)));
                needle.push((bit, word, pair));
                prev = Some(u32::from(bit));
            }
        }
        Term {
            org_bound: fuzzy_bound(chars(&org), BONUS_MAX),
            name_bound,
            first,
            needle,
            word,
            org,
            name,
            name_chars,
            text,
            text_chars,
            text_pairs,
            text_word,
            inside,
        }
    }

    /// The most this term can score on any package.
    pub(super) fn most(&self) -> i64 {
        self.org_bound + 2 * self.name_bound + self.word
    }

    /// At least the score of this term on package `id` of `idx` (whose [`Head`] is `head`):
    /// what its name could earn (nothing when it lacks a character of the pattern; the
    /// `word` bonus only when it may hold the term) or else its description or organisation.
    /// `named`: whether the name may match, when the columns told.
    pub(super) fn bound(
        &self,
        idx: &SearchIndex,
        id: usize,
        head: &Head,
        named: Option<bool>,
    ) -> i64 {
        let name = if self.name.is_none() || !named.unwrap_or_else(|| name_may(idx, id, self, true))
        {
            0
        } else if head.first == 0 || self.needle.is_empty() {
            2 * self.name_bound + self.word
        } else {
            let (fuzzy, holds) = self.name_bound_on(head);
            2 * fuzzy + if holds { self.word } else { 0 }
        };
        // The description's pair sets are read only when they could raise the bound: a
        // description or organisation scores at most `word`.
        let text = if self.word > name && text_may(idx, id, self, true) {
            if self.may_be_whole(idx, id, true) {
                self.word
            } else {
                self.inside
            }
        } else {
            0
        };
        self.org_bound + name.max(text)
    }

    /// Whether the term (without `/`) is the name of package `id`'s organisation.
    pub(super) fn names_org(&self, idx: &SearchIndex, id: usize) -> bool {
        let Some((_, finder)) = &self.text else {
            return false;
        };
        let lower = idx.org_entry(id).lower;
        lower.len == finder.needle().len()
            && &idx.text.as_bytes()[lower.start..lower.start + lower.len] == finder.needle()
    }

    /// Whether the term may score [`Term::word`] on package `id` outside its name: it names
    /// the organisation, or the description's [`word_mask`] allows it as a whole word
    /// (`filter` false: always).
    pub(super) fn may_be_whole(&self, idx: &SearchIndex, id: usize, filter: bool) -> bool {
        !filter
            || self.text_word == 0
            || idx.words[id] & self.text_word != 0
            || self.names_org(idx, id)
    }

    /// Whether a name with `head` that the name pattern matched holds the term as typed:
    /// a plain name matched by one ASCII character does; one lacking an adjacent pair of
    /// the term does not; else `find` tells (the name is read only then).
    pub(super) fn holds(&self, head: &Head, find: impl FnOnce() -> bool) -> bool {
        if head.first == 0 || self.needle.is_empty() {
            return find();
        }
        self.needle[1..]
            .iter()
            .all(|&(_, word, pair)| head.pairs[word] >> pair & 1 == 1)
            && (self.needle.len() == 1 || find())
    }

    /// At least the fuzzy score of the name pattern on a plain name with `head`, and whether
    /// the name may hold the pattern as typed (every adjacent pair of it occurs).
    pub(super) fn name_bound_on(&self, head: &Head) -> (i64, bool) {
        let (bit, _, _) = self.needle[0];
        // The run's bonus: the first character at the name's start earns the most.
        let mut run = if head.first == self.first {
            BONUS_MAX
        } else {
            head.bonus(bit)
        };
        let mut score = MATCH + 2 * run;
        let mut holds = true;
        for &(bit, word, pair) in &self.needle[1..] {
            let own = head.bonus(bit);
            if head.pairs[word] >> pair & 1 == 1 {
                run = run.max(own).max(BONUS_RUN);
                score += MATCH + run;
            } else {
                run = own;
                score += MATCH + own - GAP;
                holds = false;
            }
        }
        (score, holds)
    }
}

/// The characters a name needs to match the fuzzy pattern `p` (none when `p` is not ASCII:
/// the matcher may fold it).
pub(super) fn name_filter(p: &str) -> u64 {
    if p.is_ascii() {
        char_mask(p.to_ascii_lowercase().as_bytes())
    } else {
        0
    }
}

/// Whether the name may match term `t`, when the columns told (`names`, whose bit `k` is the
/// `k`-th term with a name pattern; `k` counts them).
pub(super) fn named(names: Option<u64>, t: &Term, k: &mut usize) -> Option<bool> {
    t.name.as_ref()?;
    *k += 1;
    names.filter(|_| *k <= 64).map(|n| n >> (*k - 1) & 1 == 1)
}

/// What one term needs of a package: the characters of its name, or else (when the term may
/// match the description) the characters and character pairs of its description.
pub(super) type Need = (u64, Option<(u64, [u64; PAIR_WORDS])>);

/// A parsed query.
pub struct Query {
    pub(super) raw: String,
    /// The whole query, trimmed and lower-cased (for the exact and prefix bonuses).
    pub(super) whole: String,
    /// [`prefix_key`] of `whole`.
    pub(super) whole_key: (u64, u64),
    /// `whole` holds a `/` (so `org/name` may equal it).
    pub(super) slash: bool,
    /// One term, ASCII without `/`: every name starting with it matches, and the prefix
    /// pass applies ([`prefix_pass`]).
    pub(super) by_prefix: bool,
    /// Two terms without `/`, lower-cased: `org name` naming a package earns [`EXACT`], as
    /// `org/name` does.
    pub(super) org_name: Option<(String, String)>,
    /// At least the score of a package whose name does not start with `whole` (without the
    /// exact and prefix bonuses), when `whole` holds no `/`.
    pub(super) other_bound: i64,
    pub(super) terms: Vec<Term>,
}

pub(super) fn atom(pattern: &str) -> Atom {
    Atom::new(
        pattern,
        CaseMatching::Ignore,
        Normalization::Smart,
        AtomKind::Fuzzy,
        false,
    )
}

impl Query {
    pub fn parse(query: &str) -> Query {
        let terms: Vec<Term> = query
            .split_whitespace()
            .map(|t| match t.split_once('/') {
                Some((o, n)) => Term::new(
                    (!o.is_empty()).then(|| atom(o)),
                    (!n.is_empty()).then(|| atom(n)),
                    name_filter(n),
                    None,
                ),
                None => {
                    let lower = t.to_lowercase();
                    Term::new(
                        None,
                        Some(atom(t)),
                        name_filter(t),
                        Some((
                            lower.chars().count(),
                            memchr::memmem::Finder::new(lower.as_bytes()).into_owned(),
                        )),
                    )
                }
            })
            .collect();
        let whole = query.trim().to_lowercase();
        let slash = whole.contains('/');
        let by_prefix = terms.len() == 1 && !slash && whole.is_ascii();
        let other_bound = terms.iter().map(Term::most).sum();
        let org_name = match whole.split_whitespace().collect::<Vec<_>>()[..] {
            [org, name] if !slash => Some((org.to_string(), name.to_string())),
            _ => None,
        };
        Query {
            raw: query.to_string(),
            whole_key: prefix_key(whole.as_bytes()),
            whole,
            slash,
            by_prefix,
            org_name,
            other_bound,
            terms,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Per term that constrains the name: the characters its name needs, and those its
    /// description needs when the term may match there instead.
    pub(super) fn character_needs(&self) -> Vec<Need> {
        self.terms
            .iter()
            .filter(|t| t.name.is_some())
            .map(|t| {
                let text = t.text.as_ref().map(|_| (t.text_chars, t.text_pairs));
                (t.name_chars, text)
            })
            .collect()
    }

    /// At least the score of package `id` of `idx`, without reading its text. `names`: the
    /// terms whose name may match, when the columns told ([`Columns::candidates`]).
    pub(super) fn bound(&self, idx: &SearchIndex, id: usize, names: Option<u64>) -> i64 {
        let head = &idx.heads[id];
        // The exact and prefix bonuses need a name starting with the query, or (org/name)
        // one shorter than it.
        let whole = if !self.slash {
            if !self.may_start(head) {
                0
            } else if head.first == 0 || head.len as usize == self.whole.len() {
                EXACT
            } else {
                PREFIX
            }
        } else if head.first != 0
            && self.whole.as_bytes().first() != Some(&head.first)
            && self.whole.len() <= head.len as usize
        {
            0
        } else {
            EXACT
        };
        // `org name`: a name of the second term's length and first byte.
        let whole = match &self.org_name {
            Some((_, name))
                if head.first == 0
                    || (head.len as usize == name.len()
                        && name.as_bytes().first() == Some(&head.first)) =>
            {
                whole.max(EXACT)
            }
            _ => whole,
        };
        let mut k = 0;
        let mut sum = 0;
        for t in &self.terms {
            sum += t.bound(idx, id, head, named(names, t, &mut k));
        }
        whole + sum
    }

    /// Whether the name with `head` may start with the whole query: its first eight bytes
    /// do (all of it, for a query of at most eight bytes).
    pub(super) fn may_start(&self, head: &Head) -> bool {
        let (key, mask) = self.whole_key;
        head.prefix & mask == key
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
