//! What publish is about to upload, for the user to approve: plain data the pipeline fills
//! (`publish::review`) and the faces show.

use serde::Serialize;

/// What publish is about to upload, for the user to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Review {
    /// `org/package@version`.
    pub reference: String,
    pub system: String,
    /// Where it is registered: the catalog service URL or catalog file.
    pub catalog: String,
    pub org: String,
    /// The store, without credentials.
    pub store_url: String,
    pub key_name: String,
    pub store_path: String,
    /// Dependencies first, the package last.
    pub closure: Vec<ReviewPath>,
    /// Uncompressed size of the whole closure.
    pub nar_total: u64,
    /// Compressed bytes not in the store yet (what the upload sends).
    pub upload_bytes: u64,
    /// The last published version of the package for this system, when there is one.
    pub previous: Option<Previous>,
}

/// One store path of the closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewPath {
    pub store_path: String,
    pub nar_size: u64,
    pub file_size: u64,
    /// Its narinfo is in the store already: it is not uploaded again.
    pub in_store: bool,
}

/// The comparison with the last published version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Previous {
    pub version: String,
    pub store_path: String,
    pub nar_size: u64,
    /// New NAR size minus the previous one.
    pub size_delta: i64,
    /// From the two NAR listings; `None` when the previous one has no listing.
    pub diff: Option<FileDiff>,
    /// Why there is no diff.
    pub note: Option<String>,
}

/// Files added, removed and changed between two NAR listings. "Changed" means another type,
/// size, executable bit or symlink target (a listing has no content hashes).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FileDiff {
    pub added: Vec<FileEntry>,
    pub removed: Vec<FileEntry>,
    pub changed: Vec<FileChange>,
}

impl FileDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A file, directory or symlink of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Relative to the store path (`bin/hello`; empty for the root).
    pub path: String,
    pub node: Node,
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Node {
    Regular { size: u64, executable: bool },
    Symlink { target: String },
    Directory,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::Regular {
                size,
                executable: true,
            } => write!(f, "executable, {size} B"),
            Node::Regular { size, .. } => write!(f, "file, {size} B"),
            Node::Symlink { target } => write!(f, "symlink to {target}"),
            Node::Directory => f.write_str("directory"),
        }
    }
}

/// A path whose node differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub before: Node,
    pub after: Node,
}
