//! Streaming reference scanning and rewriting over a NAR, the way Nix does it:
//!
//! - [`RefScanner`] reports which candidate hash parts (32 nix32 characters) occur anywhere
//!   in the stream (Nix's `RefScanSink`: a window check from the right that skips past any
//!   byte outside the nix32 alphabet, with the last 31 bytes carried over chunk boundaries).
//! - [`Rewriter`] replaces equal-length byte strings (Nix's `rewriteStrings` and
//!   `RewritingSink`), one chained streaming stage per pattern, and records where each match
//!   of the `self` pattern starts (absolute stream offsets).
//! - [`HashModulo`] is Nix's `HashModuloSink`: SHA-256 of the stream with every occurrence of
//!   a path's own hash part replaced by NUL bytes, followed by `|<offset>` for each occurrence.
//!   It is the hash a content-addressed path that refers to itself is named by.
//! - [`HashAndModulo`] gives the plain SHA-256 of the stream and [`HashModulo`]'s hash (no
//!   other rewrites) in one pass ([`crate::nix::sha256_pair`]): what checking a downloaded
//!   path that refers to itself needs.

use std::collections::HashSet;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::nix::Sha256Hash;
use crate::nix::store_path::HASH_PART_LEN;

/// A store path hash part: 32 nix32 characters.
pub type HashPart = [u8; HASH_PART_LEN];

const fn nix32_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = crate::nix::nix32::is_nix32(i as u8);
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
/// `self` pattern (if any) starts. The result is Nix's, whatever the chunking: every rewrite
/// is applied to the whole stream in turn, in the byte order of its `from` string (Nix's
/// `rewriteStrings` over a `std::map`), then the `self` pattern to the result (Nix's
/// `RewritingSink`). Each is a streaming [`Stage`] holding back `from.len() - 1` bytes, and
/// the stages are chained, so patterns that overlap or that a replacement creates are
/// handled exactly as the whole-string passes handle them.
#[derive(Debug)]
pub struct Rewriter<W> {
    out: W,
    /// The rewrites in order, then the `self` pattern (which records its matches).
    stages: Vec<Stage>,
    /// Scratch buffers passed between stages.
    a: Vec<u8>,
    b: Vec<u8>,
}

/// One pattern over a stream: Nix's `RewritingSink` (search the held-back bytes plus the new
/// data from the start, resume each search at the start of the last replacement, hold back
/// the last `from.len() - 1` bytes of the rewritten buffer).
#[derive(Debug)]
struct Stage {
    from: Vec<u8>,
    to: Vec<u8>,
    finder: memchr::memmem::Finder<'static>,
    buf: Vec<u8>,
    /// Bytes passed on so far (the stream offset of `buf[0]`).
    pos: u64,
    record: bool,
    matches: Vec<u64>,
}

impl Stage {
    fn new(from: Vec<u8>, to: Vec<u8>, record: bool) -> Stage {
        assert_eq!(from.len(), to.len(), "rewrites keep lengths");
        assert!(!from.is_empty());
        Stage {
            finder: memchr::memmem::Finder::new(&from).into_owned(),
            from,
            to,
            buf: Vec::new(),
            pos: 0,
            record,
            matches: Vec::new(),
        }
    }

    /// Takes `data`, appends what is final to `out`.
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while let Some(i) = self.finder.find(&self.buf[at..]) {
            let m = at + i;
            if self.record {
                self.matches.push(self.pos + m as u64);
            }
            if self.from == self.to {
                at = m + 1;
            } else {
                self.buf[m..m + self.to.len()].copy_from_slice(&self.to);
                // As Nix: search again from the start of the replacement.
                at = m;
            }
        }
        let keep = self.buf.len().min(self.from.len() - 1);
        let pass = self.buf.len() - keep;
        out.extend_from_slice(&self.buf[..pass]);
        self.buf.drain(..pass);
        self.pos += pass as u64;
    }

    /// Passes the held-back bytes on.
    fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.buf);
    }
}

impl<W: Write> Rewriter<W> {
    /// `rewrites`: `(from, to)` pairs of equal length; `self_pattern`: `(from, to)` of the
    /// path's own hash part, whose matches are recorded.
    pub fn new(
        out: W,
        mut rewrites: Vec<(Vec<u8>, Vec<u8>)>,
        self_pattern: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Rewriter<W> {
        // As a std::map filled in order: sorted by `from`, the last `to` given for a `from`.
        rewrites.reverse();
        rewrites.sort_by(|a, b| a.0.cmp(&b.0));
        rewrites.dedup_by(|later, first| later.0 == first.0);
        rewrites.retain(|(f, t)| f != t);
        let mut stages: Vec<Stage> = rewrites
            .into_iter()
            .map(|(f, t)| Stage::new(f, t, false))
            .collect();
        if let Some((f, t)) = self_pattern {
            stages.push(Stage::new(f, t, true));
        }
        Rewriter {
            out,
            stages,
            a: Vec::new(),
            b: Vec::new(),
        }
    }

    /// Runs `data` through the stages from `first` on and writes what comes out.
    fn run(&mut self, first: usize, data: &[u8]) -> io::Result<()> {
        if first == self.stages.len() {
            return self.out.write_all(data);
        }
        self.a.clear();
        self.stages[first].push(data, &mut self.a);
        for stage in &mut self.stages[first + 1..] {
            self.b.clear();
            stage.push(&self.a, &mut self.b);
            std::mem::swap(&mut self.a, &mut self.b);
        }
        self.out.write_all(&self.a)
    }

    /// Passes the held-back bytes on; returns the output and the `self` match offsets.
    pub fn finish(mut self) -> io::Result<(W, Vec<u64>)> {
        for i in 0..self.stages.len() {
            let mut tail = Vec::new();
            self.stages[i].finish(&mut tail);
            self.run(i + 1, &tail)?;
        }
        self.out.flush()?;
        let matches = self
            .stages
            .last_mut()
            .filter(|s| s.record)
            .map(|s| std::mem::take(&mut s.matches))
            .unwrap_or_default();
        Ok((self.out, matches))
    }
}

impl<W: Write> Write for Rewriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.run(0, data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// What Nix's `HashModuloSink` hashes after the stream: `|<offset>` for each occurrence of
/// the own hash part, so that a NAR with self-references and one with those bytes already
/// zeroed do not collide.
pub fn modulo_suffix(offsets: impl IntoIterator<Item = u64>) -> String {
    offsets.into_iter().map(|m| format!("|{m}")).collect()
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
        h.update(modulo_suffix(matches.iter().copied()).as_bytes());
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

/// The SHA-256 of a stream and its hash modulo `own` (as [`HashModulo`] with no other
/// rewrites gives it), in one pass: the two streams differ only where `own` occurs.
pub struct HashAndModulo {
    own: HashPart,
    finder: memchr::memmem::Finder<'static>,
    pair: crate::nix::sha256_pair::Sha256Pair,
    /// Bytes not hashed yet (fewer than a hash part between writes).
    held: Vec<u8>,
    /// Stream offset of `held[0]`.
    pos: u64,
    matches: Vec<u64>,
}

impl HashAndModulo {
    pub fn new(own: &HashPart) -> HashAndModulo {
        HashAndModulo {
            own: *own,
            finder: memchr::memmem::Finder::new(own).into_owned(),
            pair: crate::nix::sha256_pair::Sha256Pair::new(),
            held: Vec::new(),
            pos: 0,
            matches: Vec::new(),
        }
    }

    /// Hashes what is held, each match zeroed in the second stream, keeping back the bytes
    /// a match could still start in (none with `all`).
    fn pass(&mut self, all: bool) {
        let zeros = [0u8; HASH_PART_LEN];
        let mut at = 0;
        while let Some(i) = self.finder.find(&self.held[at..]) {
            let m = at + i;
            self.pair.update_both(&self.held[at..m]);
            self.pair.update(&self.own, &zeros);
            self.matches.push(self.pos + m as u64);
            at = m + HASH_PART_LEN;
        }
        let len = self.held.len();
        let until = if all {
            len
        } else {
            at.max(len.saturating_sub(HASH_PART_LEN - 1))
        };
        self.pair.update_both(&self.held[at..until]);
        self.held.drain(..until);
        self.pos += until as u64;
    }

    /// (the stream's SHA-256, its hash modulo `own`, the offsets of `own`).
    pub fn finish(mut self) -> (Sha256Hash, Sha256Hash, Vec<u64>) {
        self.pass(true);
        let offsets = modulo_suffix(self.matches.iter().copied());
        let (plain, modulo) = self.pair.finalize_with([&[], offsets.as_bytes()]);
        (plain, modulo, self.matches)
    }
}

impl Write for HashAndModulo {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(data);
        self.pass(false);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::testing::xorshift;

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

    /// Nix 2.8 on a whole string: `rewriteStrings` in key order, then `RewritingSink`'s loop
    /// for the self pattern, recording its matches.
    fn nix_whole(
        input: &[u8],
        mut rw: Vec<(Vec<u8>, Vec<u8>)>,
        me: Option<(Vec<u8>, Vec<u8>)>,
    ) -> (Vec<u8>, Vec<u64>) {
        fn pass(s: &mut [u8], from: &[u8], to: &[u8], seen: &mut Vec<u64>) {
            let mut j = 0;
            while let Some(i) = memchr::memmem::find(&s[j..], from) {
                let m = j + i;
                seen.push(m as u64);
                s[m..m + to.len()].copy_from_slice(to);
                // (Nix would loop forever on from == to; a rewrite to itself moves on.)
                j = if from == to { m + 1 } else { m };
            }
        }
        let mut s = input.to_vec();
        let map: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = rw.drain(..).collect();
        for (f, t) in map.iter().filter(|(f, t)| f != t) {
            pass(&mut s, f, t, &mut Vec::new());
        }
        let mut matches = Vec::new();
        if let Some((f, t)) = me {
            pass(&mut s, &f, &t, &mut matches);
        }
        (s, matches)
    }

    #[test]
    fn rewriter_equals_nix_on_overlapping_patterns_in_any_chunking() {
        // Tiny alphabets make patterns overlap themselves and each other, and make
        // replacements create new matches across chunk boundaries.
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for round in 0..3000 {
            let len = 1 + next(5);
            let (n_rw, n_in) = (next(3), next(40));
            let mut word = |n: usize| -> Vec<u8> { (0..n).map(|_| b"ab"[next(2)]).collect() };
            let rw: Vec<_> = (0..n_rw).map(|_| (word(len), word(len))).collect();
            let me = Some((word(len), word(len)));
            let input = word(n_in);
            let want = nix_whole(&input, rw.clone(), me.clone());
            for chunk in [1, 2, 3, 7, 64] {
                let got = rewrite(&input, chunk, rw.clone(), me.clone());
                assert_eq!(
                    got, want,
                    "round {round} chunk {chunk}: {rw:?} {me:?} {input:?}"
                );
            }
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

    /// Streams of the own hash part, its prefixes, repeats of it back to back and noise, in
    /// writes of every size: the same hashes and offsets as [`HashModulo`] and a plain hash.
    #[test]
    fn hash_and_modulo_equals_the_two_hashes_in_any_writes() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
        let own = hp(A);
        let mut with_matches = 0;
        for round in 0..300 {
            let mut input = Vec::new();
            for _ in 0..next(30) {
                match next(5) {
                    0 => input.extend_from_slice(A.as_bytes()),
                    1 => input.extend_from_slice(&A.as_bytes()[..next(32)]),
                    2 => input.extend_from_slice(B.as_bytes()),
                    _ => input.extend((0..next(90)).map(|_| b"a0z/"[next(4)])),
                }
            }
            let mut m = HashModulo::new(&own, Vec::new());
            m.write_all(&input).unwrap();
            let (want, want_offsets) = m.finish().unwrap();
            let mut h = HashAndModulo::new(&own);
            let mut rest = input.as_slice();
            while !rest.is_empty() {
                let n = (1 + next(70)).min(rest.len());
                h.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
            }
            let (plain, modulo, offsets) = h.finish();
            assert_eq!(plain, Sha256Hash::of(&input), "round {round}");
            assert_eq!(modulo, want, "round {round}");
            assert_eq!(offsets, want_offsets, "round {round}");
            with_matches += usize::from(!offsets.is_empty());
        }
        assert!(with_matches > 200, "{with_matches}");
    }
}
