//! The S3 credentials `pubdeck serve --store-credentials FILE` hands to Flox with an org's
//! store: read credentials with store info (only to callers who may read the catalog), write
//! credentials with publish info (only to its owner with a publish token). Flox passes them
//! to `nix copy` as environment variables (`{"aws-s3": {"envs": {…}}}`).
//!
//! The file is TOML, one table per org, and must not be readable by others (mode 0600):
//!
//! ```toml
//! [myorg.read]
//! AWS_ACCESS_KEY_ID = "…"
//! AWS_SECRET_ACCESS_KEY = "…"
//! [myorg.write]
//! AWS_ACCESS_KEY_ID = "…"
//! AWS_SECRET_ACCESS_KEY = "…"
//! AWS_SESSION_TOKEN = "…"   # optional
//! ```
//!
//! Only these variables are accepted, with values of at most 4,096 printable ASCII characters;
//! the values are never logged or shown (`Debug` hides them).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

/// The variables a credential may set.
pub const VARIABLES: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
];

/// One org's read and write credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OrgCredentials {
    pub read: Option<BTreeMap<String, String>>,
    pub write: Option<BTreeMap<String, String>>,
}

/// Every org's credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreCredentials {
    orgs: BTreeMap<String, OrgCredentials>,
}

impl std::fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCredentials")
            .field("orgs", &self.orgs.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Which credential a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl StoreCredentials {
    /// Reads the file: refused when others may read it, or when it is not the shape above.
    pub fn load(path: &Path) -> Result<StoreCredentials, String> {
        use std::os::unix::fs::MetadataExt as _;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "{} holds secrets but others may read it (mode {:o}); run `chmod 600 {}`",
                path.display(),
                meta.mode() & 0o777,
                path.display()
            ));
        }
        if meta.len() > 1024 * 1024 {
            return Err(format!("{} is larger than 1 MiB", path.display()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<StoreCredentials, String> {
        let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            // The parser's message may quote a line, which may hold a secret: only where.
            match e.span() {
                Some(span) => format!(
                    "not valid TOML (at line {})",
                    text[..span.start.min(text.len())].matches('\n').count() + 1
                ),
                None => "not valid TOML".into(),
            }
        })?;
        let mut orgs = BTreeMap::new();
        for (org, v) in doc.iter() {
            crate::catalog::validate_org_name(org).map_err(|e| e.to_string())?;
            let table = v
                .as_table_like()
                .ok_or_else(|| format!("[{org}] must be a table with read and write"))?;
            let mut creds = OrgCredentials::default();
            for (which, v) in table.iter() {
                let slot = match which {
                    "read" => &mut creds.read,
                    "write" => &mut creds.write,
                    other => {
                        return Err(format!("[{org}.{other}]: only read and write are known"));
                    }
                };
                *slot = Some(envs(org, which, v)?);
            }
            orgs.insert(org.to_string(), creds);
        }
        Ok(StoreCredentials { orgs })
    }

    /// Flox's `auth` object for `org`'s store, for a caller the catalog allowed `access`.
    pub fn auth(&self, org: &str, access: Access) -> Option<Map<String, Value>> {
        let creds = self.orgs.get(org)?;
        let envs = match access {
            Access::Read => creds.read.as_ref()?,
            Access::Write => creds.write.as_ref()?,
        };
        let envs: Map<String, Value> = envs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut aws = Map::new();
        aws.insert("envs".into(), Value::Object(envs));
        let mut auth = Map::new();
        auth.insert("aws-s3".into(), Value::Object(aws));
        Some(auth)
    }
}

fn envs(org: &str, which: &str, v: &toml_edit::Item) -> Result<BTreeMap<String, String>, String> {
    let table = v
        .as_table_like()
        .ok_or_else(|| format!("[{org}.{which}] must be a table of variables"))?;
    let mut out = BTreeMap::new();
    for (k, v) in table.iter() {
        if !VARIABLES.contains(&k) {
            return Err(format!(
                "[{org}.{which}]: {k} is not one of {}",
                VARIABLES.join(", ")
            ));
        }
        let s = v
            .as_str()
            .ok_or_else(|| format!("[{org}.{which}] {k} must be a string"))?;
        if s.is_empty() || s.len() > 4096 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "[{org}.{which}] {k} must be 1 to 4096 printable ASCII characters without spaces"
            ));
        }
        out.insert(k.to_string(), s.to_string());
    }
    for need in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        if !out.contains_key(need) {
            return Err(format!("[{org}.{which}] needs {need}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_gives_the_right_credential() {
        let c = StoreCredentials::parse(
            "[myorg.read]\nAWS_ACCESS_KEY_ID = \"r\"\nAWS_SECRET_ACCESS_KEY = \"rs\"\n\
             [myorg.write]\nAWS_ACCESS_KEY_ID = \"w\"\nAWS_SECRET_ACCESS_KEY = \"ws\"\n",
        )
        .unwrap();
        let read = c.auth("myorg", Access::Read).unwrap();
        assert_eq!(read["aws-s3"]["envs"]["AWS_ACCESS_KEY_ID"], "r");
        let write = c.auth("myorg", Access::Write).unwrap();
        assert_eq!(write["aws-s3"]["envs"]["AWS_SECRET_ACCESS_KEY"], "ws");
        assert!(c.auth("other", Access::Read).is_none());
        assert!(!format!("{c:?}").contains("rs"));
    }

    #[test]
    fn refuses_what_it_does_not_know_without_quoting_secrets() {
        for (text, says) in [
            (
                "[myorg.read]\nAWS_ACCESS_KEY_ID = \"r\"\n",
                "needs AWS_SECRET_ACCESS_KEY",
            ),
            (
                "[myorg.read]\nLD_PRELOAD = \"x\"\n",
                "LD_PRELOAD is not one of",
            ),
            ("[myorg.admin]\n", "only read and write"),
            (
                "[myorg.read]\nAWS_ACCESS_KEY_ID = \"a b\"\nAWS_SECRET_ACCESS_KEY = \"s\"\n",
                "printable",
            ),
            ("[\"../x\".read]\n", "invalid catalog name"),
        ] {
            let e = StoreCredentials::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e =
            StoreCredentials::parse("[myorg.read]\nAWS_SECRET_ACCESS_KEY = \"hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
