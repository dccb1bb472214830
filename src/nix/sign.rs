//! Nix signing keys and narinfo signatures (ed25519), interoperable with `nix key …`.
//!
//! Key files: secret `name:base64(seed ‖ public)` (64 bytes), public `name:base64(public)`.
//! Signatures: `name:base64(64-byte signature)` over the narinfo fingerprint
//! `1;<store path>;<NarHash>;<NarSize>;<sorted reference paths joined by ",">`.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::nix::{Sha256Hash, StorePath};

/// Why a key or signature could not be parsed, loaded, written or used.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{what} is not of the form <name>:<base64>")]
    Syntax { what: &'static str },
    // `{name:?}` escapes every control and format character, so a hostile name read from a
    // key file or a narinfo cannot reach a terminal raw.
    #[error("{what} has an invalid name {name:?}: {rule}")]
    BadName {
        what: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error("{what} {name:?} is not valid base64: {source}")]
    Base64 {
        what: &'static str,
        name: String,
        source: base64::DecodeError,
    },
    #[error("{what} {name:?} decodes to {len} bytes, expected {expected}")]
    Length {
        what: &'static str,
        name: String,
        len: usize,
        expected: usize,
    },
    #[error("secret key {0:?} is corrupt: its public half does not match its seed")]
    Mismatch(String),
    #[error("public key {0:?} is not a valid ed25519 point")]
    BadPoint(String),
    #[error("cannot read key file {}: {source}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("in key file {}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<KeyError>,
    },
    #[error(
        "{} is a public key; signing needs the secret key (the file without .pub)",
        .0.display()
    )]
    IsPublic(PathBuf),
    #[error("refusing to overwrite existing key file {}", .0.display())]
    Exists(PathBuf),
    #[error("cannot write key file {}: {source}", path.display())]
    WriteFile { path: PathBuf, source: io::Error },
}

/// Why no signature could be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("no signatures")]
    Unsigned,
    #[error("signed only by untrusted keys ({signers}); trusted keys: {trusted}")]
    Untrusted { signers: String, trusted: String },
    #[error("the signature by trusted key {0:?} does not match the contents")]
    BadSignature(String),
}

/// The rule for the name of a key pubdeck generates, loads or trusts: the names Nix's own
/// caches use (`cache.nixos.org-1`), which `nix.conf` reads as part of one value.
pub const KEY_NAME_RULE: &str = "a key name is 1 to 128 characters of letters, digits, '.', '_', '-' and '+', starting with a letter or digit";

/// Whether `name` follows [`KEY_NAME_RULE`].
pub fn is_valid_key_name(name: &str) -> bool {
    name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Splits a key file's text into a name that follows [`KEY_NAME_RULE`] and its base64.
fn split_key<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, &'a str), KeyError> {
    let (name, b64) = s.trim().split_once(':').ok_or(KeyError::Syntax { what })?;
    check_key_name(name, what)?;
    Ok((name, b64))
}

fn check_key_name(name: &str, what: &'static str) -> Result<(), KeyError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(KeyError::BadName {
            what,
            name: name.to_owned(),
            rule: KEY_NAME_RULE,
        })
    }
}

fn decode_fixed<const N: usize>(
    name: &str,
    b64: &str,
    what: &'static str,
) -> Result<[u8; N], KeyError> {
    let bytes = B64.decode(b64).map_err(|source| KeyError::Base64 {
        what,
        name: name.to_owned(),
        source,
    })?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length {
        what,
        name: name.to_owned(),
        len: bytes.len(),
        expected: N,
    })
}

/// A signature's key name, as found in a narinfo any store wrote: Nix accepts any name
/// without ':'; pubdeck also refuses whitespace and control characters (they cannot match a
/// trusted key, whose name follows [`KEY_NAME_RULE`]).
fn check_signature_name(name: &str, what: &'static str) -> Result<(), KeyError> {
    if name.is_empty()
        || name.len() > 256
        || name.contains(':')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(KeyError::BadName {
            what,
            name: name.to_owned(),
            rule: "a signature's key name must be non-empty, without ':', whitespace or control characters",
        });
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

fn in_file(path: &Path) -> impl FnOnce(KeyError) -> KeyError + '_ {
    move |e| KeyError::InFile {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// A named ed25519 signing key.
#[derive(Clone)]
pub struct SecretKey {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?}, <redacted>)", self.name)
    }
}

impl SecretKey {
    /// Generates a new key from the OS random number generator.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        check_key_name(name, "secret key")?;
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::generate(&mut rand::rngs::OsRng),
        })
    }

    /// Parses `name:base64(seed ‖ public)`; surrounding whitespace (a trailing newline) is ignored.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "secret key";
        let (name, b64) = split_key(s, WHAT)?;
        let bytes: [u8; 64] = decode_fixed(name, b64, WHAT)?;
        let key = SigningKey::from_keypair_bytes(&bytes)
            .map_err(|_| KeyError::Mismatch(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// Loads a secret key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = read_key_file(path)?;
        Self::parse(&text).map_err(|e| {
            // The most common mix-up: the `.pub` file where the secret key belongs.
            if PublicKey::parse(&text).is_ok() {
                KeyError::IsPublic(path.to_owned())
            } else {
                in_file(path)(e)
            }
        })
    }

    /// The key name (the part before `:`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The key file contents, `name:base64(seed ‖ public)` (no trailing newline, like Nix).
    pub fn to_nix_string(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.to_keypair_bytes()))
    }

    /// Writes the secret key to `path` (mode 0600) and the public key to `path` + `.pub`,
    /// refusing to overwrite either. Returns the public key file's path. `create_new` creates
    /// one file with the given contents and mode, failing with `AlreadyExists` when it is
    /// there (`fsutil::write_new`: the layer does no durable writes of its own).
    pub fn write_new(
        &self,
        path: &Path,
        create_new: impl Fn(&Path, &[u8], u32) -> io::Result<()>,
    ) -> Result<PathBuf, KeyError> {
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = PathBuf::from(pub_path);
        if fs::symlink_metadata(&pub_path).is_ok() {
            return Err(KeyError::Exists(pub_path));
        }
        let write = |path: &Path, contents: String, mode: u32| {
            create_new(path, contents.as_bytes(), mode).map_err(|source| {
                if source.kind() == io::ErrorKind::AlreadyExists {
                    KeyError::Exists(path.to_owned())
                } else {
                    KeyError::WriteFile {
                        path: path.to_owned(),
                        source,
                    }
                }
            })
        };
        write(path, self.to_nix_string(), 0o600)?;
        if let Err(e) = write(&pub_path, self.public().to_nix_string(), 0o644) {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(pub_path)
    }

    /// Signs `message` (a narinfo fingerprint, see [`fingerprint`]).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature {
            key_name: self.name.clone(),
            bytes: self.key.sign(message).to_bytes(),
        }
    }
}

/// A named ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_nix_string())
    }
}

impl PublicKey {
    /// Parses `name:base64(32 bytes)`; surrounding whitespace is ignored.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "public key";
        let (name, b64) = split_key(s, WHAT)?;
        let bytes: [u8; 32] = decode_fixed(name, b64, WHAT)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadPoint(name.into()))?;
        Ok(Self {
            name: name.to_owned(),
            key,
        })
    }

    /// Loads a public key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        Self::parse(&read_key_file(path)?).map_err(in_file(path))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name:base64(public)`, as `nix key convert-secret-to-public` prints it.
    pub fn to_nix_string(&self) -> String {
        format!("{}:{}", self.name, B64.encode(self.key.as_bytes()))
    }

    /// True when `sig` is by a key of this name and verifies `message`.
    pub fn verifies(&self, message: &[u8], sig: &Signature) -> bool {
        sig.key_name == self.name
            && self
                .key
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.bytes))
                .is_ok()
    }
}

/// A narinfo `Sig` value: `keyname:base64(signature)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    key_name: String,
    bytes: [u8; 64],
}

impl Signature {
    /// Parses `keyname:base64(64 bytes)`.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        const WHAT: &str = "signature";
        let (name, b64) = s.split_once(':').ok_or(KeyError::Syntax { what: WHAT })?;
        check_signature_name(name, WHAT)?;
        Ok(Self {
            key_name: name.to_owned(),
            bytes: decode_fixed(name, b64, WHAT)?,
        })
    }

    /// The name of the key that made it.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_name, B64.encode(self.bytes))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// The string Nix signs for a store path:
/// `1;<path>;sha256:<nix32>;<size>;<sorted full reference paths joined by ",">`.
pub fn fingerprint(
    path: &StorePath,
    nar_hash: &Sha256Hash,
    nar_size: u64,
    references: &[StorePath],
) -> String {
    let mut refs: Vec<String> = references.iter().map(ToString::to_string).collect();
    refs.sort();
    format!("1;{path};{nar_hash};{nar_size};{}", refs.join(","))
}

/// Checks `sigs` over `message` against the `trusted` keys. Succeeds with the name of the first
/// trusted key whose signature verifies; any failing signature by a trusted key name is an error
/// (it means the contents were changed after signing).
pub fn verify_signatures(
    message: &[u8],
    sigs: &[Signature],
    trusted: &[PublicKey],
) -> Result<String, VerifyError> {
    if sigs.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    // As Nix: one valid signature by a trusted key is enough; others (unknown keys, or a
    // signature that does not verify) are ignored, so an extra bogus `Sig:` blocks nothing.
    let mut bad = None;
    for sig in sigs {
        let keys: Vec<&PublicKey> = trusted.iter().filter(|k| k.name == sig.key_name).collect();
        if keys.is_empty() {
            continue;
        }
        if keys.iter().any(|k| k.verifies(message, sig)) {
            return Ok(sig.key_name.clone());
        }
        bad.get_or_insert_with(|| sig.key_name.clone());
    }
    match bad {
        Some(name) => Err(VerifyError::BadSignature(name)),
        None => Err(VerifyError::Untrusted {
            signers: names(sigs.iter().map(|s| s.key_name.as_str())),
            trusted: names(trusted.iter().map(|k| k.name.as_str())),
        }),
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SK1: &str = "myorg-1:6tDF/ay829tLhpzfOngP18RDyejcn3mhsvAPIWtCT4Ggau0YpYOyn86tne3vG2Oy4LKJsuT8FhjzY9jgRXX36Q==";
    const PK1: &str = "myorg-1:oGrtGKWDsp/OrZ3t7xtjsuCyibLk/BYY82PY4EV19+k=";
    const SIG1: &str = "myorg-1:o2NroKubDU3HxungJLzYrQ5ge1MIGX8lPaKD2fZv7md2n5GeQQT00ouPmuc5e3amXk26apYOg3w6vqbf+bOOCg==";

    fn vector_fingerprint() -> String {
        fingerprint(
            &StorePath::parse("/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0").unwrap(),
            &Sha256Hash::parse("sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8")
                .unwrap(),
            73160,
            &[],
        )
    }

    #[test]
    fn vector_key_signs_like_nix() {
        let sk = SecretKey::parse(&format!("{SK1}\n")).unwrap();
        assert_eq!(sk.name(), "myorg-1");
        assert_eq!(sk.to_nix_string(), SK1);
        assert_eq!(sk.public().to_nix_string(), PK1);
        let fp = vector_fingerprint();
        assert_eq!(
            fp,
            "1;/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0;sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8;73160;"
        );
        let sig = sk.sign(fp.as_bytes());
        assert_eq!(sig.to_string(), SIG1);
        assert_eq!(Signature::parse(SIG1).unwrap(), sig);
        let pk = PublicKey::parse(PK1).unwrap();
        assert_eq!(
            verify_signatures(fp.as_bytes(), &[sig], &[pk]).unwrap(),
            "myorg-1"
        );
    }

    #[test]
    fn fingerprint_sorts_full_reference_paths() {
        let p = StorePath::parse("/nix/store/d73sxad9kfi52kd1aamr7s6fxxw59bpn-app").unwrap();
        let a = StorePath::parse("/nix/store/v025qgw660gppzh3iq0w60wvwbdqisvw-mytree").unwrap();
        let b = StorePath::parse("/nix/store/l6whz3nmm0nrg5az1cicla89aa5zxrfh-libthing").unwrap();
        let h = Sha256Hash::of(b"");
        assert_eq!(
            fingerprint(&p, &h, 1, &[a.clone(), b.clone()]),
            format!("1;{p};{h};1;{b},{a}")
        );
    }

    #[test]
    fn verification_failures() {
        let sk = SecretKey::parse(SK1).unwrap();
        let pk = sk.public();
        let other = SecretKey::generate("other-1").unwrap();
        let fp = vector_fingerprint();
        let sig = sk.sign(fp.as_bytes());
        assert_eq!(
            verify_signatures(
                b"tampered",
                std::slice::from_ref(&sig),
                std::slice::from_ref(&pk)
            ),
            Err(VerifyError::BadSignature("myorg-1".into()))
        );
        assert_eq!(
            verify_signatures(fp.as_bytes(), &[], std::slice::from_ref(&pk)),
            Err(VerifyError::Unsigned)
        );
        let e = verify_signatures(fp.as_bytes(), &[other.sign(fp.as_bytes())], &[pk]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "signed only by untrusted keys (other-1); trusted keys: myorg-1"
        );
        // A signature by a key of the right name but different material is bad, not untrusted.
        let impostor = SecretKey::generate("myorg-1").unwrap();
        assert_eq!(
            verify_signatures(
                fp.as_bytes(),
                &[impostor.sign(fp.as_bytes())],
                &[sk.public()]
            ),
            Err(VerifyError::BadSignature("myorg-1".into()))
        );
        // One good signature by a trusted key is enough, whatever else is there.
        for extra in [impostor.sign(fp.as_bytes()), other.sign(fp.as_bytes())] {
            for sigs in [
                vec![extra.clone(), sk.sign(fp.as_bytes())],
                vec![sk.sign(fp.as_bytes()), extra.clone()],
            ] {
                assert_eq!(
                    verify_signatures(fp.as_bytes(), &sigs, &[sk.public()]).unwrap(),
                    "myorg-1"
                );
            }
        }
    }

    #[test]
    fn rejects_malformed_keys() {
        assert!(matches!(
            SecretKey::parse("nocolon"),
            Err(KeyError::Syntax { .. })
        ));
        assert!(matches!(
            SecretKey::parse(":abcd"),
            Err(KeyError::BadName { .. })
        ));
        assert!(matches!(
            SecretKey::parse("k:!!!"),
            Err(KeyError::Base64 { .. })
        ));
        assert!(matches!(
            SecretKey::parse(PK1),
            Err(KeyError::Length {
                len: 32,
                expected: 64,
                ..
            })
        ));
        assert!(matches!(
            PublicKey::parse(SK1),
            Err(KeyError::Length {
                len: 64,
                expected: 32,
                ..
            })
        ));
        // Seed of one key with the public half of another.
        let a = SecretKey::parse(SK1).unwrap().key.to_keypair_bytes();
        let b = SecretKey::generate("x").unwrap().key.to_keypair_bytes();
        let mut mixed = a;
        mixed[32..].copy_from_slice(&b[32..]);
        let s = format!("myorg-1:{}", B64.encode(mixed));
        assert!(matches!(SecretKey::parse(&s), Err(KeyError::Mismatch(_))));
        assert!(matches!(
            SecretKey::generate("a:b"),
            Err(KeyError::BadName { .. })
        ));
        assert!(Signature::parse("myorg-1:AAAA").is_err());
    }
}
