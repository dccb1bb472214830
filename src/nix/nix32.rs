//! Nix's base-32 encoding ("nix32") of hashes.
//!
//! Nix writes hashes with the alphabet `0123456789abcdfghijklmnpqrsvwxyz` (no `e o u t`), least
//! significant 5-bit group last. 32 bytes encode to 52 characters, 20 bytes to 32.

use thiserror::Error;

/// The 32 characters Nix uses, in digit order: no `e o u t`.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Whether `b` is a character of [`ALPHABET`].
pub const fn is_nix32(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

/// A fresh random store path hash part: 32 nix32 characters (for a temporary location
/// that must look like, and be as long as, a real store path).
pub fn random_hash_part() -> [u8; 32] {
    let mut hash = [0u8; 32];
    for (h, r) in hash.iter_mut().zip(rand::random::<[u8; 32]>()) {
        *h = ALPHABET[usize::from(r % 32)];
    }
    hash
}

/// Why a nix32 string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Nix32Error {
    /// A character outside [`ALPHABET`].
    #[error("invalid nix32 character {ch:?} at position {pos} in {input:?}")]
    BadChar { input: String, ch: char, pos: usize },
    /// The string length is not the encoding of any whole number of bytes (or not the expected one).
    #[error("nix32 string {input:?} has length {len}, expected {expected}")]
    BadLength {
        input: String,
        len: usize,
        expected: usize,
    },
    /// The top bits of the first character would overflow the byte string.
    #[error("nix32 string {input:?} is not canonical (its first character overflows)")]
    Overflow { input: String },
}

/// Number of nix32 characters for `n` bytes: `ceil(8n / 5)`.
pub const fn encoded_len(n: usize) -> usize {
    (n * 8).div_ceil(5)
}

/// Encodes bytes as nix32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
    let mut out = String::with_capacity(len);
    for k in (0..len).rev() {
        let b = k * 5;
        let (i, j) = (b / 8, b % 8);
        let lo = bytes[i] >> j;
        let hi = if i + 1 < bytes.len() {
            // j == 0 shifts by 8, which must give 0 (u16 to avoid overflow).
            ((u16::from(bytes[i + 1]) << (8 - j)) & 0xff) as u8
        } else {
            0
        };
        out.push(ALPHABET[usize::from((lo | hi) & 31)] as char);
    }
    out
}

fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// Decodes a nix32 string of any canonical length (`encoded_len(n)` for some `n`).
pub fn decode(s: &str) -> Result<Vec<u8>, Nix32Error> {
    let n = s.len() * 5 / 8;
    if encoded_len(n) != s.len() {
        return Err(Nix32Error::BadLength {
            input: s.to_owned(),
            len: s.len(),
            expected: encoded_len(n),
        });
    }
    if let Some((pos, ch)) = s
        .char_indices()
        .find(|&(_, c)| !c.is_ascii() || digit(c as u8).is_none())
    {
        return Err(Nix32Error::BadChar {
            input: s.to_owned(),
            ch,
            pos,
        });
    }
    let mut out = vec![0u8; n];
    for (k, &c) in s.as_bytes().iter().rev().enumerate() {
        let d = digit(c).unwrap_or(0);
        let b = k * 5;
        let (i, j) = (b / 8, b % 8);
        out[i] |= ((u16::from(d) << j) & 0xff) as u8;
        let carry = (u16::from(d) >> (8 - j)) as u8;
        if i + 1 < n {
            out[i + 1] |= carry;
        } else if carry != 0 {
            return Err(Nix32Error::Overflow {
                input: s.to_owned(),
            });
        }
    }
    Ok(out)
}

/// Decodes a nix32 string that must encode exactly `N` bytes.
pub fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], Nix32Error> {
    if s.len() != encoded_len(N) {
        return Err(Nix32Error::BadLength {
            input: s.to_owned(),
            len: s.len(),
            expected: encoded_len(N),
        });
    }
    let v = decode(s)?;
    let mut a = [0u8; N];
    a.copy_from_slice(&v);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix32_membership_is_the_alphabet() {
        for b in 0..=255u8 {
            assert_eq!(is_nix32(b), ALPHABET.contains(&b), "{b}");
        }
        assert!(random_hash_part().iter().all(|&b| is_nix32(b)));
    }

    const HEX: &str = "c8d329d53f2840f9fc2b6e0952e072b9f6cf82b8a38a015873d2d2e33705e290";
    const NIX: &str = "14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8";

    #[test]
    fn encodes_vector_hash() {
        let h = hex::decode(HEX).unwrap();
        assert_eq!(encode(&h), NIX);
        assert_eq!(decode(NIX).unwrap(), h);
        assert_eq!(decode_array::<32>(NIX).unwrap().to_vec(), h);
    }

    #[test]
    fn lengths() {
        assert_eq!(encoded_len(32), 52);
        assert_eq!(encoded_len(20), 32);
        assert_eq!(encode(&[0u8; 20]).len(), 32);
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0xff]), "7z");
        assert_eq!(decode("7z").unwrap(), vec![0xff]);
    }

    #[test]
    fn round_trips_all_byte_values() {
        for n in [1usize, 5, 20, 32, 64] {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&data)).unwrap(), data);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let bad_char = NIX.replacen('1', "e", 1);
        assert!(matches!(
            decode(&bad_char),
            Err(Nix32Error::BadChar {
                ch: 'e',
                pos: 0,
                ..
            })
        ));
        assert!(matches!(decode("abc"), Err(Nix32Error::BadLength { .. })));
        assert!(matches!(
            decode_array::<32>(&NIX[1..]),
            Err(Nix32Error::BadLength { .. })
        ));
        // "7z" is 0xff; "8z" would need a ninth bit.
        assert!(matches!(decode("8z"), Err(Nix32Error::Overflow { .. })));
        let overflow = format!("z{}", &NIX[1..]);
        assert!(matches!(
            decode(&overflow),
            Err(Nix32Error::Overflow { .. })
        ));
        assert!(decode("é1").is_err());
        assert!(matches!(
            decode("é"),
            Err(Nix32Error::BadChar {
                ch: 'é',
                pos: 0,
                ..
            })
        ));
    }
}
