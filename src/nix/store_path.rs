//! Nix store paths (`/nix/store/<32 nix32 chars>-<name>`) and content-addressed path computation.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::hash::Sha256Hash;
use super::nix32;

/// The only store directory pubdeck supports.
pub use super::STORE_DIR;
/// Length of the nix32 hash part of a store path.
pub const HASH_PART_LEN: usize = 32;
/// Longest name Nix accepts.
pub const MAX_NAME_LEN: usize = 211;

/// Why a store path or store path name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorePathError {
    #[error("store path {0:?} is not under {STORE_DIR}/")]
    NotInStore(String),
    #[error("store path {0:?} does not start with a 32-character nix32 hash and '-'")]
    BadHashPart(String),
    #[error("store path name is empty")]
    EmptyName,
    #[error("store path name {0:?} starts with '.'")]
    LeadingDot(String),
    #[error("store path name {name:?} is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    NameTooLong { name: String, len: usize },
    #[error(
        "store path name {name:?} contains {ch:?}; only 0-9 A-Z a-z and + - . _ ? = are allowed"
    )]
    BadNameChar { name: String, ch: char },
}

/// Checks a store path name against Nix's rules: `[0-9A-Za-z+\-._?=]+`, at most 211 bytes,
/// not starting with `.`.
pub fn validate_name(name: &str) -> Result<(), StorePathError> {
    if name.is_empty() {
        return Err(StorePathError::EmptyName);
    }
    if let Some(ch) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "+-._?=".contains(c)))
    {
        return Err(StorePathError::BadNameChar {
            name: name.to_owned(),
            ch,
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(StorePathError::NameTooLong {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    if name.starts_with('.') {
        return Err(StorePathError::LeadingDot(name.to_owned()));
    }
    Ok(())
}

/// A validated store path in `/nix/store`. Ordered like Nix orders store paths (by base name).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    /// `<hash part>-<name>`.
    base: String,
}

impl StorePath {
    /// Parses a full path `/nix/store/<hash>-<name>` (no trailing slash or sub-path).
    pub fn parse(path: &str) -> Result<Self, StorePathError> {
        let base = path
            .strip_prefix(STORE_DIR)
            .and_then(|p| p.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_owned()))?;
        Self::from_base_name(base)
    }

    /// Parses a base name `<hash>-<name>`, as written in narinfo `References`.
    pub fn from_base_name(base: &str) -> Result<Self, StorePathError> {
        let (hash, name) = base
            .split_at_checked(HASH_PART_LEN)
            .ok_or_else(|| StorePathError::BadHashPart(base.to_owned()))?;
        let name = name
            .strip_prefix('-')
            .ok_or_else(|| StorePathError::BadHashPart(base.to_owned()))?;
        if nix32::decode_array::<20>(hash).is_err() {
            return Err(StorePathError::BadHashPart(base.to_owned()));
        }
        validate_name(name)?;
        Ok(Self {
            base: base.to_owned(),
        })
    }

    /// Builds a store path from its 20-byte hash and a name.
    pub fn from_parts(hash: &[u8; 20], name: &str) -> Result<Self, StorePathError> {
        validate_name(name)?;
        Ok(Self {
            base: format!("{}-{name}", nix32::encode(hash)),
        })
    }

    /// The content-addressed path Nix gives a NAR-hashed ("recursive", sha256) `source` path,
    /// e.g. what `nix store add-path` produces. `references` are other store paths the
    /// contents refer to (order and duplicates do not matter).
    pub fn from_nar_hash(
        nar_hash: &Sha256Hash,
        name: &str,
        references: &[StorePath],
    ) -> Result<Self, StorePathError> {
        Self::from_ca(nar_hash, name, references, false)
    }

    /// The content-addressed path named by `ca_hash` (the NAR hash, or for a path that refers
    /// to itself the hash modulo its own hash part), `name`, its other `references` and
    /// whether it refers to itself: `source[:<ref>…][:self]:sha256:<hex>:/nix/store:<name>`,
    /// as `nix store make-content-addressed` computes it.
    pub fn from_ca(
        ca_hash: &Sha256Hash,
        name: &str,
        references: &[StorePath],
        has_self_reference: bool,
    ) -> Result<Self, StorePathError> {
        validate_name(name)?;
        let mut refs: Vec<&StorePath> = references.iter().collect();
        refs.sort();
        refs.dedup();
        let mut s = String::from("source");
        for r in refs {
            s.push(':');
            s.push_str(&r.to_string());
        }
        if has_self_reference {
            s.push_str(":self");
        }
        s.push_str(&format!(":sha256:{}:{STORE_DIR}:{name}", ca_hash.to_hex()));
        let digest: [u8; 32] = Sha256::digest(s.as_bytes()).into();
        let mut folded = [0u8; 20];
        for (i, b) in digest.iter().enumerate() {
            folded[i % 20] ^= b;
        }
        Self::from_parts(&folded, name)
    }

    /// The 32-character nix32 hash part (also the narinfo file stem).
    pub fn hash_part(&self) -> &str {
        &self.base[..HASH_PART_LEN]
    }

    /// The hash part as bytes.
    pub fn hash_bytes(&self) -> [u8; HASH_PART_LEN] {
        self.base.as_bytes()[..HASH_PART_LEN]
            .try_into()
            .expect("32 bytes")
    }

    /// The name after the hash part.
    pub fn name(&self) -> &str {
        &self.base[HASH_PART_LEN + 1..]
    }

    /// `<hash part>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STORE_DIR}/{}", self.base)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({self})")
    }
}

impl std::str::FromStr for StorePath {
    type Err = StorePathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_hash() -> Sha256Hash {
        Sha256Hash::parse("sha256:14720lvy7lnjfdc032m3p21czxmrfbh542bf5gygjh187zajkly8").unwrap()
    }

    #[test]
    fn computes_vector_path() {
        let p = StorePath::from_nar_hash(&vector_hash(), "hello-1.0", &[]).unwrap();
        assert_eq!(
            p.to_string(),
            "/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0"
        );
        assert_eq!(p.hash_part(), "zi4mpp16w48vdgiwlsngl034yxri4r9f");
        assert_eq!(p.name(), "hello-1.0");
        assert_eq!(p.base_name(), "zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0");
        assert_eq!(StorePath::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn references_change_the_path_and_order_does_not_matter() {
        let a = StorePath::parse("/nix/store/l6whz3nmm0nrg5az1cicla89aa5zxrfh-libthing").unwrap();
        let b = StorePath::parse("/nix/store/v025qgw660gppzh3iq0w60wvwbdqisvw-mytree").unwrap();
        let plain = StorePath::from_nar_hash(&vector_hash(), "x", &[]).unwrap();
        let ab = StorePath::from_nar_hash(&vector_hash(), "x", &[a.clone(), b.clone()]).unwrap();
        let ba = StorePath::from_nar_hash(&vector_hash(), "x", &[b, a]).unwrap();
        assert_ne!(plain, ab);
        assert_eq!(ab, ba);
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("a+b-c.d_e?f=g09AZ").is_ok());
        assert_eq!(validate_name(""), Err(StorePathError::EmptyName));
        assert!(matches!(
            validate_name(".hidden"),
            Err(StorePathError::LeadingDot(_))
        ));
        assert!(matches!(
            validate_name("a b"),
            Err(StorePathError::BadNameChar { ch: ' ', .. })
        ));
        assert!(matches!(
            validate_name("ä"),
            Err(StorePathError::BadNameChar { ch: 'ä', .. })
        ));
        assert!(validate_name(&"a".repeat(211)).is_ok());
        assert!(matches!(
            validate_name(&"a".repeat(212)),
            Err(StorePathError::NameTooLong { len: 212, .. })
        ));
        let e = validate_name("a/b").unwrap_err().to_string();
        assert!(e.contains("a/b") && e.contains("'/'"), "{e}");
    }

    #[test]
    fn parse_rejects_malformed() {
        let ok = "/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello-1.0";
        assert!(StorePath::parse(ok).is_ok());
        assert!(matches!(
            StorePath::parse("/gnu/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-hello"),
            Err(StorePathError::NotInStore(_))
        ));
        for bad in [
            "/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9e-hello",
            "/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f_hello",
            "/nix/store/zi4mpp16",
            "/nix/store/",
        ] {
            assert!(
                matches!(StorePath::parse(bad), Err(StorePathError::BadHashPart(_))),
                "{bad}"
            );
        }
        assert_eq!(
            StorePath::parse("/nix/store/zi4mpp16w48vdgiwlsngl034yxri4r9f-"),
            Err(StorePathError::EmptyName)
        );
        assert!(StorePath::parse(&format!("{ok}/bin")).is_err());
    }
}
