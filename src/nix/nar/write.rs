//! Streaming NAR serialisation of a file system tree (what `nix-store --dump` does).

use std::ffi::OsString;
use std::fs::{self, File, FileType};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::rewrite::RefScanner;
use super::{NarSummary, pad_len};
use crate::nix::Sha256Hash;

/// Size of the staging buffer file contents are read into (and hashed from): the size of the
/// buffers a [`ChunkSink`] hands back.
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Flush before reading file data when less than this much room is left in the buffer.
const MIN_READ: usize = 64 * 1024;
/// The fewest bytes in any chunk a [`ChunkSink`] is given but the last: a chunk is handed
/// over when less than [`MIN_READ`] is left (or when a name or link target, at most 4 KiB,
/// does not fit).
pub const MIN_CHUNK: usize = CHUNK_SIZE - MIN_READ;

/// Takes a NAR a buffer at a time: the buffer file contents were read into is handed over
/// whole, so a consumer on another thread gets the bytes without a copy.
pub trait ChunkSink {
    /// `buf[..len]` are the next bytes of the NAR (never empty; at least [`MIN_CHUNK`] of
    /// them unless it is the last chunk). Returns the buffer to fill next, [`CHUNK_SIZE`]
    /// bytes long (its contents are overwritten).
    fn take(&mut self, buf: Box<[u8]>, len: usize) -> io::Result<Box<[u8]>>;
}

/// A [`ChunkSink`] that writes each chunk out and fills the same buffer again.
struct WriteChunks<W>(W);

impl<W: Write> ChunkSink for WriteChunks<W> {
    fn take(&mut self, buf: Box<[u8]>, len: usize) -> io::Result<Box<[u8]>> {
        self.0.write_all(&buf[..len])?;
        Ok(buf)
    }
}

/// Why a tree could not be written as a NAR.
#[derive(Debug, Error)]
pub enum NarWriteError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{} is a {kind}; a NAR can only hold regular files, directories and symlinks",
        path.display()
    )]
    UnsupportedType { path: PathBuf, kind: &'static str },
    #[error(
        "{} changed while being packed: it had {expected} bytes, but {actual} could be read",
        path.display()
    )]
    Changed {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("{} was replaced by a non-regular file while being packed", .0.display())]
    Replaced(PathBuf),
    #[error("cannot write the NAR output: {0}")]
    Write(#[source] io::Error),
}

/// Serialises `path` (a directory, regular file or symlink; symlinks are never followed) as a
/// NAR into `out`, returning the NAR's SHA-256 and size computed in the same pass.
///
/// Directory entries are sorted by the raw bytes of their names, so non-UTF-8 names are
/// supported. Regular files are marked executable when the owner-execute bit is set.
pub fn dump_path<W: Write>(path: &Path, out: W) -> Result<NarSummary, NarWriteError> {
    dump_path_scanning(path, out, &mut RefScanner::default())
}

/// [`dump_path`] that also runs `scanner` over the NAR in the same pass (the references of a
/// store path are the candidate hash parts that occur in its NAR).
pub fn dump_path_scanning<W: Write>(
    path: &Path,
    out: W,
    scanner: &mut RefScanner,
) -> Result<NarSummary, NarWriteError> {
    let mut out = WriteChunks(out);
    let summary = dump(path, &mut out, scanner, true)?;
    out.0.flush().map_err(NarWriteError::Write)?;
    Ok(summary)
}

/// [`dump_path`] into a [`ChunkSink`], without hashing (the sink hashes what it needs): the
/// NAR's size.
pub fn dump_path_chunks<S: ChunkSink>(path: &Path, sink: &mut S) -> Result<u64, NarWriteError> {
    dump(path, sink, &mut RefScanner::default(), false).map(|s| s.nar_size)
}

fn dump<S: ChunkSink>(
    path: &Path,
    out: &mut S,
    scanner: &mut RefScanner,
    hash: bool,
) -> Result<NarSummary, NarWriteError> {
    let meta = fs::symlink_metadata(path).map_err(|source| NarWriteError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut d = Dumper {
        out,
        hasher: hash.then(Sha256::new),
        size: 0,
        buf: vec![0u8; CHUNK_SIZE].into_boxed_slice(),
        len: 0,
        path: path.to_owned(),
        scanner,
    };
    d.put_str(b"nix-archive-1")?;
    d.node(meta.file_type())?;
    d.flush_buf()?;
    Ok(NarSummary {
        nar_hash: Sha256Hash(d.hasher.map(|h| h.finalize().into()).unwrap_or_default()),
        nar_size: d.size,
    })
}

struct Dumper<'s, 'o, S> {
    out: &'o mut S,
    scanner: &'s mut RefScanner,
    hasher: Option<Sha256>,
    /// Bytes flushed to `out` so far.
    size: u64,
    buf: Box<[u8]>,
    /// Bytes of `buf` in use.
    len: usize,
    /// The path of the node being written (pushed/popped while walking).
    path: PathBuf,
}

impl<S: ChunkSink> Dumper<'_, '_, S> {
    fn flush_buf(&mut self) -> Result<(), NarWriteError> {
        if self.len == 0 {
            return Ok(());
        }
        let data = &self.buf[..self.len];
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
        self.scanner.scan(data);
        let buf = std::mem::take(&mut self.buf);
        self.buf = self.out.take(buf, self.len).map_err(NarWriteError::Write)?;
        debug_assert_eq!(self.buf.len(), CHUNK_SIZE);
        self.size += self.len as u64;
        self.len = 0;
        Ok(())
    }

    /// Appends a small piece (always much smaller than the buffer).
    fn put(&mut self, data: &[u8]) -> Result<(), NarWriteError> {
        if self.buf.len() - self.len < data.len() {
            self.flush_buf()?;
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(())
    }

    fn put_u64(&mut self, n: u64) -> Result<(), NarWriteError> {
        self.put(&n.to_le_bytes())
    }

    fn put_str(&mut self, s: &[u8]) -> Result<(), NarWriteError> {
        self.put_u64(s.len() as u64)?;
        self.put(s)?;
        self.put(&[0u8; 8][..pad_len(s.len() as u64)])
    }

    fn read_err(&self, source: io::Error) -> NarWriteError {
        NarWriteError::Read {
            path: self.path.clone(),
            source,
        }
    }

    fn node(&mut self, ft: FileType) -> Result<(), NarWriteError> {
        self.put_str(b"(")?;
        self.put_str(b"type")?;
        if ft.is_dir() {
            self.put_str(b"directory")?;
            self.directory()?;
        } else if ft.is_file() {
            self.put_str(b"regular")?;
            self.regular()?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&self.path).map_err(|e| self.read_err(e))?;
            self.put_str(b"symlink")?;
            self.put_str(b"target")?;
            self.put_str(target.as_os_str().as_bytes())?;
        } else {
            let kind = if ft.is_fifo() {
                "FIFO"
            } else if ft.is_socket() {
                "socket"
            } else if ft.is_block_device() {
                "block device"
            } else if ft.is_char_device() {
                "character device"
            } else {
                "special file"
            };
            return Err(NarWriteError::UnsupportedType {
                path: self.path.clone(),
                kind,
            });
        }
        self.put_str(b")")
    }

    fn directory(&mut self) -> Result<(), NarWriteError> {
        let mut entries: Vec<(OsString, FileType)> = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(|e| self.read_err(e))? {
            let entry = entry.map_err(|e| self.read_err(e))?;
            let ft = entry.file_type().map_err(|source| NarWriteError::Read {
                path: entry.path(),
                source,
            })?;
            entries.push((entry.file_name(), ft));
        }
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, ft) in entries {
            self.put_str(b"entry")?;
            self.put_str(b"(")?;
            self.put_str(b"name")?;
            self.put_str(name.as_bytes())?;
            self.put_str(b"node")?;
            self.path.push(&name);
            let r = self.node(ft);
            self.path.pop();
            r?;
            self.put_str(b")")?;
        }
        Ok(())
    }

    fn regular(&mut self) -> Result<(), NarWriteError> {
        let mut file = File::open(&self.path).map_err(|e| self.read_err(e))?;
        let meta = file.metadata().map_err(|e| self.read_err(e))?;
        if !meta.is_file() {
            // Replaced by something else between listing and opening.
            return Err(NarWriteError::Replaced(self.path.clone()));
        }
        if meta.permissions().mode() & 0o100 != 0 {
            self.put_str(b"executable")?;
            self.put_str(b"")?;
        }
        self.put_str(b"contents")?;
        let expected = meta.len();
        self.put_u64(expected)?;
        let mut read: u64 = 0;
        loop {
            if self.buf.len() - self.len < MIN_READ {
                self.flush_buf()?;
            }
            let n = match file.read(&mut self.buf[self.len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(e)),
            };
            if n == 0 {
                break;
            }
            read += n as u64;
            self.len += n;
            if read > expected {
                break;
            }
        }
        if read != expected {
            return Err(NarWriteError::Changed {
                path: self.path.clone(),
                expected,
                actual: read,
            });
        }
        self.put(&[0u8; 8][..pad_len(expected)])
    }
}
