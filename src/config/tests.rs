use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap().to_string();
    let env = env_of(&[("HOME", &home)]);
    let s = Settings::resolve_with(&Overrides::default(), &env).unwrap();
    let data = dir.path().join(".local/share/pubdeck");
    assert_eq!(
        s.catalog,
        CatalogLocation::Embedded(data.join("catalog.sqlite"))
    );
    assert_eq!(
        s.store,
        format!("file://{}", data.join("store-cache").display())
    );
    assert_eq!(
        s.config_file,
        dir.path().join(".config/pubdeck/config.toml")
    );
    assert_eq!(s.token, None);

    // config file < env < flags
    let cfg = dir.path().join(".config/pubdeck/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        "# mine\ncatalog = \"http://127.0.0.1:1\"\ntoken = \"t-file\"\norg = \"fileorg\"\nsigning-key = \"~/k\"\n",
    )
    .unwrap();
    let s = Settings::resolve_with(&Overrides::default(), &env).unwrap();
    assert_eq!(
        s.catalog,
        CatalogLocation::Service("http://127.0.0.1:1".into())
    );
    assert_eq!(s.token.as_deref(), Some("t-file"));
    assert_eq!(s.signing_key, Some(dir.path().join("k")));
    let env2 = env_of(&[
        ("HOME", &home),
        ("PUBDECK_ORG", "envorg"),
        ("PUBDECK_TOKEN", "t-env"),
    ]);
    let s = Settings::resolve_with(&Overrides::default(), &env2).unwrap();
    assert_eq!(s.org.as_deref(), Some("envorg"));
    assert_eq!(s.token.as_deref(), Some("t-env"));
    let o = Overrides {
        org: Some("flagorg".into()),
        catalog: Some("/tmp/c.sqlite".into()),
        ..Overrides::default()
    };
    let s = Settings::resolve_with(&o, &env2).unwrap();
    assert_eq!(s.org.as_deref(), Some("flagorg"));
    assert_eq!(s.catalog, CatalogLocation::Embedded("/tmp/c.sqlite".into()));
    assert!(!format!("{s:?}").contains("t-env"));
}

#[test]
fn save_keeps_comments_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sub/config.toml");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "# keep me\norg = \"a\"\n").unwrap();
    save_login(&cfg, "http://127.0.0.1:9", "pdk_x").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# keep me"));
    assert!(
        text.contains("[tokens]\n\"http://127.0.0.1:9\" = \"pdk_x\""),
        "{text}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    std::fs::write(&cfg, "token = 5\n").unwrap();
    assert!(ConfigFile::load(&cfg).is_err());
}

/// `catalog create` on a terminal, answered y: the endpoint goes into `trusted-endpoints`
/// once, as a top-level key even after a `[table]`, and the rest of the file stays as it
/// was, comments included; the file stays 0600.
#[test]
fn add_trusted_endpoint_adds_once_and_keeps_the_rest() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pubdeck/config.toml");
    let ep = |s: &str| crate::store::Endpoint::parse(s).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let resolve = |p: &Path| {
        Settings::resolve_with(
            &Overrides {
                config_file: Some(p.to_path_buf()),
                ..Overrides::default()
            },
            &|k| (k == "HOME").then(|| "/home/u".to_string()),
        )
        .unwrap()
    };

    // No file yet: created private, with the one line.
    assert!(add_trusted_endpoint(&cfg, &ep("HTTP://127.0.0.1:9000/")).unwrap());
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "trusted-endpoints = [\"http://127.0.0.1:9000\"]\n"
    );
    assert_eq!(mode(&cfg), 0o600);
    // The same endpoint, spelt otherwise: nothing to do, nothing written.
    let before = std::fs::read_to_string(&cfg).unwrap();
    assert!(!add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9000")).unwrap());
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), before);

    // A file with comments and a table, no list yet: the key lands at the top level.
    let mine =
        "# my pubdeck\norg = \"myorg\" # the team\n\n[keys]\n# publish with P\npublish = \"P\"\n";
    std::fs::write(&cfg, mine).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9000")).unwrap());
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(
        text,
        "# my pubdeck\norg = \"myorg\" # the team\ntrusted-endpoints = [\"http://127.0.0.1:9000\"]\n\n[keys]\n# publish with P\npublish = \"P\"\n"
    );
    assert_eq!(mode(&cfg), 0o600);
    let s = resolve(&cfg);
    assert_eq!(s.trusted_endpoints, ["http://127.0.0.1:9000"]);
    assert_eq!(s.keys.len(), 1);

    // A list already there (with its comment): extended, once.
    std::fs::write(
        &cfg,
        "# mine\ntrusted-endpoints = [\"https://minio.lan\"] # the lab\n",
    )
    .unwrap();
    assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).unwrap());
    assert!(!add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).unwrap());
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "# mine\ntrusted-endpoints = [\"https://minio.lan\", \"http://127.0.0.1:9001\"] # the lab\n"
    );
    assert_eq!(
        resolve(&cfg).trusted_endpoints,
        ["https://minio.lan", "http://127.0.0.1:9001"]
    );

    // A config it cannot read is left alone.
    std::fs::write(&cfg, "trusted-endpoints = \"http://127.0.0.1:1\"\n").unwrap();
    assert!(add_trusted_endpoint(&cfg, &ep("http://127.0.0.1:9001")).is_err());
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "trusted-endpoints = \"http://127.0.0.1:1\"\n"
    );
}

#[test]
fn keys_and_theme_tables_carry_their_lines() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("config.toml");
    std::fs::write(
        &p,
        "org = \"myorg\"\n\n[keys]\npublish = \"P\"\n# comment\ndown = [\"j\", \"down\"]\n\n[theme]\naccent = \"#ff8800\"\n",
    )
    .unwrap();
    let f = ConfigFile::load(&p).unwrap();
    let keys = f.entries("keys");
    assert_eq!(
        keys,
        vec![
            ConfigEntry {
                name: "publish".into(),
                values: vec!["P".into()],
                line: Some(4)
            },
            ConfigEntry {
                name: "down".into(),
                values: vec!["j".into(), "down".into()],
                line: Some(6)
            },
        ]
    );
    assert_eq!(f.entries("theme")[0].line, Some(9));
    std::fs::write(&p, "[keys]\npublish = 3\n").unwrap();
    let e = ConfigFile::load(&p).unwrap_err().to_string();
    assert!(e.contains("line 2: [keys] publish must be a string"), "{e}");
    std::fs::write(&p, "keys = \"P\"\n").unwrap();
    let e = ConfigFile::load(&p).unwrap_err().to_string();
    assert!(e.contains("line 1: `keys` must be a table"), "{e}");
}

/// A workspace: a git repository `repo/` whose environment is `repo/env`, a home with a
/// user config, and the environment used to resolve.
struct Workspace {
    _tmp: tempfile::TempDir,
    home: String,
    repo: PathBuf,
    user_config: PathBuf,
}

fn workspace(project: &str, user: &str) -> Workspace {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("env/.flox")).unwrap();
    if !project.is_empty() {
        std::fs::write(repo.join(PROJECT_FILE), project).unwrap();
    }
    let user_config = home.join(".config/pubdeck/config.toml");
    std::fs::create_dir_all(user_config.parent().unwrap()).unwrap();
    std::fs::write(&user_config, user).unwrap();
    Workspace {
        home: home.display().to_string(),
        _tmp: tmp,
        repo,
        user_config,
    }
}

impl Workspace {
    fn resolve(&self, flags: Overrides, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut pairs = vec![("HOME", self.home.as_str())];
        pairs.extend_from_slice(env);
        let o = Overrides {
            project_dir: Some(self.repo.join("env")),
            ..flags
        };
        Settings::resolve_with(&o, &env_of(&pairs))
    }
}

/// flags > environment > project file > user config > defaults, each named as the source;
/// the project file is found from the environment up to the repository root, and its
/// relative paths are its own directory's.
#[test]
fn project_file_precedence_and_paths() {
    let w = workspace(
        "catalog = \"cat/catalog.sqlite\"\norg = \"projorg\"\nsigning-key = \"keys/k.key\"\n",
        "org = \"userorg\"\ndata-dir = \"~/userdata\"\nstore = \"file:///srv/store\"\n",
    );
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(s.project_file, Some(w.repo.join(PROJECT_FILE)));
    assert_eq!(
        s.catalog,
        CatalogLocation::Embedded(w.repo.join("cat/catalog.sqlite"))
    );
    assert_eq!(s.org.as_deref(), Some("projorg"));
    assert_eq!(s.signing_key, Some(w.repo.join("keys/k.key")));
    assert_eq!(s.data_dir, Path::new(&w.home).join("userdata"));
    assert_eq!(s.source("catalog"), Source::Project);
    assert_eq!(s.source("org"), Source::Project);
    assert_eq!(s.source("data-dir"), Source::File);
    assert_eq!(s.source("store"), Source::File);
    let s = w
        .resolve(Overrides::default(), &[("PUBDECK_ORG", "envorg")])
        .unwrap();
    assert_eq!(s.org.as_deref(), Some("envorg"));
    assert_eq!(s.source("org"), Source::Env("PUBDECK_ORG"));
    let flags = Overrides {
        org: Some("flagorg".into()),
        ..Default::default()
    };
    let s = w.resolve(flags, &[("PUBDECK_ORG", "envorg")]).unwrap();
    assert_eq!(s.org.as_deref(), Some("flagorg"));
    assert_eq!(s.source("org"), Source::Flag);
    // Outside the repository (the search stops at its root), no project file.
    let s = Settings::resolve_with(
        &Overrides {
            project_dir: Some(w.repo.parent().unwrap().to_path_buf()),
            ..Default::default()
        },
        &env_of(&[("HOME", &w.home)]),
    )
    .unwrap();
    assert_eq!(s.project_file, None);
    assert_eq!(s.org.as_deref(), Some("userorg"));
}

/// A project file holds no secrets and no trust: a token, `[tokens]`, trusted endpoints
/// and unknown keys are refused with their line and the fix.
#[test]
fn project_file_refuses_secrets_trust_and_unknown_keys() {
    for (text, want) in [
        (
            "org = \"a\"\ntoken = \"pdk_x\"\n",
            "line 2: a project file may not hold a token",
        ),
        (
            "[tokens]\n\"http://x\" = \"pdk_x\"\n",
            "may not hold a token",
        ),
        (
            "trusted-endpoints = [\"http://127.0.0.1:9000\"]\n",
            "line 1: a project file may not trust endpoints",
        ),
        (
            "colour = \"red\"\n",
            "line 1: unknown key `colour`; a project file holds catalog, org",
        ),
        ("org = 5\n", "line 1: `org` must be a string"),
        (
            "multipart-threshold = \"2GiB\"\n",
            "line 1: unknown key `multipart-threshold`",
        ),
    ] {
        let w = workspace(text, "");
        let e = w
            .resolve(Overrides::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text:?}: {e}");
        assert!(e.contains(PROJECT_FILE), "{e}");
    }
}

/// A token goes only to the catalog it was given for: a project file naming another
/// catalog does not receive `PUBDECK_TOKEN` or the config file's `token`; a `[tokens]`
/// entry for the project's catalog, or the user naming the same catalog, does.
#[test]
fn a_token_goes_only_to_its_catalog() {
    let evil = "catalog = \"http://127.0.0.1:9/\"\n";
    let user = "catalog = \"http://127.0.0.1:8787\"\ntoken = \"pdk_mine\"\n";
    let w = workspace(evil, user);
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(
        s.catalog,
        CatalogLocation::Service("http://127.0.0.1:9/".into())
    );
    assert_eq!(s.token, None);
    assert_eq!(
        s.withheld_token,
        Some(WithheldToken {
            source: Source::File,
            belongs_to: Some("http://127.0.0.1:8787/".into())
        })
    );
    assert!(!format!("{s:?}").contains("pdk_mine"));
    let s = w
        .resolve(Overrides::default(), &[("PUBDECK_TOKEN", "pdk_env")])
        .unwrap();
    assert_eq!(s.token, None);
    assert_eq!(
        s.withheld_token.unwrap().source,
        Source::Env("PUBDECK_TOKEN")
    );
    // Named by the user too (the environment wins over the project file, and the token
    // belongs to it).
    let s = w
        .resolve(
            Overrides::default(),
            &[
                ("PUBDECK_TOKEN", "pdk_env"),
                ("PUBDECK_CATALOG", "http://127.0.0.1:9"),
            ],
        )
        .unwrap();
    assert_eq!(s.token.as_deref(), Some("pdk_env"));
    // Keyed by the project's catalog URL (trailing slash aside): sent.
    let keyed = format!("{user}[tokens]\n\"http://127.0.0.1:9\" = \"pdk_for_9\"\n");
    let w = workspace(evil, &keyed);
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(s.token.as_deref(), Some("pdk_for_9"));
    assert_eq!(s.withheld_token, None);
    // Without a project file, the user's catalog and its token, as before.
    let w = workspace("", &keyed);
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(
        s.catalog,
        CatalogLocation::Service("http://127.0.0.1:8787".into())
    );
    assert_eq!(s.token.as_deref(), Some("pdk_mine"));
    // A project naming the user's own catalog gets the user's token.
    let w = workspace("catalog = \"http://127.0.0.1:8787\"\n", user);
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(s.token.as_deref(), Some("pdk_mine"));
}

/// `login` keys the token by its catalog; an older `token = …` moves under its own
/// catalog's key rather than following the new default catalog.
#[test]
fn login_keys_tokens_by_catalog() {
    let w = workspace(
        "",
        "catalog = \"http://127.0.0.1:1\"\ntoken = \"pdk_old\"\n",
    );
    save_login(&w.user_config, "http://127.0.0.1:2/", "pdk_new").unwrap();
    let text = std::fs::read_to_string(&w.user_config).unwrap();
    assert!(!text.contains("\ntoken ="), "{text}");
    let s = w.resolve(Overrides::default(), &[]).unwrap();
    assert_eq!(
        s.catalog,
        CatalogLocation::Service("http://127.0.0.1:2/".into())
    );
    assert_eq!(s.token.as_deref(), Some("pdk_new"));
    let s = w
        .resolve(
            Overrides {
                catalog: Some("http://127.0.0.1:1".into()),
                ..Default::default()
            },
            &[],
        )
        .unwrap();
    assert_eq!(s.token.as_deref(), Some("pdk_old"));
}

/// `multipart-threshold` from the config file or `PUBDECK_MULTIPART_THRESHOLD` (the variable
/// wins) reaches every store opened with the settings; a value that is not a size is one
/// sentence naming where it came from; unset, stores keep their default.
#[test]
fn multipart_threshold_from_file_or_environment_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let resolve = |vars: &[(&str, &str)]| {
        let o = Overrides {
            config_file: Some(cfg.clone()),
            ..Overrides::default()
        };
        let mut all = vec![("HOME", dir.path().to_str().unwrap())];
        all.extend_from_slice(vars);
        Settings::resolve_with(&o, &env_of(&all))
    };
    let s = resolve(&[]).unwrap();
    assert_eq!(s.multipart_threshold, None);
    assert_eq!(s.store_open().multipart_threshold, None);
    assert!(s.sources.contains(&(MULTIPART_THRESHOLD, Source::Default)));

    std::fs::write(&cfg, "multipart-threshold = \"2GiB\"\n").unwrap();
    let s = resolve(&[]).unwrap();
    assert_eq!(s.multipart_threshold, Some(2 << 30));
    assert_eq!(s.store_open().multipart_threshold, Some(2 << 30));
    assert!(s.sources.contains(&(MULTIPART_THRESHOLD, Source::File)));
    let s = resolve(&[("PUBDECK_MULTIPART_THRESHOLD", "64M")]).unwrap();
    assert_eq!(s.store_open().multipart_threshold, Some(64 << 20));

    let e = resolve(&[("PUBDECK_MULTIPART_THRESHOLD", "lots")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "PUBDECK_MULTIPART_THRESHOLD: \"lots\" is not a size like 8MiB"
    );
    std::fs::write(&cfg, "multipart-threshold = \"2 parsecs\"\n").unwrap();
    let e = resolve(&[]).unwrap_err().to_string();
    assert!(
        e.contains("config.toml is not a valid pubdeck config"),
        "{e}"
    );
    assert!(
        e.contains(
            "`multipart-threshold`: \"2 parsecs\" has an unknown size unit (use KiB, MiB or GiB)"
        ),
        "{e}"
    );
    std::fs::write(&cfg, "multipart-threshold = 1073741824\n").unwrap();
    let e = resolve(&[]).unwrap_err().to_string();
    assert!(e.contains("`multipart-threshold` must be a string"), "{e}");
}
