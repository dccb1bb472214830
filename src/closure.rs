//! Closures: which store paths a build output refers to, and how the output and everything
//! it needs become content-addressed store paths, as `nix store make-content-addressed` makes
//! them.
//!
//! The output is built at a private temporary path exactly as long as its final store path
//! (`/tmp/XXXXX/<32 random nix32>-<name>` against `/nix/store/<hash>-<name>`). Packing it
//! scans the NAR, in the same pass, for the hash parts of the paths in the local Nix store
//! and for its own temporary hash part. Each referenced store path is packed and scanned the
//! same way, recursively. Then, dependencies first, every path is made content-addressed:
//!
//! - its references to other paths are rewritten to their new paths (full path strings,
//!   `/nix/store/<old>-<name>` → `/nix/store/<new>-<name>`, as Nix does);
//! - its own build location becomes `/nix/store/` (the output only);
//! - its name is computed from the SHA-256 of the NAR modulo its own hash part (every
//!   occurrence replaced by NULs, then `|<offset>` per occurrence), its references and
//!   whether it refers to itself (`source:<refs>:self:sha256:…`);
//! - its own hash part is rewritten to the new one.
//!
//! A path that neither refers to itself nor to a rewritten path keeps its first packing: its
//! content-address is its NAR hash. Paths already content-addressed (`nix store add-path`)
//! come out unchanged.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::cache::{self, CacheError, PackOptions, PackedNar};
use crate::nar::{
    HashModulo, HashPart, RefScanner, Rewriter, Sha256Hash, StorePath, StorePathError,
};
use crate::narinfo::NarInfo;
use crate::sign::SecretKey;

/// The Nix store directory this machine's paths live in.
pub const NIX_STORE: &str = "/nix/store";
/// `/nix/store/`: the prefix every final path has (11 bytes).
const STORE_PREFIX: &str = "/nix/store/";

/// The store paths present in a local Nix store directory, by hash part.
#[derive(Debug, Default, Clone)]
pub struct KnownPaths {
    dir: PathBuf,
    by_hash: HashMap<HashPart, StorePath>,
}

impl KnownPaths {
    /// The paths in `dir` (`/nix/store`); none when it does not exist.
    pub fn scan(dir: &Path) -> io::Result<KnownPaths> {
        let mut by_hash = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(KnownPaths {
                    dir: dir.to_owned(),
                    by_hash,
                });
            }
            Err(e) => return Err(e),
        };
        for entry in entries {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            // Lock files and Nix's own bookkeeping are not store paths.
            if name.ends_with(".lock") || name.starts_with('.') {
                continue;
            }
            if let Ok(p) = StorePath::from_base_name(name) {
                by_hash.insert(p.hash_bytes(), p);
            }
        }
        Ok(KnownPaths {
            dir: dir.to_owned(),
            by_hash,
        })
    }

    /// The paths of the local Nix store.
    pub fn local() -> io::Result<KnownPaths> {
        KnownPaths::scan(Path::new(NIX_STORE))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn get(&self, hash: &HashPart) -> Option<&StorePath> {
        self.by_hash.get(hash)
    }

    /// Where `path`'s tree is on this machine.
    pub fn location(&self, path: &StorePath) -> PathBuf {
        self.dir.join(path.base_name())
    }

    fn hashes(&self) -> impl Iterator<Item = HashPart> + '_ {
        self.by_hash.keys().copied()
    }
}

/// Where a tree was built, which is what its references to itself name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltAs {
    /// The directory, with its trailing `/`: exactly as long as `/nix/store/`.
    pub prefix: String,
    /// The (temporary) hash part.
    pub hash: HashPart,
    /// The store path name (`<build>-<version>`).
    pub name: String,
}

impl BuiltAs {
    /// `<prefix><hash>-<name>`.
    pub fn path(&self) -> String {
        format!(
            "{}{}-{}",
            self.prefix,
            String::from_utf8_lossy(&self.hash),
            self.name
        )
    }

    fn of_store_path(p: &StorePath) -> BuiltAs {
        BuiltAs {
            prefix: STORE_PREFIX.into(),
            hash: p.hash_bytes(),
            name: p.name().to_string(),
        }
    }
}

/// A tree to publish: where it is and where it was built.
#[derive(Debug, Clone)]
pub struct Input {
    pub tree: PathBuf,
    pub built_as: BuiltAs,
}

/// One path of a closure, content-addressed and packed.
#[derive(Debug)]
pub struct PackedPath {
    pub store_path: StorePath,
    /// What it was: the local store path of a dependency, or the output's build location.
    pub was: String,
    pub packed: PackedNar,
    /// The content address: the NAR hash, or the hash modulo its own hash part.
    pub ca_hash: Sha256Hash,
    /// What it refers to (itself included when it does).
    pub references: Vec<StorePath>,
    pub self_reference: bool,
}

impl PackedPath {
    /// Its narinfo, signed by `key`: `References` includes the path itself when it refers to
    /// itself, and `CA` is `fixed:r:sha256:<content address>`.
    pub fn narinfo(&self, key: &SecretKey) -> NarInfo {
        let s = &self.packed.summary;
        let mut info = NarInfo {
            store_path: self.store_path.clone(),
            url: format!(
                "nar/{}{}",
                s.file_hash.to_nix32(),
                s.compression.extension()
            ),
            compression: s.compression,
            file_hash: Some(s.file_hash),
            file_size: Some(s.file_size),
            nar_hash: s.nar.nar_hash,
            nar_size: s.nar.nar_size,
            references: self.references.clone(),
            deriver: None,
            system: None,
            sigs: Vec::new(),
            ca: Some(crate::narinfo::ca_recursive_sha256(&self.ca_hash)),
            extra: Vec::new(),
        };
        info.references.sort();
        info.references.dedup();
        info.sign(key);
        info
    }
}

/// What [`add_closure`] did with one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Uploaded,
    /// A dependency the store already had (its narinfo names its content).
    AlreadyThere,
}

/// Adds a packed closure to `store` with `cache::add_path`, dependencies first, so no narinfo
/// names a path whose references are missing; the last path (the output) is always written
/// (an identical narinfo is accepted, a different one refused). `progress(i)` gives the
/// progress sink for the `i`-th path.
pub async fn add_closure(
    store: &crate::store::Store,
    closure: &[PackedPath],
    infos: &[NarInfo],
    put: &crate::store::PutOptions,
    mut progress: impl FnMut(usize) -> crate::store::ProgressSink,
) -> Result<Vec<Added>, CacheError> {
    let last = closure.len().saturating_sub(1);
    let mut out = Vec::with_capacity(closure.len());
    for (i, (p, info)) in closure.iter().zip(infos).enumerate() {
        if i < last && cache::refresh(store, info).await? {
            out.push(Added::AlreadyThere);
            continue;
        }
        cache::add_path_listed(
            store,
            p.packed.file.path(),
            p.packed.listing.as_deref(),
            info,
            put,
            &progress(i),
        )
        .await?;
        out.push(Added::Uploaded);
        if i < last {
            crate::failpoint::pause("upload-closure").await;
        }
    }
    Ok(out)
}

/// The tree at `tree` as an [`Input`] not built by pubdeck (`pubdeck pack`): it refers to
/// no temporary location of its own.
pub fn input_for_tree(tree: &Path, name: &str) -> Result<Input, StorePathError> {
    crate::nar::validate_name(name)?;
    let mut hash = [0u8; 32];
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    for (h, r) in hash.iter_mut().zip(rand::random::<[u8; 32]>()) {
        *h = alphabet[usize::from(r % 32)];
    }
    Ok(Input {
        tree: tree.to_path_buf(),
        built_as: BuiltAs {
            prefix: STORE_PREFIX.into(),
            hash,
            name: name.to_string(),
        },
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClosureError {
    #[error(transparent)]
    Pack(#[from] CacheError),
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("the store paths {0} refer to each other in a cycle, which Nix cannot store")]
    Cycle(String),
    #[error("packing was cancelled")]
    Cancelled,
}

/// A packed tree and what its scan found.
struct Node {
    input: Input,
    pass1: PackedNar,
    self_reference: bool,
    refs: Vec<usize>,
}

/// Packs `top` and every store path it needs (found in `known`) into content-addressed
/// store paths in `tmp_dir`, dependencies first, `top` last.
pub fn pack_closure(
    top: &Input,
    known: &KnownPaths,
    opts: &PackOptions,
    tmp_dir: &Path,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<PackedPath>, ClosureError> {
    // Pass 1: pack and scan each path once, following references.
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<HashPart, usize> = HashMap::new();
    let mut found_refs: Vec<Vec<HashPart>> = Vec::new();
    let mut queue = vec![top.clone()];
    while let Some(input) = queue.pop() {
        if cancelled() {
            return Err(ClosureError::Cancelled);
        }
        let own = input.built_as.hash;
        let mut scanner = RefScanner::new(known.hashes().chain([own]));
        let pass1 = cache::pack_path_scanning(&input.tree, opts, tmp_dir, &mut scanner)?;
        let found = scanner.into_found();
        let self_reference = found.contains(&own);
        let mut refs: Vec<HashPart> = found.into_iter().filter(|h| *h != own).collect();
        refs.sort_unstable();
        for h in &refs {
            if !index.contains_key(h) && !queue.iter().any(|q| q.built_as.hash == *h) {
                let p = known.get(h).expect("found hashes are known or own");
                queue.push(Input {
                    tree: known.location(p),
                    built_as: BuiltAs::of_store_path(p),
                });
            }
        }
        index.insert(own, nodes.len());
        found_refs.push(refs);
        nodes.push(Node {
            input,
            pass1,
            self_reference,
            refs: Vec::new(),
        });
    }
    for (node, refs) in nodes.iter_mut().zip(&found_refs) {
        node.refs = refs.iter().map(|h| index[h]).collect();
    }
    let order = dependencies_first(&nodes)?;

    // Then, dependencies first: rewrite references, hash modulo self, rewrite self.
    let built_as: Vec<String> = nodes.iter().map(|n| n.input.built_as.path()).collect();
    let mut finals: Vec<Option<StorePath>> = (0..nodes.len()).map(|_| None).collect();
    let mut nodes: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(order.len());
    for i in order {
        if cancelled() {
            return Err(ClosureError::Cancelled);
        }
        let node = nodes[i].take().expect("each node once");
        let refs: Vec<(String, StorePath)> = node
            .refs
            .iter()
            .map(|&r| {
                let new = finals[r].clone().expect("dependencies come first");
                (built_as[r].clone(), new)
            })
            .collect();
        let packed = make_content_addressed(node, &refs, opts, tmp_dir)?;
        finals[i] = Some(packed.store_path.clone());
        out.push(packed);
    }
    Ok(out)
}

/// Node indices in an order where every node comes after the nodes it refers to.
fn dependencies_first(nodes: &[Node]) -> Result<Vec<usize>, ClosureError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    // Iterative DFS, post-order.
    for start in 0..nodes.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        while let Some((n, next)) = stack.pop() {
            if let Some(&r) = nodes[n].refs.get(next) {
                stack.push((n, next + 1));
                match mark[r] {
                    Mark::New => {
                        mark[r] = Mark::Active;
                        stack.push((r, 0));
                    }
                    Mark::Active => {
                        return Err(ClosureError::Cycle(format!(
                            "{} and {}",
                            nodes[n].input.built_as.path(),
                            nodes[r].input.built_as.path()
                        )));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[n] = Mark::Done;
                order.push(n);
            }
        }
    }
    Ok(order)
}

/// Makes one path content-addressed; `refs` are its references as (the path string they
/// had when it was built, their final path).
fn make_content_addressed(
    node: Node,
    refs: &[(String, StorePath)],
    opts: &PackOptions,
    tmp_dir: &Path,
) -> Result<PackedPath, ClosureError> {
    let b = &node.input.built_as;
    let new_refs: Vec<StorePath> = refs.iter().map(|(_, new)| new.clone()).collect();
    let mut rewrites: Vec<(Vec<u8>, Vec<u8>)> = refs
        .iter()
        .map(|(old, new)| (old.clone().into_bytes(), new.to_string().into_bytes()))
        .filter(|(old, new)| old != new)
        .collect();
    let was = b.path();
    if !node.self_reference && rewrites.is_empty() {
        // Nothing to rewrite: the first packing is final; its address is its NAR hash.
        let ca_hash = node.pass1.summary.nar.nar_hash;
        let store_path = StorePath::from_ca(&ca_hash, &b.name, &new_refs, false)?;
        return Ok(PackedPath {
            store_path,
            was,
            packed: node.pass1,
            ca_hash,
            references: new_refs,
            self_reference: false,
        });
    }
    if node.self_reference && b.prefix != STORE_PREFIX {
        // Where the output was built becomes /nix/store/ (same length).
        let own = String::from_utf8_lossy(&b.hash).into_owned();
        rewrites.push((
            format!("{}{own}", b.prefix).into_bytes(),
            format!("{STORE_PREFIX}{own}").into_bytes(),
        ));
    }
    // Pass 2: the hash modulo the own hash part, after the reference rewrites.
    let mut modulo = HashModulo::new(&b.hash, rewrites.clone());
    let mut nar = cache::unpacked_reader(&node.pass1)?;
    io::copy(&mut nar, &mut modulo).map_err(|e| io_error(&node, e))?;
    let (ca_hash, _) = modulo.finish().map_err(|e| io_error(&node, e))?;
    let store_path = StorePath::from_ca(&ca_hash, &b.name, &new_refs, node.self_reference)?;
    // Pass 3: the final NAR, with the own hash part rewritten too.
    let new_hash = store_path.hash_part().as_bytes().to_vec();
    let packed = cache::pack_nar_with(opts, tmp_dir, |w| {
        let mut nar = cache::unpacked_reader(&node.pass1).map_err(io::Error::other)?;
        let mut rw = Rewriter::new(w, rewrites, Some((b.hash.to_vec(), new_hash)));
        io::copy(&mut nar, &mut rw)?;
        rw.finish().map(|_| ())
    })?;
    let mut references = new_refs;
    if node.self_reference {
        references.push(store_path.clone());
        references.sort();
    }
    Ok(PackedPath {
        store_path,
        was,
        packed,
        ca_hash,
        references,
        self_reference: node.self_reference,
    })
}

fn io_error(node: &Node, e: io::Error) -> ClosureError {
    ClosureError::Io {
        path: node.input.tree.clone(),
        source: e,
    }
}
