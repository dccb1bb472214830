//! One search for every face: the service, the CLI (`pubdeck search`) and the workbench's
//! per-keystroke filter all rank with [`Searcher`] over a [`SearchIndex`], so the same query
//! orders results the same way everywhere.
//!
//! Rules. The query is split on whitespace into terms; a package matches when every term
//! does, each in the organisation, the name or the description. Case never matters.
//! - A term without `/` matches the name fuzzily (fzf's algorithm, `nucleo-matcher`), names
//!   the organisation (equals it), or occurs in the description (a substring). Of the ways
//!   it matches, the best counts, in four tiers (`n`: the term's length in characters,
//!   `W(n)`: [`Term::word`], more than any fuzzy name score of `n` characters):
//!   1. the name holds the term as it is typed (a prefix, a word or any contiguous part):
//!      `W(n)` + twice the fuzzy score;
//!   2. the term is a whole word of the description, or the organisation's name: `W(n)`;
//!   3. any other fuzzy name match: twice the fuzzy score (below `W(n)`);
//!   4. the description holds the term inside a word: [`DESCRIPTION_PER_CHAR`] × `n`.
//!
//!   So `greets` ranks a package described as "Greets the organisation" above one whose name
//!   merely has g…r…e…e…t…s in order, and below one whose name holds `greets`.
//! - A term with `/` matches the organisation fuzzily with the part before the `/` and the
//!   name with the part after it (an empty part matches anything).
//!
//! A package whose name equals the whole query (or `org/name` does, or the two terms
//! `org name` name it) earns [`EXACT`], a name starting with the whole query [`PREFIX`]. Ties
//! go to the shorter name, then by name and organisation (case-insensitively), in every face.
//! Highlight positions are char indices into `org/name`. A query nothing matches gets the
//! names nearest to it by edit distance instead ([`suggest`]).
//!
//! `nucleo-matcher` was chosen by measurement over `fuzzy-matcher`'s skim v2
//! (docs/decisions/0001-one-matcher-nucleo.md): on 100,000 names skim v2 was 2.4× slower per
//! keystroke at the median and 4.6× at p99.
//!
//! The service keeps one [`SearchIndex`] per catalog in memory ([`SearchCache`]), reloaded when
//! the catalog's `generation` moves on.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use nucleo_matcher::pattern::{Atom, AtomKind, CaseMatching, Normalization};
use nucleo_matcher::{Config, Matcher, Utf32Str};
use sha2::{Digest, Sha256};

use std::path::{Path, PathBuf};

use super::db::{CatalogRow, Db};
use super::index_file;
use super::scan_pool::ScanPool;
use super::{CatalogResult, PackageSummary, SearchAnswer, SearchHit};

/// Results the workbench keeps for display.
pub const DISPLAY_CAP: usize = 500;
/// Candidate count from which a scan is split across the cores.
const PARALLEL_FROM: usize = 20_000;
/// Bonus of an exact name match.
const EXACT: i64 = 10_000;
/// Bonus of a name starting with the query.
const PREFIX: i64 = 1_000;
/// Score of a description match, per character of the term.
const DESCRIPTION_PER_CHAR: i64 = 8;

/// A range of [`SearchIndex::text`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

/// One organisation of an index.
#[derive(Debug, Clone, Copy)]
struct OrgEntry {
    name: Span,
    lower: Span,
    chars: usize,
    /// The characters and pairs of the lower-cased name ([`char_and_pair_masks`]), which
    /// every package's description masks include: a term may name the organisation.
    mask: u64,
    pairs: [u64; PAIR_WORDS],
}

/// One package of an index.
#[derive(Debug, Clone, Copy)]
struct Entry {
    org: u32,
    name: Span,
    lower_name: Span,
    version: Span,
    description: Span,
    lower_description: Span,
}

/// What the prefilters read of one package, kept apart from [`Entry`] so a scan reads 16
/// bytes per package.
#[derive(Debug, Clone, Copy, Default)]
struct Chars {
    /// The characters of the lower-cased name ([`char_mask`]; all bits when not ASCII).
    name: u64,
    /// The characters of the lower-cased description and organisation (a term matches
    /// either, [`text_score`]).
    description: u64,
}

// ---------------------------------------------------------------------------------------------
// Prefilters: a term can match a name only if every character of the term occurs in it, and
// occur in a description only if every character and every pair of adjacent characters of
// the term occur in it. Checking bit sets rejects most packages in a few nanoseconds, before
// the fuzzy matcher or the substring search runs; whatever passes is matched as before, so
// the filters change no result (`prefilters_change_no_result` checks this against the
// unfiltered search).

/// Words of the character-pair bit set.
const PAIR_WORDS: usize = 4;

/// The bit of one (lower-cased) byte.
const fn char_bit(b: u8) -> u8 {
    match b {
        b'a'..=b'z' => b - b'a',
        b'0'..=b'9' => 26 + (b - b'0'),
        b'-' => 36,
        b'.' => 37,
        b'_' => 38,
        b' ' => 39,
        0x80.. => 63,
        other => 40 + other % 23,
    }
}

/// [`char_bit`] of every byte (indexing is cheaper than the match, at 100,000 packages).
static CHAR_BITS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = char_bit(i as u8);
        i += 1;
    }
    t
};

/// The bits of the bytes of `s`.
fn char_mask(s: &[u8]) -> u64 {
    s.iter()
        .fold(0, |m, &b| m | 1u64 << CHAR_BITS[usize::from(b)])
}

/// The bits of the bytes of `s` and of its adjacent pairs of bytes (by their bits), in one
/// pass.
fn char_and_pair_masks(s: &[u8]) -> (u64, [u64; PAIR_WORDS]) {
    let (mut chars, mut pairs) = (0u64, [0u64; PAIR_WORDS]);
    let mut prev: Option<u32> = None;
    for &b in s {
        let c = u32::from(CHAR_BITS[usize::from(b)]);
        chars |= 1u64 << c;
        if let Some(p) = prev {
            let (word, bit) = pair_slot(p, c);
            pairs[word] |= 1u64 << bit;
        }
        prev = Some(c);
    }
    (chars, pairs)
}

/// The word and bit of the pair of character bits `(p, c)` in a pair set.
fn pair_slot(p: u32, c: u32) -> (usize, u32) {
    let h = ((p << 6) | c).wrapping_mul(0x9E37_79B1) >> 24;
    ((h / 64) as usize % PAIR_WORDS, h % 64)
}

/// The first eight bytes of `s` as one big-endian integer (zero-padded), and the mask of the
/// bytes that are `s`'s: `key(name) & mask == key(p)` when `name` starts with the first eight
/// bytes of `p`.
fn prefix_key(s: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s[..n]);
    let mask = if n == 0 { 0 } else { u64::MAX << (8 * (8 - n)) };
    (u64::from_be_bytes(b), mask)
}

/// `have` holds every bit of `need`.
fn covers(have: u64, need: u64) -> bool {
    have & need == need
}

// ---------------------------------------------------------------------------------------------
// Score bounds: a scan for the best `limit` packages need not score a package whose score
// cannot reach the `limit`-th best found so far. The bounds follow nucleo-matcher 0.3.1's
// scoring (`score.rs`, `config.rs` with `Config::DEFAULT`): a matched character earns
// `SCORE_MATCH` plus a bonus of at most `BONUS_BOUNDARY + 2` (after whitespace, or at the
// start of the text), and the first character of the pattern earns its bonus twice. A
// consecutive character earns at most the bonus its run started with. In a *plain* name
// (ASCII, no whitespace, none of the delimiters `/,:;|`) only the first character is preceded
// by "whitespace": a match that does not start there earns at most `BONUS_BOUNDARY` per
// character. Finer, per character of the pattern: a character earns `BONUS_BOUNDARY` only
// where it follows a non-word character (or is one), `BONUS_CAMEL123` only after a lower-case
// letter or a non-digit, and nothing elsewhere; a character can continue a run (keeping the
// run's bonus, at least `BONUS_CONSECUTIVE`) only if it follows the previous one somewhere in
// the name, and otherwise pays at least `PENALTY_GAP_START`. `score_bounds_hold` checks the
// bounds against the matcher on thousands of names; a matcher version that broke them fails
// it.

/// nucleo's `SCORE_MATCH`.
const MATCH: i64 = 16;
/// nucleo's largest bonus (`bonus_boundary_white`).
const BONUS_MAX: i64 = 10;
/// nucleo's largest bonus after the first character of a plain name (`BONUS_BOUNDARY`).
const BONUS_PLAIN: i64 = 8;
/// nucleo's `BONUS_CAMEL123`.
const BONUS_CAMEL: i64 = 5;
/// nucleo's `BONUS_CONSECUTIVE`.
const BONUS_RUN: i64 = 4;
/// nucleo's `PENALTY_GAP_START`.
const GAP: i64 = 3;

/// The largest fuzzy score of a pattern of `n` characters whose bonuses are at most `bonus`.
const fn fuzzy_bound(n: i64, bonus: i64) -> i64 {
    if n == 0 {
        return 0;
    }
    MATCH * n + 2 * bonus + bonus * (n - 1)
}

/// What a scan's score bound reads of one package's name, apart from [`Entry`]: one cache
/// line, so a bound costs at most one miss.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Head {
    /// The first byte of the lower-cased name when the name is plain (see above), else 0
    /// (and the other masks are unused).
    first: u8,
    /// The name's length in bytes (the first tie-break after the score), saturated.
    len: u32,
    /// The characters (by [`char_bit`]) that earn `BONUS_BOUNDARY` somewhere after the first.
    boundary: u64,
    /// The characters that earn `BONUS_CAMEL123` somewhere after the first.
    camel: u64,
    /// The adjacent pairs of the lower-cased name.
    pairs: [u64; PAIR_WORDS],
    /// The first eight bytes of the lower-cased name ([`prefix_key`]), for the prefix pass
    /// and the exact and prefix bonuses.
    prefix: u64,
}

impl Head {
    /// The head of `name`, whose lower-cased form is `lower`.
    fn of(name: &str, lower: &[u8]) -> Head {
        #[derive(PartialEq)]
        enum Class {
            Lower,
            Upper,
            Digit,
            Other,
        }
        let class = |b: u8| match b {
            b'a'..=b'z' => Class::Lower,
            b'A'..=b'Z' => Class::Upper,
            b'0'..=b'9' => Class::Digit,
            _ => Class::Other,
        };
        let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        let prefix = prefix_key(lower).0;
        let bytes = name.as_bytes();
        let plain = name.is_ascii()
            && !bytes
                .iter()
                .any(|b| b.is_ascii_whitespace() || b"/,:;|".contains(b));
        let Some(&first) = bytes.first().filter(|_| plain) else {
            return Head {
                len,
                prefix,
                ..Head::default()
            };
        };
        let (mut boundary, mut camel) = (0u64, 0u64);
        for w in bytes.windows(2) {
            let (prev, this) = (class(w[0]), class(w[1]));
            let bit = 1u64 << CHAR_BITS[usize::from(w[1].to_ascii_lowercase())];
            if this == Class::Other || prev == Class::Other {
                boundary |= bit;
            } else if (prev == Class::Lower && this == Class::Upper)
                || (prev != Class::Digit && this == Class::Digit)
            {
                camel |= bit;
            }
        }
        Head {
            first: first.to_ascii_lowercase(),
            len,
            boundary,
            camel,
            pairs: char_and_pair_masks(lower).1,
            prefix,
        }
    }

    /// The most a character of bit `bit` earns as bonus after the first character.
    fn bonus(&self, bit: u8) -> i64 {
        if self.boundary >> bit & 1 == 1 {
            BONUS_PLAIN
        } else if self.camel >> bit & 1 == 1 {
            BONUS_CAMEL
        } else {
            0
        }
    }
}

/// An immutable index over packages: `(org, name, version, description)` in a fixed order;
/// ids are positions in that order. Every string lives in one buffer, so building an index of
/// 100,000 packages is a handful of allocations, and scoring reads names in place.
#[derive(Default)]
pub struct SearchIndex {
    text: String,
    orgs: Vec<OrgEntry>,
    entries: Vec<Entry>,
    /// Per entry, in the same order.
    chars: Vec<Chars>,
    /// Per entry: the character pairs of the lower-cased description.
    pairs: Vec<[u64; PAIR_WORDS]>,
    /// Per entry: what the score bound reads.
    heads: Vec<Head>,
    /// Per entry: the words of the lower-cased description ([`word_mask`]).
    words: Vec<u64>,
    /// `chars` and `pairs` transposed ([`Columns`]), built for an index a [`ScanSet`] reads
    /// again ([`SearchIndex::build_columns`]).
    columns: std::sync::OnceLock<Columns>,
}

/// The character filters transposed: per character of names, per character of descriptions
/// and per description pair slot, the set of packages that have it, as a bit set over ids.
/// A term's candidates are then the AND of a few sets (a few words per catalog of hundreds
/// of packages) instead of a pass over every package's 48 bytes of masks. One more filter
/// exists only here: per slot of an *ordered* pair of characters ([`order_slot`]), the names
/// holding the first somewhere before the second. A fuzzy pattern needs every pair of its
/// characters in its order, which the characters alone do not tell: on `lang-word-kind`
/// names it leaves a fraction of the candidates.
struct Columns {
    /// Words per set.
    words: usize,
    /// The sets one after the other, each `words` long: [`Columns::NAME`] and
    /// [`Columns::DESCRIPTION`] (by [`char_bit`]), [`Columns::PAIRS`] (by word, then bit of
    /// [`pair_slot`]), [`Columns::ORDER`] (by [`order_slot`]), [`Columns::FIRST`] and
    /// [`Columns::SECOND`] (by [`char_bit`]).
    bits: Vec<u64>,
}

impl Columns {
    const NAME: usize = 0;
    const DESCRIPTION: usize = 64;
    const PAIRS: usize = 128;
    const ORDER: usize = Self::PAIRS + 64 * PAIR_WORDS;
    /// The names by their first and by their second (lower-cased) byte, for the prefix pass.
    const FIRST: usize = Self::ORDER + ORDER_SLOTS;
    const SECOND: usize = Self::FIRST + 64;
    const SETS: usize = Self::SECOND + 64;

    fn of(idx: &SearchIndex) -> Columns {
        let words = idx.len().div_ceil(64);
        let mut bits = vec![0u64; Self::SETS * words];
        for (id, (c, pairs)) in idx.chars.iter().zip(&idx.pairs).enumerate() {
            let (w, bit) = (id / 64, 1u64 << (id % 64));
            // Puts package `id` in set `set`.
            let mut mark = |set: usize| bits[set * words + w] |= bit;
            ones(c.name).for_each(|b| mark(Self::NAME + b));
            ones(c.description).for_each(|b| mark(Self::DESCRIPTION + b));
            for (pw, &p) in pairs.iter().enumerate() {
                ones(p).for_each(|b| mark(Self::PAIRS + 64 * pw + b));
            }
            let name = idx.lower_name(id).as_bytes();
            for (at, b) in [(Self::FIRST, name.first()), (Self::SECOND, name.get(1))] {
                if let Some(&b) = b {
                    mark(at + usize::from(CHAR_BITS[usize::from(b)]));
                }
            }
            // The matcher folds what is not ASCII: such a name is in every order set.
            if !name.is_ascii() {
                (0..ORDER_SLOTS).for_each(|slot| mark(Self::ORDER + slot));
                continue;
            }
            for (i, &a) in name.iter().enumerate() {
                for &b in &name[i + 1..] {
                    mark(
                        Self::ORDER
                            + order_slot(CHAR_BITS[usize::from(a)], CHAR_BITS[usize::from(b)]),
                    );
                }
            }
        }
        Columns { words, bits }
    }

    /// Calls `f` with every package in the sets of `need` (for a query's
    /// [`Query::column_needs`]: a subset of what [`SearchIndex::may_match`] passes, holding
    /// every match), in order, and the terms (bit `t` for `need[t]`, the first 64) whose
    /// name sets hold it: a term whose bit is clear cannot match the name.
    fn candidates(&self, need: &[ColumnNeed], len: usize, f: impl FnMut(usize, u64)) {
        if self.words >= WIDE_WORDS {
            self.candidates_wide(need, len, f);
        } else {
            self.candidates_narrow(need, len, f);
        }
    }

    /// [`Columns::candidates`] one word at a time, reading no more sets of a word once
    /// nothing is left (at 400 catalogs of a few words each, every set word is a cache miss:
    /// the first, most selective, sets decide).
    fn candidates_narrow(&self, need: &[ColumnNeed], len: usize, mut f: impl FnMut(usize, u64)) {
        let words = self.words;
        let terms = need.len().min(64);
        let mut named_by_term = [0u64; 64];
        // `acc` AND the sets' word `w`, stopping once nothing is left.
        let all = |sets: &[u16], w: usize, mut acc: u64| {
            for &s in sets {
                acc &= self.bits[usize::from(s) * words + w];
                if acc == 0 {
                    break;
                }
            }
            acc
        };
        for w in 0..words {
            let mut acc = live_bits(len, w);
            for (t, (name, text)) in need.iter().enumerate() {
                let named = all(name, w, acc);
                if let Some(slot) = named_by_term.get_mut(t) {
                    *slot = named;
                }
                // The description is read only for what the name leaves out.
                acc = match text {
                    Some(text) if named != acc => named | all(text, w, acc & !named),
                    _ => named,
                };
                if acc == 0 {
                    break;
                }
            }
            emit(w, acc, &named_by_term[..terms], &mut f);
        }
    }

    /// [`Columns::candidates`] one set at a time over every word: each set is read from end
    /// to end (a merged index of 100,000 packages has 1,563 words per set), which the
    /// hardware streams, where a word at a time touches a line of every set per word.
    fn candidates_wide(&self, need: &[ColumnNeed], len: usize, mut f: impl FnMut(usize, u64)) {
        let words = self.words;
        let set = |s: u16| &self.bits[usize::from(s) * words..][..words];
        WIDE.with(|scratch| {
            let (acc, named, rest) = &mut *scratch.borrow_mut();
            acc.clear();
            acc.extend((0..words).map(|w| live_bits(len, w)));
            let terms = need.len().min(64);
            named.clear();
            named.resize(terms * words, 0);
            for (t, (name_sets, text)) in need.iter().enumerate() {
                rest.clear();
                rest.extend_from_slice(acc);
                for &s in name_sets {
                    rest.iter_mut().zip(set(s)).for_each(|(a, b)| *a &= b);
                }
                if t < terms {
                    named[t * words..][..words].copy_from_slice(rest);
                }
                match text {
                    // The description for what the name leaves out: `acc` becomes that part,
                    // ANDed with the description's sets, then joined with the named part.
                    Some(text_sets) => {
                        acc.iter_mut().zip(rest.iter()).for_each(|(a, n)| *a &= !n);
                        for &s in text_sets {
                            acc.iter_mut().zip(set(s)).for_each(|(a, b)| *a &= b);
                        }
                        acc.iter_mut().zip(rest.iter()).for_each(|(a, n)| *a |= n);
                    }
                    None => acc.copy_from_slice(rest),
                }
                if acc.iter().all(|&w| w == 0) {
                    return;
                }
            }
            let mut by_term = [0u64; 64];
            for (w, &word) in acc.iter().enumerate().filter(|&(_, &word)| word != 0) {
                for (t, slot) in by_term[..terms].iter_mut().enumerate() {
                    *slot = named[t * words + w];
                }
                emit(w, word, &by_term[..terms], &mut f);
            }
        });
    }

    /// Bytes of the columns of an index of `packages` packages.
    const fn bytes_for(packages: usize) -> usize {
        Self::SETS * packages.div_ceil(64) * 8
    }
}

/// The ids of an index of `len` packages that word `w` of a set covers, as bits.
fn live_bits(len: usize, w: usize) -> u64 {
    match len.saturating_sub(w * 64) {
        n if n >= 64 => !0,
        n => (1u64 << n) - 1,
    }
}

/// Calls `f` with each package of `word` (word `w` of the candidates) and the terms whose
/// name holds it (`named[t]`: word `w` of term `t`'s named set).
fn emit(w: usize, mut word: u64, named: &[u64], f: &mut impl FnMut(usize, u64)) {
    while word != 0 {
        let bit = word.trailing_zeros();
        f(w * 64 + bit as usize, term_bits(named, bit));
        word &= word - 1;
    }
}

/// Sets of at least this many words are read a set at a time ([`Columns::candidates_wide`]).
const WIDE_WORDS: usize = 64;

thread_local! {
    /// [`Columns::candidates_wide`]'s words: the candidates so far, the terms' named sets,
    /// and one term's (kept between scans: no allocation per query).
    static WIDE: RefCell<(Vec<u64>, Vec<u64>, Vec<u64>)> = const {
        RefCell::new((Vec::new(), Vec::new(), Vec::new()))
    };
}

/// Bit `t` set when bit `bit` of `named[t]` is.
fn term_bits(named: &[u64], bit: u32) -> u64 {
    named
        .iter()
        .enumerate()
        .fold(0, |m, (t, &w)| m | ((w >> bit) & 1) << t)
}

/// Slots of the ordered pairs of characters in [`Columns`].
const ORDER_SLOTS: usize = 512;

/// The slot of the ordered pair of character bits `(a, b)` (`a` before `b`).
fn order_slot(a: u8, b: u8) -> usize {
    let key = (u32::from(a) << 6) | u32::from(b);
    (key.wrapping_mul(0x9E37_79B1) >> 23) as usize % ORDER_SLOTS
}

/// The bits set in `mask`, lowest first.
fn ones(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let b = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            b
        })
    })
}

/// A [`Need`] as the [`Columns`] sets to intersect: those of the name, and those of the
/// description when the term may match there.
type ColumnNeed = (Vec<u16>, Option<Vec<u16>>);

impl Query {
    /// Per term that constrains the name ([`Query::character_needs`]), the [`Columns`] sets
    /// its candidates are in: those of its name's characters and of every ordered pair of
    /// them (ASCII patterns), or else those of its description.
    fn column_needs(&self) -> Vec<ColumnNeed> {
        let sets = |at: usize, mask: u64| ones(mask).map(move |b| (at + b) as u16);
        self.terms
            .iter()
            .filter(|t| t.name.is_some())
            .map(|t| {
                // The pairs first: they reject the most.
                let mut name = Vec::new();
                if t.name_chars != 0 {
                    for (i, &(a, _, _)) in t.needle.iter().enumerate() {
                        for &(b, _, _) in &t.needle[i + 1..] {
                            name.push((Columns::ORDER + order_slot(a, b)) as u16);
                        }
                    }
                }
                name.sort_unstable();
                name.dedup();
                name.extend(sets(Columns::NAME, t.name_chars));
                let text = t.text.as_ref().map(|_| {
                    let mut v = Vec::new();
                    for (pw, &p) in t.text_pairs.iter().enumerate() {
                        v.extend(sets(Columns::PAIRS + 64 * pw, p));
                    }
                    v.extend(sets(Columns::DESCRIPTION, t.text_chars));
                    v
                });
                (name, text)
            })
            .collect()
    }
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`SearchIndex`] one package at a time.
#[derive(Default)]
pub struct SearchIndexBuilder {
    idx: SearchIndex,
    org_ids: HashMap<String, u32>,
    last_org: Option<(String, u32)>,
}

impl SearchIndexBuilder {
    pub fn with_capacity(packages: usize, text_bytes: usize) -> SearchIndexBuilder {
        let mut b = SearchIndexBuilder::default();
        b.idx.entries.reserve(packages);
        b.idx.chars.reserve(packages);
        b.idx.pairs.reserve(packages);
        b.idx.heads.reserve(packages);
        b.idx.words.reserve(packages);
        b.idx.text.reserve(text_bytes);
        b
    }

    fn push_str(&mut self, s: &str) -> Span {
        let start = self.idx.text.len();
        self.idx.text.push_str(s);
        Span {
            start,
            len: s.len(),
        }
    }

    /// The span of `s` lower-cased: `same` when lower-casing changes nothing.
    fn push_lower(&mut self, s: &str, same: Span) -> Span {
        if s.is_ascii() {
            if !s.bytes().any(|b| b.is_ascii_uppercase()) {
                return same;
            }
            let start = self.idx.text.len();
            self.idx.text.push_str(s);
            self.idx.text[start..].make_ascii_lowercase();
            return Span {
                start,
                len: s.len(),
            };
        }
        let lower = s.to_lowercase();
        if lower == s {
            return same;
        }
        self.push_str(&lower)
    }

    fn org_id(&mut self, org: &str) -> u32 {
        if let Some((name, id)) = &self.last_org
            && name == org
        {
            return *id;
        }
        let id = match self.org_ids.get(org) {
            Some(&id) => id,
            None => {
                let name = self.push_str(org);
                let lower = self.push_lower(org, name);
                let (mask, pairs) = char_and_pair_masks(self.idx.at(lower).as_bytes());
                self.idx.orgs.push(OrgEntry {
                    name,
                    lower,
                    chars: org.chars().count(),
                    mask,
                    pairs,
                });
                let id = u32::try_from(self.idx.orgs.len() - 1).unwrap_or(u32::MAX);
                self.org_ids.insert(org.to_string(), id);
                id
            }
        };
        self.last_org = Some((org.to_string(), id));
        id
    }

    pub fn push(&mut self, org: &str, name: &str, version: &str, description: &str) {
        let org = self.org_id(org);
        let name_span = self.push_str(name);
        let lower_name = self.push_lower(name, name_span);
        let version = self.push_str(version);
        let description_span = self.push_str(description);
        let lower_description = self.push_lower(description, description_span);
        // The fuzzy matcher folds accents: a name that is not ASCII is never filtered out.
        let name_chars = if name.is_ascii() {
            char_mask(self.idx.at(lower_name).as_bytes())
        } else {
            u64::MAX
        };
        let lower = self.idx.at(lower_description).as_bytes();
        let (mut description, mut pairs) = char_and_pair_masks(lower);
        let words = word_mask(lower);
        let o = &self.idx.orgs[org as usize];
        description |= o.mask;
        pairs.iter_mut().zip(o.pairs).for_each(|(p, q)| *p |= q);
        self.idx.chars.push(Chars {
            name: name_chars,
            description,
        });
        self.idx.pairs.push(pairs);
        self.idx.words.push(words);
        let head = Head::of(name, self.idx.at(lower_name).as_bytes());
        self.idx.heads.push(head);
        self.idx.entries.push(Entry {
            org,
            name: name_span,
            lower_name,
            version,
            description: description_span,
            lower_description,
        });
    }

    pub fn finish(mut self) -> SearchIndex {
        self.idx.text.shrink_to_fit();
        self.idx
    }
}

impl SearchIndex {
    /// Indexes `(org, name, description)` entries.
    pub fn new<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) -> SearchIndex {
        let mut b = SearchIndexBuilder::default();
        for (org, name, description) in entries {
            b.push(org, name, "", description);
        }
        b.finish()
    }

    /// Indexes catalog package summaries.
    pub fn of_packages(packages: &[PackageSummary]) -> SearchIndex {
        let mut b = SearchIndexBuilder::with_capacity(packages.len(), packages.len() * 96);
        for p in packages {
            b.push(&p.org, &p.package, &p.latest_version, &p.description);
        }
        b.finish()
    }

    /// The indexes one after the other (ids of `parts[1]` follow those of `parts[0]`, …).
    /// Copies the text buffers whole: a few milliseconds for 100,000 packages, against tens
    /// for indexing them again.
    pub fn concat(parts: &[&SearchIndex]) -> SearchIndex {
        let mut out = SearchIndex {
            text: String::with_capacity(parts.iter().map(|p| p.text.len()).sum()),
            orgs: Vec::with_capacity(parts.iter().map(|p| p.orgs.len()).sum()),
            entries: Vec::with_capacity(parts.iter().map(|p| p.entries.len()).sum()),
            chars: Vec::with_capacity(parts.iter().map(|p| p.chars.len()).sum()),
            pairs: Vec::with_capacity(parts.iter().map(|p| p.pairs.len()).sum()),
            heads: Vec::with_capacity(parts.iter().map(|p| p.heads.len()).sum()),
            words: Vec::with_capacity(parts.iter().map(|p| p.words.len()).sum()),
            ..SearchIndex::default()
        };
        for part in parts {
            let (text_at, org_at) = (out.text.len(), out.orgs.len());
            let shift = |s: Span| Span {
                start: s.start + text_at,
                len: s.len,
            };
            out.text.push_str(&part.text);
            out.orgs.extend(part.orgs.iter().map(|o| OrgEntry {
                name: shift(o.name),
                lower: shift(o.lower),
                ..*o
            }));
            let org_at = u32::try_from(org_at).unwrap_or(u32::MAX);
            out.entries.extend(part.entries.iter().map(|e| Entry {
                org: e.org.saturating_add(org_at),
                name: shift(e.name),
                lower_name: shift(e.lower_name),
                version: shift(e.version),
                description: shift(e.description),
                lower_description: shift(e.lower_description),
            }));
            out.chars.extend_from_slice(&part.chars);
            out.pairs.extend_from_slice(&part.pairs);
            out.heads.extend_from_slice(&part.heads);
            out.words.extend_from_slice(&part.words);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Calls `f` with every package that passes the character filters of every term, in
    /// index order: by its [`Columns`] when they are built, with the terms whose name they
    /// hold ([`Columns::candidates`]), else with `None`.
    fn for_candidates(
        &self,
        need: &[Need],
        columns: &[ColumnNeed],
        mut f: impl FnMut(usize, Option<u64>),
    ) {
        match self.columns() {
            Some(cols) => cols.candidates(columns, self.len(), |id, names| f(id, Some(names))),
            None => self.candidates(need).for_each(|id| f(id, None)),
        }
    }

    /// Asks for the first line of package `id`'s name ahead of reading it ([`prefetch`]).
    fn prefetch_name(&self, id: usize) {
        if let Some(b) = self.text.as_bytes().get(self.entries[id].name.start) {
            prefetch(b);
        }
    }

    /// Builds this index's [`Columns`] (once).
    fn build_columns(&self) {
        self.columns.get_or_init(|| Columns::of(self));
    }

    /// About the heap memory of this index, without its columns.
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.text.capacity()
            + self.orgs.capacity() * size_of::<OrgEntry>()
            + self.entries.capacity() * size_of::<Entry>()
            + self.chars.capacity() * size_of::<Chars>()
            + self.pairs.capacity() * size_of::<[u64; PAIR_WORDS]>()
            + self.heads.capacity() * size_of::<Head>()
            + self.words.capacity() * size_of::<u64>()
    }

    /// This index's [`Columns`], once built ([`SearchIndex::build_columns`]).
    fn columns(&self) -> Option<&Columns> {
        self.columns.get()
    }

    /// The packages that pass the character filters of every term (`Query::character_needs`),
    /// in index order: one pass over 16 bytes per package.
    fn candidates<'a>(&'a self, need: &'a [Need]) -> impl Iterator<Item = usize> + 'a {
        (0..self.len()).filter(move |&id| self.may_match(id, need))
    }

    /// Whether package `id` passes the character filters of every term.
    fn may_match(&self, id: usize, need: &[Need]) -> bool {
        let c = &self.chars[id];
        need.iter().all(|(name, text)| {
            covers(c.name, *name)
                || text.as_ref().is_some_and(|(chars, pairs)| {
                    covers(c.description, *chars)
                        && (0..PAIR_WORDS).all(|w| covers(self.pairs[id][w], pairs[w]))
                })
        })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn at(&self, span: Span) -> &str {
        &self.text[span.start..span.start + span.len]
    }

    fn org_entry(&self, id: usize) -> &OrgEntry {
        &self.orgs[self.entries[id].org as usize]
    }

    /// The organisation of package `id`.
    pub fn org(&self, id: usize) -> &str {
        self.at(self.org_entry(id).name)
    }

    /// The name of package `id` (without its organisation).
    pub fn name(&self, id: usize) -> &str {
        self.at(self.entries[id].name)
    }

    /// The latest version of package `id` (empty when the index was built without versions).
    pub fn version(&self, id: usize) -> &str {
        self.at(self.entries[id].version)
    }

    /// The description of package `id`, as given.
    pub fn description(&self, id: usize) -> &str {
        self.at(self.entries[id].description)
    }

    fn lower_name(&self, id: usize) -> &str {
        self.at(self.entries[id].lower_name)
    }

    fn lower_description(&self, id: usize) -> &str {
        self.at(self.entries[id].lower_description)
    }

    /// Whether a term of `q` (without `/`) is the name of an organisation of this index.
    fn names_an_org(&self, q: &Query) -> bool {
        q.terms.iter().any(|t| {
            t.text.as_ref().is_some_and(|(_, f)| {
                self.orgs
                    .iter()
                    .any(|o| self.at(o.lower).as_bytes() == f.needle())
            })
        })
    }

    /// Package `id` as a summary.
    pub fn summary(&self, id: usize) -> PackageSummary {
        let (org, package) = (self.org(id), self.name(id));
        PackageSummary {
            name: format!("{org}/{package}"),
            org: org.to_string(),
            package: package.to_string(),
            latest_version: self.version(id).to_string(),
            description: self.description(id).to_string(),
        }
    }
}

/// One whitespace-separated term of a query.
struct Term {
    /// Fuzzy pattern for the organisation (`org/…` terms only; `None`: any org).
    org: Option<Atom>,
    /// Fuzzy pattern for the name (`None`: any name).
    name: Option<Atom>,
    /// The characters a name needs to match `name` (0: no filter).
    name_chars: u64,
    /// Lower-cased term (terms without `/` only: it may also be held by the name as typed,
    /// name the organisation, or occur in the description), with its searcher.
    text: Option<(usize, memchr::memmem::Finder<'static>)>,
    /// The characters and pairs a description (with its organisation) needs to contain
    /// `text`.
    text_chars: u64,
    text_pairs: [u64; PAIR_WORDS],
    /// [`word_bit`] of the first word of `text` (0: it has none): a description holding
    /// `text` as a whole word has it in its [`word_mask`].
    text_word: u64,
    /// The score of a description holding `text` inside a word ([`DESCRIPTION_PER_CHAR`]
    /// per character).
    inside: i64,
    /// Score bounds: of the org pattern; of the name pattern on any name and on a plain
    /// name that does not start with `first` (the pattern's first character, lower-cased
    /// ASCII; 0: none).
    org_bound: i64,
    name_bound: i64,
    first: u8,
    /// Per character of the name pattern (ASCII only; else empty): its [`char_bit`] and the
    /// [`pair_slot`] of it after the previous one.
    needle: Vec<(u8, usize, u32)>,
    /// `W(n)` of the module rules (terms without `/`; else 0): the score of a whole-word
    /// description match or of the organisation's name, and the bonus of a name holding
    /// the term. Above twice any fuzzy name score of the term (`2 * name_bound`).
    word: i64,
}

impl Term {
    fn new(
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
    fn most(&self) -> i64 {
        self.org_bound + 2 * self.name_bound + self.word
    }

    /// At least the score of this term on package `id` of `idx` (whose [`Head`] is `head`):
    /// what its name could earn (nothing when it lacks a character of the pattern; the
    /// `word` bonus only when it may hold the term) or else its description or organisation.
    /// `named`: whether the name may match, when the columns told.
    fn bound(&self, idx: &SearchIndex, id: usize, head: &Head, named: Option<bool>) -> i64 {
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
    fn names_org(&self, idx: &SearchIndex, id: usize) -> bool {
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
    fn may_be_whole(&self, idx: &SearchIndex, id: usize, filter: bool) -> bool {
        !filter
            || self.text_word == 0
            || idx.words[id] & self.text_word != 0
            || self.names_org(idx, id)
    }

    /// Whether a name with `head` that the name pattern matched holds the term as typed:
    /// a plain name matched by one ASCII character does; one lacking an adjacent pair of
    /// the term does not; else `find` tells (the name is read only then).
    fn holds(&self, head: &Head, find: impl FnOnce() -> bool) -> bool {
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
    fn name_bound_on(&self, head: &Head) -> (i64, bool) {
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
fn name_filter(p: &str) -> u64 {
    if p.is_ascii() {
        char_mask(p.to_ascii_lowercase().as_bytes())
    } else {
        0
    }
}

/// Whether the name may match term `t`, when the columns told (`names`, whose bit `k` is the
/// `k`-th term with a name pattern; `k` counts them).
fn named(names: Option<u64>, t: &Term, k: &mut usize) -> Option<bool> {
    t.name.as_ref()?;
    *k += 1;
    names.filter(|_| *k <= 64).map(|n| n >> (*k - 1) & 1 == 1)
}

/// What one term needs of a package: the characters of its name, or else (when the term may
/// match the description) the characters and character pairs of its description.
type Need = (u64, Option<(u64, [u64; PAIR_WORDS])>);

/// A parsed query.
pub struct Query {
    raw: String,
    /// The whole query, trimmed and lower-cased (for the exact and prefix bonuses).
    whole: String,
    /// [`prefix_key`] of `whole`.
    whole_key: (u64, u64),
    /// `whole` holds a `/` (so `org/name` may equal it).
    slash: bool,
    /// One term, ASCII without `/`: every name starting with it matches, and the prefix
    /// pass applies ([`prefix_pass`]).
    by_prefix: bool,
    /// Two terms without `/`, lower-cased: `org name` naming a package earns [`EXACT`], as
    /// `org/name` does.
    org_name: Option<(String, String)>,
    /// At least the score of a package whose name does not start with `whole` (without the
    /// exact and prefix bonuses), when `whole` holds no `/`.
    other_bound: i64,
    terms: Vec<Term>,
}

fn atom(pattern: &str) -> Atom {
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
    fn character_needs(&self) -> Vec<Need> {
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
    fn bound(&self, idx: &SearchIndex, id: usize, names: Option<u64>) -> i64 {
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
    fn may_start(&self, head: &Head) -> bool {
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
    /// best first, with highlight positions. Large candidate sets are scored on all cores.
    pub fn rank(
        idx: &SearchIndex,
        q: &Query,
        candidates: impl IntoIterator<Item = usize>,
        limit: usize,
    ) -> (Vec<usize>, Vec<Hit>) {
        let candidates: Vec<usize> = candidates.into_iter().collect();
        let threads = threads_for(candidates.len());
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
            top_by(&mut scored, limit, |a, b| rank_order(idx, a, b));
            (matched, scored)
        };
        let parts = candidates
            .chunks(candidates.len().div_ceil(threads).max(1))
            .collect();
        let (mut matched, mut scored) = (Vec::new(), Vec::new());
        for (m, best) in on_cores(parts, &score_all) {
            matched.extend(m);
            scored.extend(best);
        }
        top_by(&mut scored, limit, |a, b| rank_order(idx, a, b));
        MATCHER.with(|m| {
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
        })
    }
}

/// The order of results ([`hit_order`]'s, within one index): score, then shorter names,
/// then names (their first eight bytes as one integer, so most ties never read a string),
/// then [`tie_key`], then index order.
fn rank_order(idx: &SearchIndex, a: &(i64, usize), b: &(i64, usize)) -> std::cmp::Ordering {
    let head = |id: usize| {
        let h = &idx.heads[id];
        (h.len, h.prefix)
    };
    b.0.cmp(&a.0)
        .then_with(|| head(a.1).cmp(&head(b.1)))
        .then_with(|| tie_key(idx, a.1).cmp(&tie_key(idx, b.1)))
        .then(a.1.cmp(&b.1))
}

/// The order of results of one score and name length, in every face: by name, then by
/// organisation (each lower-cased, then as written).
type TieKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn tie_key(idx: &SearchIndex, id: usize) -> TieKey<'_> {
    (
        idx.lower_name(id),
        idx.at(idx.org_entry(id).lower),
        idx.name(id),
        idx.org(id),
    )
}

/// How many threads a scan of `n` candidates is split across.
fn threads_for(n: usize) -> usize {
    if n < PARALLEL_FROM { 1 } else { cores() }
}

/// The threads work split across the machine's cores takes (at most 8).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `items` split into at most `parts` consecutive runs of about equal total `weight` (no run
/// empty; one run when `parts` is 1).
pub(crate) fn even_runs<T>(items: &[T], parts: usize, weight: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let total: usize = items.iter().map(&weight).sum();
    let mut runs = Vec::new();
    let mut from = 0;
    if parts > 1 && total > 0 {
        let mut acc = 0;
        for (i, item) in items.iter().enumerate() {
            acc += weight(item);
            if acc * parts >= total * (runs.len() + 1) {
                runs.push(&items[from..=i]);
                from = i + 1;
            }
        }
    }
    if from < items.len() {
        runs.push(&items[from..]);
    }
    runs
}

/// `f` of each part, in part order: on a thread of its own per part when there are several.
pub(crate) fn on_cores<'a, T: Sync, R: Send + Default>(
    parts: Vec<&'a [T]>,
    f: &(dyn Fn(&'a [T]) -> R + Sync),
) -> Vec<R> {
    if parts.len() <= 1 {
        return parts.into_iter().map(f).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Keeps the best `limit` of `v` by `key` (smallest first), sorted.
fn top<T, K: Ord>(v: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> K) {
    top_by(v, limit, |a, b| key(a).cmp(&key(b)));
}

/// Keeps the best `limit` of `v` by `order` (least first), sorted.
fn top_by<T>(v: &mut Vec<T>, limit: usize, order: impl Fn(&T, &T) -> std::cmp::Ordering) {
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

fn score_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Option<i64> {
    score_filtered(m, idx, id, q, true, None)
}

/// Whether the name of package `id` may match term `t` (`filter` false: always).
fn name_may(idx: &SearchIndex, id: usize, t: &Term, filter: bool) -> bool {
    !filter || covers(idx.chars[id].name, t.name_chars)
}

/// Whether the description of package `id` may contain term `t`'s text (`filter` false:
/// always).
fn text_may(idx: &SearchIndex, id: usize, t: &Term, filter: bool) -> bool {
    !filter
        || (covers(idx.chars[id].description, t.text_chars)
            && (0..PAIR_WORDS).all(|w| covers(idx.pairs[id][w], t.text_pairs[w])))
}

/// The score of package `id` (`None`: no match). `filter`: whether the character filters
/// may skip the matcher; `names`: the terms whose name may match, when the columns told
/// ([`Columns::candidates`]).
fn score_filtered(
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
fn text_score(idx: &SearchIndex, id: usize, t: &Term, filter: bool, beaten: i64) -> Option<i64> {
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
fn whole_word(text: &[u8], at: usize, len: usize) -> bool {
    let end = at + len;
    let starts = at == 0 || !inner(text[at - 1]) || !inner(text[at]);
    let ends = end == text.len() || !inner(text[end]) || !inner(text[end - 1]);
    starts && ends
}

/// Whether `b` continues a word ([`whole_word`]).
fn inner(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// The bit of a word (a run of [`inner`] bytes).
fn word_bit(word: &[u8]) -> u64 {
    let h = word.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1 << (h >> 58)
}

/// The bits of the words of `text` ([`word_bit`]). A term found as a whole word holds
/// only whole words of the text, so its first word's bit is set: most descriptions that
/// cannot hold a term as a whole word are told without reading them.
fn word_mask(text: &[u8]) -> u64 {
    text.split(|&b| !inner(b))
        .filter(|w| !w.is_empty())
        .fold(0, |m, w| m | word_bit(w))
}

fn indices_with(m: &mut Matcher, idx: &SearchIndex, id: usize, q: &Query) -> Vec<usize> {
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
    /// When nothing matches a query: the ids of the nearest names ([`suggest`]).
    suggestions: Vec<usize>,
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
        let (matched, hits) = Searcher::rank(&self.index, &new, candidates, DISPLAY_CAP);
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
// Suggestions: the names nearest to a query nothing matched

/// How many names a search nothing matched suggests, at most.
pub const SUGGESTIONS: usize = 3;

/// The largest edit distance a suggestion may be from the query (cargo's rule, a third of
/// the query's length, at least 1, capped here).
const MAX_DISTANCE: usize = 3;

/// A query nothing matched, as [`suggest`] compares it: the name it asked for, and the
/// organisation when it named one (`org/name`, or the two terms `org name`), lower-cased.
struct Near {
    org: Option<(Vec<char>, usize)>,
    name: Vec<char>,
    /// [`char_mask`] of the name.
    mask: u64,
    /// The largest distance of the name.
    max: usize,
}

impl Near {
    fn parse(query: &str) -> Option<Near> {
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
fn distance(a: &[char], b: &[char], max: usize, rows: &mut Vec<usize>) -> Option<usize> {
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

// ---------------------------------------------------------------------------------------------
// The service's per-catalog cache

/// A catalog's packages and their index, as of `generation` of the catalog created at
/// `created_at`.
#[derive(Debug)]
pub struct CatalogIndex {
    pub name: String,
    pub created_at: i64,
    pub generation: i64,
    /// Shared with in-process readers ([`super::mirror`]) without a copy.
    pub index: Arc<SearchIndex>,
}

impl CatalogIndex {
    pub fn new(
        name: &str,
        created_at: i64,
        generation: i64,
        packages: &[PackageSummary],
    ) -> CatalogIndex {
        CatalogIndex {
            name: name.to_string(),
            created_at,
            generation,
            index: Arc::new(SearchIndex::of_packages(packages)),
        }
    }

    /// Every package, in index order.
    pub fn packages(&self) -> impl Iterator<Item = PackageSummary> + '_ {
        (0..self.index.len()).map(|id| self.index.summary(id))
    }
}

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

/// The package lists of a visible set of catalogs, in its order.
pub(crate) type Lists = Arc<ScanSet>;

/// Memory the merged indexes of [`ScanSet`]s may take together: about five visible sets of
/// 100,000 packages (45 MB each, columns included). A set that does not fit is searched
/// catalog by catalog, each with its own columns.
const MERGED_BYTES: usize = 256 << 20;

/// The catalogs one search reads (a visible set), in order. From its second search on, a set
/// is searched as one merged index with one set of [`Columns`]: at hundreds of catalogs, a
/// column pass per catalog reads a few words of each set, each one a cache miss, where the
/// merged index's sets are read from end to end. A set searched once (`pubdeck search`)
/// never pays for merging.
pub struct ScanSet {
    catalogs: Vec<Arc<CatalogIndex>>,
    searches: std::sync::atomic::AtomicU32,
    /// Set by the search that merges (others go on catalog by catalog meanwhile).
    merging: std::sync::atomic::AtomicBool,
    /// The merged index, or `None` when it did not fit the budget.
    merged: std::sync::OnceLock<Option<Merged>>,
    /// Bytes left for merged indexes, shared by the sets of one [`SearchCache`].
    budget: Arc<std::sync::atomic::AtomicUsize>,
}

struct Merged {
    catalog: Arc<CatalogIndex>,
    /// What it took of the budget (given back on drop).
    bytes: usize,
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

    fn merged(&self) -> Option<&Merged> {
        self.merged.get().and_then(Option::as_ref)
    }

    /// What a search reads: the merged index once there is one. Counts the search; the
    /// second one merges, or (over budget) builds each catalog's columns instead.
    fn for_search(&self) -> &[Arc<CatalogIndex>] {
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
    fn merge(&self) -> Option<Merged> {
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
    fn search(&self, query: &str, limit: usize, threads: Option<usize>) -> SearchAnswer {
        let catalogs = self.for_search();
        let results = search_on(catalogs, query, limit, threads);
        let suggestions = if results.is_empty() {
            let indexes: Vec<&SearchIndex> = catalogs.iter().map(|c| &*c.index).collect();
            suggest(&indexes, query)
                .into_iter()
                .map(|(i, id)| format!("{}/{}", indexes[i].org(id), indexes[i].name(id)))
                .collect()
        } else {
            Vec::new()
        };
        SearchAnswer {
            results,
            suggestions,
        }
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
        pool.run(move || {
            let threads = (scanning.load(Ordering::Relaxed) > 1).then_some(1);
            lists.search(&q, limit, threads)
        })
        .await
        .ok_or_else(|| crate::catalog::CatalogError::Internal("the search scan failed".into()))
        .map_err(|e| crate::catalog::CatalogError::Internal(format!("search task failed: {e}")))
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
            });
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

/// The best `limit` packages of `catalogs` for `query`, best first (see the module rules).
/// Large scans are split across the machine's cores.
#[cfg(test)]
pub(crate) fn search(catalogs: &[Arc<CatalogIndex>], query: &str, limit: usize) -> Vec<SearchHit> {
    search_on(catalogs, query, limit, None)
}

/// [`search`] on `threads` threads (`None`: as many as [`threads_for`] the package count).
fn search_on(
    catalogs: &[Arc<CatalogIndex>],
    query: &str,
    limit: usize,
    threads: Option<usize>,
) -> Vec<SearchHit> {
    let q = Query::parse(query);
    let total: usize = catalogs.iter().map(|c| c.index.len()).sum();
    let threads = threads.unwrap_or_else(|| threads_for(total));
    let parts = even_runs(catalogs, threads, |c| c.index.len());
    let mut hits: Vec<(i64, &CatalogIndex, usize)> =
        on_cores(parts, &|part| scan(part, &q, limit)).concat();
    top_by(&mut hits, limit, hit_order);
    hits.into_iter()
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
        .collect()
}

/// The best `limit` matches among `catalogs`. Once `limit` matches are found, a package
/// whose [`Query::bound`] cannot reach the `limit`-th best so far is not scored: at 100,000
/// packages most of a common query's matches are never scored.
fn scan<'a>(
    catalogs: &'a [Arc<CatalogIndex>],
    q: &Query,
    limit: usize,
) -> Vec<(i64, &'a CatalogIndex, usize)> {
    scan_bounded(catalogs, q, limit, true).0
}

/// [`scan`], skipping what cannot rank when `bounded` (tests compare both), and how many
/// packages were scored.
fn scan_bounded<'a>(
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
const PREFETCH_AHEAD: usize = 8;

/// Asks the CPU to bring `x`'s cache line in without waiting for it.
fn prefetch<T>(x: &T) {
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
struct Candidate {
    bound: i64,
    /// Its name's length ([`Head::len`]).
    len: u32,
    /// Its catalog's position among the scan's.
    cat: u32,
    id: u32,
    /// The terms whose name may match, when the columns told ([`Columns::candidates`]).
    names: Option<u64>,
}

/// The bounded scan, best bound first: every candidate's [`Query::bound`] is computed, those
/// with the highest bounds are scored first (they set a high bar at once), then the rest
/// only where their bound reaches the bar.
fn best_first<'a>(
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
fn prefix_pass<'a>(
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
struct Best<'a> {
    hits: Vec<(i64, &'a CatalogIndex, usize)>,
    limit: usize,
    /// Whether packages that cannot reach the bar are skipped.
    bounded: bool,
    /// The score and name length of the `limit`-th best hit so far, once known.
    bar: Option<(i64, u32)>,
    /// How many packages were scored.
    scored: usize,
}

impl<'a> Best<'a> {
    fn new(limit: usize, bounded: bool) -> Best<'a> {
        Best {
            hits: Vec::new(),
            limit,
            bounded,
            bar: None,
            scored: 0,
        }
    }

    /// Scores package `id` of `cat` unless its bound cannot reach the bar.
    fn offer(&mut self, m: &mut Matcher, q: &Query, cat: &'a CatalogIndex, id: usize) {
        if self.bar.is_none()
            || self.reaches(q.bound(&cat.index, id, None), cat.index.heads[id].len)
        {
            self.score(m, q, cat, id, None);
        }
    }

    /// Whether a package whose score is at most `bound` and whose name is `len` bytes long
    /// may rank with the hits so far.
    fn reaches(&self, bound: i64, len: u32) -> bool {
        self.bar
            .is_none_or(|(score, bar_len)| bound > score || (bound == score && len <= bar_len))
    }

    /// Scores package `id` of `cat` and keeps it if it matches.
    /// `names`: the terms whose name may match, when the columns told.
    fn score(
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
    fn raise_bar(&mut self) {
        self.trim();
        if self.bounded && self.hits.len() >= self.limit {
            self.bar = self
                .hits
                .last()
                .map(|&(s, c, id)| (s, c.index.heads[id].len));
        }
    }

    fn trim(&mut self) {
        top_by(&mut self.hits, self.limit, hit_order);
    }

    /// Whether no package outside those offered can rank: `limit` hits score above
    /// `q.other_bound`.
    fn settled(&mut self, q: &Query) -> bool {
        self.trim();
        self.hits.len() >= self.limit
            && self.hits.last().is_some_and(|&(s, _, _)| s > q.other_bound)
    }

    /// The best `limit` hits, best first, and how many packages were scored.
    fn finish(mut self) -> (Vec<(i64, &'a CatalogIndex, usize)>, usize) {
        self.trim();
        (self.hits, self.scored)
    }
}

/// The order of results across catalogs: score, then shorter names, then [`tie_key`] (the
/// workbench's [`rank_order`] orders the same way), reading the names only for hits of one
/// score and name length (a scan orders hundreds of hits: their text is cache misses).
fn hit_order(
    a: &(i64, &CatalogIndex, usize),
    b: &(i64, &CatalogIndex, usize),
) -> std::cmp::Ordering {
    let head = |&(_, c, id): &(i64, &CatalogIndex, usize)| {
        let h = &c.index.heads[id];
        (h.len, h.prefix)
    };
    b.0.cmp(&a.0)
        .then_with(|| head(a).cmp(&head(b)))
        .then_with(|| tie_key(&a.1.index, a.2).cmp(&tie_key(&b.1.index, b.2)))
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

    fn cat(names: &[(&str, &str)]) -> Arc<CatalogIndex> {
        let rows: Vec<(&str, &str, &str)> = names.iter().map(|(n, d)| ("org", *n, *d)).collect();
        Arc::new(CatalogIndex::new("org", 0, 0, &summaries(&rows)))
    }

    /// The prefilters reject only what the matcher would: every package gets the same score
    /// (or none) with and without them, for names and queries in upper and lower case, with
    /// digits, punctuation, accents and other scripts.
    /// `(org, name, description)`.
    type Row = (String, String, String);

    /// 600 packages of mixed names (cases, digits, punctuation, accents, other scripts,
    /// whitespace and delimiters) and queries over them.
    fn mixed() -> (Vec<Row>, SearchIndex, Vec<&'static str>) {
        let parts = [
            "py", "dh", "Auth", "café", "naïve", "ß", "日本", "x86_64", "v1.2", "-", "lib", "ÉTÉ",
            "qz", "utils", "ü", "perl-q", "a", "a b", "p|q", "c:d", "x/y",
        ];
        let mut rows = Vec::new();
        let mut state = 7u64;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for i in 0..600 {
            let name: String = (0..1 + next(3))
                .map(|_| parts[next(parts.len())])
                .collect::<Vec<_>>()
                .join(if i % 2 == 0 { "-" } else { "" });
            let description: String = (0..next(6))
                .map(|_| parts[next(parts.len())])
                .collect::<Vec<_>>()
                .join(" ");
            let org = ["Acme", "beta", "çorp"][i % 3];
            rows.push((org.to_string(), format!("{name}{i}"), description));
        }
        // Names equal to a query, or starting with one longer than eight bytes.
        for (org, name) in [
            ("Acme", "py"),
            ("beta", "Auth"),
            ("çorp", "café"),
            ("Acme", "perl-query-builder-extra"),
            ("beta", "PY-upper"),
            ("Acme", "x86_64"),
        ] {
            rows.push((org.to_string(), name.to_string(), "py utils".to_string()));
        }
        let idx = SearchIndex::new(
            rows.iter()
                .map(|(o, n, d)| (o.as_str(), n.as_str(), d.as_str())),
        );
        let queries = [
            "py",
            "PY",
            "pydh",
            "auth",
            "Auth",
            "AUTH",
            "cafe",
            "café",
            "CAFÉ",
            "naive",
            "ss",
            "ß",
            "日本",
            "本",
            "x86",
            "x8664",
            "_",
            "v1.2",
            "1.2",
            ".",
            "-",
            "lib utils",
            "qz a",
            "perl-q",
            "e",
            "é",
            "ete",
            "été",
            "acme/py",
            "/lib",
            "çorp/",
            "beta/au",
            "ü u",
            "a b",
            "x/y",
            "p|q",
            "utils café",
            "zz",
            "a a a",
            "9",
            "59",
            "acme-py",
            "acme py",
            "acme/py",
            "perl-query-b",
            "perl-query-builder-extra",
            "py-upper",
            "x86_64",
            "beta",
            "BETA au",
            "Acme PY",
            "çorp café",
            "acme x86_64",
            "PERL-Q",
            "utils",
            "lib Utils",
        ];
        (rows, idx, queries.to_vec())
    }

    #[test]
    fn prefilters_change_no_result() {
        let (rows, idx, queries) = mixed();
        let columns = Columns::of(&idx);
        // Whether the order sets ever reject what the characters let through.
        let mut narrower = false;
        let mut m = Matcher::new(Config::DEFAULT);
        let mut matching_queries = 0;
        for q in queries {
            let q = Query::parse(q);
            let mut matched = 0;
            let need = q.character_needs();
            let candidates: std::collections::HashSet<usize> = idx.candidates(&need).collect();
            // Both column passes: the same candidates, with the same terms' names.
            let mut by_columns = HashMap::new();
            columns.candidates_narrow(&q.column_needs(), idx.len(), |id, names| {
                by_columns.insert(id, names);
            });
            let mut wide = HashMap::new();
            columns.candidates_wide(&q.column_needs(), idx.len(), |id, names| {
                wide.insert(id, names);
            });
            assert_eq!(by_columns, wide, "{:?}", q.as_str());
            assert!(
                by_columns.keys().all(|id| candidates.contains(id)),
                "{:?}",
                q.as_str()
            );
            narrower |= by_columns.len() < candidates.len();
            for (id, row) in rows.iter().enumerate() {
                let with = score_filtered(&mut m, &idx, id, &q, true, None);
                let without = score_filtered(&mut m, &idx, id, &q, false, None);
                assert_eq!(with, without, "{:?} on {row:?}", q.as_str());
                assert!(
                    without.is_none() || by_columns.contains_key(&id),
                    "the scan's first pass drops a match: {:?} on {row:?}",
                    q.as_str()
                );
                // Told which names the columns rule out, the score is the same and the bound
                // still holds.
                if let Some(&names) = by_columns.get(&id) {
                    let told = score_filtered(&mut m, &idx, id, &q, true, Some(names));
                    assert_eq!(told, without, "{:?} on {row:?}", q.as_str());
                }
                if let (Some(score), Some(&names)) = (without, by_columns.get(&id)) {
                    let bound = q.bound(&idx, id, Some(names));
                    assert!(
                        bound >= score,
                        "{:?} on {row:?}: {bound} < {score}",
                        q.as_str()
                    );
                }
                matched += usize::from(with.is_some());
            }
            matching_queries += usize::from(matched > 0);
        }
        assert!(
            matching_queries >= 30,
            "{matching_queries} queries matched anything"
        );
        assert!(
            narrower,
            "the columns never rejected more than the row filters"
        );
        // Filters do reject: a query of characters no name or description has.
        let q = Query::parse("zzz");
        assert!(
            (0..idx.len()).all(|id| score_filtered(&mut m, &idx, id, &q, true, None).is_none())
        );
    }

    /// The scan's score bound is at least the score of every package for every query, and a
    /// scan that skips by it ranks exactly as one that scores everything.
    #[test]
    fn score_bounds_hold() {
        let (rows, idx, queries) = mixed();
        let mut m = Matcher::new(Config::DEFAULT);
        let mut scored = 0;
        for q in &queries {
            let q = Query::parse(q);
            for (id, row) in rows.iter().enumerate() {
                if let Some(score) = score_filtered(&mut m, &idx, id, &q, false, None) {
                    let bound = q.bound(&idx, id, None);
                    assert!(
                        bound >= score,
                        "{:?} on {row:?}: {score} > {bound}",
                        q.as_str()
                    );
                    scored += 1;
                }
            }
        }
        assert!(scored > 1000, "{scored} scores checked");
        // Names of the shape the bound is tight on (`lang-word-kind`, many equal scores),
        // in several catalogs, against the same names scored in full.
        let (langs, words, kinds) = (
            ["py", "r", "lua", "go", "rust", "lib", "Perl", "x86"],
            [
                "tls", "log", "tree", "ansible", "dhcp", "lz4", "queue", "Util", "daemon",
            ],
            ["cli", "dev", "sdk", "utils", "docs", "test"],
        );
        let catalogs: Vec<Arc<CatalogIndex>> = (0..6)
            .map(|c| {
                let org = format!("org{c}");
                let rows: Vec<PackageSummary> = (0..700)
                    .map(|i: usize| {
                        let n = format!(
                            "{}-{}-{}",
                            langs[(i * 7 + c) % langs.len()],
                            words[(i / 3 + c) % words.len()],
                            kinds[(i / 11) % kinds.len()]
                        );
                        PackageSummary {
                            name: format!("{org}/{n}"),
                            org: org.clone(),
                            package: n,
                            latest_version: "1".into(),
                            description: format!("A {} daemon for {}", words[i % 9], kinds[i % 6]),
                        }
                    })
                    .collect();
                Arc::new(CatalogIndex::new(&org, 0, 0, &rows))
            })
            .collect();
        let mut skipped_any = false;
        let extra = [
            "l-l",
            "al-",
            "tre",
            "a daemon",
            "-tls",
            "ut",
            "lbtaoc",
            "py-tls-cli",
            "py",
            "py-t",
            "lua-tree-",
            "rust-ansible-c",
            "rust-ansible-cli",
            "Py",
            "perl",
            "x86-lz4-docs",
            "r",
            "zz-",
        ];
        for query in queries.iter().chain(&extra) {
            let q = Query::parse(query);
            for limit in [1, 3, 20, 200] {
                let (all, n_all) = scan_bounded(&catalogs, &q, limit, false);
                let (some, n_some) = scan_bounded(&catalogs, &q, limit, true);
                // By name: the generated names repeat, and equal keys may come in any order.
                let key = |h: &[(i64, &CatalogIndex, usize)]| -> Vec<(i64, String, String)> {
                    h.iter()
                        .map(|&(s, c, id)| (s, c.name.clone(), c.index.name(id).to_string()))
                        .collect()
                };
                assert_eq!(key(&some), key(&all), "{query} limit {limit}");
                skipped_any |= n_some < n_all;
            }
        }
        assert!(skipped_any, "the bound never spared a score");
        // Enough names start with "py" for the prefix pass to answer alone; none starts with
        // "tre" (fuzzy and description matches), so its pass cannot.
        let mut m = Matcher::new(Config::DEFAULT);
        assert!(
            prefix_pass(&mut m, &catalogs, &Query::parse("py"), 20).settled(&Query::parse("py"))
        );
        let tre = Query::parse("tre");
        assert!(!prefix_pass(&mut m, &catalogs, &tre, 20).settled(&tre));
    }

    /// One search of a set merges nothing and builds no columns (`pubdeck search` searches
    /// once per process); the second merges the set, which then answers as its catalogs did.
    /// A set over the memory budget builds its catalogs' columns instead, and a dropped set
    /// gives its bytes back.
    #[test]
    fn a_set_merges_with_its_second_search() {
        let a = cat(&[("py-dhcp", "a daemon"), ("lua-tls", "bindings")]);
        let b = Arc::new(CatalogIndex::new(
            "beta",
            0,
            0,
            &summaries(&[("beta", "pdns", "dns"), ("beta", "py", "python")]),
        ));
        let budget = Arc::new(std::sync::atomic::AtomicUsize::new(MERGED_BYTES));
        let set = ScanSet::new(vec![Arc::clone(&a), Arc::clone(&b)], Arc::clone(&budget));
        // "pd" matches no name by prefix: the prefix pass, then the full pass.
        let first = set.search("pd", 20, Some(1));
        assert!(set.merged().is_none());
        assert!(a.index.columns().is_none() && b.index.columns().is_none());
        assert_eq!(set.search("pd", 20, Some(1)), first);
        let merged = set.merged().expect("merged on the second search");
        assert!(merged.catalog.index.columns().is_some());
        assert_eq!(merged.catalog.index.len(), 4);
        assert!(a.index.columns().is_none(), "no columns per catalog");
        for q in ["py", "beta/p", "dns", "daemon lua", "zz"] {
            assert_eq!(
                set.search(q, 20, Some(1)).results,
                search_on(&[Arc::clone(&a), Arc::clone(&b)], q, 20, Some(1)),
                "{q}"
            );
        }
        let taken = MERGED_BYTES - budget.load(std::sync::atomic::Ordering::Relaxed);
        let merged_bytes = merged.catalog.index.heap_bytes() + Columns::bytes_for(4);
        assert!(taken >= merged_bytes / 2, "{taken}");
        drop(set);
        assert_eq!(
            budget.load(std::sync::atomic::Ordering::Relaxed),
            MERGED_BYTES
        );
        // No budget left: the catalogs get their own columns instead.
        let set = ScanSet::new(
            vec![Arc::clone(&a)],
            Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        );
        set.search("pd", 20, Some(1));
        set.search("pd", 20, Some(1));
        assert!(set.merged().is_none());
        assert!(a.index.columns().is_some());
    }

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
            set.search("pd", 20, Some(1));
            set.search("pd", 20, Some(1));
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

    /// `org/name` earns the exact bonus only for the query naming it with its `/` (or as the
    /// two terms `org name`).
    #[test]
    fn only_org_slash_name_is_an_exact_org_match() {
        let idx = SearchIndex::new([("acme", "py", "the acme-py tool"), ("acme", "pyx", "")]);
        let score = |q: &str| Searcher::score(&idx, 0, &Query::parse(q));
        assert!(score("acme/py").is_some_and(|s| s >= EXACT));
        assert!(score("py").is_some_and(|s| s >= EXACT));
        // `acme py` names it as `acme/py` does; `acme-py` matches (the description holds it)
        // without naming it.
        assert!(score("acme py").is_some_and(|s| s >= EXACT));
        assert!(score("py acme").is_some_and(|s| s < PREFIX));
        assert!(score("acme-py").is_some_and(|s| s < PREFIX));
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

    #[test]
    fn joined_indexes_are_the_index_of_all_their_packages() {
        let a = summaries(&[
            ("Acme", "Hello-World", "Prints greetings"),
            ("Acme", "curl", "transfers data"),
        ]);
        let b = summaries(&[("beta", "hello", "GNU hello"), ("beta", "zsh", "a shell")]);
        let empty = SearchIndex::default();
        let (ia, ib) = (SearchIndex::of_packages(&a), SearchIndex::of_packages(&b));
        let joined = SearchIndex::concat(&[&ia, &empty, &ib]);
        let all: Vec<PackageSummary> = a.iter().chain(&b).cloned().collect();
        let whole = SearchIndex::of_packages(&all);
        assert_eq!(joined.len(), whole.len());
        for id in 0..whole.len() {
            assert_eq!(joined.summary(id), whole.summary(id));
            assert_eq!(joined.lower_name(id), whole.lower_name(id));
            assert_eq!(joined.lower_description(id), whole.lower_description(id));
        }
        for query in ["hello", "acme/", "ACME/hw", "beta/h", "greet", "sh", "zz"] {
            let (mut fj, mut fw) = (
                Filter::new(Arc::new(SearchIndex::concat(&[&ia, &ib]))),
                Filter::new(Arc::new(SearchIndex::of_packages(&all))),
            );
            fj.set_query(query);
            fw.set_query(query);
            assert_eq!(fj.hits(), fw.hits(), "{query}");
        }
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

    #[test]
    fn even_runs_cover_the_items_in_order_in_at_most_the_parts_asked() {
        let items: Vec<usize> = (0..50).map(|i| (i * 37) % 11).collect();
        for parts in 1..8 {
            for items in [&items[..], &[], &[0, 0, 0], &[5]] {
                let runs = even_runs(items, parts, |&w| w);
                assert!(runs.len() <= parts.max(1), "{parts}: {} runs", runs.len());
                assert!(runs.iter().all(|r| !r.is_empty()));
                assert_eq!(runs.concat(), items);
            }
        }
        let runs = even_runs(&[1; 100], 4, |&w| w);
        assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [25; 4]);
    }

    #[test]
    fn a_split_scan_equals_one_scan() {
        let words = [
            "py", "lib", "perl", "go", "dhcp", "table", "utils", "queue", "Tools",
        ];
        let mut catalogs = Vec::new();
        for c in 0..37 {
            let org = format!("org{c}");
            let rows: Vec<PackageSummary> = (0..211)
                .map(|i| {
                    let n = format!("{}-{}-{i}", words[(i + c) % 9], words[(i / 9) % 9]);
                    let d = format!("A {} tool for {}", words[i % 9], words[(i + 3) % 9]);
                    PackageSummary {
                        name: format!("{org}/{n}"),
                        org: org.clone(),
                        package: n,
                        latest_version: format!("1.{i}"),
                        description: d,
                    }
                })
                .collect();
            catalogs.push(Arc::new(CatalogIndex::new(&org, 0, 0, &rows)));
        }
        for q in [
            "py-dh",
            "ut",
            "tools",
            "org3/lib",
            "perl q",
            "queue-lib-13",
            "zz",
        ] {
            let one = search_on(&catalogs, q, 20, Some(1));
            for threads in [2, 3, 8, 64] {
                assert_eq!(
                    search_on(&catalogs, q, 20, Some(threads)),
                    one,
                    "{q} on {threads}"
                );
            }
            if q != "zz" {
                assert!(!one.is_empty(), "{q}");
            }
        }
        assert_eq!(
            search_on(&catalogs, "queue-lib-13", 1, Some(2))[0].package,
            "queue-lib-13",
            "the exact name first"
        );
    }

    #[test]
    fn ranking_a_large_list_on_all_cores_equals_a_plain_sort() {
        let words = [
            "py", "lib", "perl", "go", "dhcp", "table", "utils", "queue", "Tools",
        ];
        let rows: Vec<(String, String, String)> = (0..30_000)
            .map(|i| {
                let name = format!("{}-{}-{}", words[i % 9], words[(i / 9) % 9], i % 977);
                let desc = format!("A {} tool for {}", words[(i / 81) % 9], words[(i / 7) % 9]);
                (format!("org{}", i % 50), name, desc)
            })
            .collect();
        let idx = SearchIndex::new(
            rows.iter()
                .map(|(o, n, d)| (o.as_str(), n.as_str(), d.as_str())),
        );
        for query in ["p", "py-dh", "ut", "tools q", "org7/lib", "zz"] {
            let q = Query::parse(query);
            let (matched, hits) = Searcher::rank(&idx, &q, 0..idx.len(), DISPLAY_CAP);
            let mut all: Vec<(i64, usize)> = (0..idx.len())
                .filter_map(|id| Some((Searcher::score(&idx, id, &q)?, id)))
                .collect();
            assert_eq!(
                matched,
                all.iter().map(|&(_, id)| id).collect::<Vec<_>>(),
                "{query}"
            );
            all.sort_by(|&(a, x), &(b, y)| {
                b.cmp(&a)
                    .then(idx.lower_name(x).len().cmp(&idx.lower_name(y).len()))
                    .then(idx.lower_name(x).cmp(idx.lower_name(y)))
                    .then(idx.org(x).to_lowercase().cmp(&idx.org(y).to_lowercase()))
                    .then(x.cmp(&y))
            });
            all.truncate(DISPLAY_CAP);
            let got: Vec<(i64, usize)> = hits.iter().map(|h| (h.score, h.id)).collect();
            assert_eq!(got, all, "{query}");
        }
    }

    /// The search as every face sees it: the service's and the CLI's answer over `catalogs`
    /// (a [`ScanSet`], searched twice so the merged index answers too), and the workbench's
    /// filter over the same packages joined, which must agree; returns the names.
    fn everywhere(catalogs: &[Arc<CatalogIndex>], query: &str) -> (Vec<String>, Vec<String>) {
        let set = ScanSet::standalone(catalogs.to_vec());
        let first = set.search(query, 50, Some(1));
        assert_eq!(set.search(query, 50, Some(1)), first, "{query}: merged");
        let parts: Vec<&SearchIndex> = catalogs.iter().map(|c| &*c.index).collect();
        let mut f = Filter::new(Arc::new(SearchIndex::concat(&parts)));
        f.set_query(query);
        let name = |id: usize| format!("{}/{}", f.index().org(id), f.index().name(id));
        let workbench: Vec<String> = f.hits().iter().take(50).map(|h| name(h.id)).collect();
        let service: Vec<String> = first.results.iter().map(|h| h.name.clone()).collect();
        assert_eq!(workbench, service, "{query}: the workbench and the service");
        let near: Vec<String> = f.suggestions().iter().map(|&id| name(id)).collect();
        assert_eq!(near, first.suggestions, "{query}: suggestions");
        (service, near)
    }

    fn org_catalog(org: &str, rows: &[(&str, &str)]) -> Arc<CatalogIndex> {
        let rows: Vec<(&str, &str, &str)> = rows.iter().map(|(n, d)| (org, *n, *d)).collect();
        Arc::new(CatalogIndex::new(org, 0, 0, &summaries(&rows)))
    }

    fn two_orgs() -> Vec<Arc<CatalogIndex>> {
        vec![
            org_catalog(
                "myorg",
                &[
                    ("hello", "Greets the organisation"),
                    ("go-release-notes-cli", "Generates release notes"),
                    ("HelloWorld", "prints a greeting"),
                    (
                        "py-hello-server",
                        "Server for hello: greets the organisation",
                    ),
                    ("help2man", "manual pages"),
                ],
            ),
            org_catalog(
                "tools",
                &[
                    ("hello", "GNU hello"),
                    ("greetsd", "a daemon that greets"),
                    ("myorg-sync", "copies myorg"),
                    ("greeter", "greetings, as a service"),
                ],
            ),
        ]
    }

    /// Item 14: an upper-case letter in the query never makes the match case-sensitive.
    #[test]
    fn case_never_hides_an_exact_match() {
        let cats = two_orgs();
        for q in ["hello", "Hello", "HELLO", "hElLo"] {
            let (hits, _) = everywhere(&cats, q);
            assert_eq!(hits[..2], ["myorg/hello", "tools/hello"], "{q}");
            // Every case of the query ranks alike.
            assert_eq!(hits, everywhere(&cats, "hello").0, "{q}");
        }
        for q in ["HELLOWORLD", "helloworld", "HelloWorld"] {
            assert_eq!(everywhere(&cats, q).0[0], "myorg/HelloWorld", "{q}");
        }
        // The prefix pass takes upper-case queries too, and answers as the full scan.
        let q = Query::parse("HEL");
        assert!(q.by_prefix);
        let (bounded, _) = scan_bounded(&cats, &q, 3, true);
        let (full, _) = scan_bounded(&cats, &q, 3, false);
        let ids = |h: &[(i64, &CatalogIndex, usize)]| -> Vec<(i64, usize)> {
            h.iter().map(|&(s, _, id)| (s, id)).collect()
        };
        assert_eq!(ids(&bounded), ids(&full));
    }

    /// Item 15: every term matches the organisation (by naming it), the name or the
    /// description; `org name` names a package as `org/name` does.
    #[test]
    fn terms_are_anded_over_org_name_and_description() {
        let cats = two_orgs();
        let (hits, _) = everywhere(&cats, "myorg hello");
        assert_eq!(hits[0], "myorg/hello", "{hits:?}");
        assert!(!hits.contains(&"tools/hello".to_string()), "{hits:?}");
        assert!(hits.contains(&"myorg/py-hello-server".to_string()));
        let (hits, _) = everywhere(&cats, "MyOrg HELLO");
        assert_eq!(hits[0], "myorg/hello", "{hits:?}");
        let (hits, _) = everywhere(&cats, "tools hello");
        assert_eq!(hits[0], "tools/hello", "{hits:?}");
        // Either order of the terms finds it; only `org name` is an exact match.
        let (hits, _) = everywhere(&cats, "hello myorg");
        assert!(hits.contains(&"myorg/hello".to_string()), "{hits:?}");
        let idx = &cats[0].index;
        let exact = Searcher::score(idx, 0, &Query::parse("myorg hello")).unwrap();
        let other = Searcher::score(idx, 0, &Query::parse("hello myorg")).unwrap();
        assert!(exact >= EXACT && other < EXACT, "{exact} {other}");
        // An organisation is named whole, not matched by a letter of it.
        let (hits, _) = everywhere(&cats, "myorg");
        assert_eq!(
            hits.len(),
            6,
            "every package of myorg, and the one naming it: {hits:?}"
        );
        assert!(everywhere(&cats, "myor zzz").0.is_empty());
    }

    /// Item 15: the tiers of one term (module rules): a name holding it, then a whole word
    /// of the description (or the organisation's name), then a weak fuzzy name match, then a
    /// description holding it inside a word.
    #[test]
    fn a_whole_word_in_the_description_outranks_a_weak_fuzzy_name() {
        let cats = two_orgs();
        let (hits, _) = everywhere(&cats, "greets");
        let at = |n: &str| {
            hits.iter()
                .position(|h| h == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(hits[0], "tools/greetsd", "the name holds it: {hits:?}");
        assert!(
            at("myorg/hello") < at("myorg/go-release-notes-cli"),
            "{hits:?}"
        );
        assert!(at("myorg/py-hello-server") < at("myorg/go-release-notes-cli"));
        assert!(at("tools/greetsd") < at("myorg/hello"));
        // "greet" is inside "greets" and "greetings": no whole word, and every name holding
        // it ranks first.
        let (hits, _) = everywhere(&cats, "greet");
        assert_eq!(hits[..2], ["tools/greeter", "tools/greetsd"], "{hits:?}");
        // The tiers hold for terms of every length, against names built to score high.
        for n in 1..=12 {
            let term: String = ('a'..='l').take(n).collect();
            let (word, inside, holds) = (
                format!("the {term} word"),
                format!("x{term}x"),
                format!("x_{term}"),
            );
            let idx = SearchIndex::new([
                ("o", "A-B-C-D-E-F-G-H-I-J-K-L", "x"),
                ("o", "n", word.as_str()),
                ("o", holds.as_str(), "x"),
                ("o", "m", inside.as_str()),
            ]);
            let q = Query::parse(&term);
            let score = |id| Searcher::score(&idx, id, &q);
            let (holds, word, inside) = (score(2), score(1), score(3));
            let weak = score(0).filter(|_| n > 1);
            assert!(holds > word, "{term}: {holds:?} {word:?}");
            assert!(word > weak, "{term}: {word:?} {weak:?}");
            if n > 1 {
                assert!(weak > Some(0) && inside < word, "{term}");
            }
        }
        // Whole words: at either end of the text, around punctuation, not inside a word.
        for (text, at, len, whole) in [
            ("greets the", 0, 6, true),
            ("it greets", 3, 6, true),
            ("(greets)", 1, 6, true),
            ("regreets", 2, 6, false),
            ("greetsx", 0, 6, false),
            ("a-b", 1, 1, true),
            ("café-x", 0, 5, true),
        ] {
            assert_eq!(whole_word(text.as_bytes(), at, len), whole, "{text}");
        }
        // A whole-word match always finds its first word in the text's word mask, whatever
        // punctuation the term holds; the mask spares reading most other descriptions.
        for (text, term) in [
            ("greets the organisation", "greets"),
            ("generates release-notes, fast", "release-notes"),
            ("see -x for help", "-x"),
            ("the café opens", "café"),
            ("(greets)", "greets)"),
        ] {
            let q = Query::parse(term);
            let t = &q.terms[0];
            assert!(t.text_word != 0, "{term}");
            assert!(
                word_mask(text.as_bytes()) & t.text_word != 0,
                "{term} in {text}"
            );
            let idx = SearchIndex::new([("o", "zz", text)]);
            assert_eq!(text_score(&idx, 0, t, true, 0), Some(t.word), "{term}");
        }
        assert_eq!(Query::parse("--").terms[0].text_word, 0);
    }

    /// Item 16: a query nothing matches gets the nearest names (case-insensitive, swaps of
    /// neighbours count one), at most [`SUGGESTIONS`]; a query with results gets none.
    #[test]
    fn no_match_suggests_the_nearest_names() {
        let cats = two_orgs();
        for q in ["hlelo", "HLELO", "ehllo", "hellp"] {
            let (hits, near) = everywhere(&cats, q);
            assert!(hits.is_empty(), "{q}: {hits:?}");
            assert_eq!(near, ["myorg/hello", "tools/hello"], "{q}");
        }
        assert_eq!(everywhere(&cats, "myorg/hlelo").1, ["myorg/hello"]);
        assert_eq!(everywhere(&cats, "tols/hlelo").1, ["tools/hello"]);
        assert_eq!(everywhere(&cats, "myorg hlelo").1, ["myorg/hello"]);
        // Nearest first: one swap, then two substitutions (within a third of 7 characters).
        assert_eq!(
            everywhere(&cats, "greetre").1,
            ["tools/greeter", "tools/greetsd"]
        );
        assert!(everywhere(&cats, "qqqqqq").1.is_empty());
        assert!(everywhere(&cats, "hello").1.is_empty());
        assert!(everywhere(&cats, "a b c").1.is_empty());
        // At most a few, nearest first.
        let many: Vec<(String, String)> = (0..10)
            .map(|i| (format!("abcdef{i}"), String::new()))
            .collect();
        let rows: Vec<(&str, &str)> = many.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
        let one = [org_catalog("acme", &rows)];
        let (_, near) = everywhere(&one, "abcedf5");
        assert_eq!(near.len(), SUGGESTIONS);
        assert_eq!(near[0], "acme/abcdef5");
        // The distance itself.
        let d = |a: &str, b: &str, max| {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            distance(&a, &b, max, &mut Vec::new())
        };
        assert_eq!(d("hlelo", "hello", 3), Some(1));
        assert_eq!(d("ca", "abc", 3), Some(3), "no edits inside a swap");
        assert_eq!(d("kitten", "sitting", 3), Some(3));
        assert_eq!(d("kitten", "sitting", 2), None);
        assert_eq!(d("", "ab", 2), Some(2));
        assert_eq!(d("café", "cafe", 1), Some(1));
    }

    /// Results of one score and name length come in the same order in every face: by name,
    /// then by organisation.
    #[test]
    fn ties_are_ordered_alike_in_every_face() {
        let cats = vec![
            org_catalog("alpha", &[("zz", "a tool"), ("mm", "a tool")]),
            org_catalog("beta", &[("yy", "a tool"), ("mm", "a tool")]),
        ];
        let (hits, _) = everywhere(&cats, "tool");
        assert_eq!(hits, ["alpha/mm", "beta/mm", "beta/yy", "alpha/zz"]);
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
