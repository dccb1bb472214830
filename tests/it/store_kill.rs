//! `pubdeck store put` SIGKILLed midway resumes from its journal on the next run.
//! Needs the binary to dispatch `pubdeck store …` to `cli::store::run`.

use crate::common::s3 as s3srv;

use std::process::Stdio;
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use s3srv::{ACCESS_KEY, SECRET_KEY, TestS3};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const MIB: u64 = 1024 * 1024;

fn put_command(server: &TestS3, file: &std::path::Path, journal: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pubdeck"));
    cmd.args(["store", "put"])
        .arg(file)
        .arg("nar/killed.nar")
        .args(["--store", &server.url()])
        .args(["--part-size", "5MiB", "--concurrency", "2"])
        .arg("--journal-dir")
        .arg(journal)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        // The test server is a loopback endpoint: the user trusts it in their config.
        .env(
            "XDG_CONFIG_HOME",
            server.trusting_config_home(journal.parent().unwrap()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Parse "... sent S of T bytes (resumed R) ..." from the summary line.
fn summary(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.split(": sent ").nth(1)?;
    let mut words = rest.split([' ', '(', ')']).filter(|w| !w.is_empty());
    let sent = words.next()?.parse().ok()?;
    let total = words.nth(1)?.parse().ok()?;
    let resumed = words.nth(2)?.parse().ok()?;
    Some((sent, total, resumed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_upload_resumes_from_journal() {
    let server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let mut data = vec![0u8; size as usize];
    rand::rngs::StdRng::seed_from_u64(9).fill_bytes(&mut data);
    let file = dir.path().join("k.nar");
    std::fs::write(&file, &data).unwrap();
    let journal = dir.path().join("journal");

    let mut child = put_command(&server, &file, &journal)
        .spawn()
        .expect("spawn pubdeck");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut parts_done = 0;
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        if line.starts_with("part ") && line.contains(" done") {
            parts_done += 1;
            if parts_done == 3 {
                break;
            }
        }
        assert!(
            !line.contains(": sent "),
            "finished before it could be killed: {line}"
        );
    }
    assert_eq!(parts_done, 3);
    child.start_kill().expect("SIGKILL");
    let status = child.wait().await.unwrap();
    assert!(!status.success());
    assert!(!server.object_path("nar/killed.nar").exists());
    // (a temp file of a save the kill interrupted may sit beside it; it is not a journal)
    let journals = std::fs::read_dir(&journal)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("upload-") && name.ends_with(".json")
        })
        .count();
    assert_eq!(journals, 1, "one journal left");

    server.set_part_delay(Duration::ZERO);
    let out = put_command(&server, &file, &journal)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(": sent "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let (sent, total, resumed) = summary(line).unwrap_or_else(|| panic!("bad summary {line}"));
    assert_eq!(total, size);
    assert!(resumed >= 3 * 5 * MIB, "{line}");
    assert!(sent < size, "{line}");
    assert_eq!(sent + resumed, size, "{line}");
    assert_eq!(
        std::fs::read(server.object_path("nar/killed.nar")).unwrap(),
        data
    );
    // The journal is gone; the only thing that may stay is the temp file of a save the kill
    // interrupted (removed by a later run once it is a minute old).
    let left: Vec<String> = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(pubdeck::fsutil::TEMP_PREFIX))
        .collect();
    assert!(left.is_empty(), "journal removed, but {left:?} is left");

    // A third run has nothing to do.
    let out = put_command(&server, &file, &journal)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("sent 0 bytes"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_one_sentence() {
    let server = TestS3::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.nar");
    std::fs::write(&file, b"hello").unwrap();
    let out = put_command(&server, &file, &dir.path().join("j"))
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sentence = format!(
        "error: the store at {} rejected the credentials (SignatureDoesNotMatch); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile",
        server.url()
    );
    assert!(stderr.lines().any(|l| l == sentence), "{stderr}");
    // One sentence (plus at most a hint line), never an SDK debug dump.
    assert!(stderr.lines().count() <= 2, "{stderr}");
    assert!(
        !stderr.contains("ServiceError") && !stderr.contains("wrong"),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(["store", "ls", "--store", "ftp://x"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the scheme \"ftp\" is not supported"),
        "{stderr}"
    );
}
