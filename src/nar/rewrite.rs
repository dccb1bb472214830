//! Streaming reference scanning and rewriting over a NAR, the way Nix does it:
//!
//! - [`RefScanner`] reports which candidate hash parts (32 nix32 characters) occur anywhere
//!   in the stream (Nix's `RefScanSink`: a window check from the right that skips past any
//!   byte outside the nix32 alphabet, with the last 31 bytes carried over chunk boundaries).
//! - [`Rewriter`] replaces equal-length byte strings (Nix's `rewriteStrings` and
//!   `RewritingSink`), holding back `longest - 1` bytes between chunks, and records where
//!   each match of the `self` pattern starts (absolute stream offsets).
//! - [`HashModulo`] is Nix's `HashModuloSink`: SHA-256 of the stream with every occurrence of
//!   a path's own hash part replaced by NUL bytes, followed by `|<offset>` for each occurrence.
//!   It is the hash a content-addressed path that refers to itself is named by.

use std::collections::HashSet;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use super::hash::Sha256Hash;
use super::store_path::HASH_PART_LEN;

/// A store path hash part: 32 nix32 characters.
pub type HashPart = [u8; HASH_PART_LEN];

const fn nix32_table() -> [bool; 256] {
    let mut t = [false; 256];
    let chars = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut i = 0;
    while i < chars.len() {
        t[chars[i] as usize] = true;
        i += 1;
    }
    t
}

static IS_NIX32: [bool; 256] = nix32_table();

/// Finds which of a set of candidate hash parts occur in a byte stream.
#[derive(Debug, Default)]
pub struct RefScanner {
    candidates: HashSet<HashPart>,
    found: HashSet<HashPart>,
    /// The last (up to) 31 bytes seen, for matches across chunk boundaries.
    tail: Vec<u8>,
}

impl RefScanner {
    pub fn new(candidates: impl IntoIterator<Item = HashPart>) -> RefScanner {
        RefScanner {
            candidates: candidates.into_iter().collect(),
            found: HashSet::new(),
            tail: Vec::with_capacity(2 * HASH_PART_LEN),
        }
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Scans the next chunk of the stream.
    pub fn scan(&mut self, data: &[u8]) {
        if self.candidates.is_empty() || data.is_empty() {
            return;
        }
        // The windows that straddle the previous chunk and this one.
        let head = data.len().min(HASH_PART_LEN - 1);
        let mut seam = std::mem::take(&mut self.tail);
        seam.extend_from_slice(&data[..head]);
        self.search(&seam);
        self.search(data);
        // Keep the last 31 bytes of the stream.
        if data.len() >= HASH_PART_LEN - 1 {
            seam.clear();
            seam.extend_from_slice(&data[data.len() - (HASH_PART_LEN - 1)..]);
        } else {
            let keep = seam.len().min(HASH_PART_LEN - 1);
            seam.drain(..seam.len() - keep);
        }
        self.tail = seam;
    }

    fn search(&mut self, s: &[u8]) {
        let n = HASH_PART_LEN;
        let mut i = 0;
        'windows: while i + n <= s.len() {
            let mut j = n;
            while j > 0 {
                j -= 1;
                if !IS_NIX32[usize::from(s[i + j])] {
                    i += j + 1;
                    continue 'windows;
                }
            }
            let window: &HashPart = s[i..i + n].try_into().expect("32 bytes");
            if self.candidates.remove(window) {
                self.found.insert(*window);
                if self.candidates.is_empty() {
                    return;
                }
            }
            i += 1;
        }
    }

    /// The candidates that occurred.
    pub fn found(&self) -> &HashSet<HashPart> {
        &self.found
    }

    pub fn into_found(self) -> HashSet<HashPart> {
        self.found
    }
}

/// Replaces equal-length byte strings in a stream and records where each match of the
/// `self` pattern (if any) starts. Patterns are applied in order: all the `rewrites` first,
/// then `self`, as Nix applies reference rewrites before hashing modulo the self-reference.
#[derive(Debug)]
pub struct Rewriter<W> {
    out: W,
    rewrites: Vec<(Vec<u8>, Vec<u8>)>,
    self_from: Option<Vec<u8>>,
    self_to: Vec<u8>,
    /// Bytes not yet passed on (at most `hold` after each write).
    buf: Vec<u8>,
    hold: usize,
    /// Bytes passed on so far (the stream offset of `buf[0]`).
    pos: u64,
    /// Offsets of the `self` matches, ascending.
    matches: Vec<u64>,
}

impl<W: Write> Rewriter<W> {
    /// `rewrites`: `(from, to)` pairs of equal length; `self_pattern`: `(from, to)` of the
    /// path's own hash part, whose matches are recorded.
    pub fn new(
        out: W,
        rewrites: Vec<(Vec<u8>, Vec<u8>)>,
        self_pattern: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Rewriter<W> {
        for (f, t) in &rewrites {
            assert_eq!(f.len(), t.len(), "rewrites keep lengths");
            assert!(!f.is_empty());
        }
        let rewrites: Vec<_> = rewrites.into_iter().filter(|(f, t)| f != t).collect();
        let (self_from, self_to) = match self_pattern {
            Some((f, t)) => {
                assert_eq!(f.len(), t.len(), "rewrites keep lengths");
                (Some(f), t)
            }
            None => (None, Vec::new()),
        };
        let longest = rewrites
            .iter()
            .map(|(f, _)| f.len())
            .chain(self_from.iter().map(Vec::len))
            .max()
            .unwrap_or(1);
        Rewriter {
            out,
            rewrites,
            self_from,
            self_to,
            buf: Vec::new(),
            hold: longest - 1,
            pos: 0,
            matches: Vec::new(),
        }
    }

    /// Rewrites the matches that end in the new data (`buf[start..]`; every match ending
    /// before it was handled by an earlier call), then passes all but the held-back tail on.
    fn process(&mut self, start: usize, end_of_stream: bool) -> io::Result<()> {
        for (f, t) in &self.rewrites {
            let from = start.saturating_sub(f.len() - 1);
            replace_all(&mut self.buf, from, f, t, &mut |_| {});
        }
        if let Some(f) = &self.self_from {
            let from = start.saturating_sub(f.len() - 1);
            let (pos, matches) = (self.pos, &mut self.matches);
            replace_all(&mut self.buf, from, f, &self.self_to, &mut |at| {
                matches.push(pos + at as u64)
            });
        }
        let keep = if end_of_stream {
            0
        } else {
            self.buf.len().min(self.hold)
        };
        let pass = self.buf.len() - keep;
        if pass > 0 {
            self.out.write_all(&self.buf[..pass])?;
            self.buf.drain(..pass);
            self.pos += pass as u64;
        }
        Ok(())
    }

    /// Passes the held-back bytes on; returns the output and the `self` match offsets.
    pub fn finish(mut self) -> io::Result<(W, Vec<u64>)> {
        self.process(self.buf.len(), true)?;
        self.out.flush()?;
        Ok((self.out, self.matches))
    }
}

impl<W: Write> Write for Rewriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let start = self.buf.len();
        self.buf.extend_from_slice(data);
        self.process(start, false)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Replaces every occurrence of `from` in `buf` that starts at or after `start` (left to
/// right, resuming after each replacement), calling `seen` with each match's position.
fn replace_all(buf: &mut [u8], start: usize, from: &[u8], to: &[u8], seen: &mut dyn FnMut(usize)) {
    if buf.len() < from.len() {
        return;
    }
    let finder = memchr::memmem::Finder::new(from);
    let mut at = start;
    while at + from.len() <= buf.len() {
        match finder.find(&buf[at..]) {
            Some(i) => {
                let m = at + i;
                buf[m..m + to.len()].copy_from_slice(to);
                seen(m);
                at = m + from.len();
            }
            None => break,
        }
    }
}

/// SHA-256 of a stream modulo a path's own hash part (Nix's `HashModuloSink`).
pub struct HashModulo {
    inner: Rewriter<HashingSink>,
}

/// A `Write` that only hashes.
pub struct HashingSink(Sha256);

impl Write for HashingSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.update(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl HashModulo {
    /// Hashes modulo `own` (the path's hash part, as it occurs in the stream), after `rewrites`.
    pub fn new(own: &HashPart, rewrites: Vec<(Vec<u8>, Vec<u8>)>) -> HashModulo {
        HashModulo {
            inner: Rewriter::new(
                HashingSink(Sha256::new()),
                rewrites,
                Some((own.to_vec(), vec![0u8; HASH_PART_LEN])),
            ),
        }
    }

    /// The hash and the offsets of the self-references.
    pub fn finish(self) -> io::Result<(Sha256Hash, Vec<u64>)> {
        let (HashingSink(mut h), matches) = self.inner.finish()?;
        for m in &matches {
            h.update(format!("|{m}").as_bytes());
        }
        Ok((Sha256Hash(h.finalize().into()), matches))
    }
}

impl Write for HashModulo {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.inner.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> HashPart {
        s.as_bytes().try_into().unwrap()
    }

    const A: &str = "zi4mpp16w48vdgiwlsngl034yxri4r9f";
    const B: &str = "l6whz3nmm0nrg5az1cicla89aa5zxrfh";
    const C: &str = "v025qgw660gppzh3iq0w60wvwbdqisvw";

    #[test]
    fn scanner_finds_candidates_in_any_chunking() {
        let text = format!("xx/nix/store/{A}-foo\0\0{B}yy and not {}", &C[..31]);
        let bytes = text.as_bytes();
        for chunk in [1, 2, 5, 7, 31, 32, 33, 1000] {
            let mut s = RefScanner::new([hp(A), hp(B), hp(C)]);
            for c in bytes.chunks(chunk) {
                s.scan(c);
            }
            let mut found: Vec<_> = s.into_found().into_iter().collect();
            found.sort();
            let mut want = vec![hp(A), hp(B)];
            want.sort();
            assert_eq!(found, want, "chunk size {chunk}");
        }
    }

    #[test]
    fn scanner_needs_the_whole_hash_part() {
        let mut s = RefScanner::new([hp(A)]);
        s.scan(format!("{}E{}", &A[..16], &A[16..]).as_bytes());
        assert!(s.found().is_empty());
    }

    fn rewrite(
        input: &[u8],
        chunk: usize,
        rw: Vec<(Vec<u8>, Vec<u8>)>,
        me: Option<(Vec<u8>, Vec<u8>)>,
    ) -> (Vec<u8>, Vec<u64>) {
        let mut r = Rewriter::new(Vec::new(), rw, me);
        for c in input.chunks(chunk.max(1)) {
            r.write_all(c).unwrap();
        }
        r.finish().unwrap()
    }

    #[test]
    fn rewriter_replaces_and_records_offsets_in_any_chunking() {
        let input = format!("{A}..../tmp/abcde/{A}-x..{B}");
        let prefix = (
            format!("/tmp/abcde/{A}").into_bytes(),
            format!("/nix/store/{A}").into_bytes(),
        );
        let me = (A.as_bytes().to_vec(), C.as_bytes().to_vec());
        let want = format!("{C}..../nix/store/{C}-x..{B}");
        for chunk in [1, 3, 10, 31, 32, 42, 43, 100] {
            let (out, m) = rewrite(
                input.as_bytes(),
                chunk,
                vec![prefix.clone()],
                Some(me.clone()),
            );
            assert_eq!(String::from_utf8(out).unwrap(), want, "chunk {chunk}");
            assert_eq!(m, vec![0, 47], "chunk {chunk}");
        }
    }

    #[test]
    fn hash_modulo_appends_offsets() {
        let data = format!("ab{A}cd");
        let mut h = HashModulo::new(&hp(A), Vec::new());
        h.write_all(data.as_bytes()).unwrap();
        let (got, offsets) = h.finish().unwrap();
        assert_eq!(offsets, vec![2]);
        let mut plain = b"ab".to_vec();
        plain.extend_from_slice(&[0u8; 32]);
        plain.extend_from_slice(b"cd|2");
        assert_eq!(got, Sha256Hash::of(&plain));
        // Without self-references it is the plain hash.
        let mut h = HashModulo::new(&hp(A), Vec::new());
        h.write_all(b"nothing here").unwrap();
        assert_eq!(h.finish().unwrap().0, Sha256Hash::of(b"nothing here"));
    }
}
