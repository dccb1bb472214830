//! Dependencies packed in parallel (one thread reading and hashing, one compressing, at most
//! one of each per core), each uploaded as soon as it is compressed when nothing comes first.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::cache::{self, CacheError, PackOptions};
use crate::nix::nar::chunked::{ChunkRewriter, NarChunk, PathRewrites};
use crate::nix::nar::{CHUNK_SIZE, ChunkSink};
use crate::nix::narinfo::NarInfo;
use crate::nix::sha256_pair::Sha256Pair;
use crate::nix::sign::SecretKey;
use crate::nix::{STORE_DIR, Sha256Hash, StorePath};
use crate::store::Store;

use super::Became;
use super::prepare::{
    Closure, Dep, Recipe, ReusedPath, Sources, became, blocking, pack_dependency, refers_to,
};
use super::self_reference;
use super::{Added, BuiltAs, ClosureError, Input, PackedPath, Signed};

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
pub(super) struct DepsDone {
    pub(super) finals: Vec<Option<StorePath>>,
    pub(super) closure: Closure,
}

/// How many dependencies are packed at once, and how many compressed at once.
pub(super) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Chunks of NAR one streamed pack holds between the thread that writes it (and hashes it:
/// what the paths that refer to it wait for) and the one that compresses it: with the one
/// held back for rewriting and the two being worked on, at most 19 × 256 KiB per pack.
const STREAM_CHUNKS: usize = 16;

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
pub(super) async fn pack_dependencies(
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
    use tokio::sync::{Semaphore, watch};
    use tokio::task::JoinSet;
    let n = deps.len();
    let chain = Arc::new(Chain::new(deps, expected, &confirmed));
    let mut reused: Vec<Option<ReusedPath>> = (0..n).map(|_| None).collect();
    // Each packed dependency, its signed narinfo, and what its early upload did.
    type Done = (PackedPath, NarInfo, Option<Added>);
    let mut packed: Vec<Option<Done>> = (0..n).map(|_| None).collect();
    // Whether each path's narinfo is in the store (a reused path's already is).
    let in_store: Arc<Vec<watch::Sender<bool>>> =
        Arc::new((0..n).map(|_| watch::Sender::new(false)).collect());
    let packing = Arc::new(Semaphore::new(workers()));
    // Twice as many compressions as readers: a reader goes on to the next path of a chain
    // while the last two it read are still compressing.
    let compressing = Arc::new(Semaphore::new(2 * workers()));
    let spare = Arc::new(Spare::new(opts.zstd_level));
    let mut hashing: JoinSet<Result<(), ClosureError>> = JoinSet::new();
    let (named_tx, mut named_rx) = tokio::sync::mpsc::unbounded_channel::<Named>();
    type Finished = (usize, Result<(PackedPath, NarInfo), ClosureError>);
    let mut finishing: JoinSet<Finished> = JoinSet::new();
    type Uploaded = (usize, Result<(PackedPath, NarInfo, Added), CacheError>);
    let mut uploading: JoinSet<Uploaded> = JoinSet::new();
    let joined = |e: tokio::task::JoinError| ClosureError::Io {
        path: STORE_DIR.into(),
        source: io::Error::other(e),
    };
    loop {
        while let Some((i, recipe)) = chain.pop_ready() {
            let d = &deps[i];
            if let (Some(e), Some(info)) = (&expected[i], confirmed[i].take())
                && refers_to(e, &recipe)
            {
                in_store[i].send_replace(true);
                chain.named(i, e.store_path.clone(), None);
                reused[i] = Some(ReusedPath {
                    store_path: e.store_path.clone(),
                    was: d.reg.path.to_string(),
                    info,
                    recipe,
                });
                continue;
            }
            let job = PackJob {
                chain: chain.clone(),
                opts: *opts,
                tmp_dir: tmp_dir.to_owned(),
                spare: spare.clone(),
                compressing: compressing.clone(),
                named: named_tx.clone(),
                cancel: cancel.clone(),
            };
            let packing = packing.clone();
            hashing.spawn(async move {
                // Always in this order (compression, then reading), so none waits in a cycle.
                let compress = job
                    .compressing
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed");
                let _pack = packing.acquire_owned().await.expect("never closed");
                blocking(move || job.run(i, recipe, compress)).await
            });
        }
        if hashing.is_empty() && finishing.is_empty() && uploading.is_empty() && named_rx.is_empty()
        {
            break;
        }
        tokio::select! {
            Some((i, finish)) = named_rx.recv() => {
                let (memo, key) = (sources.memo.clone(), key.clone());
                let (path, registered) = (deps[i].reg.path.clone(), deps[i].reg.nar_hash);
                finishing.spawn(async move {
                    let r = finish.await.and_then(|(nar_hash, p)| {
                        // What Nix registered, or nothing: a corrupted path is not published
                        // (nor remembered).
                        if nar_hash != registered {
                            return Err(ClosureError::Corrupted {
                                path,
                                registered,
                                read: nar_hash,
                            });
                        }
                        let info = p.narinfo(&key);
                        if let Some(memo) = memo {
                            // Remembered with the signature just made.
                            let signed = info.sigs.iter().find(|s| s.key_name() == key.name());
                            let signed = signed.map(|sig| Signed {
                                public_key: key.public().to_nix_string(),
                                sig: sig.clone(),
                            });
                            memo.put(&path, &nar_hash, &became(&p, signed));
                        }
                        Ok((p, info))
                    });
                    (i, r)
                });
            }
            Some(j) = hashing.join_next() => j.map_err(joined)??,
            Some(j) = finishing.join_next() => {
                let (i, r) = j.map_err(joined)?;
                let (p, info) = r?;
                match early {
                    None => packed[i] = Some((p, info, None)),
                    Some(up) => {
                        let progress = (up.packed)(&p, &info);
                        let (store, put) = (store.clone(), up.put.clone());
                        let (in_store, refs) = (in_store.clone(), deps[i].refs.clone());
                        uploading.spawn(async move {
                            let r = upload_dependency(&store, p, &info, &put, &progress, &refs, &in_store, i)
                                .await;
                            (i, r.map(|(p, added)| (p, info, added)))
                        });
                    }
                }
            }
            Some(j) = uploading.join_next() => {
                let (i, r) = j.map_err(joined)?;
                let (p, info, added) = r.map_err(ClosureError::Upload)?;
                packed[i] = Some((p, info, Some(added)));
            }
            () = cancel.cancelled() => return Err(ClosureError::Cancelled),
        }
    }
    let mut closure = Closure {
        reused: Vec::new(),
        packed: Vec::new(),
        signed: Vec::new(),
        uploaded: early.map(|_| Vec::new()),
    };
    for i in 0..n {
        if let Some(r) = reused[i].take() {
            closure.reused.push(r);
        }
        if let Some((p, info, added)) = packed[i].take() {
            closure.packed.push(p);
            closure.signed.push(info);
            if let (Some(u), Some(a)) = (&mut closure.uploaded, added) {
                u.push(a);
            }
        }
    }
    let finals = Arc::into_inner(chain)
        .expect("every packing thread is done")
        .state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .finals;
    Ok(DepsDone { finals, closure })
}

/// A dependency named (what refers to it can be packed), with the rest of its pack.
type Named = (usize, Finishing);

/// What the scheduling loop and the packing threads share: what each dependency became so
/// far, and which are ready to pack (everything they refer to named).
struct Chain {
    deps: Vec<Dep>,
    dependents: Vec<Vec<usize>>,
    /// Dependencies the store may have already: only the loop decides on those.
    maybe_reused: Vec<bool>,
    state: std::sync::Mutex<ChainState>,
}

struct ChainState {
    finals: Vec<Option<StorePath>>,
    waiting: Vec<usize>,
    /// Lowest index first: the order the paths were listed in, dependencies first.
    ready: std::collections::BTreeSet<usize>,
}

impl Chain {
    fn new(deps: &[Dep], expected: &[Option<Became>], confirmed: &[Option<NarInfo>]) -> Chain {
        let n = deps.len();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, d) in deps.iter().enumerate() {
            for &r in &d.refs {
                dependents[r].push(i);
            }
        }
        let waiting: Vec<usize> = deps.iter().map(|d| d.refs.len()).collect();
        Chain {
            deps: deps.to_vec(),
            dependents,
            maybe_reused: (0..n)
                .map(|i| expected[i].is_some() && confirmed[i].is_some())
                .collect(),
            state: std::sync::Mutex::new(ChainState {
                finals: vec![None; n],
                ready: (0..n).filter(|&i| waiting[i] == 0).collect(),
                waiting,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How to pack `i`: its references rewritten to what they became.
    fn recipe(&self, st: &ChainState, i: usize) -> Recipe {
        let d = &self.deps[i];
        let refs = d
            .refs
            .iter()
            .map(|&r| {
                let new = st.finals[r].clone().expect("dependencies come first");
                (self.deps[r].reg.path.to_string(), new)
            })
            .collect();
        Recipe {
            input: Input {
                tree: Path::new(STORE_DIR).join(d.reg.path.base_name()),
                built_as: BuiltAs::of_store_path(&d.reg.path),
            },
            refs,
            self_reference: d.self_reference,
            nar_size: d.reg.nar_size,
        }
    }

    fn pop_ready(&self) -> Option<(usize, Recipe)> {
        let mut st = self.lock();
        let i = st.ready.pop_first()?;
        Some((i, self.recipe(&st, i)))
    }

    /// Records what `i` became. With `next`, takes a dependent this made ready (and a
    /// compression permit for it) for the caller to pack next, when one is free: a chain is
    /// then read by one thread without a round trip through the loop.
    fn named(
        &self,
        i: usize,
        path: StorePath,
        next: Option<&Arc<tokio::sync::Semaphore>>,
    ) -> Option<(usize, Recipe, tokio::sync::OwnedSemaphorePermit)> {
        let mut st = self.lock();
        st.finals[i] = Some(path);
        let mut take = None;
        for &j in &self.dependents[i] {
            st.waiting[j] -= 1;
            if st.waiting[j] == 0 {
                st.ready.insert(j);
                if !self.maybe_reused[j] {
                    take = Some(take.map_or(j, |t: usize| t.min(j)));
                }
            }
        }
        let j = take?;
        let permit = next?.clone().try_acquire_owned().ok()?;
        st.ready.remove(&j);
        Some((j, self.recipe(&st, j), permit))
    }
}

/// A packing thread: packs one dependency, then the next one of its chain while it can.
struct PackJob {
    chain: Arc<Chain>,
    opts: PackOptions,
    tmp_dir: PathBuf,
    spare: Arc<Spare>,
    compressing: Arc<tokio::sync::Semaphore>,
    named: tokio::sync::mpsc::UnboundedSender<Named>,
    cancel: CancellationToken,
}

impl PackJob {
    fn run(
        self,
        mut i: usize,
        mut recipe: Recipe,
        mut compress: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), ClosureError> {
        loop {
            let (path, finish) = pack_dependency_streamed(
                recipe,
                self.opts,
                self.tmp_dir.clone(),
                compress,
                self.spare.clone(),
            )?;
            let next = (!self.cancel.is_cancelled()).then_some(&self.compressing);
            let next = self.chain.named(i, path, next);
            // After the chain knows it, so the loop sees what it made ready.
            let _ = self.named.send((i, finish));
            match next {
                Some((j, r, permit)) => (i, recipe, compress) = (j, r, permit),
                None => return Ok(()),
            }
        }
    }
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
    cache::add_path_data(store, &p.packed.file, listing, info, put, progress).await?;
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

/// Hands each NAR chunk to the compressing thread as read (rewritten in place when there is
/// anything to rewrite), hashing it first: that hash names the path. With rewrites, the bytes
/// as read are hashed in the same pass (checked against what Nix registered).
struct Handoff<'r> {
    hashing: Hashing<'r>,
    tx: std::sync::mpsc::SyncSender<NarChunk>,
    spare: Arc<Spare>,
}

/// How a handed-off NAR is hashed.
enum Hashing<'r> {
    /// Nothing to rewrite: the bytes sent are the bytes read.
    Plain(sha2::Sha256),
    /// Rewritten as it goes: as sent and as read, in one pass.
    Rewriting(ChunkRewriter<'r>, Sha256Pair),
}

/// Buffers the compressors are done with, to fill again, and their zstd contexts: fresh
/// memory costs zeroing and page faults. Shared by every pack of a closure, kept only while
/// it packs.
pub(super) struct Spare {
    bufs: std::sync::Mutex<Vec<Box<[u8]>>>,
    zstd: Arc<cache::ZstdPool>,
}

impl Spare {
    /// At most this many buffers are kept (16 MiB).
    const MAX: usize = 64;

    pub(super) fn new(zstd_level: i32) -> Spare {
        Spare {
            bufs: std::sync::Mutex::new(Vec::new()),
            zstd: cache::ZstdPool::new(zstd_level),
        }
    }

    fn get(&self) -> Box<[u8]> {
        let spare = self.bufs.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or_else(|| vec![0; CHUNK_SIZE].into_boxed_slice())
    }

    fn give(&self, buf: Box<[u8]>) {
        if buf.len() != CHUNK_SIZE {
            // A whole NAR read into memory: not a chunk buffer.
            return;
        }
        let mut bufs = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        if bufs.len() < Self::MAX {
            bufs.push(buf);
        }
    }
}

impl Handoff<'_> {
    fn send(&mut self, chunk: NarChunk) -> io::Result<()> {
        match &mut self.hashing {
            Hashing::Rewriting(r, pair) => r.rewrites().hash_chunk(pair, &chunk),
            Hashing::Plain(h) => sha2::Digest::update(h, &chunk.buf[..chunk.len]),
        }
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }

    /// Sends the chunk held back; the hashes of the NAR as sent and as read.
    fn finish(mut self) -> io::Result<(Sha256Hash, Sha256Hash)> {
        if let Hashing::Rewriting(r, _) = &mut self.hashing
            && let Some(last) = r.finish()
        {
            self.send(last)?;
        }
        Ok(match self.hashing {
            Hashing::Rewriting(_, pair) => pair.finalize(),
            Hashing::Plain(h) => {
                let h = Sha256Hash(sha2::Digest::finalize(h).into());
                (h, h)
            }
        })
    }
}

impl ChunkSink for Handoff<'_> {
    fn take(&mut self, buf: Box<[u8]>, len: usize) -> io::Result<Box<[u8]>> {
        let chunk = NarChunk {
            buf,
            len,
            patches: Vec::new(),
        };
        let ready = match &mut self.hashing {
            Hashing::Rewriting(r, _) => r.push(chunk).map_err(io::Error::other)?,
            Hashing::Plain(_) => Some(chunk),
        };
        if let Some(chunk) = ready {
            self.send(chunk)?;
        }
        Ok(self.spare.get())
    }
}

/// Packs one dependency in two threads: this one reads it, rewrites its references in place
/// and hashes it, as rewritten and as read in one pass ([`Sha256Pair`]), which names it
/// (returned as soon as known: what refers to it can start); the other (holding `compress`)
/// compresses the rewritten bytes into a temporary file. A dependency that refers to itself
/// is read whole into memory first ([`self_reference`]: its address needs all of it); one
/// larger than [`self_reference::MAX_IN_MEMORY`], or whose references [`PathRewrites`]
/// cannot take, is packed here the staged way.
fn pack_dependency_streamed(
    recipe: Recipe,
    opts: PackOptions,
    tmp_dir: PathBuf,
    compress: tokio::sync::OwnedSemaphorePermit,
    spare: Arc<Spare>,
) -> Result<(StorePath, Finishing), ClosureError> {
    let b = recipe.input.built_as.clone();
    let tree = recipe.input.tree.clone();
    let io_err = |source: io::Error| ClosureError::Io {
        path: tree.clone(),
        source,
    };
    let pairs: Option<Vec<(StorePath, StorePath)>> = recipe
        .refs
        .iter()
        .map(|(old, new)| StorePath::parse(old).ok().map(|o| (o, new.clone())))
        .collect();
    let rewrites = pairs.and_then(|p| PathRewrites::new(&p));
    let mut references: Vec<StorePath> = recipe.refs.iter().map(|(_, p)| p.clone()).collect();
    let held = (recipe.self_reference && b.prefix == crate::nix::STORE_PREFIX)
        .then(|| self_reference::Reservation::take(recipe.nar_size))
        .flatten();
    let in_memory = match (&rewrites, &held) {
        // A NAR larger than Nix registered is not what Nix registered: the staged way
        // reports it.
        (Some(r), Some(held)) => read_whole(&tree, held.bytes() as usize)
            .map_err(io_err)?
            .map(|nar| {
                self_reference::make_content_addressed(nar, r, &b.hash, &b.name, &references)
            })
            .transpose()?
            .flatten(),
        _ => None,
    };
    let rewrites = match rewrites {
        Some(r) if in_memory.is_some() || !recipe.self_reference => r,
        _ => {
            let r = pack_dependency(&recipe, &opts, &tmp_dir);
            drop(compress);
            let (nar_hash, p) = r?;
            let path = p.store_path.clone();
            return Ok((path, Box::pin(async move { Ok((nar_hash, p)) })));
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<NarChunk>(STREAM_CHUNKS);
    // Dependencies are packed one per core: each compresses in its own plain zstd context
    // (a worker pool per NAR costs more than a small NAR's compression).
    let copts = PackOptions {
        zstd_threads: 1,
        zstd_multithread: false,
        ..opts
    };
    let (cdir, cspare) = (tmp_dir, spare.clone());
    let czstd = spare.zstd.clone();
    // A NAR made in memory is hashed here, as it is compressed: its path is known already.
    let mut final_hash = in_memory
        .is_some()
        .then(<sha2::Sha256 as sha2::Digest>::new);
    let compressed = tokio::task::spawn_blocking(move || {
        let _compress = compress;
        // Room for the NAR held in memory, given back once it is compressed.
        let _held = held;
        let packed = cache::pack_nar_unhashed_pooled(&copts, &cdir, &czstd, |w| {
            for c in rx {
                if let Some(h) = &mut final_hash {
                    sha2::Digest::update(h, &c.buf[..c.len]);
                }
                w.write_all(&c.buf[..c.len])?;
                cspare.give(c.buf);
            }
            w.flush()
        })?;
        let hashed = final_hash.map(|h| Sha256Hash(sha2::Digest::finalize(h).into()));
        Ok::<_, CacheError>((packed, hashed))
    });
    let sent = match in_memory {
        Some(m) => {
            // The NarHash comes from the compressor.
            let sent = (None, m.as_read, m.nar.len as u64);
            references.push(m.store_path.clone());
            references.sort();
            // The compressor only stops early by failing, which the finish reports.
            let _ = tx.send(m.nar);
            Ok((sent, Some((m.store_path, m.ca_hash))))
        }
        None => {
            let hashing = if rewrites.is_empty() {
                Hashing::Plain(<sha2::Sha256 as sha2::Digest>::new())
            } else {
                Hashing::Rewriting(ChunkRewriter::new(&rewrites), Sha256Pair::new())
            };
            let mut handoff = Handoff { hashing, tx, spare };
            crate::nix::nar::dump_path_chunks(&tree, &mut handoff)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|size| {
                    handoff
                        .finish()
                        .map(|(sent, read)| ((Some(sent), read, size), None))
                })
        }
    };
    let ((nar_hash, original, nar_size), named) = match sent {
        Ok(sent) => sent,
        Err(e) => {
            // The compressor's own failure, if it stopped first, says more.
            if let Ok(Err(theirs)) = tokio::runtime::Handle::current().block_on(compressed) {
                return Err(theirs.into());
            }
            return Err(io_err(e));
        }
    };
    let (store_path, ca_hash) = match (named, nar_hash) {
        (Some(named), _) => named,
        (None, Some(h)) => (StorePath::from_ca(&h, &b.name, &references, false)?, h),
        (None, None) => unreachable!("a streamed NAR is hashed as it is sent"),
    };
    let path = store_path.clone();
    let self_reference = recipe.self_reference;
    let finish = async move {
        let (mut packed, hashed) = compressed.await.map_err(|e| ClosureError::Io {
            path: tree.clone(),
            source: io::Error::other(e),
        })??;
        if packed.summary.nar.nar_size != nar_size {
            return Err(ClosureError::Io {
                path: tree,
                source: io::Error::other("its NAR came out twice with different sizes"),
            });
        }
        packed.summary.nar.nar_hash = match hashed.or(nar_hash) {
            Some(h) => h,
            None => unreachable!("a NAR made in memory is hashed as it is compressed"),
        };
        let packed = PackedPath {
            store_path,
            was: b.path(),
            packed,
            ca_hash,
            references,
            self_reference,
        };
        Ok((original, packed))
    };
    Ok((path, Box::pin(finish)))
}

/// The NAR of `tree` in one chunk, or `None` when it is larger than `max` bytes.
fn read_whole(tree: &Path, max: usize) -> io::Result<Option<NarChunk>> {
    struct Collect {
        nar: Vec<u8>,
        max: usize,
        over: bool,
    }
    impl ChunkSink for Collect {
        fn take(&mut self, buf: Box<[u8]>, len: usize) -> io::Result<Box<[u8]>> {
            if self.nar.len() + len > self.max {
                self.over = true;
                return Err(io::Error::other("larger than the in-memory limit"));
            }
            self.nar.extend_from_slice(&buf[..len]);
            Ok(buf)
        }
    }
    let mut sink = Collect {
        nar: Vec::with_capacity(max),
        max,
        over: false,
    };
    match crate::nix::nar::dump_path_chunks(tree, &mut sink) {
        Ok(_) => {
            let len = sink.nar.len();
            Ok(Some(NarChunk {
                buf: sink.nar.into_boxed_slice(),
                len,
                patches: Vec::new(),
            }))
        }
        Err(_) if sink.over => Ok(None),
        Err(e) => Err(io::Error::other(e.to_string())),
    }
}
