//! The real [`Backend`]: the workbench driving the engine (git checks, the publish pipeline,
//! clean builds, the catalog, install). Every call returns at once and reports back through
//! actions, so the UI thread never waits on I/O.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::backend::{ActionTx, Backend, forward_events};
use super::model::{BuildRow, JobKind, PackageDetails, PackageRow, SystemBuild};
use crate::catalog::{AnyCatalog, Catalog, Listing};
use crate::event::Event;
use crate::install::{self, PackageRef};
use crate::manifest::Env;
use crate::publish::{self, Plan};
use crate::store::OpenOptions;

/// Where the workbench works and with what.
#[derive(Clone)]
pub struct EngineBackend {
    /// The environment directory.
    pub dir: PathBuf,
    pub catalog: AnyCatalog,
    pub org: Option<String>,
    pub signing_key: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub store_open: OpenOptions,
    job: Arc<Mutex<Option<CancellationToken>>>,
}

impl EngineBackend {
    pub fn new(
        dir: PathBuf,
        catalog: AnyCatalog,
        org: Option<String>,
        signing_key: Option<PathBuf>,
        data_dir: PathBuf,
    ) -> EngineBackend {
        EngineBackend {
            dir,
            catalog,
            org,
            signing_key,
            data_dir,
            store_open: OpenOptions::default(),
            job: Arc::default(),
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
}

fn send(tx: &ActionTx, a: Action) {
    let _ = tx.send(a);
}

impl Backend for EngineBackend {
    fn builds(&self) -> Vec<BuildRow> {
        match Env::find(&self.dir).and_then(|e| e.manifest()) {
            Ok(m) => m
                .builds
                .iter()
                .map(|b| BuildRow {
                    name: b.name.clone(),
                    version: b
                        .version
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    description: b.description.clone().unwrap_or_default(),
                    last: None,
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn run_checks(&self, build: Option<String>, fetch: bool, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::task::spawn_blocking(move || {
            let opts = crate::git::Options {
                fetch,
                ..Default::default()
            };
            let report = crate::git::evaluate(&dir, build.as_deref(), &opts);
            send(&tx, Action::Checks(report.checks));
        });
    }

    fn publish(&self, build: String, tx: &ActionTx) {
        let cancel = self.start_job();
        let mut plan = Plan::new(&self.dir, &build);
        plan.org.clone_from(&self.org);
        plan.signing_key.clone_from(&self.signing_key);
        plan.store_open = self.store_open.clone();
        plan.put.journal_dir = Some(self.data_dir.join("upload-journals"));
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        tokio::spawn(async move {
            let (etx, erx) = crate::event::channel();
            let fwd = tokio::spawn(forward_events(erx, tx.clone()));
            let r = publish::run(&plan, &catalog, &etx, &cancel).await;
            drop(etx);
            let _ = fwd.await;
            let result = match r {
                Ok(p) => Ok(p.reference()),
                Err(publish::PublishError::Cancelled) => Err("cancelled".to_string()),
                Err(crate::publish::PublishError::Build(crate::build::BuildError::Cancelled {
                    ..
                })) => Err("cancelled".to_string()),
                Err(e) => Err(e.to_string()),
            };
            send(
                &tx,
                Action::JobFinished {
                    kind: JobKind::Publish,
                    build,
                    result,
                },
            );
        });
    }

    fn build_only(&self, build: String, tx: &ActionTx) {
        let cancel = self.start_job();
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::spawn(async move {
            let result = build_job(&dir, &build, &tx, &cancel).await;
            send(
                &tx,
                Action::JobFinished {
                    kind: JobKind::BuildOnly,
                    build,
                    result,
                },
            );
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
            let out = tokio::process::Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(["push", "--quiet"])
                .env("GIT_TERMINAL_PROMPT", "0")
                .stdin(std::process::Stdio::null())
                .output()
                .await;
            let result = match out {
                Ok(o) if o.status.success() => {
                    Ok("pushed the current branch to its upstream".to_string())
                }
                Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("git push failed")
                    .trim_start_matches("fatal: ")
                    .to_string()),
                Err(e) => Err(format!("cannot run git: {e}")),
            };
            send(&tx, Action::PushFinished(result));
        });
    }

    fn set_version(&self, build: String, version: String, tx: &ActionTx) {
        let (dir, tx) = (self.dir.clone(), tx.clone());
        tokio::task::spawn_blocking(move || {
            let result = Env::find(&dir)
                .and_then(|e| e.manifest())
                .and_then(|m| m.set_build_version(&build, &version))
                .map(|_| format!("{build} is now version {version}; commit and push to publish it"))
                .map_err(|e| e.to_string());
            send(&tx, Action::VersionSet { build, result });
        });
    }

    fn load_packages(&self, etag: Option<String>, tx: &ActionTx) {
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        tokio::spawn(async move {
            match catalog.list_packages(etag.as_deref()).await {
                Ok(Listing::NotModified { .. }) => send(&tx, Action::PackagesUnchanged),
                Ok(Listing::Packages { etag, packages }) => send(
                    &tx,
                    Action::Packages {
                        packages: packages
                            .into_iter()
                            .map(|p| PackageRow {
                                org: p.org,
                                name: p.package,
                                version: p.latest_version,
                                description: p.description,
                            })
                            .collect(),
                        etag: Some(etag),
                    },
                ),
                Err(e) => send(&tx, Action::Error(e.to_string())),
            }
        });
    }

    fn package_details(&self, package: String, tx: &ActionTx) {
        let (catalog, tx) = (self.catalog.clone(), tx.clone());
        tokio::spawn(async move {
            let r = match PackageRef::parse(&package) {
                Ok(p) => catalog.show(&p.org, &p.package).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(d) => {
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
                        })
                        .collect();
                    let repository = d
                        .versions
                        .first()
                        .and_then(|v| v.builds.first())
                        .map(|b| b.source_url.clone())
                        .unwrap_or_default();
                    send(
                        &tx,
                        Action::Details(PackageDetails {
                            org: d.org,
                            name: d.package,
                            description: d.description,
                            versions: d.versions.iter().map(|v| v.version.clone()).collect(),
                            builds,
                            repository,
                        }),
                    );
                }
                Err(e) => send(&tx, Action::Error(e.to_string())),
            }
        });
    }

    fn readiness(&self, package: String, tx: &ActionTx) {
        let me = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            match me.request(&package) {
                Ok(req) => {
                    let r = install::ready(&req, &me.catalog).await;
                    send(
                        &tx,
                        Action::Readiness {
                            package,
                            checks: r.checks,
                        },
                    );
                }
                Err(e) => send(&tx, Action::Error(e)),
            }
        });
    }

    fn install(&self, package: String, tx: &ActionTx) {
        let me = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let req = match me.request(&package) {
                Ok(r) => r,
                Err(e) => {
                    send(
                        &tx,
                        Action::InstallFinished {
                            package,
                            result: Err(e),
                        },
                    );
                    return;
                }
            };
            let (etx, mut erx) = crate::event::channel();
            let (p2, tx2) = (package.clone(), tx.clone());
            let fwd = tokio::spawn(async move {
                while let Some(e) = erx.recv().await {
                    let (message, done, total) = match e {
                        Event::Upload { sent, total, .. } => {
                            ("downloading".to_string(), sent, Some(total))
                        }
                        Event::Note { message } => (message, 0, None),
                        _ => continue,
                    };
                    send(
                        &tx2,
                        Action::InstallProgress {
                            package: p2.clone(),
                            message,
                            done,
                            total,
                        },
                    );
                }
            });
            let r = install::install(&req, &me.catalog, &etx).await;
            drop(etx);
            let _ = fwd.await;
            let result = r
                .map(|i| format!("installed {}@{} as `{}`", i.package, i.version, i.id))
                .map_err(|e| e.to_string());
            send(&tx, Action::InstallFinished { package, result });
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

impl EngineBackend {
    fn request(&self, package: &str) -> Result<install::Request, String> {
        let pkg = PackageRef::parse(package).map_err(|e| e.to_string())?;
        let mut req = install::Request::new(pkg, &self.dir, &self.data_dir);
        req.store_open = self.store_open.clone();
        Ok(req)
    }
}

/// The clean build of the workbench's "build only": output kept as `result-<name>`.
async fn build_job(
    dir: &std::path::Path,
    name: &str,
    tx: &ActionTx,
    cancel: &CancellationToken,
) -> Result<String, String> {
    let env = Env::find(dir).map_err(|e| e.to_string())?;
    let (env2, name2) = (env.clone(), name.to_string());
    let prepared = tokio::task::spawn_blocking(move || crate::build::prepare(&env2, &name2, None))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let (etx, erx) = crate::event::channel();
    let fwd = tokio::spawn(forward_events(erx, tx.clone()));
    let r = crate::build::run(&prepared.request, &etx, cancel).await;
    drop(etx);
    let _ = fwd.await;
    let out = r.map_err(|e| match e {
        crate::build::BuildError::Cancelled { .. } => "cancelled".to_string(),
        other => other.to_string(),
    })?;
    let kept = crate::build::result_path(&env, name);
    let kept = tokio::task::spawn_blocking(move || out.keep(&kept))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot keep the build output: {e}"))?;
    Ok(kept.display().to_string())
}
