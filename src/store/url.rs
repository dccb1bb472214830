//! Store URLs in Nix's style: `file:///abs/path` and
//! `s3://bucket[/prefix]?endpoint=…&region=…&profile=…&scheme=…`.
//!
//! A store URL comes from a catalog owner, so it is hostile until parsed: every part is checked
//! *after* percent-decoding, against a character set that cannot carry whitespace, `#`,
//! quotes, control characters or a second URL. An endpoint parses to exactly one scheme, host
//! and port ([`Endpoint`]); trust is decided on that, never on text.
//!
//! Parsing normalises (the one rule for comparing, storing and trusting): `file` paths lose
//! `.` components, repeated and trailing slashes; endpoints lose a default port and take a
//! lower-case host; parameters take a fixed order. `Display` prints that canonical form, which
//! parses back to the same value, never contains credentials (they are refused in the URL in
//! the first place) and is one token of Nix's config grammar (`text::is_config_token`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
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
    /// Custom endpoint; `None` means real AWS.
    pub endpoint: Option<Endpoint>,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// An S3 endpoint: exactly one scheme, host and port, nothing else (no user, path, query or
/// fragment). Compared as parsed, so `HTTP://Host:80` and `http://host` are the same endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub https: bool,
    pub host: Host,
    /// `None` for the scheme's default port (80 or 443).
    pub port: Option<u16>,
}

/// An endpoint's host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lower case, labels of `a-z 0-9 -`.
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

const S3_PARAMS: &[&str] = &["endpoint", "region", "profile", "scheme"];

impl StoreUrl {
    /// Parse a store URL; every error is one sentence naming the problem.
    pub fn parse(input: &str) -> Result<StoreUrl, StoreError> {
        let bad = |reason: String| StoreError::InvalidUrl {
            url: crate::text::terminal(&redact(input)).into_owned(),
            reason,
        };
        if input.len() > MAX_URL_BYTES {
            return Err(bad(format!("longer than {MAX_URL_BYTES} bytes")));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad(
                "expected file:///path or s3://bucket?endpoint=…&region=…".into(),
            ));
        };
        match scheme {
            "file" => parse_file(rest).map_err(bad),
            "s3" => parse_s3(rest).map_err(bad),
            other => Err(bad(format!(
                "the scheme {:?} is not supported (use file:// or s3://)",
                crate::text::terminal(other)
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

/// Longest store URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreUrl::parse(s)
    }
}

/// Characters a decoded path component (a `file://` directory, an S3 key prefix) may hold.
fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '=' | ',' | '@' | '~')
}

/// The components of a decoded absolute or relative path: `.` and empty ones dropped, `..`
/// and any character outside [`is_path_char`] refused.
fn path_components<'a>(path: &'a str, what: &str) -> Result<Vec<&'a str>, String> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("the {what} must not contain '..'")),
            c => {
                if let Some(bad) = c.chars().find(|&ch| !is_path_char(ch)) {
                    return Err(format!(
                        "the {what} contains {:?}, which a store URL may not hold (use letters, digits and . _ - + = , @ ~)",
                        crate::text::terminal(&bad.to_string())
                    ));
                }
                out.push(c);
            }
        }
    }
    Ok(out)
}

fn parse_file(rest: &str) -> Result<StoreUrl, String> {
    if rest.contains('?') || rest.contains('#') {
        return Err("file:// store URLs take no parameters".into());
    }
    if !rest.starts_with('/') {
        return Err("a file:// store needs an absolute path, as in file:///srv/cache".into());
    }
    let path = percent_decode(rest)?;
    let parts = path_components(&path, "path")?;
    Ok(StoreUrl::File {
        root: PathBuf::from(format!("/{}", parts.join("/"))),
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
    let prefix = {
        let decoded = percent_decode(prefix)?;
        let parts = path_components(&decoded, "key prefix")?;
        if parts.is_empty() {
            String::new()
        } else {
            format!("{}/", parts.join("/"))
        }
    };

    let mut endpoint = None;
    let mut region = None;
    let mut profile = None;
    let mut scheme = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        if value.is_empty() {
            return Err(format!(
                "the parameter {:?} needs a value",
                crate::text::terminal(name)
            ));
        }
        let slot = match name {
            "endpoint" => &mut endpoint,
            "region" => &mut region,
            "profile" => &mut profile,
            "scheme" => &mut scheme,
            other => {
                return Err(format!(
                    "unknown parameter {:?} (known: {})",
                    crate::text::terminal(other),
                    S3_PARAMS.join(", ")
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("the parameter {name:?} is given twice"));
        }
    }
    let https = match scheme.as_deref() {
        None => None,
        Some("http") => Some(false),
        Some("https") => Some(true),
        Some(s) => {
            return Err(format!(
                "scheme must be http or https, not {:?}",
                crate::text::terminal(s)
            ));
        }
    };
    let endpoint = match endpoint {
        None if https.is_some() => {
            return Err("scheme= only makes sense together with endpoint=".into());
        }
        None => None,
        Some(ep) => Some(Endpoint::parse_with_scheme(&ep, https)?),
    };
    if let Some(r) = &region
        && (r.len() > 64
            || !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        return Err(format!(
            "{:?} is not a valid region name",
            crate::text::terminal(r)
        ));
    }
    if let Some(p) = &profile
        && (p.len() > 128
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{:?} is not a valid profile name (letters, digits, '.', '_' and '-')",
            crate::text::terminal(p)
        ));
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
            "{:?} is not a valid bucket name (3–63 characters of a-z, 0-9, '-' and '.')",
            crate::text::terminal(bucket)
        ));
    }
    Ok(())
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/]`: a DNS name, an IPv4 address or a bracketed IPv6
    /// address; no user, path, query or fragment. The input is taken as it is: a `%` in it is
    /// refused, never decoded a second time.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        Endpoint::parse_with_scheme(text, None)
    }

    /// [`Endpoint::parse`], where a bare `host[:port]` takes the scheme given by `scheme=`
    /// (Nix's spelling), https by default.
    fn parse_with_scheme(text: &str, https: Option<bool>) -> Result<Endpoint, String> {
        let shown = || crate::text::terminal(&redact(text)).into_owned();
        let (https, authority) = match text.split_once("://") {
            Some((s, rest)) => {
                if https.is_some() {
                    return Err("give either scheme= or a full endpoint URL, not both".into());
                }
                let https = match s.to_ascii_lowercase().as_str() {
                    "http" => false,
                    "https" => true,
                    _ => {
                        return Err(format!(
                            "the endpoint must be an http:// or https:// URL, not {:?}",
                            crate::text::terminal(s)
                        ));
                    }
                };
                (https, rest)
            }
            None => (https.unwrap_or(true), text),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains('@') {
            return Err("credentials do not belong in the endpoint URL; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or use ?profile=".into());
        }
        if let Some(c) = authority.chars().find(|c| matches!(c, '/' | '?' | '#')) {
            return Err(format!(
                "the endpoint {} must be scheme://host[:port] only, without {c:?}",
                shown()
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("the endpoint {} has an unclosed '['", shown()))?;
            let addr: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("the endpoint {} has no valid IPv6 address", shown()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("the endpoint {} has text after ']'", shown()))?,
                ),
            };
            (Host::V6(addr), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            (
                parse_host(host).map_err(|why| format!("the endpoint {}: {why}", shown()))?,
                port,
            )
        };
        let port = match port {
            None => None,
            Some(p) => {
                let n: u16 = p
                    .parse()
                    .ok()
                    .filter(|n| *n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("the endpoint {} has an invalid port", shown()))?;
                let default = if https { 443 } else { 80 };
                (n != default).then_some(n)
            }
        };
        Ok(Endpoint { https, host, port })
    }

    /// Whether this is one of AWS's own endpoints (credentials from the environment may go
    /// there): https, on the default port, to a host under `amazonaws.com(.cn)`.
    pub fn is_aws(&self) -> bool {
        self.https
            && self.port.is_none()
            && matches!(&self.host, Host::Name(h)
                if h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"))
    }
}

/// A DNS name (lower-cased) or a dotted IPv4 address; anything else is refused.
fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if host.len() > 253 {
        return Err("its host name is too long".into());
    }
    let lower = host.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return lower
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| "its host is not a valid IPv4 address".into());
    }
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !labels.iter().all(label_ok) {
        return Err(
            "its host is not a DNS name (labels of letters, digits and '-', separated by '.')"
                .into(),
        );
    }
    Ok(Host::Name(lower))
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
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
                .ok_or_else(|| format!("bad percent escape in {:?}", crate::text::terminal(s)))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| format!("{:?} is not UTF-8 after decoding", crate::text::terminal(s)))
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
            StoreUrl::File { root } => {
                format!(
                    "file://{}/{key}",
                    root.display().to_string().trim_end_matches('/')
                )
            }
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
        if let Some(ep) = &self.endpoint {
            write!(f, "{sep}endpoint={ep}")?;
            sep = '&';
        }
        for (name, value) in [("region", &self.region), ("profile", &self.profile)] {
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
        assert_eq!(
            loc.endpoint.as_ref().unwrap().to_string(),
            "http://127.0.0.1:9000"
        );
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
        assert_eq!(
            loc.endpoint.as_ref().unwrap().to_string(),
            "http://minio.local:9000"
        );
        let u = StoreUrl::parse("s3://cache?endpoint=http%3A%2F%2Fh%3A1").unwrap();
        let StoreUrl::S3(loc) = u else { panic!() };
        assert_eq!(loc.endpoint.as_ref().unwrap().to_string(), "http://h:1");
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

    #[test]
    fn decoded_parts_cannot_carry_config_syntax() {
        // Each is refused whether the dangerous character is plain or percent-encoded.
        for url in [
            "file:///srv/c%0Apost-build-hook%20=%20/tmp/evil",
            "file:///srv/c%20d",
            "file:///srv/c%23x",
            "file:///srv/c%09d",
            "file:///srv/../etc",
            "s3://bkt/team%0Anix",
            "s3://bkt?endpoint=http%3A%2F%2Fh%0Atrusted-users%3D*",
            "s3://bkt?endpoint=http://h%20x",
            "s3://bkt?region=us%0Aeast",
            "s3://bkt?profile=a%20b",
            "s3://bkt?profile=a%23b",
            "s3://bkt?endpoint=http%3A%2F%2Fh%3A1%2Fpath",
            "s3://bkt?endpoint=http://h:0",
            "s3://bkt?endpoint=http://h:99999",
            "s3://bkt?endpoint=http://-h",
            "s3://bkt?endpoint=http://127.1",
            "s3://bkt?endpoint=http://h%2525",
        ] {
            assert!(StoreUrl::parse(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn the_fragment_bypass_is_refused_and_aws_is_decided_on_the_host() {
        for url in [
            "s3://bkt?endpoint=https%3A%2F%2Flocalhost%23.amazonaws.com",
            "s3://bkt?endpoint=https://localhost%23.amazonaws.com",
            "s3://bkt?endpoint=https://evil.com%3F.amazonaws.com",
            "s3://bkt?endpoint=https://x%40evil.com",
            "s3://bkt?endpoint=https://evil.com/.amazonaws.com",
        ] {
            assert!(StoreUrl::parse(url).is_err(), "{url} was accepted");
        }
        let aws = |ep: &str| Endpoint::parse(ep).unwrap().is_aws();
        assert!(aws("https://s3.eu-west-1.amazonaws.com"));
        assert!(aws("https://S3.AMAZONAWS.COM:443/"));
        assert!(aws("https://s3.cn-north-1.amazonaws.com.cn"));
        assert!(!aws("http://s3.amazonaws.com"));
        assert!(!aws("https://s3.amazonaws.com:8443"));
        assert!(!aws("https://amazonaws.com.evil.net"));
        assert!(!aws("https://evilamazonaws.com"));
    }

    #[test]
    fn one_canonical_form_that_parses_back() {
        for (url, canonical) in [
            ("file:///srv/./cache//x/", "file:///srv/cache/x"),
            ("file:///", "file:///"),
            ("file:///srv/%63ache", "file:///srv/cache"),
            (
                "s3://bkt/./team//nix/?region=us-east-1&endpoint=HTTP://Minio.Local:80/",
                "s3://bkt/team/nix?endpoint=http://minio.local&region=us-east-1",
            ),
            (
                "s3://bkt?endpoint=[::1]:9000&scheme=http",
                "s3://bkt?endpoint=http://[::1]:9000",
            ),
            (
                "s3://bkt?endpoint=h.example&scheme=https",
                "s3://bkt?endpoint=https://h.example",
            ),
        ] {
            let parsed = StoreUrl::parse(url).unwrap();
            assert_eq!(parsed.to_string(), canonical, "{url}");
            assert_eq!(StoreUrl::parse(canonical).unwrap(), parsed, "{url}");
            assert!(crate::text::is_config_token(canonical), "{canonical}");
        }
    }

    #[test]
    fn errors_show_no_raw_control_characters() {
        for url in ["ftp\x1b://x", "s3://bkt?x\x1b[2K=1", "s3://B\x1b[2K"] {
            let err = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(!err.chars().any(crate::text::is_unsafe_char), "{err:?}");
        }
    }
}
