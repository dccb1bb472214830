//! Store errors: each `Display` is one sentence a user can act on; the underlying
//! SDK or I/O error stays reachable through `source()` for `--verbose` output.

use std::error::Error as StdError;
use std::path::PathBuf;

/// A boxed underlying cause.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid store URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    #[error("invalid store key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },

    #[error(
        "the store at {store} rejected the credentials ({code}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile"
    )]
    Credentials {
        store: String,
        code: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "no credentials were found for the store at {store}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or pick a profile with ?profile="
    )]
    NoCredentials {
        store: String,
        #[source]
        source: BoxError,
    },

    #[error("the bucket {bucket:?} does not exist at {store}")]
    NoSuchBucket {
        store: String,
        bucket: String,
        #[source]
        source: BoxError,
    },

    #[error(
        "the store at {store} denied {op} of {key:?} (AccessDenied); the credentials lack permission for it"
    )]
    PermissionDenied {
        store: String,
        op: &'static str,
        key: String,
        #[source]
        source: BoxError,
    },

    #[error("cannot reach the store at {store} ({reason}); check the endpoint and the network")]
    Unreachable {
        store: String,
        reason: String,
        #[source]
        source: BoxError,
    },

    #[error("{key:?} does not exist in the store at {store}")]
    NotFound { store: String, key: String },

    #[error("{op} of {key:?} failed at the store at {store}: {detail}")]
    Service {
        store: String,
        op: &'static str,
        key: String,
        detail: String,
        #[source]
        source: BoxError,
    },

    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} changed while it was being uploaded ({what}); upload it again", path.display())]
    SourceChanged { path: PathBuf, what: String },

    #[error("{} is too large for S3 ({size} bytes; the limit is 5 TiB)", path.display())]
    TooLarge { path: PathBuf, size: u64 },

    #[error("the download of {key:?} is corrupt: {what}")]
    Corrupt { key: String, what: String },

    #[error(
        "{key:?} in the store at {store} is larger than {limit} bytes, more than such a file can be; refusing to read it"
    )]
    Oversized {
        store: String,
        key: String,
        limit: u64,
    },

    #[error("{key:?} in the store at {store} is not a regular file ({what}); refusing to read it")]
    NotAFile {
        store: String,
        key: String,
        what: String,
    },

    #[error("{op} of {key:?} at the store at {store} got no answer within {}s", after.as_secs())]
    TimedOut {
        store: String,
        op: &'static str,
        key: String,
        after: std::time::Duration,
    },

    #[error("not enough free space in {}: the download needs {need} bytes, {have} are free", dir.display())]
    NoSpace { dir: PathBuf, need: u64, have: u64 },

    #[error(
        "refusing to send your AWS credentials to {endpoint}, the endpoint of the store at {store}: it is neither AWS nor an endpoint you trust; to trust it, {}",
        trust_instruction(line, *change, config_file.as_deref())
    )]
    UntrustedEndpoint {
        store: String,
        endpoint: String,
        /// The whole `trusted-endpoints = [...]` line that trusts it (with the entries the
        /// config file has already).
        line: String,
        /// The config file has a `trusted-endpoints` line already, to be changed.
        change: bool,
        /// The config file, when the caller said which.
        config_file: Option<PathBuf>,
    },

    #[error(
        "the upload of {key:?} to {store} was interrupted ({reason}); run the same command again to resume it"
    )]
    Interrupted {
        store: String,
        key: String,
        reason: String,
        #[source]
        source: Box<StoreError>,
    },
}

/// How to put `line` into the config file: a new line goes at the top, before any `[table]`,
/// where TOML takes it as a top-level key.
pub(super) fn trust_instruction(
    line: &str,
    change: bool,
    config_file: Option<&std::path::Path>,
) -> String {
    let file = config_file.map_or_else(
        || "pubdeck's config file ($XDG_CONFIG_HOME/pubdeck/config.toml)".to_string(),
        |p| p.display().to_string(),
    );
    if change {
        format!("make the `trusted-endpoints` line of {file} read `{line}`")
    } else {
        format!("add the line `{line}` at the top of {file}")
    }
}

impl crate::event::Hinted for StoreError {
    fn hint(&self) -> Option<String> {
        match self {
            // The fix is in the sentence (it travels wherever the message goes); the hint is the
            // caution that goes with it.
            StoreError::UntrustedEndpoint { endpoint, .. } => Some(format!(
                "trust {endpoint} only if you would hand whoever runs it your AWS credentials"
            )),
            _ => None,
        }
    }
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether retrying the same operation later could succeed (network trouble).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. }
                | StoreError::Interrupted { .. }
                | StoreError::TimedOut { .. }
        )
    }
}

/// The error and its `source()` chain, one cause per line (for `--verbose`).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str("\n  caused by: ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
