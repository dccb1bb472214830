//! Flox's `version` of a package descriptor: an exact version or a semver range.
//!
//! As Flox documents it (manifest.toml(5)): `=V` and any version that is not a range are
//! exact; `^`, `~`, `>=`, `>`, `<=`, `<`, `x`/`*` wildcards, `A - B` and `||` are ranges, as
//! in node's semver; a version missing fields treats them as wildcards (`1.2` is `1.2.x`).
//! Ranges are evaluated by the `semver` crate after that translation. A pinned version may
//! select a yanked one (pubdeck's rule: yanked versions stay installable when pinned); a
//! range never does.

use semver::{Version, VersionReq};

/// A parsed `version` constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No constraint: the latest version not yanked.
    Any,
    /// Exactly this version string.
    Exact(String),
    /// Any of these requirements (`||`).
    Range(Vec<VersionReq>),
}

impl Constraint {
    /// Parses a descriptor's `version` (`None` and blanks are [`Constraint::Any`]).
    pub fn parse(text: Option<&str>) -> Constraint {
        let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
            return Constraint::Any;
        };
        if text == "*" || text.eq_ignore_ascii_case("x") {
            return Constraint::Any;
        }
        if let Some(exact) = text.strip_prefix('=').filter(|r| !r.starts_with('=')) {
            return Constraint::Exact(exact.trim().to_string());
        }
        if Version::parse(text.trim_start_matches('v')).is_ok() {
            return Constraint::Exact(text.to_string());
        }
        let alternatives: Option<Vec<VersionReq>> = text.split("||").map(translate).collect();
        match alternatives {
            Some(reqs) if !reqs.is_empty() => Constraint::Range(reqs),
            _ => Constraint::Exact(text.to_string()),
        }
    }

    /// Whether a pinned version (which may be yanked) is asked for.
    pub fn is_pin(&self) -> bool {
        matches!(self, Constraint::Exact(_))
    }

    /// Whether `version` satisfies the constraint. Pre-releases match a range only when
    /// `allow_pre_releases`, or when the range names a pre-release of the same version.
    pub fn matches(&self, version: &str, allow_pre_releases: bool) -> bool {
        match self {
            Constraint::Any => {
                allow_pre_releases || lenient(version).is_none_or(|v| v.pre.is_empty())
            }
            Constraint::Exact(v) => version == v || version.strip_prefix('v') == Some(v.as_str()),
            Constraint::Range(reqs) => {
                let Some(v) = lenient(version) else {
                    return false;
                };
                reqs.iter().any(|r| {
                    r.matches(&v)
                        || (allow_pre_releases
                            && !v.pre.is_empty()
                            && r.matches(&Version::new(v.major, v.minor, v.patch)))
                })
            }
        }
    }
}

/// A version as semver, with missing minor and patch taken as 0 (`1.2` is `1.2.0`).
fn lenient(version: &str) -> Option<Version> {
    let v = version.trim().trim_start_matches('v');
    if let Ok(parsed) = Version::parse(v) {
        return Some(parsed);
    }
    let (core, rest) = match v.find(['-', '+']) {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    Version::parse(&padded).ok()
}

/// One `||` alternative in the `semver` crate's syntax: comparators joined by commas, partial
/// versions as wildcards, `A - B` as `>=A, <=B`.
fn translate(alternative: &str) -> Option<VersionReq> {
    let alternative = alternative.trim();
    if alternative.is_empty() {
        return None;
    }
    if let Some((low, high)) = alternative.split_once(" - ") {
        let req = format!(">={}, <={}", low.trim(), high.trim());
        return VersionReq::parse(&req).ok();
    }
    let mut comparators: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for token in alternative.split_whitespace() {
        if token.chars().all(|c| "<>=^~".contains(c)) {
            pending_op.push_str(token);
            continue;
        }
        let token = format!("{pending_op}{token}");
        pending_op.clear();
        comparators.push(comparator(&token)?);
    }
    if !pending_op.is_empty() {
        return None;
    }
    VersionReq::parse(&comparators.join(", ")).ok()
}

fn comparator(token: &str) -> Option<String> {
    let op_len = token
        .find(|c: char| !"<>=^~".contains(c))
        .unwrap_or(token.len());
    let (op, version) = token.split_at(op_len);
    let version = version.trim_start_matches('v');
    if version.is_empty() {
        return None;
    }
    let parts: Vec<&str> = version.split('.').collect();
    let wild = |p: &&str| matches!(*p, "x" | "X" | "*");
    if op.is_empty() && (parts.len() < 3 || parts.iter().any(wild)) {
        // A partial version: its missing fields are wildcards.
        let mut fields: Vec<&str> = parts
            .iter()
            .map(|p| if wild(p) { "*" } else { p })
            .collect();
        if let Some(i) = fields.iter().position(|f| *f == "*") {
            fields.truncate(i + 1);
        } else {
            fields.push("*");
        }
        return Some(fields.join("."));
    }
    let version = parts
        .iter()
        .map(|p| if wild(p) { "*" } else { p })
        .collect::<Vec<_>>()
        .join(".");
    Some(format!("{op}{version}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(c: &str, v: &str) -> bool {
        Constraint::parse(Some(c)).matches(v, false)
    }

    #[test]
    fn exact_and_pins() {
        assert!(m("1.2.3", "1.2.3"));
        assert!(!m("1.2.3", "1.2.4"));
        assert!(m("=1.2", "1.2"));
        assert!(!m("=1.2", "1.2.0"));
        assert!(Constraint::parse(Some("=1.2")).is_pin());
        assert!(Constraint::parse(Some("1.2.3")).is_pin());
        assert!(!Constraint::parse(Some("^1.2")).is_pin());
        // Not semver: exact.
        assert!(m("2024-01-15", "2024-01-15"));
        assert!(!m("2024-01-15", "2024-01-16"));
        assert_eq!(Constraint::parse(None), Constraint::Any);
        assert_eq!(Constraint::parse(Some("  ")), Constraint::Any);
    }

    #[test]
    fn partial_versions_are_wildcards() {
        assert!(m("1.2", "1.2.9"));
        assert!(!m("1.2", "1.3.0"));
        assert!(m("1", "1.9.0"));
        assert!(!m("1", "2.0.0"));
        assert!(m("1.x", "1.4.1"));
        assert!(m("1.2.x", "1.2.7"));
        assert!(!m("1.2.x", "1.3.0"));
        // A version with fewer fields is padded with zeros.
        assert!(m("1.2", "1.2"));
    }

    #[test]
    fn operators_and_ranges() {
        assert!(m("^1.2", "1.9.0"));
        assert!(!m("^1.2", "2.0.0"));
        assert!(m("~1.2.3", "1.2.9"));
        assert!(!m("~1.2.3", "1.3.0"));
        assert!(m(">=1.0 <2", "1.5.0"));
        assert!(m(">= 1.0 < 2", "1.5.0"));
        assert!(!m(">=1.0 <2", "2.0.0"));
        assert!(m("1.0.0 - 1.4.0", "1.4.0"));
        assert!(!m("1.0.0 - 1.4.0", "1.4.1"));
        assert!(m("^1 || ^3", "3.1.0"));
        assert!(!m("^1 || ^3", "2.1.0"));
    }

    #[test]
    fn pre_releases() {
        assert!(!m("^1.0", "1.5.0-rc.1"));
        assert!(Constraint::parse(Some("^1.0")).matches("1.5.0-rc.1", true));
        assert!(!Constraint::Any.matches("1.5.0-rc.1", false));
        assert!(Constraint::Any.matches("1.5.0-rc.1", true));
        assert!(Constraint::Any.matches("not-semver", false));
    }
}
