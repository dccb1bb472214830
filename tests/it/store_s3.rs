//! The S3 backend against a real s3s-fs server on 127.0.0.1.

use crate::common::s3 as s3srv;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use pubdeck::store::{
    DownloadOptions, Journal, OpenOptions, Progress, ProgressSink, ProgressTiming, PutIfAbsent,
    PutOptions, PutOutcome, RetryPolicy, StaticCredentials, Store, StoreError, partial_path,
};
use rand::{RngCore, SeedableRng};
use s3srv::TestS3;
use tokio::sync::mpsc::UnboundedReceiver;

const MIB: u64 = 1024 * 1024;

fn random_file(dir: &Path, name: &str, size: u64, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; size as usize];
    rng.fill_bytes(&mut data);
    let path = dir.join(name);
    std::fs::write(&path, &data).expect("write test file");
    (path, data)
}

async fn open(s: &TestS3) -> Store {
    Store::open_str(&s.url(), &TestS3::open_options())
        .await
        .expect("open store")
}

fn fast_timing() -> ProgressTiming {
    ProgressTiming {
        tick: Duration::from_millis(100),
        stall_after: Duration::from_millis(500),
    }
}

fn drain(rx: &mut UnboundedReceiver<Progress>) -> Vec<Progress> {
    let mut v = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        v.push(ev);
    }
    v
}

/// The events up to and including the first that `stop` picks (all of them if none does).
async fn events_until(
    rx: &mut UnboundedReceiver<Progress>,
    stop: impl Fn(&Progress) -> bool,
) -> Vec<Progress> {
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        let done = stop(&ev);
        events.push(ev);
        if done {
            break;
        }
    }
    events
}

/// Retries enough to outlast a server restart of a second or so.
fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 20,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(800),
    }
}

/// Sum of `Bytes` deltas, asserting `done` is strictly increasing; returns (sum, last done).
fn check_bytes(events: &[Progress]) -> (u64, u64) {
    let mut sum = 0;
    let mut last = 0;
    for ev in events {
        if let Progress::Bytes { delta, done, total } = ev {
            assert!(*delta > 0);
            assert!(*done > last, "done must grow: {done} after {last}");
            assert!(done <= total);
            last = *done;
            sum += delta;
        }
    }
    (sum, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_upload_progress_roundtrip_and_idempotence() {
    let server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(40));
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let (path, data) = random_file(dir.path(), "big.nar", size, 1);
    let key = "nar/0a1b2c.nar.zst";
    let opts = PutOptions {
        part_size: 8 * MIB,
        concurrency: 4,
        timing: fast_timing(),
        ..Default::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    let out = store
        .put_file(key, &path, &opts, &sink)
        .await
        .expect("upload");
    assert_eq!(
        out,
        PutOutcome::Uploaded {
            size,
            sent_bytes: size,
            resumed_bytes: 0
        }
    );
    let events = drain(&mut rx);
    assert!(matches!(
        events.first(),
        Some(Progress::Started { total_bytes, parts: 7, part_size, resumed_bytes: 0, .. })
            if *total_bytes == size && *part_size == 8 * MIB
    ));
    let (sum, last) = check_bytes(&events);
    assert_eq!(sum, size);
    assert_eq!(last, size);
    // Concurrency really happened: several parts were in flight at once.
    let mut in_flight: i32 = 0;
    let mut max_in_flight = 0;
    for ev in &events {
        match ev {
            Progress::PartStarted { .. } => in_flight += 1,
            Progress::PartFinished { .. } => in_flight -= 1,
            _ => {}
        }
        max_in_flight = max_in_flight.max(in_flight);
    }
    assert!(max_in_flight > 1, "max parts in flight {max_in_flight}");
    let finished: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Progress::PartFinished { part, .. } => Some(*part),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 7);
    assert!(
        matches!(events.last(), Some(Progress::Finished { sent_bytes, .. }) if *sent_bytes == size)
    );

    // What the server stored, and what a download returns, is the original.
    assert_eq!(std::fs::read(server.object_path(key)).unwrap(), data);
    assert_eq!(store.head(key).await.unwrap(), Some(size));
    let dest = dir.path().join("down.nar");
    let (dsink, mut drx) = ProgressSink::channel();
    let n = store
        .download(key, &dest, &DownloadOptions::default(), &dsink)
        .await
        .unwrap();
    assert_eq!(n, size);
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let (dsum, dlast) = check_bytes(&drain(&mut drx));
    assert_eq!((dsum, dlast), (size, size));

    // Idempotent: a second upload sends nothing.
    let (sink, mut rx) = ProgressSink::channel();
    let out = store.put_file(key, &path, &opts, &sink).await.unwrap();
    assert_eq!(out, PutOutcome::Skipped { size });
    let events = drain(&mut rx);
    assert_eq!(check_bytes(&events).0, 0);
    assert_eq!(
        events,
        vec![Progress::Skipped {
            key: key.into(),
            size
        }]
    );

    let listed = store.list("nar/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), (key, size));
    store.delete(key).await.unwrap();
    assert_eq!(store.head(key).await.unwrap(), None);
    store.delete(key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_file_single_put_with_progress() {
    let server = TestS3::start().await;
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = random_file(dir.path(), "s.nar", 3 * MIB + 17, 2);
    let (sink, mut rx) = ProgressSink::channel();
    store
        .put_file("nar/small.nar", &path, &PutOptions::default(), &sink)
        .await
        .unwrap();
    let events = drain(&mut rx);
    assert!(matches!(
        events.first(),
        Some(Progress::Started { parts: 1, .. })
    ));
    assert_eq!(check_bytes(&events), (data.len() as u64, data.len() as u64));
    assert_eq!(store.get("nar/small.nar").await.unwrap(), Bytes::from(data));
    let err = store.get("nar/missing.nar").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

/// A store opened with a raised `multipart_threshold` sends a file above the default in one
/// PUT, streamed from disk; with the default the same file goes multipart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_up_to_the_stores_threshold_goes_in_one_streamed_put() {
    let server = TestS3::start().await;
    let raised = Store::open_str(
        &server.url(),
        &OpenOptions {
            multipart_threshold: Some(64 * MIB),
            ..TestS3::open_options()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let size = pubdeck::store::DEFAULT_MULTIPART_THRESHOLD + 5 * MIB + 3;
    let (path, data) = random_file(dir.path(), "big.nar", size, 21);
    let (sink, mut rx) = ProgressSink::channel();
    let out = raised
        .put_file("nar/one.nar", &path, &PutOptions::default(), &sink)
        .await
        .unwrap();
    assert!(matches!(out, PutOutcome::Uploaded { sent_bytes, .. } if sent_bytes == size));
    let events = drain(&mut rx);
    assert!(
        matches!(events.first(), Some(Progress::Started { parts: 1, .. })),
        "{:?}",
        events.first()
    );
    let (_, last) = check_bytes(&events);
    assert_eq!(last, size);
    assert_eq!(
        std::fs::read(server.object_path("nar/one.nar")).unwrap(),
        data
    );

    let (sink, mut rx) = ProgressSink::channel();
    open(&server)
        .await
        .put_file("nar/parts.nar", &path, &PutOptions::default(), &sink)
        .await
        .unwrap();
    let parts = drain(&mut rx).into_iter().find_map(|e| match e {
        Progress::Started { parts, .. } => Some(parts),
        _ => None,
    });
    assert!(parts.is_some_and(|p| p > 1), "{parts:?}");
    assert_eq!(
        std::fs::read(server.object_path("nar/parts.nar")).unwrap(),
        data
    );
}

/// A file that changes while its single PUT is on the wire is not left in the store: the
/// object it made is deleted and the error says what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_during_its_single_put_is_taken_back() {
    let server = TestS3::start().await;
    server.set_put_delay(Duration::from_millis(300));
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(dir.path(), "c.nar", 3 * MIB, 22);
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2) = (store.clone(), path.clone());
    let key = "nar/changed.nar";
    let upload =
        tokio::spawn(async move { s2.put_file(key, &p2, &PutOptions::default(), &sink).await });
    events_until(&mut rx, |e| matches!(e, Progress::Bytes { .. })).await;
    // The server has not answered yet (it sleeps before reading the body).
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"more").unwrap();
    drop(f);
    let err = upload.await.unwrap().unwrap_err();
    assert!(matches!(err, StoreError::SourceChanged { .. }), "{err}");
    assert!(
        err.to_string().contains("changed while it was sent"),
        "{err}"
    );
    assert!(
        !server.object_path(key).exists(),
        "the object was taken back"
    );
}

/// A streamed single PUT cut off by a server restart is sent again from the file's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_single_put_survives_a_restart() {
    let mut server = TestS3::start().await;
    server.set_put_delay(Duration::from_millis(200));
    let store = Store::open_str(
        &server.url(),
        &OpenOptions {
            retry: patient(),
            multipart_threshold: Some(64 * MIB),
            ..TestS3::open_options()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let size = 20 * MIB;
    let (path, data) = random_file(dir.path(), "r.nar", size, 23);
    let key = "nar/restart-single.nar";
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2) = (store.clone(), path.clone());
    let upload =
        tokio::spawn(async move { s2.put_file(key, &p2, &PutOptions::default(), &sink).await });
    let mut events = events_until(&mut rx, |e| matches!(e, Progress::Bytes { .. })).await;
    server.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.set_put_delay(Duration::ZERO);
    server.restart().await;
    let out = upload.await.unwrap().expect("the PUT is sent again");
    assert!(matches!(out, PutOutcome::Uploaded { .. }));
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    assert!(
        events.iter().any(|e| matches!(e, Progress::Retry { .. })),
        "no retry seen"
    );
    assert_eq!(check_bytes(&events).1, size);
    assert_eq!(std::fs::read(server.object_path(key)).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_absent_never_overwrites() {
    let server = TestS3::start().await;
    let store = open(&server).await;
    let info = Bytes::from_static(b"StoreDir: /nix/store\n");
    assert_eq!(
        store
            .put_if_absent("nix-cache-info", info.clone())
            .await
            .unwrap(),
        PutIfAbsent::Created
    );
    assert_eq!(
        store
            .put_if_absent("nix-cache-info", info.clone())
            .await
            .unwrap(),
        PutIfAbsent::SameContent
    );
    assert_eq!(
        store
            .put_if_absent("nix-cache-info", Bytes::from_static(b"StoreDir: /other\n"))
            .await
            .unwrap(),
        PutIfAbsent::DifferentContent
    );
    assert_eq!(store.get("nix-cache-info").await.unwrap(), info);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_upload_is_retried() {
    let mut server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(100));
    let store = Store::open_str(
        &server.url(),
        &OpenOptions {
            retry: patient(),
            ..TestS3::open_options()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let (path, data) = random_file(dir.path(), "r.nar", size, 3);
    let key = "nar/restart.nar";
    let opts = PutOptions {
        part_size: 5 * MIB,
        concurrency: 3,
        timing: fast_timing(),
        journal_dir: Some(dir.path().join("journal")),
        ..Default::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2, o2) = (store.clone(), path.clone(), opts.clone());
    let upload = tokio::spawn(async move { s2.put_file(key, &p2, &o2, &sink).await });

    let mut events = events_until(&mut rx, |e| matches!(e, Progress::PartFinished { .. })).await;
    server.stop().await;
    assert!(
        !server.object_path(key).exists(),
        "no half object while the server is down"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;
    let out = upload.await.unwrap().expect("upload survives a restart");
    assert!(matches!(out, PutOutcome::Uploaded { .. }));
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    assert!(
        events.iter().any(|e| matches!(e, Progress::Retry { .. })),
        "no retry seen"
    );
    assert!(
        events.iter().any(|e| matches!(e, Progress::Stalled { .. })),
        "no stall warning"
    );
    let (sum, last) = check_bytes(&events);
    assert_eq!(last, size);
    assert!(sum >= size);
    assert_eq!(std::fs::read(server.object_path(key)).unwrap(), data);
    assert!(
        Journal::list(&dir.path().join("journal"))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_gone_fails_clearly_without_a_half_object() {
    let mut server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(100));
    let store = Store::open_str(
        &server.url(),
        &OpenOptions {
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(100),
            },
            ..TestS3::open_options()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(dir.path(), "g.nar", 30 * MIB, 4);
    let key = "nar/gone.nar";
    let opts = PutOptions {
        part_size: 5 * MIB,
        concurrency: 2,
        ..Default::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2, o2) = (store.clone(), path.clone(), opts.clone());
    let upload = tokio::spawn(async move { s2.put_file(key, &p2, &o2, &sink).await });
    events_until(&mut rx, |e| matches!(e, Progress::PartFinished { .. })).await;
    server.stop().await;
    let err = upload.await.unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot reach the store at s3://cache?endpoint=http://127.0.0.1:"),
        "{msg}"
    );
    assert!(
        !msg.contains('\n') && !msg.contains("DispatchFailure") && !msg.contains("{"),
        "{msg}"
    );
    assert!(std::error::Error::source(&err).is_some());
    server.restart().await;
    assert_eq!(store.head(key).await.unwrap(), None);
    assert!(!server.object_path(key).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_cancelled_midway_resumes_from_journal() {
    let server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(60));
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 50 * MIB;
    let (path, data) = random_file(dir.path(), "j.nar", size, 5);
    let jdir = dir.path().join("journal");
    let key = "nar/journal.nar";
    let opts = PutOptions {
        part_size: 5 * MIB,
        concurrency: 2,
        journal_dir: Some(jdir.clone()),
        content_hash: Some("sha256:0123".into()),
        ..Default::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2, o2) = (store.clone(), path.clone(), opts.clone());
    let upload = tokio::spawn(async move { s2.put_file(key, &p2, &o2, &sink).await });
    let mut done_parts = 0;
    while let Some(ev) = rx.recv().await {
        if matches!(ev, Progress::PartFinished { .. }) {
            done_parts += 1;
            if done_parts == 4 {
                break;
            }
        }
    }
    upload.abort();
    let _ = upload.await;
    let journals = Journal::list(&jdir).unwrap();
    assert_eq!(journals.len(), 1);
    let j = journals[0].1.clone().expect("readable journal");
    assert!(j.parts.len() >= 4);

    server.set_part_delay(Duration::ZERO);
    let (sink, mut rx) = ProgressSink::channel();
    let out = store.put_file(key, &path, &opts, &sink).await.unwrap();
    let PutOutcome::Uploaded {
        sent_bytes,
        resumed_bytes,
        ..
    } = out
    else {
        panic!("{out:?}")
    };
    assert!(resumed_bytes >= 4 * 5 * MIB, "resumed {resumed_bytes}");
    assert_eq!(sent_bytes + resumed_bytes, size);
    let events = drain(&mut rx);
    assert!(
        matches!(events.first(), Some(Progress::Started { resumed_bytes: r, .. }) if *r == resumed_bytes)
    );
    assert_eq!(check_bytes(&events), (sent_bytes, size));
    assert_eq!(std::fs::read(server.object_path(key)).unwrap(), data);
    assert!(Journal::list(&jdir).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_upload_id_starts_over_and_stale_journals_are_cleaned() {
    let server = TestS3::start().await;
    server.set_part_delay(Duration::from_millis(60));
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (path, data) = random_file(dir.path(), "v.nar", 20 * MIB, 6);
    let jdir = dir.path().join("journal");
    let key = "nar/vanish.nar";
    let opts = PutOptions {
        part_size: 5 * MIB,
        concurrency: 1,
        journal_dir: Some(jdir.clone()),
        ..Default::default()
    };
    // Interrupt after one part so a journal with a live upload id exists.
    let (sink, mut rx) = ProgressSink::channel();
    let (s2, p2, o2) = (store.clone(), path.clone(), opts.clone());
    let upload = tokio::spawn(async move { s2.put_file(key, &p2, &o2, &sink).await });
    events_until(&mut rx, |e| matches!(e, Progress::PartFinished { .. })).await;
    upload.abort();
    let _ = upload.await;
    let (jpath, j) = Journal::list(&jdir).unwrap().remove(0);
    let mut j = j.unwrap();

    // A fresh journal whose upload still exists is kept by the cleanup…
    assert_eq!(
        store
            .cleanup_stale_uploads(&jdir, Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    // …an old one is aborted at the store and removed.
    j.created_unix -= 8 * 24 * 3600;
    j.save(&jpath).unwrap();
    let stale_upload = j.upload_id.clone();
    assert_eq!(
        store
            .cleanup_stale_uploads(&jdir, pubdeck::store::DEFAULT_JOURNAL_MAX_AGE)
            .await
            .unwrap(),
        1
    );
    assert!(!jpath.exists());
    assert!(
        !std::fs::read_dir(&server.root).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(&stale_upload)),
        "aborted upload's parts remain"
    );

    // A journal naming an upload the store no longer knows: start over cleanly.
    j.created_unix += 8 * 24 * 3600;
    j.save(&jpath).unwrap();
    server.set_part_delay(Duration::ZERO);
    let out = store
        .put_file(key, &path, &opts, &ProgressSink::none())
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            PutOutcome::Uploaded {
                resumed_bytes: 0,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(std::fs::read(server.object_path(key)).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_resume_download_and_verification() {
    let server = TestS3::start().await;
    let store = open(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 24 * MIB + 5;
    let (path, data) = random_file(dir.path(), "d.nar", size, 7);
    let key = "nar/dl.nar";
    store
        .put_file(key, &path, &PutOptions::default(), &ProgressSink::none())
        .await
        .unwrap();

    let dest = dir.path().join("out.nar");
    let have = 10 * MIB;
    std::fs::write(partial_path(&dest), &data[..have as usize]).unwrap();
    let (sink, mut rx) = ProgressSink::channel();
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&data));
    let opts = DownloadOptions {
        expected_size: Some(size),
        expected_sha256: Some(sha),
        ..Default::default()
    };
    assert_eq!(
        store.download(key, &dest, &opts, &sink).await.unwrap(),
        size
    );
    let events = drain(&mut rx);
    assert!(
        matches!(events.first(), Some(Progress::Started { resumed_bytes, .. }) if *resumed_bytes == have)
    );
    assert_eq!(check_bytes(&events), (size - have, size));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!partial_path(&dest).exists());

    // A corrupt partial (wrong prefix) fails verification and never appears as dest.
    let dest2 = dir.path().join("bad.nar");
    std::fs::write(partial_path(&dest2), vec![0u8; MIB as usize]).unwrap();
    let err = store
        .download(key, &dest2, &opts, &ProgressSink::none())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!dest2.exists() && !partial_path(&dest2).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_one_clear_sentence() {
    let server = TestS3::start().await;
    let store = Store::open_str(
        &server.url(),
        &OpenOptions {
            credentials: Some(StaticCredentials {
                access_key_id: "devkey".into(),
                secret_access_key: "wrong-secret".into(),
                session_token: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = random_file(dir.path(), "c.nar", MIB, 8);
    let err = store
        .put_file(
            "nar/c.nar",
            &path,
            &PutOptions::default(),
            &ProgressSink::none(),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    let expected = format!(
        "the store at {} rejected the credentials (SignatureDoesNotMatch); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile",
        server.url()
    );
    assert_eq!(msg, expected);
    assert!(!msg.contains("secret"));
    let err = store
        .put_if_absent("x.narinfo", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Credentials { .. }), "{err}");

    let bad_key = Store::open_str(
        &server.url(),
        &OpenOptions {
            credentials: Some(StaticCredentials {
                access_key_id: "nobody".into(),
                secret_access_key: "x".into(),
                session_token: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = bad_key.list("").await.unwrap_err();
    assert!(matches!(err, StoreError::Credentials { .. }), "{err}");
    // s3s answers an unknown access key with NotSignedUp, AWS with InvalidAccessKeyId.
    assert!(
        err.to_string()
            .contains("rejected the credentials (NotSignedUp)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_and_unreachable_endpoint() {
    let server = TestS3::start().await;
    let store = Store::open_str(&server.url_for("nosuchbucket"), &TestS3::open_options())
        .await
        .unwrap();
    let err = store.list("").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the bucket \"nosuchbucket\" does not exist at {}",
            server.url_for("nosuchbucket")
        )
    );
    let err = store.head("nix-cache-info").await;
    assert!(
        matches!(err, Ok(None) | Err(StoreError::NoSuchBucket { .. })),
        "{err:?}"
    );

    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let store = Store::open_str(
        &format!("s3://cache?endpoint=http://127.0.0.1:{port}&region=us-east-1"),
        &OpenOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
            },
            ..TestS3::open_options()
        },
    )
    .await
    .unwrap();
    let err = store.head("nix-cache-info").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot reach the store at s3://cache?endpoint=http://127.0.0.1:{port}"
        )),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(err.is_transient());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_answer_every_key() {
    let server = TestS3::start().await;
    let store = open(&server).await;
    crate::common::batched::every_key_gets_its_own_answer(&store).await;
}
