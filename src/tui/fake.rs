//! [`FakeBackend`]: deterministic demo data and a scripted publish, for tests, screenshots
//! and trying the workbench without an engine.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::action::Action;
use super::backend::{ActionTx, Backend};
use super::model::{BuildRow, JobKind, PackageDetails, PackageRow, SystemBuild};
use crate::event::{Event, Stage, Stream};
use crate::git::Check;

/// The organisation of the demo catalog.
pub const ORG: &str = "myorg";

const PREFIXES: [&str; 24] = [
    "auth", "billing", "cache", "cli", "config", "data", "deploy", "docs", "event", "feature",
    "geo", "image", "infra", "ingest", "json", "log", "mail", "metrics", "notify", "payment",
    "search", "secret", "user", "web",
];
const SUFFIXES: [&str; 16] = [
    "api", "service", "worker", "client", "tools", "check", "proxy", "gateway", "exporter", "sync",
    "schema", "cli", "sdk", "agent", "runner", "lint",
];
const PUBLISHERS: [&str; 5] = ["alice", "bob", "carol", "dmitri", "erin"];
const SYSTEMS: [&str; 2] = ["x86_64-linux", "aarch64-darwin"];
const NIX32: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";

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

fn describe(prefix: &str, suffix: &str) -> String {
    let what = match suffix {
        "api" => "HTTP API",
        "service" => "backend service",
        "worker" => "background job worker",
        "client" => "client library",
        "tools" => "command-line tools",
        "check" => "validation checks for CI",
        "proxy" => "reverse proxy",
        "gateway" => "gateway",
        "exporter" => "Prometheus exporter",
        "sync" => "synchronisation daemon",
        "schema" => "schemas and migrations",
        "cli" => "command-line interface",
        "sdk" => "SDK",
        "agent" => "node agent",
        "runner" => "task runner",
        _ => "linter",
    };
    format!("{} {what}", capitalise(prefix))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn version(mix: &mut Mix) -> String {
    format!("{}.{}.{}", mix.below(4), mix.below(20), mix.below(10))
}

/// `n` packages `org/<prefix>-<suffix>[-k]` with versions and descriptions, deterministic.
pub fn synthetic_packages(n: usize) -> Vec<PackageRow> {
    let mut mix = Mix(42);
    let mut out = Vec::with_capacity(n);
    let combos = PREFIXES.len() * SUFFIXES.len();
    for i in 0..n {
        let (p, s) = (
            PREFIXES[i % PREFIXES.len()],
            SUFFIXES[(i / PREFIXES.len()) % SUFFIXES.len()],
        );
        let round = i / combos;
        let name = if round == 0 {
            format!("{p}-{s}")
        } else {
            format!("{p}-{s}-{round}")
        };
        out.push(PackageRow {
            org: ORG.into(),
            name,
            version: version(&mut mix),
            description: describe(p, s),
        });
    }
    out
}

/// The demo catalog: the demo builds plus ~300 generated packages, sorted by name.
pub fn demo_packages() -> Vec<PackageRow> {
    let mut pkgs: Vec<PackageRow> = demo_builds()
        .into_iter()
        .map(|b| PackageRow {
            org: ORG.into(),
            name: b.name,
            version: b.version,
            description: b.description,
        })
        .collect();
    pkgs.extend(
        synthetic_packages(300)
            .into_iter()
            .filter(|p| !pkgs_has(&p.name)),
    );
    pkgs.sort_by(|a, b| a.name.cmp(&b.name));
    pkgs
}

fn pkgs_has(name: &str) -> bool {
    demo_builds().iter().any(|b| b.name == name)
}

/// The `[build.*]` entries of the demo environment.
pub fn demo_builds() -> Vec<BuildRow> {
    let row = |name: &str, version: &str, description: &str| BuildRow {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        last: None,
    };
    vec![
        row("hello", "1.2.3", "Prints a friendly greeting"),
        row(
            "json-check",
            "2.0.1",
            "Validates JSON documents against schemas",
        ),
        row("log-shipper", "0.9.0", "Ships service logs to the archive"),
        row("api-docs", "2024.11", "Static API documentation site"),
    ]
}

/// Publish preconditions; `pushed: false` makes the `pushed` check fail.
pub fn demo_checks(build: Option<&str>, pushed: bool) -> Vec<Check> {
    let build = build.unwrap_or("hello");
    vec![
        Check::pass("manifest", "manifest .flox/env/manifest.toml is valid"),
        Check::pass(
            "git-repo",
            "environment is in git repository ~/src/services",
        ),
        Check::pass("env-tracked", ".flox files are tracked"),
        Check::pass("clean", "tracked files are clean"),
        Check::pass("upstream", "branch main tracks origin/main"),
        if pushed {
            Check::pass("pushed", "commit 3f2a9c1 is on origin/main")
        } else {
            Check::fail(
                "pushed",
                "commit 3f2a9c1 is not on origin/main (2 commits ahead)",
                "git push",
            )
        },
        Check::pass("has-packages", "environment installs 3 packages"),
        Check::pass("build-exists", format!("build '{build}' exists")),
    ]
}

/// Install-readiness checks for a package (one fails for `*-sync` packages).
pub fn demo_readiness(package: &str) -> Vec<Check> {
    let mut checks = vec![
        Check::pass("visible", format!("{package} is visible to you")),
        Check::pass("key-trusted", "signed by myorg-1, a trusted key"),
        Check::pass("store", "store s3://myorg-cache is reachable"),
    ];
    if package.ends_with("-sync") {
        checks.push(Check::fail(
            "system",
            "no build for x86_64-linux (only aarch64-darwin)",
            "publish it from an x86_64-linux machine",
        ));
    } else {
        checks.push(Check::pass("system", "a build exists for x86_64-linux"));
    }
    checks.push(Check::pass("not-installed", "not yet in [install]"));
    checks
}

fn nix32(mix: &mut Mix, n: usize) -> String {
    (0..n).map(|_| char::from(NIX32[mix.below(32)])).collect()
}

fn hex(mix: &mut Mix, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[mix.below(16)]))
        .collect()
}

/// What `show org/name` returns for a demo package.
pub fn demo_details(row: &PackageRow) -> PackageDetails {
    let mut mix = Mix(seed_of(&row.name));
    let mut versions = vec![row.version.clone()];
    let mut parts: Vec<u64> = row
        .version
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    for _ in 0..2 {
        if let Some(last) = parts.last_mut() {
            if *last == 0 {
                break;
            }
            *last -= 1;
            versions.push(
                parts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            );
        }
    }
    let mut builds = Vec::new();
    for (vi, v) in versions.iter().enumerate().take(2) {
        for system in SYSTEMS.iter().take(if vi == 0 { 2 } else { 1 }) {
            let store_hash = nix32(&mut mix, 32);
            builds.push(SystemBuild {
                version: v.clone(),
                system: (*system).into(),
                store_path: format!("/nix/store/{store_hash}-{}-{v}", row.name),
                publisher: PUBLISHERS[mix.below(PUBLISHERS.len())].into(),
                published_at: format!(
                    "2025-0{}-{:02}T10:{:02}:00Z",
                    6 - vi,
                    1 + mix.below(28),
                    mix.below(60)
                ),
                revision: hex(&mut mix, 40),
                key: "myorg-1".into(),
                store_url: format!("s3://myorg-cache/{store_hash}.narinfo"),
                nar_size: 200_000 + mix.next() % 40_000_000,
            });
        }
    }
    PackageDetails {
        org: row.org.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        versions,
        builds,
        repository: format!("https://git.example.com/myorg/{}.git", row.name),
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
    let log = |line: String, stream: Stream| Event::Log { stream, line };
    stage(&mut ev, Stage::Check, 0.2);
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
    ev.push((
        ms(20),
        Event::BuildExited {
            code: Some(0),
            signal: None,
        },
    ));
    ev.push((
        ms(0),
        Event::StageFinished {
            stage: Stage::Build,
            duration: ms(1340),
            ok: true,
        },
    ));
    if kind == JobKind::BuildOnly {
        return ev;
    }
    ev.push((ms(0), Event::StageStarted { stage: Stage::Pack }));
    let total: u64 = 48_500_000;
    ev.push((
        ms(400),
        Event::Packed {
            store_path: format!("/nix/store/1b9p07z77phvv2hf6gm9f28syp39f1ag-{build}-{version}"),
            nar_hash: "sha256:0c5v2lp6yyw8jsvwmg4l2f0v8hcj4mn1sb2bdaf6sgrl5km6ajlq".into(),
            nar_size: 131_072_000,
            file_size: total,
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
            key_name: "myorg-1".into(),
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
    ev.push((
        ms(0),
        Event::StageStarted {
            stage: Stage::Upload,
        },
    ));
    let steps = 40u64;
    for i in 1..=steps {
        let sent = total * i / steps;
        let rate = 12_400_000.0;
        ev.push((
            ms(100),
            Event::Upload {
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

#[derive(Debug, Default)]
struct State {
    pushed: bool,
    /// Version overrides from `set_version`.
    versions: Vec<(String, String)>,
    job: Option<CancellationToken>,
}

/// A backend with demo data and a scripted pipeline. `speed` scales every delay
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
        let version = self
            .builds()
            .into_iter()
            .find(|b| b.name == build)
            .map(|b| b.version)
            .unwrap_or_default();
        let script = publish_script(&build, &version, kind);
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            let mut result = Ok(match kind {
                JobKind::Publish => format!("{ORG}/{build}@{version}"),
                JobKind::BuildOnly => format!("/tmp/pubdeck-out-{build}"),
            });
            for (delay, event) in script {
                if let Some(d) = this.delay(delay) {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = token.cancelled() => {}
                    }
                }
                if token.is_cancelled() {
                    result = Err("cancelled".to_string());
                    break;
                }
                if tx.send(Action::Engine(event)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Action::JobFinished {
                kind,
                build,
                result,
            });
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
        let _ = tx.send(Action::Checks(demo_checks(build.as_deref(), pushed)));
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
            let _ = tx.send(Action::PushFinished(Ok(
                "main -> origin/main (2 commits)".into()
            )));
        });
    }

    fn set_version(&self, build: String, version: String, tx: &ActionTx) {
        self.state().versions.push((build.clone(), version.clone()));
        let _ = tx.send(Action::VersionSet {
            build,
            result: Ok(version),
        });
    }

    fn load_packages(&self, etag: Option<String>, tx: &ActionTx) {
        let _ = tx.send(match etag.as_deref() {
            Some("demo-1") => Action::PackagesUnchanged,
            _ => Action::Packages {
                packages: self.packages.as_ref().clone(),
                etag: Some("demo-1".into()),
            },
        });
    }

    fn package_details(&self, package: String, tx: &ActionTx) {
        let row = self.packages.iter().find(|p| p.reference() == package);
        let _ = tx.send(match row {
            Some(row) => Action::Details(demo_details(row)),
            None => Action::Error(format!("{package} not found in the catalog")),
        });
    }

    fn readiness(&self, package: String, tx: &ActionTx) {
        let checks = demo_readiness(&package);
        let _ = tx.send(Action::Readiness { package, checks });
    }

    fn install(&self, package: String, tx: &ActionTx) {
        let (tx, this) = (tx.clone(), self.clone());
        tokio::spawn(async move {
            let total = 8_000_000u64;
            for i in 0..=8u64 {
                if let Some(d) = this.delay(Duration::from_millis(150)) {
                    tokio::time::sleep(d).await;
                }
                let _ = tx.send(Action::InstallProgress {
                    package: package.clone(),
                    message: "downloading".into(),
                    done: total * i / 8,
                    total: Some(total),
                });
            }
            let _ = tx.send(Action::InstallFinished {
                package: package.clone(),
                result: Ok("verified, unpacked, added to [install]".into()),
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_data_is_deterministic_and_unique() {
        let a = demo_packages();
        assert_eq!(a, demo_packages());
        assert!(a.len() >= 300);
        let mut names: Vec<_> = a.iter().map(|p| &p.name).collect();
        names.dedup();
        assert_eq!(names.len(), a.len());
        assert_eq!(synthetic_packages(100_000).len(), 100_000);
        assert_eq!(demo_details(&a[0]), demo_details(&a[0]));
    }

    #[test]
    fn script_ends_with_published() {
        let s = publish_script("hello", "1.2.3", JobKind::Publish);
        assert!(matches!(s.last(), Some((_, Event::Published { .. }))));
        let b = publish_script("hello", "1.2.3", JobKind::BuildOnly);
        assert!(!b.iter().any(|(_, e)| matches!(e, Event::Upload { .. })));
    }
}
