//! Score bounds: a scan for the best `limit` packages need not score a package whose score
//! cannot reach the `limit`-th best found so far. The bounds follow nucleo-matcher 0.3.1's
//! scoring (`score.rs`, `config.rs` with `Config::DEFAULT`): a matched character earns
//! `SCORE_MATCH` plus a bonus of at most `BONUS_BOUNDARY + 2` (after whitespace, or at the
//! start of the text), and the first character of the pattern earns its bonus twice. A
//! consecutive character earns at most the bonus its run started with. In a *plain* name
//! (ASCII, no whitespace, none of the delimiters `/,:;|`) only the first character is preceded
//! by "whitespace": a match that does not start there earns at most `BONUS_BOUNDARY` per
//! character. Finer, per character of the pattern: a character earns `BONUS_BOUNDARY` only
//! where it follows a non-word character (or is one), `BONUS_CAMEL123` only after a lower-case
//! letter or a non-digit, and nothing elsewhere; a character can continue a run (keeping the
//! run's bonus, at least `BONUS_CONSECUTIVE`) only if it follows the previous one somewhere in
//! the name, and otherwise pays at least `PENALTY_GAP_START`. `score_bounds_hold` checks the
//! bounds against the matcher on thousands of names; a matcher version that broke them fails
//! it.

use super::*;

/// nucleo's `SCORE_MATCH`.
pub(super) const MATCH: i64 = 16;
/// nucleo's largest bonus (`bonus_boundary_white`).
pub(super) const BONUS_MAX: i64 = 10;
/// nucleo's largest bonus after the first character of a plain name (`BONUS_BOUNDARY`).
pub(super) const BONUS_PLAIN: i64 = 8;
/// nucleo's `BONUS_CAMEL123`.
pub(super) const BONUS_CAMEL: i64 = 5;
/// nucleo's `BONUS_CONSECUTIVE`.
pub(super) const BONUS_RUN: i64 = 4;
/// nucleo's `PENALTY_GAP_START`.
pub(super) const GAP: i64 = 3;

/// The largest fuzzy score of a pattern of `n` characters whose bonuses are at most `bonus`.
pub(super) const fn fuzzy_bound(n: i64, bonus: i64) -> i64 {
    if n == 0 {
        return 0;
    }
    MATCH * n + 2 * bonus + bonus * (n - 1)
}

/// What a scan's score bound reads of one package's name, apart from [`Entry`]: one cache
/// line, so a bound costs at most one miss.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
pub(super) struct Head {
    /// The first byte of the lower-cased name when the name is plain (see above), else 0
    /// (and the other masks are unused).
    pub(super) first: u8,
    /// The name's length in bytes (the first tie-break after the score), saturated.
    pub(super) len: u32,
    /// The characters (by [`char_bit`]) that earn `BONUS_BOUNDARY` somewhere after the first.
    pub(super) boundary: u64,
    /// The characters that earn `BONUS_CAMEL123` somewhere after the first.
    pub(super) camel: u64,
    /// The adjacent pairs of the lower-cased name.
    pub(super) pairs: [u64; PAIR_WORDS],
    /// The first eight bytes of the lower-cased name ([`prefix_key`]), for the prefix pass
    /// and the exact and prefix bonuses.
    pub(super) prefix: u64,
}

impl Head {
    /// The head of `name`, whose lower-cased form is `lower`.
    pub(super) fn of(name: &str, lower: &[u8]) -> Head {
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
    pub(super) fn bonus(&self, bit: u8) -> i64 {
        if self.boundary >> bit & 1 == 1 {
            BONUS_PLAIN
        } else if self.camel >> bit & 1 == 1 {
            BONUS_CAMEL
        } else {
            0
        }
    }
}
