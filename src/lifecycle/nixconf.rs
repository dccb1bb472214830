//! `pubdeck use ORG`, like `cachix use`: the lines that let Nix substitute from a catalog's
//! store (`extra-substituters`, `extra-trusted-public-keys`), added to a `nix.conf` while
//! keeping everything else in it.
//!
//! Values already present (under the `extra-` or the plain setting) are not added again, so
//! running it twice changes nothing. A value is appended to an existing `extra-…` line when
//! there is one, else a new line goes at the end. The file is replaced atomically, and only if
//! it did not change since it was read.
//!
//! An S3 store with a key prefix (`s3://bucket/team/nix?…`) needs Nix 2.32 or later: before,
//! Nix reads the prefix as part of the bucket name. [`check_nix`] asks `nix --version` for such
//! a store only. For every S3 store the plan says that the Nix daemon, which does the
//! substituting, needs AWS credentials of its own.

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
    /// The substituter is an S3 store: Nix (the daemon, where there is one) needs AWS
    /// credentials for it in its own environment, not the user's.
    pub daemon_needs_aws_credentials: bool,
    /// The oldest Nix that reads the substituter right ([`S3_PREFIX_NIX`] for an S3 store with
    /// a key prefix), checked by [`check_nix`].
    pub needs_nix: Option<NixVersion>,
    /// The key prefix of an S3 substituter (`team/nix/`), empty for none.
    #[serde(skip)]
    pub key_prefix: String,
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
    #[error(
        "Nix {version} cannot use {substituter}: Nix before {} reads the key prefix `{prefix}` as part of the bucket name; nothing was written",
        S3_PREFIX_NIX
    )]
    OldNix {
        version: NixVersion,
        substituter: String,
        prefix: String,
    },
    #[error(
        "cannot tell whether this Nix can use {substituter} ({why}): Nix before {} reads its key prefix `{prefix}` as part of the bucket name; nothing was written",
        S3_PREFIX_NIX
    )]
    UnknownNix {
        why: String,
        substituter: String,
        prefix: String,
    },
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
            UseError::OldNix { .. } => Some(format!(
                "upgrade Nix (and the Nix daemon) to {S3_PREFIX_NIX} or later, or ask the catalog's owner for a store at the root of a bucket"
            )),
            UseError::UnknownNix { .. } => Some(format!(
                "run it where `nix --version` shows Nix {S3_PREFIX_NIX} or later (the Nix daemon must be as new), or ask the catalog's owner for a store at the root of a bucket"
            )),
            _ => None,
        }
    }
}

/// The first Nix that reads `s3://bucket/prefix` as a key prefix in `bucket`.
pub const S3_PREFIX_NIX: NixVersion = NixVersion {
    major: 2,
    minor: 32,
    patch: 0,
    release: true,
};

/// A Nix version as `nix --version` prints it, ordered as releases are (a pre-release before
/// its release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NixVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// `false` for a pre-release (`2.4pre20211001_…`).
    pub release: bool,
}

impl NixVersion {
    /// Reads the first line of `nix --version`: `nix (Nix) 2.8.0`, `nix (Nix)
    /// 2.4pre20211001_dd77f71`, `nix (Determinate Nix 3.6.2) 2.29.0`. `None` for anything
    /// else, including other implementations that number their releases otherwise (`nix (Lix,
    /// like Nix) 2.91.1`).
    pub fn parse(text: &str) -> Option<NixVersion> {
        let line = text.lines().next()?.trim();
        let (flavour, version) = line.strip_prefix("nix (")?.split_once(") ")?;
        if flavour != "Nix" && !flavour.starts_with("Determinate Nix ") {
            return None;
        }
        // The leading digits of a part, and whether anything followed them.
        let number = |part: &str| {
            let digits = part.len() - part.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let n = part[..digits].parse::<u32>().ok()?;
            Some((n, digits < part.len()))
        };
        let mut parts = version.trim().splitn(3, '.');
        let (major, more) = number(parts.next()?)?;
        if more {
            return None;
        }
        let (minor, pre) = number(parts.next()?)?;
        let (patch, pre) = match parts.next() {
            Some(p) if !pre => number(p)?,
            _ => (0, pre),
        };
        Some(NixVersion {
            major,
            minor,
            patch,
            release: !pre,
        })
    }
}

impl std::fmt::Display for NixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.release {
            f.write_str("pre")?;
        }
        Ok(())
    }
}

impl Serialize for NixVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The version of the `nix` on `PATH` (`nix --version`), or why there is none.
pub fn installed_nix_version() -> Result<NixVersion, String> {
    let out = std::process::Command::new("nix")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("`nix --version` did not run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("`nix --version` failed ({})", out.status));
    }
    NixVersion::parse(&text).ok_or_else(|| {
        format!(
            "`nix --version` printed {:?}",
            crate::text::terminal(text.lines().next().unwrap_or("").trim())
        )
    })
}

/// Refuses a plan the installed Nix would misread: a key-prefixed S3 substituter with a Nix
/// before [`S3_PREFIX_NIX`], or whose version cannot be told. `installed` (e.g.
/// [`installed_nix_version`]) runs only when the plan needs a version.
pub fn check_nix(
    plan: &UsePlan,
    installed: impl FnOnce() -> Result<NixVersion, String>,
) -> Result<(), UseError> {
    let Some(needs) = plan.needs_nix else {
        return Ok(());
    };
    match installed() {
        Ok(version) if version >= needs => Ok(()),
        Ok(version) => Err(UseError::OldNix {
            version,
            substituter: plan.substituter.clone(),
            prefix: plan.key_prefix.clone(),
        }),
        Err(why) => Err(UseError::UnknownNix {
            why,
            substituter: plan.substituter.clone(),
            prefix: plan.key_prefix.clone(),
        }),
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
    let url = StoreUrl::parse(&catalog.store_url).map_err(|e| UseError::BadStore(e.to_string()))?;
    let substituter = url.to_string();
    let key_prefix = match &url {
        StoreUrl::S3(loc) => loc.prefix.clone(),
        StoreUrl::File { .. } => String::new(),
    };
    if catalog.keys.is_empty() {
        return Err(UseError::NoKeys(catalog.name.clone()));
    }
    let keys = catalog
        .keys
        .iter()
        .map(|k| {
            crate::nix::sign::PublicKey::parse(k)
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
        daemon_needs_aws_credentials: matches!(url, StoreUrl::S3(_)),
        needs_nix: (!key_prefix.is_empty()).then_some(S3_PREFIX_NIX),
        key_prefix,
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
    fn nix_versions_are_read_and_ordered_as_releases() {
        let v = |t: &str| NixVersion::parse(t);
        let at = |major, minor, patch| NixVersion {
            major,
            minor,
            patch,
            release: true,
        };
        assert_eq!(v("nix (Nix) 2.8.0\n"), Some(at(2, 8, 0)));
        assert_eq!(v("nix (Nix) 2.32.1"), Some(at(2, 32, 1)));
        assert_eq!(v("nix (Nix) 2.32"), Some(at(2, 32, 0)));
        assert_eq!(v("nix (Determinate Nix 3.6.2) 2.29.0"), Some(at(2, 29, 0)));
        let pre = v("nix (Nix) 2.4pre20211001_dd77f71").unwrap();
        assert_eq!((pre.major, pre.minor, pre.release), (2, 4, false));
        assert_eq!(pre.to_string(), "2.4.0pre");
        let pre = v("nix (Nix) 2.32.0pre20250101_abcdef0").unwrap();
        assert!(
            pre < S3_PREFIX_NIX,
            "a pre-release comes before its release"
        );
        for other in [
            "",
            "nix",
            "nix (Nix)",
            "nix (Nix) two.eight",
            "nix (Nix) 2",
            "nix (Nix) 2x.8.0",
            "nix (Lix, like Nix) 2.91.1",
            "bash: nix: command not found",
        ] {
            assert_eq!(v(other), None, "{other:?}");
        }
        // Numbers, not text: 2.8 < 2.10 < 2.32 <= 2.32.1 < 2.100.
        let order = [
            "2.8.0", "2.10.3", "2.31.9", "2.32.0", "2.32.1", "2.100.0", "3.0.0",
        ]
        .map(|t| v(&format!("nix (Nix) {t}")).unwrap());
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(order[2] < S3_PREFIX_NIX && order[3] >= S3_PREFIX_NIX);
    }

    #[test]
    fn only_a_key_prefixed_s3_store_needs_a_new_nix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nix.conf");
        let key = crate::nix::sign::SecretKey::generate("myorg-1")
            .unwrap()
            .public()
            .to_nix_string();
        let nix = |t: &'static str| move || NixVersion::parse(t).ok_or_else(|| t.to_string());
        let never = || -> Result<NixVersion, String> { panic!("nix asked for nothing") };

        let p = plan(
            &file,
            &info(
                "s3://cache/team/nix?endpoint=http://127.0.0.1:9000",
                &[&key],
            ),
        )
        .unwrap();
        assert!(p.daemon_needs_aws_credentials);
        assert_eq!(p.needs_nix, Some(S3_PREFIX_NIX));
        let old = check_nix(&p, nix("nix (Nix) 2.8.0")).unwrap_err();
        assert!(matches!(old, UseError::OldNix { .. }), "{old:?}");
        assert_eq!(
            old.to_string(),
            "Nix 2.8.0 cannot use s3://cache/team/nix?endpoint=http://127.0.0.1:9000: Nix before 2.32.0 reads the key prefix `team/nix/` as part of the bucket name; nothing was written"
        );
        check_nix(&p, nix("nix (Nix) 2.32.0")).unwrap();
        let unknown = check_nix(&p, nix("nix (Lix, like Nix) 2.91.1")).unwrap_err();
        assert!(
            matches!(unknown, UseError::UnknownNix { .. }),
            "{unknown:?}"
        );

        for (url, s3) in [
            ("s3://cache?endpoint=http://127.0.0.1:9000", true),
            ("s3://cache?region=eu-west-1", true),
            ("file:///srv/cache", false),
        ] {
            let p = plan(&file, &info(url, &[&key])).unwrap();
            assert_eq!(p.daemon_needs_aws_credentials, s3, "{url}");
            assert_eq!(p.needs_nix, None, "{url}");
            check_nix(&p, never).unwrap();
        }
    }

    #[test]
    fn plans_only_single_values_whatever_the_catalog_says() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nix.conf");
        let key = crate::nix::sign::SecretKey::generate("myorg-1")
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
