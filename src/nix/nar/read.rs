//! Strict, streaming NAR parser: validation and unpacking.
//!
//! Only the canonical serialisation Nix itself writes is accepted: entries strictly sorted by
//! name bytes, zero padding, valid names, no bytes after the root node. Lengths are bounded
//! before anything is allocated; file contents are streamed, never buffered whole.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::rewrite::{HashAndModulo, HashPart};
use super::{NarSummary, pad_len};
use crate::nix::Sha256Hash;

/// Longest entry name accepted (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: u64 = 255;
/// Longest symlink target accepted (Linux `PATH_MAX` without the NUL).
pub const MAX_TARGET_LEN: u64 = 4095;
/// Deepest directory nesting accepted (deeper trees cannot exist under `PATH_MAX` anyway).
pub const MAX_DEPTH: usize = 2048;
/// Longest fixed token (`nix-archive-1`) is 13 bytes; anything longer is reported, not read.
const MAX_TOKEN_LEN: u64 = 16;
const READ_BUF: usize = 256 * 1024;

/// Mode of unpacked directories and executable files.
pub const MODE_EXEC: u32 = 0o755;
/// Mode of unpacked non-executable files.
pub const MODE_FILE: u32 = 0o644;

/// What is wrong with a NAR.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NarProblem {
    #[error("unexpected end of input (truncated NAR)")]
    Truncated,
    #[error("expected {expected:?}, found {found:?}")]
    UnexpectedToken {
        expected: &'static str,
        found: String,
    },
    #[error("expected {expected:?}, found a {len}-byte string")]
    TokenTooLong { expected: &'static str, len: u64 },
    #[error("unknown node type {0:?}")]
    UnknownType(String),
    #[error("non-zero padding byte")]
    BadPadding,
    #[error("{what} is {len} bytes long, the limit is {max}")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("invalid entry name {0:?} (empty, \".\", \"..\", or contains '/' or NUL)")]
    BadName(String),
    #[error("entry {name:?} is not sorted after {prev:?}")]
    Unsorted { prev: String, name: String },
    #[error("duplicate entry {0:?}")]
    Duplicate(String),
    #[error("invalid symlink target {0:?} (empty or contains NUL)")]
    BadTarget(String),
    #[error("directories nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("trailing bytes after the root node")]
    TrailingBytes,
}

/// Why a NAR could not be read or unpacked.
#[derive(Debug, Error)]
pub enum NarReadError {
    #[error("invalid NAR at byte {offset}: {problem}")]
    Invalid { offset: u64, problem: NarProblem },
    #[error("cannot read NAR input at byte {offset}: {source}")]
    Input { offset: u64, source: io::Error },
    #[error("cannot create {}: {source}", path.display())]
    Output { path: PathBuf, source: io::Error },
}

impl NarReadError {
    /// The structural problem, when the NAR itself is invalid.
    pub fn problem(&self) -> Option<&NarProblem> {
        match self {
            Self::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// Checks that `input` is exactly one canonical NAR, returning its hash and size.
pub fn validate_nar<R: Read>(input: R) -> Result<NarSummary, NarReadError> {
    parse(input, &mut NullSink, Digest::Plain(Default::default())).map(|(s, _)| s)
}

/// [`validate_nar`], or with `unpack` [`unpack_nar`], of the NAR of a path that refers to
/// itself: also its hash modulo its own hash part `own` (what names it), in the same pass.
pub fn check_nar_modulo<R: Read>(
    input: R,
    unpack: Option<&Path>,
    own: &HashPart,
) -> Result<(NarSummary, Sha256Hash), NarReadError> {
    let digest = Digest::Modulo(Box::new(HashAndModulo::new(own)));
    let (summary, modulo) = match unpack {
        Some(dest) => parse(input, &mut UnpackSink::new(dest), digest)?,
        None => parse(input, &mut NullSink, digest)?,
    };
    Ok((summary, modulo.expect("hashed modulo")))
}

/// Unpacks the NAR in `input` to `dest`, which must not exist (its parent must). The root may
/// be a directory, a file or a symlink. Directories and executables get mode 0755, other files
/// 0644, regardless of umask. On error, whatever was created so far is left for the caller to
/// remove (see [`crate::cache`] for an all-or-nothing variant).
pub fn unpack_nar<R: Read>(input: R, dest: &Path) -> Result<NarSummary, NarReadError> {
    parse(
        input,
        &mut UnpackSink::new(dest),
        Digest::Plain(Default::default()),
    )
    .map(|(s, _)| s)
}

/// How the parser hashes what it reads.
enum Digest {
    Plain(sha2::Sha256),
    /// Also modulo a path's own hash part.
    Modulo(Box<HashAndModulo>),
}

/// A reader that hashes and counts what passes through it.
struct DigestReader<R> {
    inner: R,
    digest: Digest,
    len: u64,
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.digest {
            Digest::Plain(h) => sha2::Digest::update(h, &buf[..n]),
            Digest::Modulo(h) => h.write_all(&buf[..n])?,
        }
        self.len += n as u64;
        Ok(n)
    }
}

impl<R> DigestReader<R> {
    /// The NAR hash, the hash modulo (when asked for) and the byte count.
    fn finish(self) -> (Sha256Hash, Option<Sha256Hash>, u64) {
        match self.digest {
            Digest::Plain(h) => (Sha256Hash(sha2::Digest::finalize(h).into()), None, self.len),
            Digest::Modulo(h) => {
                let (plain, modulo, _) = h.finish();
                (plain, Some(modulo), self.len)
            }
        }
    }
}

/// Receives the nodes of a NAR in order. Paths are relative, `/`-joined, empty for the root.
trait Sink {
    fn directory(&mut self, rel: &[u8]) -> Result<(), NarReadError>;
    fn symlink(&mut self, rel: &[u8], target: &[u8]) -> Result<(), NarReadError>;
    fn file_start(&mut self, rel: &[u8], executable: bool) -> Result<(), NarReadError>;
    fn file_data(&mut self, data: &[u8]) -> Result<(), NarReadError>;
    fn file_end(&mut self) -> Result<(), NarReadError>;
}

struct NullSink;

impl Sink for NullSink {
    fn directory(&mut self, _: &[u8]) -> Result<(), NarReadError> {
        Ok(())
    }
    fn symlink(&mut self, _: &[u8], _: &[u8]) -> Result<(), NarReadError> {
        Ok(())
    }
    fn file_start(&mut self, _: &[u8], _: bool) -> Result<(), NarReadError> {
        Ok(())
    }
    fn file_data(&mut self, _: &[u8]) -> Result<(), NarReadError> {
        Ok(())
    }
    fn file_end(&mut self) -> Result<(), NarReadError> {
        Ok(())
    }
}

struct UnpackSink {
    dest: PathBuf,
    file: Option<File>,
    /// Path of the node being created.
    path: PathBuf,
}

impl UnpackSink {
    fn new(dest: &Path) -> UnpackSink {
        UnpackSink {
            dest: dest.to_owned(),
            file: None,
            path: PathBuf::new(),
        }
    }
}

impl UnpackSink {
    fn set_path(&mut self, rel: &[u8]) {
        self.path.clone_from(&self.dest);
        if !rel.is_empty() {
            self.path.push(OsStr::from_bytes(rel));
        }
    }
    fn err(&self, source: io::Error) -> NarReadError {
        NarReadError::Output {
            path: self.path.clone(),
            source,
        }
    }
}

impl Sink for UnpackSink {
    fn directory(&mut self, rel: &[u8]) -> Result<(), NarReadError> {
        self.set_path(rel);
        fs::create_dir(&self.path).map_err(|e| self.err(e))?;
        fs::set_permissions(&self.path, Permissions::from_mode(MODE_EXEC)).map_err(|e| self.err(e))
    }
    fn symlink(&mut self, rel: &[u8], target: &[u8]) -> Result<(), NarReadError> {
        self.set_path(rel);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &self.path).map_err(|e| self.err(e))
    }
    fn file_start(&mut self, rel: &[u8], executable: bool) -> Result<(), NarReadError> {
        self.set_path(rel);
        let mode = if executable { MODE_EXEC } else { MODE_FILE };
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&self.path)
            .map_err(|e| self.err(e))?;
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(|e| self.err(e))?;
        self.file = Some(f);
        Ok(())
    }
    fn file_data(&mut self, data: &[u8]) -> Result<(), NarReadError> {
        match self.file.as_mut() {
            Some(f) => f.write_all(data).map_err(|source| NarReadError::Output {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
    fn file_end(&mut self) -> Result<(), NarReadError> {
        self.file = None;
        Ok(())
    }
}

/// The listing of the NAR in `input`, byte for byte as Nix 2.8 writes it into `<hash>.ls`
/// beside a NAR (`write-nar-listing=true`, `listNar`): `{"version":1,"root":NODE}` where a
/// directory is `{"type":"directory","entries":{NAME:NODE,…}}` (entries in NAR order), a file
/// `{"type":"regular","size":N[,"executable":true][,"narOffset":N]}` and a symlink
/// `{"type":"symlink","target":T}`; no spaces, strings escaped as Nix's JSON writer does.
/// Like Nix, names and targets go in as their bytes (so a name that is not UTF-8 makes a
/// document that is not UTF-8 either).
pub fn list_nar<R: Read>(input: R) -> Result<Vec<u8>, NarReadError> {
    // The strict parser validates; the listing is built from the bytes it reads.
    let mut listing = ListingWriter::default();
    let (summary, _) = parse(
        TeeRead {
            inner: input,
            to: &mut listing,
        },
        &mut NullSink,
        Digest::Plain(Default::default()),
    )?;
    listing.finish().ok_or(NarReadError::Input {
        offset: summary.nar_size,
        source: io::Error::other("a valid NAR gave no listing"),
    })
}

/// Feeds what is read from `inner` to a [`ListingWriter`].
struct TeeRead<'a, R> {
    inner: R,
    to: &'a mut ListingWriter,
}

impl<R: Read> Read for TeeRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.to.feed(&buf[..n]);
        Ok(n)
    }
}

enum ListNode {
    File {
        size: u64,
        executable: bool,
        offset: u64,
    },
    Link(Vec<u8>),
    Dir(Vec<(Vec<u8>, ListNode)>),
}

impl ListNode {
    fn write(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        match self {
            ListNode::File {
                size,
                executable,
                offset,
            } => {
                let _ = write!(out, "{{\"type\":\"regular\",\"size\":{size}");
                if *executable {
                    out.extend_from_slice(b",\"executable\":true");
                }
                if *offset != 0 {
                    let _ = write!(out, ",\"narOffset\":{offset}");
                }
                out.push(b'}');
            }
            ListNode::Link(target) => {
                out.extend_from_slice(b"{\"type\":\"symlink\",\"target\":");
                json_bytes(target, out);
                out.push(b'}');
            }
            ListNode::Dir(entries) => {
                out.extend_from_slice(b"{\"type\":\"directory\",\"entries\":{");
                for (i, (name, node)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_bytes(name, out);
                    out.push(b':');
                    node.write(out);
                }
                out.extend_from_slice(b"}}");
            }
        }
    }
}

/// A JSON string as Nix's `toJSON` writes one, byte by byte: `"` and `\` escaped, `\n` `\r`
/// `\t`, other bytes below 0x20 as `\u00XX`, everything else (UTF-8 or not) as is.
fn json_bytes(s: &[u8], out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => {
                let _ = write!(out, "\\u{b:04x}");
            }
            b => out.push(b),
        }
    }
    out.push(b'"');
}

/// Builds the NAR listing of the NAR bytes written into it, as they pass (push mode: no copy,
/// no second pass; file contents are skipped, not looked at). For NARs pubdeck itself writes;
/// anything that is not a canonical NAR makes [`ListingWriter::finish`] return `None`.
pub struct ListingWriter {
    sink: ListingTree,
    /// Bytes seen so far.
    pos: u64,
    state: ByteState,
    /// What the next string is (a keyword, or the value of the keyword before it).
    expect: Expect,
    /// The names of the open entries (the path of the current node).
    path: Vec<Vec<u8>>,
    /// What each open `(` opened: an entry (`true`) or a node.
    parens: Vec<bool>,
    executable: bool,
    /// `entry` was read: the next `(` opens an entry.
    pending_entry: bool,
    seen_magic: bool,
    failed: bool,
}

enum ByteState {
    /// Reading a string's 8-byte length.
    Len { buf: [u8; 8], have: usize },
    /// Reading (or, for file contents, skipping) a string's bytes.
    Body {
        left: u64,
        len: u64,
        keep: Option<Vec<u8>>,
    },
    /// Skipping the zero padding after a string.
    Pad { left: u64 },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Keyword,
    Type,
    Name,
    Target,
    Contents,
    /// The empty string after `executable`.
    Empty,
}

/// Longest string kept (names and targets are far shorter; only contents are longer).
const MAX_KEPT: u64 = 1 << 16;

impl Default for ListingWriter {
    fn default() -> Self {
        ListingWriter {
            sink: ListingTree { root: None },
            pos: 0,
            state: ByteState::Len {
                buf: [0; 8],
                have: 0,
            },
            expect: Expect::Keyword,
            path: Vec::new(),
            parens: Vec::new(),
            executable: false,
            pending_entry: false,
            seen_magic: false,
            failed: false,
        }
    }
}

impl ListingWriter {
    /// Takes the next bytes of the NAR.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.failed {
            match &mut self.state {
                ByteState::Len { buf, have } => {
                    let n = (8 - *have).min(data.len());
                    buf[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    data = &data[n..];
                    self.pos += n as u64;
                    if *have == 8 {
                        let len = u64::from_le_bytes(*buf);
                        let keep = (self.expect != Expect::Contents).then(Vec::new);
                        if keep.is_some() && len > MAX_KEPT {
                            self.failed = true;
                            return;
                        }
                        if self.expect == Expect::Contents {
                            self.contents(len);
                        }
                        self.state = ByteState::Body {
                            left: len,
                            len,
                            keep,
                        };
                        if len == 0 {
                            self.end_string();
                        }
                    }
                }
                ByteState::Body { left, keep, .. } => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    if let Some(k) = keep {
                        k.extend_from_slice(&data[..n]);
                    }
                    *left -= n as u64;
                    data = &data[n..];
                    self.pos += n as u64;
                    if *left == 0 {
                        self.end_string();
                    }
                }
                ByteState::Pad { left } => {
                    let n = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                    *left -= n as u64;
                    data = &data[n..];
                    self.pos += n as u64;
                    if *left == 0 {
                        self.state = ByteState::Len {
                            buf: [0; 8],
                            have: 0,
                        };
                    }
                }
            }
        }
    }

    /// A file's contents of `len` bytes start here.
    fn contents(&mut self, len: u64) {
        let rel = self.path.join(&b'/');
        self.failed |= !self.sink.put(
            &rel,
            ListNode::File {
                size: len,
                executable: std::mem::take(&mut self.executable),
                offset: self.pos,
            },
        );
    }

    /// A whole string was read: interpret it, then skip its padding.
    fn end_string(&mut self) {
        let ByteState::Body { len, keep, .. } =
            std::mem::replace(&mut self.state, ByteState::Pad { left: 0 })
        else {
            return;
        };
        let tok = keep.unwrap_or_default();
        self.token(tok);
        let pad = pad_len(len) as u64;
        self.state = if pad == 0 {
            ByteState::Len {
                buf: [0; 8],
                have: 0,
            }
        } else {
            ByteState::Pad { left: pad }
        };
    }

    fn token(&mut self, tok: Vec<u8>) {
        let expect = std::mem::replace(&mut self.expect, Expect::Keyword);
        let rel = || self.path.join(&b'/');
        match expect {
            Expect::Contents => {}
            Expect::Empty => {
                if !tok.is_empty() {
                    self.failed = true;
                }
            }
            Expect::Name => self.path.push(tok),
            Expect::Target => {
                let r = rel();
                self.failed |= !self.sink.put(&r, ListNode::Link(tok));
            }
            Expect::Type => match tok.as_slice() {
                b"directory" => {
                    let r = rel();
                    self.failed |= !self.sink.put(&r, ListNode::Dir(Vec::new()));
                }
                b"regular" | b"symlink" => {}
                _ => self.failed = true,
            },
            Expect::Keyword => match tok.as_slice() {
                b"nix-archive-1" if !self.seen_magic => self.seen_magic = true,
                _ if !self.seen_magic => self.failed = true,
                b"(" => {
                    // After `entry` it opens the entry, else a node.
                    let entry = self.pending_entry;
                    self.pending_entry = false;
                    self.parens.push(entry);
                }
                b")" => match self.parens.pop() {
                    Some(true) => {
                        self.path.pop();
                    }
                    Some(false) => {}
                    None => self.failed = true,
                },
                b"type" => self.expect = Expect::Type,
                b"executable" => {
                    self.executable = true;
                    self.expect = Expect::Empty;
                }
                b"contents" => self.expect = Expect::Contents,
                b"target" => self.expect = Expect::Target,
                b"entry" => self.pending_entry = true,
                b"name" => self.expect = Expect::Name,
                b"node" => {}
                _ => self.failed = true,
            },
        }
    }

    /// The listing (as [`list_nar`] makes it), unless the bytes were not one whole NAR.
    pub fn finish(self) -> Option<Vec<u8>> {
        let whole = !self.failed
            && self.seen_magic
            && self.parens.is_empty()
            && matches!(self.state, ByteState::Len { have: 0, .. });
        let root = self.sink.root.filter(|_| whole)?;
        let mut out = b"{\"version\":1,\"root\":".to_vec();
        root.write(&mut out);
        out.push(b'}');
        Some(out)
    }
}

impl Write for ListingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ListingTree {
    root: Option<ListNode>,
}

impl ListingTree {
    /// Puts `node` at `rel` (whose parent directories were put before; entries arrive in NAR
    /// order, so each goes last in its directory). `false` when `rel` has no directory to go
    /// in (bytes that are not a NAR).
    fn put(&mut self, rel: &[u8], node: ListNode) -> bool {
        if rel.is_empty() {
            self.root = Some(node);
            return true;
        }
        let Some(mut at) = self.root.as_mut() else {
            return false;
        };
        let parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        for _ in &parts[..parts.len() - 1] {
            at = match at {
                ListNode::Dir(entries) => match entries.last_mut() {
                    Some((_, child)) => child,
                    None => return false,
                },
                _ => return false,
            };
        }
        match at {
            ListNode::Dir(entries) => {
                entries.push((parts[parts.len() - 1].to_vec(), node));
                true
            }
            _ => false,
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Parser<R> {
    r: BufReader<DigestReader<R>>,
    pos: u64,
    tok: Vec<u8>,
}

/// One open directory while parsing.
struct Frame {
    prev: Option<Vec<u8>>,
    /// Length of the relative path of this directory.
    rel_len: usize,
}

enum NodeType {
    Regular,
    Symlink,
    Directory,
}

fn parse<R: Read, S: Sink>(
    input: R,
    sink: &mut S,
    digest: Digest,
) -> Result<(NarSummary, Option<Sha256Hash>), NarReadError> {
    let reader = DigestReader {
        inner: input,
        digest,
        len: 0,
    };
    let mut p = Parser {
        r: BufReader::with_capacity(READ_BUF, reader),
        pos: 0,
        tok: Vec::with_capacity(MAX_NAME_LEN as usize),
    };
    p.expect("nix-archive-1")?;
    let mut rel: Vec<u8> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Parse the root node; a directory pushes a frame and is continued below.
    if let NodeType::Directory = p.node_start(&rel, sink)? {
        stack.push(Frame {
            prev: None,
            rel_len: 0,
        });
    }
    while let Some(frame) = stack.last_mut() {
        let at = p.pos;
        p.read_token("entry\" or \")", MAX_TOKEN_LEN)?;
        match p.tok.as_slice() {
            b")" => {
                stack.pop();
                if let Some(parent) = stack.last() {
                    rel.truncate(parent.rel_len);
                    p.expect(")")?; // closes the "entry" of the directory just finished
                }
                continue;
            }
            b"entry" => {}
            _ => {
                return Err(p.invalid_at(
                    at,
                    NarProblem::UnexpectedToken {
                        expected: "entry\" or \")",
                        found: lossy(&p.tok),
                    },
                ));
            }
        }
        p.expect("(")?;
        p.expect("name")?;
        let at = p.pos;
        p.read_string("entry name", MAX_NAME_LEN)?;
        let name = p.tok.as_slice();
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(p.invalid_at(at, NarProblem::BadName(lossy(name))));
        }
        if let Some(prev) = &frame.prev {
            match prev.as_slice().cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(p.invalid_at(at, NarProblem::Duplicate(lossy(name))));
                }
                std::cmp::Ordering::Greater => {
                    return Err(p.invalid_at(
                        at,
                        NarProblem::Unsorted {
                            prev: lossy(prev),
                            name: lossy(name),
                        },
                    ));
                }
            }
        }
        let mut prev = frame.prev.take().unwrap_or_default();
        prev.clear();
        prev.extend_from_slice(name);
        frame.prev = Some(prev);
        let dir_len = frame.rel_len;
        rel.truncate(dir_len);
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&p.tok);
        p.expect("node")?;
        match p.node_start(&rel, sink)? {
            NodeType::Directory => {
                if stack.len() >= MAX_DEPTH {
                    return Err(p.invalid(NarProblem::TooDeep));
                }
                stack.push(Frame {
                    prev: None,
                    rel_len: rel.len(),
                });
            }
            _ => p.expect(")")?, // closes the entry
        }
    }
    // Nothing may follow the root node.
    let at = p.pos;
    let more =
        p.r.fill_buf()
            .map_err(|source| NarReadError::Input { offset: at, source })?;
    if !more.is_empty() {
        return Err(p.invalid_at(at, NarProblem::TrailingBytes));
    }
    let (nar_hash, modulo, nar_size) = p.r.into_inner().finish();
    Ok((NarSummary { nar_hash, nar_size }, modulo))
}

impl<R: Read> Parser<R> {
    fn invalid(&self, problem: NarProblem) -> NarReadError {
        self.invalid_at(self.pos, problem)
    }

    fn invalid_at(&self, offset: u64, problem: NarProblem) -> NarReadError {
        NarReadError::Invalid { offset, problem }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), NarReadError> {
        let mut done = 0;
        while done < buf.len() {
            match self.r.read(&mut buf[done..]) {
                Ok(0) => return Err(self.invalid_at(self.pos + done as u64, NarProblem::Truncated)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(NarReadError::Input {
                        offset: self.pos + done as u64,
                        source,
                    });
                }
            }
        }
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn read_u64(&mut self) -> Result<u64, NarReadError> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn read_padding(&mut self, len: u64) -> Result<(), NarReadError> {
        let mut pad = [0u8; 8];
        let n = pad_len(len);
        let at = self.pos;
        self.read_exact(&mut pad[..n])?;
        if pad[..n].iter().any(|&b| b != 0) {
            return Err(self.invalid_at(at, NarProblem::BadPadding));
        }
        Ok(())
    }

    /// Reads a string of at most `max` bytes into `self.tok`.
    fn read_string(&mut self, what: &'static str, max: u64) -> Result<(), NarReadError> {
        let at = self.pos;
        let len = self.read_u64()?;
        if len > max {
            return Err(self.invalid_at(at, NarProblem::TooLong { what, len, max }));
        }
        self.read_body(len)
    }

    /// Reads a fixed token (bounded by [`MAX_TOKEN_LEN`]) into `self.tok`.
    fn read_token(&mut self, expected: &'static str, max: u64) -> Result<(), NarReadError> {
        let at = self.pos;
        let len = self.read_u64()?;
        if len > max {
            return Err(self.invalid_at(at, NarProblem::TokenTooLong { expected, len }));
        }
        self.read_body(len)
    }

    fn read_body(&mut self, len: u64) -> Result<(), NarReadError> {
        let mut tok = std::mem::take(&mut self.tok);
        tok.resize(len as usize, 0);
        let r = self.read_exact(&mut tok);
        self.tok = tok;
        r?;
        self.read_padding(len)
    }

    fn expect(&mut self, token: &'static str) -> Result<(), NarReadError> {
        let at = self.pos;
        self.read_token(token, MAX_TOKEN_LEN)?;
        if self.tok != token.as_bytes() {
            return Err(self.invalid_at(
                at,
                NarProblem::UnexpectedToken {
                    expected: token,
                    found: lossy(&self.tok),
                },
            ));
        }
        Ok(())
    }

    /// Parses `"(" "type" <type> …` up to and including the node's closing `")"` for files and
    /// symlinks; for directories, stops after the type (entries are parsed by the caller).
    fn node_start<S: Sink>(&mut self, rel: &[u8], sink: &mut S) -> Result<NodeType, NarReadError> {
        self.expect("(")?;
        self.expect("type")?;
        let at = self.pos;
        self.read_token("regular\", \"symlink\" or \"directory", MAX_TOKEN_LEN)?;
        match self.tok.as_slice() {
            b"regular" => {
                self.regular(rel, sink)?;
                self.expect(")")?;
                Ok(NodeType::Regular)
            }
            b"symlink" => {
                self.expect("target")?;
                let at = self.pos;
                self.read_string("symlink target", MAX_TARGET_LEN)?;
                if self.tok.is_empty() || self.tok.contains(&0) {
                    return Err(self.invalid_at(at, NarProblem::BadTarget(lossy(&self.tok))));
                }
                let target = std::mem::take(&mut self.tok);
                let r = sink.symlink(rel, &target);
                self.tok = target;
                r?;
                self.expect(")")?;
                Ok(NodeType::Symlink)
            }
            b"directory" => {
                sink.directory(rel)?;
                Ok(NodeType::Directory)
            }
            other => Err(self.invalid_at(at, NarProblem::UnknownType(lossy(other)))),
        }
    }

    fn regular<S: Sink>(&mut self, rel: &[u8], sink: &mut S) -> Result<(), NarReadError> {
        let at = self.pos;
        self.read_token("executable\" or \"contents", MAX_TOKEN_LEN)?;
        let executable = match self.tok.as_slice() {
            b"executable" => {
                self.expect("")?;
                self.expect("contents")?;
                true
            }
            b"contents" => false,
            _ => {
                return Err(self.invalid_at(
                    at,
                    NarProblem::UnexpectedToken {
                        expected: "executable\" or \"contents",
                        found: lossy(&self.tok),
                    },
                ));
            }
        };
        let len = self.read_u64()?;
        sink.file_start(rel, executable)?;
        let mut left = len;
        while left > 0 {
            let chunk = match self.r.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(NarReadError::Input {
                        offset: self.pos,
                        source,
                    });
                }
            };
            if chunk.is_empty() {
                return Err(self.invalid(NarProblem::Truncated));
            }
            let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            sink.file_data(&chunk[..n])?;
            self.r.consume(n);
            self.pos += n as u64;
            left -= n as u64;
        }
        sink.file_end()?;
        self.read_padding(len)
    }
}
