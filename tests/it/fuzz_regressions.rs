//! The fuzz targets' properties in the normal suite: every seed and every crasher the fuzzer
//! ever found (`tests/fuzz/crashers`), seeded mutations of the seeds, and write → read →
//! write round trips of generated values (trees, narinfos, requests, manifest edits).
//! `scripts/fuzz.sh TARGET SECONDS` runs the same properties under AFL++.

#[path = "../fuzz/src/properties.rs"]
mod properties;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pubdeck::catalog::{ClosurePath, NewBuild};
use pubdeck::manifest::Manifest;
use pubdeck::nix::nar::{dump_path, unpack_nar, validate_nar};
use pubdeck::nix::narinfo::NarInfo;
use pubdeck::nix::{Sha256Hash, StorePath};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn files_in(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_in(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

/// The seed corpus of a target: what `scripts/fuzz.sh` starts from.
fn seeds(target: &str) -> Vec<PathBuf> {
    let t = tests_dir();
    let mut out = Vec::new();
    files_in(&t.join("fuzz/seeds").join(target), &|_| true, &mut out);
    let ext = |e: &'static str| move |p: &Path| p.extension().is_some_and(|x| x == e);
    match target {
        "narinfo" => files_in(&t.join("vectors"), &ext("narinfo"), &mut out),
        "manifest" => files_in(&t.join("vectors/flox-manifests"), &ext("toml"), &mut out),
        "nar" => files_in(&t.join("vectors/selfref"), &ext("nar"), &mut out),
        _ => {}
    }
    out.sort();
    out
}

fn crashers(target: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files_in(
        &tests_dir().join("fuzz/crashers").join(target),
        &|_| true,
        &mut out,
    );
    out.sort();
    out
}

#[test]
fn every_seed_and_every_crasher_keeps_its_property() {
    for target in properties::TARGETS {
        let seeds = seeds(target);
        assert!(seeds.len() >= 3, "{target}: only {} seeds", seeds.len());
        for file in seeds.iter().chain(&crashers(target)) {
            let data = fs::read(file).unwrap();
            let outcome = std::panic::catch_unwind(|| properties::check(target, &data));
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks the property",
                file.display()
            );
        }
    }
}

/// One random edit of `data`: flip bits, overwrite, insert, delete, truncate, duplicate a
/// span, or splice in a number (the kinds of change AFL makes first).
fn mutate(rng: &mut StdRng, data: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = d.len();
        let at = if len == 0 { 0 } else { rng.gen_range(0..len) };
        match rng.gen_range(0..7) {
            0 if len > 0 => d[at] ^= 1 << rng.gen_range(0..8),
            1 if len > 0 => d[at] = rng.r#gen(),
            2 => d.insert(at, rng.r#gen()),
            3 if len > 0 => {
                let end = (at + rng.gen_range(1..=16)).min(len);
                d.drain(at..end);
            }
            4 => d.truncate(at),
            5 if len > 0 => {
                let end = (at + rng.gen_range(1..=32)).min(len);
                let span = d[at..end].to_vec();
                let to = rng.gen_range(0..=d.len());
                d.splice(to..to, span);
            }
            _ if len >= 8 => {
                // NAR lengths are little-endian u64s on 8-byte boundaries.
                let at = (at / 8 * 8).min(len - 8);
                let n: u64 = match rng.gen_range(0..4) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => rng.gen_range(0..64),
                    _ => rng.r#gen(),
                };
                d[at..at + 8].copy_from_slice(&n.to_le_bytes());
            }
            _ => {}
        }
    }
    d
}

#[test]
fn seeded_mutations_keep_every_property() {
    let mut rng = StdRng::seed_from_u64(0x0070_7562_6465_636b);
    for target in properties::TARGETS {
        let seeds: Vec<Vec<u8>> = seeds(target).iter().map(|f| fs::read(f).unwrap()).collect();
        let rounds = if target == "nar" { 1500 } else { 3000 };
        for i in 0..rounds {
            let seed = &seeds[i % seeds.len()];
            let input = mutate(&mut rng, seed);
            let outcome = std::panic::catch_unwind(|| properties::check(target, &input));
            assert!(
                outcome.is_ok(),
                "{target}: mutation {i} breaks the property; input (hex): {}",
                hex::encode(&input)
            );
        }
    }
}

/// A random tree: directories, plain and executable files of random bytes (empty included),
/// symlinks with arbitrary targets, and names with any bytes a file system allows.
fn random_tree(rng: &mut StdRng, dir: &Path, depth: u32) {
    for i in 0..rng.gen_range(0..6) {
        let mut name: Vec<u8> = (0..rng.gen_range(1..12))
            .map(|_| {
                loop {
                    let b: u8 = rng.r#gen();
                    if b != b'/' && b != 0 {
                        break b;
                    }
                }
            })
            .collect();
        if name == b"." || name == b".." {
            name.push(b'x');
        }
        name.extend_from_slice(format!("-{i}").as_bytes());
        let path = dir.join(std::ffi::OsStr::from_bytes(&name));
        match rng.gen_range(0..4) {
            0 if depth < 4 => {
                fs::create_dir(&path).unwrap();
                random_tree(rng, &path, depth + 1);
            }
            1 => {
                let target: String = (0..rng.gen_range(1..40))
                    .map(|_| rng.gen_range(b' '..=b'~') as char)
                    .collect();
                std::os::unix::fs::symlink(target, &path).unwrap();
            }
            kind => {
                let len = [0, 1, 7, 8, 9, 4096, 70_000][rng.gen_range(0..7)];
                let data: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
                fs::write(&path, data).unwrap();
                let mode = if kind == 2 { 0o755 } else { 0o644 };
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }
}

#[test]
fn trees_round_trip_through_nar() {
    let mut rng = StdRng::seed_from_u64(11);
    for round in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir(&tree).unwrap();
        random_tree(&mut rng, &tree, 0);
        let mut nar = Vec::new();
        let written = dump_path(&tree, &mut nar).unwrap();
        let checked = validate_nar(&nar[..]).unwrap();
        assert_eq!(checked.nar_hash, written.nar_hash, "round {round}");
        let back = tmp.path().join("back");
        unpack_nar(&nar[..], &back).unwrap();
        let mut again = Vec::new();
        dump_path(&back, &mut again).unwrap();
        assert!(
            again == nar,
            "round {round}: tree → NAR → tree → NAR changed the bytes"
        );
        properties::nar(&nar);
    }
}

fn random_nix32(rng: &mut StdRng, len: usize) -> String {
    const A: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    (0..len).map(|_| A[rng.gen_range(0..32)] as char).collect()
}

fn random_name(rng: &mut StdRng) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=";
    let mut s: String = (0..rng.gen_range(1..30))
        .map(|_| A[rng.gen_range(0..A.len())] as char)
        .collect();
    if s.starts_with('.') {
        s.insert(0, 'p');
    }
    s
}

fn random_store_path(rng: &mut StdRng) -> StorePath {
    let text = format!("/nix/store/{}-{}", random_nix32(rng, 32), random_name(rng));
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn narinfos_round_trip_through_text() {
    let mut rng = StdRng::seed_from_u64(12);
    let seed = fs::read_to_string(
        tests_dir().join("vectors/nix-written-closure-xz/d73sxad9kfi52kd1aamr7s6fxxw59bpn.narinfo"),
    )
    .unwrap();
    let template = NarInfo::parse(&seed).unwrap();
    for round in 0..500 {
        let mut info = template.clone();
        info.store_path = random_store_path(&mut rng);
        let nar_hash = Sha256Hash::of(&rng.r#gen::<[u8; 16]>());
        info.nar_hash = nar_hash;
        info.nar_size = rng.gen_range(1..u64::MAX / 2);
        info.file_size = rng.gen_bool(0.8).then(|| rng.gen_range(0..u64::MAX / 2));
        if info.file_size.is_none() {
            info.file_hash = None;
        }
        info.references = (0..rng.gen_range(0..5))
            .map(|_| random_store_path(&mut rng))
            .collect();
        info.references.sort();
        info.references.dedup();
        info.deriver = rng.gen_bool(0.5).then(|| random_store_path(&mut rng));
        info.system = rng.gen_bool(0.5).then(|| "x86_64-linux".to_string());
        info.ca = rng
            .gen_bool(0.5)
            .then(|| pubdeck::nix::narinfo::ca_recursive_sha256(&nar_hash));
        let text = info.to_string();
        let back = NarInfo::parse(&text).unwrap_or_else(|e| panic!("round {round}: {e}\n{text}"));
        assert_eq!(back, info, "round {round}");
        assert_eq!(back.to_string(), text, "round {round}");
        properties::narinfo(text.as_bytes());
    }
}

#[test]
fn requests_round_trip_through_json() {
    let mut rng = StdRng::seed_from_u64(13);
    let seed = fs::read(tests_dir().join("fuzz/seeds/catalog_json/register.json")).unwrap();
    let template: NewBuild = serde_json::from_slice(&seed).unwrap();
    for round in 0..300 {
        let mut b = template.clone();
        let text = |rng: &mut StdRng| -> String {
            (0..rng.gen_range(0..20))
                .map(|_| char::from_u32(rng.gen_range(0..0x11_0000)).unwrap_or('\u{fffd}'))
                .collect()
        };
        b.description = text(&mut rng);
        b.branch = text(&mut rng);
        b.nar_size = rng.r#gen();
        b.installed_packages = (0..rng.gen_range(0..4)).map(|_| text(&mut rng)).collect();
        b.closure.push(ClosurePath {
            store_path: random_store_path(&mut rng).to_string(),
            nar_size: rng.r#gen(),
        });
        let json = serde_json::to_vec(&b).unwrap();
        let back: NewBuild = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, b, "round {round}");
        assert_eq!(serde_json::to_vec(&back).unwrap(), json, "round {round}");
        properties::catalog_json(&json);
    }
}

#[test]
fn manifest_edits_round_trip_on_every_vector() {
    let mut edited = 0;
    for file in seeds("manifest") {
        let text = fs::read_to_string(&file).unwrap();
        let Ok(m) = Manifest::parse(&file, text.clone()) else {
            continue;
        };
        // The edits keep everything they do not touch: the text outside the edit is intact.
        for b in &m.builds {
            let out = m.with_build_version(&b.name, "9.8.7").unwrap();
            let changed = out.lines().filter(|l| !text.contains(l)).count();
            assert!(
                changed <= 2,
                "{}: editing {} changed {changed} lines",
                file.display(),
                b.name
            );
            edited += 1;
        }
        properties::manifest(text.as_bytes());
    }
    assert!(edited >= 10, "only {edited} builds edited");
}

/// Random bytes through every decode → validate → write/show path of a foreign string (store
/// URLs, endpoints, key, org and package names, listing names, log lines): whatever is
/// accepted is one nix.conf token that shows safely, and `use` writes only its template.
/// Half the inputs are any bytes, half are built from URL syntax, percent escapes of the
/// characters that matter (newline, space, '#', ESC, '@', '/') and prefixes that parse.
#[test]
fn random_bytes_through_every_foreign_string_path() {
    let mut rng = StdRng::seed_from_u64(24);
    let pieces: &[&str] = &[
        "file:///",
        "s3://bucket",
        "s3://bkt/",
        "?endpoint=",
        "&region=",
        "&profile=",
        "&scheme=",
        "http://",
        "https://",
        "%3A%2F%2F",
        "%0A",
        "%0D",
        "%20",
        "%23",
        "%1B",
        "%40",
        "%2F",
        "%25",
        "%E2%80%AE",
        ".amazonaws.com",
        "localhost",
        "127.0.0.1",
        ":9000",
        "[::1]",
        "/",
        ".",
        "..",
        "#",
        "@",
        " ",
        "\n",
        "\t",
        "\u{1b}[2K",
        "\u{202e}",
        "myorg-1",
        "a",
        "Z",
        "-",
        "_",
        "+",
        ":",
        "=",
    ];
    for i in 0..6_000 {
        let input: Vec<u8> = if i % 2 == 0 {
            (0..rng.gen_range(0..120)).map(|_| rng.r#gen()).collect()
        } else {
            (0..rng.gen_range(1..12))
                .flat_map(|_| pieces[rng.gen_range(0..pieces.len())].bytes())
                .collect()
        };
        for target in ["store_url", "key_name"] {
            let outcome = std::panic::catch_unwind(|| properties::check(target, &input));
            assert!(
                outcome.is_ok(),
                "{target}: input {i} breaks the property; (hex): {}",
                hex::encode(&input)
            );
        }
    }
}
