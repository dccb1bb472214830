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

/// The NAR listing (Nix's `.ls` JSON) of the compressed NAR file at `nar_file`.
pub fn nar_listing(nar_file: &Path, compression: Compression) -> Result<Vec<u8>, CacheError> {
    let f = fs::File::open(nar_file).map_err(io_err("open", nar_file))?;
    let dec = compression
        .decoder(io::BufReader::new(f))
        .map_err(io_err("decompress", nar_file))?;
    nar::list_nar(dec).map_err(|e| io_err("list", nar_file)(io::Error::other(e.to_string())))
}
