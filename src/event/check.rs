//! The outcome of one precondition: what git, publish and install checks report, and every
//! face shows.

/// The outcome of one precondition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub id: CheckId,
    pub ok: bool,
    pub message: String,
    pub hint: Option<String>,
    /// A failing warning is reported but does not make the whole report fail.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl Check {
    pub fn pass(id: CheckId, message: impl Into<String>) -> Check {
        Check {
            id,
            ok: true,
            message: message.into(),
            hint: None,
            warning: false,
        }
    }

    pub fn fail(id: CheckId, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            id,
            ok: false,
            message: message.into(),
            hint: Some(hint.into()),
            warning: false,
        }
    }

    /// A failing check that is only a warning.
    pub fn warn(id: CheckId, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            warning: true,
            ..Check::fail(id, message, hint)
        }
    }

    /// Whether this check blocks: failed and not a warning.
    pub fn blocks(&self) -> bool {
        !self.ok && !self.warning
    }
}

/// Which precondition a [`Check`] is: one id for git's, publish's and install's checks, shared
/// by every face (serialised as its kebab-case name, e.g. `"git-repo"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    Manifest,
    GitRepo,
    EnvTracked,
    Clean,
    Upstream,
    Pushed,
    HasPackages,
    BuildExists,
    Visible,
    SystemBuild,
    Narinfo,
    Signature,
    Nar,
    Closure,
    RunsHere,
    NixConfig,
    Environment,
    NotInstalled,
    OtherSystems,
    Lock,
    SigningKey,
    Catalog,
    MayPublish,
    KeyTrusted,
    Store,
}

impl CheckId {
    /// Every id, in the order the checks run.
    pub const ALL: [CheckId; 25] = [
        CheckId::Manifest,
        CheckId::GitRepo,
        CheckId::EnvTracked,
        CheckId::Clean,
        CheckId::Upstream,
        CheckId::Pushed,
        CheckId::HasPackages,
        CheckId::BuildExists,
        CheckId::Visible,
        CheckId::SystemBuild,
        CheckId::Narinfo,
        CheckId::Signature,
        CheckId::Nar,
        CheckId::Closure,
        CheckId::RunsHere,
        CheckId::NixConfig,
        CheckId::Environment,
        CheckId::NotInstalled,
        CheckId::OtherSystems,
        CheckId::Lock,
        CheckId::SigningKey,
        CheckId::Catalog,
        CheckId::MayPublish,
        CheckId::KeyTrusted,
        CheckId::Store,
    ];

    /// The stable name (`git-repo`), as `--json` and the config file spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::Manifest => "manifest",
            CheckId::GitRepo => "git-repo",
            CheckId::EnvTracked => "env-tracked",
            CheckId::Clean => "clean",
            CheckId::Upstream => "upstream",
            CheckId::Pushed => "pushed",
            CheckId::HasPackages => "has-packages",
            CheckId::BuildExists => "build-exists",
            CheckId::Visible => "visible",
            CheckId::SystemBuild => "system-build",
            CheckId::Narinfo => "narinfo",
            CheckId::Signature => "signature",
            CheckId::Nar => "nar",
            CheckId::Closure => "closure",
            CheckId::RunsHere => "runs-here",
            CheckId::NixConfig => "nix-config",
            CheckId::Environment => "environment",
            CheckId::NotInstalled => "not-installed",
            CheckId::OtherSystems => "other-systems",
            CheckId::Lock => "lock",
            CheckId::SigningKey => "signing-key",
            CheckId::Catalog => "catalog",
            CheckId::MayPublish => "may-publish",
            CheckId::KeyTrusted => "key-trusted",
            CheckId::Store => "store",
        }
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width (`{:<12}`) lines ids up.
        f.pad(self.as_str())
    }
}

impl PartialEq<&str> for CheckId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are what serde writes, and all differ.
    #[test]
    fn names_are_the_serialised_names_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for id in CheckId::ALL {
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{id}\""));
            assert!(seen.insert(id.as_str()), "{id}");
        }
    }
}
