//! `s3://` backend on aws-sdk-s3: client setup, error classification, and the small
//! operations (head, get, conditional put, list, delete, range-resumed download).
//! The NAR upload engine is in `upload.rs`.
//!
//! SDK retries are disabled; every call goes through `retry::with_retry` so retries are
//! visible as progress events and follow one policy.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, ByteStreamError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::error::BoxError;
use super::file::{finish_download, open_partial};
use super::progress::{Meter, Progress, ProgressSink, begin_single};
use super::retry::{RetryHint, RetryPolicy, Transient, parse_retry_after, with_retry};
use super::{
    DownloadOptions, ObjectInfo, OpenOptions, PutIfAbsent, S3Location, StoreError, StoreUrl,
    partial_path,
};

/// An S3 bucket (or a prefix in one) holding the cache root.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    loc: S3Location,
    url: StoreUrl,
    retry: RetryPolicy,
    multipart_threshold: u64,
}

impl S3Store {
    pub async fn open(
        loc: &S3Location,
        url: StoreUrl,
        opts: &OpenOptions,
    ) -> Result<Self, StoreError> {
        // Credentials from the environment or a profile go only to AWS or to an endpoint the
        // user trusts: a catalog owner must not be able to collect readers' keys by pointing
        // the store at a host of hers.
        if opts.credentials.is_none()
            && let Some(ep) = super::untrusted_endpoint(&url, &opts.trusted_endpoints)
        {
            return Err(StoreError::UntrustedEndpoint {
                store: url.to_string(),
                endpoint: ep.to_string(),
                line: super::trusted_endpoints_line(&opts.trusted_endpoints, ep),
                change: !opts.trusted_endpoints.is_empty(),
                config_file: opts.config_file.clone(),
            });
        }
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(opts.connect_timeout.unwrap_or(Duration::from_secs(10)))
            // A response must start within this (body streaming has its own stall checks).
            .read_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        match (&loc.region, &loc.endpoint) {
            (Some(r), _) => loader = loader.region(Region::new(r.clone())),
            // A custom endpoint rarely cares; don't consult the region chain (or IMDS) for it.
            (None, Some(_)) => loader = loader.region(Region::new("us-east-1")),
            (None, None) => {}
        }
        if let Some(p) = &loc.profile {
            loader = loader.profile_name(p);
        }
        if let Some(c) = &opts.credentials {
            loader = loader.credentials_provider(Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                c.session_token.clone(),
                None,
                "pubdeck-explicit",
            ));
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &loc.endpoint {
            b = b.endpoint_url(ep.to_string()).force_path_style(true);
        }
        if sdk.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            loc: loc.clone(),
            url,
            retry: opts.retry,
            multipart_threshold: opts
                .multipart_threshold
                .unwrap_or(super::DEFAULT_MULTIPART_THRESHOLD),
        })
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.loc.bucket
    }

    pub(crate) fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Files up to this size go in one PUT.
    pub(crate) fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    /// The object key in the bucket for a cache key.
    pub(crate) fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.loc.prefix)
    }

    pub(crate) fn err(&self, op: &'static str, key: &str, fail: S3Fail) -> StoreError {
        fail.into_store_error(&self.url.to_string(), &self.loc.bucket, op, key)
    }

    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .head_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await;
        match res {
            Ok(out) => Ok(Some(out.content_length().map_or(0, |l| l.max(0) as u64))),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) if f.status == Some(403) || f.status == Some(400) => {
                // HEAD answers carry no error code; ask with a one-byte GET to learn why.
                self.probe_size(key).await
            }
            Err(f) => Err(self.err("HEAD", key, f)),
        }
    }

    /// Size via `GET bytes=0-0` (whose errors carry a code, unlike HEAD's).
    async fn probe_size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .get_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .range("bytes=0-0")
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await;
        match res {
            Ok(out) => Ok(Some(
                out.content_range()
                    .and_then(|r| r.rsplit('/').next())
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| out.content_length().map_or(0, |l| l.max(0) as u64)),
            )),
            Err(f) if f.status == Some(416) => Ok(Some(0)),
            Err(f) if f.status == Some(404) && f.code.as_deref() != Some("NoSuchBucket") => {
                Ok(None)
            }
            Err(f) => Err(self.err("GET", key, f)),
        }
    }

    /// The object whole, at most `max` bytes (more is `Oversized`, whatever the server says
    /// its length is); `None` when absent.
    async fn get_opt(&self, key: &str, max: u64) -> Result<Option<Bytes>, StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            let mut out = self
                .client
                .get_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .send()
                .await
                .map_err(S3Fail::from)?;
            if out
                .content_length()
                .is_some_and(|n| u64::try_from(n).unwrap_or(u64::MAX) > max)
            {
                return Ok(None);
            }
            let mut buf = Vec::new();
            while let Some(chunk) = out.body.next().await {
                let chunk = chunk.map_err(S3Fail::body)?;
                if (buf.len() + chunk.len()) as u64 > max {
                    return Ok(None);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok::<_, S3Fail>(Some(Bytes::from(buf)))
        })
        .await;
        match res {
            Ok(Some(b)) => Ok(Some(b)),
            Ok(None) => Err(StoreError::Oversized {
                store: self.url.to_string(),
                key: key.to_owned(),
                limit: max,
            }),
            Err(f) if f.status == Some(404) && f.code.as_deref() != Some("NoSuchBucket") => {
                Ok(None)
            }
            Err(f) => Err(self.err("GET", key, f)),
        }
    }

    pub async fn get(&self, key: &str, max: u64) -> Result<Bytes, StoreError> {
        self.get_opt(key, max)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                store: self.url.to_string(),
                key: key.to_owned(),
            })
    }

    pub async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutIfAbsent, StoreError> {
        let compare = |existing: &Bytes| {
            if existing == &bytes {
                PutIfAbsent::SameContent
            } else {
                PutIfAbsent::DifferentContent
            }
        };
        // Look first: servers that ignore If-None-Match then still never get an overwrite
        // except in a race; conforming servers close that race with the 412 below.
        if let Some(existing) = self.get_opt(key, super::MAX_METADATA_BYTES).await? {
            return Ok(compare(&existing));
        }
        let full = self.full_key(key);
        let full = &full;
        let body = &bytes;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .put_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .if_none_match("*")
                .content_length(body.len() as i64)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await;
        match res {
            Ok(_) => Ok(PutIfAbsent::Created),
            Err(f) if f.status == Some(412) => {
                match self.get_opt(key, super::MAX_METADATA_BYTES).await? {
                    Some(existing) => Ok(compare(&existing)),
                    None => Err(self.err("conditional PUT", key, f)),
                }
            }
            Err(f) => Err(self.err("PUT", key, f)),
        }
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full_prefix = self.full_key(prefix);
        let full_prefix = &full_prefix;
        let mut token: Option<String> = None;
        let mut out = Vec::new();
        loop {
            let tok = &token;
            let page = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
                self.client
                    .list_objects_v2()
                    .bucket(&self.loc.bucket)
                    .prefix(full_prefix)
                    .set_continuation_token(tok.clone())
                    .send()
                    .await
                    .map_err(S3Fail::from)
            })
            .await
            .map_err(|f| self.err("LIST", prefix, f))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let Some(rel) = k.strip_prefix(&self.loc.prefix) else {
                    continue;
                };
                if rel.is_empty() || rel.ends_with('/') {
                    continue;
                }
                out.push(ObjectInfo {
                    key: rel.to_owned(),
                    size: obj.size().map_or(0, |s| s.max(0) as u64),
                    modified: obj.last_modified().and_then(to_system_time),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .head_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await;
        match res {
            Ok(out) => Ok(Some(ObjectInfo {
                key: key.to_owned(),
                size: out.content_length().map_or(0, |l| l.max(0) as u64),
                modified: out.last_modified().and_then(to_system_time),
            })),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) => Err(self.err("HEAD", key, f)),
        }
    }

    pub async fn replace(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let body = &bytes;
        with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .put_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .content_length(body.len() as i64)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await
        .map_err(|f| self.err("PUT", key, f))?;
        Ok(())
    }

    /// Copies the object onto itself (metadata replaced), which sets its LastModified.
    pub async fn touch(&self, key: &str) -> Result<bool, StoreError> {
        let full = self.full_key(key);
        let full = &full;
        let source = format!("{}/{}", self.loc.bucket, full);
        let source = &source;
        let res = with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .copy_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .copy_source(source)
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await;
        match res {
            Ok(_) => Ok(true),
            Err(f) if f.status == Some(404) => Ok(false),
            Err(f) => Err(self.err("COPY", key, f)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full_key(key);
        let full = &full;
        with_retry(&self.retry, &ProgressSink::none(), None, |_| async move {
            self.client
                .delete_object()
                .bucket(&self.loc.bucket)
                .key(full)
                .send()
                .await
                .map_err(S3Fail::from)
        })
        .await
        .map_err(|f| self.err("DELETE", key, f))?;
        Ok(())
    }

    pub async fn download(
        &self,
        key: &str,
        dest: &Path,
        opts: &DownloadOptions,
        progress: &ProgressSink,
    ) -> Result<u64, StoreError> {
        let Some(size) = self.head(key).await? else {
            return Err(StoreError::NotFound {
                store: self.url.to_string(),
                key: key.to_owned(),
            });
        };
        if let Some(expected) = opts.expected_size
            && size != expected
        {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                what: format!("it has {size} bytes, {expected} were declared"),
            });
        }
        let partial = partial_path(dest);
        let have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        let resumed = if have <= size { have } else { 0 };
        let (meter, _ticker, started) =
            begin_single(progress, key, size, resumed, false, opts.timing);
        let file = open_partial(&partial, resumed)?;
        let mut file = tokio::fs::File::from_std(file);
        let mut offset = resumed;
        let mut attempt = 1;
        while offset < size {
            match self
                .fetch_range(key, offset, size - offset, &mut file, &partial, &meter)
                .await
            {
                Ok(n) => offset += n,
                Err(RangeFail::Local(e)) => return Err(e),
                Err(RangeFail::Remote(f, n)) => {
                    offset += n;
                    let Some(hint) = f.retry_hint() else {
                        return Err(self.err("GET", key, f));
                    };
                    if attempt >= self.retry.max_attempts || (n == 0 && offset >= size) {
                        return Err(self.err("GET", key, f));
                    }
                    // Progress made in this attempt resets the budget.
                    attempt = if n > 0 { 1 } else { attempt + 1 };
                    let delay = hint
                        .retry_after
                        .unwrap_or_else(|| self.retry.backoff(attempt));
                    progress.send(Progress::Retry {
                        part: None,
                        attempt,
                        delay,
                        reason: hint.reason,
                    });
                    tokio::time::sleep(delay).await;
                }
            }
        }
        file.flush()
            .await
            .and(file.sync_all().await)
            .map_err(|e| StoreError::io("write", &partial, e))?;
        drop(file);
        let (k, d, o) = (key.to_owned(), dest.to_owned(), opts.clone());
        let len = tokio::task::spawn_blocking(move || finish_download(&k, &partial, &d, size, &o))
            .await
            .map_err(|e| StoreError::io("finish", dest, std::io::Error::other(e)))??;
        progress.send(Progress::Finished {
            key: key.to_owned(),
            total_bytes: size,
            sent_bytes: meter.reported(),
            resumed_bytes: resumed,
            elapsed: started.elapsed(),
        });
        Ok(len)
    }

    /// GET `bytes=offset-` and append to `file`; returns bytes written (also on failure).
    async fn fetch_range(
        &self,
        key: &str,
        offset: u64,
        left: u64,
        file: &mut tokio::fs::File,
        path: &Path,
        meter: &Arc<Meter>,
    ) -> Result<u64, RangeFail> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.loc.bucket)
            .key(self.full_key(key));
        if offset > 0 {
            req = req.range(format!("bytes={offset}-"));
        }
        let mut out = req
            .send()
            .await
            .map_err(|e| RangeFail::Remote(e.into(), 0))?;
        if offset > 0 && out.content_range().is_none() {
            return Err(RangeFail::Local(StoreError::Corrupt {
                key: key.to_owned(),
                what: "the server ignored the Range request, so the partial download can't be resumed; delete it".into(),
            }));
        }
        let mut written = 0u64;
        loop {
            match out.body.next().await {
                None => return Ok(written),
                Some(Ok(chunk)) => {
                    if written + chunk.len() as u64 > left {
                        return Err(RangeFail::Local(StoreError::Corrupt {
                            key: key.to_owned(),
                            what: "the server sent more bytes than the object has".into(),
                        }));
                    }
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| RangeFail::Local(StoreError::io("write", path, e)))?;
                    written += chunk.len() as u64;
                    meter.add(chunk.len() as u64);
                }
                Some(Err(e)) => return Err(RangeFail::Remote(S3Fail::body(e), written)),
            }
        }
    }
}

enum RangeFail {
    Local(StoreError),
    Remote(S3Fail, u64),
}

/// What went wrong with one S3 call, flattened from the SDK's generic error.
#[derive(Debug)]
pub(crate) struct S3Fail {
    pub status: Option<u16>,
    pub code: Option<String>,
    message: Option<String>,
    kind: FailKind,
    retry_after: Option<Duration>,
    source: BoxError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailKind {
    Service,
    Timeout,
    Network,
    NoCredentials,
    Response,
    Body,
    Local,
}

const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ConditionalRequestConflict",
];
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "NotSignedUp",
];

fn chain_has_credentials_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The innermost cause's message, e.g. "Connection refused (os error 111)".
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl<E> From<SdkError<E, HttpResponse>> for S3Fail
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn from(err: SdkError<E, HttpResponse>) -> Self {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let retry_after = err
            .raw_response()
            .and_then(|r| r.headers().get("retry-after"))
            .and_then(parse_retry_after);
        let code = err.code().map(str::to_owned);
        let message = err.message().map(str::to_owned);
        let kind = match &err {
            _ if chain_has_credentials_error(&err) => FailKind::NoCredentials,
            SdkError::ServiceError(_) => FailKind::Service,
            SdkError::TimeoutError(_) => FailKind::Timeout,
            SdkError::DispatchFailure(d) if d.is_user() => FailKind::Local,
            SdkError::DispatchFailure(d) if d.is_timeout() => FailKind::Timeout,
            SdkError::DispatchFailure(_) => FailKind::Network,
            SdkError::ResponseError(_) => FailKind::Response,
            _ => FailKind::Local,
        };
        S3Fail {
            status,
            code,
            message,
            kind,
            retry_after,
            source: Box::new(err),
        }
    }
}

impl S3Fail {
    pub(crate) fn body(err: ByteStreamError) -> Self {
        S3Fail {
            status: None,
            code: None,
            message: None,
            kind: FailKind::Body,
            retry_after: None,
            source: Box::new(err),
        }
    }

    pub(crate) fn is_no_such_upload(&self) -> bool {
        self.code.as_deref() == Some("NoSuchUpload")
    }

    fn describe(&self) -> String {
        match (&self.code, &self.message, self.status) {
            (Some(c), Some(m), _) if !m.is_empty() => format!("{c}: {m}"),
            (Some(c), _, _) => c.clone(),
            (None, _, Some(s)) => format!("HTTP {s}"),
            (None, _, None) => root_cause(self.source.as_ref()),
        }
    }

    pub(crate) fn into_store_error(
        self,
        store: &str,
        bucket: &str,
        op: &'static str,
        key: &str,
    ) -> StoreError {
        let store = store.to_owned();
        let code = self.code.as_deref().unwrap_or("");
        if self.kind == FailKind::NoCredentials {
            return StoreError::NoCredentials {
                store,
                source: self.source,
            };
        }
        if CREDENTIAL_CODES.contains(&code) {
            return StoreError::Credentials {
                store,
                code: code.to_owned(),
                source: self.source,
            };
        }
        if code == "NoSuchBucket" {
            return StoreError::NoSuchBucket {
                store,
                bucket: bucket.to_owned(),
                source: self.source,
            };
        }
        if code == "AccessDenied" || (self.status == Some(403) && code.is_empty()) {
            return StoreError::PermissionDenied {
                store,
                op,
                key: key.to_owned(),
                source: self.source,
            };
        }
        match self.kind {
            FailKind::Network | FailKind::Timeout => StoreError::Unreachable {
                store,
                reason: if self.kind == FailKind::Timeout {
                    "the connection timed out".to_owned()
                } else {
                    root_cause(self.source.as_ref())
                },
                source: self.source,
            },
            _ => StoreError::Service {
                store,
                op,
                key: key.to_owned(),
                detail: self.describe(),
                source: self.source,
            },
        }
    }
}

impl Transient for S3Fail {
    fn retry_hint(&self) -> Option<RetryHint> {
        let transient = match self.kind {
            FailKind::Timeout | FailKind::Network | FailKind::Response | FailKind::Body => true,
            FailKind::Service => {
                let status = self.status.unwrap_or(0);
                status >= 500
                    || status == 429
                    || self
                        .code
                        .as_deref()
                        .is_some_and(|c| TRANSIENT_CODES.contains(&c))
            }
            FailKind::NoCredentials | FailKind::Local => false,
        };
        transient.then(|| RetryHint {
            reason: self.describe(),
            retry_after: self.retry_after,
        })
    }
}

fn to_system_time(t: &aws_smithy_types::DateTime) -> Option<std::time::SystemTime> {
    std::time::SystemTime::try_from(*t).ok()
}
