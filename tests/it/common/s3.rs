//! An in-process s3s-fs server on 127.0.0.1 for tests (real SigV4 auth, data on disk).
//!
//! `TestS3::start().await` serves a fresh temp directory with bucket `cache` on a random
//! port. `stop()` drops the listener and every open connection; `restart()` serves the
//! same directory on the same port again. `set_part_delay` slows down UploadPart
//! requests, `set_put_delay` PutObject ones, so a test can interrupt an upload midway.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

pub const ACCESS_KEY: &str = "devkey";
pub const SECRET_KEY: &str = "devsecret";
pub const BUCKET: &str = "cache";

pub struct TestS3 {
    pub addr: SocketAddr,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<CancellationToken>,
    task: Option<tokio::task::JoinHandle<()>>,
    part_delay_ms: Arc<AtomicU64>,
    put_delay_ms: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Delayed {
    inner: S3Service,
    part_delay_ms: Arc<AtomicU64>,
    put_delay_ms: Arc<AtomicU64>,
    root: PathBuf,
}

/// The upload id of a ListParts request (`GET …?uploadId=…`).
fn list_parts_upload_id(req: &hyper::Request<Incoming>) -> Option<String> {
    if req.method() != hyper::Method::GET {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("uploadId="))
        .map(str::to_owned)
}

type Resp = <S3Service as Service<hyper::Request<Incoming>>>::Response;
type Err = <S3Service as Service<hyper::Request<Incoming>>>::Error;

impl Service<hyper::Request<Incoming>> for Delayed {
    type Response = Resp;
    type Error = Err;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Resp, Err>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let is_part = req.method() == hyper::Method::PUT
            && req.uri().query().is_some_and(|q| q.contains("partNumber="));
        let is_put_object = req.method() == hyper::Method::PUT
            && req
                .uri()
                .query()
                .is_none_or(|q| q.is_empty() || q.starts_with("x-id=PutObject"));
        let delay = if is_part {
            self.part_delay_ms.load(Ordering::SeqCst)
        } else if is_put_object {
            self.put_delay_ms.load(Ordering::SeqCst)
        } else {
            0
        };
        let inner = self.inner.clone();
        // s3s-fs lists no parts for an upload id it does not know; AWS answers NoSuchUpload,
        // which is what the client's resume logic relies on. Answer as AWS does.
        let unknown_upload = list_parts_upload_id(&req).filter(|id| {
            id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
                && !self.root.join(format!(".upload-{id}.json")).exists()
        });
        Box::pin(async move {
            if unknown_upload.is_some() {
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message></Error>";
                let resp = hyper::Response::builder()
                    .status(404)
                    .header("content-type", "application/xml")
                    .body(s3s::Body::from(body.to_string()))
                    .expect("a static response");
                return Ok(resp);
            }
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            Service::call(&inner, req).await
        })
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(128)
}

impl TestS3 {
    /// Serve a fresh data directory with the bucket `cache`.
    pub async fn start() -> TestS3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket dir");
        let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut s = TestS3 {
            addr,
            root,
            _dir: dir,
            stop: None,
            task: None,
            part_delay_ms: Arc::new(AtomicU64::new(0)),
            put_delay_ms: Arc::new(AtomicU64::new(0)),
        };
        s.serve(listener);
        s
    }

    fn serve(&mut self, listener: TcpListener) {
        let fs = s3s_fs::FileSystem::new(&self.root).expect("s3s-fs root");
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let svc = Delayed {
            inner: b.build(),
            part_delay_ms: Arc::clone(&self.part_delay_ms),
            put_delay_ms: Arc::clone(&self.put_delay_ms),
            root: self.root.clone(),
        };
        let token = CancellationToken::new();
        let t = token.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((sock, _)) => sock,
                        Err(_) => continue,
                    },
                    () = t.cancelled() => break,
                };
                let svc = svc.clone();
                let t = t.clone();
                tokio::spawn(async move {
                    let builder = ConnBuilder::new(TokioExecutor::new());
                    let conn = builder.serve_connection(TokioIo::new(sock), svc);
                    tokio::select! {
                        _ = conn => {}
                        () = t.cancelled() => {}
                    }
                });
            }
        }));
        self.stop = Some(token);
    }

    /// `s3://cache?endpoint=http://127.0.0.1:PORT&region=us-east-1`
    pub fn url(&self) -> String {
        self.url_for(BUCKET)
    }

    pub fn url_for(&self, bucket: &str) -> String {
        format!(
            "s3://{bucket}?endpoint=http://{}&region=us-east-1",
            self.addr
        )
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A config home (for `XDG_CONFIG_HOME`) whose pubdeck config trusts this server with
    /// the AWS credentials of the environment.
    pub fn trusting_config_home(&self, dir: &std::path::Path) -> PathBuf {
        let home = dir.join("config-home");
        std::fs::create_dir_all(home.join("pubdeck")).unwrap();
        std::fs::write(
            home.join("pubdeck/config.toml"),
            format!("trusted-endpoints = [\"{}\"]\n", self.endpoint()),
        )
        .unwrap();
        home
    }

    pub fn credentials() -> pubdeck::store::StaticCredentials {
        pubdeck::store::StaticCredentials {
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            session_token: None,
        }
    }

    pub fn open_options() -> pubdeck::store::OpenOptions {
        pubdeck::store::OpenOptions {
            credentials: Some(Self::credentials()),
            ..Default::default()
        }
    }

    /// Where s3s-fs keeps an object's bytes.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// Sleep this long before handling each UploadPart request.
    pub fn set_part_delay(&self, d: Duration) {
        self.part_delay_ms.store(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Sleep this long before handling each PutObject request (the body waits unread).
    pub fn set_put_delay(&self, d: Duration) {
        self.put_delay_ms.store(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Stop listening and drop every open connection.
    pub async fn stop(&mut self) {
        if let Some(t) = self.stop.take() {
            t.cancel();
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serve the same data directory on the same port again.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut tries = 0;
        let listener = loop {
            match bind(self.addr) {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if let Some(t) = self.stop.take() {
            t.cancel();
        }
    }
}
