//! SHA-256 digests as Nix prints them, and hashing/counting `Read`/`Write` adapters.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::nix32;

/// A SHA-256 digest. Displays as Nix does: `sha256:<nix32>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash(pub [u8; 32]);

/// Why a `sha256:<nix32>` string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashParseError {
    /// The `sha256:` prefix is missing.
    #[error("hash {0:?} does not start with \"sha256:\"")]
    MissingPrefix(String),
    /// The digest part is not 52 valid nix32 characters.
    #[error("hash {input:?} is not sha256:<52 nix32 characters>: {source}")]
    Digest {
        input: String,
        source: nix32::Nix32Error,
    },
    /// Not a SHA-256 in any form Nix reads (nix32, base16, base64, SRI).
    #[error("hash {0:?} is not a SHA-256 in nix32, base16, base64 or SRI form")]
    Form(String),
}

impl Sha256Hash {
    /// Hashes a byte slice.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The 52-character nix32 form, without the `sha256:` prefix.
    pub fn to_nix32(&self) -> String {
        nix32::encode(&self.0)
    }

    /// Lower-case hex, as used in store-path fingerprints.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the canonical Nix form `sha256:<52 nix32 chars>`.
    pub fn parse(s: &str) -> Result<Self, HashParseError> {
        let digest = s
            .strip_prefix("sha256:")
            .ok_or_else(|| HashParseError::MissingPrefix(s.to_owned()))?;
        Self::from_nix32(digest).map_err(|source| HashParseError::Digest {
            input: s.to_owned(),
            source,
        })
    }

    /// Parses any form Nix reads (`Hash::parseAnyPrefixed`): `sha256:` followed by nix32 (52
    /// characters), base16 (64) or base64 (44), or SRI `sha256-<base64>`.
    pub fn parse_any(s: &str) -> Result<Self, HashParseError> {
        use base64::Engine as _;
        let bad = || HashParseError::Form(s.to_owned());
        if let Some(b64) = s.strip_prefix("sha256-") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| bad())?;
            return <[u8; 32]>::try_from(bytes.as_slice())
                .map(Self)
                .map_err(|_| bad());
        }
        let digest = s
            .strip_prefix("sha256:")
            .ok_or_else(|| HashParseError::MissingPrefix(s.to_owned()))?;
        match digest.len() {
            52 => Self::parse(s),
            64 => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(digest, &mut out).map_err(|_| bad())?;
                Ok(Self(out))
            }
            44 => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(digest)
                    .map_err(|_| bad())?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map(Self)
                    .map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }

    /// Parses a bare 52-character nix32 digest.
    pub fn from_nix32(s: &str) -> Result<Self, nix32::Nix32Error> {
        nix32::decode_array::<32>(s).map(Self)
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_nix32())
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hash({self})")
    }
}

/// A [`Write`] adapter that hashes and counts every byte passed through to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The wrapped writer, mutably (bytes written to it directly are not hashed).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Sha256Hash, u64) {
        (
            self.inner,
            Sha256Hash(self.hasher.finalize().into()),
            self.len,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A [`Read`] adapter that hashes and counts every byte read from `inner`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing has been read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the inner reader, the digest of everything read and the byte count.
    pub fn finish(self) -> (R, Sha256Hash, u64) {
        (
            self.inner,
            Sha256Hash(self.hasher.finalize().into()),
            self.len,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse() {
        let h = Sha256Hash::of(b"");
        assert_eq!(
            h.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let s = h.to_string();
        assert_eq!(
            s,
            "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        assert_eq!(Sha256Hash::parse(&s).unwrap(), h);
        assert!(matches!(
            Sha256Hash::parse("md5:abc"),
            Err(HashParseError::MissingPrefix(_))
        ));
        assert!(matches!(
            Sha256Hash::parse("sha256:abc"),
            Err(HashParseError::Digest { .. })
        ));
    }

    #[test]
    fn adapters_hash_and_count() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (out, h, n) = w.finish();
        assert_eq!(n, 11);
        assert_eq!(h, Sha256Hash::of(b"hello world"));
        let mut r = HashingReader::new(&out[..]);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        let (_, h2, n2) = r.finish();
        assert_eq!((h2, n2), (h, 11));
    }
}
