//! The S3 upload engine for NARs.
//!
//! - Present with the same size → `Skipped`, nothing sent (keys contain the file hash).
//! - Up to the store's multipart threshold: one PUT, the file streamed from disk as the
//!   client pulls it (a few buffers of memory at any size; not resumable). Above: multipart,
//!   `concurrency` parts in flight, each read with a positioned read into its own buffer
//!   (memory ≈ concurrency × part size).
//! - Bytes are counted as the HTTP client pulls them from the body, so progress is
//!   byte-accurate; a failed attempt's bytes are taken back (see `Meter`).
//! - Each part is retried on transient failures; completed parts go to the journal, so
//!   a killed or interrupted run resumes. A final non-transient failure aborts the upload.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::Length;
use bytes::Bytes;
use futures::StreamExt;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Mutex;

use super::buffers::BufferPool;
use super::journal::{FileIdentity, Journal, JournalPart};
use super::progress::{Meter, Progress, ProgressSink, begin_single};
use super::retry::{Transient, with_retry};
use super::s3::{S3Fail, S3Store};
use super::{PutOptions, PutOutcome, StoreError};

const MIB: u64 = 1024 * 1024;
const MIN_PART: u64 = 5 * MIB;
const MAX_PART: u64 = 5 * 1024 * MIB;
const MAX_PARTS: u64 = 10_000;
const MAX_OBJECT: u64 = 5 * 1024 * 1024 * MIB;
/// Granularity of byte counting in request bodies.
const BODY_CHUNK: usize = 128 * 1024;

/// The part size actually used: at least 5 MiB, and large enough for ≤ 10,000 parts.
pub(crate) fn choose_part_size(size: u64, requested: u64) -> u64 {
    let mut ps = requested.clamp(MIN_PART, MAX_PART);
    let needed = size.div_ceil(MAX_PARTS);
    if ps < needed {
        ps = needed.div_ceil(MIB) * MIB;
    }
    ps
}

fn part_range(part: u32, part_size: u64, size: u64) -> (u64, u64) {
    let start = u64::from(part - 1) * part_size;
    (start, part_size.min(size - start))
}

/// A body of bytes in memory (a part), in frames of [`BODY_CHUNK`] so it is counted finely.
struct Chunks {
    data: Bytes,
    pos: usize,
}

impl Chunks {
    fn of(data: &Bytes) -> Chunks {
        Chunks {
            data: data.clone(),
            pos: 0,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(None);
        }
        let end = (self.pos + BODY_CHUNK).min(self.data.len());
        let chunk = self.data.slice(self.pos..end);
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.pos) as u64)
    }
}

/// A body counted as the HTTP client pulls it (a part in memory, a file streamed from disk).
struct Counted<B> {
    inner: B,
    meter: Arc<Meter>,
    counted: Arc<AtomicU64>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame
            && let Some(data) = f.data_ref()
        {
            let n = data.len() as u64;
            self.counted.fetch_add(n, Ordering::SeqCst);
            self.meter.add(n);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Run one upload attempt with a fresh counting body; failed attempts give their bytes back.
fn counting_stream<B>(inner: B, meter: &Arc<Meter>) -> (ByteStream, Arc<AtomicU64>)
where
    B: Body<Data = Bytes> + Unpin + Send + Sync + 'static,
    B::Error: Into<aws_smithy_types::body::Error>,
{
    let counted = Arc::new(AtomicU64::new(0));
    let body = Counted {
        inner,
        meter: Arc::clone(meter),
        counted: Arc::clone(&counted),
    };
    (ByteStream::new(SdkBody::from_body_1_x(body)), counted)
}

pub(crate) async fn put_file(
    s3: &S3Store,
    key: &str,
    path: &Path,
    opts: &PutOptions,
    progress: &ProgressSink,
) -> Result<PutOutcome, StoreError> {
    let identity = FileIdentity::of(path, opts.content_hash.as_deref())?;
    let size = identity.size;
    let store_id = s3.url().to_string();
    let full = s3.full_key(key);
    let journal_path = opts
        .journal_dir
        .as_ref()
        .map(|d| Journal::path_for(d, &store_id, s3.bucket(), &full, &identity));
    if let Some(dir) = &opts.journal_dir
        && let Err(e) = cleanup_stale(s3, dir, opts.journal_max_age, false).await
    {
        tracing::warn!("could not clean up old upload journals: {e}");
    }

    if s3.head(key).await? == Some(size) {
        if let Some(jp) = &journal_path
            && let Some(j) = Journal::load(jp)?
        {
            let _ = abort_upload(s3, &j.key, &j.upload_id).await;
            Journal::remove(jp)?;
        }
        progress.send(Progress::Skipped {
            key: key.to_owned(),
            size,
        });
        return Ok(PutOutcome::Skipped { size });
    }
    if size > MAX_OBJECT {
        return Err(StoreError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    if size <= s3.multipart_threshold() {
        single_put(s3, key, path, &identity, opts, progress).await
    } else {
        Multipart {
            s3,
            key,
            full,
            path,
            identity,
            journal_path,
            opts,
            progress,
        }
        .run()
        .await
    }
}

/// One PUT with the file streamed from disk as the HTTP client pulls it (memory stays at a
/// few buffers whatever the size); each attempt reads the file again from its start. A file
/// that changed while it was sent is taken back out of the store.
async fn single_put(
    s3: &S3Store,
    key: &str,
    path: &Path,
    identity: &FileIdentity,
    opts: &PutOptions,
    progress: &ProgressSink,
) -> Result<PutOutcome, StoreError> {
    let size = identity.size;
    let (meter, _ticker, started) = begin_single(progress, key, size, 0, true, opts.timing);
    let full = s3.full_key(key);
    let (full, meter_ref) = (&full, &meter);
    with_retry(s3.retry_policy(), progress, Some(1), |_| async move {
        let file = ByteStream::read_from()
            .path(path)
            .length(Length::Exact(size))
            .buffer_size(BODY_CHUNK)
            .build()
            .await
            .map_err(|e| PartFail::Local(StoreError::io("read", path, std::io::Error::other(e))))?;
        let (body, counted) = counting_stream(file.into_inner(), meter_ref);
        let res = s3
            .client()
            .put_object()
            .bucket(s3.bucket())
            .key(full)
            .set_content_type(opts.content_type.clone())
            .content_length(size as i64)
            .body(body)
            .send()
            .await;
        res.map_err(|e| {
            meter_ref.take_back(counted.load(Ordering::SeqCst));
            PartFail::Remote(S3Fail::from(e))
        })
    })
    .await
    .map_err(|f| match f {
        PartFail::Local(e) => e,
        PartFail::Remote(f) => s3.err("PUT", key, f),
    })?;
    if FileIdentity::of(path, identity.content_hash.as_deref())? != *identity {
        let _ = s3.delete(key).await;
        return Err(StoreError::SourceChanged {
            path: path.to_owned(),
            what: "its size or modification time changed while it was sent".into(),
        });
    }
    progress.send(Progress::PartFinished {
        part: 1,
        bytes: size,
    });
    let sent = meter.reported();
    progress.send(Progress::Finished {
        key: key.to_owned(),
        total_bytes: size,
        sent_bytes: sent,
        resumed_bytes: 0,
        elapsed: started.elapsed(),
    });
    Ok(PutOutcome::Uploaded {
        size,
        sent_bytes: sent,
        resumed_bytes: 0,
    })
}

/// Why a part (or a single PUT) failed: locally (file) or at the store.
enum PartFail {
    Local(StoreError),
    Remote(S3Fail),
}

impl Transient for PartFail {
    fn retry_hint(&self) -> Option<super::retry::RetryHint> {
        match self {
            PartFail::Local(_) => None,
            PartFail::Remote(f) => f.retry_hint(),
        }
    }
}

/// What every part of one multipart run shares.
struct PartRun<'a> {
    part_size: u64,
    upload_id: &'a str,
    file: &'a Arc<std::fs::File>,
    pool: &'a Arc<BufferPool>,
    meter: &'a Arc<Meter>,
    journal: &'a Arc<Mutex<Journal>>,
}

struct Multipart<'a> {
    s3: &'a S3Store,
    key: &'a str,
    full: String,
    path: &'a Path,
    identity: FileIdentity,
    journal_path: Option<PathBuf>,
    opts: &'a PutOptions,
    progress: &'a ProgressSink,
}

impl Multipart<'_> {
    async fn run(self) -> Result<PutOutcome, StoreError> {
        match self.run_once().await? {
            Some(done) => Ok(done),
            None => {
                // The journal's upload vanished at the store: start over, once.
                self.remove_journal();
                self.run_once().await?.ok_or_else(|| StoreError::Service {
                    store: self.s3.url().to_string(),
                    op: "UploadPart",
                    key: self.key.to_owned(),
                    detail: "a new multipart upload vanished right after it was created".into(),
                    source: "NoSuchUpload".into(),
                })
            }
        }
    }

    /// `Ok(None)`: a resumed upload id turned out to be gone; the caller starts over.
    async fn run_once(&self) -> Result<Option<PutOutcome>, StoreError> {
        let size = self.identity.size;
        let (journal, resumed_parts, was_resumed) = self.resume_or_create().await?;
        let part_size = journal.part_size;
        let parts = u32::try_from(size.div_ceil(part_size)).unwrap_or(u32::MAX);
        let resumed: u64 = resumed_parts.iter().map(|p| p.size).sum();
        let done: std::collections::HashSet<u32> = resumed_parts.iter().map(|p| p.part).collect();
        let upload_id = journal.upload_id.clone();

        self.progress.send(Progress::Started {
            key: self.key.to_owned(),
            total_bytes: size,
            parts,
            part_size,
            resumed_bytes: resumed,
        });
        let started = Instant::now();
        let meter = Meter::new(self.progress.clone(), size, resumed);
        let ticker = meter.start_ticker(self.opts.timing);
        let file = Arc::new(
            std::fs::File::open(self.path).map_err(|e| StoreError::io("read", self.path, e))?,
        );
        let journal = Arc::new(Mutex::new(journal));
        let concurrency = self.opts.concurrency.max(1);
        let pool = BufferPool::new(part_size as usize, concurrency);

        let remaining: Vec<u32> = (1..=parts).filter(|p| !done.contains(p)).collect();
        let run = PartRun {
            part_size,
            upload_id: &upload_id,
            file: &file,
            pool: &pool,
            meter: &meter,
            journal: &journal,
        };
        let mut stream = futures::stream::iter(
            remaining
                .into_iter()
                .map(|part| self.upload_part(part, &run)),
        )
        .buffer_unordered(concurrency);
        let mut failure = None;
        while let Some(res) = stream.next().await {
            if let Err(e) = res {
                failure = Some(e);
                break;
            }
        }
        drop(stream); // cancels the parts still in flight
        if let Some(fail) = failure {
            drop(ticker);
            if let PartFail::Remote(f) = &fail
                && was_resumed
                && upload_gone(f)
            {
                return Ok(None);
            }
            return Err(self.fail(&upload_id, fail).await);
        }

        // The file must not have changed under us.
        let now = FileIdentity::of(self.path, self.identity.content_hash.as_deref())?;
        if now != self.identity {
            let _ = abort_upload(self.s3, &self.full, &upload_id).await;
            self.remove_journal();
            return Err(StoreError::SourceChanged {
                path: self.path.to_owned(),
                what: "its size or modification time differs".into(),
            });
        }

        let mut completed: Vec<JournalPart> = journal.lock().await.parts.clone();
        completed.sort_by_key(|p| p.part);
        if let Err(f) = self.complete(&upload_id, &completed).await {
            drop(ticker);
            return Err(self.fail(&upload_id, PartFail::Remote(f)).await);
        }
        drop(ticker);
        self.remove_journal();
        let sent = meter.reported();
        self.progress.send(Progress::Finished {
            key: self.key.to_owned(),
            total_bytes: size,
            sent_bytes: sent,
            resumed_bytes: resumed,
            elapsed: started.elapsed(),
        });
        Ok(Some(PutOutcome::Uploaded {
            size,
            sent_bytes: sent,
            resumed_bytes: resumed,
        }))
    }

    fn remove_journal(&self) {
        if let Some(jp) = &self.journal_path
            && let Err(e) = Journal::remove(jp)
        {
            tracing::warn!("{e}");
        }
    }

    /// Load a matching journal and keep the parts the store still has, or start afresh.
    async fn resume_or_create(&self) -> Result<(Journal, Vec<JournalPart>, bool), StoreError> {
        let size = self.identity.size;
        let store_id = self.s3.url().to_string();
        if let Some(jp) = &self.journal_path
            && let Some(j) = Journal::load(jp)?
        {
            let usable = j.file == self.identity
                && j.bucket == self.s3.bucket()
                && j.key == self.full
                && j.store == store_id
                && j.part_size >= MIN_PART
                && size.div_ceil(j.part_size) <= MAX_PARTS;
            if usable {
                match list_parts(self.s3, &self.full, &j.upload_id).await {
                    Ok(listed) => {
                        let keep: Vec<JournalPart> = j
                            .parts
                            .iter()
                            .filter(|p| {
                                let (_, len) = part_range(p.part, j.part_size, size);
                                listed.get(&p.part).is_some_and(|(lsize, letag)| {
                                    *lsize == len
                                        && p.size == len
                                        && letag
                                            .as_deref()
                                            .is_none_or(|e| trim_etag(e) == trim_etag(&p.etag))
                                })
                            })
                            .cloned()
                            .collect();
                        let mut j = j;
                        j.parts = keep.clone();
                        tracing::info!(upload_id = %j.upload_id, parts = keep.len(), "resuming upload");
                        return Ok((j, keep, true));
                    }
                    Err(f) if f.is_no_such_upload() || f.status == Some(404) => {
                        tracing::info!(
                            "the interrupted upload is gone at the store; starting over"
                        );
                    }
                    Err(f) => return Err(self.s3.err("ListParts", self.key, f)),
                }
            } else {
                let _ = abort_upload(self.s3, &j.key, &j.upload_id).await;
            }
            Journal::remove(jp)?;
        }

        let part_size = choose_part_size(size, self.opts.part_size);
        let full = &self.full;
        let out = with_retry(
            self.s3.retry_policy(),
            self.progress,
            None,
            |_| async move {
                self.s3
                    .client()
                    .create_multipart_upload()
                    .bucket(self.s3.bucket())
                    .key(full)
                    .set_content_type(self.opts.content_type.clone())
                    .send()
                    .await
                    .map_err(S3Fail::from)
            },
        )
        .await
        .map_err(|f| self.s3.err("CreateMultipartUpload", self.key, f))?;
        let Some(upload_id) = out.upload_id() else {
            return Err(StoreError::Service {
                store: store_id,
                op: "CreateMultipartUpload",
                key: self.key.to_owned(),
                detail: "the reply had no upload id".into(),
                source: "missing UploadId".into(),
            });
        };
        let mut j = Journal::new(
            &store_id,
            self.s3.bucket(),
            &self.full,
            upload_id,
            part_size,
            self.identity.clone(),
        );
        if let Some(jp) = &self.journal_path {
            j.save(jp)?;
        }
        Ok((j, Vec::new(), false))
    }

    async fn upload_part(&self, part: u32, run: &PartRun<'_>) -> Result<(), PartFail> {
        let PartRun {
            part_size,
            upload_id,
            file,
            pool,
            meter,
            journal,
        } = run;
        let (offset, len) = part_range(part, *part_size, self.identity.size);
        let owned = read_at(file, pool, self.path, offset, len)
            .await
            .map_err(PartFail::Local)?;
        self.progress
            .send(Progress::PartStarted { part, bytes: len });
        let full = &self.full;
        let data = &owned;
        let etag = with_retry(
            self.s3.retry_policy(),
            self.progress,
            Some(part),
            |_| async move {
                let (body, counted) = counting_stream(Chunks::of(data), meter);
                let res = self
                    .s3
                    .client()
                    .upload_part()
                    .bucket(self.s3.bucket())
                    .key(full)
                    .upload_id(*upload_id)
                    .part_number(part as i32)
                    .content_length(len as i64)
                    .body(body)
                    .send()
                    .await;
                match res {
                    Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
                    Err(e) => {
                        meter.take_back(counted.load(Ordering::SeqCst));
                        Err(S3Fail::from(e))
                    }
                }
            },
        )
        .await
        .map_err(PartFail::Remote)?;
        drop(owned); // not needed while the journal is written

        let mut j = journal.lock().await;
        j.parts.retain(|p| p.part != part);
        j.parts.push(JournalPart {
            part,
            etag,
            size: len,
        });
        if let Some(jp) = self.journal_path.clone() {
            let mut snapshot = j.clone();
            // Held across the write so snapshots land in order.
            let res = tokio::task::spawn_blocking(move || snapshot.save(&jp)).await;
            if let Ok(Err(e)) = res {
                tracing::warn!("could not update the upload journal: {e}");
            }
        }
        drop(j);
        self.progress
            .send(Progress::PartFinished { part, bytes: len });
        Ok(())
    }

    async fn complete(&self, upload_id: &str, parts: &[JournalPart]) -> Result<(), S3Fail> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.part as i32)
                            .e_tag(&p.etag)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let full = &self.full;
        let completed = &completed;
        let res = with_retry(
            self.s3.retry_policy(),
            self.progress,
            None,
            |_| async move {
                self.s3
                    .client()
                    .complete_multipart_upload()
                    .bucket(self.s3.bucket())
                    .key(full)
                    .upload_id(upload_id)
                    .multipart_upload(completed.clone())
                    .send()
                    .await
                    .map_err(S3Fail::from)
            },
        )
        .await;
        match res {
            Ok(_) => Ok(()),
            // An earlier attempt may have completed it and lost the reply.
            Err(f) if f.is_no_such_upload() => match self.s3.head(self.key).await {
                Ok(Some(s)) if s == self.identity.size => Ok(()),
                _ => Err(f),
            },
            Err(f) => Err(f),
        }
    }

    /// Final failure: keep a resumable upload after transient trouble, abort otherwise.
    async fn fail(&self, upload_id: &str, fail: PartFail) -> StoreError {
        match fail {
            PartFail::Remote(f) if f.retry_hint().is_some() && self.journal_path.is_some() => {
                let reason = f.retry_hint().map(|h| h.reason).unwrap_or_default();
                StoreError::Interrupted {
                    store: self.s3.url().to_string(),
                    key: self.key.to_owned(),
                    reason,
                    source: Box::new(self.s3.err("UploadPart", self.key, f)),
                }
            }
            other => {
                if let Err(e) = abort_upload(self.s3, &self.full, upload_id).await {
                    tracing::warn!(
                        "could not abort the multipart upload {upload_id}: {}",
                        e.retry_hint().map(|h| h.reason).unwrap_or_default()
                    );
                }
                self.remove_journal();
                match other {
                    PartFail::Local(e) => e,
                    PartFail::Remote(f) => self.s3.err("UploadPart", self.key, f),
                }
            }
        }
    }
}

/// A part upload failing like this means the upload id is unknown to the store
/// (s3s-fs answers AccessDenied for unknown upload ids, AWS NoSuchUpload).
fn upload_gone(f: &S3Fail) -> bool {
    f.is_no_such_upload() || f.status == Some(404) || f.code.as_deref() == Some("AccessDenied")
}

fn trim_etag(e: &str) -> &str {
    e.trim_matches('"')
}

async fn read_at(
    file: &Arc<std::fs::File>,
    pool: &Arc<BufferPool>,
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<Bytes, StoreError> {
    let file = Arc::clone(file);
    let mut buf = pool.take();
    let p = path.to_owned();
    tokio::task::spawn_blocking(
        move || match file.read_exact_at(buf.fill(len as usize), offset) {
            Ok(()) => Ok(buf.freeze()),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(StoreError::SourceChanged {
                    path: p,
                    what: "it became shorter".into(),
                })
            }
            Err(e) => Err(StoreError::io("read", p, e)),
        },
    )
    .await
    .map_err(|e| StoreError::io("read", path, std::io::Error::other(e)))?
}

/// Parts the store holds for an upload: number → (size, ETag if the server lists it).
async fn list_parts(
    s3: &S3Store,
    full: &str,
    upload_id: &str,
) -> Result<HashMap<u32, (u64, Option<String>)>, S3Fail> {
    let mut out = HashMap::new();
    let mut marker: Option<String> = None;
    loop {
        let m = &marker;
        let page = with_retry(
            s3.retry_policy(),
            &ProgressSink::none(),
            None,
            |_| async move {
                s3.client()
                    .list_parts()
                    .bucket(s3.bucket())
                    .key(full)
                    .upload_id(upload_id)
                    .set_part_number_marker(m.clone())
                    .send()
                    .await
                    .map_err(S3Fail::from)
            },
        )
        .await?;
        for p in page.parts() {
            if let Some(n) = p.part_number().and_then(|n| u32::try_from(n).ok()) {
                let size = p.size().map_or(0, |s| s.max(0) as u64);
                out.insert(n, (size, p.e_tag().map(str::to_owned)));
            }
        }
        match page.next_part_number_marker() {
            Some(next) if page.is_truncated() == Some(true) && Some(next) != marker.as_deref() => {
                marker = Some(next.to_owned());
            }
            _ => return Ok(out),
        }
    }
}

async fn abort_upload(s3: &S3Store, full: &str, upload_id: &str) -> Result<(), S3Fail> {
    let res = with_retry(
        s3.retry_policy(),
        &ProgressSink::none(),
        None,
        |_| async move {
            s3.client()
                .abort_multipart_upload()
                .bucket(s3.bucket())
                .key(full)
                .upload_id(upload_id)
                .send()
                .await
                .map_err(S3Fail::from)
        },
    )
    .await;
    match res {
        Ok(_) => Ok(()),
        Err(f) if f.is_no_such_upload() || f.status == Some(404) => Ok(()),
        Err(f) => Err(f),
    }
}

/// Remove this store's journals that are older than `max_age` (aborting their uploads)
/// and, with `check_remote`, those whose upload id the store no longer knows.
pub(crate) async fn cleanup_stale(
    s3: &S3Store,
    dir: &Path,
    max_age: Duration,
    check_remote: bool,
) -> Result<usize, StoreError> {
    let store_id = s3.url().to_string();
    let mut removed = 0;
    for (path, journal) in Journal::list(dir)? {
        let Some(j) = journal else {
            Journal::remove(&path)?;
            removed += 1;
            continue;
        };
        if j.store != store_id || j.bucket != s3.bucket() {
            continue;
        }
        if j.age() > max_age {
            if let Err(f) = abort_upload(s3, &j.key, &j.upload_id).await {
                tracing::warn!(upload_id = %j.upload_id, "could not abort a stale upload: {:?}", f.code);
            }
            Journal::remove(&path)?;
            removed += 1;
        } else if check_remote {
            match list_parts(s3, &j.key, &j.upload_id).await {
                Err(f) if f.is_no_such_upload() || f.status == Some(404) => {
                    Journal::remove(&path)?;
                    removed += 1;
                }
                _ => {}
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_scaling() {
        assert_eq!(choose_part_size(50 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(choose_part_size(50 * MIB, MIB), 5 * MIB);
        // 200 GiB at 8 MiB would need 25,600 parts.
        let big = 200 * 1024 * MIB;
        let ps = choose_part_size(big, 8 * MIB);
        assert!(big.div_ceil(ps) <= MAX_PARTS);
        assert_eq!(ps % MIB, 0);
    }

    #[test]
    fn ranges_cover_the_file() {
        let (size, ps) = (50 * MIB + 3, 8 * MIB);
        let parts = size.div_ceil(ps) as u32;
        let total: u64 = (1..=parts).map(|p| part_range(p, ps, size).1).sum();
        assert_eq!(total, size);
        assert_eq!(part_range(parts, ps, size), (6 * ps, 2 * MIB + 3));
    }
}
