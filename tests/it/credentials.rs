//! A catalog owner cannot harvest readers' AWS credentials by pointing the store at a host
//! of theirs: credentials from the environment go only to AWS or to endpoints the user
//! trusts in their config file. Checked with a capturing listener on loopback and the real
//! binary.

use crate::common;
use crate::common::catalog_support;

use std::sync::{Arc, Mutex};

use pubdeck::catalog::{Catalog, EmbeddedCatalog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback listener that keeps every request it is sent and answers 404.
async fn capture() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&seen);
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                keep.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_an_untrusted_endpoint() {
    let (addr, seen) = capture().await;
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("catalog.sqlite");
    let store = format!("s3://bucket?endpoint=http://{addr}&region=us-east-1");
    let owner = EmbeddedCatalog::open_as(db.to_str().unwrap(), "tester")
        .await
        .unwrap();
    let key = catalog_support::TestKey::new("myorg-1", 7);
    owner
        .create_catalog("myorg", &store, &[key.public()])
        .await
        .unwrap();
    let mut b = catalog_support::build(&key, "myorg", "hello", "1.0.0", "content");
    b.narinfo_url = format!("s3://bucket/x.narinfo?endpoint=http://{addr}");
    owner.register_build(&b).await.unwrap();
    let env = common::Repo::new();

    let ready = |config_home: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pubdeck"))
            .args(["ready", "myorg/hello", "--dir"])
            .arg(&env.work)
            .env("USER", "tester")
            .env("PUBDECK_CATALOG", &db)
            .env("PUBDECK_DATA_DIR", tmp.path().join("data"))
            .env("XDG_CONFIG_HOME", config_home)
            .env("AWS_ACCESS_KEY_ID", "AKIAREADERSECRETID")
            .env("AWS_SECRET_ACCESS_KEY", "reader-secret-key")
            .env("AWS_SESSION_TOKEN", "reader-session-token")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };

    // Untrusted: refused before connecting, with the way to trust it.
    let untrusted = tmp.path().join("no-config");
    let out = ready(&untrusted);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("refusing to send your AWS credentials")
            && text.contains("trusted-endpoints"),
        "{text}"
    );
    // The exact line, the file it goes in, and no advice to republish (nothing is wrong with
    // the store).
    assert!(
        text.contains(&format!(
            "add the line `trusted-endpoints = [\"http://{addr}\"]` at the top of {}",
            untrusted.join("pubdeck/config.toml").display()
        )),
        "{text}"
    );
    assert!(!text.contains("publish again"), "{text}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = seen.lock().unwrap().clone();
    assert!(
        got.iter()
            .all(|r| !r.to_ascii_lowercase().contains("authorization")),
        "the listener got credentials: {got:?}"
    );
    assert!(got.is_empty(), "nothing may even connect: {got:?}");

    // Trusted in the config file: the request goes there, signed (so the check above could
    // have seen a leak).
    let trusting = tmp.path().join("config-home");
    std::fs::create_dir_all(trusting.join("pubdeck")).unwrap();
    std::fs::write(
        trusting.join("pubdeck/config.toml"),
        format!("trusted-endpoints = [\"http://{addr}\"]\n"),
    )
    .unwrap();
    let _ = ready(&trusting);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let got = seen.lock().unwrap().clone();
    assert!(
        got.iter().any(|r| r
            .to_ascii_lowercase()
            .contains("authorization: aws4-hmac-sha256")),
        "{got:?}"
    );
}
