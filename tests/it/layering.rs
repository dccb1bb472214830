//! The layering the build enforces (rust-analyzer's tidy tests are the model): every arrow
//! between the crate's modules is one ARCHITECTURE.md's import table allows, the engine never
//! names a terminal or HTTP-server crate, and the faces never import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FACES: &[&str] = &["cli", "tui", "server"];
const UI_CRATES: &[&str] = &["ratatui", "crossterm", "axum"];

/// The table between the `imports:begin` and `imports:end` markers: module → allowed.
fn table(architecture: &str) -> BTreeMap<String, BTreeSet<String>> {
    let body = architecture
        .split("<!-- imports:begin -->")
        .nth(1)
        .and_then(|r| r.split("<!-- imports:end -->").next())
        .expect("ARCHITECTURE.md has the import table");
    let names = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut rows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in body.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').collect();
        let module = names(cells[1]).remove(0);
        rows.insert(module, names(cells[2]).into_iter().collect());
    }
    let engine: BTreeSet<String> = rows
        .keys()
        .filter(|m| !FACES.contains(&m.as_str()))
        .cloned()
        .collect();
    // "every engine module": a face may use the whole engine (never another face).
    for face in FACES {
        rows.get_mut(*face)
            .expect("each face has a row")
            .extend(engine.iter().cloned());
    }
    rows
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `(line, module)` for each crate module named in `text` outside comment lines:
/// `crate::x`, and the first name of each item of `crate::{x, y::{z}}`.
fn arrows(text: &str) -> Vec<(usize, String)> {
    // The code, each char with its line; comment lines left out.
    let code: Vec<(usize, char)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .flat_map(|(i, l)| l.chars().chain(['\n']).map(move |c| (i + 1, c)))
        .collect();
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let chars: Vec<char> = code.iter().map(|(_, c)| *c).collect();
    let needle: Vec<char> = "crate::".chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= chars.len() {
        if chars[i..i + needle.len()] != needle[..]
            || (i > 0 && (is_name(chars[i - 1]) || chars[i - 1] == ':'))
        {
            i += 1;
            continue;
        }
        i += needle.len();
        if chars.get(i) == Some(&'{') {
            // Items of the group at depth 1: the first name of each.
            let mut depth = 0usize;
            let mut expect_item = true;
            while i < chars.len() {
                let c = chars[i];
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            expect_item = true;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_item = true,
                    c if depth == 1 && expect_item && is_name(c) => {
                        let line = code[i].0;
                        let name: String = chars[i..].iter().take_while(|c| is_name(**c)).collect();
                        i += name.len();
                        out.push((line, name));
                        expect_item = false;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let name: String = chars[i..].iter().take_while(|c| is_name(**c)).collect();
            if !name.is_empty() {
                out.push((code[i].0, name));
            }
        }
    }
    out
}

/// The module a file of `src/` belongs to (`None` for the crate root and `main.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

/// Every violation of the table in `src`: `file:line: a imports b`.
fn violations(src: &Path, architecture: &str) -> Vec<String> {
    let allowed = table(architecture);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in &files {
        let Some(module) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file.strip_prefix(src.parent().unwrap()).unwrap().display();
        let Some(may) = allowed.get(&module) else {
            out.push(format!(
                "{shown}: module `{module}` has no row in ARCHITECTURE.md's import table"
            ));
            continue;
        };
        for (line, target) in arrows(&text) {
            if target == module || may.contains(&target) {
                continue;
            }
            out.push(format!(
                "{shown}:{line}: `{module}` imports `{target}`, which ARCHITECTURE.md's import table does not allow"
            ));
        }
        if !FACES.contains(&module.as_str()) {
            for (i, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for ui in UI_CRATES {
                    if code.contains(&format!("{ui}::")) {
                        out.push(format!(
                            "{shown}:{}: engine module `{module}` names `{ui}`",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_import_follows_the_architecture_table() {
    let root = crate::common::crate_dir();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let found = violations(&root.join("src"), &architecture);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The check can fail: a copy of `src/` with one wrong arrow (an engine module reaching up
/// into the pipeline, and one naming a terminal crate) is refused, naming file and line.
#[test]
fn a_wrong_import_is_named_with_its_file_and_line() {
    let root = crate::common::crate_dir();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    crate::common::copy_dir(&root.join("src"), &src);
    let event = src.join("event/mod.rs");
    let text = std::fs::read_to_string(&event).unwrap();
    std::fs::write(
        &event,
        format!("{text}\nuse crate::publish::Published;\nuse ratatui::text::Line;\n"),
    )
    .unwrap();
    let found = violations(&src, &architecture);
    let lines = text.lines().count();
    assert_eq!(
        found,
        [
            format!(
                "src/event/mod.rs:{}: `event` imports `publish`, which ARCHITECTURE.md's import table does not allow",
                lines + 2
            ),
            format!(
                "src/event/mod.rs:{}: engine module `event` names `ratatui`",
                lines + 3
            ),
        ],
    );
}

#[test]
fn grouped_imports_are_read() {
    let text = "use crate::{\n    nar::Hash,\n    store::{Store, url::X},\n};\nuse crate::{a, b::c};\n// crate::comment\n";
    let got: Vec<(usize, String)> = arrows(text);
    let names: Vec<&str> = got.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["nar", "store", "a", "b"], "{got:?}");
}
