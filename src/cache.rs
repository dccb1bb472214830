//! Nix binary caches: compression, one-pass packing of a tree into a compressed NAR, the one
//! way a store path enters a Catalog Store ([`add_path`]: NAR first, narinfo last, never
//! overwriting a different narinfo), and verified download/unpack.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tempfile::NamedTempFile;
use thiserror::Error;

use crate::nar::{
    self, HashingReader, HashingWriter, NarReadError, NarSummary, NarWriteError, RefScanner,
    Sha256Hash, StorePath, StorePathError,
};
use crate::narinfo::{self, NarInfo, NarInfoError};
use crate::sign::{PublicKey, SecretKey};
use crate::store::{ProgressSink, PutIfAbsent, PutOptions, PutOutcome, Store};

/// Contents of `nix-cache-info` for a cache pubdeck writes.
/// `WantMassQuery` and `Priority` as attic and cachix write them: Nix may ask this cache about
/// many paths at once, and prefers cache.nixos.org (40) for what both have.
pub const NIX_CACHE_INFO: &str = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 41\n";

pub use crate::nix::Compression;

/// Compression settings for packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    pub compression: Compression,
    /// zstd level (1–19); 3 by default.
    pub zstd_level: i32,
    /// zstd worker threads; 0 means one per available CPU. Output does not depend on it.
    pub zstd_threads: u32,
    /// xz preset (0–9); 6 by default, as Nix.
    pub xz_level: u32,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Zstd,
            zstd_level: 3,
            zstd_threads: 0,
            xz_level: 6,
        }
    }
}

impl PackOptions {
    /// Default settings with the given compression.
    pub fn with(compression: Compression) -> Self {
        Self {
            compression,
            ..Self::default()
        }
    }
}

/// Why packing, publishing or fetching failed.
#[derive(Debug, Error)]
pub enum CacheError {
    #[error(transparent)]
    Pack(#[from] NarWriteError),
    #[error("cannot compress the NAR ({compression}): {source}")]
    Compress {
        compression: Compression,
        source: io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{store}'s nix-cache-info says {found:?}, but pubdeck only supports StoreDir /nix/store"
    )]
    ForeignStore { store: String, found: String },
    #[error(
        "refusing to overwrite {object}: it already exists with different content (differs in: {fields}); pubdeck never overwrites a narinfo"
    )]
    Conflict { object: String, fields: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{} is not a valid narinfo: {source}", path.display())]
    BadNarInfo { path: PathBuf, source: NarInfoError },
    #[error(transparent)]
    NarInfo(#[from] NarInfoError),
    #[error(transparent)]
    StorePath(#[from] StorePathError),
    #[error("narinfo for {path}: {detail}")]
    CaMismatch { path: StorePath, detail: String },
    #[error("download of {path} failed the {check} check: expected {expected}, got {actual}")]
    Mismatch {
        path: StorePath,
        check: &'static str,
        expected: String,
        actual: String,
    },
    #[error("cannot unpack {path}: {source}")]
    Unpack {
        path: StorePath,
        source: NarReadError,
    },
    #[error("destination {} already exists", .0.display())]
    DestExists(PathBuf),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError + use<> {
    let path = path.to_owned();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

/// Figures of one pack: the uncompressed NAR and the compressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSummary {
    pub compression: Compression,
    pub nar: NarSummary,
    pub file_hash: Sha256Hash,
    pub file_size: u64,
}

/// A compressed NAR in a temporary file, with its figures and its NAR listing (built from
/// the same bytes in the same pass; `None` only if building it failed).
#[derive(Debug)]
pub struct PackedNar {
    pub file: NamedTempFile,
    pub summary: PackSummary,
    pub listing: Option<Vec<u8>>,
}

/// Passes NAR bytes on to `inner` and builds their listing as they go ([`nar::ListingWriter`]:
/// contents are skipped, nothing is copied, no second pass).
struct ListingTee<W> {
    inner: W,
    listing: nar::ListingWriter,
}

impl<W: Write> ListingTee<W> {
    fn new(inner: W) -> ListingTee<W> {
        ListingTee {
            inner,
            listing: nar::ListingWriter::default(),
        }
    }

    /// The writer back, and the listing (if the bytes were one whole NAR).
    fn finish(self) -> (W, Option<Vec<u8>>) {
        (self.inner, self.listing.finish())
    }
}

impl<W: Write> Write for ListingTee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.listing.feed(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(xz2::write::XzEncoder<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    fn new(opts: &PackOptions, w: W) -> io::Result<Self> {
        Ok(match opts.compression {
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, opts.zstd_level)?;
                let threads = match opts.zstd_threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
                    n => n,
                };
                // Always at least one worker: zstd's multithreaded output is identical for any
                // worker count >= 1 (but differs from single-threaded mode), so caches stay
                // reproducible across machines.
                e.multithread(threads.max(1))?;
                Self::Zstd(e)
            }
            Compression::Xz => Self::Xz(xz2::write::XzEncoder::new(w, opts.xz_level)),
            Compression::None => Self::None(w),
            other => {
                return Err(io::Error::other(format!(
                    "pubdeck reads {other} but writes only zstd, xz or none"
                )));
            }
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Self::Zstd(e) => e.finish(),
            Self::Xz(e) => e.finish(),
            Self::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Zstd(e) => e.write(buf),
            Self::Xz(e) => e.write(buf),
            Self::None(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Zstd(e) => e.write_all(buf),
            Self::Xz(e) => e.write_all(buf),
            Self::None(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Zstd(e) => e.flush(),
            Self::Xz(e) => e.flush(),
            Self::None(w) => w.flush(),
        }
    }
}

/// Packs `src` into a compressed NAR written to `out`, in one streaming pass
/// (tree → NAR → hash → compressor → hash → `out`). Returns `out` and the figures.
pub fn pack_to_writer<W: Write>(
    src: &Path,
    opts: &PackOptions,
    out: W,
) -> Result<(W, PackSummary), CacheError> {
    pack_to_writer_scanning(src, opts, out, &mut RefScanner::default())
}

/// [`pack_to_writer`] that also runs `scanner` over the NAR in the same pass.
pub fn pack_to_writer_scanning<W: Write>(
    src: &Path,
    opts: &PackOptions,
    out: W,
    scanner: &mut RefScanner,
) -> Result<(W, PackSummary), CacheError> {
    let (out, summary, _) = pack_listed(src, opts, out, scanner)?;
    Ok((out, summary))
}

/// [`pack_to_writer_scanning`] that also builds the NAR listing in the same pass.
fn pack_listed<W: Write>(
    src: &Path,
    opts: &PackOptions,
    out: W,
    scanner: &mut RefScanner,
) -> Result<(W, PackSummary, Option<Vec<u8>>), CacheError> {
    let compression = opts.compression;
    let cerr = |source| CacheError::Compress {
        compression,
        source,
    };
    let enc = Encoder::new(opts, HashingWriter::new(out)).map_err(cerr)?;
    let mut tee = ListingTee::new(enc);
    let nar = nar::dump_path_scanning(src, &mut tee, scanner).map_err(|e| match e {
        // Errors from the compressor or the output surface as NAR write errors.
        NarWriteError::Write(source) => cerr(source),
        e => CacheError::Pack(e),
    })?;
    let (enc, listing) = tee.finish();
    let (out, file_hash, file_size) = enc.finish().map_err(cerr)?.finish();
    Ok((
        out,
        PackSummary {
            compression,
            nar,
            file_hash,
            file_size,
        },
        listing,
    ))
}

/// A new temporary file for a packed NAR in `tmp_dir`.
fn nar_temp(tmp_dir: &Path) -> Result<NamedTempFile, CacheError> {
    tempfile::Builder::new()
        .prefix(".pubdeck-nar-")
        .tempfile_in(tmp_dir)
        .map_err(io_err("create a temporary file in", tmp_dir))
}

/// Packs `src` into a new temporary file in `tmp_dir` (put it on the destination file system so
/// it can be renamed into place). No NAR is held in memory.
pub fn pack_path(src: &Path, opts: &PackOptions, tmp_dir: &Path) -> Result<PackedNar, CacheError> {
    pack_path_scanning(src, opts, tmp_dir, &mut RefScanner::default())
}

/// [`pack_path`] that also runs `scanner` over the NAR in the same pass.
pub fn pack_path_scanning(
    src: &Path,
    opts: &PackOptions,
    tmp_dir: &Path,
    scanner: &mut RefScanner,
) -> Result<PackedNar, CacheError> {
    let mut file = nar_temp(tmp_dir)?;
    let path = file.path().to_owned();
    let (w, summary, listing) = pack_listed(
        src,
        opts,
        BufWriter::with_capacity(256 * 1024, file.as_file_mut()),
        scanner,
    )?;
    w.into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_err("write", &path))?;
    Ok(PackedNar {
        file,
        summary,
        listing,
    })
}

/// Packs the NAR that `write_nar` writes (a whole NAR, e.g. a rewritten copy of another)
/// into a new temporary file in `tmp_dir`, with its figures.
pub fn pack_nar_with(
    opts: &PackOptions,
    tmp_dir: &Path,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    pack_nar_inner(opts, tmp_dir, true, write_nar)
}

/// [`pack_nar_with`] for a NAR hashed elsewhere (the same bytes, on another thread): its
/// `summary.nar.nar_hash` is left zero for the caller to set; its size is counted.
pub fn pack_nar_unhashed(
    opts: &PackOptions,
    tmp_dir: &Path,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    pack_nar_inner(opts, tmp_dir, false, write_nar)
}

/// Counts what goes through, and hashes it when asked.
struct MaybeHashing<W> {
    inner: W,
    hasher: Option<sha2::Sha256>,
    len: u64,
}

impl<W> MaybeHashing<W> {
    /// The writer back, the hash (zero when not hashing) and the size.
    fn finish(self) -> (W, Sha256Hash, u64) {
        let hash = self.hasher.map(|h| sha2::Digest::finalize(h).into());
        (self.inner, Sha256Hash(hash.unwrap_or_default()), self.len)
    }
}

impl<W: Write> Write for MaybeHashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            sha2::Digest::update(h, &buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn pack_nar_inner(
    opts: &PackOptions,
    tmp_dir: &Path,
    hash_nar: bool,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    let compression = opts.compression;
    let cerr = |source| CacheError::Compress {
        compression,
        source,
    };
    let mut file = nar_temp(tmp_dir)?;
    let path = file.path().to_owned();
    let out = BufWriter::with_capacity(256 * 1024, file.as_file_mut());
    let enc = Encoder::new(opts, HashingWriter::new(out)).map_err(cerr)?;
    let mut nar_w = MaybeHashing {
        inner: ListingTee::new(enc),
        hasher: hash_nar.then(<sha2::Sha256 as sha2::Digest>::new),
        len: 0,
    };
    write_nar(&mut nar_w).map_err(cerr)?;
    let (tee, nar_hash, nar_size) = nar_w.finish();
    let (enc, listing) = tee.finish();
    let (out, file_hash, file_size) = enc.finish().map_err(cerr)?.finish();
    out.into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_err("write", &path))?;
    Ok(PackedNar {
        file,
        summary: PackSummary {
            compression,
            nar: NarSummary { nar_hash, nar_size },
            file_hash,
            file_size,
        },
        listing,
    })
}

/// The uncompressed NAR of a packed file.
pub fn unpacked_reader(packed: &PackedNar) -> Result<Box<dyn Read + '_>, CacheError> {
    let f = File::open(packed.file.path()).map_err(io_err("read", packed.file.path()))?;
    packed
        .summary
        .compression
        .decoder(io::BufReader::with_capacity(256 * 1024, f))
        .map_err(|source| CacheError::Compress {
            compression: packed.summary.compression,
            source,
        })
}

/// Whether [`add_path`] wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The narinfo was new and has been written.
    Added,
    /// An identical narinfo was already there.
    AlreadyPresent,
}

/// Builds the signed narinfo of a `source` (content-addressed) store path named `name`.
pub fn source_narinfo(
    summary: &PackSummary,
    name: &str,
    references: &[StorePath],
    key: &SecretKey,
) -> Result<NarInfo, CacheError> {
    let store_path = StorePath::from_nar_hash(&summary.nar.nar_hash, name, references)?;
    let mut references = references.to_vec();
    references.sort();
    references.dedup();
    let mut info = NarInfo {
        store_path,
        url: format!(
            "nar/{}{}",
            summary.file_hash.to_nix32(),
            summary.compression.extension()
        ),
        compression: summary.compression,
        file_hash: Some(summary.file_hash),
        file_size: Some(summary.file_size),
        nar_hash: summary.nar.nar_hash,
        nar_size: summary.nar.nar_size,
        references,
        deriver: None,
        system: None,
        sigs: Vec::new(),
        ca: Some(narinfo::ca_recursive_sha256(&summary.nar.nar_hash)),
        extra: Vec::new(),
    };
    info.sign(key);
    Ok(info)
}

/// The one way a store path enters a store (publish, `pack`, the demo seeder): makes sure
/// `nix-cache-info` names `/nix/store`, puts the compressed NAR (skipped when an intact copy
/// is there: its name is its hash), and only then the narinfo, which is never replaced by a
/// different one. A reader never finds a narinfo whose NAR is missing or incomplete.
pub async fn add_path(
    store: &Store,
    nar_file: &Path,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<Outcome, CacheError> {
    add_path_listed(store, nar_file, None, info, put, progress).await
}

/// [`add_path`] with the NAR listing built while packing (`None`: read from the file).
pub async fn add_path_listed(
    store: &Store,
    nar_file: &Path,
    listing: Option<&[u8]>,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<Outcome, CacheError> {
    add_path_data(store, nar_file, listing, info, put, progress).await?;
    add_path_narinfo(store, info).await
}

/// The first half of [`add_path_listed`]: `nix-cache-info`, the NAR and its listing, all
/// invisible until [`add_path_narinfo`] names them.
pub async fn add_path_data(
    store: &Store,
    nar_file: &Path,
    listing: Option<&[u8]>,
    info: &NarInfo,
    put: &PutOptions,
    progress: &ProgressSink,
) -> Result<(), CacheError> {
    let size = std::fs::metadata(nar_file)
        .map_err(io_err("stat", nar_file))?
        .len();
    // What pubdeck writes always names its file's hash and size.
    let (Some(file_hash), Some(file_size)) = (info.file_hash, info.file_size) else {
        return Err(CacheError::CaMismatch {
            path: info.store_path.clone(),
            detail: "a narinfo pubdeck writes must have FileHash and FileSize".into(),
        });
    };
    if size != file_size {
        return Err(CacheError::Mismatch {
            path: info.store_path.clone(),
            check: "FileSize",
            expected: file_size.to_string(),
            actual: size.to_string(),
        });
    }
    let nar_name = info
        .url
        .strip_prefix("nar/")
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| CacheError::CaMismatch {
            path: info.store_path.clone(),
            detail: format!("URL {:?} is not nar/<file>", info.url),
        })?;
    ensure_cache_info(store).await?;
    let mut opts = put.clone();
    opts.content_hash = Some(file_hash.to_string());
    let nar_key = format!("nar/{nar_name}");
    // An object already there may be old garbage a `catalog gc` is about to delete: touching
    // it puts it back under GC's grace period, and one deleted meanwhile is put again.
    loop {
        let put_nar = store.put_file(&nar_key, nar_file, &opts, progress).await?;
        if !matches!(put_nar, PutOutcome::Skipped { .. }) || touch(store, &nar_key).await {
            break;
        }
    }
    // The NAR listing (as Nix's `write-nar-listing=true` writes it) between the NAR and the
    // narinfo: what a review diffs against without downloading the NAR.
    let listing = match listing {
        Some(l) => l.to_vec(),
        None => {
            let (file, compression) = (nar_file.to_path_buf(), info.compression);
            tokio::task::spawn_blocking(move || nar_listing(&file, compression))
                .await
                .map_err(|e| io_err("list", nar_file)(io::Error::other(e)))??
        }
    };
    store
        .put_if_absent(&listing_key(&info.store_path), Bytes::from(listing))
        .await?;
    Ok(())
}

/// The second half of [`add_path_listed`]: the narinfo, once its NAR is in `store`
/// ([`add_path_data`]), never replacing a different one.
pub async fn add_path_narinfo(store: &Store, info: &NarInfo) -> Result<Outcome, CacheError> {
    let text = info.to_string();
    let key = info.file_name();
    loop {
        let outcome = match store.put_if_absent(&key, Bytes::from(text.clone())).await? {
            PutIfAbsent::Created => return Ok(Outcome::Added),
            PutIfAbsent::SameContent => Outcome::AlreadyPresent,
            PutIfAbsent::DifferentContent => {
                let old = store.get(&key).await?;
                let old = String::from_utf8_lossy(&old);
                // Another tool (`nix copy … ?secret-key=`, attic) may have put the same path
                // with its own layout: the same path, contents and references, signed by our
                // key (ed25519 is deterministic: the same key over the same fingerprint gives
                // the same signature), is the same path already there.
                if !same_path_signed_alike(&old, info) {
                    check_same(&store.url().object_url(&key), &old, &text)?;
                }
                Outcome::AlreadyPresent
            }
        };
        if touch(store, &key).await {
            return Ok(outcome);
        }
    }
}

/// Marks `key` as written now; `false` only when it is gone. A store that refuses the touch
/// (a read-only file, a server without CopyObject) keeps the object as it is: the publish goes
/// on, only a concurrent GC's grace period no longer covers it (said in the log).
async fn touch(store: &Store, key: &str) -> bool {
    match store.touch(key).await {
        Ok(present) => present,
        Err(e) => {
            tracing::warn!(key, error = %e, "could not refresh an object's time; a concurrent GC may treat it as old");
            true
        }
    }
}

/// The key of a store path's NAR listing: `<hash part>.ls`.
pub fn listing_key(path: &StorePath) -> String {
    format!("{}.ls", path.hash_part())
}

/// The NAR listing (Nix's `.ls` JSON) of the compressed NAR file at `nar_file`.
pub fn nar_listing(nar_file: &Path, compression: Compression) -> Result<Vec<u8>, CacheError> {
    let f = fs::File::open(nar_file).map_err(io_err("open", nar_file))?;
    let dec = compression
        .decoder(io::BufReader::new(f))
        .map_err(io_err("decompress", nar_file))?;
    nar::list_nar(dec).map_err(|e| io_err("list", nar_file)(io::Error::other(e.to_string())))
}

/// Whether `info`'s narinfo and NAR are both in `store`, marking them as written now (see
/// [`add_path`]): a dependency found this way is safe from a `catalog gc` running meanwhile.
pub async fn refresh(store: &Store, info: &NarInfo) -> Result<bool, CacheError> {
    Ok(touch(store, &info.file_name()).await && touch(store, &info.url).await)
}

/// Creates `nix-cache-info` unless there is one; an existing one must name `/nix/store`.
async fn ensure_cache_info(store: &Store) -> Result<(), CacheError> {
    let created = store
        .put_if_absent(
            "nix-cache-info",
            Bytes::from_static(NIX_CACHE_INFO.as_bytes()),
        )
        .await?;
    if created != PutIfAbsent::DifferentContent {
        return Ok(());
    }
    let text = store.get("nix-cache-info").await?;
    let text = String::from_utf8_lossy(&text);
    let dir = text
        .lines()
        .find_map(|l| l.strip_prefix("StoreDir: "))
        .unwrap_or(crate::nix::STORE_DIR)
        .trim();
    if dir == crate::nix::STORE_DIR {
        // A store created before these fields (or by Nix): add the ones it lacks.
        let mut missing = String::new();
        for line in NIX_CACHE_INFO.lines().skip(1) {
            let field = line.split(':').next().unwrap_or(line);
            if !text.lines().any(|l| l.split(':').next() == Some(field)) {
                missing.push_str(line);
                missing.push('\n');
            }
        }
        if !missing.is_empty() {
            let mut new = text.trim_end_matches('\n').to_string();
            new.push('\n');
            new.push_str(&missing);
            store.replace("nix-cache-info", Bytes::from(new)).await?;
        }
        Ok(())
    } else {
        Err(CacheError::ForeignStore {
            store: store.url().to_string(),
            found: dir.to_owned(),
        })
    }
}

/// Packs `src` as the `source` store path `name` (with `references`), signs it with `key` and
/// adds it to `store` with [`add_path`]. Returns the narinfo and whether it was new.
pub async fn add_source(
    store: &Store,
    src: &Path,
    name: &str,
    references: &[StorePath],
    opts: &PackOptions,
    key: &SecretKey,
) -> Result<(NarInfo, Outcome), CacheError> {
    nar::validate_name(name)?;
    let tmp = tempfile::Builder::new()
        .prefix("pubdeck-pack-")
        .tempdir()
        .map_err(io_err(
            "create a temporary directory in",
            &std::env::temp_dir(),
        ))?;
    let (src2, opts2, dir) = (src.to_owned(), *opts, tmp.path().to_owned());
    let packed = tokio::task::spawn_blocking(move || pack_path(&src2, &opts2, &dir))
        .await
        .map_err(|e| io_err("pack", src)(io::Error::other(e)))??;
    let info = source_narinfo(&packed.summary, name, references, key)?;
    let outcome = add_path_listed(
        store,
        packed.file.path(),
        packed.listing.as_deref(),
        &info,
        &PutOptions::default(),
        &ProgressSink::none(),
    )
    .await?;
    Ok((info, outcome))
}

/// The narinfo of `hash_part` in `store`, if there is one.
pub async fn narinfo(store: &Store, hash_part: &str) -> Result<Option<NarInfo>, CacheError> {
    let key = format!("{hash_part}.narinfo");
    match store.get(&key).await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            NarInfo::parse(&text).map(Some).map_err(CacheError::NarInfo)
        }
        Err(crate::store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the narinfo text `old` describes `info`'s path (store path, NAR hash and size,
/// references) and carries each of `info`'s signatures.
fn same_path_signed_alike(old: &str, info: &NarInfo) -> bool {
    let Ok(old) = NarInfo::parse(old) else {
        return false;
    };
    old.store_path == info.store_path
        && old.nar_hash == info.nar_hash
        && old.nar_size == info.nar_size
        && old.references == info.references
        && old
            .ca
            .as_ref()
            .is_none_or(|ca| Some(ca) == info.ca.as_ref())
        && !info.sigs.is_empty()
        && info.sigs.iter().all(|s| old.sigs.contains(s))
}

/// Errors unless `old` and `new` narinfo texts are identical, naming the keys that differ.
fn check_same(object: &str, old: &str, new: &str) -> Result<(), CacheError> {
    if old == new {
        return Ok(());
    }
    let keys = |t: &str| -> Vec<(String, String)> {
        t.lines()
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap_or((l, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    };
    let (o, n) = (keys(old), keys(new));
    let mut fields: Vec<&str> = Vec::new();
    for (k, v) in o.iter().chain(n.iter()) {
        let in_o = o.iter().any(|(k2, v2)| k2 == k && v2 == v);
        let in_n = n.iter().any(|(k2, v2)| k2 == k && v2 == v);
        let differs = !(in_o && in_n);
        if differs && !fields.contains(&k.as_str()) {
            fields.push(k);
        }
    }
    if fields.is_empty() {
        fields.push("layout");
    }
    Err(CacheError::Conflict {
        object: object.to_owned(),
        fields: fields.join(", "),
    })
}

/// How a narinfo's store path follows from its content (its `CA: fixed:r:sha256:` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentAddress {
    /// The NAR hash, or for a path that refers to itself the hash modulo its own hash part.
    pub hash: Sha256Hash,
    pub self_reference: bool,
}

/// Checks that `info`'s store path follows from its content address, name and references
/// (for a path without a self-reference the CA hash must also be its NarHash). `None` when
/// the narinfo has no `CA` line; see [`require_content_address`].
pub fn check_ca(info: &NarInfo) -> Result<Option<ContentAddress>, CacheError> {
    let Some(ca) = &info.ca else { return Ok(None) };
    let fail = |detail: String| CacheError::CaMismatch {
        path: info.store_path.clone(),
        detail,
    };
    let Some(h) = ca.strip_prefix("fixed:r:") else {
        return Err(fail(format!(
            "unsupported CA {ca:?} (pubdeck knows fixed:r:sha256: only)"
        )));
    };
    // As Nix: the hash after `sha256:` in nix32, base16 or base64.
    let hash = Sha256Hash::parse_any(h)
        .ok()
        .filter(|_| h.starts_with("sha256:"))
        .ok_or_else(|| fail(format!("unsupported CA {ca:?}: not fixed:r:sha256:<hash>")))?;
    let self_reference = info.references.contains(&info.store_path);
    let others: Vec<StorePath> = info
        .references
        .iter()
        .filter(|r| **r != info.store_path)
        .cloned()
        .collect();
    if !self_reference && hash != info.nar_hash {
        return Err(fail(format!(
            "CA {ca:?} does not match NarHash {}, and the path does not refer to itself",
            info.nar_hash
        )));
    }
    let expected = StorePath::from_ca(&hash, info.store_path.name(), &others, self_reference)?;
    if expected != info.store_path {
        return Err(fail(format!(
            "its content address, name and references give {expected}, not {}",
            info.store_path
        )));
    }
    Ok(Some(ContentAddress {
        hash,
        self_reference,
    }))
}

/// [`check_ca`], refusing a narinfo without a `CA` line: its store path would not follow
/// from its content, so nothing would stop it from naming another package's path.
pub fn require_content_address(info: &NarInfo) -> Result<ContentAddress, CacheError> {
    check_ca(info)?.ok_or_else(|| CacheError::CaMismatch {
        path: info.store_path.clone(),
        detail: "it is not content-addressed (no CA line), so its store path does not follow from its content".into(),
    })
}

/// A `Read` that copies what it reads into `W`.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Verifies and unpacks a downloaded NAR: checks `info`'s signature against `trusted`, its CA
/// (when present), then streams `compressed` through FileSize/FileHash checks, the decompressor
/// and NarSize/NarHash (and for a self-referencing path, CA) checks while unpacking into a
/// temporary directory beside `dest`, and renames the result to `dest` only when every check
/// passed. Nothing is left behind on error.
pub fn fetch_nar<R: Read>(
    info: &NarInfo,
    trusted: &[PublicKey],
    compressed: R,
    dest: &Path,
) -> Result<NarSummary, CacheError> {
    info.verify(trusted)?;
    let ca = check_ca(info)?;
    if fs::symlink_metadata(dest).is_ok() {
        return Err(CacheError::DestExists(dest.to_owned()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".pubdeck-fetch-")
        .tempdir_in(parent)
        .map_err(io_err("create a temporary directory in", parent))?;
    let staged = tmp.path().join("out");
    let summary = verify_stream(info, ca, compressed, Some(&staged))?;
    rename_noreplace(&staged, dest)?;
    Ok(summary)
}

/// [`fetch_nar`] without unpacking: every check, nothing written.
pub fn verify_nar<R: Read>(
    info: &NarInfo,
    trusted: &[PublicKey],
    compressed: R,
) -> Result<NarSummary, CacheError> {
    info.verify(trusted)?;
    let ca = check_ca(info)?;
    verify_stream(info, ca, compressed, None)
}

/// Streams `compressed` through the FileSize/FileHash checks, the decompressor and the
/// NarSize/NarHash/CA checks, unpacking to `unpack` when given.
fn verify_stream<R: Read>(
    info: &NarInfo,
    ca: Option<ContentAddress>,
    compressed: R,
    unpack: Option<&Path>,
) -> Result<NarSummary, CacheError> {
    let mismatch = |check, expected: String, actual: String| CacheError::Mismatch {
        path: info.store_path.clone(),
        check,
        expected,
        actual,
    };
    // Read at most one byte more than declared, so a lying server cannot stream forever.
    let mut file_reader = HashingReader::new(compressed.take(info.compressed_limit()));
    let mut nar_left = 0;
    // A path that refers to itself is named by its NAR hashed modulo its own hash part.
    let mut modulo = ca
        .filter(|c| c.self_reference)
        .map(|_| nar::HashModulo::new(&info.store_path.hash_bytes(), Vec::new()));
    let unpacked = match info.compression.decoder(&mut file_reader) {
        Ok(dec) => {
            let limited = dec.take(info.nar_size.saturating_add(1));
            let mut sink = io::sink();
            let copy: &mut dyn Write = match modulo.as_mut() {
                Some(m) => m,
                None => &mut sink,
            };
            let mut tee = Tee {
                inner: limited,
                copy,
            };
            let r = match unpack {
                Some(dest) => nar::unpack_nar(&mut tee, dest),
                None => nar::validate_nar(&mut tee),
            };
            nar_left = tee.inner.limit();
            r
        }
        Err(source) => Err(NarReadError::Input { offset: 0, source }),
    };
    // Hash the whole file even if decoding stopped early (trailing data, corrupt stream).
    io::copy(&mut file_reader, &mut io::sink()).map_err(|source| CacheError::Unpack {
        path: info.store_path.clone(),
        source: NarReadError::Input { offset: 0, source },
    })?;
    let (_, file_hash, file_size) = file_reader.finish();
    // Checked when the narinfo names them (Nix does not check them at all); without them the
    // NAR hash below still proves the contents.
    if let Some(want) = info.file_size
        && file_size != want
    {
        let actual = if file_size > want {
            "more".to_owned()
        } else {
            file_size.to_string()
        };
        return Err(mismatch("FileSize", want.to_string(), actual));
    }
    if info.file_size.is_none() && file_size >= info.compressed_limit() {
        return Err(mismatch(
            "compressed size",
            format!("at most {}", info.compressed_limit() - 1),
            "more".into(),
        ));
    }
    if let Some(want) = info.file_hash
        && file_hash != want
    {
        return Err(mismatch(
            "FileHash",
            want.to_string(),
            file_hash.to_string(),
        ));
    }
    if nar_left == 0 {
        return Err(mismatch(
            "NarSize",
            info.nar_size.to_string(),
            "more".to_owned(),
        ));
    }
    let summary = unpacked.map_err(|source| CacheError::Unpack {
        path: info.store_path.clone(),
        source,
    })?;
    if summary.nar_size != info.nar_size {
        return Err(mismatch(
            "NarSize",
            info.nar_size.to_string(),
            summary.nar_size.to_string(),
        ));
    }
    if summary.nar_hash != info.nar_hash {
        return Err(mismatch(
            "NarHash",
            info.nar_hash.to_string(),
            summary.nar_hash.to_string(),
        ));
    }
    if let (Some(m), Some(ca)) = (modulo, ca) {
        let (got, _) = m.finish().map_err(|source| CacheError::Unpack {
            path: info.store_path.clone(),
            source: NarReadError::Input { offset: 0, source },
        })?;
        if got != ca.hash {
            return Err(mismatch(
                "CA (hash modulo self-references)",
                ca.hash.to_string(),
                got.to_string(),
            ));
        }
    }
    Ok(summary)
}

/// Moves the verified tree into place, never over an existing one.
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), CacheError> {
    crate::fsutil::rename_noreplace(from, to).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            CacheError::DestExists(to.to_owned())
        } else {
            io_err("rename to", to)(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn key() -> SecretKey {
        SecretKey::parse("myorg-1:6tDF/ay829tLhpzfOngP18RDyejcn3mhsvAPIWtCT4Ggau0YpYOyn86tne3vG2Oy4LKJsuT8FhjzY9jgRXX36Q==").unwrap()
    }

    fn sample_tree(dir: &Path) -> PathBuf {
        let root = dir.join("tree");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/run"), b"#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        fs::write(root.join("data.txt"), text).unwrap();
        symlink("bin/run", root.join("link")).unwrap();
        root
    }

    /// Names of the entries in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn compression_names() {
        for (c, name, ext) in [
            (Compression::Zstd, "zstd", ".nar.zst"),
            (Compression::Xz, "xz", ".nar.xz"),
            (Compression::None, "none", ".nar"),
        ] {
            assert_eq!(c.nix_name(), name);
            assert_eq!(c.extension(), ext);
            assert_eq!(name.parse::<Compression>().unwrap(), c);
        }
        assert_eq!(Compression::default(), Compression::Zstd);
        assert!("bzip2".parse::<Compression>().is_err());
    }

    async fn file_store(dir: &Path) -> Store {
        Store::open_str(&format!("file://{}", dir.display()), &Default::default())
            .await
            .unwrap()
    }

    fn fetch(root: &Path, info: &NarInfo, dest: &Path) -> Result<NarSummary, CacheError> {
        let f = File::open(root.join(&info.url)).unwrap();
        fetch_nar(info, &[key().public()], f, dest)
    }

    #[tokio::test]
    async fn pack_and_fetch_round_trip_each_compression() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let mut plain = Vec::new();
        let want = nar::dump_path(&src, &mut plain).unwrap();
        for c in [Compression::Zstd, Compression::Xz, Compression::None] {
            let root = t.path().join(format!("cache-{c}"));
            let store = file_store(&root).await;
            let (info, outcome) =
                add_source(&store, &src, "sample-1", &[], &PackOptions::with(c), &key())
                    .await
                    .unwrap();
            assert_eq!(outcome, Outcome::Added);
            assert_eq!(info.nar_hash, want.nar_hash);
            assert_eq!(info.nar_size, want.nar_size);
            assert!(info.url.ends_with(c.extension()));
            let nar_file = root.join(&info.url);
            assert_eq!(Some(fs::metadata(&nar_file).unwrap().len()), info.file_size);
            assert_eq!(
                Some(Sha256Hash::of(&fs::read(&nar_file).unwrap())),
                info.file_hash
            );
            if c == Compression::None {
                assert_eq!(fs::read(&nar_file).unwrap(), plain);
            } else {
                assert!(
                    info.file_size.unwrap() < info.nar_size / 2,
                    "{c} did not compress"
                );
            }
            let again = narinfo(&store, info.store_path.hash_part())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again, info);
            assert_eq!(
                fs::read_to_string(root.join("nix-cache-info")).unwrap(),
                NIX_CACHE_INFO
            );
            let dest = t.path().join(format!("out-{c}"));
            assert_eq!(fetch(&root, &info, &dest).unwrap(), want);
            assert_eq!(nar::dump_path(&dest, io::sink()).unwrap(), want);
            // No temporary files left in the cache: nix-cache-info, nar/, the narinfo and
            // the NAR listing.
            assert_eq!(listing(&root.join("nar")).len(), 1);
            assert_eq!(listing(&root).len(), 4);
            assert!(root.join(listing_key(&info.store_path)).is_file());
        }
    }

    #[test]
    fn zstd_output_does_not_depend_on_thread_count() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let pack = |threads| {
            let opts = PackOptions {
                zstd_threads: threads,
                ..PackOptions::default()
            };
            pack_to_writer(&src, &opts, Vec::new()).unwrap()
        };
        let (one, s1) = pack(1);
        let (four, s4) = pack(4);
        assert_eq!(s1, s4);
        assert_eq!(one, four);
    }

    #[tokio::test]
    async fn add_path_is_idempotent_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let root = t.path().join("c");
        let store = file_store(&root).await;
        let opts = PackOptions::default();
        let (info, o1) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        let (_, o2) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        assert_eq!((o1, o2), (Outcome::Added, Outcome::AlreadyPresent));
        // A narinfo that differs (e.g. signed by another key) is refused, and the file stays.
        let info_path = root.join(info.file_name());
        let before = fs::read(&info_path).unwrap();
        let other = SecretKey::generate("other-1").unwrap();
        let err = add_source(&store, &src, "s", &[], &opts, &other)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CacheError::Conflict { .. }), "{msg}");
        assert!(
            msg.contains(&info.file_name()) && msg.contains("Sig"),
            "{msg}"
        );
        assert_eq!(fs::read(&info_path).unwrap(), before);
        // A lost NAR is restored by re-publishing.
        fs::remove_file(root.join(&info.url)).unwrap();
        let (_, o3) = add_source(&store, &src, "s", &[], &opts, &key())
            .await
            .unwrap();
        assert_eq!(o3, Outcome::AlreadyPresent);
        assert!(root.join(&info.url).exists());
        assert_eq!(listing(&root.join("nar")).len(), 1);
    }

    #[tokio::test]
    async fn a_foreign_store_dir_is_refused() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
        let store = file_store(t.path()).await;
        let src = sample_tree(t.path());
        let e = add_source(&store, &src, "s", &[], &PackOptions::default(), &key())
            .await
            .unwrap_err();
        assert!(matches!(e, CacheError::ForeignStore { .. }), "{e}");
        assert!(!t.path().join("nar").exists(), "nothing was written");
    }

    #[tokio::test]
    async fn fetch_reports_the_failed_check_and_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let src = sample_tree(t.path());
        let root = t.path().join("c");
        let store = file_store(&root).await;
        let (info, _) = add_source(&store, &src, "s", &[], &PackOptions::default(), &key())
            .await
            .unwrap();
        let good = fs::read(root.join(&info.url)).unwrap();
        let trusted = [key().public()];
        let out = t.path().join("dl");
        fs::create_dir(&out).unwrap();
        let dest = out.join("s");
        let check = |info: &NarInfo, bytes: &[u8], want: &str| {
            let e = fetch_nar(info, &trusted, bytes, &dest)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
            assert!(listing(&out).is_empty(), "left behind: {:?}", listing(&out));
        };
        let mut corrupt = good.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 1;
        check(&info, &corrupt, "FileHash check");
        check(&info, &good[..good.len() - 1], "FileSize check");
        let mut longer = good.clone();
        longer.push(0);
        check(&info, &longer, "FileSize check");
        // A NAR that decompresses fine but differs from NarHash (narinfo re-signed, no CA).
        let mut lying = info.clone();
        lying.ca = None;
        lying.nar_hash = Sha256Hash::of(b"something else");
        lying.sign(&key());
        check(&lying, &good, "NarHash check");
        let mut short = info.clone();
        short.ca = None;
        short.nar_size -= 8;
        short.sign(&key());
        check(&short, &good, "NarSize check");
        // Signature and CA problems are caught before anything is read.
        let mut unsigned = info.clone();
        unsigned.sigs.clear();
        check(&unsigned, &good, "no signatures");
        let mut wrong_ca = info.clone();
        wrong_ca.ca = Some(narinfo::ca_recursive_sha256(&Sha256Hash::of(b"x")));
        check(&wrong_ca, &good, "does not match NarHash");
        check(&info, b"not zstd at all", "FileSize check");
        // And the good one works, once.
        fetch_nar(&info, &trusted, &good[..], &dest).unwrap();
        assert_eq!(listing(&out), vec!["s".to_owned()]);
        let e = fetch_nar(&info, &trusted, &good[..], &dest).unwrap_err();
        assert!(matches!(e, CacheError::DestExists(_)), "{e}");
    }

    #[tokio::test]
    async fn add_source_rejects_bad_names() {
        let t = tempfile::tempdir().unwrap();
        let store = file_store(t.path()).await;
        let e = add_source(
            &store,
            t.path(),
            "bad name",
            &[],
            &PackOptions::default(),
            &key(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("bad name"), "{e}");
    }
}
