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

pub mod memo;
pub mod nixdb;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::cache::{self, CacheError, PackOptions, PackedNar};
use crate::nix::nar::{HashModulo, HashPart, RefScanner, Rewriter};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::SecretKey;
use crate::nix::{STORE_DIR, STORE_PREFIX, Sha256Hash, StorePath, StorePathError};
use crate::store::Store;

pub use memo::{Became, Memo};
pub use nixdb::{NixDb, NixDbError, Registered};

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
        KnownPaths::scan(Path::new(STORE_DIR))
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
            ca: Some(crate::nix::narinfo::ca_recursive_sha256(&self.ca_hash)),
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

/// Adds the packed paths of a closure to `store` with `cache::add_path`, dependencies first,
/// so no narinfo names a path whose references are missing. Every path goes through
/// `add_path`: an identical narinfo (or the same path signed alike by another tool) is taken
/// as already there, a different one refused — a dependency that was packed is one whose
/// published form could not be confirmed, so nothing already in the store is trusted blindly.
/// `progress(i)` gives the progress sink for the `i`-th path.
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
        let outcome = cache::add_path_listed(
            store,
            p.packed.file.path(),
            p.packed.listing.as_deref(),
            info,
            put,
            &progress(i),
        )
        .await?;
        out.push(match outcome {
            cache::Outcome::Added => Added::Uploaded,
            cache::Outcome::AlreadyPresent if i < last => Added::AlreadyThere,
            cache::Outcome::AlreadyPresent => Added::Uploaded,
        });
        if i < last {
            crate::failpoint::pause("upload-closure").await;
        }
    }
    Ok(out)
}

/// The tree at `tree` as an [`Input`] not built by pubdeck (`pubdeck pack`): it refers to
/// no temporary location of its own.
pub fn input_for_tree(tree: &Path, name: &str) -> Result<Input, StorePathError> {
    crate::nix::validate_name(name)?;
    let hash = crate::nix::random_hash_part();
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
    /// A dependency uploaded while the rest was packing ([`EarlyUpload`]) was not.
    #[error(transparent)]
    Upload(CacheError),
    #[error(transparent)]
    NixDb(#[from] NixDbError),
    #[error("{path} was deleted from the store while publishing, and packing it again gave {got}")]
    Repacked { path: StorePath, got: StorePath },
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
    let refs: Vec<&[usize]> = nodes.iter().map(|n| n.refs.as_slice()).collect();
    order_dependencies_first(&refs, |i| nodes[i].input.built_as.path())
}

/// Indices `0..refs.len()` in an order where each comes after the ones it refers to;
/// `name(i)` names one in the error about a cycle.
fn order_dependencies_first(
    refs: &[&[usize]],
    name: impl Fn(usize) -> String,
) -> Result<Vec<usize>, ClosureError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; refs.len()];
    let mut order = Vec::with_capacity(refs.len());
    // Iterative DFS, post-order.
    for start in 0..refs.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        while let Some((n, next)) = stack.pop() {
            if let Some(&r) = refs[n].get(next) {
                stack.push((n, next + 1));
                match mark[r] {
                    Mark::New => {
                        mark[r] = Mark::Active;
                        stack.push((r, 0));
                    }
                    Mark::Active => {
                        return Err(ClosureError::Cycle(format!("{} and {}", name(n), name(r))));
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

/// How many narinfos [`prepare`] asks the store for at once.
const STORE_QUERIES: usize = 32;

/// A dependency the store already holds in its published form: neither packed nor read.
#[derive(Debug, Clone)]
pub struct ReusedPath {
    pub store_path: StorePath,
    /// The local store path it was made from.
    pub was: String,
    /// The store's narinfo: what the memo (or Nix's own CA) said the path became, signed by
    /// the publisher's key, its NAR present.
    pub info: NarInfo,
    /// How to pack it again (a concurrent GC may delete it before the registration).
    recipe: Recipe,
}

#[derive(Debug, Clone)]
struct Recipe {
    input: Input,
    /// Its references other than itself: (local path, what that became).
    refs: Vec<(String, StorePath)>,
    self_reference: bool,
}

/// A closure ready to upload: dependencies the store already has, and the packed rest
/// (dependencies first, the output last).
#[derive(Debug)]
pub struct Closure {
    pub reused: Vec<ReusedPath>,
    pub packed: Vec<PackedPath>,
    /// When [`prepare`] uploaded the packed dependencies ([`EarlyUpload`]): what it did with
    /// each (`packed` but its last, in order); the output is left to upload.
    pub uploaded: Option<Vec<Added>>,
}

impl Closure {
    /// The output: always packed, always last.
    pub fn top(&self) -> &PackedPath {
        self.packed.last().expect("the closure holds the output")
    }

    /// Every path with its NAR size: reused dependencies, then the packed paths in order.
    pub fn paths(&self) -> impl Iterator<Item = (&StorePath, u64)> {
        self.reused
            .iter()
            .map(|r| (&r.store_path, r.info.nar_size))
            .chain(
                self.packed
                    .iter()
                    .map(|p| (&p.store_path, p.packed.summary.nar.nar_size)),
            )
    }

    /// A closure of packed paths only (what [`pack_closure`] gives).
    pub fn all_packed(packed: Vec<PackedPath>) -> Closure {
        Closure {
            reused: Vec::new(),
            packed,
            uploaded: None,
        }
    }
}

/// Where [`prepare`] learns about dependencies: the local store's paths (what the output's
/// scan looks for), Nix's database, and the memo (none: nothing remembered or recorded).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub nix_db: NixDb,
    pub memo: Option<Memo>,
}

/// One dependency, as Nix registered it.
struct Dep {
    reg: Registered,
    /// Indices of its references (itself excluded).
    refs: Vec<usize>,
    self_reference: bool,
}

/// Packs `top` and makes its closure content-addressed, reading only what the store lacks.
///
/// The output is packed and scanned for the paths of the local store it names (its own
/// references); everything those reach comes from Nix's database. For each dependency, what
/// it became is known without reading it when the memo remembers it (keyed by its path and
/// the NarHash Nix registered) or when Nix says it is content-addressed already and nothing
/// it refers to changes. The store is asked for those narinfos, [`STORE_QUERIES`] at a time;
/// a dependency is reused only when the store's narinfo says exactly what was expected
/// (path, NarHash, NarSize, references, CA), is signed by `key`, its NAR is there, and what
/// its own dependencies became in this publish is what it refers to. Every other dependency
/// is packed, dependencies first, and remembered.
#[allow(clippy::too_many_arguments)]
pub async fn prepare(
    top: &Input,
    sources: &Sources,
    store: &Store,
    key: &SecretKey,
    opts: &PackOptions,
    tmp_dir: &Path,
    early: Option<&EarlyUpload>,
    cancel: &CancellationToken,
) -> Result<Closure, ClosureError> {
    // The output: packed and scanned against every path of the local store.
    let (input, o, dir, stop) = (top.clone(), *opts, tmp_dir.to_owned(), cancel.clone());
    let scanned = blocking(move || {
        let known = KnownPaths::local().map_err(|e| ClosureError::Io {
            path: STORE_DIR.into(),
            source: e,
        })?;
        if stop.is_cancelled() {
            return Err(ClosureError::Cancelled);
        }
        let own = input.built_as.hash;
        let mut scanner = RefScanner::new(known.hashes().chain([own]));
        let pass1 = cache::pack_path_scanning(&input.tree, &o, &dir, &mut scanner)?;
        let found = scanner.into_found();
        let self_reference = found.contains(&own);
        let mut refs: Vec<StorePath> = found
            .iter()
            .filter(|h| **h != own)
            .map(|h| known.get(h).expect("found hashes are known or own").clone())
            .collect();
        refs.sort();
        let node = Node {
            input,
            pass1,
            self_reference,
            refs: Vec::new(),
        };
        Ok((node, refs))
    })
    .await?;
    let (top_node, top_refs) = scanned;

    // Its dependencies, from Nix's database; when Nix cannot tell, every path is packed and
    // scanned as before.
    let registered = match nixdb::closure_of(&sources.nix_db, &top_refs).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "packing every dependency: Nix's database is not readable");
            drop(top_node);
            let (input, o, dir, stop) = (top.clone(), *opts, tmp_dir.to_owned(), cancel.clone());
            return blocking(move || {
                let known = KnownPaths::local().map_err(|e| ClosureError::Io {
                    path: STORE_DIR.into(),
                    source: e,
                })?;
                pack_closure(&input, &known, &o, &dir, &|| stop.is_cancelled())
                    .map(Closure::all_packed)
            })
            .await;
        }
    };
    let deps = order_deps(registered)?;

    // What each dependency is expected to have become, without reading it.
    let mut expected: Vec<Option<Became>> = Vec::with_capacity(deps.len());
    for d in &deps {
        let e = sources
            .memo
            .as_ref()
            .and_then(|m| m.get(&d.reg.path, &d.reg.nar_hash))
            .or_else(|| already_content_addressed(d, &deps, &expected));
        expected.push(e);
    }
    // Which of those the store holds as expected (concurrently, bounded).
    let mut confirmed: Vec<Option<NarInfo>> = (0..deps.len()).map(|_| None).collect();
    let wanted: Vec<(usize, Became)> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.clone().map(|e| (i, e)))
        .collect();
    let checks = futures::stream::iter(wanted)
        .map(|(i, e)| async move { (i, published_as(store, key, &e).await) })
        .buffer_unordered(STORE_QUERIES);
    tokio::pin!(checks);
    while let Some((i, info)) = tokio::select! {
        c = checks.next() => c,
        _ = cancel.cancelled() => return Err(ClosureError::Cancelled),
    } {
        confirmed[i] = info;
    }

    // Dependencies first: reuse what is confirmed and consistent, pack the rest, each as
    // soon as what it refers to is known, on every core; upload each (when asked) as soon as
    // its NAR is ready.
    let DepsDone {
        finals,
        mut closure,
    } = pack_dependencies(
        &deps, &expected, confirmed, sources, store, key, opts, tmp_dir, early, cancel,
    )
    .await?;

    // The output, last.
    let refs: Vec<(String, StorePath)> = top_refs
        .iter()
        .map(|r| {
            let i = deps
                .iter()
                .position(|d| d.reg.path == *r)
                .expect("the output's references are in the closure");
            (
                r.to_string(),
                finals[i].clone().expect("every dependency is done"),
            )
        })
        .collect();
    let (o, dir) = (*opts, tmp_dir.to_owned());
    let top = blocking(move || make_content_addressed(top_node, &refs, &o, &dir)).await?;
    closure.packed.push(top);
    Ok(closure)
}

/// Packs `reused` again (the store lost it after it was confirmed): the same path, or an error.
pub fn repack(
    reused: &ReusedPath,
    opts: &PackOptions,
    tmp_dir: &Path,
) -> Result<PackedPath, ClosureError> {
    let (_, packed) = pack_dependency(&reused.recipe, opts, tmp_dir)?;
    if packed.store_path != reused.store_path {
        return Err(ClosureError::Repacked {
            path: reused.store_path.clone(),
            got: packed.store_path,
        });
    }
    Ok(packed)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ClosureError> + Send + 'static,
) -> Result<T, ClosureError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ClosureError::Io {
            path: STORE_DIR.into(),
            source: io::Error::other(e),
        })?
}

/// The dependencies in an order where each comes after what it refers to.
fn order_deps(registered: Vec<Registered>) -> Result<Vec<Dep>, ClosureError> {
    let index: HashMap<StorePath, usize> = registered
        .iter()
        .enumerate()
        .map(|(i, r)| (r.path.clone(), i))
        .collect();
    let mut refs = Vec::with_capacity(registered.len());
    for r in &registered {
        let mut v = Vec::new();
        for p in r.references.iter().filter(|p| **p != r.path) {
            // Nix keeps closures whole: a reference outside is a database it cannot trust.
            let i = index.get(p).ok_or_else(|| {
                ClosureError::NixDb(NixDbError::NotValid(format!(
                    "{p} (a reference of {})",
                    r.path
                )))
            })?;
            v.push(*i);
        }
        refs.push(v);
    }
    let slices: Vec<&[usize]> = refs.iter().map(Vec::as_slice).collect();
    let order = order_dependencies_first(&slices, |i| registered[i].path.to_string())?;
    let mut position = vec![0; registered.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut slots: Vec<Option<(Registered, Vec<usize>)>> =
        registered.into_iter().zip(refs).map(Some).collect();
    Ok(order
        .iter()
        .map(|&i| {
            let (reg, refs) = slots[i].take().expect("each once");
            let self_reference = reg.references.contains(&reg.path);
            Dep {
                refs: refs.iter().map(|&r| position[r]).collect(),
                reg,
                self_reference,
            }
        })
        .collect())
}

/// What `d` becomes when Nix says it is content-addressed (`fixed:r:sha256:`) and nothing it
/// refers to changes: itself, as Nix registered it.
fn already_content_addressed(d: &Dep, deps: &[Dep], expected: &[Option<Became>]) -> Option<Became> {
    let ca = d.reg.ca.as_deref()?.strip_prefix("fixed:r:")?;
    if !ca.starts_with("sha256:") {
        return None;
    }
    let ca_hash = Sha256Hash::parse_any(ca).ok()?;
    for &r in &d.refs {
        if expected[r].as_ref()?.store_path != deps[r].reg.path {
            return None;
        }
    }
    let others: Vec<StorePath> = d.refs.iter().map(|&r| deps[r].reg.path.clone()).collect();
    if !d.self_reference && ca_hash != d.reg.nar_hash {
        return None;
    }
    let path = StorePath::from_ca(&ca_hash, d.reg.path.name(), &others, d.self_reference).ok()?;
    (path == d.reg.path).then(|| Became {
        store_path: path,
        nar_hash: d.reg.nar_hash,
        nar_size: d.reg.nar_size,
        references: d.reg.references.clone(),
        ca_hash,
    })
}

/// Whether what `e` says a dependency refers to is what its dependencies became now.
fn refers_to(e: &Became, recipe: &Recipe) -> bool {
    let mut now: Vec<&StorePath> = recipe.refs.iter().map(|(_, p)| p).collect();
    if recipe.self_reference {
        now.push(&e.store_path);
    }
    now.sort();
    now.dedup();
    now.len() == e.references.len() && now.iter().zip(&e.references).all(|(a, b)| *a == b)
}

/// The store's narinfo for `e.store_path`, when it says what `e` says, is signed by `key`,
/// and its NAR is there (both marked as written now, as `cache::refresh` does).
async fn published_as(store: &Store, key: &SecretKey, e: &Became) -> Option<NarInfo> {
    let info = cache::narinfo(store, e.store_path.hash_part())
        .await
        .ok()??;
    let mut refs = info.references.clone();
    refs.sort();
    let same = info.store_path == e.store_path
        && info.nar_hash == e.nar_hash
        && info.nar_size == e.nar_size
        && refs == e.references
        && cache::require_content_address(&info).ok()?.hash == e.ca_hash
        // ed25519 is deterministic: our key over this fingerprint gives exactly this
        // signature (cheaper to make than to verify another).
        && info.sigs.contains(&key.sign(info.fingerprint().as_bytes()));
    if !same || !cache::refresh(store, &info).await.ok()? {
        return None;
    }
    Some(info)
}

/// Packs one dependency and makes it content-addressed; also returns its first NAR hash
/// (what Nix registered, if its bytes are intact).
fn pack_dependency(
    recipe: &Recipe,
    opts: &PackOptions,
    tmp_dir: &Path,
) -> Result<(Sha256Hash, PackedPath), ClosureError> {
    let b = &recipe.input.built_as;
    let rewrites: Vec<(Vec<u8>, Vec<u8>)> = recipe
        .refs
        .iter()
        .map(|(old, new)| (old.clone().into_bytes(), new.to_string().into_bytes()))
        .filter(|(old, new)| old != new)
        .collect();
    if !recipe.self_reference && !rewrites.is_empty() {
        // Nix registered no reference to itself: the NAR with its references rewritten is
        // final, and its hash is its content address. One pass, one compression.
        let mut original = None;
        let packed = cache::pack_nar_with(opts, tmp_dir, |w| {
            let mut rw = Rewriter::new(w, rewrites, None);
            let summary = crate::nix::nar::dump_path(&recipe.input.tree, &mut rw)
                .map_err(|e| io::Error::other(e.to_string()))?;
            rw.finish()?;
            original = Some(summary.nar_hash);
            Ok(())
        })?;
        let references: Vec<StorePath> = recipe.refs.iter().map(|(_, p)| p.clone()).collect();
        let ca_hash = packed.summary.nar.nar_hash;
        let store_path = StorePath::from_ca(&ca_hash, &b.name, &references, false)?;
        let packed = PackedPath {
            store_path,
            was: b.path(),
            packed,
            ca_hash,
            references,
            self_reference: false,
        };
        return Ok((original.expect("the NAR was written"), packed));
    }
    let pass1 = cache::pack_path(&recipe.input.tree, opts, tmp_dir)?;
    let nar_hash = pass1.summary.nar.nar_hash;
    let node = Node {
        input: recipe.input.clone(),
        pass1,
        self_reference: recipe.self_reference,
        refs: Vec::new(),
    };
    Ok((
        nar_hash,
        make_content_addressed(node, &recipe.refs, opts, tmp_dir)?,
    ))
}

/// What a packed path is, for the memo.
fn became(p: &PackedPath) -> Became {
    let mut references = p.references.clone();
    references.sort();
    references.dedup();
    Became {
        store_path: p.store_path.clone(),
        nar_hash: p.packed.summary.nar.nar_hash,
        nar_size: p.packed.summary.nar.nar_size,
        references,
        ca_hash: p.ca_hash,
    }
}

/// See [`EarlyUpload::packed`].
pub type OnPacked = dyn Fn(&PackedPath, &NarInfo) -> crate::store::ProgressSink + Send + Sync;

/// Uploads of the packed dependencies started by [`prepare`] while the rest is packing: for
/// each, the NAR and its listing as soon as they are ready, its narinfo once every narinfo it
/// refers to is in the store. The output is left to the caller, to upload last.
pub struct EarlyUpload {
    pub put: crate::store::PutOptions,
    /// Called as each dependency is packed, before its upload starts: the progress sink of
    /// that upload.
    pub packed: Box<OnPacked>,
}

/// The dependencies done: what each became, and the closure without its output.
struct DepsDone {
    finals: Vec<Option<StorePath>>,
    closure: Closure,
}

/// How many dependencies are packed at once, and how many compressed at once.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Chunks of NAR one streamed pack holds between the thread that writes it (and hashes it:
/// what the paths that refer to it wait for) and the one that compresses it.
const STREAM_CHUNKS: usize = 16;
/// Bytes per chunk (a chunk closes at the first write past it: at most 256 KiB more, the
/// NAR writer's buffer), so at most 16 × 512 KiB per pack in flight.
const STREAM_CHUNK: usize = 256 * 1024;

/// The rest of a dependency's pack once its path is known: its compression, then its
/// registered NAR hash (as its bytes were read) and the packed path.
type Finishing =
    futures::future::BoxFuture<'static, Result<(Sha256Hash, PackedPath), ClosureError>>;

/// Packs the dependencies that are not reused, in parallel but each after what it refers to
/// (its references are rewritten to their new paths): at most [`workers`] being read and
/// hashed, and at most [`workers`] being compressed, into temporary files. With `early`, each
/// is uploaded as soon as it is compressed; its narinfo waits for the narinfos of what it
/// refers to, so the store never names a path whose references are missing.
#[allow(clippy::too_many_arguments)]
async fn pack_dependencies(
    deps: &[Dep],
    expected: &[Option<Became>],
    mut confirmed: Vec<Option<NarInfo>>,
    sources: &Sources,
    store: &Store,
    key: &SecretKey,
    opts: &PackOptions,
    tmp_dir: &Path,
    early: Option<&EarlyUpload>,
    cancel: &CancellationToken,
) -> Result<DepsDone, ClosureError> {
    use std::sync::Arc;
    use tokio::sync::{Semaphore, watch};
    use tokio::task::JoinSet;
    let n = deps.len();
    let mut finals: Vec<Option<StorePath>> = vec![None; n];
    let mut waiting: Vec<usize> = deps.iter().map(|d| d.refs.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in deps.iter().enumerate() {
        for &r in &d.refs {
            dependents[r].push(i);
        }
    }
    // Lowest index first: the order the paths were listed in, dependencies first.
    let mut ready: std::collections::BTreeSet<usize> =
        (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut reused: Vec<Option<ReusedPath>> = (0..n).map(|_| None).collect();
    let mut packed: Vec<Option<(PackedPath, Option<Added>)>> = (0..n).map(|_| None).collect();
    // Whether each path's narinfo is in the store (a reused path's already is).
    let in_store: Arc<Vec<watch::Sender<bool>>> =
        Arc::new((0..n).map(|_| watch::Sender::new(false)).collect());
    let packing = Arc::new(Semaphore::new(workers()));
    let compressing = Arc::new(Semaphore::new(workers()));
    type Hashed = (usize, Result<(StorePath, Finishing), ClosureError>);
    let mut hashing: JoinSet<Hashed> = JoinSet::new();
    type Finished = (usize, Result<(Sha256Hash, PackedPath), ClosureError>);
    let mut finishing: JoinSet<Finished> = JoinSet::new();
    type Uploaded = (usize, Result<(PackedPath, Added), CacheError>);
    let mut uploading: JoinSet<Uploaded> = JoinSet::new();
    let joined = |e: tokio::task::JoinError| ClosureError::Io {
        path: STORE_DIR.into(),
        source: io::Error::other(e),
    };
    let done =
        |i: usize, waiting: &mut Vec<usize>, ready: &mut std::collections::BTreeSet<usize>| {
            for &j in &dependents[i] {
                waiting[j] -= 1;
                if waiting[j] == 0 {
                    ready.insert(j);
                }
            }
        };
    loop {
        while let Some(i) = ready.pop_first() {
            let d = &deps[i];
            let refs: Vec<(String, StorePath)> = d
                .refs
                .iter()
                .map(|&r| {
                    let new = finals[r].clone().expect("dependencies come first");
                    (deps[r].reg.path.to_string(), new)
                })
                .collect();
            let recipe = Recipe {
                input: Input {
                    tree: Path::new(STORE_DIR).join(d.reg.path.base_name()),
                    built_as: BuiltAs::of_store_path(&d.reg.path),
                },
                refs,
                self_reference: d.self_reference,
            };
            if let (Some(e), Some(info)) = (&expected[i], confirmed[i].take())
                && refers_to(e, &recipe)
            {
                finals[i] = Some(e.store_path.clone());
                in_store[i].send_replace(true);
                reused[i] = Some(ReusedPath {
                    store_path: e.store_path.clone(),
                    was: d.reg.path.to_string(),
                    info,
                    recipe,
                });
                done(i, &mut waiting, &mut ready);
                continue;
            }
            let (o, dir) = (*opts, tmp_dir.to_owned());
            let (packing, compressing) = (packing.clone(), compressing.clone());
            hashing.spawn(async move {
                // Always in this order (compression, then reading), so none waits in a cycle.
                let compress = compressing.acquire_owned().await.expect("never closed");
                let _pack = packing.acquire_owned().await.expect("never closed");
                let r = blocking(move || pack_dependency_streamed(recipe, o, dir, compress)).await;
                (i, r)
            });
        }
        if hashing.is_empty() && finishing.is_empty() && uploading.is_empty() {
            break;
        }
        tokio::select! {
            Some(j) = hashing.join_next() => {
                let (i, r) = j.map_err(joined)?;
                let (path, finish) = r?;
                finals[i] = Some(path);
                done(i, &mut waiting, &mut ready);
                finishing.spawn(async move { (i, finish.await) });
            }
            Some(j) = finishing.join_next() => {
                let (i, r) = j.map_err(joined)?;
                let (nar_hash, p) = r?;
                let reg = &deps[i].reg;
                if let Some(memo) = &sources.memo
                    && nar_hash == reg.nar_hash
                {
                    // Remembered only when its bytes are what Nix registered.
                    memo.put(&reg.path, &nar_hash, &became(&p));
                }
                match early {
                    None => packed[i] = Some((p, None)),
                    Some(up) => {
                        let info = p.narinfo(key);
                        let progress = (up.packed)(&p, &info);
                        let (store, put) = (store.clone(), up.put.clone());
                        let (in_store, refs) = (in_store.clone(), deps[i].refs.clone());
                        uploading.spawn(async move {
                            let r = upload_dependency(&store, p, &info, &put, &progress, &refs, &in_store, i)
                                .await;
                            (i, r)
                        });
                    }
                }
            }
            Some(j) = uploading.join_next() => {
                let (i, r) = j.map_err(joined)?;
                let (p, added) = r.map_err(ClosureError::Upload)?;
                packed[i] = Some((p, Some(added)));
            }
            () = cancel.cancelled() => return Err(ClosureError::Cancelled),
        }
    }
    let mut closure = Closure {
        reused: Vec::new(),
        packed: Vec::new(),
        uploaded: early.map(|_| Vec::new()),
    };
    for i in 0..n {
        if let Some(r) = reused[i].take() {
            closure.reused.push(r);
        }
        if let Some((p, added)) = packed[i].take() {
            closure.packed.push(p);
            if let (Some(u), Some(a)) = (&mut closure.uploaded, added) {
                u.push(a);
            }
        }
    }
    Ok(DepsDone { finals, closure })
}

/// Uploads one packed dependency: its NAR and listing now, its narinfo once the narinfos of
/// the paths it refers to (`refs`) are in the store; then says its own is (`in_store[i]`).
#[allow(clippy::too_many_arguments)]
async fn upload_dependency(
    store: &Store,
    p: PackedPath,
    info: &NarInfo,
    put: &crate::store::PutOptions,
    progress: &crate::store::ProgressSink,
    refs: &[usize],
    in_store: &[tokio::sync::watch::Sender<bool>],
    i: usize,
) -> Result<(PackedPath, Added), CacheError> {
    let listing = p.packed.listing.as_deref();
    cache::add_path_data(store, p.packed.file.path(), listing, info, put, progress).await?;
    for &r in refs {
        // The senders live as long as every upload: this ends when `r`'s narinfo is there.
        let _ = in_store[r].subscribe().wait_for(|there| *there).await;
    }
    let outcome = cache::add_path_narinfo(store, info).await?;
    crate::failpoint::pause("upload-closure").await;
    in_store[i].send_replace(true);
    let added = match outcome {
        cache::Outcome::Added => Added::Uploaded,
        cache::Outcome::AlreadyPresent => Added::AlreadyThere,
    };
    Ok((p, added))
}

/// NAR bytes, sent to the compressing thread in chunks of about [`STREAM_CHUNK`].
struct ChunkSender {
    buf: Vec<u8>,
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Chunks the compressor is done with, to fill again (fresh memory costs page faults).
    free: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(STREAM_CHUNK));
        next.clear();
        let chunk = std::mem::replace(&mut self.buf, next);
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }
}

impl io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes everything to both.
struct Tee<'a, A, B> {
    a: &'a mut A,
    b: &'a mut B,
}

impl<A: io::Write, B: io::Write> io::Write for Tee<'_, A, B> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.a.write_all(data)?;
        self.b.write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

/// Packs one dependency in two threads: this one reads it and hashes it with its references
/// rewritten, which names it (returned as soon as known: what refers to it can start); the
/// other (holding `compress`) hashes the bytes as read, rewrites and compresses them into a
/// temporary file. A dependency that refers to itself is packed here whole, as before.
fn pack_dependency_streamed(
    recipe: Recipe,
    opts: PackOptions,
    tmp_dir: PathBuf,
    compress: tokio::sync::OwnedSemaphorePermit,
) -> Result<(StorePath, Finishing), ClosureError> {
    use std::io::Write;
    if recipe.self_reference {
        let r = pack_dependency(&recipe, &opts, &tmp_dir);
        drop(compress);
        let (nar_hash, p) = r?;
        let path = p.store_path.clone();
        return Ok((path, Box::pin(async move { Ok((nar_hash, p)) })));
    }
    let b = recipe.input.built_as.clone();
    let rewrites: Vec<(Vec<u8>, Vec<u8>)> = recipe
        .refs
        .iter()
        .map(|(old, new)| (old.clone().into_bytes(), new.to_string().into_bytes()))
        .filter(|(old, new)| old != new)
        .collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STREAM_CHUNKS);
    let (done_tx, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(STREAM_CHUNKS);
    // zstd's output is the same for any number of workers >= 1: one each, a pack per core.
    let copts = PackOptions {
        zstd_threads: 1,
        ..opts
    };
    let (crewrites, cdir) = (rewrites.clone(), tmp_dir);
    let compressed = tokio::task::spawn_blocking(move || {
        let _compress = compress;
        let mut original = None;
        let packed = cache::pack_nar_unhashed(&copts, &cdir, |w| {
            if crewrites.is_empty() {
                for chunk in rx {
                    w.write_all(&chunk)?;
                    let _ = done_tx.try_send(chunk);
                }
                return w.flush();
            }
            let mut h = crate::nix::HashingWriter::new(Rewriter::new(w, crewrites, None));
            for chunk in rx {
                h.write_all(&chunk)?;
                let _ = done_tx.try_send(chunk);
            }
            h.flush()?;
            let (rw, hash, _) = h.finish();
            rw.finish()?;
            original = Some(hash);
            Ok(())
        })?;
        Ok::<_, CacheError>((original, packed))
    });
    let tree = recipe.input.tree.clone();
    let io_err = |source: io::Error| ClosureError::Io {
        path: tree.clone(),
        source,
    };
    let mut sender = ChunkSender {
        buf: Vec::with_capacity(STREAM_CHUNK),
        tx,
        free,
    };
    let mut hashed = Rewriter::new(crate::nix::HashingWriter::new(io::sink()), rewrites, None);
    let sent = crate::nix::nar::dump_path_unhashed(
        &tree,
        Tee {
            a: &mut sender,
            b: &mut hashed,
        },
    )
    .map_err(|e| io::Error::other(e.to_string()))
    .and_then(|_| sender.send());
    drop(sender);
    if let Err(e) = sent {
        // The compressor's own failure, if it stopped first, says more.
        if let Ok(Err(theirs)) = tokio::runtime::Handle::current().block_on(compressed) {
            return Err(theirs.into());
        }
        return Err(io_err(e));
    }
    let (hw, _) = hashed.finish().map_err(io_err)?;
    let (_, nar_hash, nar_size) = hw.finish();
    let references: Vec<StorePath> = recipe.refs.iter().map(|(_, p)| p.clone()).collect();
    let store_path = StorePath::from_ca(&nar_hash, &b.name, &references, false)?;
    let path = store_path.clone();
    let finish = async move {
        let (original, mut packed) = compressed.await.map_err(|e| ClosureError::Io {
            path: tree.clone(),
            source: io::Error::other(e),
        })??;
        if packed.summary.nar.nar_size != nar_size {
            return Err(ClosureError::Io {
                path: tree,
                source: io::Error::other("its NAR came out twice with different sizes"),
            });
        }
        packed.summary.nar.nar_hash = nar_hash;
        let packed = PackedPath {
            store_path,
            was: b.path(),
            packed,
            ca_hash: nar_hash,
            references,
            self_reference: false,
        };
        Ok((original.unwrap_or(nar_hash), packed))
    };
    Ok((path, Box::pin(finish)))
}
