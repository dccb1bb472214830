//! Store URLs in Nix's style: `file:///abs/path` and
//! `s3://bucket[/prefix]?endpoint=…&region=…&profile=…&scheme=…`.
//!
//! `Display` prints a canonical form that never contains credentials (they are
//! refused in the URL in the first place: they belong in the environment or a profile).

use std::fmt;
use std::path::PathBuf;

use super::error::StoreError;

/// A parsed Catalog Store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory holding the cache root.
    File { root: PathBuf },
    /// An S3 (or S3-compatible) bucket.
    S3(S3Location),
}

/// Where an S3 store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix of the cache root inside the bucket: empty, or ending in `/`.
    pub prefix: String,
    /// Custom endpoint (`http://host:port`); `None` means real AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

const S3_PARAMS: &[&str] = &["endpoint", "region", "profile", "scheme"];

impl StoreUrl {
    /// Parse a store URL; every error is one sentence naming the problem.
    pub fn parse(input: &str) -> Result<StoreUrl, StoreError> {
        let bad = |reason: String| StoreError::InvalidUrl {
            url: redact(input),
            reason,
        };
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad(
                "expected file:///path or s3://bucket?endpoint=…&region=…".into(),
            ));
        };
        match scheme {
            "file" => parse_file(rest).map_err(bad),
            "s3" => parse_s3(rest).map_err(bad),
            other => Err(bad(format!(
                "the scheme {other:?} is not supported (use file:// or s3://)"
            ))),
        }
    }

    /// Short description of the backend, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreUrl::File { .. } => "file",
            StoreUrl::S3(_) => "s3",
        }
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

fn parse_file(rest: &str) -> Result<StoreUrl, String> {
    if rest.contains('?') || rest.contains('#') {
        return Err("file:// store URLs take no parameters".into());
    }
    if !rest.starts_with('/') {
        return Err("a file:// store needs an absolute path, as in file:///srv/cache".into());
    }
    let path = percent_decode(rest)?;
    let trimmed = path.trim_end_matches('/');
    let root = if trimmed.is_empty() { "/" } else { trimmed };
    Ok(StoreUrl::File {
        root: PathBuf::from(root),
    })
}

fn parse_s3(rest: &str) -> Result<StoreUrl, String> {
    if rest.contains('#') {
        return Err("s3:// store URLs take no fragment".into());
    }
    let (authority_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (bucket, prefix) = match authority_path.split_once('/') {
        Some((b, p)) => (b, p),
        None => (authority_path, ""),
    };
    if bucket.contains('@') {
        return Err("credentials do not belong in the URL; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or use ?profile=".into());
    }
    validate_bucket(bucket)?;
    let prefix = normalize_prefix(&percent_decode(prefix)?)?;

    let mut endpoint = None;
    let mut region = None;
    let mut profile = None;
    let mut scheme = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        if value.is_empty() {
            return Err(format!("the parameter {name:?} needs a value"));
        }
        let slot = match name {
            "endpoint" => &mut endpoint,
            "region" => &mut region,
            "profile" => &mut profile,
            "scheme" => &mut scheme,
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (known: {})",
                    S3_PARAMS.join(", ")
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("the parameter {name:?} is given twice"));
        }
    }
    if let Some(s) = &scheme
        && s != "http"
        && s != "https"
    {
        return Err(format!("scheme must be http or https, not {s:?}"));
    }
    let endpoint = match endpoint {
        None if scheme.is_some() => {
            return Err("scheme= only makes sense together with endpoint=".into());
        }
        None => None,
        Some(ep) => Some(normalize_endpoint(&ep, scheme.as_deref())?),
    };
    if let Some(r) = &region
        && !r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("{r:?} is not a valid region name"));
    }
    Ok(StoreUrl::S3(S3Location {
        bucket: bucket.to_string(),
        prefix,
        endpoint,
        region,
        profile,
    }))
}

fn validate_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if bucket.len() < 3 || bucket.len() > 63 || !ok_chars {
        return Err(format!(
            "{bucket:?} is not a valid bucket name (3–63 characters of a-z, 0-9, '-' and '.')"
        ));
    }
    Ok(())
}

fn normalize_prefix(prefix: &str) -> Result<String, String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if trimmed
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("the key prefix {prefix:?} is not a plain path"));
    }
    Ok(format!("{trimmed}/"))
}

fn normalize_endpoint(ep: &str, scheme: Option<&str>) -> Result<String, String> {
    let full = if ep.contains("://") {
        if scheme.is_some() {
            return Err("give either scheme= or a full endpoint URL, not both".into());
        }
        ep.to_string()
    } else {
        format!("{}://{ep}", scheme.unwrap_or("https"))
    };
    let (s, rest) = full.split_once("://").unwrap_or(("", ""));
    if s != "http" && s != "https" {
        return Err(format!(
            "the endpoint must be an http:// or https:// URL, not {s:?}"
        ));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.contains('@') {
        return Err("credentials do not belong in the endpoint URL; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or use ?profile=".into());
    }
    if host.is_empty() {
        return Err("the endpoint has no host".into());
    }
    if rest.contains('?') {
        return Err("the endpoint URL must not have a query".into());
    }
    Ok(full.trim_end_matches('/').to_string())
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 after decoding"))
}

/// Remove anything that looks like userinfo (`user:pass@`) from a URL for messages.
fn redact(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return input.to_string();
    };
    let mut out = format!("{scheme}://");
    // Redact userinfo in the authority and in any nested endpoint URL.
    let mut remaining = rest;
    while let Some(at) = remaining.find('@') {
        let before = &remaining[..at];
        let cut = before
            .rfind(['/', '?', '&', '='])
            .map(|i| i + 1)
            .unwrap_or(0);
        out.push_str(&before[..cut]);
        out.push_str("***@");
        remaining = &remaining[at + 1..];
    }
    out.push_str(remaining);
    out
}

impl StoreUrl {
    /// A credential-free URL of the object `key` (recorded in the catalog, shown to users):
    /// `file:///root/key`, or `s3://bucket/prefix/key?endpoint=…&region=…`.
    pub fn object_url(&self, key: &str) -> String {
        match self {
            StoreUrl::File { root } => format!("file://{}/{key}", root.display()),
            StoreUrl::S3(loc) => {
                let base = loc.to_string();
                let (path, query) = match base.split_once('?') {
                    Some((p, q)) => (p.to_string(), format!("?{q}")),
                    None => (base, String::new()),
                };
                format!("{path}/{key}{query}")
            }
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::File { root } => write!(f, "file://{}", root.display()),
            StoreUrl::S3(loc) => write!(f, "{loc}"),
        }
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix.trim_end_matches('/'))?;
        }
        let mut sep = '?';
        for (name, value) in [
            ("endpoint", &self.endpoint),
            ("region", &self.region),
            ("profile", &self.profile),
        ] {
            if let Some(v) = value {
                write!(f, "{sep}{name}={v}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file() {
        let u = StoreUrl::parse("file:///srv/cache/").unwrap();
        assert_eq!(
            u,
            StoreUrl::File {
                root: "/srv/cache".into()
            }
        );
        assert_eq!(u.to_string(), "file:///srv/cache");
    }

    #[test]
    fn parses_s3_with_params() {
        let u = StoreUrl::parse(
            "s3://my-bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&profile=dev",
        )
        .unwrap();
        let StoreUrl::S3(loc) = &u else { panic!() };
        assert_eq!(loc.bucket, "my-bucket");
        assert_eq!(loc.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(loc.region.as_deref(), Some("us-east-1"));
        assert_eq!(loc.profile.as_deref(), Some("dev"));
        assert_eq!(
            u.to_string(),
            "s3://my-bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&profile=dev"
        );
    }

    #[test]
    fn nix_style_endpoint_and_scheme() {
        let u = StoreUrl::parse("s3://cache?endpoint=minio.local:9000&scheme=http").unwrap();
        let StoreUrl::S3(loc) = u else { panic!() };
        assert_eq!(loc.endpoint.as_deref(), Some("http://minio.local:9000"));
        let u = StoreUrl::parse("s3://cache?endpoint=http%3A%2F%2Fh%3A1").unwrap();
        let StoreUrl::S3(loc) = u else { panic!() };
        assert_eq!(loc.endpoint.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn real_aws_and_prefix() {
        let u = StoreUrl::parse("s3://cache/team/nix/").unwrap();
        let StoreUrl::S3(loc) = &u else { panic!() };
        assert_eq!(loc.endpoint, None);
        assert_eq!(loc.prefix, "team/nix/");
        assert_eq!(u.to_string(), "s3://cache/team/nix");
    }

    #[test]
    fn rejects_with_clear_sentences() {
        for (url, needle) in [
            ("ftp://x", "scheme \"ftp\" is not supported"),
            (
                "s3://bucket?compression=xz",
                "unknown parameter \"compression\"",
            ),
            ("s3://Bucket_1", "not a valid bucket name"),
            ("file://relative/dir", "absolute path"),
            ("file:///x?y=1", "take no parameters"),
            ("s3://bkt?endpoint=ftp://h", "http:// or https://"),
            ("s3://bkt?region=us-east-1&region=eu-west-1", "given twice"),
            ("cache", "expected file:///path"),
        ] {
            let err = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn never_displays_credentials() {
        let err = StoreUrl::parse("s3://bkt?endpoint=http://AKIA:s3cr3t@host:9000")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t") && !err.contains("AKIA"), "{err}");
        assert!(err.contains("credentials do not belong"), "{err}");
        let err = StoreUrl::parse("s3://AKIA:s3cr3t@bkt")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
