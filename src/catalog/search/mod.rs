//! One search for every face: the service, the CLI (`pubdeck search`) and the workbench's
//! per-keystroke filter all rank with [`rank`] over a [`SearchIndex`], so the same query
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
//! The service keeps one [`SearchIndex`] per catalog in memory (its `SearchCache`, in
//! `catalog/search_service.rs`), reloaded when the catalog's `generation` moves on.
//!
//! One concern per file: `index` (the compact index and its buffers), `prefilter` (character
//! and pair bit masks, the transposed columns), `bounds` (score bounds from the matcher's
//! rules), `query` (terms and what they need), `rank` (scoring, tiers and the one order of
//! results), `parallel` (splitting work across cores), `scan` (the service's bounded scan
//! over visible sets), `filter` (the workbench's per-keystroke filter), `suggest` (the
//! nearest names when nothing matches).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use nucleo_matcher::pattern::{Atom, AtomKind, CaseMatching, Normalization};
use nucleo_matcher::{Config, Matcher, Utf32Str};

use super::{PackageSummary, SearchAnswer, SearchHit};

mod bounds;
mod filter;
mod index;
mod parallel;
mod prefilter;
mod query;
mod rank;
mod scan;
mod suggest;
#[cfg(test)]
pub(crate) mod tests;

use bounds::*;
use prefilter::*;
use query::*;
use rank::*;
use scan::*;

pub use filter::Filter;
pub use index::{CatalogIndex, SearchIndex, SearchIndexBuilder};
pub use parallel::ScanPanicked;
pub(crate) use parallel::{cores, even_runs, on_cores, threads_for};
pub use query::Query;
pub use rank::{Hit, rank, score};
pub use scan::ScanSet;
pub(crate) use scan::{Lists, MERGED_BYTES};
pub use suggest::{SUGGESTIONS, suggest};

/// Results the workbench keeps for display.
pub const DISPLAY_CAP: usize = 500;
