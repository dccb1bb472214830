//! Two SHA-256 digests of two byte streams of the same length, computed together.
//!
//! A dependency whose references are rewritten has two NARs of one length that differ only
//! where a store path was replaced: the one published (its hash names it) and the one as read
//! (its hash must be what Nix registered). Hashing both costs two passes. On x86-64 with the
//! SHA extensions the two streams are hashed in one pass, their rounds interleaved: one
//! stream's `sha256rnds2` waits on the one before it, two independent streams fill the gaps,
//! and the pair costs about what one stream did (1.93x the throughput of two passes,
//! measured on this machine's EPYC; docs/decisions/0010-two-hashes-in-one-pass.md).
//! Elsewhere it is two passes of the `sha2` crate's own compression function.

use super::Sha256Hash;

const BLOCK: usize = 64;

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Two SHA-256 states fed equal lengths: `update(a, b)` adds `a` to the first stream and
/// `b` to the second.
#[derive(Clone)]
pub struct Sha256Pair {
    states: [[u32; 8]; 2],
    /// Bytes of an unfinished block, per stream (the same count in both).
    pending: [[u8; BLOCK]; 2],
    pending_len: usize,
    total: u64,
    backend: Backend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// Both streams' rounds interleaved (x86-64 SHA extensions).
    #[cfg(target_arch = "x86_64")]
    Interleaved,
    /// One stream after the other, with `sha2`'s compression function.
    Sequential,
}

impl Default for Sha256Pair {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256Pair {
    pub fn new() -> Sha256Pair {
        Self::with_backend(Backend::detect())
    }

    fn with_backend(backend: Backend) -> Sha256Pair {
        Sha256Pair {
            states: [H0; 2],
            pending: [[0; BLOCK]; 2],
            pending_len: 0,
            total: 0,
            backend,
        }
    }

    /// Adds `data` to both streams.
    pub fn update_both(&mut self, data: &[u8]) {
        self.update(data, data);
    }

    /// Adds `a` to the first stream and `b` to the second.
    ///
    /// # Panics
    /// When `a` and `b` differ in length: the streams must stay aligned.
    pub fn update(&mut self, mut a: &[u8], mut b: &[u8]) {
        assert_eq!(
            a.len(),
            b.len(),
            "both streams get the same number of bytes"
        );
        self.total += a.len() as u64;
        if self.pending_len > 0 {
            let n = (BLOCK - self.pending_len).min(a.len());
            let at = self.pending_len;
            self.pending[0][at..at + n].copy_from_slice(&a[..n]);
            self.pending[1][at..at + n].copy_from_slice(&b[..n]);
            self.pending_len += n;
            (a, b) = (&a[n..], &b[n..]);
            if self.pending_len < BLOCK {
                return;
            }
            let [p0, p1] = self.pending;
            self.compress(&p0, &p1);
            self.pending_len = 0;
        }
        let whole = a.len() / BLOCK * BLOCK;
        self.compress(&a[..whole], &b[..whole]);
        let rest = a.len() - whole;
        self.pending[0][..rest].copy_from_slice(&a[whole..]);
        self.pending[1][..rest].copy_from_slice(&b[whole..]);
        self.pending_len = rest;
    }

    /// The two digests, in the order of `update`'s arguments.
    pub fn finalize(self) -> (Sha256Hash, Sha256Hash) {
        self.finalize_with([&[], &[]])
    }

    /// The two digests after `tails[0]` is added to the first stream only and `tails[1]` to
    /// the second (the streams may end at different lengths).
    pub fn finalize_with(self, tails: [&[u8]; 2]) -> (Sha256Hash, Sha256Hash) {
        let n = self.pending_len;
        let mut out = [Sha256Hash([0; 32]); 2];
        for (i, tail) in tails.iter().enumerate() {
            let total = self.total + tail.len() as u64;
            let mut last = Vec::with_capacity(n + tail.len() + 2 * BLOCK);
            last.extend_from_slice(&self.pending[i][..n]);
            last.extend_from_slice(tail);
            last.push(0x80);
            last.resize((last.len() + 8).next_multiple_of(BLOCK) - 8, 0);
            last.extend_from_slice(&total.wrapping_mul(8).to_be_bytes());
            let mut state = self.states[i];
            sha2::compress256(&mut state, as_blocks(&last));
            for (o, w) in out[i].0.chunks_exact_mut(4).zip(&state) {
                o.copy_from_slice(&w.to_be_bytes());
            }
        }
        (out[0], out[1])
    }

    /// Runs whole blocks of both streams (`a` and `b` of one length, a multiple of 64).
    fn compress(&mut self, a: &[u8], b: &[u8]) {
        debug_assert!(a.len() == b.len() && a.len().is_multiple_of(BLOCK));
        let (blocks_a, blocks_b) = (as_blocks(a), as_blocks(b));
        let [s0, s1] = &mut self.states;
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Interleaved` is chosen only when the CPU has the features the
            // function is compiled for (`Backend::detect`).
            Backend::Interleaved => unsafe { x86::compress_pair(s0, blocks_a, s1, blocks_b) },
            Backend::Sequential => {
                sha2::compress256(s0, blocks_a);
                sha2::compress256(s1, blocks_b);
            }
        }
    }
}

type Block = sha2::digest::generic_array::GenericArray<u8, sha2::digest::consts::U64>;

fn as_blocks(data: &[u8]) -> &[Block] {
    let (blocks, rest) = data.as_chunks::<BLOCK>();
    debug_assert!(rest.is_empty());
    // SAFETY: `GenericArray<u8, U64>` is `#[repr(transparent)]` over `[u8; 64]`.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<Block>(), blocks.len()) }
}

impl Backend {
    fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            // Unoptimised builds (the test profile) do not inline the intrinsics, which then
            // run far slower than `sha2` (built optimised there too): tests choose the
            // backend explicitly instead.
            if !cfg!(debug_assertions)
                && std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
                && std::arch::is_x86_feature_detected!("ssse3")
            {
                return Backend::Interleaved;
            }
        }
        Backend::Sequential
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The SHA-NI block function of the `sha2` crate (0.10, `sha256/x86.rs`) with a second
    //! state and message schedule carried alongside the first.

    use std::arch::x86_64::*;

    use super::Block;

    const K32: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    #[inline(always)]
    unsafe fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
        unsafe {
            let t1 = _mm_sha256msg1_epu32(v0, v1);
            let t2 = _mm_alignr_epi8(v3, v2, 4);
            _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), v3)
        }
    }

    /// The state as the rounds want it: (ABEF, CDGH).
    #[inline(always)]
    unsafe fn load(state: &[u32; 8]) -> (__m128i, __m128i) {
        unsafe {
            let p = state.as_ptr().cast::<__m128i>();
            let cdab = _mm_shuffle_epi32(_mm_loadu_si128(p), 0xB1);
            let efgh = _mm_shuffle_epi32(_mm_loadu_si128(p.add(1)), 0x1B);
            (
                _mm_alignr_epi8(cdab, efgh, 8),
                _mm_blend_epi16(efgh, cdab, 0xF0),
            )
        }
    }

    #[inline(always)]
    unsafe fn store(state: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
        unsafe {
            let feba = _mm_shuffle_epi32(abef, 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
            let p = state.as_mut_ptr().cast::<__m128i>();
            _mm_storeu_si128(p, _mm_blend_epi16(feba, dchg, 0xF0));
            _mm_storeu_si128(p.add(1), _mm_alignr_epi8(dchg, feba, 8));
        }
    }

    /// Four rounds of both streams, `w` and `v` their message words.
    macro_rules! rounds4 {
        ($abef0:ident, $cdgh0:ident, $w:expr, $abef1:ident, $cdgh1:ident, $v:expr, $i:expr) => {{
            let k = _mm_loadu_si128(K32.as_ptr().add(4 * $i).cast::<__m128i>());
            let (t0, t1) = (_mm_add_epi32($w, k), _mm_add_epi32($v, k));
            $cdgh0 = _mm_sha256rnds2_epu32($cdgh0, $abef0, t0);
            $cdgh1 = _mm_sha256rnds2_epu32($cdgh1, $abef1, t1);
            $abef0 = _mm_sha256rnds2_epu32($abef0, $cdgh0, _mm_shuffle_epi32(t0, 0x0E));
            $abef1 = _mm_sha256rnds2_epu32($abef1, $cdgh1, _mm_shuffle_epi32(t1, 0x0E));
        }};
    }

    /// Runs `a`'s blocks through `s0` and `b`'s through `s1` (as many of each).
    ///
    /// # Safety
    /// The CPU must have the SHA extensions, SSSE3 and SSE4.1.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress_pair(
        s0: &mut [u32; 8],
        a: &[Block],
        s1: &mut [u32; 8],
        b: &[Block],
    ) {
        debug_assert_eq!(a.len(), b.len());
        unsafe {
            let mask = _mm_set_epi64x(
                0x0C0D_0E0F_0809_0A0Bu64 as i64,
                0x0405_0607_0001_0203u64 as i64,
            );
            let (mut abef0, mut cdgh0) = load(s0);
            let (mut abef1, mut cdgh1) = load(s1);
            for (x, y) in a.iter().zip(b) {
                let (save_abef0, save_cdgh0, save_abef1, save_cdgh1) = (abef0, cdgh0, abef1, cdgh1);
                let (px, py) = (x.as_ptr().cast::<__m128i>(), y.as_ptr().cast::<__m128i>());
                let word = |p: *const __m128i, i| _mm_shuffle_epi8(_mm_loadu_si128(p.add(i)), mask);
                let (mut w0, mut w1, mut w2, mut w3) =
                    (word(px, 0), word(px, 1), word(px, 2), word(px, 3));
                let (mut v0, mut v1, mut v2, mut v3) =
                    (word(py, 0), word(py, 1), word(py, 2), word(py, 3));
                rounds4!(abef0, cdgh0, w0, abef1, cdgh1, v0, 0);
                rounds4!(abef0, cdgh0, w1, abef1, cdgh1, v1, 1);
                rounds4!(abef0, cdgh0, w2, abef1, cdgh1, v2, 2);
                rounds4!(abef0, cdgh0, w3, abef1, cdgh1, v3, 3);
                for i in 4..16 {
                    let (w4, v4) = (schedule(w0, w1, w2, w3), schedule(v0, v1, v2, v3));
                    rounds4!(abef0, cdgh0, w4, abef1, cdgh1, v4, i);
                    (w0, w1, w2, w3) = (w1, w2, w3, w4);
                    (v0, v1, v2, v3) = (v1, v2, v3, v4);
                }
                abef0 = _mm_add_epi32(abef0, save_abef0);
                cdgh0 = _mm_add_epi32(cdgh0, save_cdgh0);
                abef1 = _mm_add_epi32(abef1, save_abef1);
                cdgh1 = _mm_add_epi32(cdgh1, save_cdgh1);
            }
            store(s0, abef0, cdgh0);
            store(s1, abef1, cdgh1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::testing::xorshift;
    use sha2::{Digest, Sha256};

    fn backends() -> Vec<Backend> {
        let mut b = vec![Backend::Sequential];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3")
        {
            b.push(Backend::Interleaved);
        } else {
            // Not a missing tool: on this CPU the interleaved hash is never chosen, so there
            // is nothing of it to run, in CI or not.
            eprintln!(
                "skipped: this CPU has no SHA extensions, the interleaved hash is not tested"
            );
        }
        b
    }

    fn sha(data: &[u8]) -> Sha256Hash {
        Sha256Hash(Sha256::digest(data).into())
    }

    #[test]
    fn known_answers() {
        for backend in backends() {
            let mut p = Sha256Pair::with_backend(backend);
            p.update(b"abc", b"ABC");
            let (a, b) = p.finalize();
            assert_eq!(
                a.to_hex(),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "{backend:?}"
            );
            assert_eq!(b, sha(b"ABC"), "{backend:?}");
            let (a, b) = Sha256Pair::with_backend(backend).finalize();
            assert_eq!(
                a.to_hex(),
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    fn tails_of_different_lengths_end_each_stream() {
        let mut seed = 7u64;
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 200] {
            for tail in [0usize, 1, 8, 55, 56, 64, 130] {
                let a: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
                let b: Vec<u8> = (0..n).map(|i| (i * 17 + 3) as u8).collect();
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let t: Vec<u8> = (0..tail).map(|i| (seed >> (i % 56)) as u8).collect();
                for backend in backends() {
                    let mut p = Sha256Pair::with_backend(backend);
                    p.update(&a, &b);
                    let got = p.finalize_with([&[], &t]);
                    assert_eq!(got.0, sha(&a), "{n} {tail}");
                    assert_eq!(got.1, sha(&[b.as_slice(), &t].concat()), "{n} {tail}");
                    let mut p = Sha256Pair::with_backend(backend);
                    p.update(&a, &b);
                    let got = p.finalize_with([&t, &[]]);
                    assert_eq!(got.0, sha(&[a.as_slice(), &t].concat()), "{n} {tail}");
                    assert_eq!(got.1, sha(&b), "{n} {tail}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "same number of bytes")]
    fn streams_of_different_lengths_are_refused() {
        Sha256Pair::new().update(b"abc", b"ab");
    }

    /// Random pairs of streams, fed in random pieces (some to both at once), against `sha2`
    /// hashing each whole: every length around the padding boundaries, pieces that fill,
    /// straddle and skip the pending block.
    #[test]
    fn equals_two_separate_digests_in_any_pieces() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let backends = backends();
        let lengths: Vec<usize> = (0..=200).chain([447, 448, 1000, 4096, 65_537]).collect();
        for len in lengths {
            let a: Vec<u8> = (0..len).map(|_| next(256) as u8).collect();
            let mut b = a.clone();
            for _ in 0..next(4) {
                if len > 0 {
                    b[next(len)] ^= 1 + next(255) as u8;
                }
            }
            let want = (sha(&a), sha(&b));
            for &backend in &backends {
                let mut p = Sha256Pair::with_backend(backend);
                let mut at = 0;
                while at < len {
                    let n = match next(3) {
                        0 => next(8),
                        1 => next(100),
                        _ => next(len - at + 1),
                    }
                    .min(len - at);
                    if a[at..at + n] == b[at..at + n] && next(2) == 0 {
                        p.update_both(&a[at..at + n]);
                    } else {
                        p.update(&a[at..at + n], &b[at..at + n]);
                    }
                    at += n;
                }
                assert_eq!(p.finalize(), want, "length {len}, {backend:?}");
            }
        }
    }
}
