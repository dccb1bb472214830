//! The compact index: every package's strings in one buffer, its lower-cased forms, bit
//! masks and name heads beside them, and a catalog's index as the service keeps it
//! ([`CatalogIndex`]).

use super::*;

/// A range of [`SearchIndex::text`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) len: usize,
}

/// One organisation of an index.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrgEntry {
    pub(super) name: Span,
    pub(super) lower: Span,
    pub(super) chars: usize,
    /// The characters and pairs of the lower-cased name ([`char_and_pair_masks`]), which
    /// every package's description masks include: a term may name the organisation.
    pub(super) mask: u64,
    pub(super) pairs: [u64; PAIR_WORDS],
}

/// One package of an index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) org: u32,
    pub(super) name: Span,
    pub(super) lower_name: Span,
    pub(super) version: Span,
    pub(super) description: Span,
    pub(super) lower_description: Span,
}

/// What the prefilters read of one package, kept apart from [`Entry`] so a scan reads 16
/// bytes per package.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Chars {
    /// The characters of the lower-cased name ([`char_mask`]; all bits when not ASCII).
    pub(super) name: u64,
    /// The characters of the lower-cased description and organisation (a term matches
    /// either, [`text_score`]).
    pub(super) description: u64,
}

/// An immutable index over packages: `(org, name, version, description)` in a fixed order;
/// ids are positions in that order. Every string lives in one buffer, so building an index of
/// 100,000 packages is a handful of allocations, and scoring reads names in place.
#[derive(Default)]
pub struct SearchIndex {
    pub(super) text: String,
    pub(super) orgs: Vec<OrgEntry>,
    pub(super) entries: Vec<Entry>,
    /// Per entry, in the same order.
    pub(super) chars: Vec<Chars>,
    /// Per entry: the character pairs of the lower-cased description.
    pub(super) pairs: Vec<[u64; PAIR_WORDS]>,
    /// Per entry: what the score bound reads.
    pub(super) heads: Vec<Head>,
    /// Per entry: the words of the lower-cased description ([`word_mask`]).
    pub(super) words: Vec<u64>,
    /// `chars` and `pairs` transposed ([`Columns`]), built for an index a [`ScanSet`] reads
    /// again ([`SearchIndex::build_columns`]).
    pub(super) columns: std::sync::OnceLock<Columns>,
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
    pub(super) idx: SearchIndex,
    pub(super) org_ids: HashMap<String, u32>,
    pub(super) last_org: Option<(String, u32)>,
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

    pub(super) fn push_str(&mut self, s: &str) -> Span {
        let start = self.idx.text.len();
        self.idx.text.push_str(s);
        Span {
            start,
            len: s.len(),
        }
    }

    /// The span of `s` lower-cased: `same` when lower-casing changes nothing.
    pub(super) fn push_lower(&mut self, s: &str, same: Span) -> Span {
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

    pub(super) fn org_id(&mut self, org: &str) -> u32 {
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
    pub(super) fn for_candidates(
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
    pub(super) fn prefetch_name(&self, id: usize) {
        if let Some(b) = self.text.as_bytes().get(self.entries[id].name.start) {
            prefetch(b);
        }
    }

    /// Builds this index's [`Columns`] (once).
    pub(super) fn build_columns(&self) {
        self.columns.get_or_init(|| Columns::of(self));
    }

    /// About the heap memory of this index, without its columns.
    pub(super) fn heap_bytes(&self) -> usize {
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
    pub(super) fn columns(&self) -> Option<&Columns> {
        self.columns.get()
    }

    /// The packages that pass the character filters of every term (`Query::character_needs`),
    /// in index order: one pass over 16 bytes per package.
    pub(super) fn candidates<'a>(&'a self, need: &'a [Need]) -> impl Iterator<Item = usize> + 'a {
        (0..self.len()).filter(move |&id| self.may_match(id, need))
    }

    /// Whether package `id` passes the character filters of every term.
    pub(super) fn may_match(&self, id: usize, need: &[Need]) -> bool {
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

    pub(super) fn at(&self, span: Span) -> &str {
        &self.text[span.start..span.start + span.len]
    }

    pub(super) fn org_entry(&self, id: usize) -> &OrgEntry {
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

    pub(super) fn lower_name(&self, id: usize) -> &str {
        self.at(self.entries[id].lower_name)
    }

    pub(super) fn lower_description(&self, id: usize) -> &str {
        self.at(self.entries[id].lower_description)
    }

    /// Whether a term of `q` (without `/`) is the name of an organisation of this index.
    pub(super) fn names_an_org(&self, q: &Query) -> bool {
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
