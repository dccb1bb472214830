//! A client's copy of the package listing, kept current by fetching only what changed.
//!
//! The workbench's Catalog tab holds every visible package (100,000 of them, at scale) to
//! filter them per keystroke. After a publish or a yank one catalog changed; fetching and
//! indexing the whole listing again costs more than a second over HTTP. The mirror keeps one
//! search index per catalog, asks the catalog which catalogs changed
//! ([`Catalog::list_changes`]), indexes only those, and joins the per-catalog indexes into
//! the one index the filter reads ([`SearchIndex::concat`], a copy of buffers).

use std::collections::HashMap;
use std::sync::Arc;

use super::search::SearchIndex;
use super::{Catalog, CatalogResult, ListedCatalog, ListingChanges};

/// A [`ListingChanges`] whose changed catalogs come indexed
/// ([`Catalog::list_changes_indexed`]).
#[derive(Debug, Clone)]
pub struct IndexedChanges {
    /// The ETag of the whole listing now.
    pub etag: String,
    /// Every visible catalog, in listing order, with its version.
    pub catalogs: Vec<ListedCatalog>,
    /// The visible catalogs whose version the caller did not know, at the version indexed.
    pub changed: Vec<(ListedCatalog, Arc<SearchIndex>)>,
}

impl IndexedChanges {
    /// Indexes the package lists of `changes`.
    pub fn index(changes: ListingChanges) -> IndexedChanges {
        IndexedChanges {
            etag: changes.etag,
            catalogs: changes.catalogs,
            changed: changes
                .changed
                .into_iter()
                .map(|c| {
                    let index = Arc::new(SearchIndex::of_packages(&c.packages));
                    let listed = ListedCatalog {
                        name: c.name,
                        version: c.version,
                    };
                    (listed, index)
                })
                .collect(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct PackageMirror {
    /// The ETag of the listing held; `None` before the first refresh.
    etag: Option<String>,
    /// The catalogs held, in listing order, with their indexes.
    catalogs: Vec<(ListedCatalog, Arc<SearchIndex>)>,
    /// All of them joined.
    joined: Arc<SearchIndex>,
}

/// What a refresh did.
#[derive(Debug, Clone)]
pub enum MirrorUpdate {
    /// Nothing changed since the last refresh.
    Unchanged,
    /// The listing changed: `index` is all of it now.
    Changed {
        index: Arc<SearchIndex>,
        etag: String,
        /// Catalogs whose package lists were fetched (the others were kept).
        fetched_catalogs: usize,
        /// Packages in them.
        fetched_packages: usize,
        /// Catalogs no longer listed.
        dropped_catalogs: usize,
    },
}

impl PackageMirror {
    pub fn new() -> PackageMirror {
        PackageMirror::default()
    }

    /// The whole listing as of the last refresh.
    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.joined
    }

    /// The ETag of the listing held.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Brings the copy up to date with `catalog`. On error the copy is left as it was.
    pub async fn refresh(&mut self, catalog: &impl Catalog) -> CatalogResult<MirrorUpdate> {
        let known: Vec<ListedCatalog> = self.catalogs.iter().map(|(c, _)| c.clone()).collect();
        let changes = catalog.list_changes_indexed(&known).await?;
        let mut held: HashMap<String, (ListedCatalog, Arc<SearchIndex>)> = self
            .catalogs
            .drain(..)
            .map(|(c, idx)| (c.name.clone(), (c, idx)))
            .collect();
        let mut fetched: HashMap<String, (String, Arc<SearchIndex>)> = HashMap::new();
        let fetched_catalogs = changes.changed.len();
        let mut fetched_packages = 0;
        for (c, index) in changes.changed {
            fetched_packages += index.len();
            fetched.insert(c.name, (c.version, index));
        }
        let mut catalogs = Vec::with_capacity(changes.catalogs.len());
        for listed in changes.catalogs {
            let entry = match fetched.remove(&listed.name) {
                Some((version, index)) => Some((
                    ListedCatalog {
                        name: listed.name.clone(),
                        version,
                    },
                    index,
                )),
                None => held
                    .remove(&listed.name)
                    .filter(|(c, _)| c.version == listed.version),
            };
            match entry {
                Some(e) => catalogs.push(e),
                // Listed, not fetched, and not held at that version: the catalog broke its
                // contract. Keep nothing of it; the next refresh asks for it again.
                None => {
                    tracing::warn!(catalog = %listed.name, "the listing left out a changed catalog")
                }
            }
        }
        let dropped_catalogs = held.len();
        let unchanged = fetched_catalogs == 0
            && dropped_catalogs == 0
            && self.etag.as_deref() == Some(changes.etag.as_str());
        self.catalogs = catalogs;
        self.etag = Some(changes.etag.clone());
        if unchanged {
            return Ok(MirrorUpdate::Unchanged);
        }
        let parts: Vec<&SearchIndex> = self.catalogs.iter().map(|(_, idx)| &**idx).collect();
        self.joined = Arc::new(SearchIndex::concat(&parts));
        Ok(MirrorUpdate::Changed {
            index: Arc::clone(&self.joined),
            etag: changes.etag,
            fetched_catalogs,
            fetched_packages,
            dropped_catalogs,
        })
    }
}
