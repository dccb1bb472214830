//! `pubdeck use ORG`, like `cachix use`: the lines that let Nix substitute from a catalog's
//! store (`extra-substituters`, `extra-trusted-public-keys`), added to a `nix.conf` while
//! keeping everything else in it.
//!
//! Values already present (under the `extra-` or the plain setting) are not added again, so
//! running it twice changes nothing. A value is appended to an existing `extra-…` line when
//! there is one, else a new line goes at the end. The file is replaced atomically, and only if
//! it did not change since it was read.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::CatalogInfo;
use crate::store::StoreUrl;

/// What `use` would change in one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsePlan {
    pub file: PathBuf,
    /// The substituter URL as Nix reads it (no credentials: pubdeck store URLs have none).
    pub substituter: String,
    pub keys: Vec<String>,
    /// The lines as they will read after the change (new lines, or existing lines extended);
    /// empty when the file already has everything.
    pub lines: Vec<String>,
    /// The whole new text.
    #[serde(skip)]
    pub new_text: String,
    /// The text it was planned from (`None`: the file does not exist).
    #[serde(skip)]
    pub old_text: Option<String>,
}

impl UsePlan {
    /// Nothing to add.
    pub fn is_noop(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Why `use` could not plan or write.
#[derive(Debug, thiserror::Error)]
pub enum UseError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} changed while pubdeck was planning the edit; nothing was written", path.display())]
    Changed { path: PathBuf },
    #[error("the catalog's store cannot be used as a substituter: {0}")]
    BadStore(String),
    #[error("the catalog trusts a key nix.conf cannot hold: {0}")]
    BadKey(String),
    #[error("{0:?} is not a single nix.conf value; nothing was written")]
    NotAToken(String),
    #[error("catalog {0} trusts no key, so Nix could not verify anything from it")]
    NoKeys(String),
}

impl crate::event::Hinted for UseError {
    fn hint(&self) -> Option<String> {
        match self {
            UseError::Changed { .. } => Some("run it again".into()),
            UseError::NoKeys(org) => Some(format!(
                "the owner adds one with `pubdeck catalog add-key {org} KEY.pub`"
            )),
            UseError::Write { .. } => Some(
                "pass --nix-conf with a file you can write (as root: /etc/nix/nix.conf)".into(),
            ),
            _ => None,
        }
    }
}

/// The user's Nix configuration file: `$XDG_CONFIG_HOME/nix/nix.conf` (or
/// `~/.config/nix/nix.conf`); as root, `/etc/nix/nix.conf`, which the Nix daemon reads.
pub fn default_nix_conf() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/etc/nix/nix.conf");
    }
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("nix/nix.conf")
}

/// Plans the edit of `file` for `catalog`.
pub fn plan(file: &Path, catalog: &CatalogInfo) -> Result<UsePlan, UseError> {
    let old_text = match std::fs::read_to_string(file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(UseError::Read {
                path: file.to_path_buf(),
                source,
            });
        }
    };
    // Whatever the catalog answered is parsed again here, and written only in the canonical
    // form that parsing gives, and only if each value is one token of nix.conf's grammar: a
    // newline, space or '#' in a value would add settings of the catalog owner's choosing.
    let substituter = StoreUrl::parse(&catalog.store_url)
        .map_err(|e| UseError::BadStore(e.to_string()))?
        .to_string();
    if catalog.keys.is_empty() {
        return Err(UseError::NoKeys(catalog.name.clone()));
    }
    let keys = catalog
        .keys
        .iter()
        .map(|k| {
            crate::sign::PublicKey::parse(k)
                .map(|k| k.to_nix_string())
                .map_err(|e| UseError::BadKey(e.to_string()))
        })
        .collect::<Result<Vec<String>, UseError>>()?;
    if let Some(v) = std::iter::once(&substituter)
        .chain(&keys)
        .find(|v| !crate::text::is_config_token(v))
    {
        return Err(UseError::NotAToken(crate::text::terminal(v).into_owned()));
    }
    let (new_text, lines) = edit(
        old_text.as_deref().unwrap_or(""),
        &[
            ("substituters", std::slice::from_ref(&substituter)),
            ("trusted-public-keys", &keys),
        ],
    );
    Ok(UsePlan {
        file: file.to_path_buf(),
        substituter,
        keys,
        lines,
        new_text,
        old_text,
    })
}

/// `text` with each `(setting, values)` present: values missing from both `setting` and
/// `extra-setting` lines are appended to the last `extra-setting` line, or to a new one at
/// the end. Returns the text and the lines added or changed.
fn edit(text: &str, wanted: &[(&str, &[String])]) -> (String, Vec<String>) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut changed = Vec::new();
    for (setting, values) in wanted {
        let extra = format!("extra-{setting}");
        let mut present: Vec<String> = Vec::new();
        let mut last_extra = None;
        for (i, line) in lines.iter().enumerate() {
            let content = line.split('#').next().unwrap_or("");
            let Some((k, v)) = content.split_once('=') else {
                continue;
            };
            let k = k.trim();
            if k == *setting || k == extra {
                present.extend(v.split_whitespace().map(str::to_string));
            }
            if k == extra {
                last_extra = Some(i);
            }
        }
        let missing: Vec<&String> = values.iter().filter(|v| !present.contains(v)).collect();
        if missing.is_empty() {
            continue;
        }
        let add = missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        match last_extra {
            Some(i) => {
                let line = &mut lines[i];
                // Keep a trailing comment where it is.
                let (content, comment) = match line.find('#') {
                    Some(at) => (line[..at].trim_end().to_string(), line[at..].to_string()),
                    None => (line.trim_end().to_string(), String::new()),
                };
                *line = if comment.is_empty() {
                    format!("{content} {add}")
                } else {
                    format!("{content} {add} {comment}")
                };
                changed.push(line.clone());
            }
            None => {
                let line = format!("{extra} = {add}");
                lines.push(line.clone());
                changed.push(line);
            }
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    (out, changed)
}

/// Writes the plan (atomically; a new file is 0644 so Nix, and the daemon, can read it),
/// unless the file changed since [`plan`] read it.
pub fn apply(plan: &UsePlan) -> Result<(), UseError> {
    if plan.is_noop() {
        return Ok(());
    }
    // Checked again where it is written: a plan built by hand must follow the same rule.
    if let Some(v) = std::iter::once(&plan.substituter)
        .chain(&plan.keys)
        .find(|v| !crate::text::is_config_token(v))
    {
        return Err(UseError::NotAToken(crate::text::terminal(v).into_owned()));
    }
    let path = &plan.file;
    let now = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(UseError::Read {
                path: path.clone(),
                source,
            });
        }
    };
    if now != plan.old_text {
        return Err(UseError::Changed { path: path.clone() });
    }
    let write = |source| UseError::Write {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    if plan.old_text.is_none() {
        use std::io::Write as _;
        let mut staged = crate::fsutil::Staged::beside(path).map_err(write)?;
        staged
            .file()
            .write_all(plan.new_text.as_bytes())
            .map_err(write)?;
        staged.set_mode(0o644).map_err(write)?;
        staged
            .commit(path, crate::fsutil::Replace::No)
            .map_err(write)?;
        return Ok(());
    }
    crate::fsutil::write_atomic(path, plan.new_text.as_bytes()).map_err(write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn adds_missing_values_and_keeps_the_rest() {
        let text = "# mine\nexperimental-features = nix-command\nextra-substituters = https://a # team cache\n";
        let (out, changed) = edit(
            text,
            &[
                ("substituters", &v(&["file:///srv/c"])),
                ("trusted-public-keys", &v(&["k1:AAAA", "k2:BBBB"])),
            ],
        );
        assert_eq!(
            out,
            "# mine\nexperimental-features = nix-command\nextra-substituters = https://a file:///srv/c # team cache\nextra-trusted-public-keys = k1:AAAA k2:BBBB\n"
        );
        assert_eq!(changed.len(), 2);
        // Twice changes nothing.
        let (again, changed) = edit(
            &out,
            &[
                ("substituters", &v(&["file:///srv/c"])),
                ("trusted-public-keys", &v(&["k1:AAAA", "k2:BBBB"])),
            ],
        );
        assert_eq!(again, out);
        assert!(changed.is_empty());
    }

    #[test]
    fn plain_settings_count_as_present() {
        let text =
            "substituters = https://cache.nixos.org file:///srv/c\ntrusted-public-keys = k1:AAAA\n";
        let (out, changed) = edit(
            text,
            &[
                ("substituters", &v(&["file:///srv/c"])),
                ("trusted-public-keys", &v(&["k1:AAAA", "k2:BBBB"])),
            ],
        );
        assert_eq!(changed, v(&["extra-trusted-public-keys = k2:BBBB"]));
        assert!(out.starts_with(text));
    }

    #[test]
    fn empty_file() {
        let (out, changed) = edit("", &[("substituters", &v(&["file:///x"]))]);
        assert_eq!(out, "extra-substituters = file:///x\n");
        assert_eq!(changed.len(), 1);
    }

    fn info(store_url: &str, keys: &[&str]) -> CatalogInfo {
        CatalogInfo {
            name: "myorg".into(),
            owner: "alice".into(),
            store_url: store_url.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            role: crate::catalog::Role::Reader,
            created_at: String::new(),
        }
    }

    #[test]
    fn plans_only_single_values_whatever_the_catalog_says() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nix.conf");
        let key = crate::sign::SecretKey::generate("myorg-1")
            .unwrap()
            .public()
            .to_nix_string();
        let b64 = key.split_once(':').unwrap().1;
        for url in [
            "file:///x%0Apost-build-hook%20=%20/tmp/pwn",
            "file:///x\npost-build-hook = /tmp/pwn",
            "file:///x file:///y",
            "s3://bkt?endpoint=https%3A%2F%2Fh%23x",
        ] {
            assert!(plan(&file, &info(url, &[&key])).is_err(), "{url:?}");
        }
        for name in ["ev#l-1", "a b", "a\nb", ""] {
            let k = format!("{name}:{b64}");
            assert!(plan(&file, &info("file:///x", &[&k])).is_err(), "{k:?}");
        }
        // A hand-built plan is checked again where it is written.
        let mut p = plan(&file, &info("file:///x", &[&key])).unwrap();
        p.substituter = "file:///x\npost-build-hook = /tmp/pwn".into();
        assert!(matches!(apply(&p), Err(UseError::NotAToken(_))));
        assert!(!file.exists());
        // Canonical values are what is written.
        let p = plan(&file, &info("file:///x/./y//", &[&format!(" {key}\n")])).unwrap();
        assert_eq!(
            p.lines,
            [
                "extra-substituters = file:///x/y".to_string(),
                format!("extra-trusted-public-keys = {key}")
            ]
        );
    }
}
