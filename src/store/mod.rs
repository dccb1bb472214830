//! The Catalog Store: one `Store` over a local directory (`file://`) or an S3 bucket
//! (`s3://`), with keys relative to the binary cache root (`nix-cache-info`,
//! `<hash>.narinfo`, `nar/<filehash>.nar.zst`).
//!
//! - `put_file` uploads a NAR (S3: concurrent multipart with retries, progress and a
//!   resume journal; file: temp file + fsync + rename) and skips objects already present.
//! - `put_if_absent` writes small metadata without ever overwriting different content.
//! - `download` resumes a partial `<dest>.part` file with a range request and can verify
//!   size and SHA-256 before the file appears under its final name.

mod buffers;
mod error;
mod file;
mod journal;
mod progress;
mod redact;
mod retry;
mod s3;
mod upload;
mod url;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;

pub use error::{BoxError, StoreError, error_chain};
pub use file::FileStore;
pub use journal::{FileIdentity, Journal, JournalPart};
pub use progress::{Progress, ProgressSink, ProgressTiming, forward_as_events};
pub use redact::redacted_url;
pub use retry::RetryPolicy;
pub use s3::S3Store;

pub use url::{Endpoint, Host, MAX_URL_BYTES, S3Location, StoreUrl};

/// The config key listing the S3 endpoints (besides AWS's) trusted with the AWS credentials of
/// the environment or a profile.
pub const TRUSTED_ENDPOINTS_KEY: &str = "trusted-endpoints";

/// Whether `endpoint` is one of `trusted` (entries of `trusted-endpoints`, compared as parsed
/// endpoints: scheme, host and port; an entry that does not parse trusts nothing).
pub fn endpoint_is_trusted(endpoint: &Endpoint, trusted: &[String]) -> bool {
    trusted
        .iter()
        .any(|t| Endpoint::parse(t).is_ok_and(|t| t == *endpoint))
}

/// The endpoint of `url` that credentials from the environment may not go to yet: a custom
/// S3 endpoint that is neither AWS's nor one of `trusted`. `None` for `file://` stores, AWS
/// and trusted endpoints. The one rule [`Store::open`] applies and `catalog create` asks about.
pub fn untrusted_endpoint<'a>(url: &'a StoreUrl, trusted: &[String]) -> Option<&'a Endpoint> {
    match url {
        StoreUrl::S3(S3Location {
            endpoint: Some(ep), ..
        }) if !ep.is_aws() && !endpoint_is_trusted(ep, trusted) => Some(ep),
        _ => None,
    }
}

/// The `trusted-endpoints = [...]` line that trusts `endpoint` besides `trusted` (the entries
/// the config file has now, in their canonical form; an entry that does not parse is left
/// out, as it trusts nothing). One line, since TOML allows the key only once.
pub fn trusted_endpoints_line(trusted: &[String], endpoint: &Endpoint) -> String {
    let mut all: Vec<String> = Vec::new();
    for e in trusted
        .iter()
        .filter_map(|t| Endpoint::parse(t).ok())
        .chain(std::iter::once(endpoint.clone()))
    {
        // Canonical endpoints hold no quote or backslash, so they need no TOML escaping.
        let e = format!("\"{e}\"");
        if !all.contains(&e) {
            all.push(e);
        }
    }
    format!("{TRUSTED_ENDPOINTS_KEY} = [{}]", all.join(", "))
}

/// What to do to trust `endpoint`, as a refusal says it: the whole `trusted-endpoints` line
/// (with the entries of `trusted`) and where it goes (`config_file`, when known).
pub fn how_to_trust(trusted: &[String], endpoint: &Endpoint, config_file: Option<&Path>) -> String {
    error::trust_instruction(
        &trusted_endpoints_line(trusted, endpoint),
        !trusted.is_empty(),
        config_file,
    )
}

/// Explicit access keys, overriding the standard AWS credential chain (tests, CLI flags).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `None`: the standard chain (env `AWS_ACCESS_KEY_ID`/…, profiles, SSO-less web identity, IMDS).
    pub credentials: Option<StaticCredentials>,
    pub retry: RetryPolicy,
    /// TCP connect timeout (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// Longest a metadata request (head, get, put of a small object, list, delete) may take
    /// (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub request_timeout: Option<Duration>,
    /// S3 endpoints (besides AWS's own) the user trusts with credentials from the environment
    /// or a profile (`trusted-endpoints` in the config file).
    pub trusted_endpoints: Vec<String>,
    /// The config file `trusted_endpoints` come from, named when an endpoint is refused
    /// (`None`: the refusal names no file).
    pub config_file: Option<PathBuf>,
    /// When a `file://` store's writes are fsynced: each one (the default), or only at
    /// [`Store::sync`].
    pub file_durability: crate::fsutil::Durability,
    /// S3: files up to this size are sent in one streamed PUT (not resumable, one
    /// connection), larger ones multipart (`None`: [`DEFAULT_MULTIPART_THRESHOLD`];
    /// `multipart-threshold` in the config file).
    pub multipart_threshold: Option<u64>,
}

/// Default bound on one metadata request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest object [`Store::get`] reads (narinfos, `nix-cache-info`, listings are far smaller).
pub const MAX_METADATA_BYTES: u64 = 4 * MIB;

/// Default single-PUT limit: larger files go multipart (resumable, parts in parallel).
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * MIB;
/// Default multipart part size.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Default number of parts in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Journals older than this are aborted and removed by the stale-journal cleanup.
pub const DEFAULT_JOURNAL_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const MIB: u64 = 1024 * 1024;

/// A size as a user writes it: `5242880`, `8M`, `16MiB`, `2GiB` (units are powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shown = || crate::text::terminal(s);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{:?} is not a size like 8MiB", shown()))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{:?} has an unknown size unit (use KiB, MiB or GiB)",
                shown()
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{:?} is too large", shown()))
}

/// Knobs of `put_file`.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Requested part size (raised so no upload needs more than 10,000 parts; min 5 MiB).
    pub part_size: u64,
    /// Parts in flight; memory use is about `concurrency * part_size`.
    pub concurrency: usize,
    /// Directory of resume journals; `None` disables resume.
    pub journal_dir: Option<PathBuf>,
    /// The file's content hash (the NAR FileHash), part of the journal identity.
    pub content_hash: Option<String>,
    /// Journals older than this are cleaned up (their uploads aborted).
    pub journal_max_age: Duration,
    pub timing: ProgressTiming,
    pub content_type: Option<String>,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            journal_dir: None,
            content_hash: None,
            journal_max_age: DEFAULT_JOURNAL_MAX_AGE,
            timing: ProgressTiming::default(),
            content_type: None,
        }
    }
}

/// Result of `put_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Uploaded; `sent_bytes` by this run, `resumed_bytes` from an earlier one.
    Uploaded {
        size: u64,
        sent_bytes: u64,
        resumed_bytes: u64,
    },
    /// Already present with the same size: nothing sent.
    Skipped { size: u64 },
}

/// Result of `put_if_absent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutIfAbsent {
    Created,
    /// The object existed with exactly these bytes.
    SameContent,
    /// The object existed with other bytes; it was left untouched.
    DifferentContent,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the cache root.
    pub key: String,
    pub size: u64,
    /// Last written (or touched); `None` when the store does not say.
    pub modified: Option<std::time::SystemTime>,
}

/// Checks for `download`.
#[derive(Debug, Clone, Default)]
pub struct DownloadOptions {
    pub expected_size: Option<u64>,
    /// SHA-256 of the whole object (e.g. the decoded narinfo FileHash).
    pub expected_sha256: Option<[u8; 32]>,
    /// Without an expected size: the most the object may hold (0: no bound besides the
    /// store's own answer).
    pub max_size: u64,
    pub timing: ProgressTiming,
}

/// A Catalog Store; cheap to clone and shareable across tasks.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Bound on each metadata request.
    timeout: Duration,
}

#[derive(Debug, Clone)]
enum Backend {
    File(FileStore),
    S3(S3Store),
}

impl Store {
    /// Open the store at `url` (S3: builds the client; nothing is sent yet).
    pub async fn open(url: &StoreUrl, opts: &OpenOptions) -> Result<Store, StoreError> {
        let backend = match url {
            StoreUrl::File { root } => Backend::File(FileStore::new(
                root.clone(),
                url.clone(),
                opts.file_durability,
            )),
            StoreUrl::S3(loc) => Backend::S3(S3Store::open(loc, url.clone(), opts).await?),
        };
        Ok(Store {
            backend,
            timeout: opts.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        })
    }

    /// Runs a metadata request under the request timeout.
    async fn bounded<T>(
        &self,
        op: &'static str,
        key: &str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::TimedOut {
                    store: self.url().to_string(),
                    op,
                    key: key.to_owned(),
                    after: self.timeout,
                })
            })
    }

    /// Flushes what a `file://` store wrote with [`OpenOptions::file_durability`]
    /// `Deferred` to disk (S3 has nothing to flush).
    pub async fn sync(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::File(f) => f.sync().await,
            Backend::S3(_) => Ok(()),
        }
    }

    /// Parse and open.
    pub async fn open_str(url: &str, opts: &OpenOptions) -> Result<Store, StoreError> {
        Store::open(&StoreUrl::parse(url)?, opts).await
    }

    pub fn url(&self) -> &StoreUrl {
        match &self.backend {
            Backend::File(f) => f.url(),
            Backend::S3(s) => s.url(),
        }
    }

    /// Size of the object at `key`, or `None` when absent.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        validate_key(key)?;
        self.bounded("HEAD", key, async {
            match &self.backend {
                Backend::File(f) => f.head(key).await,
                Backend::S3(s) => s.head(key).await,
            }
        })
        .await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.head(key).await?.is_some())
    }

    /// Whether every key is there: a `file://` store looks in one blocking call, S3 asks 16 at
    /// a time.
    pub async fn exists_all(&self, keys: &[String]) -> Result<bool, StoreError> {
        for k in keys {
            validate_key(k)?;
        }
        let first = keys.first().map_or("", String::as_str);
        self.bounded("HEAD", first, async {
            match &self.backend {
                Backend::File(f) => f.exists_all(keys.to_vec()).await,
                Backend::S3(s) => {
                    use futures::StreamExt;
                    let mut heads = futures::stream::iter(keys.to_vec())
                        .map(|k| async move { s.head(&k).await })
                        .buffer_unordered(16);
                    while let Some(head) = heads.next().await {
                        if head?.is_none() {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                }
            }
        })
        .await
    }

    /// Upload a local file (a NAR) to `key`; skipped when already present with its size.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        opts: &PutOptions,
        progress: &ProgressSink,
    ) -> Result<PutOutcome, StoreError> {
        validate_key(key)?;
        match &self.backend {
            Backend::File(f) => f.put_file(key, path, opts, progress).await,
            Backend::S3(s) => upload::put_file(s, key, path, opts, progress).await,
        }
    }

    /// Create `key` with `bytes` unless it exists; never overwrites different content.
    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutIfAbsent, StoreError> {
        validate_key(key)?;
        self.bounded("PUT", key, async {
            match &self.backend {
                Backend::File(f) => f.put_if_absent(key, bytes).await,
                Backend::S3(s) => s.put_if_absent(key, bytes).await,
            }
        })
        .await
    }

    /// [`Store::put_if_absent`] of an object a transfer is reported for (a small packed NAR):
    /// `progress` sees one finished PUT when it was created, a skip when it was there.
    pub async fn put_if_absent_reported(
        &self,
        key: &str,
        bytes: Bytes,
        progress: &ProgressSink,
    ) -> Result<PutIfAbsent, StoreError> {
        let size = bytes.len() as u64;
        let started = std::time::Instant::now();
        let outcome = self.put_if_absent(key, bytes).await?;
        match outcome {
            PutIfAbsent::Created => {
                progress.send(Progress::Started {
                    key: key.to_string(),
                    total_bytes: size,
                    parts: 1,
                    part_size: size,
                    resumed_bytes: 0,
                });
                progress.send(Progress::Bytes {
                    delta: size,
                    done: size,
                    total: size,
                });
                progress.send(Progress::Finished {
                    key: key.to_string(),
                    total_bytes: size,
                    sent_bytes: size,
                    resumed_bytes: 0,
                    elapsed: started.elapsed(),
                });
            }
            PutIfAbsent::SameContent => progress.send(Progress::Skipped {
                key: key.to_string(),
                size,
            }),
            PutIfAbsent::DifferentContent => {}
        }
        Ok(outcome)
    }

    /// Read a small object whole (at most [`MAX_METADATA_BYTES`]); `StoreError::NotFound`
    /// when absent. A file that is not a regular file (a FIFO, a device, a symlink leading
    /// out of the store) is refused without reading.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        validate_key(key)?;
        self.bounded("GET", key, async {
            match &self.backend {
                Backend::File(f) => f.get(key, MAX_METADATA_BYTES).await,
                Backend::S3(s) => s.get(key, MAX_METADATA_BYTES).await,
            }
        })
        .await
    }

    /// [`Store::get`] of every key, each answer in its place: a `file://` store reads them in
    /// one blocking call, S3 a few at a time.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Result<Bytes, StoreError>> {
        if let Backend::File(f) = &self.backend
            && keys.iter().all(|k| validate_key(k).is_ok())
        {
            let first = keys.first().map_or("", String::as_str);
            let all = self.bounded("GET", first, f.get_many(keys.to_vec(), MAX_METADATA_BYTES));
            // A batch that failed as a whole (timed out) is asked for key by key: each gets
            // its own answer.
            if let Ok(each) = all.await {
                return each;
            }
        }
        use futures::StreamExt;
        futures::stream::iter(keys.to_vec())
            .map(|k| async move { self.get(&k).await })
            .buffered(16)
            .collect()
            .await
    }

    /// Download `key` to `dest` via `partial_path(dest)`, resuming a partial file;
    /// the file appears under `dest` only complete (and verified if asked). Returns its size.
    pub async fn download(
        &self,
        key: &str,
        dest: &Path,
        opts: &DownloadOptions,
        progress: &ProgressSink,
    ) -> Result<u64, StoreError> {
        validate_key(key)?;
        // The declared size bounds the download; the disk must have room for it.
        let size = match opts.expected_size {
            Some(s) => s,
            None => self.head(key).await?.ok_or_else(|| StoreError::NotFound {
                store: self.url().to_string(),
                key: key.to_owned(),
            })?,
        };
        if opts.expected_size.is_none() && opts.max_size > 0 && size > opts.max_size {
            return Err(StoreError::Oversized {
                store: self.url().to_string(),
                key: key.to_owned(),
                limit: opts.max_size,
            });
        }
        check_free_space(dest, size)?;
        match &self.backend {
            Backend::File(f) => f.download(key, dest, opts, progress).await,
            Backend::S3(s) => s.download(key, dest, opts, progress).await,
        }
    }

    /// Objects under `prefix` (relative to the cache root), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match &self.backend {
            Backend::File(f) => f.list(prefix).await,
            Backend::S3(s) => s.list(prefix).await,
        }
    }

    /// Size and modification time of `key`, or `None` when absent.
    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        validate_key(key)?;
        self.bounded("HEAD", key, async {
            match &self.backend {
                Backend::File(f) => f.stat(key).await,
                Backend::S3(s) => s.stat(key).await,
            }
        })
        .await
    }

    /// Write a small object (a narinfo) whole, replacing what is there: readers see the old
    /// or the new object, never a mix (a rename on `file://`, one PUT on S3).
    pub async fn replace(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        validate_key(key)?;
        self.bounded("PUT", key, async {
            match &self.backend {
                Backend::File(f) => f.replace(key, bytes).await,
                Backend::S3(s) => s.replace(key, bytes).await,
            }
        })
        .await
    }

    /// Mark `key` as written now (so a garbage collection's grace period protects it again);
    /// `false` when it is absent.
    pub async fn touch(&self, key: &str) -> Result<bool, StoreError> {
        validate_key(key)?;
        self.bounded("COPY", key, async {
            match &self.backend {
                Backend::File(f) => f.touch(key).await,
                Backend::S3(s) => s.touch(key).await,
            }
        })
        .await
    }

    /// [`Store::touch`] of every key (a `file://` store in one blocking call, S3 all at
    /// once); `false` when any is absent.
    pub async fn touch_all(&self, keys: &[&str]) -> Result<bool, StoreError> {
        for k in keys {
            validate_key(k)?;
        }
        let first = keys.first().copied().unwrap_or("");
        self.bounded("COPY", first, async {
            match &self.backend {
                Backend::File(f) => f.touch_all(keys).await,
                Backend::S3(s) => {
                    let all =
                        futures::future::try_join_all(keys.iter().map(|k| s.touch(k))).await?;
                    Ok(all.into_iter().all(|t| t))
                }
            }
        })
        .await
    }

    /// Delete `key`; deleting an absent key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        validate_key(key)?;
        self.bounded("DELETE", key, async {
            match &self.backend {
                Backend::File(f) => f.delete(key).await,
                Backend::S3(s) => s.delete(key).await,
            }
        })
        .await
    }

    /// Abort and forget this store's interrupted uploads whose journal is older than
    /// `max_age` or whose upload id is gone. Returns how many journals were removed.
    pub async fn cleanup_stale_uploads(
        &self,
        journal_dir: &Path,
        max_age: Duration,
    ) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::File(_) => Ok(0),
            Backend::S3(s) => upload::cleanup_stale(s, journal_dir, max_age, true).await,
        }
    }
}

/// Refuses a download of `size` bytes into `dest`'s directory when the file system has less
/// free space (beyond what a partial download there already holds).
fn check_free_space(dest: &Path, size: u64) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    // SAFETY: `st` is a plain C struct statvfs fills; `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Ok(()); // cannot tell; the write itself will fail cleanly if it must
    }
    let have = st.f_bavail.saturating_mul(st.f_frsize);
    let partial = std::fs::metadata(partial_path(dest))
        .map(|m| m.len())
        .unwrap_or(0);
    let need = size.saturating_sub(partial);
    if need > have {
        return Err(StoreError::NoSpace {
            dir: dir.to_path_buf(),
            need,
            have,
        });
    }
    Ok(())
}

/// Where `download(…, dest, …)` keeps the partial file.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

/// Keys are relative slash-separated paths without empty, `.` or `..` components.
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| {
        Err(StoreError::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if key.is_empty() {
        return bad("it is empty");
    }
    if key.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("it must be relative to the cache root");
    }
    if key.contains(['\\', '\0']) || key.chars().any(char::is_control) {
        return bad("it contains a backslash or control character");
    }
    if key
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("it has an empty, '.' or '..' component");
    }
    if key.split('/').any(|c| c.starts_with(file::TEMP_PREFIX)) {
        return bad("its name is reserved for temporary files");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        for ok in ["nix-cache-info", "abc.narinfo", "nar/x.nar.zst"] {
            validate_key(ok).unwrap();
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "../x",
            "a/./b",
            "a\\b",
            "nar/",
            ".pubdeck-tmp-x",
        ] {
            assert!(validate_key(bad).is_err(), "{bad}");
        }
    }

    /// A refusal quotes the whole line that trusts the endpoint (with what the file trusts
    /// already, since TOML takes the key once) and names the config file it comes from.
    #[tokio::test(flavor = "current_thread")]
    async fn a_refusal_quotes_the_line_that_trusts_the_endpoint() {
        let ep = Endpoint::parse("HTTP://127.0.0.1:9000/").unwrap();
        assert_eq!(
            trusted_endpoints_line(&[], &ep),
            r#"trusted-endpoints = ["http://127.0.0.1:9000"]"#
        );
        let had = [
            "https://MinIO.lan/".to_string(),
            "http://127.0.0.1:9000".into(),
        ];
        assert_eq!(
            trusted_endpoints_line(&had[..1], &ep),
            r#"trusted-endpoints = ["https://minio.lan", "http://127.0.0.1:9000"]"#
        );
        assert_eq!(
            trusted_endpoints_line(&had, &ep),
            r#"trusted-endpoints = ["https://minio.lan", "http://127.0.0.1:9000"]"#
        );

        let url = "s3://cache/team?endpoint=http://127.0.0.1:9000&region=us-east-1";
        let parsed = StoreUrl::parse(url).unwrap();
        assert_eq!(untrusted_endpoint(&parsed, &[]), Some(&ep));
        assert_eq!(untrusted_endpoint(&parsed, &had[1..]), None);
        for other in ["s3://cache?region=eu-west-1", "file:///srv/cache"] {
            assert_eq!(
                untrusted_endpoint(&StoreUrl::parse(other).unwrap(), &[]),
                None
            );
        }
        let refused = |opts: OpenOptions| async move {
            match Store::open_str(url, &opts).await {
                Err(e @ StoreError::UntrustedEndpoint { .. }) => e.to_string(),
                other => panic!("{:?}", other.map(|_| ())),
            }
        };
        let fresh = refused(OpenOptions {
            config_file: Some(PathBuf::from("/home/u/.config/pubdeck/config.toml")),
            ..Default::default()
        })
        .await;
        assert!(
            fresh.ends_with(
                r#"to trust it, add the line `trusted-endpoints = ["http://127.0.0.1:9000"]` at the top of /home/u/.config/pubdeck/config.toml"#
            ),
            "{fresh}"
        );
        let change = refused(OpenOptions {
            trusted_endpoints: had[..1].to_vec(),
            ..Default::default()
        })
        .await;
        assert!(
            change.ends_with(
                r#"make the `trusted-endpoints` line of pubdeck's config file ($XDG_CONFIG_HOME/pubdeck/config.toml) read `trusted-endpoints = ["https://minio.lan", "http://127.0.0.1:9000"]`"#
            ),
            "{change}"
        );
    }

    #[test]
    fn partial_path_is_a_sibling() {
        assert_eq!(
            partial_path(Path::new("/d/x.nar")),
            PathBuf::from("/d/x.nar.part")
        );
    }
}
