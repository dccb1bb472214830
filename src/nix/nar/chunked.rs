//! Rewriting store paths in a NAR that arrives as owned chunks, in place: no byte is copied
//! except the few that straddle two chunks, and each chunk says where it was rewritten, so
//! the bytes as read can be hashed alongside the rewritten ones ([`PathRewrites::hash_chunk`]).
//!
//! It gives what [`super::Rewriter`] gives (Nix's `rewriteStrings`, one pass per pattern)
//! for the patterns it accepts: pairs of store paths with distinct hash parts, no `to`
//! sharing its hash part with any `from`. Such patterns cannot overlap each other or
//! themselves, and no replacement can create a match: a store path holds `/` only at
//! offsets 0, 4 and 10 (the `/nix/store/` prefix: neither a hash part nor a name holds one),
//! so a match can only start where `/nix/store/` does, and the 32 characters after it decide
//! which pattern can match there. One search for `/nix/store/` then does the work of every
//! pass.

use std::collections::HashMap;

use super::HashPart;
use crate::nix::sha256_pair::Sha256Pair;
use crate::nix::store_path::{HASH_PART_LEN, StorePath};

/// A part of a NAR handed from the thread that reads it to the one that compresses it:
/// `buf[..len]` are the bytes, rewritten where `patches` say.
pub struct NarChunk {
    pub buf: Box<[u8]>,
    pub len: usize,
    pub patches: Vec<Patch>,
}

impl NarChunk {
    /// Rewrites the matches that start in `buf[from..until]` and end within `buf[..len]`,
    /// each recorded as a whole patch; where the last one ended (or `from`).
    fn rewrite(&mut self, r: &PathRewrites, from: usize, until: usize) -> usize {
        let patches = &mut self.patches;
        r.rewrite(&mut self.buf[..self.len], from, until, |at, pair| {
            patches.push(Patch {
                at,
                pair,
                skip: 0,
                len: r.pattern_len(pair),
            });
        })
    }
}

/// Where one rewritten store path lies in a chunk (part of it, when it straddles two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset in the chunk.
    pub at: usize,
    /// Which pair of [`PathRewrites`].
    pub pair: u32,
    /// Offset in the pair's strings (non-zero for the second part of a straddling one).
    pub skip: usize,
    /// Bytes in this chunk.
    pub len: usize,
}

/// Store paths to replace (each `from` by its `to`, of the same length).
#[derive(Debug)]
pub struct PathRewrites {
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    by_hash: HashMap<HashPart, u32>,
    prefix: memchr::memmem::Finder<'static>,
    /// One less than the longest `from`: the bytes at the end of a chunk whose matches need
    /// the next chunk to be decided.
    keep: usize,
}

impl PathRewrites {
    /// The pairs that change something (the last `to` given for a `from` wins, as in
    /// [`super::Rewriter`]), or `None` when two `from`s share a hash part or a `to` shares
    /// one with a `from`: [`super::Rewriter`] handles those.
    pub fn new(rewrites: &[(StorePath, StorePath)]) -> Option<PathRewrites> {
        let mut by_from: HashMap<&StorePath, &StorePath> = HashMap::new();
        for (from, to) in rewrites {
            by_from.insert(from, to);
        }
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = by_from
            .into_iter()
            .filter(|(f, t)| f != t)
            .map(|(f, t)| (f.to_string().into_bytes(), t.to_string().into_bytes()))
            .collect();
        pairs.sort();
        let start = crate::nix::STORE_PREFIX.len();
        let hash = |s: &[u8]| -> HashPart {
            s[start..start + HASH_PART_LEN]
                .try_into()
                .expect("a store path")
        };
        let mut by_hash = HashMap::with_capacity(pairs.len());
        for (i, (from, to)) in pairs.iter().enumerate() {
            if from.len() != to.len() || by_hash.insert(hash(from), i as u32).is_some() {
                return None;
            }
        }
        if pairs.iter().any(|(_, to)| by_hash.contains_key(&hash(to))) {
            return None;
        }
        let keep = pairs.iter().map(|(f, _)| f.len()).max().unwrap_or(1) - 1;
        Some(PathRewrites {
            pairs,
            by_hash,
            prefix: memchr::memmem::Finder::new(crate::nix::STORE_PREFIX.as_bytes()).into_owned(),
            keep,
        })
    }

    /// The length of a pair's strings.
    fn pattern_len(&self, pair: u32) -> usize {
        self.pairs[pair as usize].0.len()
    }

    /// Whether there is nothing to replace.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Rewrites the matches in `data` that start in `data[from..until]` and end within
    /// `data`; calls `found(at, pair)` for each. Returns where the last one ended (or `from`).
    fn rewrite(
        &self,
        data: &mut [u8],
        from: usize,
        until: usize,
        mut found: impl FnMut(usize, u32),
    ) -> usize {
        let start = crate::nix::STORE_PREFIX.len();
        let mut at = from;
        let mut end = from;
        while at < until {
            let Some(i) = self.prefix.find(&data[at..]) else {
                break;
            };
            let m = at + i;
            if m >= until {
                break;
            }
            let pair = data
                .get(m + start..m + start + HASH_PART_LEN)
                .and_then(|h| self.by_hash.get(h));
            if let Some(&pair) = pair {
                let (f, t) = &self.pairs[pair as usize];
                if data.get(m..m + f.len()) == Some(f.as_slice()) {
                    data[m..m + t.len()].copy_from_slice(t);
                    found(m, pair);
                    at = m + f.len();
                    end = at;
                    continue;
                }
            }
            at = m + 1;
        }
        end
    }

    /// Rewrites every match in the chunk (a whole NAR in one chunk), recording each patch.
    pub fn rewrite_all(&self, chunk: &mut NarChunk) {
        let len = chunk.len;
        chunk.rewrite(self, 0, len);
    }

    /// The bytes a patch replaced.
    pub fn original(&self, p: &Patch) -> &[u8] {
        &self.pairs[p.pair as usize].0[p.skip..p.skip + p.len]
    }

    /// Hashes a chunk twice in one pass: as rewritten into the first stream of `pair`, as
    /// read (each patch's bytes as they were) into the second.
    pub fn hash_chunk(&self, pair: &mut Sha256Pair, chunk: &NarChunk) {
        let mut at = 0;
        for p in &chunk.patches {
            debug_assert!(p.at >= at, "patches come in order and do not overlap");
            pair.update_both(&chunk.buf[at..p.at]);
            pair.update(&chunk.buf[p.at..p.at + p.len], self.original(p));
            at = p.at + p.len;
        }
        pair.update_both(&chunk.buf[at..chunk.len]);
    }
}

/// Why a chunk could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[error("a NAR chunk of {len} bytes came before the last one (at least {keep} are needed)")]
pub struct ShortChunk {
    len: usize,
    keep: usize,
}

/// Rewrites a NAR chunk by chunk, holding one chunk back: a match at its end may go on into
/// the next.
pub struct ChunkRewriter<'r> {
    rewrites: &'r PathRewrites,
    held: Option<NarChunk>,
    /// Where the held chunk's matches have not been looked for yet.
    unsearched: usize,
    /// The held chunk is too short to be followed by another.
    short: bool,
}

impl<'r> ChunkRewriter<'r> {
    pub fn new(rewrites: &'r PathRewrites) -> ChunkRewriter<'r> {
        ChunkRewriter {
            rewrites,
            held: None,
            unsearched: 0,
            short: false,
        }
    }

    /// The rewrites it makes.
    pub fn rewrites(&self) -> &'r PathRewrites {
        self.rewrites
    }

    /// Takes the next chunk (every chunk but the last must hold at least as many bytes as
    /// the longest `from`); returns the one before it, now final.
    pub fn push(&mut self, mut cur: NarChunk) -> Result<Option<NarChunk>, ShortChunk> {
        let r = self.rewrites;
        if self.short {
            let len = self.held.as_ref().map_or(0, |h| h.len);
            return Err(ShortChunk { len, keep: r.keep });
        }
        self.short = cur.len < r.keep;
        let mut prev = self.held.take();
        // Matches that start in the held chunk's unsearched end, looked for in a seam of
        // that end and the start of this chunk, and written back to both.
        let mut searched = 0;
        if let Some(prev) = &mut prev {
            let tail = prev.len - self.unsearched;
            let head = cur.len.min(r.keep);
            let mut seam = Vec::with_capacity(tail + head);
            seam.extend_from_slice(&prev.buf[self.unsearched..prev.len]);
            seam.extend_from_slice(&cur.buf[..head]);
            let base = self.unsearched;
            let end = r.rewrite(&mut seam, 0, tail, |at, pair| {
                let len = r.pattern_len(pair);
                let here = len.min(tail - at);
                prev.patches.push(Patch {
                    at: base + at,
                    pair,
                    skip: 0,
                    len: here,
                });
                if here < len {
                    cur.patches.push(Patch {
                        at: 0,
                        pair,
                        skip: here,
                        len: len - here,
                    });
                }
            });
            prev.buf[self.unsearched..prev.len].copy_from_slice(&seam[..tail]);
            cur.buf[..head].copy_from_slice(&seam[tail..]);
            searched = end.saturating_sub(tail);
        }
        let until = cur.len.saturating_sub(r.keep).max(searched);
        let end = cur.rewrite(r, searched, until);
        self.unsearched = until.max(end);
        self.held = Some(cur);
        Ok(prev)
    }

    /// The held chunk, with the matches in its end rewritten.
    pub fn finish(&mut self) -> Option<NarChunk> {
        let r = self.rewrites;
        let mut last = self.held.take()?;
        let len = last.len;
        last.rewrite(r, self.unsearched, len);
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::Sha256Hash;
    use crate::nix::nar::Rewriter;
    use crate::nix::testing::{path, xorshift};
    use std::io::Write;

    /// Splits `input` into chunks of the given sizes (the last takes the rest), runs them
    /// through a [`ChunkRewriter`], and returns the output, the pair of hashes its chunks
    /// gave (as rewritten, as read), and how many patches were the second part of a
    /// straddling match.
    fn run(
        r: &PathRewrites,
        input: &[u8],
        sizes: &[usize],
    ) -> (Vec<u8>, (Sha256Hash, Sha256Hash), usize) {
        let mut cw = ChunkRewriter::new(r);
        let (mut out, mut pair, mut straddling) = (Vec::new(), Sha256Pair::new(), 0);
        let mut take = |c: NarChunk| {
            straddling += c.patches.iter().filter(|p| p.skip > 0).count();
            out.extend_from_slice(&c.buf[..c.len]);
            r.hash_chunk(&mut pair, &c);
        };
        let mut rest = input;
        let mut k = 0;
        while !rest.is_empty() {
            let n = sizes.get(k).copied().unwrap_or(rest.len()).min(rest.len());
            k += 1;
            let mut buf = vec![0xee; n + 3].into_boxed_slice();
            buf[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            let chunk = NarChunk {
                buf,
                len: n,
                patches: Vec::new(),
            };
            if let Some(done) = cw.push(chunk).unwrap() {
                take(done);
            }
        }
        if let Some(done) = cw.finish() {
            take(done);
        }
        (out, pair.finalize(), straddling)
    }

    fn staged(rw: &[(StorePath, StorePath)], input: &[u8]) -> Vec<u8> {
        let pairs = rw
            .iter()
            .map(|(f, t)| (f.to_string().into_bytes(), t.to_string().into_bytes()))
            .collect();
        let mut w = Rewriter::new(Vec::new(), pairs, None);
        w.write_all(input).unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn equals_the_staged_rewriter_in_any_chunking() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
        let names = ["a", "lib", "python3.12-requests-2.31.0", "x"];
        let (mut straddled, mut rewritten) = (0, 0);
        for round in 0..400 {
            let n = 1 + next(6);
            let rw: Vec<(StorePath, StorePath)> = (0..n)
                .map(|i| {
                    let name = names[next(names.len())];
                    let i = (round * 100 + i) as u64;
                    (path(i, name), path(i + 50, name))
                })
                .collect();
            let Some(r) = PathRewrites::new(&rw) else {
                continue;
            };
            // Text made of whole paths, their prefixes and near misses, glued with noise.
            let mut input = Vec::new();
            for _ in 0..next(30) {
                let (f, t) = &rw[next(rw.len())];
                let s = match next(6) {
                    0 => t.to_string(),
                    1 => f.to_string()[..next(f.to_string().len())].to_string(),
                    2 => format!("{}-more/bin", f),
                    3 => "/nix/store/".to_string(),
                    _ => f.to_string(),
                };
                input.extend_from_slice(s.as_bytes());
                for _ in 0..next(4) {
                    input.push(b"/nix-"[next(5)]);
                }
            }
            let want = staged(&rw, &input);
            let keep = r.keep + 1;
            for sizes in [
                vec![keep; 1000],
                vec![keep + 1; 1000],
                vec![keep * 2 - 1; 1000],
                vec![keep * 3 + 7; 1000],
                vec![input.len()],
                (0..1000).map(|_| keep + next(keep * 2)).collect(),
            ] {
                let (out, (sent, read), s) = run(&r, &input, &sizes);
                assert_eq!(out, want, "round {round}, sizes {:?}", &sizes[..2]);
                assert_eq!(
                    sent,
                    Sha256Hash::of(&out),
                    "round {round}: hash as rewritten"
                );
                assert_eq!(read, Sha256Hash::of(&input), "round {round}: hash as read");
                straddled += s;
                rewritten += usize::from(out != input);
            }
        }
        // The cases that matter came up.
        assert!(
            straddled > 100 && rewritten > 1000,
            "{straddled} {rewritten}"
        );
    }

    #[test]
    fn patterns_it_cannot_take_are_left_to_the_staged_rewriter() {
        let (a, b, c) = (path(1, "a"), path(2, "a"), path(3, "b"));
        // `a`'s replacement is `b`, which is itself replaced: a chain of rewrites.
        assert!(PathRewrites::new(&[(a.clone(), b.clone()), (b.clone(), c.clone())]).is_none());
        // Two paths with one hash part.
        let a2 = StorePath::parse(&format!("/nix/store/{}-other", a.hash_part())).unwrap();
        assert!(PathRewrites::new(&[(a.clone(), c.clone()), (a2, b.clone())]).is_none());
        // Identity pairs are dropped; the last `to` for a `from` wins.
        let r = PathRewrites::new(&[(a.clone(), a.clone()), (c.clone(), b.clone())]).unwrap();
        assert_eq!(r.pairs.len(), 1);
        let d = path(4, "b");
        let r = PathRewrites::new(&[(c.clone(), b.clone()), (c.clone(), d.clone())]).unwrap();
        assert_eq!(r.pairs, vec![(c.to_string().into(), d.to_string().into())]);
    }

    #[test]
    fn a_chunk_too_short_to_hold_a_match_is_refused() {
        let (a, b) = (path(1, "abc"), path(2, "abc"));
        let r = PathRewrites::new(&[(a, b)]).unwrap();
        let mut cw = ChunkRewriter::new(&r);
        let chunk = |n: usize| NarChunk {
            buf: vec![b'x'; n].into_boxed_slice(),
            len: n,
            patches: Vec::new(),
        };
        assert!(cw.push(chunk(100)).unwrap().is_none());
        // A short last chunk is fine; one that is followed by another is not.
        assert!(cw.push(chunk(3)).unwrap().is_some());
        assert!(cw.push(chunk(100)).is_err());
    }
}
