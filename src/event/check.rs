//! The outcome of one precondition: what git, publish and install checks report, and every
//! face shows.

/// The outcome of one precondition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub id: &'static str,
    pub ok: bool,
    pub message: String,
    pub hint: Option<String>,
    /// A failing warning is reported but does not make the whole report fail.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl Check {
    pub fn pass(id: &'static str, message: impl Into<String>) -> Check {
        Check {
            id,
            ok: true,
            message: message.into(),
            hint: None,
            warning: false,
        }
    }

    pub fn fail(id: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Check {
        Check {
            id,
            ok: false,
            message: message.into(),
            hint: Some(hint.into()),
            warning: false,
        }
    }

    /// A failing check that is only a warning.
    pub fn warn(id: &'static str, message: impl Into<String>, hint: impl Into<String>) -> Check {
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
