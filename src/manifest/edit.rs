//! Format-preserving edits of a manifest, written atomically.
//!
//! Every edit starts from the text the [`Manifest`] was read from, refuses to write when the
//! file changed on disk in between, re-validates the result, and replaces the file with
//! temp file + fsync + rename, so a reader sees either the old or the new manifest.

use toml_edit::{DocumentMut, Item, Table, value};

use super::{Manifest, ManifestError};

/// An `[install]` entry to add.
#[derive(Debug, Clone)]
pub struct NewInstall<'a> {
    pub id: &'a str,
    pub pkg_path: &'a str,
    pub pkg_group: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// A store-path `[install]` descriptor for a package pubdeck verified (and, for this system,
/// imported): `ID.store-path = "/nix/store/…"` and `ID.systems = [...]`, nothing else, with a
/// comment line above it naming the package (`# pubdeck: myorg/hello@1.2.0`). Flox locks
/// such a descriptor without asking any catalog.
#[derive(Debug, Clone)]
pub struct StorePathInstall<'a> {
    pub id: &'a str,
    pub store_path: &'a str,
    pub systems: &'a [String],
    /// What it is, for the comment: `org/package@version`.
    pub reference: &'a str,
}

/// The comment pubdeck puts above a descriptor it wrote; a later write replaces its own line
/// and keeps every other comment.
pub const NOTE_PREFIX: &str = "# pubdeck: ";

/// `prefix` (the comments and blank lines above a line) without pubdeck's own note, with
/// `note` as its last line.
fn with_note(prefix: &str, note: &str) -> String {
    let mut out: String = prefix
        .split_inclusive('\n')
        .filter(|l| !l.trim_start().starts_with(NOTE_PREFIX.trim_end()))
        .collect();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(NOTE_PREFIX);
    out.push_str(note);
    out.push('\n');
    out
}

impl Manifest {
    fn doc(&self) -> DocumentMut {
        self.text
            .parse()
            .expect("text was validated when the manifest was parsed")
    }

    /// The manifest text with `entry` added to `[install]` as dotted keys
    /// (`hello.pkg-path = "myorg/hello"`, `hello.pkg-group = "hello"`).
    pub fn with_install(&self, entry: &NewInstall) -> Result<String, ManifestError> {
        if self.install.iter().any(|i| i.id == entry.id) {
            return Err(ManifestError::AlreadyInstalled {
                path: self.path.clone(),
                id: entry.id.to_string(),
            });
        }
        let mut doc = self.doc();
        if !doc.contains_key("install") {
            let mut t = Table::new();
            t.set_implicit(false);
            doc.insert("install", Item::Table(t));
        }
        let install = doc["install"]
            .as_table_like_mut()
            .expect("validated as a table");
        let mut t = Table::new();
        t.set_dotted(true);
        t.insert("pkg-path", value(entry.pkg_path));
        if let Some(g) = entry.pkg_group {
            t.insert("pkg-group", value(g));
        }
        if let Some(v) = entry.version {
            t.insert("version", value(v));
        }
        install.insert(entry.id, Item::Table(t));
        self.checked(doc.to_string())
    }

    /// The manifest text with each entry's store-path descriptor added, or put in place of the
    /// descriptor of the same id (in the same form: dotted keys, a `[install.ID]` table or an
    /// inline table), keeping every other line and comment.
    pub fn with_store_paths(&self, entries: &[StorePathInstall]) -> Result<String, ManifestError> {
        let mut doc = self.doc();
        if !doc.contains_key("install") {
            let mut t = Table::new();
            t.set_implicit(false);
            doc.insert("install", Item::Table(t));
        }
        let install = doc["install"]
            .as_table_like_mut()
            .expect("validated as a table");
        for e in entries {
            let systems = {
                let mut a = toml_edit::Array::new();
                for s in e.systems {
                    a.push(s.as_str());
                }
                a
            };
            match install.get_mut(e.id) {
                Some(Item::Value(toml_edit::Value::InlineTable(old))) => {
                    let mut t = toml_edit::InlineTable::new();
                    t.insert("store-path", e.store_path.into());
                    t.insert("systems", toml_edit::Value::Array(systems));
                    // The comment after it on its line stays.
                    *t.decor_mut() = old.decor().clone();
                    install.insert(e.id, Item::Value(toml_edit::Value::InlineTable(t)));
                    if let Some(mut key) = install.key_mut(e.id) {
                        let prefix = key
                            .leaf_decor()
                            .prefix()
                            .and_then(|p| p.as_str())
                            .unwrap_or("");
                        let note = with_note(prefix, e.reference);
                        key.leaf_decor_mut().set_prefix(note);
                    }
                }
                Some(Item::Table(t)) if !t.is_dotted() => {
                    t.clear();
                    t.insert("store-path", value(e.store_path));
                    t.insert("systems", value(systems));
                    let prefix = t.decor().prefix().and_then(|p| p.as_str()).unwrap_or("");
                    let note = with_note(prefix, e.reference);
                    t.decor_mut().set_prefix(note);
                }
                existing => {
                    // Dotted keys: the comments above the entry sit on its first key.
                    let prefix = existing
                        .and_then(|i| i.as_table())
                        .and_then(|t| t.iter().next().and_then(|(k, _)| t.key(k)))
                        .and_then(|k| k.leaf_decor().prefix())
                        .and_then(|p| p.as_str())
                        .unwrap_or("")
                        .to_string();
                    let mut t = Table::new();
                    t.set_dotted(true);
                    t.insert("store-path", value(e.store_path));
                    t.insert("systems", value(systems));
                    if let Some(mut key) = t.key_mut("store-path") {
                        key.leaf_decor_mut()
                            .set_prefix(with_note(&prefix, e.reference));
                    }
                    install.insert(e.id, Item::Table(t));
                }
            }
        }
        self.checked(doc.to_string())
    }

    /// The manifest text without the `[install]` entries `ids` (their comments go with them).
    pub fn without_installs(&self, ids: &[&str]) -> Result<String, ManifestError> {
        let mut doc = self.doc();
        if let Some(install) = doc.get_mut("install").and_then(Item::as_table_like_mut) {
            for id in ids {
                install.remove(id);
            }
        }
        self.checked(doc.to_string())
    }

    /// The manifest text with build `name`'s version set to the string `version`.
    pub fn with_build_version(&self, name: &str, version: &str) -> Result<String, ManifestError> {
        if self.build(name).is_none() {
            return Err(ManifestError::NoSuchBuild {
                path: self.path.clone(),
                name: name.to_string(),
            });
        }
        let mut doc = self.doc();
        let build = doc["build"][name]
            .as_table_like_mut()
            .expect("validated as a table");
        match build.get_mut("version") {
            // Keep the key's place and decoration; replace the value only.
            Some(item) if item.is_str() => {
                let decor = item.as_value().map(|v| v.decor().clone());
                *item = value(version);
                if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                    *v.decor_mut() = decor;
                }
            }
            _ => {
                build.remove("version");
                build.insert("version", value(version));
            }
        }
        self.checked(doc.to_string())
    }

    /// Validates edited text before anything is written.
    fn checked(&self, text: String) -> Result<String, ManifestError> {
        Manifest::parse(&self.path, text.clone())?;
        Ok(text)
    }

    /// Writes `text` in place of this manifest, atomically, if the file on disk is still the
    /// one this manifest was read from. Returns the re-read manifest.
    pub fn write(&self, text: &str) -> Result<Manifest, ManifestError> {
        let on_disk =
            std::fs::read_to_string(&self.path).map_err(|source| ManifestError::Read {
                path: self.path.clone(),
                source,
            })?;
        if on_disk != self.text {
            return Err(ManifestError::Changed {
                path: self.path.clone(),
            });
        }
        crate::fsutil::write_atomic(&self.path, text.as_bytes()).map_err(|source| {
            ManifestError::Write {
                path: self.path.clone(),
                source,
            }
        })?;
        Manifest::parse(&self.path, text.to_string())
    }

    /// Adds an install entry and writes the file.
    pub fn add_install(&self, entry: &NewInstall) -> Result<Manifest, ManifestError> {
        let text = self.with_install(entry)?;
        self.write(&text)
    }

    /// Sets a build's version and writes the file.
    pub fn set_build_version(&self, name: &str, version: &str) -> Result<Manifest, ManifestError> {
        super::check_version(version)?;
        let text = self.with_build_version(name, version)?;
        self.write(&text)
    }

    /// Sets a build's version where it is given, never changing its form: a literal in the
    /// manifest, or the file `version.file` names (replaced atomically; it must be a regular
    /// file in the repository). A version that `version.command`
    /// prints cannot be set. Returns the file written (the one to commit).
    pub fn set_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<std::path::PathBuf, ManifestError> {
        super::check_version(version)?;
        let build = self.build(name).ok_or_else(|| ManifestError::NoSuchBuild {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        match &build.version {
            Some(super::VersionSpec::Command(_)) => Err(ManifestError::VersionFromCommand {
                name: name.to_string(),
            }),
            Some(super::VersionSpec::File(f)) => {
                let env = self.env_dir();
                let path = env.join(f);
                let fail = |why: String| ManifestError::VersionFile {
                    name: name.to_string(),
                    file: f.clone(),
                    why,
                };
                let old = super::read_version_file(&super::repository_root(&env), &path, 64 * 1024)
                    .map_err(fail)?;
                // The file is the version (the build reads it whole, trimmed); a final
                // newline stays as it was.
                let text = if old.ends_with('\n') || old.is_empty() {
                    format!("{version}\n")
                } else {
                    version.to_string()
                };
                let real = std::fs::canonicalize(&path).map_err(|e| fail(e.to_string()))?;
                crate::fsutil::write_atomic(&real, text.as_bytes())
                    .map_err(|e| fail(e.to_string()))?;
                Ok(real)
            }
            _ => {
                self.set_build_version(name, version)?;
                Ok(self.path.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &str = r#"version = 1

# packages we use
[install]
curl.pkg-path = "curl" # pinned by the base catalog

[build.hello]
# the greeting
command = "mkdir -p $out"
version = "1.0"   # bump me

[options]
systems = ["x86_64-linux"]
"#;

    fn sample() -> Manifest {
        Manifest::parse(Path::new("m.toml"), SAMPLE.to_string()).unwrap()
    }

    #[test]
    fn add_install_keeps_comments_and_uses_dotted_keys() {
        let text = sample()
            .with_install(&NewInstall {
                id: "hello",
                pkg_path: "myorg/hello",
                pkg_group: Some("hello"),
                version: None,
            })
            .unwrap();
        assert!(text.contains("# packages we use\n[install]\ncurl.pkg-path = \"curl\" # pinned by the base catalog\nhello.pkg-path = \"myorg/hello\"\nhello.pkg-group = \"hello\"\n"), "{text}");
        assert!(text.contains("# the greeting"));
        let m = Manifest::parse(Path::new("m.toml"), text).unwrap();
        assert_eq!(m.install[1].pkg_group.as_deref(), Some("hello"));
    }

    #[test]
    fn add_install_creates_the_table() {
        let m = Manifest::parse(Path::new("m.toml"), "version = 1\n".into()).unwrap();
        let text = m
            .with_install(&NewInstall {
                id: "x",
                pkg_path: "myorg/x",
                pkg_group: Some("x"),
                version: Some("1.2"),
            })
            .unwrap();
        assert_eq!(
            text,
            "version = 1\n\n[install]\nx.pkg-path = \"myorg/x\"\nx.pkg-group = \"x\"\nx.version = \"1.2\"\n"
        );
    }

    #[test]
    fn duplicate_install_is_refused() {
        let err = sample()
            .with_install(&NewInstall {
                id: "curl",
                pkg_path: "myorg/curl",
                pkg_group: None,
                version: None,
            })
            .unwrap_err();
        assert!(err.to_string().contains("already installs `curl`"));
    }

    #[test]
    fn set_version_keeps_trailing_comment() {
        let text = sample().with_build_version("hello", "1.1").unwrap();
        assert!(text.contains("version = \"1.1\"   # bump me\n"), "{text}");
        assert_eq!(text.len(), SAMPLE.len());
    }

    #[test]
    fn set_version_replaces_a_command_version() {
        let m = Manifest::parse(
            Path::new("m.toml"),
            "version = 1\n[build]\nfoo.command = \"x\"\nfoo.version.command = 'echo 1'\n".into(),
        )
        .unwrap();
        let text = m.with_build_version("foo", "2.0").unwrap();
        let m2 = Manifest::parse(Path::new("m.toml"), text.clone()).unwrap();
        assert_eq!(
            m2.builds[0].version,
            Some(crate::manifest::VersionSpec::Literal("2.0".into())),
            "{text}"
        );
    }

    #[test]
    fn unknown_build_is_refused() {
        assert!(matches!(
            sample().with_build_version("nope", "1"),
            Err(ManifestError::NoSuchBuild { .. })
        ));
    }

    #[test]
    fn write_refuses_when_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let m = Manifest::load(&path).unwrap();
        std::fs::write(&path, format!("{SAMPLE}# edited elsewhere\n")).unwrap();
        let err = m.set_build_version("hello", "2").unwrap_err();
        assert!(matches!(err, ManifestError::Changed { .. }));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .ends_with("# edited elsewhere\n")
        );
        let m = Manifest::load(&path).unwrap();
        let m = m.set_build_version("hello", "2").unwrap();
        assert_eq!(
            m.builds[0].version,
            Some(super::super::VersionSpec::Literal("2".into()))
        );
    }

    fn sp<'a>(
        id: &'a str,
        path: &'a str,
        systems: &'a [String],
        r: &'a str,
    ) -> StorePathInstall<'a> {
        StorePathInstall {
            id,
            store_path: path,
            systems,
            reference: r,
        }
    }

    #[test]
    fn store_path_descriptors_replace_in_place_and_keep_comments() {
        let text = "version = 1\n\n# packages\n[install]\ncurl.pkg-path = \"curl\" # base\n# my gateway\napi.pkg-path = \"myorg/api\"\napi.pkg-group = \"api\"\nzz.pkg-path = \"zz\"\ninl = { pkg-path = \"myorg/inl\" } # tail\n\n[install.tab]\npkg-path = \"myorg/tab\"\n\n[options]\nsystems = []\n";
        let m = Manifest::parse(Path::new("m.toml"), text.into()).unwrap();
        let x86 = vec!["x86_64-linux".to_string()];
        let out = m
            .with_store_paths(&[
                sp(
                    "api",
                    "/nix/store/00000000000000000000000000000000-api-1.0",
                    &x86,
                    "myorg/api@1.0",
                ),
                sp(
                    "inl",
                    "/nix/store/00000000000000000000000000000000-inl-1.0",
                    &x86,
                    "myorg/inl@1.0",
                ),
                sp(
                    "tab",
                    "/nix/store/00000000000000000000000000000000-tab-1.0",
                    &x86,
                    "myorg/tab@1.0",
                ),
                sp(
                    "new",
                    "/nix/store/00000000000000000000000000000000-new-2.0",
                    &x86,
                    "myorg/new@2.0",
                ),
            ])
            .unwrap();
        assert_eq!(
            out,
            "version = 1\n\n# packages\n[install]\ncurl.pkg-path = \"curl\" # base\n# my gateway\n# pubdeck: myorg/api@1.0\napi.store-path = \"/nix/store/00000000000000000000000000000000-api-1.0\"\napi.systems = [\"x86_64-linux\"]\nzz.pkg-path = \"zz\"\n# pubdeck: myorg/inl@1.0\ninl = { store-path = \"/nix/store/00000000000000000000000000000000-inl-1.0\", systems = [\"x86_64-linux\"] } # tail\n# pubdeck: myorg/new@2.0\nnew.store-path = \"/nix/store/00000000000000000000000000000000-new-2.0\"\nnew.systems = [\"x86_64-linux\"]\n\n# pubdeck: myorg/tab@1.0\n[install.tab]\nstore-path = \"/nix/store/00000000000000000000000000000000-tab-1.0\"\nsystems = [\"x86_64-linux\"]\n\n[options]\nsystems = []\n"
        );
        // Written again (an upgrade): pubdeck's own note line is replaced, not repeated.
        let m = Manifest::parse(Path::new("m.toml"), out).unwrap();
        let again = m
            .with_store_paths(&[sp(
                "api",
                "/nix/store/11111111111111111111111111111111-api-1.1",
                &x86,
                "myorg/api@1.1",
            )])
            .unwrap();
        assert!(again.contains("# my gateway\n# pubdeck: myorg/api@1.1\napi.store-path = \"/nix/store/11111111111111111111111111111111-api-1.1\""), "{again}");
        assert!(!again.contains("myorg/api@1.0"), "{again}");
        let gone = Manifest::parse(Path::new("m.toml"), again)
            .unwrap()
            .without_installs(&["api"])
            .unwrap();
        assert!(!gone.contains("api."), "{gone}");
    }

    /// `set_version` keeps the form: a literal in the manifest, the file version.file names
    /// (the manifest untouched), and nothing for version.command.
    #[test]
    fn set_version_writes_where_the_version_is_given() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        let env = dir.path().join("env");
        std::fs::create_dir_all(env.join(".flox/env")).unwrap();
        let text = "version = 1\n[build.lit]\ncommand = \"x\"\nversion = \"1.0\"\n[build.file]\ncommand = \"x\"\nversion.file = \"../VERSION\"\n[build.cmd]\ncommand = \"x\"\nversion.command = \"echo 1\"\n";
        let path = env.join(".flox/env/manifest.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::write(dir.path().join("VERSION"), "2.3.1\n").unwrap();
        let m = Manifest::load(&path).unwrap();
        let written = m.set_version("file", "2.4.0").unwrap();
        assert_eq!(
            written,
            std::fs::canonicalize(dir.path().join("VERSION")).unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("VERSION")).unwrap(),
            "2.4.0\n"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "the manifest is untouched"
        );
        let m = Manifest::load(&path).unwrap();
        assert_eq!(
            m.shown_version(m.build("file").unwrap()),
            super::super::ShownVersion::Known("2.4.0".into())
        );
        assert!(matches!(
            m.set_version("cmd", "2.0"),
            Err(ManifestError::VersionFromCommand { .. })
        ));
        assert_eq!(m.set_version("lit", "1.1").unwrap(), path);
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("version = \"1.1\"")
        );
    }
}
