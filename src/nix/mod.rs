//! Nix's own formats and facts, below everything else: NAR compression methods, the store
//! directory and the system string. It imports nothing else from the crate.

mod compression;

pub use compression::Compression;

/// The Nix store directory every path pubdeck handles lives in.
pub const STORE_DIR: &str = "/nix/store";

/// The alphabet of Nix's base-32 (`nix32`): no `e o u t`.
pub const NIX32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Whether `b` is a character of [`NIX32_ALPHABET`].
pub const fn is_nix32(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

/// A fresh random store path hash part: 32 nix32 characters (for a temporary location
/// that must look like, and be as long as, a real store path).
pub fn random_hash_part() -> [u8; 32] {
    let mut hash = [0u8; 32];
    for (h, r) in hash.iter_mut().zip(rand::random::<[u8; 32]>()) {
        *h = NIX32_ALPHABET[usize::from(r % 32)];
    }
    hash
}

/// The Nix system string of this machine (`x86_64-linux`, `aarch64-darwin`, …).
pub fn current_system() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix32_membership_is_the_alphabet() {
        for b in 0..=255u8 {
            assert_eq!(is_nix32(b), NIX32_ALPHABET.contains(&b), "{b}");
        }
        assert!(random_hash_part().iter().all(|&b| is_nix32(b)));
    }
}
