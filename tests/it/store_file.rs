//! The file:// backend: the same functional checks as the S3 backend.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use pubdeck::store::{
    DownloadOptions, OpenOptions, Progress, ProgressSink, PutIfAbsent, PutOptions, PutOutcome,
    Store, StoreError, partial_path,
};
use rand::{RngCore, SeedableRng};
use tokio::sync::mpsc::UnboundedReceiver;

const MIB: u64 = 1024 * 1024;

fn random_bytes(size: u64, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut data = vec![0u8; size as usize];
    rng.fill_bytes(&mut data);
    data
}

async fn open(root: &Path) -> Store {
    Store::open_str(
        &format!("file://{}", root.display()),
        &OpenOptions::default(),
    )
    .await
    .expect("open file store")
}

fn drain(rx: &mut UnboundedReceiver<Progress>) -> Vec<Progress> {
    let mut v = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        v.push(ev);
    }
    v
}

fn check_bytes(events: &[Progress]) -> (u64, u64) {
    let mut sum = 0;
    let mut last = 0;
    for ev in events {
        if let Progress::Bytes { delta, done, total } = ev {
            assert!(*done > last && done <= total);
            last = *done;
            sum += delta;
        }
    }
    (sum, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_file_progress_roundtrip_and_idempotence() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = open(cache.path()).await;
    let size = 50 * MIB;
    let data = random_bytes(size, 11);
    let src = work.path().join("big.nar");
    std::fs::write(&src, &data).unwrap();
    let key = "nar/abc.nar.zst";

    let (sink, mut rx) = ProgressSink::channel();
    let out = store
        .put_file(key, &src, &PutOptions::default(), &sink)
        .await
        .unwrap();
    assert_eq!(
        out,
        PutOutcome::Uploaded {
            size,
            sent_bytes: size,
            resumed_bytes: 0
        }
    );
    let events = drain(&mut rx);
    assert!(
        matches!(events.first(), Some(Progress::Started { total_bytes, .. }) if *total_bytes == size)
    );
    assert_eq!(check_bytes(&events), (size, size));
    assert!(matches!(events.last(), Some(Progress::Finished { .. })));
    assert_eq!(std::fs::read(cache.path().join(key)).unwrap(), data);
    // No temp files left behind, and list shows exactly the object.
    let listed = store.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].key.as_str(), listed[0].size), (key, size));
    assert_eq!(
        std::fs::read_dir(cache.path().join("nar")).unwrap().count(),
        1
    );

    let dest = work.path().join("down.nar");
    assert_eq!(
        store
            .download(
                key,
                &dest,
                &DownloadOptions::default(),
                &ProgressSink::none()
            )
            .await
            .unwrap(),
        size
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    let (sink, mut rx) = ProgressSink::channel();
    let out = store
        .put_file(key, &src, &PutOptions::default(), &sink)
        .await
        .unwrap();
    assert_eq!(out, PutOutcome::Skipped { size });
    assert_eq!(
        drain(&mut rx),
        vec![Progress::Skipped {
            key: key.into(),
            size
        }]
    );

    assert_eq!(store.head(key).await.unwrap(), Some(size));
    store.delete(key).await.unwrap();
    assert_eq!(store.head(key).await.unwrap(), None);
    store.delete(key).await.unwrap();
    let err = store.get(key).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_if_absent_never_overwrites_even_concurrently() {
    let cache = tempfile::tempdir().unwrap();
    let store = open(cache.path()).await;
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
            .put_if_absent("nix-cache-info", Bytes::from_static(b"other"))
            .await
            .unwrap(),
        PutIfAbsent::DifferentContent
    );
    assert_eq!(store.get("nix-cache-info").await.unwrap(), info);

    for round in 0..20u8 {
        let key = format!("h{round}.narinfo");
        let mut tasks = Vec::new();
        for i in 0..8u8 {
            let (s, k) = (store.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let body = Bytes::from(vec![b'a' + i; 4096]);
                (s.put_if_absent(&k, body.clone()).await, body)
            }));
        }
        let mut winner = None;
        for t in tasks {
            let (res, body) = t.await.unwrap();
            if res.unwrap() == PutIfAbsent::Created {
                assert!(winner.replace(body).is_none(), "two writers created {key}");
            }
        }
        assert_eq!(store.get(&key).await.unwrap(), winner.expect("one winner"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_resume_download_and_verification() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = open(cache.path()).await;
    let size = 12 * MIB + 3;
    let data = random_bytes(size, 12);
    std::fs::create_dir_all(cache.path().join("nar")).unwrap();
    std::fs::write(cache.path().join("nar/x.nar"), &data).unwrap();

    let dest = work.path().join("x.nar");
    let have = 5 * MIB;
    std::fs::write(partial_path(&dest), &data[..have as usize]).unwrap();
    let mut sha = [0u8; 32];
    sha.copy_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(&data));
    let opts = DownloadOptions {
        expected_size: Some(size),
        expected_sha256: Some(sha),
        ..Default::default()
    };
    let (sink, mut rx) = ProgressSink::channel();
    store
        .download("nar/x.nar", &dest, &opts, &sink)
        .await
        .unwrap();
    let events = drain(&mut rx);
    assert!(
        matches!(events.first(), Some(Progress::Started { resumed_bytes, .. }) if *resumed_bytes == have)
    );
    assert_eq!(check_bytes(&events), (size - have, size));
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    let bad = work.path().join("bad.nar");
    std::fs::write(partial_path(&bad), vec![7u8; 1000]).unwrap();
    let err = store
        .download("nar/x.nar", &bad, &opts, &ProgressSink::none())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(!bad.exists() && !partial_path(&bad).exists());

    let err = store
        .download("nar/none.nar", &bad, &opts, &ProgressSink::none())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_cannot_escape_the_root() {
    let cache = tempfile::tempdir().unwrap();
    let store = open(cache.path()).await;
    for key in ["../escape", "/etc/passwd", "nar/../../x", ""] {
        let err = store
            .put_if_absent(key, Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidKey { .. }), "{key}: {err}");
    }
    let missing = tempfile::tempdir().unwrap();
    let store = open(&missing.path().join("not-yet")).await;
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(
        store
            .put_if_absent("nix-cache-info", Bytes::from_static(b"x"))
            .await
            .unwrap(),
        PutIfAbsent::Created
    );
    let _ = Duration::ZERO;
}

/// A store opened with deferred durability writes the same objects, atomically, and flushes
/// them with one `sync` (the demo seeds hundreds of objects this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_durability_writes_the_same_objects() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = Store::open_str(
        &format!("file://{}", cache.path().display()),
        &OpenOptions {
            file_durability: pubdeck::fsutil::Durability::Deferred,
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap();
    let data = random_bytes(3 * MIB, 5);
    let src = work.path().join("x.nar");
    std::fs::write(&src, &data).unwrap();
    let (tx, _rx) = ProgressSink::channel();
    store
        .put_file("nar/x.nar", &src, &PutOptions::default(), &tx)
        .await
        .unwrap();
    let created = store
        .put_if_absent("x.narinfo", Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert!(matches!(created, PutIfAbsent::Created));
    let again = store
        .put_if_absent("x.narinfo", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert!(matches!(again, PutIfAbsent::DifferentContent));
    store
        .replace(
            "nix-cache-info",
            Bytes::from_static(b"StoreDir: /nix/store\n"),
        )
        .await
        .unwrap();
    store.sync().await.unwrap();
    assert_eq!(std::fs::read(cache.path().join("nar/x.nar")).unwrap(), data);
    assert_eq!(
        std::fs::read(cache.path().join("x.narinfo")).unwrap(),
        b"one"
    );
    let names: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".pubdeck-tmp")),
        "{names:?}"
    );
}

/// Objects of a `file://` store follow the umask, so other users of a shared store can read
/// them; key files stay 0600 whatever the umask.
#[test]
fn store_objects_follow_the_umask_and_keys_stay_private() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("big"), random_bytes(20 * MIB, 7)).unwrap();
    std::fs::write(tree.join("small"), "hello").unwrap();
    let run = |umask: u32, args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"));
        c.args(args)
            .env("HOME", tmp.path())
            .env("XDG_CONFIG_HOME", tmp.path().join("cfg"))
            .env("XDG_DATA_HOME", tmp.path().join("data"));
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            c.pre_exec(move || {
                libc::umask(umask);
                Ok(())
            });
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{args:?}: {o:?}");
    };
    for (umask, want) in [(0o022, 0o644), (0o027, 0o640)] {
        let key = tmp.path().join(format!("k{umask:o}.key"));
        run(
            umask,
            &[
                "key",
                "generate",
                "--name",
                "k-1",
                "--out",
                key.to_str().unwrap(),
            ],
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600, "the secret key");
        let store = tmp.path().join(format!("store{umask:o}"));
        run(
            umask,
            &[
                "pack",
                tree.to_str().unwrap(),
                "--name",
                "shared-1.0",
                "--to",
                &format!("file://{}", store.display()),
                "--signing-key",
                key.to_str().unwrap(),
            ],
        );
        let mut objects = Vec::new();
        let mut dirs = vec![store.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    dirs.push(e.path());
                } else {
                    objects.push(e.path());
                }
            }
        }
        assert!(objects.len() >= 4, "{objects:?}");
        for o in &objects {
            assert_eq!(mode(o), want, "{} under umask {umask:o}", o.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_reads_answer_every_key() {
    let t = tempfile::tempdir().unwrap();
    let store = open(t.path()).await;
    crate::common::batched::every_key_gets_its_own_answer(&store).await;
}
