//! One endpoint rule everywhere (issue 25 item 6): every command that opens a store sends the
//! AWS credentials of the environment only to AWS or to an endpoint listed in
//! `trusted-endpoints`, and a refusal prints the exact config line that trusts it; `catalog
//! create|set-store` say that line for a custom endpoint; `use` on a key-prefixed S3 store
//! checks the real `nix --version`. The binary against an in-process s3s-fs on 127.0.0.1.

use crate::common;
use crate::common::s3 as s3srv;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use s3srv::{ACCESS_KEY, SECRET_KEY, TestS3};

/// `pubdeck ARGS` with its data under `tmp`, the config home `cfg`, the test server's keys as
/// the environment's AWS credentials and no terminal.
fn pubdeck(tmp: &Path, cfg: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pubdeck"))
        .args(args)
        .env("HOME", tmp)
        .env("USER", "tester")
        .env("XDG_CONFIG_HOME", cfg)
        .env("XDG_DATA_HOME", tmp.join("xdg-data"))
        .env("PUBDECK_DATA_DIR", tmp.join("data"))
        .env("PUBDECK_CATALOG", tmp.join("catalog.sqlite"))
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("PUBDECK_STORE")
        .env_remove("PUBDECK_TOKEN")
        .env_remove("PUBDECK_ORG")
        .env_remove("PUBDECK_SIGNING_KEY")
        .env_remove("PUBDECK_FAILPOINT_PAUSE")
        .stdin(Stdio::null())
        .output()
        .expect("pubdeck runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_file(cfg: &Path) -> PathBuf {
    cfg.join("pubdeck/config.toml")
}

/// The one `trusted-endpoints = […]` line a message quotes between backticks.
fn quoted_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|q| q.starts_with("trusted-endpoints = ["))
        .collect();
    assert_eq!(lines.len(), 1, "one config line in: {text}");
    lines[0].to_string()
}

/// Every object in the test server's bucket.
fn objects(server: &TestS3) -> Vec<String> {
    let root = server.object_path("");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else if !name.starts_with('.') {
                out.push(e.path().strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `pack --to s3://…` with a loopback endpoint nobody trusts is refused before anything is
/// sent, with the exact line to add and the file to add it to; with that line in the config
/// file, the same command packs into the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pack_to_an_untrusted_endpoint_is_refused_with_the_line_and_works_once_trusted() {
    let server = TestS3::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let tree = tmp.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/hello"), "#!/bin/sh\necho hello\n").unwrap();
    let key = tmp.path().join("test-1.key");
    pubdeck::nix::sign::SecretKey::generate("test-1")
        .unwrap()
        .write_new(&key, pubdeck::fsutil::write_new)
        .unwrap();
    let pack = || {
        pubdeck(
            tmp.path(),
            &cfg,
            &[
                "pack",
                tree.to_str().unwrap(),
                "--name",
                "hello-1.0",
                "--to",
                &server.url(),
                "--signing-key",
                key.to_str().unwrap(),
            ],
        )
    };

    let refused = pack();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to send your AWS credentials"),
        "{err}"
    );
    let line = quoted_line(&err);
    assert_eq!(
        line,
        format!("trusted-endpoints = [\"{}\"]", server.endpoint())
    );
    assert!(
        err.contains(&config_file(&cfg).display().to_string()),
        "the message names the config file: {err}"
    );
    assert!(
        !config_file(&cfg).exists(),
        "nothing was written for the user"
    );
    assert!(objects(&server).is_empty(), "{:?}", objects(&server));

    // The line as printed, in the file the message named.
    std::fs::create_dir_all(config_file(&cfg).parent().unwrap()).unwrap();
    std::fs::write(config_file(&cfg), format!("# mine\n{line}\n")).unwrap();
    let packed = pack();
    assert!(packed.status.success(), "{}", stderr(&packed));
    let store_path = String::from_utf8_lossy(&packed.stdout).trim().to_string();
    let hash = store_path
        .strip_prefix("/nix/store/")
        .and_then(|r| r.split('-').next())
        .unwrap_or_else(|| panic!("a store path: {store_path:?}"));
    let got = objects(&server);
    assert!(got.contains(&format!("{hash}.narinfo")), "{got:?}");
    assert!(got.iter().any(|o| o.starts_with("nar/")), "{got:?}");
}

/// `store ls|put|get` follow the same rule. A config file that already trusts another endpoint
/// gets the whole list to write (a second `trusted-endpoints` line would be invalid TOML), and
/// a config file pubdeck cannot read is an error, not an empty trust list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commands_follow_trusted_endpoints() {
    let server = TestS3::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let file = config_file(&cfg);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let other = "trusted-endpoints = [\"https://minio.example.internal\"]";
    let before = format!("# team settings\norg = \"myorg\"\n{other}\n\n[keys]\npublish = \"P\"\n");
    std::fs::write(&file, &before).unwrap();
    let url = server.url();
    let ls = || pubdeck(tmp.path(), &cfg, &["store", "ls", "--store", &url]);

    let refused = ls();
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to send your AWS credentials"),
        "{err}"
    );
    let line = quoted_line(&err);
    assert_eq!(
        line,
        format!(
            "trusted-endpoints = [\"https://minio.example.internal\", \"{}\"]",
            server.endpoint()
        )
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    std::fs::write(&file, before.replace(other, &line)).unwrap();
    let listed = ls();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let blob = tmp.path().join("blob");
    std::fs::write(&blob, "hello, store\n").unwrap();
    let put = pubdeck(
        tmp.path(),
        &cfg,
        &[
            "store",
            "put",
            blob.to_str().unwrap(),
            "nar/blob",
            "--store",
            &url,
        ],
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let back = tmp.path().join("back");
    let get = pubdeck(
        tmp.path(),
        &cfg,
        &[
            "store",
            "get",
            "nar/blob",
            back.to_str().unwrap(),
            "--store",
            &url,
        ],
    );
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "hello, store\n");
    let listed = ls();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("nar/blob"),
        "{listed:?}"
    );

    // A config pubdeck cannot read says so (before, it was silently taken as trusting nothing).
    std::fs::write(&file, "trusted-endpoints = \"http://127.0.0.1:1\"\n").unwrap();
    let broken = ls();
    let err = stderr(&broken);
    assert_eq!(broken.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&file.display().to_string()) && err.contains("is not a valid pubdeck config"),
        "{err}"
    );
    assert!(!err.contains("refusing"), "{err}");
}

/// `catalog create` and `set-store` with a custom endpoint the user does not trust: off a
/// terminal nothing is written to the config file, the exact line is printed, and the catalog
/// is created (trust is about this user's credentials, not about the catalog).
#[test]
fn catalog_create_and_set_store_print_the_line_off_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let file = config_file(&cfg);
    let create = pubdeck(
        tmp.path(),
        &cfg,
        &[
            "catalog",
            "create",
            "myorg",
            "--store",
            "s3://cache/team?endpoint=HTTP://127.0.0.1:9000/&region=us-east-1",
        ],
    );
    let err = stderr(&create);
    assert!(create.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&create.stdout).contains("catalog  myorg"),
        "{create:?}"
    );
    assert_eq!(
        quoted_line(&err),
        "trusted-endpoints = [\"http://127.0.0.1:9000\"]"
    );
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!file.exists(), "nothing written off a terminal");

    // set-store: a config with comments is left as it was.
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let mine = "# mine\ntrusted-endpoints = [\"http://127.0.0.1:9000\"] # the lab\n";
    std::fs::write(&file, mine).unwrap();
    let set = pubdeck(
        tmp.path(),
        &cfg,
        &[
            "catalog",
            "set-store",
            "myorg",
            "s3://cache?endpoint=http://127.0.0.1:9001",
        ],
    );
    let err = stderr(&set);
    assert!(set.status.success(), "{err}");
    assert_eq!(
        quoted_line(&err),
        "trusted-endpoints = [\"http://127.0.0.1:9000\", \"http://127.0.0.1:9001\"]"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), mine);

    // Nothing to say for a trusted endpoint, AWS or a file:// store.
    for url in [
        "s3://cache?endpoint=http://127.0.0.1:9000".to_string(),
        "s3://cache?region=eu-west-1".to_string(),
        format!("file://{}", tmp.path().join("store").display()),
    ] {
        let set = pubdeck(tmp.path(), &cfg, &["catalog", "set-store", "myorg", &url]);
        let err = stderr(&set);
        assert!(set.status.success(), "{url}: {err}");
        assert!(!err.contains("trusted-endpoints"), "{url}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), mine);
}

/// `nix --version`'s `major.minor` (the test's own reading, so it does not trust the code
/// under test).
fn real_nix_version() -> (u32, u32) {
    let out = Command::new("nix").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().last().unwrap_or("");
    let mut parts = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// `use` on a store with a key prefix asks the real `nix --version`: a Nix before 2.32 would
/// read the prefix as part of the bucket name, so nothing is written and the reason is given.
/// Every S3 store gets the note that the Nix daemon needs the AWS credentials (a line on
/// stderr and a JSON field); a `file://` store does not.
#[test]
fn use_checks_nix_for_a_key_prefixed_store_and_notes_daemon_credentials() {
    if !common::have_nix("use_checks_nix_for_a_key_prefixed_store_and_notes_daemon_credentials") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let pubfile = pubdeck::nix::sign::SecretKey::generate("myorg-1")
        .unwrap()
        .write_new(&tmp.path().join("myorg-1.key"), pubdeck::fsutil::write_new)
        .unwrap();
    let stores = [
        (
            "prefixed",
            "s3://cache/team/nix?endpoint=http://127.0.0.1:9000&region=us-east-1".to_string(),
        ),
        (
            "bucket",
            "s3://cache?endpoint=http://127.0.0.1:9000&region=us-east-1".to_string(),
        ),
        (
            "local",
            format!("file://{}", tmp.path().join("store").display()),
        ),
    ];
    for (org, url) in &stores {
        let made = pubdeck(
            tmp.path(),
            &cfg,
            &[
                "catalog",
                "create",
                org,
                "--store",
                url,
                "--key",
                pubfile.to_str().unwrap(),
            ],
        );
        assert!(made.status.success(), "{}", stderr(&made));
    }
    let conf = |org: &str| tmp.path().join(format!("{org}-nix.conf"));
    let use_ = |org: &str| {
        pubdeck(
            tmp.path(),
            &cfg,
            &[
                "use",
                org,
                "--yes",
                "--json",
                "--nix-conf",
                conf(org).to_str().unwrap(),
            ],
        )
    };
    let daemon_note = |err: &str| {
        err.lines()
            .filter(|l| l.contains("Nix daemon") && l.contains("AWS credentials"))
            .count()
    };

    let prefixed = use_("prefixed");
    let err = stderr(&prefixed);
    if real_nix_version() < (2, 32) {
        assert_eq!(prefixed.status.code(), Some(1), "{err}");
        assert!(
            err.contains("2.32") && err.contains("bucket name") && err.contains("team/nix"),
            "{err}"
        );
        assert!(prefixed.stdout.is_empty(), "{prefixed:?}");
        assert!(!conf("prefixed").exists(), "nothing written");
    } else {
        assert!(prefixed.status.success(), "{err}");
        assert_eq!(daemon_note(&err), 1, "{err}");
    }

    for (org, s3) in [("bucket", true), ("local", false)] {
        let done = use_(org);
        let err = stderr(&done);
        assert!(done.status.success(), "{org}: {err}");
        let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        assert_eq!(json["written"], true, "{json}");
        assert_eq!(
            json["plan"]["daemon_needs_aws_credentials"], s3,
            "{org}: {json}"
        );
        assert_eq!(daemon_note(&err), usize::from(s3), "{org}: {err}");
        // Said again when there is nothing left to write.
        let again = use_(org);
        assert_eq!(daemon_note(&stderr(&again)), usize::from(s3), "{org}");
    }
}

/// The README's `trusted-endpoints` example, as written there, trusts the endpoint of its
/// `s3://bucket?endpoint=http://127.0.0.1:9000` example (moved to the test server's port):
/// refused without it, listed by `config show` and served with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_works_once_trusted() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let example = "s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1";
    assert!(readme.contains(example), "the README's store URL example");
    let snippet = readme
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("trusted-endpoints"))
        .expect("a toml block with trusted-endpoints in the README");
    assert!(snippet.contains("http://127.0.0.1:9000"), "{snippet}");

    let server = TestS3::start().await;
    std::fs::create_dir_all(server.root.join("bucket")).unwrap();
    let here = server.addr.to_string();
    let url = example.replace("127.0.0.1:9000", &here);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("cfg");
    let ls = || pubdeck(tmp.path(), &cfg, &["store", "ls", "--store", &url]);
    let refused = ls();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));

    std::fs::create_dir_all(config_file(&cfg).parent().unwrap()).unwrap();
    std::fs::write(config_file(&cfg), snippet.replace("127.0.0.1:9000", &here)).unwrap();
    let listed = ls();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let shown = pubdeck(tmp.path(), &cfg, &["config", "show"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("trusted-endpoints") && l.contains(&format!("http://{here}"))),
        "{shown}"
    );
}
