//! What the randomized tests of the Nix formats (and of `closure`) share.

use super::StorePath;

/// A seeded xorshift generator: each call gives a number in `0..n` (0 when `n` is 0), the
/// same sequence on every run.
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    }
}

/// A store path named `name` whose hash part is made from `i` (distinct `i`, distinct hash
/// parts).
pub(crate) fn path(i: u64, name: &str) -> StorePath {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&i.to_le_bytes());
    h[8..16].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    StorePath::from_parts(&h, name).unwrap()
}
