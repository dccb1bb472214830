//! Packing: a tree (or a NAR another writer makes) into one compressed NAR file in one
//! pass, with its hashes, size, references and listing.

use super::*;

/// Compression settings for packing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    pub compression: Compression,
    /// zstd level (1–19); 3 by default.
    pub zstd_level: i32,
    /// zstd worker threads; 0 means one per available CPU. Output does not depend on it.
    pub zstd_threads: u32,
    /// zstd's multithreaded mode (the default). Off: one plain context, no worker thread, for
    /// callers that already compress many NARs at once, one per core (closure dependencies):
    /// a worker pool per NAR costs more than a small NAR's compression. The two modes write
    /// different (each reproducible) frames of the same NAR.
    pub zstd_multithread: bool,
    /// xz preset (0–9); 6 by default, as Nix.
    pub xz_level: u32,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Zstd,
            zstd_level: 3,
            zstd_threads: 0,
            zstd_multithread: true,
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

/// Figures of one pack: the uncompressed NAR and the compressed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSummary {
    pub compression: Compression,
    pub nar: NarSummary,
    pub file_hash: Sha256Hash,
    pub file_size: u64,
}

/// A compressed NAR, with its figures and its NAR listing (built from the same bytes in the
/// same pass; `None` only if building it failed).
#[derive(Debug)]
pub struct PackedNar {
    pub file: NarFile,
    pub summary: PackSummary,
    pub listing: Option<Vec<u8>>,
}

/// The compressed bytes of a packed NAR: in memory when small (a closure's many small
/// dependencies then cost no temporary file each, whose inode allocation dominated packing
/// them), else a temporary file.
#[derive(Debug)]
pub enum NarFile {
    Memory(HeldBytes),
    Temp(NamedTempFile),
}

/// A compressed NAR kept in memory only up to this size…
pub const SMALL_NAR: usize = 256 * 1024;
/// … and only while all NARs held in memory by this process stay under this.
pub const MEMORY_NAR_BUDGET: u64 = 64 * 1024 * 1024;
static HELD_IN_MEMORY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes counted against [`MEMORY_NAR_BUDGET`] while they live.
#[derive(Debug)]
pub struct HeldBytes(Bytes);

impl HeldBytes {
    /// `bytes`, if the budget has room for them.
    fn reserve(bytes: Vec<u8>) -> Result<HeldBytes, Vec<u8>> {
        use std::sync::atomic::Ordering;
        let n = bytes.len() as u64;
        match HELD_IN_MEMORY.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            (held + n <= MEMORY_NAR_BUDGET).then_some(held + n)
        }) {
            Ok(_) => Ok(HeldBytes(Bytes::from(bytes))),
            Err(_) => Err(bytes),
        }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        HELD_IN_MEMORY.fetch_sub(self.0.len() as u64, std::sync::atomic::Ordering::AcqRel);
    }
}

impl NarFile {
    /// The compressed size.
    pub fn len(&self) -> Result<u64, CacheError> {
        match self {
            NarFile::Memory(b) => Ok(b.0.len() as u64),
            NarFile::Temp(f) => Ok(fs::metadata(f.path())
                .map_err(io_err("stat", f.path()))?
                .len()),
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        self.len().map(|n| n == 0)
    }

    /// Reads the compressed bytes.
    pub fn reader(&self) -> Result<Box<dyn Read + Send>, CacheError> {
        self.source().into_reader()
    }

    /// An owned handle on the same bytes, for another thread.
    pub fn source(&self) -> NarSource {
        match self {
            NarFile::Memory(b) => NarSource::Memory(b.0.clone()),
            NarFile::Temp(f) => NarSource::Path(f.path().to_path_buf()),
        }
    }

    /// Where the file is, if it is one (for messages).
    pub fn path(&self) -> Option<&Path> {
        match self {
            NarFile::Memory(_) => None,
            NarFile::Temp(f) => Some(f.path()),
        }
    }
}

/// Compressed NAR bytes as a thread of its own can hold them.
#[derive(Debug, Clone)]
pub enum NarSource {
    Memory(Bytes),
    Path(PathBuf),
}

impl NarSource {
    /// Reads the compressed bytes.
    pub fn into_reader(self) -> Result<Box<dyn Read + Send>, CacheError> {
        match self {
            NarSource::Memory(b) => Ok(Box::new(io::Cursor::new(b))),
            NarSource::Path(p) => Ok(Box::new(io::BufReader::with_capacity(
                256 * 1024,
                File::open(&p).map_err(io_err("read", &p))?,
            ))),
        }
    }

    /// What to call it in a message.
    pub fn name(&self) -> PathBuf {
        match self {
            NarSource::Memory(_) => PathBuf::from("<packed NAR in memory>"),
            NarSource::Path(p) => p.clone(),
        }
    }
}

/// Compressed output kept in memory up to [`SMALL_NAR`], written on to a temporary file in
/// `tmp_dir` past it (or when the memory budget is spent).
struct Spill<'a> {
    buf: Vec<u8>,
    file: Option<(NamedTempFile, BufWriter<File>)>,
    tmp_dir: &'a Path,
}

impl<'a> Spill<'a> {
    fn new(tmp_dir: &'a Path) -> Spill<'a> {
        Spill {
            buf: Vec::new(),
            file: None,
            tmp_dir,
        }
    }

    fn spill(&mut self) -> io::Result<()> {
        let f = nar_temp(self.tmp_dir).map_err(io::Error::other)?;
        let mut w = BufWriter::with_capacity(256 * 1024, f.reopen()?);
        w.write_all(&self.buf)?;
        self.buf = Vec::new();
        self.file = Some((f, w));
        Ok(())
    }

    fn finish(mut self) -> Result<NarFile, CacheError> {
        if self.file.is_none() {
            match HeldBytes::reserve(std::mem::take(&mut self.buf)) {
                Ok(held) => return Ok(NarFile::Memory(held)),
                Err(buf) => self.buf = buf,
            }
            self.spill().map_err(io_err("write", self.tmp_dir))?;
        }
        let (f, w) = self.file.take().expect("spilled");
        w.into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err("write", f.path()))?;
        Ok(NarFile::Temp(f))
    }
}

impl Write for Spill<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.buf.len() + data.len() > SMALL_NAR {
            self.spill()?;
        }
        match &mut self.file {
            Some((_, w)) => w.write(data),
            None => {
                self.buf.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((_, w)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Passes NAR bytes on to `inner` and builds their listing as they go ([`nar::ListingWriter`]:
/// contents are skipped, nothing is copied, no second pass).
pub(super) struct ListingTee<W> {
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

pub(super) enum Encoder<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Pooled(super::zstd_pool::PooledZstd<W>),
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
                if opts.zstd_multithread {
                    e.multithread(threads.max(1))?;
                }
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

    /// A plain zstd encoder with a context from `pool` (zstd with `zstd_multithread` off,
    /// at the pool's level); otherwise [`Self::new`].
    fn new_pooled(
        opts: &PackOptions,
        pool: Option<&std::sync::Arc<super::ZstdPool>>,
        w: W,
    ) -> io::Result<Self> {
        match pool {
            Some(pool) if opts.compression == Compression::Zstd && !opts.zstd_multithread => {
                super::zstd_pool::PooledZstd::new(pool, w).map(Self::Pooled)
            }
            _ => Self::new(opts, w),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Self::Zstd(e) => e.finish(),
            Self::Pooled(e) => e.finish(),
            Self::Xz(e) => e.finish(),
            Self::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Zstd(e) => e.write(buf),
            Self::Pooled(e) => e.write(buf),
            Self::Xz(e) => e.write(buf),
            Self::None(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Zstd(e) => e.write_all(buf),
            Self::Pooled(e) => e.write_all(buf),
            Self::Xz(e) => e.write_all(buf),
            Self::None(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Zstd(e) => e.flush(),
            Self::Pooled(e) => e.flush(),
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
pub(super) fn pack_listed<W: Write>(
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
pub(super) fn nar_temp(tmp_dir: &Path) -> Result<NamedTempFile, CacheError> {
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
        file: NarFile::Temp(file),
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
    pack_nar_inner(opts, tmp_dir, true, None, write_nar)
}

/// [`pack_nar_with`] for a NAR hashed elsewhere (the same bytes, on another thread): its
/// `summary.nar.nar_hash` is left zero for the caller to set; its size is counted.
pub fn pack_nar_unhashed(
    opts: &PackOptions,
    tmp_dir: &Path,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    pack_nar_inner(opts, tmp_dir, false, None, write_nar)
}

/// [`pack_nar_unhashed`] compressing with a context from `pool` when `opts` ask for plain
/// zstd (see [`ZstdPool`](super::ZstdPool)).
pub fn pack_nar_unhashed_pooled(
    opts: &PackOptions,
    tmp_dir: &Path,
    pool: &std::sync::Arc<super::ZstdPool>,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    pack_nar_inner(opts, tmp_dir, false, Some(pool), write_nar)
}

/// Counts what goes through, and hashes it when asked.
pub(super) struct MaybeHashing<W> {
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

pub(super) fn pack_nar_inner(
    opts: &PackOptions,
    tmp_dir: &Path,
    hash_nar: bool,
    pool: Option<&std::sync::Arc<super::ZstdPool>>,
    write_nar: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PackedNar, CacheError> {
    let compression = opts.compression;
    let cerr = |source| CacheError::Compress {
        compression,
        source,
    };
    let out = Spill::new(tmp_dir);
    let enc = Encoder::new_pooled(opts, pool, HashingWriter::new(out)).map_err(cerr)?;
    let mut nar_w = MaybeHashing {
        inner: ListingTee::new(enc),
        hasher: hash_nar.then(<sha2::Sha256 as sha2::Digest>::new),
        len: 0,
    };
    write_nar(&mut nar_w).map_err(cerr)?;
    let (tee, nar_hash, nar_size) = nar_w.finish();
    let (enc, listing) = tee.finish();
    let (out, file_hash, file_size) = enc.finish().map_err(cerr)?.finish();
    let file = out.finish()?;
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
    packed
        .summary
        .compression
        .decoder(packed.file.reader()?)
        .map_err(|source| CacheError::Compress {
            compression: packed.summary.compression,
            source,
        })
}

/// The NAR listing (Nix's `.ls` JSON) of the compressed NAR file at `nar_file`.
pub fn nar_listing(nar: NarSource, compression: Compression) -> Result<Vec<u8>, CacheError> {
    let name = nar.name();
    let dec = compression
        .decoder(nar.into_reader()?)
        .map_err(io_err("decompress", &name))?;
    nar::list_nar(dec).map_err(|e| io_err("list", &name)(io::Error::other(e.to_string())))
}

#[cfg(test)]
mod spill_tests {
    use super::*;

    fn pack(bytes: &[u8], tmp: &Path) -> PackedNar {
        let opts = PackOptions::with(Compression::None);
        pack_nar_with(&opts, tmp, |w| w.write_all(bytes)).unwrap()
    }

    #[test]
    fn small_nars_stay_in_memory_and_large_ones_go_to_a_file() {
        let t = tempfile::tempdir().unwrap();
        let small = pack(&[7u8; 1000], t.path());
        assert!(matches!(small.file, NarFile::Memory(_)));
        assert_eq!(small.file.len().unwrap(), 1000);
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            0,
            "no file for it"
        );
        let large = pack(&vec![7u8; SMALL_NAR + 1], t.path());
        assert!(matches!(large.file, NarFile::Temp(_)));
        assert_eq!(large.file.len().unwrap(), SMALL_NAR as u64 + 1);
        // Both read back as written, from another thread too.
        for (p, n) in [(&small, 1000), (&large, SMALL_NAR + 1)] {
            let mut got = Vec::new();
            p.file.reader().unwrap().read_to_end(&mut got).unwrap();
            assert_eq!(got, vec![7u8; n]);
            let src = p.file.source();
            let again = std::thread::spawn(move || {
                let mut v = Vec::new();
                src.into_reader().unwrap().read_to_end(&mut v).unwrap();
                v.len()
            })
            .join()
            .unwrap();
            assert_eq!(again, n);
        }
    }

    #[test]
    fn the_memory_budget_holds() {
        use std::sync::atomic::Ordering;
        let t = tempfile::tempdir().unwrap();
        let n = (MEMORY_NAR_BUDGET / SMALL_NAR as u64) as usize + 2;
        let held: Vec<PackedNar> = (0..n)
            .map(|_| pack(&vec![1u8; SMALL_NAR], t.path()))
            .collect();
        assert!(HELD_IN_MEMORY.load(Ordering::Acquire) <= MEMORY_NAR_BUDGET);
        assert!(
            held.iter().any(|p| matches!(p.file, NarFile::Temp(_))),
            "past the budget, NARs go to files"
        );
    }
}
