//! `kill -9` of `pubdeck publish` at five points (during the build, at pack, sign, upload,
//! and between upload and register): nothing becomes visible in the catalog, and a rerun
//! succeeds. The failpoint env var pauses the pipeline exactly at a stage so the kill lands
//! there deterministically.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::Repo;
use pubdeck::catalog::{AnyCatalog, Catalog, EmbeddedCatalog};
use pubdeck::nix::sign::SecretKey;

const MANIFEST: &str = r#"version = 1
[install]
hello.pkg-path = "hello"
[build.slow]
version = "1.0"
command = '''
  if [ -n "${CRASHTEST_SLEEP:-}" ]; then
    echo $$ > "$CRASHTEST_PIDFILE"
    echo started
    exec sleep "$CRASHTEST_SLEEP"
  fi
  mkdir -p $out && echo done > $out/result
'''
"#;

fn publish_cmd(dir: &Path, tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pubdeck"));
    c.args(["publish", "slow", "--dir"])
        .arg(dir)
        .env("CI", "true")
        .env("PUBDECK_CATALOG", tmp.join("catalog.sqlite"))
        .env("PUBDECK_ORG", "myorg")
        .env("PUBDECK_SIGNING_KEY", tmp.join("k.key"))
        .env("PUBDECK_DATA_DIR", tmp.join("data"))
        .env("XDG_CONFIG_HOME", tmp.join("cfg"))
        .env_remove("PUBDECK_FAILPOINT_PAUSE")
        .env_remove("CRASHTEST_SLEEP")
        .env("CRASHTEST_PIDFILE", tmp.join("build.pid"))
        // The build sees these only when named (the build environment is an allow-list).
        .env("PUBDECK_BUILD_ENV", "CRASHTEST_SLEEP CRASHTEST_PIDFILE");
    c
}

/// Runs publish until a stderr line contains `marker`, then SIGKILLs it.
fn kill_at(dir: &Path, tmp: &Path, envs: &[(&str, &str)], marker: &str) {
    let mut cmd = publish_cmd(dir, tmp);
    cmd.envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(marker) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
    }
    let status = child.wait().unwrap();
    panic!("never saw {marker:?} (exit {status}):\n{}", seen.join("\n"));
}

#[tokio::test]
async fn kill_nine_at_five_points_leaves_nothing_visible_and_a_rerun_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = Repo::with_manifest(MANIFEST);
    let key = SecretKey::generate("myorg-1").unwrap();
    key.write_new(&tmp.path().join("k.key"), pubdeck::fsutil::write_new)
        .unwrap();
    let catalog = AnyCatalog::Embedded(
        EmbeddedCatalog::open(&tmp.path().join("catalog.sqlite"))
            .await
            .unwrap(),
    );
    catalog
        .create_catalog(
            "myorg",
            &format!("file://{}", tmp.path().join("store").display()),
            &[key.public().to_nix_string()],
        )
        .await
        .unwrap();

    let points: [(&[(&str, &str)], &str); 5] = [
        (&[("CRASHTEST_SLEEP", "60")], "| started"),
        (
            &[("PUBDECK_FAILPOINT_PAUSE", "pack")],
            "failpoint: paused at pack",
        ),
        (
            &[("PUBDECK_FAILPOINT_PAUSE", "sign")],
            "failpoint: paused at sign",
        ),
        (
            &[("PUBDECK_FAILPOINT_PAUSE", "upload")],
            "failpoint: paused at upload",
        ),
        (
            &[("PUBDECK_FAILPOINT_PAUSE", "register")],
            "failpoint: paused at register",
        ),
    ];
    for (envs, marker) in points {
        kill_at(&repo.work, tmp.path(), envs, marker);
        let visible = catalog.search("slow", 10).await.unwrap();
        assert!(
            visible.is_empty(),
            "visible after a kill at {marker:?}: {visible:?}"
        );
        assert!(catalog.show("myorg", "slow").await.is_err());
    }
    // The build that was running when pubdeck was killed died with it (no orphan).
    let pid: i32 = std::fs::read_to_string(tmp.path().join("build.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut alive = true;
    for _ in 0..100 {
        // SAFETY: signal 0 only checks for existence.
        alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !alive,
        "the build process {pid} outlived a kill -9 of pubdeck"
    );
    let out = publish_cmd(&repo.work, tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "myorg/slow@1.0"
    );
    let hits = catalog.search("slow", 10).await.unwrap();
    assert_eq!(hits[0].name, "myorg/slow");
}
