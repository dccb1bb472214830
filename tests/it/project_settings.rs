//! Project settings (`pubdeck.toml` in the environment's repository): the demo's printed
//! commands work exactly as printed from its workspace, `config show` names the project file
//! as a source, and a project file that names another catalog never receives your token.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{stderr, stdout};

/// `pubdeck` in `cwd` with only `HOME` (and `NO_COLOR`) of pubdeck's settings: no `PUBDECK_*`
/// variable, no XDG override, a home of its own.
fn run_in(cwd: &Path, home: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pubdeck"));
    cmd.current_dir(cwd).args(args).env_clear();
    for keep in ["PATH", "TMPDIR", "USER", "LANG"] {
        if let Some(v) = std::env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.env("HOME", home).env("NO_COLOR", "1");
    // pubdeck's own store for installs: this test is about settings, not the Nix store.
    cmd.env("PUBDECK_NIX", "0");
    cmd.output().expect("pubdeck runs")
}

/// The demo shows each step while it creates the workspace, writes a project file, and every
/// command it prints under "then try:" works exactly as printed, from a shell with none of
/// pubdeck's variables set.
#[test]
fn the_demo_commands_work_as_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let demo = tmp.path().join("demo");
    let out = run_in(
        tmp.path(),
        &home,
        &["demo", "--no-tui", "--path", demo.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Progress while creating, one line per step off a terminal.
    let err = stderr(&out);
    for step in [
        "creating the demo workspace: sample environment and git repository",
        "creating the demo workspace: signing key and catalog",
        "creating the demo workspace: packing and signing 0/",
        "creating the demo workspace: registering ",
    ] {
        assert!(err.contains(step), "{step:?} not in:\n{err}");
    }
    let text = stdout(&out);
    assert!(!text.contains("export PUBDECK_"), "{text}");
    let commands: Vec<&str> = text
        .split_once("then try:")
        .expect("then try")
        .1
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut cwd = tmp.path().to_path_buf();
    let mut ran = 0;
    for line in commands {
        if let Some(dir) = line.strip_prefix("cd ") {
            cwd = PathBuf::from(dir.trim_matches('\''));
            continue;
        }
        let args: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(args[0], "pubdeck", "{line}");
        if args.len() == 1 || args[1] == "#" {
            continue; // the workbench needs a terminal (tests/it/tui_e2e.rs drives it)
        }
        let out = run_in(&cwd, &home, &args[1..]);
        assert!(
            out.status.success(),
            "`{line}` in {} failed:\n{}{}",
            cwd.display(),
            stdout(&out),
            stderr(&out)
        );
        let said = stdout(&out);
        match args[1] {
            "builds" => assert!(said.contains("hello"), "{said}"),
            "search" => assert!(said.contains("myorg/api-gateway"), "{said}"),
            "show" => assert!(said.contains("myorg/hello"), "{said}"),
            _ => {}
        }
        ran += 1;
    }
    assert!(ran >= 6, "only {ran} commands ran");
    // `config show` names the project file as the source of what it set.
    let out = run_in(&cwd, &home, &["config", "show"]);
    let shown = stdout(&out);
    assert!(out.status.success(), "{shown}");
    for key in ["catalog", "org", "signing-key", "data-dir"] {
        let row = shown
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} not shown:\n{shown}"));
        assert!(row.ends_with("(project file)"), "{row}");
    }
    assert!(
        shown.contains(&format!(
            "project file: {}",
            cwd.join("pubdeck.toml").display()
        )),
        "{shown}"
    );
}

/// Accepts one HTTP request on a loopback port and returns its bytes (headers and body, up to
/// 64 KiB), answering 503 so the client gives up at once.
fn capture_one_request(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut conn, _) = listener.accept().expect("a request arrives");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while buf.len() < 65536 {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        );
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A cloned repository whose project file names another catalog: your token (from the config
/// file or `PUBDECK_TOKEN`) is not sent there; a token you keyed to that catalog is.
#[test]
fn a_project_file_naming_another_catalog_never_receives_your_token() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repo = tmp.path().join("cloned");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let config = home.join(".config/pubdeck/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let mine = "catalog = \"http://127.0.0.1:1\"\ntoken = \"pdk_mysecret\"\n";
    let pubdeck = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pubdeck"));
        cmd.current_dir(&repo)
            .args(args)
            .env("HOME", &home)
            .env("NO_COLOR", "1")
            .env_remove("PUBDECK_CATALOG")
            .env_remove("PUBDECK_TOKEN")
            .env_remove("XDG_CONFIG_HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // The request `search` sends to the catalog the project file names, with the user's
    // config as `user_config(that catalog's URL)` says.
    let request_to_project_catalog = |user_config: &dyn Fn(&str) -> String,
                                      env: &[(&str, &str)]| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        std::fs::write(&config, user_config(&url)).unwrap();
        std::fs::write(
            repo.join("pubdeck.toml"),
            format!("catalog = \"{url}\"\norg = \"theirorg\"\n"),
        )
        .unwrap();
        let seen = capture_one_request(listener);
        let out = pubdeck(&["search", "hello"], env);
        assert!(!out.status.success());
        seen.join().unwrap()
    };
    let req = request_to_project_catalog(&|_| mine.to_string(), &[]);
    assert!(req.starts_with("GET /v1/"), "{req}");
    assert!(!req.to_ascii_lowercase().contains("authorization"), "{req}");
    assert!(!req.contains("pdk_mysecret"), "{req}");
    let req =
        request_to_project_catalog(&|_| mine.to_string(), &[("PUBDECK_TOKEN", "pdk_fromenv")]);
    assert!(!req.to_ascii_lowercase().contains("authorization"), "{req}");
    assert!(!req.contains("pdk_fromenv"), "{req}");
    // `config show` says why: the token belongs to another catalog.
    let shown = stdout(&pubdeck(&["config", "show"], &[]));
    assert!(
        shown.contains("(withheld: it belongs to http://127.0.0.1:1/"),
        "{shown}"
    );
    assert!(!shown.contains("pdk_mysecret"), "{shown}");
    // A token keyed to the project's catalog is the user's choice: sent.
    let req = request_to_project_catalog(
        &|url| format!("{mine}[tokens]\n\"{url}\" = \"pdk_forthem\"\n"),
        &[],
    );
    assert!(
        req.contains("Bearer pdk_forthem") || req.contains("bearer pdk_forthem"),
        "{req}"
    );
    assert!(!req.contains("pdk_mysecret"), "{req}");
}
