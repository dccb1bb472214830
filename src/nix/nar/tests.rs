//! Unit tests for the NAR writer and reader (golden files are in `tests/it/nar_golden.rs`).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use super::*;

/// Hand-built NAR pieces, for crafting valid and invalid archives.
fn s(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
    out.resize(out.len() + pad_len(b.len() as u64), 0);
}

fn toks(out: &mut Vec<u8>, ts: &[&[u8]]) {
    for t in ts {
        s(out, t);
    }
}

fn file_node(out: &mut Vec<u8>, contents: &[u8], exec: bool) {
    toks(out, &[b"(", b"type", b"regular"]);
    if exec {
        toks(out, &[b"executable", b""]);
    }
    toks(out, &[b"contents", contents, b")"]);
}

/// A directory NAR with the given (name, contents) file entries, in the given order.
fn dir_nar(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    toks(&mut v, &[b"nix-archive-1", b"(", b"type", b"directory"]);
    for (name, contents) in entries {
        toks(&mut v, &[b"entry", b"(", b"name", name, b"node"]);
        file_node(&mut v, contents, false);
        s(&mut v, b")");
    }
    s(&mut v, b")");
    v
}

fn dump(p: &Path) -> (Vec<u8>, NarSummary) {
    let mut out = Vec::new();
    let sum = dump_path(p, &mut out).unwrap();
    (out, sum)
}

fn problem(nar: &[u8]) -> NarProblem {
    match validate_nar(nar) {
        Err(NarReadError::Invalid { problem, .. }) => problem,
        other => panic!("expected an invalid-NAR error, got {other:?}"),
    }
}

#[test]
fn writer_matches_hand_built_nar() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("b"), b"bee").unwrap();
    fs::write(root.join("a"), b"hello world!").unwrap();
    let (nar, sum) = dump(&root);
    let expected = dir_nar(&[(b"a", b"hello world!"), (b"b", b"bee")]);
    assert_eq!(nar, expected);
    assert_eq!(sum.nar_size, expected.len() as u64);
    assert_eq!(sum.nar_hash, Sha256Hash::of(&expected));
    assert_eq!(validate_nar(&nar[..]).unwrap(), sum);
}

#[test]
fn single_file_and_symlink_roots() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    fs::write(&f, b"x").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o700)).unwrap();
    let (nar, _) = dump(&f);
    let mut want = Vec::new();
    s(&mut want, b"nix-archive-1");
    file_node(&mut want, b"x", true);
    assert_eq!(nar, want);

    let l = t.path().join("l");
    symlink("/nonexistent/target", &l).unwrap();
    let (nar, _) = dump(&l);
    let mut want = Vec::new();
    toks(
        &mut want,
        &[
            b"nix-archive-1",
            b"(",
            b"type",
            b"symlink",
            b"target",
            b"/nonexistent/target",
            b")",
        ],
    );
    assert_eq!(nar, want);

    // Both unpack to the same kind of root.
    let out = t.path().join("out-l");
    unpack_nar(&nar[..], &out).unwrap();
    assert_eq!(
        fs::read_link(&out).unwrap(),
        Path::new("/nonexistent/target")
    );
}

#[test]
fn executable_bit_is_owner_exec_only() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    fs::write(&f, b"#!/bin/sh\n").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o655)).unwrap(); // group/other exec only
    assert_eq!(dump(&f).0, {
        let mut v = Vec::new();
        s(&mut v, b"nix-archive-1");
        file_node(&mut v, b"#!/bin/sh\n", false);
        v
    });
    fs::set_permissions(&f, fs::Permissions::from_mode(0o100)).unwrap();
    let (nar, sum) = dump(&f);
    let out = t.path().join("u");
    unpack_nar(&nar[..], &out).unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(dump(&out).1, sum);
}

#[test]
fn non_utf8_names_sort_by_bytes_and_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    fs::create_dir(&root).unwrap();
    let names: [&[u8]; 4] = [b"\xff\xfe", b"B", b"a", b"\xc3\xa4"];
    for n in names {
        fs::write(root.join(std::ffi::OsStr::from_bytes(n)), n).unwrap();
    }
    let (nar, sum) = dump(&root);
    let want = dir_nar(&[
        (b"B", b"B"),
        (b"a", b"a"),
        (b"\xc3\xa4", b"\xc3\xa4"),
        (b"\xff\xfe", b"\xff\xfe"),
    ]);
    assert_eq!(nar, want);
    let out = t.path().join("out");
    assert_eq!(unpack_nar(&nar[..], &out).unwrap(), sum);
    assert_eq!(
        fs::read(out.join(std::ffi::OsStr::from_bytes(b"\xff\xfe"))).unwrap(),
        b"\xff\xfe"
    );
    assert_eq!(dump(&out).1, sum);
}

#[test]
fn fifo_is_rejected_naming_the_path() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("r");
    fs::create_dir(&root).unwrap();
    let fifo = root.join("pipe");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let err = dump_path(&root, std::io::sink()).unwrap_err();
    assert!(matches!(&err, NarWriteError::UnsupportedType { path, kind: "FIFO" } if *path == fifo));
    assert!(err.to_string().contains("pipe"), "{err}");
}

#[test]
fn missing_path_is_a_read_error() {
    let err = dump_path(Path::new("/nonexistent/pubdeck"), std::io::sink()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/pubdeck:"),
        "{err}"
    );
}

#[test]
fn reader_accepts_executable_and_empty_dir() {
    let mut v = Vec::new();
    s(&mut v, b"nix-archive-1");
    file_node(&mut v, b"", true);
    let sum = validate_nar(&v[..]).unwrap();
    assert_eq!(sum.nar_size, v.len() as u64);
    let empty = dir_nar(&[]);
    validate_nar(&empty[..]).unwrap();
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("e");
    unpack_nar(&empty[..], &out).unwrap();
    assert!(fs::read_dir(&out).unwrap().next().is_none());
}

#[test]
fn reader_rejects_bad_structure() {
    // Unsorted and duplicate entries.
    assert!(matches!(
        problem(&dir_nar(&[(b"b", b""), (b"a", b"")])),
        NarProblem::Unsorted { .. }
    ));
    assert_eq!(
        problem(&dir_nar(&[(b"a", b""), (b"a", b"")])),
        NarProblem::Duplicate("a".into())
    );
    // "B" < "a" in byte order, so this is unsorted.
    assert!(matches!(
        problem(&dir_nar(&[(b"a", b""), (b"B", b"")])),
        NarProblem::Unsorted { .. }
    ));
    // Bad names.
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert!(
            matches!(problem(&dir_nar(&[(name, b"")])), NarProblem::BadName(_)),
            "{name:?}"
        );
    }
    // Bad magic, unknown type, unknown tag.
    let mut v = Vec::new();
    toks(&mut v, &[b"nix-archive-2"]);
    assert!(matches!(problem(&v), NarProblem::UnexpectedToken { .. }));
    let mut v = Vec::new();
    toks(&mut v, &[b"nix-archive-1", b"(", b"type", b"fifo", b")"]);
    assert_eq!(problem(&v), NarProblem::UnknownType("fifo".into()));
    let mut v = Vec::new();
    toks(
        &mut v,
        &[
            b"nix-archive-1",
            b"(",
            b"type",
            b"regular",
            b"mtime",
            b"",
            b")",
        ],
    );
    assert!(matches!(problem(&v), NarProblem::UnexpectedToken { .. }));
    // Empty input and trailing bytes.
    assert_eq!(problem(b""), NarProblem::Truncated);
    let mut v = dir_nar(&[(b"a", b"x")]);
    v.extend_from_slice(&[0u8; 8]);
    assert!(matches!(
        validate_nar(&v[..]),
        Err(NarReadError::Invalid { problem: NarProblem::TrailingBytes, offset }) if offset == v.len() as u64 - 8
    ));
}

#[test]
fn reader_bounds_lengths_before_allocating() {
    let mut v = Vec::new();
    toks(
        &mut v,
        &[
            b"nix-archive-1",
            b"(",
            b"type",
            b"directory",
            b"entry",
            b"(",
            b"name",
        ],
    );
    v.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        problem(&v),
        NarProblem::TooLong {
            what: "entry name",
            ..
        }
    ));
    let mut v = Vec::new();
    v.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(problem(&v), NarProblem::TokenTooLong { .. }));
    // A huge declared file size is streamed, so it is simply truncated input.
    let mut v = Vec::new();
    toks(
        &mut v,
        &[b"nix-archive-1", b"(", b"type", b"regular", b"contents"],
    );
    v.extend_from_slice(&u64::MAX.to_le_bytes());
    v.extend_from_slice(b"abc");
    assert_eq!(problem(&v), NarProblem::Truncated);
}

#[test]
fn reader_rejects_deep_nesting_beyond_limit() {
    let mut v = Vec::new();
    toks(&mut v, &[b"nix-archive-1", b"(", b"type", b"directory"]);
    for _ in 0..read::MAX_DEPTH {
        toks(
            &mut v,
            &[
                b"entry",
                b"(",
                b"name",
                b"d",
                b"node",
                b"(",
                b"type",
                b"directory",
            ],
        );
    }
    assert_eq!(problem(&v), NarProblem::TooDeep);
}

#[test]
fn reader_handles_deep_nesting_within_limit() {
    let depth = 1000;
    let mut v = Vec::new();
    toks(&mut v, &[b"nix-archive-1", b"(", b"type", b"directory"]);
    for _ in 0..depth {
        toks(
            &mut v,
            &[
                b"entry",
                b"(",
                b"name",
                b"d",
                b"node",
                b"(",
                b"type",
                b"directory",
            ],
        );
    }
    for _ in 0..depth {
        toks(&mut v, &[b")", b")"]);
    }
    s(&mut v, b")");
    assert_eq!(validate_nar(&v[..]).unwrap().nar_size, v.len() as u64);
}

#[test]
fn unpack_refuses_existing_destination() {
    let t = tempfile::tempdir().unwrap();
    let nar = dir_nar(&[(b"a", b"x")]);
    let err = unpack_nar(&nar[..], t.path()).unwrap_err();
    assert!(
        matches!(&err, NarReadError::Output { path, .. } if path == t.path()),
        "{err}"
    );
}

#[test]
fn listing_is_written_as_nix_writes_it() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("bin/run"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("a \"q\"\n\x01"), b"").unwrap();
    symlink("bin/run", root.join("link")).unwrap();
    let (nar, _) = dump(&root);
    let ls = String::from_utf8(list_nar(&nar[..]).unwrap()).unwrap();
    // Entries in NAR order; an empty file's contents start right after its length.
    let want = concat!(
        r#"{"version":1,"root":{"type":"directory","entries":{"#,
        r#""a \"q\"\n\u0001":{"type":"regular","size":0,"narOffset":"#,
    );
    assert!(ls.starts_with(want), "{ls}");
    assert!(
        ls.contains(r#""bin":{"type":"directory","entries":{"run":{"type":"regular","size":10,"executable":true,"narOffset":"#),
        "{ls}"
    );
    assert!(
        ls.ends_with(r#""link":{"type":"symlink","target":"bin/run"}}}}"#),
        "{ls}"
    );
    // The offsets point at the contents.
    let at = ls
        .split(r#""executable":true,"narOffset":"#)
        .nth(1)
        .unwrap();
    let off: usize = at[..at.find('}').unwrap()].parse().unwrap();
    assert_eq!(&nar[off..off + 10], b"#!/bin/sh\n");
    // A lone file as the root.
    let (nar, _) = dump(&root.join("bin/run"));
    assert_eq!(
        list_nar(&nar[..]).unwrap(),
        br#"{"version":1,"root":{"type":"regular","size":10,"executable":true,"narOffset":128}}"#
    );
}

#[test]
fn the_push_listing_equals_the_parsed_one_however_the_bytes_arrive() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("a/b/c/deep"), vec![7u8; 70_000]).unwrap();
    fs::write(root.join("a/x"), b"").unwrap();
    fs::write(root.join("run"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(root.join("run"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"n\xffame \"q\"\n")),
        b"x",
    )
    .unwrap();
    // Names that look like the NAR's own keywords.
    for k in ["entry", "type", "(", ")", "contents", "node"] {
        fs::write(root.join(k), k).unwrap();
    }
    symlink("a/b", root.join("link")).unwrap();
    for tree in [
        root.clone(),
        root.join("run"),
        root.join("link"),
        root.join("empty"),
    ] {
        let (nar, _) = dump(&tree);
        let want = list_nar(&nar[..]).unwrap();
        for chunk in [1, 3, 7, 8, 64, 4096, nar.len()] {
            let mut w = ListingWriter::default();
            for piece in nar.chunks(chunk) {
                w.feed(piece);
            }
            assert_eq!(
                w.finish().as_deref(),
                Some(&want[..]),
                "{} in chunks of {chunk}",
                tree.display()
            );
        }
        // A cut NAR is not a listing.
        let mut w = ListingWriter::default();
        w.feed(&nar[..nar.len() - 8]);
        assert_eq!(w.finish(), None);
    }
    let mut w = ListingWriter::default();
    w.feed(b"not a nar at all, not at all");
    assert_eq!(w.finish(), None);
}
