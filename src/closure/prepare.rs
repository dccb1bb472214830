//! What publish does before it uploads a closure: reuse, without reading it, each dependency
//! the store already holds (the memo, or Nix's own content address), and pack the rest.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::cache::{self, PackOptions};
use crate::nix::nar::{RefScanner, Rewriter};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::SecretKey;
use crate::nix::{STORE_DIR, Sha256Hash, StorePath};
use crate::store::Store;

use super::content_address::{
    Node, make_content_addressed, order_dependencies_first, pack_closure,
};
use super::parallel::{DepsDone, EarlyUpload, pack_dependencies};
use super::{Added, ClosureError, Input, KnownPaths, PackedPath};
use super::{Became, Memo, NixDb, NixDbError, Registered, Signed, nixdb};

/// Narinfos read, checked and touched together (an S3 store reads 16 of them at a time).
const STORE_BATCH: usize = 128;
/// How many such batches [`prepare`] has in flight.
const STORE_BATCHES: usize = 4;

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
    pub(super) recipe: Recipe,
}

#[derive(Debug, Clone)]
pub(super) struct Recipe {
    pub(super) input: Input,
    /// Its references other than itself: (local path, what that became).
    pub(super) refs: Vec<(String, StorePath)>,
    pub(super) self_reference: bool,
    /// The NAR size Nix registered (a hint for memory: the bytes read are what count).
    pub(super) nar_size: u64,
}

/// A closure ready to upload: dependencies the store already has, and the packed rest
/// (dependencies first, the output last).
#[derive(Debug)]
pub struct Closure {
    pub reused: Vec<ReusedPath>,
    pub packed: Vec<PackedPath>,
    /// The narinfos of the first `packed` paths, signed by the key [`prepare`] was given as
    /// each was packed (the dependencies it packed; never the output).
    pub signed: Vec<NarInfo>,
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
            signed: Vec::new(),
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
#[derive(Clone)]
pub(super) struct Dep {
    pub(super) reg: Registered,
    /// Indices of its references (itself excluded).
    pub(super) refs: Vec<usize>,
    pub(super) self_reference: bool,
}

/// Packs `top` and makes its closure content-addressed, reading only what the store lacks.
///
/// The output is packed and scanned for the paths of the local store it names (its own
/// references); everything those reach comes from Nix's database. For each dependency, what
/// it became is known without reading it when the memo remembers it (keyed by its path and
/// the NarHash Nix registered) or when Nix says it is content-addressed already and nothing
/// it refers to changes. The store is asked for those narinfos in batches of [`STORE_BATCH`];
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

    // What each dependency is expected to have become, without reading it: the memo's
    // entries (read on every core), else Nix's own content address.
    let remembered = match &sources.memo {
        Some(memo) => remembered(memo, &deps).await,
        None => vec![None; deps.len()],
    };
    let mut expected: Vec<Option<Became>> = Vec::with_capacity(deps.len());
    for (d, e) in deps.iter().zip(remembered) {
        let e = e.or_else(|| already_content_addressed(d, &deps, &expected));
        expected.push(e);
    }
    // Which of those the store holds as expected (concurrently, bounded).
    let mut confirmed: Vec<Option<NarInfo>> = (0..deps.len()).map(|_| None).collect();
    let wanted: Vec<(usize, Became)> = expected
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.clone().map(|e| (i, e)))
        .collect();
    let batches: Vec<Vec<(usize, Became)>> =
        wanted.chunks(STORE_BATCH).map(<[_]>::to_vec).collect();
    let checks = futures::stream::iter(batches)
        .map(|batch| published_batch(store, key, batch))
        .buffer_unordered(STORE_BATCHES);
    tokio::pin!(checks);
    while let Some(found) = tokio::select! {
        c = checks.next() => c,
        _ = cancel.cancelled() => return Err(ClosureError::Cancelled),
    } {
        for (i, info) in found {
            confirmed[i] = Some(info);
        }
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

pub(super) async fn blocking<T: Send + 'static>(
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
        signed: None,
    })
}

/// Whether what `e` says a dependency refers to is what its dependencies became now.
pub(super) fn refers_to(e: &Became, recipe: &Recipe) -> bool {
    let mut now: Vec<&StorePath> = recipe.refs.iter().map(|(_, p)| p).collect();
    if recipe.self_reference {
        now.push(&e.store_path);
    }
    now.sort();
    now.dedup();
    now.len() == e.references.len() && now.iter().zip(&e.references).all(|(a, b)| *a == b)
}

/// The memo's entry for each dependency, read in one blocking task per core.
async fn remembered(memo: &Memo, deps: &[Dep]) -> Vec<Option<Became>> {
    let keys: Vec<(StorePath, Sha256Hash)> = deps
        .iter()
        .map(|d| (d.reg.path.clone(), d.reg.nar_hash))
        .collect();
    let per_task = keys.len().div_ceil(super::parallel::workers()).max(64);
    let tasks: Vec<_> = keys
        .chunks(per_task)
        .map(|chunk| {
            let (memo, chunk) = (memo.clone(), chunk.to_vec());
            tokio::task::spawn_blocking(move || {
                chunk
                    .iter()
                    .map(|(path, hash)| memo.get(path, hash))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::with_capacity(keys.len());
    for (task, chunk) in tasks.into_iter().zip(keys.chunks(per_task)) {
        // A task that panicked remembers nothing: its paths are packed.
        all.extend(task.await.unwrap_or_else(|_| vec![None; chunk.len()]));
    }
    all
}

/// Of a batch of expected paths, those whose narinfo in the store says what was expected, is
/// signed by `key`, and whose NAR is there (both marked as written now, as `cache::refresh`
/// does). The narinfos are read together (one blocking call for a `file://` store), checked
/// together on a blocking thread, and touched together.
async fn published_batch(
    store: &Store,
    key: &SecretKey,
    batch: Vec<(usize, Became)>,
) -> Vec<(usize, NarInfo)> {
    let keys: Vec<String> = batch
        .iter()
        .map(|(_, e)| cache::narinfo_key(e.store_path.hash_part()))
        .collect();
    let texts = store.get_many(&keys).await;
    let key = key.clone();
    let checked = tokio::task::spawn_blocking(move || {
        batch
            .into_iter()
            .zip(texts)
            .filter_map(|((i, e), text)| {
                let info = cache::parse_narinfo(&text.ok()?).ok()?;
                says_what_was_expected(&info, &e, &key).then_some((i, info))
            })
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(same) = checked else {
        return Vec::new();
    };
    let touched: Vec<String> = same
        .iter()
        .flat_map(|(_, info)| [info.file_name(), info.url.clone()])
        .collect();
    let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
    if store.touch_all(&touched).await.unwrap_or(false) {
        return same;
    }
    // Something is missing: which, path by path.
    let mut there = Vec::with_capacity(same.len());
    for (i, info) in same {
        if cache::refresh(store, &info).await.unwrap_or(false) {
            there.push((i, info));
        }
    }
    there
}

/// Whether the store's narinfo says what `e` says and is signed by `key`.
fn says_what_was_expected(info: &NarInfo, e: &Became, key: &SecretKey) -> bool {
    let mut refs = info.references.clone();
    refs.sort();
    info.store_path == e.store_path
        && info.nar_hash == e.nar_hash
        && info.nar_size == e.nar_size
        && refs == e.references
        && cache::require_content_address(info).is_ok_and(|ca| ca.hash == e.ca_hash)
        && info.sigs.contains(&match &e.signed {
            // What this key signed over what `e` says (the fingerprint is made of the
            // fields compared above).
            Some(s) if s.public_key == key.public().to_nix_string() => s.sig.clone(),
            // ed25519 is deterministic: our key over this fingerprint gives exactly this
            // signature (cheaper to make than to verify another).
            _ => key.sign(info.fingerprint().as_bytes()),
        })
}

/// Packs one dependency and makes it content-addressed; also returns its first NAR hash
/// (what Nix registered, if its bytes are intact).
pub(super) fn pack_dependency(
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
pub(super) fn became(p: &PackedPath, signed: Option<Signed>) -> Became {
    let mut references = p.references.clone();
    references.sort();
    references.dedup();
    Became {
        store_path: p.store_path.clone(),
        nar_hash: p.packed.summary.nar.nar_hash,
        nar_size: p.packed.summary.nar.nar_size,
        references,
        ca_hash: p.ca_hash,
        signed,
    }
}
