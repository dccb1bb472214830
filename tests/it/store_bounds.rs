//! Every read from a store is bounded: no FIFO, device or escaping symlink is read, metadata
//! has a size cap, every request a time limit, and a download never exceeds its declared size
//! or the free space.

use crate::common::s3 as s3srv;

use std::os::unix::fs::symlink;
use std::time::Duration;

use pubdeck::store::{DownloadOptions, OpenOptions, ProgressSink, Store, StoreError};

async fn file_store(dir: &std::path::Path) -> Store {
    Store::open_str(&format!("file://{}", dir.display()), &Default::default())
        .await
        .unwrap()
}

/// `f` must finish within 5 s (a FIFO would block forever).
async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("answered at once")
}

#[tokio::test]
async fn special_files_and_escaping_symlinks_are_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    std::fs::create_dir(&root).unwrap();
    let store = file_store(&root).await;
    let fifo = std::ffi::CString::new(root.join("fifo.narinfo").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    symlink("/dev/zero", root.join("zero.narinfo")).unwrap();
    std::fs::write(t.path().join("outside"), "StoreDir: /nix/store\n").unwrap();
    symlink(t.path().join("outside"), root.join("nix-cache-info")).unwrap();
    std::fs::create_dir(root.join("dir.narinfo")).unwrap();
    for (key, what) in [
        ("fifo.narinfo", "a FIFO"),
        ("zero.narinfo", "a symlink leading out of the store"),
        ("nix-cache-info", "a symlink leading out of the store"),
        ("dir.narinfo", "a directory"),
    ] {
        let e = soon(store.get(key)).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::NotAFile { .. }) && e.to_string().contains(what),
            "{key}: {e}"
        );
        assert!(soon(store.head(key)).await.is_err(), "{key}");
    }
    // A symlink that stays inside the store is fine.
    std::fs::write(root.join("real.narinfo"), "x").unwrap();
    symlink("real.narinfo", root.join("alias.narinfo")).unwrap();
    assert_eq!(&soon(store.get("alias.narinfo")).await.unwrap()[..], b"x");
}

#[tokio::test]
async fn metadata_reads_are_capped() {
    let t = tempfile::tempdir().unwrap();
    let store = file_store(t.path()).await;
    let big = vec![b'a'; (pubdeck::store::MAX_METADATA_BYTES + 1) as usize];
    std::fs::write(t.path().join("big.narinfo"), &big).unwrap();
    let e = store.get("big.narinfo").await.unwrap_err();
    assert!(matches!(e, StoreError::Oversized { .. }), "{e}");
    std::fs::write(t.path().join("ok.narinfo"), &big[1..]).unwrap();
    assert_eq!(store.get("ok.narinfo").await.unwrap().len(), big.len() - 1);

    // The same over S3, whatever the object's declared length.
    let s3 = s3srv::TestS3::start().await;
    let store = Store::open_str(&s3.url(), &s3srv::TestS3::open_options())
        .await
        .unwrap();
    store
        .put_if_absent("big.narinfo", bytes::Bytes::from(big))
        .await
        .unwrap();
    let e = store.get("big.narinfo").await.unwrap_err();
    assert!(matches!(e, StoreError::Oversized { .. }), "{e}");
}

#[tokio::test]
async fn downloads_stop_at_the_declared_size_and_need_room() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(root.join("nar")).unwrap();
    std::fs::write(root.join("nar/x.nar"), vec![7u8; 4096]).unwrap();
    let store = file_store(&root).await;
    let dest = t.path().join("x.nar");
    // The object is larger than declared: refused, nothing written.
    let opts = DownloadOptions {
        expected_size: Some(100),
        ..Default::default()
    };
    let e = store
        .download("nar/x.nar", &dest, &opts, &ProgressSink::none())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(!dest.exists());
    // More than the disk holds: refused before writing anything.
    let opts = DownloadOptions {
        expected_size: Some(1 << 60),
        ..Default::default()
    };
    let e = store
        .download("nar/x.nar", &dest, &opts, &ProgressSink::none())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NoSpace { .. }), "{e}");
    assert!(!dest.exists() && !pubdeck::store::partial_path(&dest).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_request_has_a_time_limit() {
    // An endpoint that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..50 {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
    });
    let opts = OpenOptions {
        request_timeout: Some(Duration::from_secs(1)),
        ..s3srv::TestS3::open_options()
    };
    let store = Store::open_str(
        &format!("s3://bucket?endpoint=http://{addr}&region=us-east-1"),
        &opts,
    )
    .await
    .unwrap();
    let t = std::time::Instant::now();
    let e = store.get("x.narinfo").await.unwrap_err();
    assert!(matches!(e, StoreError::TimedOut { .. }), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    let e = store.head("nar/x.nar").await.unwrap_err();
    assert!(matches!(e, StoreError::TimedOut { .. }), "{e}");
}
