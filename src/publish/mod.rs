//! The publish pipeline: checks → dedup → clone → build → pack → sign → upload → register.
//!
//! One function, [`run`], driven identically by the CLI, the TUI and tests; it reports
//! through the [`Event`] stream. Invariants: every precondition is evaluated before anything
//! is built; the NAR is in the store before its narinfo, the narinfo before the catalog
//! registration, so nothing is visible to anyone before its bytes are complete; cancelling
//! at any point leaves no temp dirs and nothing registered.

pub mod repro;
pub mod review;

use crate::event::Hinted;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::build;
use crate::cache::{self, Compression, PackOptions};
use crate::catalog::{
    Addressing, AnyCatalog, Catalog, CatalogError, CheckBuild, ClosurePath, NewBuild,
    RegisterStatus, Role,
};
use crate::closure;
use crate::event::{Event, EventTx, Stage};
use crate::git::{self, Check};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::{PublicKey, SecretKey};
use crate::store::{OpenOptions, ProgressSink, PutOptions, Store};

/// Ids of the checks publish adds to the git preconditions.
pub mod id {
    use crate::event::CheckId;

    pub const SIGNING_KEY: CheckId = CheckId::SigningKey;
    pub const CATALOG: CheckId = CheckId::Catalog;
    pub const MAY_PUBLISH: CheckId = CheckId::MayPublish;
    pub const KEY_TRUSTED: CheckId = CheckId::KeyTrusted;
    pub const STORE: CheckId = CheckId::Store;
}

/// What to publish and with what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The environment directory.
    pub dir: PathBuf,
    pub build: String,
    pub org: Option<String>,
    pub signing_key: Option<PathBuf>,
    /// Nix system of the build, e.g. `x86_64-linux`.
    pub system: String,
    pub compression: Compression,
    pub put: PutOptions,
    pub store_open: OpenOptions,
    pub build_timeout: Option<Duration>,
    /// Contact the git remote (the CLI does; tests of offline behaviour don't).
    pub fetch: bool,
    /// Build twice, in two fresh clones, and refuse to upload when the NARs differ.
    pub verify_reproducible: bool,
    /// With `verify_reproducible`: upload anyway when they differ (the difference is reported).
    pub allow_unreproducible: bool,
    /// Where what each dependency became is remembered (`<data dir>/closure-memo`); `None`
    /// remembers nothing (each dependency not provably in the store is packed).
    pub memo_dir: Option<PathBuf>,
}

/// The answer to a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAnswer {
    /// Upload and register.
    Upload,
    /// Stop before anything is uploaded.
    Decline,
    /// Build a second time in a fresh clone, compare, then upload if they match.
    VerifyThenUpload,
}

/// Makes publish stop after packing and signing, send [`Event::Review`] and wait for the
/// answer sent on the paired sender (a dropped sender declines).
#[derive(Debug)]
pub struct ReviewGate(tokio::sync::oneshot::Receiver<ReviewAnswer>);

/// A review gate and the sender its answer goes through.
pub fn review_gate() -> (tokio::sync::oneshot::Sender<ReviewAnswer>, ReviewGate) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (tx, ReviewGate(rx))
}

impl Plan {
    pub fn new(dir: &Path, build: &str) -> Plan {
        Plan {
            dir: dir.to_path_buf(),
            build: build.to_string(),
            org: None,
            signing_key: None,
            system: current_system(),
            compression: Compression::Zstd,
            put: PutOptions::default(),
            store_open: OpenOptions::default(),
            build_timeout: None,
            fetch: true,
            verify_reproducible: false,
            allow_unreproducible: false,
            memo_dir: None,
        }
    }
}

impl Plan {
    /// The plan for `build` with the configured org, signing key and journal directory.
    pub fn configured(dir: &Path, build: &str, settings: &crate::config::Settings) -> Plan {
        let mut plan = Plan::new(dir, build);
        plan.org.clone_from(&settings.org);
        plan.signing_key.clone_from(&settings.signing_key);
        plan.put.journal_dir = Some(settings.journal_dir());
        plan.memo_dir = Some(settings.closure_memo_dir());
        plan.store_open = settings.store_open();
        plan
    }
}

pub use crate::nix::current_system;

/// What was published (or found already published).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Published {
    pub org: String,
    pub package: String,
    pub version: String,
    pub system: String,
    pub store_path: String,
    pub narinfo_url: String,
    pub nar_hash: String,
    pub nar_size: u64,
    /// Size of the compressed NAR (0 when skipped).
    pub file_size: u64,
    /// True when this revision was already published and nothing was rebuilt.
    pub already_published: bool,
    /// Seconds per stage that ran.
    pub durations: Vec<(Stage, f64)>,
}

impl Published {
    /// `myorg/hello@1.0.0`
    pub fn reference(&self) -> String {
        format!("{}/{}@{}", self.org, self.package, self.version)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{} precondition{} failed: {}", .0.iter().filter(|c| !c.ok).count(), if .0.iter().filter(|c| !c.ok).count() == 1 { "" } else { "s" }, .0.iter().filter(|c| !c.ok).map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "))]
    Preconditions(Vec<Check>),
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error("cannot pack the build output: {0}")]
    Pack(String),
    #[error("upload to {store} failed: {message}")]
    Upload { store: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error("the catalog refused the registration: {0}")]
    Register(CatalogError),
    #[error("publish was cancelled")]
    Cancelled,
    #[error("publish stopped at the review; nothing was uploaded")]
    Declined,
    #[error("{0}")]
    Unreproducible(Box<repro::Unreproducible>),
}

impl crate::event::Hinted for PublishError {
    fn hint(&self) -> Option<String> {
        match self {
            PublishError::Preconditions(_) => Some(
                "fix the failing checks above (each has its own hint) and run publish again".into(),
            ),
            PublishError::Build(e) => e.hint(),
            PublishError::Conflict(_) => {
                Some("bump the build's version (pubdeck never replaces a published version)".into())
            }
            PublishError::Register(e) => e.hint(),
            PublishError::Unreproducible(_) => Some(
                "make the build deterministic (no timestamps, random names or host paths in the output), or pass --allow-unreproducible".into(),
            ),
            _ => None,
        }
    }
}

/// Everything the checks stage learnt, for the later stages.
struct Checked {
    source: git::Source,
    manifest: crate::manifest::Manifest,
    key: SecretKey,
    org: String,
    store: Store,
}

/// The crash tests' pause at a stage (see [`crate::failpoint`]).
async fn failpoint(stage: Stage) {
    crate::failpoint::pause(stage.name()).await;
}

/// Announces and times the pipeline's stages, and keeps their durations.
struct Stages<'a> {
    tx: &'a EventTx,
    durations: Vec<(Stage, f64)>,
}

impl Stages<'_> {
    /// Sends `StageStarted` (then honours the failpoint) and returns the start time.
    async fn start(&self, stage: Stage) -> Instant {
        send(self.tx, Event::StageStarted { stage }).await;
        failpoint(stage).await;
        Instant::now()
    }

    /// Sends `StageFinished` and records the duration.
    async fn finish(&mut self, stage: Stage, started: Instant, ok: bool) {
        let duration = started.elapsed();
        send(
            self.tx,
            Event::StageFinished {
                stage,
                duration,
                ok,
            },
        )
        .await;
        self.durations.push((stage, duration.as_secs_f64()));
    }
}

async fn send(tx: &EventTx, e: Event) {
    let _ = tx.send(e).await;
}

/// Runs the whole pipeline for one build.
pub async fn run(
    plan: &Plan,
    catalog: &AnyCatalog,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Published, PublishError> {
    run_reviewed(plan, catalog, tx, cancel, None).await
}

/// [`run`], stopping for a review before the upload when `gate` is given.
pub async fn run_reviewed(
    plan: &Plan,
    catalog: &AnyCatalog,
    tx: &EventTx,
    cancel: &CancellationToken,
    gate: Option<ReviewGate>,
) -> Result<Published, PublishError> {
    let mut stages = Stages {
        tx,
        durations: Vec::new(),
    };

    // 1. checks — all of them, before anything is built.
    let t = stages.start(Stage::Check).await;
    let checked = checks(plan, catalog, tx).await;
    stages.finish(Stage::Check, t, checked.is_ok()).await;
    let c = checked?;
    if cancel.is_cancelled() {
        return Err(PublishError::Cancelled);
    }
    let rev = c.source.rev.clone().expect("checks passed, so HEAD exists");
    let build_def = c
        .manifest
        .build(&plan.build)
        .cloned()
        .expect("build-exists passed");

    // 2. already published at this revision? Then there is nothing to do.
    let query = CheckBuild {
        org: c.org.clone(),
        name: plan.build.clone(),
        revision: rev.clone(),
        system: Some(plan.system.clone()),
    };
    if let Ok(Some(record)) = catalog.check_build(&query).await {
        let reason = format!(
            "{}/{}@{} was already published from {}",
            record.org,
            record.package,
            record.version,
            &rev[..7]
        );
        for stage in &Stage::ALL[1..] {
            send(
                tx,
                Event::StageSkipped {
                    stage: *stage,
                    reason: reason.clone(),
                },
            )
            .await;
        }
        send(tx, Event::Note { message: reason }).await;
        let published = Published {
            org: record.org,
            package: record.package,
            version: record.version,
            system: record.system,
            store_path: record.store_path,
            narinfo_url: record.narinfo_url,
            nar_hash: record.nar_hash,
            nar_size: record.nar_size,
            file_size: 0,
            already_published: true,
            durations: stages.durations,
        };
        return Ok(announce(tx, published).await);
    }

    // 3. clean build (emits the clone and build stages itself)
    let fallback_version = format!("0.0.0+{}", &rev[..7]);
    let req = build::Request {
        repo: c.source.workdir.clone(),
        rev: rev.clone(),
        env_subdir: c.source.env_subdir.clone(),
        build: build_def.clone(),
        timeout: plan.build_timeout,
        fallback_version: Some(fallback_version.clone()),
    };
    let t = Instant::now();
    failpoint(Stage::Clone).await;
    let output = build::run(&req, tx, cancel).await?;
    stages
        .durations
        .push((Stage::Build, t.elapsed().as_secs_f64()));
    let version = output.version.clone().unwrap_or(fallback_version);

    // 4. pack: the output and every store path it refers to, content-addressed
    let t = stages.start(Stage::Pack).await;
    let against = Against {
        store: &c.store,
        key: &c.key,
        sources: closure::Sources {
            memo: plan.memo_dir.as_deref().map(closure::Memo::new),
            ..Default::default()
        },
    };
    // Nothing goes up before a review is answered or the build is found reproducible;
    // otherwise each dependency is uploaded as soon as it is packed (its narinfo after the
    // narinfos of what it refers to), the output after the sign stage, as before.
    let forwards = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let early = (gate.is_none() && !plan.verify_reproducible).then(|| closure::EarlyUpload {
        put: plan.put.clone(),
        // Each dependency is announced as it is packed, then its transfer.
        packed: {
            let (tx, forwards) = (tx.clone(), forwards.clone());
            Box::new(move |p: &closure::PackedPath, info: &NarInfo| {
                let (sink, progress) = ProgressSink::channel();
                let (tx, url, packed) = (tx.clone(), info.url.clone(), packed_event(p, true));
                let forward = tokio::spawn(async move {
                    send(&tx, packed).await;
                    crate::store::forward_as_events(
                        progress,
                        tx,
                        crate::event::Direction::Upload,
                        url,
                    )
                    .await;
                });
                forwards.lock().expect("not poisoned").push(forward);
                sink
            })
        },
    });
    let packed = pack(
        &output,
        plan.compression,
        Some(&against),
        early.as_ref(),
        cancel,
    )
    .await;
    drop(early);
    // Every transfer's events are sent before the stage ends (its sinks are gone with it).
    let forwards = std::mem::take(&mut *forwards.lock().expect("not poisoned"));
    for f in forwards {
        let _ = f.await;
    }
    stages.finish(Stage::Pack, t, packed.is_ok()).await;
    let (closure, pack_dir) = packed?;
    drop(output); // $out is in the NAR now
    for r in &closure.reused {
        send(
            tx,
            Event::AlreadyInStore {
                store_path: r.store_path.to_string(),
            },
        )
        .await;
    }
    // (those uploaded while packing were announced then)
    let announced = closure.uploaded.as_ref().map_or(0, Vec::len);
    let last = closure.packed.len() - 1;
    for (i, p) in closure.packed.iter().enumerate().skip(announced) {
        send(tx, packed_event(p, i < last)).await;
    }

    // 5. sign every path of the closure
    let t = stages.start(Stage::Sign).await;
    let infos: Vec<NarInfo> = closure.packed.iter().map(|p| p.narinfo(&c.key)).collect();
    send(
        tx,
        Event::Signed {
            key_name: c.key.name().to_string(),
        },
    )
    .await;
    stages.finish(Stage::Sign, t, true).await;
    if cancel.is_cancelled() {
        return Err(PublishError::Cancelled);
    }
    let info = infos.last().expect("the closure holds the output").clone();

    // 5b. reproducible? Built again in a fresh clone when asked up front…
    if plan.verify_reproducible {
        verify_reproducible(plan, &req, closure.top(), tx, cancel).await?;
    }
    // …and the review: nothing is uploaded before it is answered.
    if let Some(ReviewGate(answer)) = gate {
        let review = review::prepare(
            catalog,
            &c.store,
            &c.org,
            &plan.build,
            &version,
            &plan.system,
            c.key.name(),
            &closure,
            &infos,
        )
        .await;
        send(tx, Event::Review(Box::new(review))).await;
        let answer = tokio::select! {
            a = answer => a.unwrap_or(ReviewAnswer::Decline),
            _ = cancel.cancelled() => return Err(PublishError::Cancelled),
        };
        match answer {
            ReviewAnswer::Upload => {}
            ReviewAnswer::Decline => return Err(PublishError::Declined),
            ReviewAnswer::VerifyThenUpload => {
                if !plan.verify_reproducible {
                    verify_reproducible(plan, &req, closure.top(), tx, cancel).await?;
                }
            }
        }
    }

    // 6. upload: dependencies first; for each path the NAR, then (only then) its narinfo
    // (those uploaded while packing are up: only the output is left)
    let skip = closure.uploaded.as_ref().map_or(0, Vec::len);
    for (p, a) in closure.packed.iter().zip(closure.uploaded.iter().flatten()) {
        if *a == closure::Added::AlreadyThere {
            send(
                tx,
                Event::AlreadyInStore {
                    store_path: p.store_path.to_string(),
                },
            )
            .await;
        }
    }
    let t = stages.start(Stage::Upload).await;
    let uploaded = tokio::select! {
        r = upload_closure(&c.store, &closure.packed[skip..], &infos[skip..], &plan.put, tx) => r,
        _ = cancel.cancelled() => Err(PublishError::Cancelled),
    };
    stages.finish(Stage::Upload, t, uploaded.is_ok()).await;
    uploaded?;
    let closure_paths: Vec<ClosurePath> = closure
        .paths()
        .map(|(p, nar_size)| ClosurePath {
            store_path: p.to_string(),
            nar_size,
        })
        .collect();
    if cancel.is_cancelled() {
        return Err(PublishError::Cancelled);
    }

    // 7. register: from here on the build is visible.
    let t = stages.start(Stage::Register).await;
    let narinfo_url = c.store.url().object_url(&info.file_name());
    let new = NewBuild {
        org: c.org.clone(),
        package: plan.build.clone(),
        version: version.clone(),
        description: build_def.description.clone().unwrap_or_default(),
        system: plan.system.clone(),
        store_path: info.store_path.to_string(),
        narinfo_url: narinfo_url.clone(),
        nar_hash: info.nar_hash.to_string(),
        nar_size: info.nar_size,
        references: info
            .references
            .iter()
            .map(|r| r.base_name().to_string())
            .collect(),
        signature: info.sigs.first().map(|s| s.to_string()).unwrap_or_default(),
        key_name: c.key.name().to_string(),
        source_url: c.source.remote_url.clone().unwrap_or_default(),
        revision: rev.clone(),
        branch: c.source.branch.clone().unwrap_or_default(),
        build_name: plan.build.clone(),
        installed_packages: c.manifest.install.iter().map(|i| i.describe()).collect(),
        ca: info.ca.clone().unwrap_or_default(),
        closure: closure_paths,
        addressing: Addressing::Content,
        rev_count: git::rev_count(&c.source.workdir, &rev).unwrap_or(0),
        rev_date: c
            .source
            .commit_time
            .map(crate::time::rfc3339)
            .unwrap_or_default(),
        derivation: String::new(),
    };
    let registered = tokio::select! {
        r = catalog.register_build(&new) => r,
        _ = cancel.cancelled() => return Err(PublishError::Cancelled),
    };
    stages.finish(Stage::Register, t, registered.is_ok()).await;
    let outcome = registered.map_err(|e| match e {
        CatalogError::Conflict(m) => PublishError::Conflict(m),
        other => PublishError::Register(other),
    })?;
    // A `catalog gc` that looked at an old object this publish reused just before it was
    // touched may have deleted it: now that the build is registered (live), put back
    // anything missing.
    restore_missing(
        &c.store,
        &closure,
        &infos,
        &c.key,
        plan,
        pack_dir.path(),
        tx,
    )
    .await?;
    drop(closure);
    drop(pack_dir);
    let published = Published {
        org: c.org,
        package: plan.build.clone(),
        version,
        system: plan.system.clone(),
        store_path: info.store_path.to_string(),
        narinfo_url,
        nar_hash: info.nar_hash.to_string(),
        nar_size: info.nar_size,
        file_size: info.file_size.unwrap_or_default(),
        already_published: outcome.status == RegisterStatus::AlreadyPublished,
        durations: stages.durations,
    };
    Ok(announce(tx, published).await)
}

/// `Packed` for `p` (a dependency of the output, or the output).
fn packed_event(p: &closure::PackedPath, dependency: bool) -> Event {
    Event::Packed {
        store_path: p.store_path.to_string(),
        nar_hash: p.packed.summary.nar.nar_hash.to_string(),
        nar_size: p.packed.summary.nar.nar_size,
        file_size: p.packed.summary.file_size,
        dependency,
    }
}

/// Says `published` is done (the last event of every publish that succeeds) and returns it.
async fn announce(tx: &EventTx, published: Published) -> Published {
    send(
        tx,
        Event::Published {
            reference: published.reference(),
        },
    )
    .await;
    published
}

/// What a publish packs against: the store it uploads to, the key its narinfos must carry,
/// and where dependencies are looked up.
struct Against<'a> {
    store: &'a Store,
    key: &'a SecretKey,
    sources: closure::Sources,
}

/// Packs the output and the store paths it refers to (from the local Nix store), content-
/// addressed, into a temp dir that lives as long as the returned handle. With `against`,
/// dependencies the store already has are not packed (`closure::prepare`); without, every
/// path is.
async fn pack(
    output: &build::Output,
    compression: Compression,
    against: Option<&Against<'_>>,
    early: Option<&closure::EarlyUpload>,
    cancel: &CancellationToken,
) -> Result<(closure::Closure, tempfile::TempDir), PublishError> {
    let dir = tempfile::Builder::new()
        .prefix("pubdeck-pack-")
        .tempdir()
        .map_err(|e| PublishError::Pack(e.to_string()))?;
    let input = closure::Input {
        tree: output.path(),
        built_as: output.built_as().clone(),
    };
    let opts = PackOptions::with(compression);
    let packed = match against {
        Some(a) => {
            closure::prepare(
                &input,
                &a.sources,
                a.store,
                a.key,
                &opts,
                dir.path(),
                early,
                cancel,
            )
            .await
        }
        None => {
            let (path, stop) = (dir.path().to_path_buf(), cancel.clone());
            let task = tokio::task::spawn_blocking(move || {
                let known =
                    closure::KnownPaths::local().map_err(|e| closure::ClosureError::Io {
                        path: crate::nix::STORE_DIR.into(),
                        source: e,
                    })?;
                closure::pack_closure(&input, &known, &opts, &path, &|| stop.is_cancelled())
                    .map(closure::Closure::all_packed)
            });
            tokio::select! {
                r = task => r.expect("pack task panicked"),
                _ = cancel.cancelled() => Err(closure::ClosureError::Cancelled),
            }
        }
    };
    match packed {
        Ok(p) => Ok((p, dir)),
        Err(closure::ClosureError::Cancelled) => Err(PublishError::Cancelled),
        Err(closure::ClosureError::Upload(e)) => Err(upload_error(against, e)),
        Err(e) => Err(PublishError::Pack(e.to_string())),
    }
}

fn upload_error(against: Option<&Against<'_>>, e: cache::CacheError) -> PublishError {
    match against {
        Some(a) => upload_error_in(a.store, e),
        None => PublishError::Pack(e.to_string()),
    }
}

fn upload_error_in(store: &Store, e: cache::CacheError) -> PublishError {
    match e {
        e @ cache::CacheError::Conflict { .. } => PublishError::Conflict(e.to_string()),
        e => PublishError::Upload {
            store: store.url().to_string(),
            message: e.to_string(),
        },
    }
}

/// Uploads the closure (see `closure::add_closure`), each transfer reported as events.
async fn upload_closure(
    store: &Store,
    closure: &[closure::PackedPath],
    infos: &[NarInfo],
    put: &PutOptions,
    tx: &EventTx,
) -> Result<(), PublishError> {
    let mut forwards = Vec::new();
    let added = closure::add_closure(store, closure, infos, put, |i| {
        let (sink, progress) = ProgressSink::channel();
        forwards.push(tokio::spawn(crate::store::forward_as_events(
            progress,
            tx.clone(),
            crate::event::Direction::Upload,
            infos[i].url.clone(),
        )));
        sink
    })
    .await;
    for f in forwards {
        let _ = f.await;
    }
    let added = added.map_err(|e| upload_error_in(store, e))?;
    for (p, a) in closure.iter().zip(added) {
        if a == closure::Added::AlreadyThere {
            send(
                tx,
                Event::AlreadyInStore {
                    store_path: p.store_path.to_string(),
                },
            )
            .await;
        }
    }
    Ok(())
}

/// Builds `req` a second time (a fresh clone), packs it, and compares its NAR with the first
/// build's (`closure`'s last path). A difference fails with the files named, unless the plan
/// allows it (then it is a note).
async fn verify_reproducible(
    plan: &Plan,
    req: &build::Request,
    first: &closure::PackedPath,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<(), PublishError> {
    send(
        tx,
        Event::Note {
            message: "building a second time in a fresh clone to check it is reproducible".into(),
        },
    )
    .await;
    let second = build::run(req, tx, cancel).await?;
    let (again, _dir) = pack(&second, plan.compression, None, None, cancel).await?;
    drop(second);
    let second = again.top();
    let verdict = check_same(first, second)?;
    if let Some(u) = &verdict {
        send(tx, Event::Unreproducible(Box::new(u.clone()))).await;
    }
    match verdict {
        None => {
            send(
                tx,
                Event::Note {
                    message: format!(
                        "reproducible: both builds give NAR {}",
                        first.packed.summary.nar.nar_hash
                    ),
                },
            )
            .await;
            Ok(())
        }
        Some(u) if plan.allow_unreproducible => {
            send(
                tx,
                Event::Note {
                    message: format!("{u}; publishing anyway (--allow-unreproducible)"),
                },
            )
            .await;
            Ok(())
        }
        Some(u) => Err(PublishError::Unreproducible(Box::new(u))),
    }
}

/// `pubdeck build --check`: builds `name` twice, each in a fresh clone of HEAD, packs both
/// content-addressed and compares them. `Ok(None)`: reproducible (the NAR hash is in a
/// `Note` event).
pub async fn check_reproducible(
    env: &crate::manifest::Env,
    name: &str,
    timeout: Option<Duration>,
    tx: &EventTx,
    cancel: &CancellationToken,
) -> Result<Option<repro::Unreproducible>, PublishError> {
    let (env2, name2) = (env.clone(), name.to_string());
    let prepared = tokio::task::spawn_blocking(move || build::prepare(&env2, &name2, timeout))
        .await
        .map_err(|e| build::BuildError::Io(std::io::Error::other(e)))??;
    for warning in prepared.warnings {
        send(tx, Event::Check(warning)).await;
    }
    let req = prepared.request;
    let mut packed = Vec::new();
    for round in ["first", "second"] {
        send(
            tx,
            Event::Note {
                message: format!("{round} build, in a fresh clone"),
            },
        )
        .await;
        let output = build::run(&req, tx, cancel).await?;
        packed.push(pack(&output, Compression::Zstd, None, None, cancel).await?);
    }
    let (first, second) = (packed[0].0.top(), packed[1].0.top());
    let verdict = check_same(first, second)?;
    if verdict.is_none() {
        send(
            tx,
            Event::Note {
                message: format!(
                    "reproducible: both builds give {} (NAR {})",
                    first.store_path, first.packed.summary.nar.nar_hash
                ),
            },
        )
        .await;
    }
    Ok(verdict)
}

/// `None` when two packings of the output are the same NAR; else what differs.
pub fn check_same(
    first: &closure::PackedPath,
    second: &closure::PackedPath,
) -> Result<Option<repro::Unreproducible>, PublishError> {
    let (a, b) = (&first.packed.summary.nar, &second.packed.summary.nar);
    if a.nar_hash == b.nar_hash && first.store_path == second.store_path {
        return Ok(None);
    }
    let (files, total) = repro::compare(
        &first.store_path,
        first.packed.file.path(),
        second.packed.file.path(),
        first.packed.summary.compression,
    )
    .map_err(|e| PublishError::Pack(e.to_string()))?;
    Ok(Some(repro::Unreproducible {
        first_nar_hash: a.nar_hash.to_string(),
        second_nar_hash: b.nar_hash.to_string(),
        total: total.max(files.len()),
        files,
    }))
}

/// Puts back every path of the closure whose narinfo or NAR is no longer in the store (a
/// reused dependency is packed again for it).
async fn restore_missing(
    store: &Store,
    closure: &closure::Closure,
    infos: &[NarInfo],
    key: &SecretKey,
    plan: &Plan,
    tmp_dir: &Path,
    tx: &EventTx,
) -> Result<(), PublishError> {
    let failed = |e: cache::CacheError| PublishError::Upload {
        store: store.url().to_string(),
        message: e.to_string(),
    };
    let here = async |info: &NarInfo| -> Result<bool, PublishError> {
        Ok(store
            .exists(&info.url)
            .await
            .map_err(|e| failed(e.into()))?
            && store
                .exists(&info.file_name())
                .await
                .map_err(|e| failed(e.into()))?)
    };
    // Reused dependencies first (they refer to nothing packed), each packed again if lost.
    let mut repacked = Vec::new();
    for r in &closure.reused {
        if here(&r.info).await? {
            continue;
        }
        let (opts, dir, r) = (
            PackOptions::with(plan.compression),
            tmp_dir.to_path_buf(),
            r.clone(),
        );
        let packed = tokio::task::spawn_blocking(move || closure::repack(&r, &opts, &dir))
            .await
            .expect("repack task panicked")
            .map_err(|e| PublishError::Pack(e.to_string()))?;
        let info = packed.narinfo(key);
        repacked.push((packed, info));
    }
    let again = repacked
        .iter()
        .map(|(p, i)| (p, i))
        .chain(closure.packed.iter().zip(infos));
    for (p, info) in again {
        if here(info).await? {
            continue;
        }
        cache::add_path_listed(
            store,
            p.packed.file.path(),
            p.packed.listing.as_deref(),
            info,
            &plan.put,
            &ProgressSink::none(),
        )
        .await
        .map_err(failed)?;
        send(
            tx,
            Event::Note {
                message: format!(
                    "{} was deleted from the store while publishing (a concurrent GC); uploaded it again",
                    p.store_path
                ),
            },
        )
        .await;
    }
    Ok(())
}

/// Every precondition of a publish (git's and publish's own), evaluated all at once, with what
/// the passing ones found.
pub struct Preconditions {
    pub checks: Vec<Check>,
    report: git::Report,
    key: Option<SecretKey>,
    store: Option<Store>,
}

/// How far [`preconditions`] goes.
pub enum Reach<'a> {
    /// Everything, through this catalog, the store included.
    Online(&'a AnyCatalog),
    /// The catalog could not be opened (why, as the `catalog` check says it).
    Unavailable(crate::event::Failure),
    /// Only what needs no network: the catalog, permission, key trust and store checks say
    /// they were skipped (`check --offline`).
    Offline,
}

/// Evaluates every precondition `publish` evaluates, without publishing: `pubdeck check`
/// and the pipeline's first stage run this same function. An empty `plan.build` checks the
/// environment as a whole.
pub async fn preconditions(plan: &Plan, reach: Reach<'_>) -> Preconditions {
    let catalog = match &reach {
        Reach::Online(c) => Some(*c),
        _ => None,
    };
    let (dir, build, fetch) = (plan.dir.clone(), plan.build.clone(), plan.fetch);
    let report = tokio::task::spawn_blocking(move || {
        git::evaluate(
            &dir,
            (!build.is_empty()).then_some(build.as_str()),
            &git::Options {
                fetch,
                ..Default::default()
            },
        )
    })
    .await
    .expect("check task panicked");
    let mut all = report.checks.clone();

    // signing key
    let key = match &plan.signing_key {
        None => {
            all.push(Check::fail(
                id::SIGNING_KEY,
                "no signing key is configured",
                "pass --signing-key FILE or set PUBDECK_SIGNING_KEY (create one with `pubdeck key generate --name <org>-1`)",
            ));
            None
        }
        Some(path) => match SecretKey::from_file(path) {
            Ok(k) => {
                all.push(Check::pass(
                    id::SIGNING_KEY,
                    format!("signing key `{}` from {}", k.name(), path.display()),
                ));
                Some(k)
            }
            Err(e) => {
                let hint = match &e {
                    crate::nix::sign::KeyError::IsPublic(p) => {
                        match p.to_str().and_then(|p| p.strip_suffix(".pub")) {
                            Some(secret) => format!("pass the secret key: --signing-key {secret}"),
                            None => "pass the secret key file (`pubdeck key generate` writes both)"
                                .into(),
                        }
                    }
                    _ => "check the path and that the file is a Nix secret key (`name:base64`)"
                        .into(),
                };
                all.push(Check::fail(id::SIGNING_KEY, e.to_string(), hint));
                None
            }
        },
    };

    // catalog, permission, trusted key, store
    let mut info = None;
    let mut store = None;
    match &plan.org {
        None => {
            all.push(Check::fail(
                id::CATALOG,
                "no organisation is configured",
                "pass --org ORG or set PUBDECK_ORG",
            ));
        }
        Some(org) if matches!(reach, Reach::Offline) => all.push(skipped(
            id::CATALOG,
            format!("catalog `{org}`: not contacted (--offline)"),
        )),
        Some(org) => match catalog.map(|c| c.catalog(org)) {
            None => {
                let (message, hint) = match &reach {
                    Reach::Unavailable(f) => (f.message.clone(), f.hint.clone()),
                    _ => (format!("catalog `{org}`: no catalog is configured"), None),
                };
                all.push(Check::fail(
                    id::CATALOG,
                    message,
                    hint.unwrap_or_else(|| "set PUBDECK_CATALOG or pass --catalog".into()),
                ))
            }
            Some(answer) => match answer.await {
                Ok(ci) => {
                    all.push(Check::pass(
                        id::CATALOG,
                        format!("catalog `{org}` is reachable"),
                    ));
                    info = Some(ci);
                }
                Err(e) => {
                    let hint = e.hint().unwrap_or_else(|| {
                        format!("create it with `pubdeck catalog create {org} --store URL`")
                    });
                    all.push(Check::fail(id::CATALOG, e.to_string(), hint));
                }
            },
        },
    }
    let offline = matches!(reach, Reach::Offline) && plan.org.is_some();
    match &info {
        Some(ci) if ci.role == Role::Owner => all.push(Check::pass(
            id::MAY_PUBLISH,
            format!("you own catalog `{}`", ci.name),
        )),
        Some(ci) => all.push(Check::fail(
            id::MAY_PUBLISH,
            format!("you may read catalog `{}` but not publish to it", ci.name),
            format!(
                "ask its owner ({}) to publish, or publish to your own catalog with --org",
                ci.owner
            ),
        )),
        None if offline => all.push(skipped(
            id::MAY_PUBLISH,
            "publish permission not checked (--offline)",
        )),
        None => all.push(Check::fail(
            id::MAY_PUBLISH,
            "publish permission not checked: the catalog is not available",
            "fix `catalog` first",
        )),
    }
    match (&info, &key) {
        (Some(ci), Some(k)) => {
            let public = k.public();
            let trusted = ci
                .keys
                .iter()
                .filter_map(|s| PublicKey::parse(s).ok())
                .any(|p| p == public);
            if trusted {
                all.push(Check::pass(
                    id::KEY_TRUSTED,
                    format!("catalog `{}` trusts key `{}`", ci.name, k.name()),
                ));
            } else {
                all.push(Check::fail(
                    id::KEY_TRUSTED,
                    format!("catalog `{}` does not trust signing key `{}`", ci.name, k.name()),
                    format!(
                        "add its public half: `pubdeck key public KEYFILE > key.pub && pubdeck catalog add-key {} key.pub`",
                        ci.name
                    ),
                ));
            }
        }
        _ if offline => all.push(skipped(
            id::KEY_TRUSTED,
            "key trust not checked (--offline)",
        )),
        _ => all.push(Check::fail(
            id::KEY_TRUSTED,
            "key trust not checked: needs both the signing key and the catalog",
            "fix `signing-key` and `catalog` first",
        )),
    }
    match &info {
        Some(ci) if ci.store_url.trim().is_empty() => all.push(Check::fail(
            id::STORE,
            format!("catalog `{}` has no store configured", ci.name),
            format!(
                "run `pubdeck catalog set-store {} file:///path/or/s3://bucket`",
                ci.name
            ),
        )),
        Some(ci) => {
            // Opened, and asked once: reachable, with credentials that work.
            let opened = match Store::open_str(&ci.store_url, &plan.store_open).await {
                Ok(s) => s.head("nix-cache-info").await.map(|_| s),
                Err(e) => Err(e),
            };
            match opened {
                Ok(s) => {
                    all.push(Check::pass(id::STORE, format!("store {}", s.url())));
                    store = Some(s);
                }
                Err(e) => all.push(Check::fail(
                    id::STORE,
                    e.to_string(),
                    crate::event::Hinted::hint(&e).unwrap_or_else(|| {
                        "fix the catalog's store URL with `pubdeck catalog set-store`".into()
                    }),
                )),
            }
        }
        None if offline => all.push(skipped(id::STORE, "store not checked (--offline)")),
        None => all.push(Check::fail(
            id::STORE,
            "store not checked: the catalog is not available",
            "fix `catalog` first",
        )),
    }
    Preconditions {
        checks: all,
        report,
        key,
        store,
    }
}

/// A check `--offline` does not make: a warning (it does not fail the report), said so.
fn skipped(id: crate::event::CheckId, message: impl Into<String>) -> Check {
    Check::warn(id, message, "run without --offline to check it")
}

/// Evaluates every precondition and sends each as an event.
async fn checks(plan: &Plan, catalog: &AnyCatalog, tx: &EventTx) -> Result<Checked, PublishError> {
    let Preconditions {
        checks: all,
        report,
        key,
        store,
    } = preconditions(plan, Reach::Online(catalog)).await;

    for c in &all {
        send(tx, Event::Check(c.clone())).await;
    }
    if all.iter().any(|c| !c.ok) {
        return Err(PublishError::Preconditions(all));
    }
    Ok(Checked {
        source: report.source.expect("git checks passed"),
        manifest: report.manifest.expect("manifest check passed"),
        key: key.expect("signing-key passed"),
        org: plan.org.clone().expect("catalog passed"),
        store: store.expect("store passed"),
    })
}
