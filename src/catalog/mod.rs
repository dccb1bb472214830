//! The organisation package catalog: one [`Catalog`] interface with two implementations.
//!
//! * [`client::CatalogClient`] talks to the `pubdeck serve` HTTP service (JSON under `/v1`).
//! * [`embedded::EmbeddedCatalog`] works directly on a local SQLite file (the default when no
//!   catalog URL is configured); the server also uses it, acting as the authenticated user.
//!
//! [`AnyCatalog`] picks one at run time and is `Clone + Send + Sync`. This module also holds
//! the shared data types, the name rules and signature verification.

pub mod client;
mod clock;
pub mod db;
pub mod embedded;
mod error;
pub mod flox;
pub mod import;
pub mod index_file;
pub mod mirror;
mod open;
mod scan_pool;
pub mod search;
mod search_service;
mod types;
pub mod validate;

use std::future::Future;

pub use client::CatalogClient;
pub use embedded::EmbeddedCatalog;
pub use error::{AuthProblem, CatalogError, Missing, Refusal};
pub use types::*;

/// Result type of every catalog operation.
pub type CatalogResult<T> = Result<T, CatalogError>;

/// Default number of search results.
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
/// Largest accepted search limit.
pub const MAX_SEARCH_LIMIT: usize = 1000;

/// The catalog operations shared by the HTTP client and the embedded catalog.
///
/// Every method acts as one caller (the token's user, or the local user for an embedded
/// catalog). A catalog the caller may not see answers exactly like a missing one.
pub trait Catalog: Send + Sync {
    /// The user name the catalog knows the caller as.
    fn whoami(&self) -> impl Future<Output = CatalogResult<String>> + Send;
    /// Creates catalog `org` owned by the caller, with a store URL and trusted public keys.
    fn create_catalog(
        &self,
        org: &str,
        store_url: &str,
        keys: &[String],
    ) -> impl Future<Output = CatalogResult<CatalogInfo>> + Send;
    /// Owner, store URL and trusted keys of a visible catalog.
    fn catalog(&self, org: &str) -> impl Future<Output = CatalogResult<CatalogInfo>> + Send;
    /// Every catalog the caller can see.
    fn catalogs(&self) -> impl Future<Output = CatalogResult<Vec<CatalogInfo>>> + Send;
    /// Changes the store URL (owner only).
    fn set_store(
        &self,
        org: &str,
        store_url: &str,
    ) -> impl Future<Output = CatalogResult<CatalogInfo>> + Send;
    /// Adds a trusted Nix public key `name:base64(32 bytes)` (owner only).
    fn add_key(
        &self,
        org: &str,
        public_key: &str,
    ) -> impl Future<Output = CatalogResult<CatalogInfo>> + Send;
    /// Lets `user` read the catalog (owner only); returns the new allowlist.
    fn allow(
        &self,
        org: &str,
        user: &str,
    ) -> impl Future<Output = CatalogResult<Vec<String>>> + Send;
    /// Removes `user` from the allowlist (owner only); returns the new allowlist.
    fn revoke(
        &self,
        org: &str,
        user: &str,
    ) -> impl Future<Output = CatalogResult<Vec<String>>> + Send;
    /// The users allowed to read the catalog (owner only).
    fn allowlist(&self, org: &str) -> impl Future<Output = CatalogResult<Vec<String>>> + Send;
    /// Registers a signed build (owner only). Same NAR hash again: `AlreadyPublished`;
    /// a different one for the same (package, version, system): `Conflict`.
    fn register_build(
        &self,
        build: &NewBuild,
    ) -> impl Future<Output = CatalogResult<RegisterOutcome>> + Send;
    /// Registers up to [`MAX_BATCH`] signed builds of catalog `org` (owner only), all of
    /// them or none: builds already there with the same NAR hash are skipped, one with
    /// another NAR hash refuses the batch (`Conflict`).
    fn register_builds(
        &self,
        org: &str,
        builds: &[NewBuild],
    ) -> impl Future<Output = CatalogResult<BatchOutcome>> + Send;
    /// The build already published for this (org, package or build name, revision[, system]).
    fn check_build(
        &self,
        query: &CheckBuild,
    ) -> impl Future<Output = CatalogResult<Option<BuildRecord>>> + Send;
    /// All packages of the visible catalogs. With `if_none_match` equal to the current ETag
    /// the answer is [`Listing::NotModified`].
    fn list_packages(
        &self,
        if_none_match: Option<&str>,
    ) -> impl Future<Output = CatalogResult<Listing>> + Send;
    /// What changed in the listing since the caller's copy, which holds the catalogs `known`
    /// at those versions: the package lists of only the catalogs that changed or appeared.
    fn list_changes(
        &self,
        known: &[ListedCatalog],
    ) -> impl Future<Output = CatalogResult<ListingChanges>> + Send;
    /// [`Catalog::list_changes`] with each changed catalog's packages indexed for search.
    /// By default the answer's lists are indexed here; a catalog in this process hands over
    /// the indexes it already holds.
    fn list_changes_indexed(
        &self,
        known: &[ListedCatalog],
    ) -> impl Future<Output = CatalogResult<mirror::IndexedChanges>> + Send {
        async move {
            self.list_changes(known)
                .await
                .map(mirror::IndexedChanges::index)
        }
    }
    /// Search over the visible packages (`catalog::search`'s rules): the results, best
    /// first, and when there are none, the nearest names.
    fn search_answer(
        &self,
        query: &str,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<SearchAnswer>> + Send;
    /// [`Catalog::search_answer`]'s results.
    fn search(
        &self,
        query: &str,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<SearchHit>>> + Send {
        async move { Ok(self.search_answer(query, limit).await?.results) }
    }
    /// Description, versions and builds of `org/package`.
    fn show(
        &self,
        org: &str,
        package: &str,
    ) -> impl Future<Output = CatalogResult<PackageDetail>> + Send;
    /// The caller: user, the token's scope and expiry.
    fn identity(&self) -> impl Future<Output = CatalogResult<Identity>> + Send;
    /// Yanks (`yanked`) or un-yanks every build of `org/package` `version` (owner, publish
    /// scope). The records stay; a yanked version is skipped for "latest".
    fn yank(
        &self,
        org: &str,
        package: &str,
        version: &str,
        yanked: bool,
    ) -> impl Future<Output = CatalogResult<YankOutcome>> + Send;
    /// Stops trusting the keys named `key_name` (owner, admin scope).
    fn remove_key(
        &self,
        org: &str,
        key_name: &str,
    ) -> impl Future<Output = CatalogResult<CatalogInfo>> + Send;
    /// The newest `limit` entries of the audit log, newest first (owner, admin scope).
    fn audit_log(
        &self,
        org: &str,
        limit: usize,
    ) -> impl Future<Output = CatalogResult<Vec<AuditEntry>>> + Send;
    /// Every store path the registered builds need, for GC (owner, admin scope).
    fn live_paths(&self, org: &str) -> impl Future<Output = CatalogResult<LivePaths>> + Send;
    /// Records a change made to the store outside the catalog: `gc`, `re-sign` (owner, admin
    /// scope).
    fn record(
        &self,
        org: &str,
        request: &RecordRequest,
    ) -> impl Future<Output = CatalogResult<()>> + Send;
}

/// Most audit-log entries one request returns.
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// A catalog chosen at run time: the service or a local file.
#[derive(Clone, Debug)]
pub enum AnyCatalog {
    /// The `pubdeck serve` HTTP service.
    Remote(CatalogClient),
    /// A local SQLite catalog.
    Embedded(EmbeddedCatalog),
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            AnyCatalog::Remote($c) => $e.await,
            AnyCatalog::Embedded($c) => $e.await,
        }
    };
}

impl Catalog for AnyCatalog {
    async fn whoami(&self) -> CatalogResult<String> {
        dispatch!(self, c => c.whoami())
    }
    async fn create_catalog(
        &self,
        org: &str,
        store_url: &str,
        keys: &[String],
    ) -> CatalogResult<CatalogInfo> {
        dispatch!(self, c => c.create_catalog(org, store_url, keys))
    }
    async fn catalog(&self, org: &str) -> CatalogResult<CatalogInfo> {
        dispatch!(self, c => c.catalog(org))
    }
    async fn catalogs(&self) -> CatalogResult<Vec<CatalogInfo>> {
        dispatch!(self, c => c.catalogs())
    }
    async fn set_store(&self, org: &str, store_url: &str) -> CatalogResult<CatalogInfo> {
        dispatch!(self, c => c.set_store(org, store_url))
    }
    async fn add_key(&self, org: &str, public_key: &str) -> CatalogResult<CatalogInfo> {
        dispatch!(self, c => c.add_key(org, public_key))
    }
    async fn allow(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        dispatch!(self, c => c.allow(org, user))
    }
    async fn revoke(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        dispatch!(self, c => c.revoke(org, user))
    }
    async fn allowlist(&self, org: &str) -> CatalogResult<Vec<String>> {
        dispatch!(self, c => c.allowlist(org))
    }
    async fn register_build(&self, build: &NewBuild) -> CatalogResult<RegisterOutcome> {
        dispatch!(self, c => c.register_build(build))
    }
    async fn register_builds(&self, org: &str, builds: &[NewBuild]) -> CatalogResult<BatchOutcome> {
        dispatch!(self, c => c.register_builds(org, builds))
    }
    async fn check_build(&self, query: &CheckBuild) -> CatalogResult<Option<BuildRecord>> {
        dispatch!(self, c => c.check_build(query))
    }
    async fn list_packages(&self, if_none_match: Option<&str>) -> CatalogResult<Listing> {
        dispatch!(self, c => c.list_packages(if_none_match))
    }
    async fn list_changes(&self, known: &[ListedCatalog]) -> CatalogResult<ListingChanges> {
        dispatch!(self, c => c.list_changes(known))
    }
    async fn list_changes_indexed(
        &self,
        known: &[ListedCatalog],
    ) -> CatalogResult<mirror::IndexedChanges> {
        dispatch!(self, c => c.list_changes_indexed(known))
    }
    async fn search_answer(&self, query: &str, limit: usize) -> CatalogResult<SearchAnswer> {
        dispatch!(self, c => c.search_answer(query, limit))
    }
    async fn show(&self, org: &str, package: &str) -> CatalogResult<PackageDetail> {
        dispatch!(self, c => c.show(org, package))
    }
    async fn identity(&self) -> CatalogResult<Identity> {
        dispatch!(self, c => c.identity())
    }
    async fn yank(
        &self,
        org: &str,
        package: &str,
        version: &str,
        yanked: bool,
    ) -> CatalogResult<YankOutcome> {
        dispatch!(self, c => c.yank(org, package, version, yanked))
    }
    async fn remove_key(&self, org: &str, key_name: &str) -> CatalogResult<CatalogInfo> {
        dispatch!(self, c => c.remove_key(org, key_name))
    }
    async fn audit_log(&self, org: &str, limit: usize) -> CatalogResult<Vec<AuditEntry>> {
        dispatch!(self, c => c.audit_log(org, limit))
    }
    async fn live_paths(&self, org: &str) -> CatalogResult<LivePaths> {
        dispatch!(self, c => c.live_paths(org))
    }
    async fn record(&self, org: &str, request: &RecordRequest) -> CatalogResult<()> {
        dispatch!(self, c => c.record(org, request))
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Checks a catalog (organisation) name: `^[a-zA-Z0-9_-]{3,63}$`.
pub fn validate_org_name(name: &str) -> CatalogResult<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::BadRequest(format!(
            "invalid catalog name {}: use 3 to 63 letters, digits, '_' or '-'",
            quote(name)
        )))
    }
}

/// Checks a package name: `^[a-zA-Z0-9._-]{1,128}$`, not starting with '.', no "..".
pub fn validate_package_name(name: &str) -> CatalogResult<()> {
    if is_package_like(name) {
        Ok(())
    } else {
        Err(CatalogError::BadRequest(format!(
            "invalid package name {}: use 1 to 128 letters, digits, '.', '_' or '-' (not starting with '.', no '..')",
            quote(name)
        )))
    }
}

/// Checks a user name: `^[a-zA-Z0-9._-]{1,64}$`, not starting with '.', no "..".
pub fn validate_user_name(name: &str) -> CatalogResult<()> {
    if name.len() <= 64 && is_package_like(name) {
        Ok(())
    } else {
        Err(CatalogError::BadRequest(format!(
            "invalid user name {}: use 1 to 64 letters, digits, '.', '_' or '-'",
            quote(name)
        )))
    }
}

fn is_package_like(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.starts_with('.')
        && !name.contains("..")
}

/// Splits `ORG/PKG` and validates both halves.
pub fn parse_package_ref(reference: &str) -> CatalogResult<(String, String)> {
    let Some((org, pkg)) = reference.split_once('/') else {
        return Err(CatalogError::BadRequest(format!(
            "{} is not of the form ORG/PACKAGE",
            quote(reference)
        )));
    };
    validate_org_name(org)?;
    validate_package_name(pkg)?;
    Ok((org.to_string(), pkg.to_string()))
}

/// Quotes untrusted text for an error message: escapes control characters, caps the length.
pub(crate) fn quote(s: &str) -> String {
    let mut shown: String = s.chars().take(80).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    crate::text::terminal(&format!("{shown:?}")).replace('"', "'")
}

// ---------------------------------------------------------------------------------------------
// Signatures

/// Verifies a narinfo signature `keyname:base64(sig)` over the build's fingerprint against
/// trusted public keys `name:base64(32 bytes)`; returns the name of the key that signed.
/// The fingerprint and the ed25519 check are the shared ones of [`crate::nix::sign`].
pub fn verify_signature(
    store_path: &str,
    nar_hash: &str,
    nar_size: u64,
    references: &[String],
    signature: &str,
    trusted_keys: &[String],
) -> CatalogResult<String> {
    use crate::nix::sign::{self, PublicKey, Signature, VerifyError};
    use crate::nix::{Sha256Hash, StorePath};
    let bad = |what: String| CatalogError::BadRequest(what);
    let path = StorePath::parse(store_path).map_err(|e| bad(e.to_string()))?;
    let hash = Sha256Hash::parse(nar_hash).map_err(|e| bad(format!("nar_hash: {e}")))?;
    let refs = references
        .iter()
        .map(|r| {
            if r.starts_with('/') {
                StorePath::parse(r)
            } else {
                StorePath::from_base_name(r)
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("references: {e}")))?;
    let sig = Signature::parse(signature)
        .map_err(|_| bad("signature must look like KEYNAME:BASE64 (64 bytes)".into()))?;
    let keys: Vec<PublicKey> = trusted_keys
        .iter()
        .filter_map(|k| PublicKey::parse(k).ok())
        .collect();
    let fp = sign::fingerprint(&path, &hash, nar_size, &refs);
    sign::verify_signatures(fp.as_bytes(), std::slice::from_ref(&sig), &keys).map_err(|e| match e {
        VerifyError::BadSignature(name) => CatalogError::forbidden(
            Refusal::BadSignature,
            format!(
                "the signature by key {} does not match this build",
                quote(&name)
            ),
        ),
        _ => CatalogError::forbidden(
            Refusal::UntrustedKey,
            format!(
                "the build is signed with key {}, which the catalog does not trust",
                quote(sig.key_name())
            ),
        ),
    })
}

/// Parses a Nix public key `name:base64(32 bytes)` (surrounding whitespace allowed) whose
/// name follows [`crate::nix::sign::KEY_NAME_RULE`].
pub fn parse_public_key_text(text: &str) -> CatalogResult<crate::nix::sign::PublicKey> {
    crate::nix::sign::PublicKey::parse(text.trim()).map_err(|e| match e {
        crate::nix::sign::KeyError::BadName { name, .. } => CatalogError::BadRequest(format!(
            "the key name {} is not allowed: {}",
            quote(&name),
            crate::nix::sign::KEY_NAME_RULE
        )),
        _ => CatalogError::BadRequest(
            "a public key must look like NAME:BASE64 with 32 key bytes (a Nix public key file)"
                .into(),
        ),
    })
}

/// Parses a Nix public key (see [`parse_public_key_text`]); returns its name.
pub fn parse_public_key(text: &str) -> CatalogResult<String> {
    parse_public_key_text(text).map(|k| k.name().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_org_name("myorg").is_ok());
        assert!(validate_org_name("ab").is_err());
        assert!(validate_org_name("a.b.c").is_err());
        assert!(validate_org_name(&"a".repeat(64)).is_err());
        assert!(validate_package_name("hello-2.1_x").is_ok());
        for bad in ["", "..", ".", "a/b", "a\0b", "héllo", "a..b", ".hidden"] {
            assert!(validate_package_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_package_name(&"a".repeat(128)).is_ok());
        assert!(validate_package_name(&"a".repeat(129)).is_err());
        assert_eq!(
            parse_package_ref("myorg/hello").unwrap(),
            ("myorg".into(), "hello".into())
        );
        assert!(parse_package_ref("myorg").is_err());
    }

    #[test]
    fn signature_roundtrip() {
        use crate::nix::sign::{SecretKey, fingerprint};
        use crate::nix::{Sha256Hash, StorePath};
        let sk = SecretKey::generate("k1").unwrap();
        let other = SecretKey::generate("k2").unwrap().public().to_nix_string();
        let public = sk.public().to_nix_string();
        let hash = Sha256Hash::of(b"nar");
        let path = StorePath::from_nar_hash(&hash, "x-1.0", &[]).unwrap();
        let (p, h) = (path.to_string(), hash.to_string());
        let sig = sk
            .sign(fingerprint(&path, &hash, 5, &[]).as_bytes())
            .to_string();
        let keys = vec![other.clone(), public.clone()];
        assert_eq!(verify_signature(&p, &h, 5, &[], &sig, &keys).unwrap(), "k1");
        let wrong_size = verify_signature(&p, &h, 6, &[], &sig, &keys).unwrap_err();
        assert!(
            wrong_size.to_string().contains("does not match"),
            "{wrong_size}"
        );
        let untrusted = verify_signature(&p, &h, 5, &[], &sig, &[other]).unwrap_err();
        assert!(
            untrusted.to_string().contains("does not trust"),
            "{untrusted}"
        );
        assert!(matches!(
            verify_signature(&p, &h, 5, &[], "nonsense", &keys),
            Err(CatalogError::BadRequest(_))
        ));
    }
}
