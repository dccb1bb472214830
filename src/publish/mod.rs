//! The publish pipeline: checks → dedup → clone → build → pack → sign → upload → register.
//!
//! One function, [`run`], driven identically by the CLI, the TUI and tests; it reports
//! through the [`Event`] stream. Invariants: every precondition is evaluated before anything
//! is built; the NAR is in the store before its narinfo, the narinfo before the catalog
//! registration, so nothing is visible to anyone before its bytes are complete; cancelling
//! at any point leaves no temp dirs and nothing registered.

pub mod repro;
pub mod review;

mod preconditions;
mod reproduce;
mod upload;

use preconditions::checks;
pub use preconditions::{Preconditions, Reach, preconditions};
use reproduce::verify_reproducible;
pub use reproduce::{check_reproducible, check_same};
use upload::{Against, pack, restore_missing, upload_closure};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::build;
use crate::cache::Compression;
use crate::catalog::{
    Addressing, AnyCatalog, Catalog, CatalogError, CheckBuild, ClosurePath, NewBuild,
    RegisterStatus,
};
use crate::closure;
use crate::event::{Event, EventTx, Stage};
use crate::git::{self, Check};
use crate::nix::narinfo::NarInfo;
use crate::nix::sign::SecretKey;
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
    let (mut closure, pack_dir) = packed?;
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
    // The dependencies packed in this publish were signed as they were packed (by this key).
    let signed = std::mem::take(&mut closure.signed);
    let n = signed.len();
    let infos: Vec<NarInfo> = signed
        .into_iter()
        .chain(closure.packed[n..].iter().map(|p| p.narinfo(&c.key)))
        .collect();
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
