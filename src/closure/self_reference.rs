//! A dependency that names itself (a library's own directory in its RPATH, a script's own
//! path), made content-addressed in memory: one read, one compression.
//!
//! Its address is the hash of its NAR modulo its own hash part (Nix's `HashModuloSink`: the
//! references rewritten, each occurrence of the own hash part zeroed, then `|<offset>` of each
//! occurrence), and its final NAR has the own hash part replaced by the new one. The staged
//! way ([`super::content_address::make_content_addressed`]) packs the NAR, reads it back to
//! hash it modulo, and reads it back again to rewrite and compress it. Here the NAR is held
//! once in memory (up to [`MAX_IN_MEMORY`]): the references are rewritten in place, the bytes
//! as read (checked against Nix's NarHash) and the bytes modulo are hashed in one pass
//! ([`Sha256Pair`]), which names it, and the own hash part is replaced. The final NAR is
//! hashed (its NarHash) by the thread that compresses it, off the path that names what
//! refers to it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::nix::nar::HashPart;
use crate::nix::nar::chunked::{NarChunk, PathRewrites};
use crate::nix::nar::rewrite::modulo_suffix;
use crate::nix::sha256_pair::Sha256Pair;
use crate::nix::store_path::{HASH_PART_LEN, StorePathError};
use crate::nix::{Sha256Hash, StorePath};

/// The largest NAR made content-addressed in memory; larger ones take the staged way.
pub(super) const MAX_IN_MEMORY: usize = 32 * 1024 * 1024;

/// All the NARs held in memory at once, by every reader and compressor of the process (on
/// many cores, one per thread could be far more); beyond it, the staged way.
pub(super) const IN_MEMORY_BUDGET: u64 = 256 * 1024 * 1024;
static HELD: AtomicU64 = AtomicU64::new(0);

/// Room for one NAR in [`IN_MEMORY_BUDGET`], given back when dropped.
pub(super) struct Reservation(u64);

impl Reservation {
    /// `bytes` of the budget, when it has room for them (and they are at most
    /// [`MAX_IN_MEMORY`]).
    pub(super) fn take(bytes: u64) -> Option<Reservation> {
        if bytes > MAX_IN_MEMORY as u64 {
            return None;
        }
        HELD.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            (held + bytes <= IN_MEMORY_BUDGET).then_some(held + bytes)
        })
        .ok()
        .map(|_| Reservation(bytes))
    }

    /// How many bytes it holds room for.
    pub(super) fn bytes(&self) -> u64 {
        self.0
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// A self-referencing path, content-addressed.
pub(super) struct InMemory {
    /// The final NAR (`buf[..len]`).
    pub(super) nar: NarChunk,
    /// The hash of the NAR as it was read.
    pub(super) as_read: Sha256Hash,
    /// The content address: the hash modulo the own hash part.
    pub(super) ca_hash: Sha256Hash,
    pub(super) store_path: StorePath,
}

/// Makes the NAR in `nar` (`buf[..len]`, no patches yet) of a path Nix registered as
/// referring to itself content-addressed: its references rewritten by `rewrites`, its own
/// hash part `own` replaced. `references` are its new references other than itself. `None` when an occurrence of the own hash part overlaps a
/// rewritten reference (only a contrived NAR does that): the staged way decides those.
pub(super) fn make_content_addressed(
    mut nar: NarChunk,
    rewrites: &PathRewrites,
    own: &HashPart,
    name: &str,
    references: &[StorePath],
) -> Result<Option<InMemory>, StorePathError> {
    debug_assert!(nar.patches.is_empty());
    rewrites.rewrite_all(&mut nar);
    let len = nar.len;
    // As Nix's RewritingSink into zeros: leftmost matches, none overlapping (the zeros a
    // match becomes cannot be part of the next one).
    let selfs: Vec<usize> = memchr::memmem::find_iter(&nar.buf[..len], own).collect();
    let mut patches = nar.patches.iter().peekable();
    for &s in &selfs {
        while patches.next_if(|p| p.at + p.len <= s).is_some() {}
        if patches.peek().is_some_and(|p| p.at < s + HASH_PART_LEN) {
            return Ok(None);
        }
    }

    // One pass: the bytes as read, and the bytes modulo (references rewritten, the own hash
    // part zeroed).
    let mut pair = Sha256Pair::new();
    let zeros = [0u8; HASH_PART_LEN];
    let mut at = 0;
    let (mut patches, mut selfs_left) = (nar.patches.iter().peekable(), selfs.iter().peekable());
    loop {
        let next_patch = patches.peek().map(|p| p.at);
        let next_self = selfs_left.peek().map(|&&s| s);
        let patch_first = next_patch.is_some_and(|p| next_self.is_none_or(|s| p < s));
        if patch_first {
            let p = patches.next().expect("peeked");
            pair.update_both(&nar.buf[at..p.at]);
            pair.update(rewrites.original(p), &nar.buf[p.at..p.at + p.len]);
            at = p.at + p.len;
        } else if let Some(s) = next_self {
            selfs_left.next();
            pair.update_both(&nar.buf[at..s]);
            pair.update(&nar.buf[s..s + HASH_PART_LEN], &zeros);
            at = s + HASH_PART_LEN;
        } else {
            break;
        }
    }
    pair.update_both(&nar.buf[at..len]);
    let offsets = modulo_suffix(selfs.iter().map(|&s| s as u64));
    let (as_read, ca_hash) = pair.finalize_with([&[], offsets.as_bytes()]);
    let store_path = StorePath::from_ca(&ca_hash, name, references, true)?;

    // The own hash part becomes the new one, as Nix's rewriteStrings does it (each search
    // starts again where the last replacement began).
    let new = store_path.hash_part().as_bytes();
    let finder = memchr::memmem::Finder::new(own);
    let mut j = 0;
    while let Some(i) = finder.find(&nar.buf[j..len]) {
        let m = j + i;
        nar.buf[m..m + HASH_PART_LEN].copy_from_slice(new);
        j = m;
    }
    nar.patches.clear();
    Ok(Some(InMemory {
        nar,
        as_read,
        ca_hash,
        store_path,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::nar::{HashModulo, Rewriter};
    use crate::nix::testing::{path, xorshift};
    use std::io::Write;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        assert!(Reservation::take(MAX_IN_MEMORY as u64 + 1).is_none());
        let held: Vec<Reservation> = std::iter::from_fn(|| Reservation::take(MAX_IN_MEMORY as u64))
            .take(100)
            .collect();
        // Other tests may hold some of it meanwhile: at most the budget, never more.
        assert!(held.len() as u64 <= IN_MEMORY_BUDGET / MAX_IN_MEMORY as u64);
        assert!(!held.is_empty());
        assert!(Reservation::take(MAX_IN_MEMORY as u64).is_none());
        drop(held);
        assert!(Reservation::take(MAX_IN_MEMORY as u64).is_some());
    }

    /// What the staged way gives: (as read, modulo, path, final NAR).
    fn staged(
        input: &[u8],
        rw: &[(StorePath, StorePath)],
        own: &HashPart,
        name: &str,
        refs: &[StorePath],
    ) -> (Sha256Hash, Sha256Hash, StorePath, Vec<u8>) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = rw
            .iter()
            .map(|(f, t)| (f.to_string().into_bytes(), t.to_string().into_bytes()))
            .collect();
        let mut m = HashModulo::new(own, pairs.clone());
        m.write_all(input).unwrap();
        let (ca, _) = m.finish().unwrap();
        let p = StorePath::from_ca(&ca, name, refs, true).unwrap();
        let mut w = Rewriter::new(
            Vec::new(),
            pairs,
            Some((own.to_vec(), p.hash_part().as_bytes().to_vec())),
        );
        w.write_all(input).unwrap();
        (Sha256Hash::of(input), ca, p, w.finish().unwrap().0)
    }

    /// Random bytes made of the own path, its hash part alone, references, their prefixes
    /// and noise: in memory equals the staged way, or declines (overlaps only).
    #[test]
    fn equals_the_staged_way() {
        let mut next = xorshift(0x1234_5678_9abc_def1_u64);
        let (mut compared, mut with_self) = (0, 0);
        for round in 0..300u64 {
            let name = "lib-1.0";
            let me = path(round * 1000, name);
            let own: HashPart = me.hash_part().as_bytes().try_into().unwrap();
            let n = next(4);
            let rw: Vec<(StorePath, StorePath)> = (0..n as u64)
                .map(|i| {
                    (
                        path(round * 1000 + 1 + i, "dep"),
                        path(round * 1000 + 100 + i, "dep"),
                    )
                })
                .collect();
            let Some(r) = PathRewrites::new(&rw) else {
                continue;
            };
            let refs: Vec<StorePath> = rw.iter().map(|(_, t)| t.clone()).collect();
            let mut input = b"nix-archive-1".to_vec();
            for _ in 0..next(40) {
                let s = match next(7) {
                    0 => format!("{me}/lib"),
                    1 => me.hash_part().to_string(),
                    2 if n > 0 => rw[next(n)].0.to_string(),
                    3 => me.hash_part()[..next(HASH_PART_LEN)].to_string(),
                    4 => "/nix/store/".to_string(),
                    _ => "x".repeat(next(70)),
                };
                input.extend_from_slice(s.as_bytes());
            }
            let (read, ca, p, fin) = staged(&input, &rw, &own, name, &refs);
            let chunk = NarChunk {
                buf: input.clone().into_boxed_slice(),
                len: input.len(),
                patches: Vec::new(),
            };
            let got = make_content_addressed(chunk, &r, &own, name, &refs).unwrap();
            let Some(got) = got else {
                continue;
            };
            assert_eq!(got.as_read, read, "round {round}");
            assert_eq!(got.ca_hash, ca, "round {round}");
            assert_eq!(got.store_path, p, "round {round}");
            assert_eq!(&got.nar.buf[..got.nar.len], fin.as_slice(), "round {round}");
            compared += 1;
            with_self += usize::from(fin != input && input.windows(32).any(|w| w == own));
        }
        assert!(compared > 250 && with_self > 150, "{compared} {with_self}");
    }

    #[test]
    fn a_self_reference_overlapping_a_rewritten_reference_is_left_to_the_staged_way() {
        let (dep, new) = (path(1, "dep"), path(2, "dep"));
        // The own hash part written inside the reference's name.
        let me = StorePath::parse(&format!("/nix/store/{}-me", "a".repeat(32))).unwrap();
        let dep_named = StorePath::parse(&format!("{dep}x{}", "a".repeat(32))).unwrap();
        let new_named = StorePath::parse(&format!("{new}x{}", "a".repeat(32))).unwrap();
        let r = PathRewrites::new(&[(dep_named.clone(), new_named)]).unwrap();
        let input = format!("{dep_named} and {me}").into_bytes();
        let own: HashPart = me.hash_part().as_bytes().try_into().unwrap();
        let chunk = NarChunk {
            buf: input.clone().into_boxed_slice(),
            len: input.len(),
            patches: Vec::new(),
        };
        let _ = dep;
        assert!(
            make_content_addressed(chunk, &r, &own, "me", &[])
                .unwrap()
                .is_none()
        );
    }
}
