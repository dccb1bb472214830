//! The real [`Backend`]: the workbench driving the engine (git checks, the publish pipeline,
//! clean builds, the catalog, install). Every call returns at once and reports back through
//! actions, so the UI thread never waits on I/O. This is an adapter only: each method calls
//! one engine function and hands its typed result to the app.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::backend::{ActionTx, Backend, forward_events};
use super::model::{BuildRow, JobKind, JobOutcome, PackageDetails, PackageList, SystemBuild};
use crate::build::BuildError;
use crate::catalog::mirror::{MirrorUpdate, PackageMirror};
use crate::catalog::{AnyCatalog, Catalog};
use crate::config::Settings;
use crate::event::{Event, Failure, Hinted};
use crate::install::{self, PackageRef};
use crate::manifest::Env;
use crate::publish::{self, Plan, PublishError};
use crate::store::OpenOptions;

/// Where the workbench works and with what.
#[derive(Clone)]
pub struct EngineBackend {
    /// The environment directory.
    pub dir: PathBuf,
    pub catalog: AnyCatalog,
    pub settings: Settings,
    pub store_open: OpenOptions,
    job: Arc<Mutex<Option<CancellationToken>>>,
    /// Where the answer to the running publish's review goes.
    review: Arc<Mutex<Option<tokio::sync::oneshot::Sender<publish::ReviewAnswer>>>>,
    /// The package listing held for the Catalog tab, refreshed with only what changed.
    mirror: Arc<tokio::sync::Mutex<PackageMirror>>,
}

impl EngineBackend {
    pub fn new(dir: PathBuf, catalog: AnyCatalog, settings: Settings) -> EngineBackend {
        EngineBackend {
            dir,
            catalog,
            store_open: settings.store_open(),
            settings,
            job: Arc::default(),
            review: Arc::default(),
            mirror: Arc::default(),
        }
    }

    /// A fresh cancellation token for a new job (cancelling any previous one).
    fn start_job(&self) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some(old) = self.job.lock().expect("job lock").replace(token.clone()) {
            old.cancel();
        }
        token
    }

    fn request(&self, package: &str) -> Result<install::Request, Failure> {
        let pkg = PackageRef::parse(package).map_err(|e| e.failure())?;
        let mut req = install::Request::new(pkg, &self.dir, &self.settings.data_dir);
        req.store_open = self.store_open.clone();
        req.catalog_label = self.settings.catalog_label();
        if self.settings.nix.is_some() {
            req.nix = install::NixStore::choose(self.settings.nix);
        }
        Ok(req)
    }
}

async fn send(tx: &ActionTx, a: Action) {
    let _ = tx.send(a).await;
}

/// How a publish ended, as the app sees it.
fn publish_outcome(r: Result<publish::Published, PublishError>) -> JobOutcome {
    match r {
        Ok(p) => JobOutcome::Published(Box::new(p)),
        Err(
            PublishError::Cancelled
            | PublishError::Declined
            | PublishError::Build(BuildError::Cancelled { .. }),
        ) => JobOutcome::Cancelled,
        Err(e) => JobOutcome::Failed(e.failure()),
    }
}

/// How a build-only job ended, as the app sees it.
fn build_outcome(r: Result<crate::build::Kept, BuildError>) -> JobOutcome {
    match r {
        Ok(k) => JobOutcome::Built(k),
        Err(BuildError::Cancelled { .. }) => JobOutcome::Cancelled,
        Err(e) => JobOutcome::Failed(e.failure()),
    }
}

impl Backend for EngineBackend {
    fn builds(&self) -> Vec<BuildRow> {
        match Env::find(&self.dir).and_then(|e| e.manifest()) {
            Ok(m) => super::model::build_rows(&m),
            Err(_) => Vec::new(),
        }
    }

    fn run_checks(&self, build: Option<String>, fetch: bool, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            let report = tokio::task::spawn_blocking(move || {
                let opts = crate::git::Options {
                    fetch,
                    ..Default::default()
                };
                crate::git::evaluate(&dir, build.as_deref(), &opts)
            })
            .await;
            match report {
                Ok(report) => send(&tx, Action::Checks(report.checks)).await,
                Err(e) => {
                    let f = Failure::new(format!("the checks failed to run: {e}"), None);
                    send(&tx, Action::Error(f)).await
                }
            }
        });
    }

    fn publish(&self, build: String, tx: &ActionTx) {
        let cancel = self.start_job();
        let mut plan = Plan::configured(&self.dir, &build, &self.settings);
        plan.store_open = self.store_open.clone();
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        // The workbench always reviews before uploading.
        let (answer, gate) = publish::review_gate();
        *self.review.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        tokio::spawn(async move {
            let (etx, erx) = crate::event::channel();
            let fwd = tokio::spawn(forward_events(erx, tx.clone()));
            let r = publish::run_reviewed(&plan, &catalog, &etx, &cancel, Some(gate)).await;
            drop(etx);
            let _ = fwd.await;
            let outcome = publish_outcome(r);
            send(
                &tx,
                Action::JobFinished {
                    kind: JobKind::Publish,
                    build,
                    outcome,
                },
            )
            .await;
        });
    }

    fn build_only(&self, build: String, tx: &ActionTx) {
        let cancel = self.start_job();
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            let (etx, erx) = crate::event::channel();
            let fwd = tokio::spawn(forward_events(erx, tx.clone()));
            let r = match Env::find(&dir) {
                Ok(env) => crate::build::build_and_keep(&env, &build, None, &etx, &cancel).await,
                Err(e) => Err(BuildError::Prepare {
                    message: e.to_string(),
                    hint: e.hint(),
                    excerpt: Vec::new(),
                }),
            };
            drop(etx);
            let _ = fwd.await;
            let outcome = build_outcome(r);
            send(
                &tx,
                Action::JobFinished {
                    kind: JobKind::BuildOnly,
                    build,
                    outcome,
                },
            )
            .await;
        });
    }

    fn cancel(&self) {
        if let Some(t) = self.job.lock().expect("job lock").take() {
            t.cancel();
        }
    }

    fn push(&self, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            let r = crate::git::push_current_branch(&dir)
                .await
                .map_err(|e| e.failure());
            send(&tx, Action::PushFinished(r)).await;
        });
    }

    fn commit_bump(&self, build: String, version: String, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            // The file the version lives in: the manifest, or what version.file names.
            let file = Env::find(&dir).and_then(|env| {
                let m = env.manifest()?;
                Ok(match m.build(&build).and_then(|b| b.version.clone()) {
                    Some(crate::manifest::VersionSpec::File(f)) => m.env_dir().join(f),
                    _ => env.manifest_path(),
                })
            });
            let result = match file {
                Ok(file) => crate::git::commit_and_push(&dir, &file, &format!("{build} {version}"))
                    .await
                    .map_err(|e| e.failure()),
                Err(e) => Err(e.failure()),
            };
            send(
                &tx,
                Action::BumpCommitted {
                    build,
                    version,
                    result,
                },
            )
            .await;
        });
    }

    fn set_version(&self, build: String, version: String, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            let (b, v) = (build.clone(), version.clone());
            let r = tokio::task::spawn_blocking(move || {
                Env::find(&dir)
                    .and_then(|e| e.manifest())
                    .and_then(|m| m.set_version(&b, &v))
                    .map(|_| v)
                    .map_err(|e| e.failure())
            })
            .await
            .unwrap_or_else(|e| Err(Failure::new(e.to_string(), None)));
            send(&tx, Action::VersionSet { build, result: r }).await;
        });
    }

    fn save_log(&self, build: String, lines: Vec<String>, tx: &ActionTx) {
        let (dir, tx) = (self.settings.data_dir.join("logs"), tx.clone());
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || {
                crate::build::save_log(&dir, &build, &lines).map_err(|e| {
                    Failure::new(
                        format!("cannot write the log into {}: {e}", dir.display()),
                        None,
                    )
                })
            })
            .await
            .unwrap_or_else(|e| Err(Failure::new(e.to_string(), None)));
            send(&tx, Action::LogSaved(r)).await;
        });
    }

    fn load_packages(&self, etag: Option<String>, tx: &ActionTx) {
        let (catalog, mirror, tx) = (self.catalog.clone(), Arc::clone(&self.mirror), tx.clone());
        tokio::spawn(async move {
            let mut mirror = mirror.lock().await;
            let a = match mirror.refresh(&catalog).await {
                // The caller holds what the mirror holds.
                Ok(MirrorUpdate::Unchanged) if etag.as_deref() == mirror.etag() => {
                    Action::PackagesUnchanged
                }
                Ok(_) => Action::Packages {
                    packages: PackageList::new(Arc::clone(mirror.index())),
                    etag: mirror.etag().map(str::to_string),
                },
                Err(e) => Action::PackagesFailed(e.failure()),
            };
            drop(mirror);
            send(&tx, a).await;
        });
    }

    fn package_details(&self, package: String, tx: &ActionTx) {
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        tokio::spawn(async move {
            let r = match PackageRef::parse(&package) {
                Ok(p) => catalog.show(&p.org, &p.package).await,
                Err(e) => Err(e),
            };
            let a = match r {
                Ok(d) => Action::Details(details(d)),
                Err(e) => Action::Error(e.failure()),
            };
            send(&tx, a).await;
        });
    }

    fn readiness(&self, package: String, tx: &ActionTx) {
        let me = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let a = match me.request(&package) {
                Ok(req) => {
                    let r = install::ready(&req, &me.catalog).await;
                    Action::Readiness {
                        package,
                        checks: r.checks,
                    }
                }
                Err(e) => Action::Error(e),
            };
            send(&tx, a).await;
        });
    }

    fn install(&self, package: String, tx: &ActionTx) {
        let me = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let req = match me.request(&package) {
                Ok(r) => r,
                Err(e) => {
                    let result = Err(e);
                    send(&tx, Action::InstallFinished { package, result }).await;
                    return;
                }
            };
            let (etx, mut erx) = crate::event::channel();
            let (p2, tx2) = (package.clone(), tx.clone());
            let fwd = tokio::spawn(async move {
                while let Some(e) = erx.recv().await {
                    if let Event::Transfer { sent, total, .. } = e {
                        let a = Action::InstallProgress {
                            package: p2.clone(),
                            done: sent,
                            total: Some(total),
                        };
                        send(&tx2, a).await;
                    }
                }
            });
            let r = install::install(&req, &me.catalog, &etx).await;
            drop(etx);
            let _ = fwd.await;
            let result = r.map_err(|e| e.failure());
            send(&tx, Action::InstallFinished { package, result }).await;
        });
    }

    fn answer_review(&self, answer: publish::ReviewAnswer) {
        if let Some(tx) = self.review.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(answer);
        }
    }

    fn yank(&self, package: String, version: String, yanked: bool, tx: &ActionTx) {
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        tokio::spawn(async move {
            let result = match PackageRef::parse(&package) {
                Ok(p) => catalog.yank(&p.org, &p.package, &version, yanked).await,
                Err(e) => Err(e),
            }
            .map_err(|e| e.failure());
            send(&tx, Action::YankFinished { package, result }).await;
        });
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        match git2::Repository::discover(&self.dir) {
            Ok(r) => r
                .workdir()
                .map(|w| vec![w.to_path_buf()])
                .unwrap_or_default(),
            Err(_) => vec![self.dir.join(".flox")],
        }
    }
}

/// The catalog's answer to `show`, as the details pane shows it.
fn details(d: crate::catalog::PackageDetail) -> PackageDetails {
    let builds = d
        .versions
        .iter()
        .flat_map(|v| v.builds.iter())
        .map(|b| SystemBuild {
            version: b.version.clone(),
            system: b.system.clone(),
            store_path: b.store_path.clone(),
            publisher: b.published_by.clone(),
            published_at: b.published_at.clone(),
            revision: b.revision.clone(),
            key: b.key_name.clone(),
            store_url: d.store_url.clone(),
            nar_size: b.nar_size,
            closure: b
                .closure
                .iter()
                .map(|c| (c.store_path.clone(), c.nar_size))
                .collect(),
        })
        .collect();
    let repository = d
        .versions
        .first()
        .and_then(|v| v.builds.first())
        .map(|b| b.source_url.clone())
        .unwrap_or_default();
    PackageDetails {
        org: d.org,
        name: d.package,
        description: d.description,
        versions: d.versions.iter().map(|v| v.version.clone()).collect(),
        yanked: d
            .versions
            .iter()
            .filter(|v| v.yanked)
            .map(|v| v.version.clone())
            .collect(),
        builds,
        repository,
    }
}
