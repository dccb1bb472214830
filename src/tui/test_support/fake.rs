//! [`FakeBackend`]: the demo world of `pubdeck demo` (the sample environment's builds, the
//! seeded catalog) with a scripted pipeline and no I/O, for scripted tests, snapshots and
//! screenshots. It answers with the engine's own typed outcomes and error types, so its
//! results cannot drift from the real engine's (`tests/it/tui_contract.rs` compares them).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::build::{BuildError, Kept};
use crate::demo::{self, ORG};
use crate::event::{Direction, Event, Failure, Hinted, LogLines, Stage, Stream};
use crate::git::{Check, Pushed};
use crate::install::Installed;
use crate::publish::Published;
use crate::tui::Action;
use crate::tui::backend::{ActionTx, Backend};
use crate::tui::model::{
    BuildRow, JobKind, JobOutcome, PackageDetails, PackageRow, SystemBuild, build_rows,
};

const PUBLISHERS: [&str; 5] = ["alice", "bob", "carol", "dmitri", "erin"];
use crate::nix::nix32::ALPHABET as NIX32;
/// The system the demo builds are published for.
pub const SYSTEM: &str = "x86_64-linux";

/// A small deterministic generator (SplitMix64), so demo data never changes.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn nix32(mix: &mut Mix, n: usize) -> String {
    (0..n).map(|_| char::from(NIX32[mix.below(32)])).collect()
}

fn hex(mix: &mut Mix, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[mix.below(16)]))
        .collect()
}

/// A deterministic store path for `name-version`.
fn store_path(name: &str, version: &str) -> String {
    let mut mix = Mix(seed_of(&format!("{name}-{version}")));
    format!("/nix/store/{}-{name}-{version}", nix32(&mut mix, 32))
}

/// The demo catalog as `list_packages` returns it: the seeded packages, latest versions.
pub fn demo_packages() -> Vec<PackageRow> {
    demo::seed_packages()
        .into_iter()
        .map(|p| PackageRow {
            org: ORG.into(),
            version: p.versions.last().cloned().unwrap_or_default(),
            name: p.name,
            description: p.description,
        })
        .collect()
}

/// `n` packages in `orgs` orgs, named `lang-word-kind` like a large real catalog.
pub fn synthetic_packages(n: usize, orgs: usize) -> Vec<PackageRow> {
    const LANGS: [&str; 12] = [
        "py", "rs", "go", "js", "rb", "perl", "lua", "hs", "ml", "java", "c", "sh",
    ];
    const WORDS: [&str; 40] = [
        "auth", "billing", "cache", "config", "data", "deploy", "docs", "event", "feature", "geo",
        "image", "infra", "ingest", "json", "log", "mail", "metrics", "notify", "payment",
        "search", "secret", "user", "web", "queue", "stream", "crypto", "dh", "http", "grpc",
        "yaml", "toml", "csv", "xml", "sql", "redis", "kafka", "s3", "ldap", "oauth", "tls",
    ];
    const KINDS: [&str; 16] = [
        "api", "service", "worker", "client", "tools", "check", "proxy", "gateway", "exporter",
        "sync", "schema", "cli", "sdk", "agent", "runner", "lint",
    ];
    let mut mix = Mix(42);
    (0..n)
        .map(|i| {
            let (l, w, k) = (
                LANGS[i % LANGS.len()],
                WORDS[(i / LANGS.len()) % WORDS.len()],
                KINDS[(i / (LANGS.len() * WORDS.len())) % KINDS.len()],
            );
            let round = i / (LANGS.len() * WORDS.len() * KINDS.len());
            let name = if round == 0 {
                format!("{l}-{w}-{k}")
            } else {
                format!("{l}-{w}-{k}{round}")
            };
            PackageRow {
                org: format!("org{:03}", i % orgs.max(1)),
                name,
                version: format!("{}.{}.{}", mix.below(4), mix.below(20), mix.below(10)),
                description: format!("The {w} {k} for {l} projects"),
            }
        })
        .collect()
}

/// The `[build.*]` entries of the demo environment.
pub fn demo_builds() -> Vec<BuildRow> {
    // The sample's version.file is not on disk here: take it from the embedded sample.
    build_rows(&demo::sample_manifest())
        .into_iter()
        .map(|mut b| {
            if b.version.is_empty() {
                b.version = demo::sample_version(&b.name).unwrap_or_default();
            }
            b
        })
        .collect()
}

/// Publish preconditions with the engine's check ids; `pushed: false` fails `pushed`.
pub fn demo_checks(build: Option<&str>, pushed: bool) -> Vec<Check> {
    use crate::git::id;
    let build = build.unwrap_or("hello");
    vec![
        Check::pass(id::MANIFEST, "manifest .flox/env/manifest.toml is valid"),
        Check::pass(
            id::GIT_REPO,
            "environment is in git repository ~/demo/workspace",
        ),
        Check::pass(id::ENV_TRACKED, ".flox files are tracked"),
        Check::pass(id::CLEAN, "tracked files are clean"),
        Check::pass(id::UPSTREAM, "branch `main` tracks `origin/main`"),
        if pushed {
            Check::pass(id::PUSHED, "3f2a9c1 is on `origin`")
        } else {
            Check::fail(
                id::PUSHED,
                "commit 3f2a9c1 has not been pushed to `origin`",
                "run `git push origin main`",
            )
        },
        Check::pass(id::HAS_PACKAGES, "environment installs 3 packages"),
        Check::pass(id::BUILD_EXISTS, format!("build `{build}` exists")),
    ]
}

/// Install-readiness checks with the engine's ids (the `nix-config` warning as on a machine
/// without the catalog in its Nix configuration). `*-sync` packages show a package that is
/// not ready: no build for this system.
pub fn demo_readiness(package: &str) -> Vec<Check> {
    use crate::install::id;
    let system = if package.ends_with("-sync") {
        Check::fail(
            id::SYSTEM_BUILD,
            format!("{package} has builds for aarch64-darwin only, not {SYSTEM}"),
            format!("publish it from a {SYSTEM} machine"),
        )
    } else {
        Check::pass(
            id::SYSTEM_BUILD,
            format!("{package} has a build for {SYSTEM}"),
        )
    };
    vec![
        Check::pass(
            id::VISIBLE,
            format!("{package} is visible to you (catalog owner: demo)"),
        ),
        system,
        Check::pass(id::NARINFO, "the store has its narinfo"),
        Check::pass(
            id::SIGNATURE,
            format!(
                "signed by `{}`, a key catalog `{ORG}` trusts",
                demo::DEMO_KEY_NAME
            ),
        ),
        Check::pass(id::NAR, "its NAR is in the store"),
        Check::warn(
            id::NIX_CONFIG,
            "Nix is not configured for this catalog (pubdeck's own install does not need it)",
            "`pubdeck use myorg` adds to nix.conf: extra-substituters = file:///demo/store ; extra-trusted-public-keys = myorg-1:7bD4Xw0xJm8qCk0h3ZB2Jw0o3n9pE5cGk2nq8bHXQwY=",
        ),
        Check::pass(id::ENVIRONMENT, "environment ~/demo/workspace"),
        Check::pass(id::NOT_INSTALLED, format!("{package} is not installed yet")),
    ]
}

/// The review the demo's publish of `build` stops at: its closure and a diff against the
/// previous version.
pub fn demo_review(build: &str, version: &str) -> crate::publish::review::Review {
    use crate::publish::review::{
        FileChange, FileDiff, FileEntry, Node, Previous, Review, ReviewPath,
    };
    let path = store_path(build, version);
    Review {
        reference: format!("{}/{build}@{version}", demo::ORG),
        system: SYSTEM.into(),
        catalog: "the local catalog file".into(),
        org: demo::ORG.into(),
        store_url: "file:///demo/store".into(),
        key_name: demo::DEMO_KEY_NAME.into(),
        store_path: path.clone(),
        closure: vec![
            ReviewPath {
                store_path: "/nix/store/9x4kqg0l1wf2b3hjc1yq7m8d2s6r5p0a-libgreet-0.3".into(),
                nar_size: 61_440,
                file_size: 20_480,
                in_store: true,
            },
            ReviewPath {
                store_path: path.clone(),
                nar_size: 24_576,
                file_size: 8_192,
                in_store: false,
            },
        ],
        nar_total: 86_016,
        upload_bytes: 8_192,
        previous: Some(Previous {
            version: "0.9.0".into(),
            store_path: store_path(build, "0.9.0"),
            nar_size: 23_040,
            size_delta: 1_536,
            diff: Some(FileDiff {
                added: vec![FileEntry {
                    path: format!("share/doc/{build}/CHANGES"),
                    node: Node::Regular {
                        size: 812,
                        executable: false,
                    },
                }],
                removed: vec![],
                changed: vec![FileChange {
                    path: format!("bin/{build}"),
                    before: Node::Regular {
                        size: 16_210,
                        executable: true,
                    },
                    after: Node::Regular {
                        size: 16_934,
                        executable: true,
                    },
                }],
            }),
            note: None,
        }),
    }
}

/// What `show org/name` returns for a demo package.
pub fn demo_details(row: &PackageRow) -> PackageDetails {
    let mut mix = Mix(seed_of(&row.name));
    let versions: Vec<String> = demo::seed_packages()
        .into_iter()
        .find(|p| p.name == row.name)
        .map(|p| p.versions.into_iter().rev().collect())
        .unwrap_or_else(|| vec![row.version.clone()]);
    let builds = versions
        .iter()
        .map(|v| SystemBuild {
            version: v.clone(),
            system: SYSTEM.into(),
            store_path: store_path(&row.name, v),
            publisher: PUBLISHERS[mix.below(PUBLISHERS.len())].into(),
            published_at: format!(
                "2026-0{}-{:02}T10:{:02}:00Z",
                1 + mix.below(9),
                1 + mix.below(28),
                mix.below(60)
            ),
            revision: hex(&mut mix, 40),
            key: demo::DEMO_KEY_NAME.into(),
            store_url: "file:///demo/store".into(),
            nar_size: 200_000 + mix.next() % 40_000_000,
            closure: Vec::new(),
        })
        .collect();
    PackageDetails {
        org: row.org.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        versions,
        yanked: Vec::new(),
        builds,
        repository: "https://git.myorg.example/platform/tools.git".into(),
    }
}

/// The events of a scripted publish (or build) of `build`, each after a delay.
pub fn publish_script(build: &str, version: &str, kind: JobKind) -> Vec<(Duration, Event)> {
    let ms = Duration::from_millis;
    let mut ev = Vec::new();
    let stage = |ev: &mut Vec<(Duration, Event)>, stage: Stage, secs: f64| {
        ev.push((ms(0), Event::StageStarted { stage }));
        ev.push((
            Duration::from_secs_f64(secs),
            Event::StageFinished {
                stage,
                duration: Duration::from_secs_f64(secs),
                ok: true,
            },
        ));
    };
    let log = |line: String, stream: Stream| Event::Log {
        stream,
        lines: LogLines::one(line),
    };
    if kind == JobKind::Publish {
        stage(&mut ev, Stage::Check, 0.2);
    }
    ev.push((
        ms(0),
        Event::StageStarted {
            stage: Stage::Clone,
        },
    ));
    ev.push((
        ms(300),
        Event::Cloned {
            rev: "3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39".into(),
            dir: "/tmp/pubdeck-build-x7Qa".into(),
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Clone,
            duration: ms(300),
            ok: true,
        },
    ));
    ev.push((
        ms(0),
        Event::StageStarted {
            stage: Stage::Build,
        },
    ));
    ev.push((
        ms(50),
        log(
            "\x1b[1m+ bash -e -c 'make install PREFIX=$out'\x1b[0m".to_string(),
            Stream::Stderr,
        ),
    ));
    let files = [
        "main.c", "greet.c", "config.c", "args.c", "output.c", "locale.c",
    ];
    for (i, f) in files.iter().enumerate() {
        ev.push((
            ms(120),
            log(format!("\x1b[32m  CC\x1b[0m      src/{f}"), Stream::Stdout),
        ));
        if i == 2 {
            ev.push((
                ms(40),
                log(
                    format!("\x1b[1msrc/{f}:41:12: \x1b[35mwarning:\x1b[0m\x1b[1m unused variable 'len'\x1b[0m [-Wunused-variable]"),
                    Stream::Stderr,
                ),
            ));
        }
    }
    ev.push((
        ms(150),
        log(format!("\x1b[34m  LD\x1b[0m      {build}"), Stream::Stdout),
    ));
    ev.push((
        ms(80),
        log(
            "\x1b[33m  TEST\x1b[0m    42 passed, 0 failed".into(),
            Stream::Stdout,
        ),
    ));
    ev.push((
        ms(60),
        log(format!("  INSTALL $out/bin/{build}"), Stream::Stdout),
    ));
    let failing = build == "broken";
    ev.push((
        ms(20),
        Event::BuildExited {
            code: Some(if failing { 3 } else { 0 }),
            signal: None,
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Build,
            duration: ms(1340),
            ok: !failing,
        },
    ));
    if kind == JobKind::BuildOnly || failing {
        return ev;
    }
    ev.push((ms(0), Event::StageStarted { stage: Stage::Pack }));
    let total: u64 = 48_500_000;
    ev.push((
        ms(400),
        Event::Packed {
            store_path: store_path(build, version),
            nar_hash: "sha256:0c5v2lp6yyw8jsvwmg4l2f0v8hcj4mn1sb2bdaf6sgrl5km6ajlq".into(),
            nar_size: 131_072_000,
            file_size: total,
            dependency: false,
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Pack,
            duration: ms(400),
            ok: true,
        },
    ));
    ev.push((ms(0), Event::StageStarted { stage: Stage::Sign }));
    ev.push((
        ms(10),
        Event::Signed {
            key_name: demo::DEMO_KEY_NAME.into(),
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Sign,
            duration: ms(10),
            ok: true,
        },
    ));
    if kind == JobKind::Publish {
        ev.push((ms(0), Event::Review(Box::new(demo_review(build, version)))));
    }
    ev.push((
        ms(0),
        Event::StageStarted {
            stage: Stage::Upload,
        },
    ));
    let steps = 40u64;
    let key = "nar/0c5v2lp6yyw8jsvwmg4l2f0v8hcj4mn1sb2bdaf6sgrl5km6ajlq.nar.zst".to_string();
    for i in 1..=steps {
        let sent = total * i / steps;
        let rate = 12_400_000.0;
        ev.push((
            ms(100),
            Event::Transfer {
                direction: Direction::Upload,
                key: key.clone(),
                sent,
                total,
                rate,
                eta: Some((total - sent) as f64 / rate),
                retries: u32::from(i > 12),
            },
        ));
    }
    ev.push((
        ms(0),
        Event::TransferDone {
            direction: Direction::Upload,
            key,
            size: total,
            moved: total,
            elapsed: ms(4000),
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Upload,
            duration: ms(4000),
            ok: true,
        },
    ));
    ev.push((
        ms(0),
        Event::StageStarted {
            stage: Stage::Register,
        },
    ));
    ev.push((
        ms(200),
        Event::StageFinished {
            stage: Stage::Register,
            duration: ms(200),
            ok: true,
        },
    ));
    ev.push((
        ms(0),
        Event::Published {
            reference: format!("{ORG}/{build}@{version}"),
        },
    ));
    ev
}

/// The outcome the real engine gives a job of the demo environment.
pub fn job_outcome(kind: JobKind, build: &str, version: &str) -> JobOutcome {
    if build == "broken" {
        let e = BuildError::Failed {
            name: build.into(),
            code: 3,
        };
        return JobOutcome::Failed(e.failure());
    }
    match kind {
        JobKind::Publish => JobOutcome::Published(Box::new(Published {
            org: ORG.into(),
            package: build.into(),
            version: version.into(),
            system: SYSTEM.into(),
            store_path: store_path(build, version),
            narinfo_url: "file:///demo/store/0c5v2lp6yyw8jsvwmg4l2f0v8hcj4m.narinfo".into(),
            nar_hash: "sha256:0c5v2lp6yyw8jsvwmg4l2f0v8hcj4mn1sb2bdaf6sgrl5km6ajlq".into(),
            nar_size: 131_072_000,
            file_size: 48_500_000,
            already_published: false,
            durations: Vec::new(),
        })),
        JobKind::BuildOnly => JobOutcome::Built(Kept {
            build: build.into(),
            version: Some(version.into()),
            path: PathBuf::from(format!(
                "/demo/workspace/.flox/cache/pubdeck/result-{build}"
            )),
            link: Some(PathBuf::from(format!("/demo/workspace/result-{build}"))),
            link_error: None,
        }),
    }
}

/// The fake starts with the current commit not on the remote (the `pushed` check fails),
/// so the push fix-it can be shown.
#[derive(Debug, Default)]
struct State {
    pushed: bool,
    /// Version overrides from `set_version`.
    versions: Vec<(String, String)>,
    /// Logs `save_log` was asked to write: (build, lines).
    saved_logs: Vec<(String, Vec<String>)>,
    /// Versions yanked with `yank`: (package reference, version).
    yanked: Vec<(String, String)>,
    /// Where the answer to the running publish's review goes.
    review: Option<tokio::sync::oneshot::Sender<crate::publish::ReviewAnswer>>,
    job: Option<CancellationToken>,
}

/// A backend over the demo world with a scripted pipeline. `speed` scales every delay
/// (`0.0`: everything happens at once, for tests).
#[derive(Debug, Clone)]
pub struct FakeBackend {
    state: Arc<Mutex<State>>,
    speed: f64,
    packages: Arc<Vec<PackageRow>>,
}

impl Default for FakeBackend {
    fn default() -> Self {
        FakeBackend::new()
    }
}

async fn send(tx: &ActionTx, a: Action) -> bool {
    tx.send(a).await.is_ok()
}

/// Sends `a` from a synchronous call.
fn send_later(tx: &ActionTx, a: Action) {
    let tx = tx.clone();
    tokio::spawn(async move { tx.send(a).await });
}

impl FakeBackend {
    /// Real-time demo: a publish takes about 8 seconds.
    pub fn new() -> FakeBackend {
        FakeBackend::with_speed(1.0)
    }

    /// No delays (tests).
    pub fn instant() -> FakeBackend {
        FakeBackend::with_speed(0.0)
    }

    pub fn with_speed(speed: f64) -> FakeBackend {
        FakeBackend {
            state: Arc::default(),
            speed,
            packages: Arc::new(demo_packages()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn delay(&self, d: Duration) -> Option<Duration> {
        let d = d.mul_f64(self.speed);
        (!d.is_zero()).then_some(d)
    }

    fn run_job(&self, kind: JobKind, build: String, tx: &ActionTx) {
        let token = CancellationToken::new();
        if let Some(old) = self.state().job.replace(token.clone()) {
            old.cancel();
        }
        // A version set in this session, else what the clean build resolves.
        let version = self
            .state()
            .versions
            .iter()
            .rev()
            .find(|(n, _)| *n == build)
            .map(|(_, v)| v.clone())
            .or_else(|| demo::sample_version(&build))
            .unwrap_or_default();
        let script = publish_script(&build, &version, kind);
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            let mut outcome = job_outcome(kind, &build, &version);
            for (delay, event) in script {
                if let Some(d) = this.delay(delay) {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = token.cancelled() => {}
                    }
                }
                if token.is_cancelled() {
                    outcome = JobOutcome::Cancelled;
                    break;
                }
                let review = matches!(event, Event::Review(_));
                let answer = if review {
                    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
                    this.state().review = Some(answer_tx);
                    Some(answer_rx)
                } else {
                    None
                };
                if !send(&tx, Action::Engine(event)).await {
                    return;
                }
                // Like the engine: nothing is uploaded before the review is answered.
                if let Some(answer) = answer {
                    let a = tokio::select! {
                        a = answer => a.unwrap_or(crate::publish::ReviewAnswer::Decline),
                        _ = token.cancelled() => crate::publish::ReviewAnswer::Decline,
                    };
                    if a == crate::publish::ReviewAnswer::Decline {
                        outcome = JobOutcome::Cancelled;
                        break;
                    }
                }
            }
            send(
                &tx,
                Action::JobFinished {
                    kind,
                    build,
                    outcome,
                },
            )
            .await;
        });
    }
}

impl Backend for FakeBackend {
    fn builds(&self) -> Vec<BuildRow> {
        let st = self.state();
        demo_builds()
            .into_iter()
            .map(|mut b| {
                if let Some((_, v)) = st.versions.iter().rev().find(|(n, _)| *n == b.name) {
                    b.version = v.clone();
                }
                b
            })
            .collect()
    }

    fn run_checks(&self, build: Option<String>, _fetch: bool, tx: &ActionTx) {
        let pushed = self.state().pushed;
        send_later(tx, Action::Checks(demo_checks(build.as_deref(), pushed)));
    }

    fn publish(&self, build: String, tx: &ActionTx) {
        self.run_job(JobKind::Publish, build, tx);
    }

    fn build_only(&self, build: String, tx: &ActionTx) {
        self.run_job(JobKind::BuildOnly, build, tx);
    }

    fn cancel(&self) {
        if let Some(t) = self.state().job.take() {
            t.cancel();
        }
    }

    fn push(&self, tx: &ActionTx) {
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            if let Some(d) = this.delay(Duration::from_millis(600)) {
                tokio::time::sleep(d).await;
            }
            this.state().pushed = true;
            let pushed = Pushed {
                branch: "main".into(),
                upstream: "origin/main".into(),
            };
            send(&tx, Action::PushFinished(Ok(pushed))).await;
        });
    }

    fn commit_bump(&self, build: String, version: String, tx: &ActionTx) {
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            if let Some(d) = this.delay(Duration::from_millis(400)) {
                tokio::time::sleep(d).await;
            }
            this.state().pushed = true;
            let result = Ok(crate::git::Committed {
                rev: "5e1f0c2d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d".into(),
                pushed: Pushed {
                    branch: "main".into(),
                    upstream: "origin/main".into(),
                },
            });
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
        let result = crate::manifest::check_version(&version)
            .map(|()| {
                self.state().versions.push((build.clone(), version.clone()));
                version
            })
            .map_err(|e| e.failure());
        send_later(tx, Action::VersionSet { build, result });
    }

    fn save_log(&self, build: String, lines: Vec<String>, tx: &ActionTx) {
        // The fake keeps the lines instead of writing them.
        let path = std::path::PathBuf::from(format!("/fake/logs/{build}.log"));
        self.state().saved_logs.push((build, lines));
        send_later(tx, Action::LogSaved(Ok(path)));
    }

    fn load_packages(&self, etag: Option<String>, tx: &ActionTx) {
        let a = match etag.as_deref() {
            Some("demo-1") => Action::PackagesUnchanged,
            _ => Action::Packages {
                packages: self.packages.as_ref().clone().into(),
                etag: Some("demo-1".into()),
            },
        };
        send_later(tx, a);
    }

    fn package_details(&self, package: String, tx: &ActionTx) {
        let row = self.packages.iter().find(|p| p.reference() == package);
        let a = match row {
            Some(row) => {
                let mut d = demo_details(row);
                let state = self.state.lock().unwrap();
                d.yanked = state
                    .yanked
                    .iter()
                    .filter(|(p, _)| *p == package)
                    .map(|(_, v)| v.clone())
                    .collect();
                Action::Details(d)
            }
            None => Action::Error(Failure::new(
                format!("package {package} not found"),
                Some("check the name with `pubdeck search`".into()),
            )),
        };
        send_later(tx, a);
    }

    fn readiness(&self, package: String, tx: &ActionTx) {
        let checks = demo_readiness(&package);
        send_later(tx, Action::Readiness { package, checks });
    }

    fn install(&self, package: String, tx: &ActionTx) {
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            let total = 8_000_000u64;
            for i in 0..=8u64 {
                if let Some(d) = this.delay(Duration::from_millis(150)) {
                    tokio::time::sleep(d).await;
                }
                let a = Action::InstallProgress {
                    package: package.clone(),
                    done: total * i / 8,
                    total: Some(total),
                };
                send(&tx, a).await;
            }
            let (name, pinned) = match package.split_once('@') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (package.clone(), None),
            };
            let row = this.packages.iter().find(|p| p.reference() == name);
            let result = match row {
                Some(row) => {
                    let version = pinned.unwrap_or_else(|| row.version.clone());
                    let path = PathBuf::from(store_path(&row.name, &version));
                    let closure = vec![store_path(&row.name, &version)];
                    Ok(Installed {
                        package: name.clone(),
                        version,
                        system: SYSTEM.into(),
                        store_path: path.display().to_string(),
                        executables: vec![path.join("bin").join(&row.name)],
                        path,
                        manifest: PathBuf::from("/demo/workspace/.flox/env/manifest.toml"),
                        id: row.name.clone(),
                        closure,
                        store: "pubdeck",
                        reused: 0,
                    })
                }
                None => Err(Failure::new(format!("package {package} not found"), None)),
            };
            send(&tx, Action::InstallFinished { package, result }).await;
        });
    }

    fn answer_review(&self, answer: crate::publish::ReviewAnswer) {
        if let Some(tx) = self.state().review.take() {
            let _ = tx.send(answer);
        }
    }

    fn yank(&self, package: String, version: String, yanked: bool, tx: &ActionTx) {
        let row = self.packages.iter().find(|p| p.reference() == package);
        let result = match row {
            Some(row) => {
                let d = demo_details(row);
                if !d.versions.contains(&version) {
                    Err(Failure::new(
                        format!("{package} has no version {version}"),
                        None,
                    ))
                } else {
                    let mut state = self.state.lock().unwrap();
                    let key = (package.clone(), version.clone());
                    let was = state.yanked.contains(&key);
                    if yanked && !was {
                        state.yanked.push(key);
                    } else if !yanked {
                        state.yanked.retain(|k| *k != key);
                    }
                    let latest = d
                        .versions
                        .iter()
                        .find(|v| !state.yanked.contains(&(package.clone(), (*v).clone())))
                        .cloned()
                        .unwrap_or_default();
                    Ok(crate::catalog::YankOutcome {
                        name: package.clone(),
                        version,
                        yanked,
                        changed: u64::from(was != yanked),
                        latest_version: latest,
                    })
                }
            }
            None => Err(Failure::new(format!("package {package} not found"), None)),
        };
        send_later(tx, Action::YankFinished { package, result });
    }
}
