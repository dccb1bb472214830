//! Input checks shared by the client, the embedded catalog and the server, plus small helpers
//! (version ordering, timestamps).

use std::cmp::Ordering;

use super::{
    Addressing, CatalogError, CatalogResult, NewBuild, quote, validate_org_name,
    validate_package_name,
};

fn bad(msg: String) -> CatalogError {
    CatalogError::BadRequest(msg)
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> CatalogResult<()> {
    if required && value.trim().is_empty() {
        return Err(bad(format!("{field} must not be empty")));
    }
    if value.len() > max {
        return Err(bad(format!("{field} is longer than {max} bytes")));
    }
    if has_control(value) {
        return Err(bad(format!("{field} contains control characters")));
    }
    Ok(())
}

/// Checks every field of a build registration.
pub fn validate_new_build(b: &NewBuild) -> CatalogResult<()> {
    validate_build_fields(b)?;
    if b.addressing == Addressing::Input {
        return Err(bad(
            "an input-addressed build is registered through the Flox publish route \
             (POST /api/v1/catalog/catalogs/ORG/packages/PACKAGE/builds), which checks its \
             closure in the org's store"
                .into(),
        ));
    }
    validate_content_address(b)?;
    validate_closure(b)
}

/// An input-addressed build (one the Flox CLI published): every field's rule, no content
/// address (its path follows from a derivation, which the catalog cannot check), and its
/// closure listed. The caller checks the closure against the org's store.
pub fn validate_input_addressed(b: &NewBuild) -> CatalogResult<()> {
    validate_build_fields(b)?;
    if b.addressing != Addressing::Input || !b.ca.is_empty() {
        return Err(bad("an input-addressed build has no content address".into()));
    }
    validate_store_path(&b.derivation)
        .ok()
        .filter(|()| b.derivation.ends_with(".drv"))
        .ok_or_else(|| {
            bad(format!(
                "derivation {} is not a .drv store path",
                quote(&b.derivation)
            ))
        })?;
    if b.rev_date.len() > 64 || has_control(&b.rev_date) {
        return Err(bad("rev_date is not a date".into()));
    }
    validate_closure(b)
}

fn validate_build_fields(b: &NewBuild) -> CatalogResult<()> {
    validate_org_name(&b.org)?;
    validate_package_name(&b.package)?;
    validate_version(&b.version)?;
    validate_system(&b.system)?;
    check_text("description", &b.description, 4096, false)?;
    validate_store_path(&b.store_path)?;
    validate_narinfo_url(&b.narinfo_url)?;
    validate_nar_hash(&b.nar_hash)?;
    if b.nar_size > i64::MAX as u64 {
        return Err(bad("nar_size is too large".into()));
    }
    if b.references.len() > 10_000 {
        return Err(bad("too many references".into()));
    }
    for r in &b.references {
        let base = r.rsplit('/').next().unwrap_or(r);
        check_text("reference", r, 1024, true)?;
        if !is_store_basename(base) {
            return Err(bad(format!("reference {} is not a store path", quote(r))));
        }
    }
    check_text("signature", &b.signature, 512, true)?;
    if !b.key_name.is_empty() {
        if !crate::nix::sign::is_valid_key_name(&b.key_name) {
            return Err(bad(format!(
                "key_name {} is not allowed: {}",
                quote(&b.key_name),
                crate::nix::sign::KEY_NAME_RULE
            )));
        }
        let sig_key = b.signature.split_once(':').map_or("", |(k, _)| k);
        if sig_key != b.key_name {
            return Err(bad(format!(
                "key_name {} does not match the signature's key {}",
                quote(&b.key_name),
                quote(sig_key)
            )));
        }
    }
    validate_source_url(&b.source_url)?;
    validate_revision(&b.revision)?;
    check_text("branch", &b.branch, 255, false)?;
    validate_package_name(&b.build_name)
        .map_err(|_| bad(format!("invalid build name {}", quote(&b.build_name))))?;
    if b.installed_packages.len() > 10_000 {
        return Err(bad("too many installed packages".into()));
    }
    for p in &b.installed_packages {
        check_text("installed package", p, 512, true)?;
    }
    check_text("rev_date", &b.rev_date, 64, false)?;
    check_text("derivation", &b.derivation, 1024, false)?;
    Ok(())
}

/// The store path must follow from the build's content: its content address (the NAR hash,
/// or for a path that refers to itself the hash modulo its own hash part), name and
/// references. So no registration can name another package's store path with other bytes.
pub fn validate_content_address(b: &NewBuild) -> CatalogResult<()> {
    use crate::nix::{Sha256Hash, StorePath};
    let path = StorePath::parse(&b.store_path).map_err(|e| bad(e.to_string()))?;
    let nar_hash = Sha256Hash::parse(&b.nar_hash).map_err(|e| bad(format!("nar_hash: {e}")))?;
    let ca_hash = if b.ca.is_empty() {
        nar_hash
    } else {
        let h =
            b.ca.strip_prefix("fixed:r:")
                .ok_or_else(|| bad(format!("ca {} is not fixed:r:sha256:<hash>", quote(&b.ca))))?;
        Sha256Hash::parse(h).map_err(|e| bad(format!("ca: {e}")))?
    };
    let refs = b
        .references
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
    let self_reference = refs.contains(&path);
    let others: Vec<StorePath> = refs.into_iter().filter(|r| *r != path).collect();
    if !self_reference && ca_hash != nar_hash {
        return Err(bad(format!(
            "store path {} does not follow from its content: its content address differs from its NAR hash, but it does not refer to itself",
            b.store_path
        )));
    }
    let expected = StorePath::from_ca(&ca_hash, path.name(), &others, self_reference)
        .map_err(|e| bad(e.to_string()))?;
    if expected != path {
        return Err(bad(format!(
            "store path {} does not follow from its content: its content address, name and references give {expected}",
            b.store_path
        )));
    }
    Ok(())
}

/// The closure lists store paths, the build's own among them, and every reference.
fn validate_closure(b: &NewBuild) -> CatalogResult<()> {
    if b.closure.is_empty() {
        return Ok(());
    }
    if b.closure.len() > 100_000 {
        return Err(bad("the closure has too many paths".into()));
    }
    for c in &b.closure {
        validate_store_path(&c.store_path)?;
        if c.nar_size > i64::MAX as u64 {
            return Err(bad("a closure path's nar_size is too large".into()));
        }
    }
    let listed = |p: &str| b.closure.iter().any(|c| c.store_path == p);
    if !listed(&b.store_path) {
        return Err(bad(format!(
            "the closure does not list the build's own store path {}",
            b.store_path
        )));
    }
    for r in &b.references {
        let full = if r.starts_with('/') {
            r.clone()
        } else {
            format!("{}{r}", crate::nix::STORE_PREFIX)
        };
        if !listed(&full) {
            return Err(bad(format!("reference {} is not in the closure", quote(r))));
        }
    }
    Ok(())
}

/// A version: the rule of [`crate::manifest::check_version`].
pub fn validate_version(v: &str) -> CatalogResult<()> {
    crate::manifest::check_version(v).map_err(|_| bad(format!("invalid version {}", quote(v))))
}

/// A Nix system such as `x86_64-linux`.
pub fn validate_system(s: &str) -> CatalogResult<()> {
    let ok = (3..=64).contains(&s.len())
        && s.contains('-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "invalid system {} (expected e.g. x86_64-linux)",
            quote(s)
        )))
    }
}

/// A git revision: 7 to 64 hex digits.
pub fn validate_revision(r: &str) -> CatalogResult<()> {
    if (7..=64).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(bad(format!(
            "invalid revision {} (expected a git commit id)",
            quote(r)
        )))
    }
}

fn is_store_basename(base: &str) -> bool {
    let Some((hash, name)) = base.split_at_checked(32) else {
        return false;
    };
    hash.bytes().all(crate::nix::is_nix32)
        && name.len() > 1
        && name.starts_with('-')
        && name[1..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b))
}

/// `/<store dir>/<32 nix32 chars>-<name>`.
pub fn validate_store_path(p: &str) -> CatalogResult<()> {
    check_text("store_path", p, 1024, true)?;
    let ok = p.starts_with('/')
        && p.rsplit_once('/')
            .is_some_and(|(dir, base)| !dir.is_empty() && is_store_basename(base));
    if ok {
        Ok(())
    } else {
        Err(bad(format!("invalid store path {}", quote(p))))
    }
}

/// `sha256:` followed by 52 nix32 characters.
pub fn validate_nar_hash(h: &str) -> CatalogResult<()> {
    let ok = h
        .strip_prefix("sha256:")
        .is_some_and(|rest| rest.len() == 52 && rest.bytes().all(crate::nix::is_nix32));
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "invalid NAR hash {} (expected sha256:<nix32>)",
            quote(h)
        )))
    }
}

/// A store URL as the store parses it (`file://` or `s3://`, every part checked decoded, no
/// credentials), in its canonical form: the form the catalog stores, compares and hands out.
pub fn canonical_store_url(u: &str) -> CatalogResult<String> {
    check_text("store URL", u, crate::store::MAX_URL_BYTES, true)?;
    crate::store::StoreUrl::parse(u)
        .map(|url| url.to_string())
        .map_err(|e| bad(e.to_string()))
}

/// Checks a store URL (see [`canonical_store_url`]).
pub fn validate_store_url(u: &str) -> CatalogResult<()> {
    canonical_store_url(u).map(drop)
}

/// Where a build's narinfo lives: a `file://`, `s3://` or `http(s)://` URL with no
/// credentials and, besides an S3 store's `endpoint`, `region` and `profile`, no query.
pub fn validate_narinfo_url(u: &str) -> CatalogResult<()> {
    check_text("narinfo_url", u, 2048, true)?;
    let url = reqwest::Url::parse(u)
        .map_err(|_| bad(format!("narinfo_url {} is not a URL", quote(u))))?;
    if !matches!(url.scheme(), "file" | "s3" | "http" | "https") {
        return Err(bad(format!(
            "narinfo_url {} must be a file://, s3:// or http(s):// URL",
            quote(u)
        )));
    }
    if url.password().is_some() || !url.username().is_empty() {
        return Err(bad("narinfo_url must not contain credentials".into()));
    }
    if url.fragment().is_some() {
        return Err(bad("narinfo_url must not have a fragment".into()));
    }
    for (k, _) in url.query_pairs() {
        let store_param = url.scheme() == "s3" && matches!(&*k, "endpoint" | "region" | "profile");
        if !store_param {
            return Err(bad(format!(
                "narinfo_url must not carry the query parameter {} (credentials never go into URLs)",
                quote(&k)
            )));
        }
    }
    if !url.path().ends_with(".narinfo") {
        return Err(bad(format!(
            "narinfo_url {} does not name a .narinfo",
            quote(u)
        )));
    }
    Ok(())
}

/// A source repository URL without credentials (`ssh://git@…` and `git@host:path` are fine,
/// a password or an http(s) user name is not).
pub fn validate_source_url(u: &str) -> CatalogResult<()> {
    check_text("source_url", u, 2048, true)?;
    let creds = || {
        bad(
            "source_url must not contain credentials; strip the user and password from the URL"
                .into(),
        )
    };
    match reqwest::Url::parse(u) {
        Ok(url) => {
            if url.password().is_some() {
                return Err(creds());
            }
            if matches!(url.scheme(), "http" | "https") && !url.username().is_empty() {
                return Err(creds());
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad(
                    "source_url must not carry a query string or fragment (it may hold a token such as access_token); publish strips them"
                        .into(),
                ));
            }
            Ok(())
        }
        Err(_) => {
            // scp-like `user@host:path`, or a local path
            if let Some((userinfo, _)) = u.split_once('@')
                && (userinfo.contains(':') || userinfo.contains('/'))
            {
                return Err(creds());
            }
            Ok(())
        }
    }
}

/// The latest version of a package, given each version with whether it is yanked: the
/// highest version not yanked (by [`compare_versions`]); `None` when every version is yanked,
/// and the package has no latest version (it then leaves listings and search, and its
/// `latest_version` is empty). The one rule behind `packages.latest_version`, whether a build
/// is registered or a version yanked.
pub fn latest_not_yanked<'a>(
    versions: impl IntoIterator<Item = (&'a str, bool)>,
) -> Option<&'a str> {
    versions
        .into_iter()
        .filter(|&(_, yanked)| !yanked)
        .map(|(v, _)| v)
        .max_by(|a, b| compare_versions(a, b))
}

/// An audit-log request may ask for 1 to [`super::MAX_AUDIT_ENTRIES`] entries.
pub fn validate_audit_limit(limit: usize) -> CatalogResult<()> {
    if (1..=super::MAX_AUDIT_ENTRIES).contains(&limit) {
        return Ok(());
    }
    Err(CatalogError::BadRequest(format!(
        "the audit log limit must be from 1 to {}, not {limit}",
        super::MAX_AUDIT_ENTRIES
    )))
}

/// Orders versions naturally: numeric runs compare as numbers, the rest as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (trim_zeros(&x[..nx]), trim_zeros(&y[..ny]));
                let ord = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
                if ord != Ordering::Equal {
                    return ord;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::rfc3339;

    #[test]
    fn latest_is_the_highest_version_not_yanked() {
        assert_eq!(
            latest_not_yanked([("1.9", false), ("1.10", false), ("2.0", true)]),
            Some("1.10")
        );
        assert_eq!(latest_not_yanked([("1.0", true), ("2.0", true)]), None);
        assert_eq!(latest_not_yanked([]), None);
        assert_eq!(
            latest_not_yanked([("1.0", false), ("1.0", false)]),
            Some("1.0")
        );
    }

    #[test]
    fn audit_limits() {
        assert!(validate_audit_limit(1).is_ok());
        assert!(validate_audit_limit(10_000).is_ok());
        for bad in [0, 10_001] {
            let e = validate_audit_limit(bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("the audit log limit must be from 1 to 10000, not {bad}")
            );
        }
    }

    #[test]
    fn versions() {
        assert_eq!(compare_versions("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("2.0", "10.0"), Ordering::Less);
        assert_eq!(compare_versions("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare_versions("1.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_779_280_496), "2026-05-20T12:34:56Z");
    }

    #[test]
    fn urls() {
        assert!(validate_source_url("https://github.com/o/r.git").is_ok());
        assert!(validate_source_url("ssh://git@github.com/o/r.git").is_ok());
        assert!(validate_source_url("git@github.com:o/r.git").is_ok());
        assert!(validate_source_url("file:///tmp/remote.git").is_ok());
        assert!(validate_source_url("https://user:pw@github.com/o/r").is_err());
        assert!(validate_source_url("https://ghp_token@github.com/o/r").is_err());
        assert!(validate_source_url("ssh://git:pw@github.com/o/r").is_err());
        assert!(validate_store_url("file:///srv/cache").is_ok());
        assert!(validate_store_url("s3://bucket?endpoint=http://127.0.0.1:9000").is_ok());
        assert!(validate_store_url("s3://k:s@bucket").is_err());
        assert!(validate_store_url("ftp://x").is_err());
    }

    #[test]
    fn store_paths() {
        let p = "/nix/store/0c8b6mcvgb1w3l4nrnvz83ms0xbcbxrj-hello-1.0";
        assert!(validate_store_path(p).is_ok());
        assert!(validate_store_path("/nix/store/short-hello").is_err());
        assert!(validate_nar_hash(&format!("sha256:{}", "0".repeat(52))).is_ok());
        assert!(validate_nar_hash(&format!("sha256:{}", "e".repeat(52))).is_err());
    }
}
