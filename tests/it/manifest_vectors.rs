//! The 30 real Flox manifests in tests/vectors/flox-manifests: pubdeck must agree with
//! Flox on validity, and extract the same install ids and builds as `expected.json`.

use std::path::PathBuf;

use pubdeck::manifest::{Manifest, VersionSpec};
use serde_json::Value;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/flox-manifests")
}

#[test]
fn agrees_with_flox_on_every_vector() {
    let expected: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected.len(), 30);
    for e in &expected {
        let file = e["file"].as_str().unwrap();
        let path = vectors().join(file);
        let result = Manifest::load(&path);
        let valid = e["flox_considers_valid"].as_bool().unwrap();
        match (valid, &result) {
            (true, Err(err)) => panic!("{file}: Flox accepts it, pubdeck says: {err}"),
            (false, Ok(_)) => panic!(
                "{file}: Flox rejects it ({}), pubdeck accepts it",
                e["note"]
            ),
            (false, Err(err)) => {
                let msg = err.to_string();
                // every rejection names file:line:column
                let prefix = format!("{}:", path.display());
                let pos = msg
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("{file}: {msg}"));
                let mut parts = pos.splitn(3, ':');
                let line: usize = parts
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap_or_else(|_| panic!("{msg}"));
                let col: usize = parts
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap_or_else(|_| panic!("{msg}"));
                assert!(line >= 1 && col >= 1);
                if let Some(t) = e["toml_error"].as_str() {
                    // tomllib says "(at line 4, column 15)"; we must point at the same place
                    assert!(
                        t.contains(&format!("line {line}, column {col}")),
                        "{file}: {msg} vs {t}"
                    );
                }
            }
            (true, Ok(m)) => {
                let ids: Vec<&str> = m.install.iter().map(|i| i.id.as_str()).collect();
                let want: Vec<&str> = e["install_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(ids, want, "{file}: install ids");
                let builds = e["builds"].as_object().unwrap();
                let names: Vec<&str> = m.builds.iter().map(|b| b.name.as_str()).collect();
                let want_names: Vec<&str> = builds.keys().map(String::as_str).collect();
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(sorted, want_names, "{file}: build names");
                for b in &m.builds {
                    let w = &builds[&b.name];
                    assert_eq!(
                        b.description.as_deref(),
                        w["description"].as_str(),
                        "{file}"
                    );
                    assert_eq!(w["has_command"], true);
                    let version = match &b.version {
                        None => Value::Null,
                        Some(VersionSpec::Literal(s)) => Value::from(s.as_str()),
                        Some(VersionSpec::File(f)) => serde_json::json!({ "file": f }),
                        Some(VersionSpec::Command(c)) => serde_json::json!({ "command": c }),
                    };
                    assert_eq!(version, w["version"], "{file}: {} version", b.name);
                }
            }
        }
    }
}

#[test]
fn sample_env_is_valid_and_has_three_builds() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/sample-env/.flox/env/manifest.toml");
    let m = Manifest::load(&path).unwrap();
    let names: Vec<_> = m.builds.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["hello", "report", "broken"]);
    assert!(!m.install.is_empty());
    assert_eq!(
        m.systems.as_deref(),
        Some(&["x86_64-linux".to_string(), "aarch64-linux".to_string()][..])
    );
}
