//! Prefilters: a term can match a name only if every character of the term occurs in it, and
//! occur in a description only if every character and every pair of adjacent characters of
//! the term occur in it. Checking bit sets rejects most packages in a few nanoseconds, before
//! the fuzzy matcher or the substring search runs; whatever passes is matched as before, so
//! the filters change no result (`prefilters_change_no_result` checks this against the
//! unfiltered search).

use super::*;

/// Words of the character-pair bit set.
pub(super) const PAIR_WORDS: usize = 4;

/// The bit of one (lower-cased) byte.
pub(super) const fn char_bit(b: u8) -> u8 {
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
pub(super) static CHAR_BITS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = char_bit(i as u8);
        i += 1;
    }
    t
};

/// The bits of the bytes of `s`.
pub(super) fn char_mask(s: &[u8]) -> u64 {
    s.iter()
        .fold(0, |m, &b| m | 1u64 << CHAR_BITS[usize::from(b)])
}

/// The bits of the bytes of `s` and of its adjacent pairs of bytes (by their bits), in one
/// pass.
pub(super) fn char_and_pair_masks(s: &[u8]) -> (u64, [u64; PAIR_WORDS]) {
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
pub(super) fn pair_slot(p: u32, c: u32) -> (usize, u32) {
    let h = ((p << 6) | c).wrapping_mul(0x9E37_79B1) >> 24;
    ((h / 64) as usize % PAIR_WORDS, h % 64)
}

/// The first eight bytes of `s` as one big-endian integer (zero-padded), and the mask of the
/// bytes that are `s`'s: `key(name) & mask == key(p)` when `name` starts with the first eight
/// bytes of `p`.
pub(super) fn prefix_key(s: &[u8]) -> (u64, u64) {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s[..n]);
    let mask = if n == 0 { 0 } else { u64::MAX << (8 * (8 - n)) };
    (u64::from_be_bytes(b), mask)
}

/// `have` holds every bit of `need`.
pub(super) fn covers(have: u64, need: u64) -> bool {
    have & need == need
}

/// The character filters transposed: per character of names, per character of descriptions
/// and per description pair slot, the set of packages that have it, as a bit set over ids.
/// A term's candidates are then the AND of a few sets (a few words per catalog of hundreds
/// of packages) instead of a pass over every package's 48 bytes of masks. One more filter
/// exists only here: per slot of an *ordered* pair of characters ([`order_slot`]), the names
/// holding the first somewhere before the second. A fuzzy pattern needs every pair of its
/// characters in its order, which the characters alone do not tell: on `lang-word-kind`
/// names it leaves a fraction of the candidates.
pub(super) struct Columns {
    /// Words per set.
    pub(super) words: usize,
    /// The sets one after the other, each `words` long: [`Columns::NAME`] and
    /// [`Columns::DESCRIPTION`] (by [`char_bit`]), [`Columns::PAIRS`] (by word, then bit of
    /// [`pair_slot`]), [`Columns::ORDER`] (by [`order_slot`]), [`Columns::FIRST`] and
    /// [`Columns::SECOND`] (by [`char_bit`]).
    pub(super) bits: Vec<u64>,
}

impl Columns {
    const NAME: usize = 0;
    const DESCRIPTION: usize = 64;
    const PAIRS: usize = 128;
    const ORDER: usize = Self::PAIRS + 64 * PAIR_WORDS;
    /// The names by their first and by their second (lower-cased) byte, for the prefix pass.
    pub(super) const FIRST: usize = Self::ORDER + ORDER_SLOTS;
    pub(super) const SECOND: usize = Self::FIRST + 64;
    const SETS: usize = Self::SECOND + 64;

    pub(super) fn of(idx: &SearchIndex) -> Columns {
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
    pub(super) fn candidates(&self, need: &[ColumnNeed], len: usize, f: impl FnMut(usize, u64)) {
        if self.words >= WIDE_WORDS {
            self.candidates_wide(need, len, f);
        } else {
            self.candidates_narrow(need, len, f);
        }
    }

    /// [`Columns::candidates`] one word at a time, reading no more sets of a word once
    /// nothing is left (at 400 catalogs of a few words each, every set word is a cache miss:
    /// the first, most selective, sets decide).
    pub(super) fn candidates_narrow(
        &self,
        need: &[ColumnNeed],
        len: usize,
        mut f: impl FnMut(usize, u64),
    ) {
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
    pub(super) fn candidates_wide(
        &self,
        need: &[ColumnNeed],
        len: usize,
        mut f: impl FnMut(usize, u64),
    ) {
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
    pub(super) const fn bytes_for(packages: usize) -> usize {
        Self::SETS * packages.div_ceil(64) * 8
    }
}

/// The ids of an index of `len` packages that word `w` of a set covers, as bits.
pub(super) fn live_bits(len: usize, w: usize) -> u64 {
    match len.saturating_sub(w * 64) {
        n if n >= 64 => !0,
        n => (1u64 << n) - 1,
    }
}

/// Calls `f` with each package of `word` (word `w` of the candidates) and the terms whose
/// name holds it (`named[t]`: word `w` of term `t`'s named set).
pub(super) fn emit(w: usize, mut word: u64, named: &[u64], f: &mut impl FnMut(usize, u64)) {
    while word != 0 {
        let bit = word.trailing_zeros();
        f(w * 64 + bit as usize, term_bits(named, bit));
        word &= word - 1;
    }
}

/// Sets of at least this many words are read a set at a time ([`Columns::candidates_wide`]).
pub(super) const WIDE_WORDS: usize = 64;

thread_local! {
    /// [`Columns::candidates_wide`]'s words: the candidates so far, the terms' named sets,
    /// and one term's (kept between scans: no allocation per query).
    static WIDE: RefCell<(Vec<u64>, Vec<u64>, Vec<u64>)> = const {
        RefCell::new((Vec::new(), Vec::new(), Vec::new()))
    };
}

/// Bit `t` set when bit `bit` of `named[t]` is.
pub(super) fn term_bits(named: &[u64], bit: u32) -> u64 {
    named
        .iter()
        .enumerate()
        .fold(0, |m, (t, &w)| m | ((w >> bit) & 1) << t)
}

/// Slots of the ordered pairs of characters in [`Columns`].
pub(super) const ORDER_SLOTS: usize = 512;

/// The slot of the ordered pair of character bits `(a, b)` (`a` before `b`).
pub(super) fn order_slot(a: u8, b: u8) -> usize {
    let key = (u32::from(a) << 6) | u32::from(b);
    (key.wrapping_mul(0x9E37_79B1) >> 23) as usize % ORDER_SLOTS
}

/// The bits set in `mask`, lowest first.
pub(super) fn ones(mut mask: u64) -> impl Iterator<Item = usize> {
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
pub(super) type ColumnNeed = (Vec<u16>, Option<Vec<u16>>);

impl Query {
    /// Per term that constrains the name ([`Query::character_needs`]), the [`Columns`] sets
    /// its candidates are in: those of its name's characters and of every ordered pair of
    /// them (ASCII patterns), or else those of its description.
    pub(super) fn column_needs(&self) -> Vec<ColumnNeed> {
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

/// Whether `b` continues a word (`rank::whole_word`).
pub(super) fn inner(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// The bit of a word (a run of [`inner`] bytes).
pub(super) fn word_bit(word: &[u8]) -> u64 {
    let h = word.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    1 << (h >> 58)
}

/// The bits of the words of `text` ([`word_bit`]). A term found as a whole word holds
/// only whole words of the text, so its first word's bit is set: most descriptions that
/// cannot hold a term as a whole word are told without reading them.
pub(super) fn word_mask(text: &[u8]) -> u64 {
    text.split(|&b| !inner(b))
        .filter(|w| !w.is_empty())
        .fold(0, |m, w| m | word_bit(w))
}
