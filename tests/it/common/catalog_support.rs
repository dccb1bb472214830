//! Test support for the catalog suite: a catalog fixture (service on SQLite, service on
//! PostgreSQL when `PUBDECK_TEST_PG_URL` is set, embedded), signing keys and sample builds.
#![allow(dead_code)]

use super::skip;

/// Runs each named `async fn(Fixture)` on every backend.
#[allow(unused_macros)]
macro_rules! on_all_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_service { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fx) = super::Fixture::start(super::Kind::SqliteService).await { super::$name(fx).await }
            }
        )* }
        mod postgres_service { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fx) = super::Fixture::start(super::Kind::PostgresService).await { super::$name(fx).await }
            }
        )* }
        mod embedded { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fx) = super::Fixture::start(super::Kind::Embedded).await { super::$name(fx).await }
            }
        )* }
    };
}

/// Runs each named `async fn(Fixture)` on the HTTP service backends only.
#[allow(unused_macros)]
macro_rules! on_services {
    ($($name:ident),* $(,)?) => {
        mod sqlite_http { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fx) = super::Fixture::start(super::Kind::SqliteService).await { super::$name(fx).await }
            }
        )* }
        mod postgres_http { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fx) = super::Fixture::start(super::Kind::PostgresService).await { super::$name(fx).await }
            }
        )* }
    };
}

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use pubdeck::catalog::embedded::CatalogBackend;
use pubdeck::catalog::{AnyCatalog, CatalogClient, NewBuild};
use pubdeck::nix::sign::{self, SecretKey};
use pubdeck::nix::{Sha256Hash, StorePath};
use pubdeck::server::Server;

/// An ed25519 key in Nix's format, derived from a seed byte so tests are repeatable.
pub struct TestKey {
    pub name: String,
    sk: SecretKey,
}

impl TestKey {
    pub fn new(name: &str, seed: u8) -> TestKey {
        use base64::Engine as _;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let text = format!(
            "{name}:{}",
            base64::engine::general_purpose::STANDARD.encode(sk.to_keypair_bytes())
        );
        TestKey {
            name: name.to_string(),
            sk: SecretKey::parse(&text).expect("a valid key"),
        }
    }

    /// `name:base64(public key)`.
    pub fn public(&self) -> String {
        self.sk.public().to_nix_string()
    }

    /// Signs a build's fingerprint, setting `signature` and `key_name`.
    pub fn sign(&self, b: &mut NewBuild) {
        let path = StorePath::parse(&b.store_path).expect("valid store path");
        let hash = Sha256Hash::parse(&b.nar_hash).expect("valid hash");
        let refs: Vec<StorePath> = b
            .references
            .iter()
            .map(|r| {
                StorePath::parse(r)
                    .or_else(|_| StorePath::from_base_name(r))
                    .unwrap()
            })
            .collect();
        let fp = sign::fingerprint(&path, &hash, b.nar_size, &refs);
        b.signature = self.sk.sign(fp.as_bytes()).to_string();
        b.key_name = self.name.clone();
    }
}

/// A signed sample build whose NAR hash derives from `content`, with the store path that
/// follows from it.
pub fn build(key: &TestKey, org: &str, pkg: &str, version: &str, content: &str) -> NewBuild {
    let nar_hash = Sha256Hash::of(content.as_bytes());
    let path =
        StorePath::from_nar_hash(&nar_hash, &format!("{pkg}-{version}"), &[]).expect("valid name");
    let mut b = NewBuild {
        org: org.into(),
        package: pkg.into(),
        version: version.into(),
        description: format!("{pkg} built from {content}"),
        system: "x86_64-linux".into(),
        store_path: path.to_string(),
        narinfo_url: format!("file:///tmp/store/{}.narinfo", path.hash_part()),
        nar_hash: nar_hash.to_string(),
        nar_size: 1000 + content.len() as u64,
        references: vec![],
        signature: String::new(),
        key_name: String::new(),
        source_url: "https://example.invalid/org/repo.git".into(),
        revision: hex::encode(&Sha256Hash::of(version.as_bytes()).0[..20]),
        branch: "main".into(),
        build_name: pkg.into(),
        installed_packages: vec!["hello".into(), "jq".into()],
        ca: format!("fixed:r:{nar_hash}"),
        closure: vec![],
        ..Default::default()
    };
    key.sign(&mut b);
    b
}

/// Which catalog implementation a fixture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SqliteService,
    PostgresService,
    Embedded,
}

/// A running catalog with helpers to act as different users.
pub struct Fixture {
    pub kind: Kind,
    pub tmp: tempfile::TempDir,
    pub db_url: String,
    pub backend: Arc<CatalogBackend>,
    pub addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    pg: Option<(String, String)>,
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

async fn start_server(
    db_url: &str,
    flox: pubdeck::server::flox::FloxOptions,
) -> (
    Arc<CatalogBackend>,
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), db_url)
        .await
        .expect("service starts")
        .with_flox(flox);
    let addr = server.local_addr().unwrap();
    let backend = Arc::clone(server.backend());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    (backend, addr, tx, task)
}

/// The name of the running test (the thread's name under the libtest harness).
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a catalog test")
        .to_string()
}

fn pg_admin_url() -> Option<String> {
    std::env::var("PUBDECK_TEST_PG_URL")
        .ok()
        .filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

fn with_database(url: &str, db: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("PUBDECK_TEST_PG_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

impl Fixture {
    /// Starts a fixture; `None` (test skipped) for PostgreSQL without `PUBDECK_TEST_PG_URL`.
    pub async fn start(kind: Kind) -> Option<Fixture> {
        Self::start_with(kind, Default::default()).await
    }

    /// [`Fixture::start`] with options for Flox's routes (an upstream, how stores open).
    pub async fn start_with(
        kind: Kind,
        flox: pubdeck::server::flox::FloxOptions,
    ) -> Option<Fixture> {
        let tmp = tempfile::tempdir().unwrap();
        let mut pg = None;
        let db_url = match kind {
            Kind::SqliteService => {
                format!("sqlite://{}", tmp.path().join("service.sqlite").display())
            }
            Kind::Embedded => tmp.path().join("catalog.sqlite").display().to_string(),
            Kind::PostgresService => {
                let Some(admin) = pg_admin_url() else {
                    skip::skip_or_fail(
                        &format!("the PostgreSQL run of {}", current_test()),
                        "PUBDECK_TEST_PG_URL is not set (scripts/pg-test-server.sh start prints one)",
                        &[],
                    );
                    return None;
                };
                let name = format!("pdk_test_{}", hex::encode(rand::random::<[u8; 6]>()));
                sqlx::any::install_default_drivers();
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("connect to PUBDECK_TEST_PG_URL");
                sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                let url = with_database(&admin, &name);
                pg = Some((admin, name));
                url
            }
        };
        let (backend, addr, stop, task) = match kind {
            Kind::Embedded => (
                CatalogBackend::connect(&db_url).await.unwrap(),
                None,
                None,
                None,
            ),
            _ => {
                let (b, a, s, t) = start_server(&db_url, flox).await;
                (b, Some(a), Some(s), Some(t))
            }
        };
        Some(Fixture {
            kind,
            tmp,
            db_url,
            backend,
            addr,
            stop,
            task,
            pg,
            tokens: Default::default(),
        })
    }

    pub fn is_service(&self) -> bool {
        self.kind != Kind::Embedded
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr.expect("a service fixture"))
    }

    /// Creates a user once; returns its token (empty for embedded catalogs).
    pub async fn add_user(&self, name: &str) -> String {
        if let Some(t) = self.tokens.lock().unwrap().get(name) {
            return t.clone();
        }
        let token = match self.kind {
            Kind::Embedded => {
                self.backend.db().ensure_user(name).await.unwrap();
                String::new()
            }
            _ => self.backend.db().add_user(name).await.unwrap(),
        };
        self.tokens
            .lock()
            .unwrap()
            .insert(name.to_string(), token.clone());
        token
    }

    /// The catalog as `name` (created if needed).
    pub async fn user(&self, name: &str) -> AnyCatalog {
        let token = self.add_user(name).await;
        self.as_token(name, &token)
    }

    /// The catalog as an existing user with this token.
    pub fn as_token(&self, name: &str, token: &str) -> AnyCatalog {
        match self.kind {
            Kind::Embedded => AnyCatalog::Embedded(self.backend.as_user(name)),
            _ => AnyCatalog::Remote(
                CatalogClient::new(&self.base_url(), Some(token.to_string())).unwrap(),
            ),
        }
    }

    /// Stops the service (graceful) or drops the embedded pool, then starts again on the
    /// same database.
    pub async fn restart(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.backend.db().close().await;
        match self.kind {
            Kind::Embedded => {
                self.backend = CatalogBackend::connect(&self.db_url).await.unwrap();
            }
            _ => {
                let (b, a, s, t) = start_server(&self.db_url, Default::default()).await;
                self.backend = b;
                self.addr = Some(a);
                self.stop = Some(s);
                self.task = Some(t);
            }
        }
    }

    /// Stops everything and drops a PostgreSQL test database.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.backend.db().close().await;
        if let Some((admin, name)) = self.pg.take()
            && let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await
        {
            let _ = sqlx::Executor::execute(
                &mut conn,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
            )
            .await;
        }
    }
}

/// Outcomes of concurrent registrations: how many were created, already published, and
/// refused as a conflict.
pub fn tally(
    results: &[Result<pubdeck::catalog::RegisterStatus, pubdeck::catalog::CatalogError>],
) -> (usize, usize, usize) {
    use pubdeck::catalog::{CatalogError, RegisterStatus};
    let count = |f: &dyn Fn(&Result<RegisterStatus, CatalogError>) -> bool| {
        results.iter().filter(|r| f(r)).count()
    };
    (
        count(&|r| matches!(r, Ok(RegisterStatus::Created))),
        count(&|r| matches!(r, Ok(RegisterStatus::AlreadyPublished))),
        count(&|r| matches!(r, Err(CatalogError::Conflict(_)))),
    )
}
