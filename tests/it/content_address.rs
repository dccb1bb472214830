//! Content addressing as `nix store make-content-addressed` does it, against the path real
//! Nix 2.8 made content-addressed (`tests/vectors/selfref`, see its README): the same input
//! must give the same NAR, CA hash and store path, byte for byte, whether the input was built
//! in `/nix/store` or at pubdeck's temporary build location.

use std::fs;
use std::path::Path;

use pubdeck::cache::{self, Compression, PackOptions};
use pubdeck::closure::{BuiltAs, Input, KnownPaths, pack_closure};
use pubdeck::nix::Sha256Hash;
use pubdeck::nix::nar;
use pubdeck::nix::sign::SecretKey;

fn vector(name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/selfref")
            .join(name),
    )
    .unwrap()
}

const OLD_HASH: &str = "cfgzlc8hlxdyblrx4b35wzk4vzgylga7";
const NEW_PATH: &str = "/nix/store/vdjmix2bn91gxssp591ayk858cl3y8wr-selfref-1.0";
const CA_HASH: &str = "sha256:0pkcazsk8w6sdfrrcw1r0cpnylnqqlv7035r6xnc1rgbffa7lp43";
/// `sha256-t0ROMf58V0mqCy8DAQ0vaUeFS3UOMTXImcM5lfjGu58=` from path-info, in hex.
const NAR_HASH_B64: &str = "t0ROMf58V0mqCy8DAQ0vaUeFS3UOMTXImcM5lfjGu58=";

fn hash_part(s: &str) -> [u8; 32] {
    s.as_bytes().try_into().unwrap()
}

/// Unpacks `nar` (with every `from` replaced by `to` first) into `dir/tree`.
fn unpack(nar: &[u8], from: &str, to: &str, dir: &Path) -> std::path::PathBuf {
    let text = replace(nar, from.as_bytes(), to.as_bytes());
    let tree = dir.join("tree");
    nar::unpack_nar(&mut &text[..], &tree).unwrap();
    tree
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = data.to_vec();
    if from.is_empty() {
        return out;
    }
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn make_ca(tree: &Path, prefix: &str, dir: &Path) -> pubdeck::closure::PackedPath {
    let input = Input {
        tree: tree.to_path_buf(),
        built_as: BuiltAs {
            prefix: prefix.into(),
            hash: hash_part(OLD_HASH),
            name: "selfref-1.0".into(),
        },
    };
    let mut out = pack_closure(
        &input,
        &KnownPaths::default(),
        &PackOptions::with(Compression::None),
        dir,
        &|| false,
    )
    .unwrap();
    assert_eq!(out.len(), 1, "no dependencies");
    out.pop().unwrap()
}

fn check_against_nix(p: &pubdeck::closure::PackedPath) {
    use base64::Engine as _;
    assert_eq!(p.store_path.to_string(), NEW_PATH);
    assert_eq!(p.ca_hash, Sha256Hash::parse(CA_HASH).unwrap());
    assert!(p.self_reference);
    assert_eq!(
        p.references
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        [NEW_PATH]
    );
    let mut nar = Vec::new();
    std::io::Read::read_to_end(&mut p.packed.file.reader().unwrap(), &mut nar).unwrap();
    assert!(
        nar == vector("content-addressed.nar"),
        "the NAR differs from the one Nix made"
    );
    let nix_hash = base64::engine::general_purpose::STANDARD
        .decode(NAR_HASH_B64)
        .unwrap();
    assert_eq!(p.packed.summary.nar.nar_hash.0.to_vec(), nix_hash);
    assert_eq!(p.packed.summary.nar.nar_size, 792);
}

#[test]
fn selfref_from_the_nix_store_matches_nix() {
    let t = tempfile::tempdir().unwrap();
    let tree = unpack(&vector("input-addressed.nar"), "", "", t.path());
    let p = make_ca(&tree, "/nix/store/", t.path());
    check_against_nix(&p);
}

#[test]
fn selfref_built_at_the_temporary_location_matches_nix() {
    // The same build, as pubdeck runs it: $out at /tmp/XXXXX/<hash>-<name>.
    let t = tempfile::tempdir().unwrap();
    let tree = unpack(
        &vector("input-addressed.nar"),
        &format!("/nix/store/{OLD_HASH}"),
        &format!("/tmp/abcde/{OLD_HASH}"),
        t.path(),
    );
    let script = fs::read_to_string(tree.join("bin/w")).unwrap();
    assert!(script.contains("/tmp/abcde/"), "{script}");
    let p = make_ca(&tree, "/tmp/abcde/", t.path());
    check_against_nix(&p);
}

#[test]
fn a_signed_selfref_narinfo_verifies_and_fetches() {
    let t = tempfile::tempdir().unwrap();
    let tree = unpack(&vector("input-addressed.nar"), "", "", t.path());
    let p = make_ca(&tree, "/nix/store/", t.path());
    let key = SecretKey::generate("test-1").unwrap();
    let info = p.narinfo(&key);
    assert_eq!(
        info.ca.as_deref(),
        Some(format!("fixed:r:{CA_HASH}").as_str())
    );
    let ca = cache::require_content_address(&info).unwrap();
    assert!(ca.self_reference);
    let dest = t.path().join("dest");
    let f = p.packed.file.reader().unwrap();
    cache::fetch_nar(&info, &[key.public()], f, &dest).unwrap();
    let script = fs::read_to_string(dest.join("bin/w")).unwrap();
    assert!(script.contains(NEW_PATH), "{script}");

    // The same bytes under a narinfo claiming another CA hash are refused.
    let mut lying = info.clone();
    lying.ca = Some(format!("fixed:r:{}", Sha256Hash::of(b"other content")));
    lying.sign(&key);
    assert!(cache::require_content_address(&lying).is_err());
}

/// A NAR whose NarHash the narinfo states but whose bytes, hashed modulo its own hash part,
/// do not give the path's name is refused (the NarHash and the hash modulo are taken in one
/// pass); the same narinfo over the right bytes fetches.
#[test]
fn a_selfref_nar_whose_bytes_do_not_give_its_name_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let tree = unpack(&vector("input-addressed.nar"), "", "", t.path());
    let p = make_ca(&tree, "/nix/store/", t.path());
    let key = SecretKey::generate("test-1").unwrap();
    let info = p.narinfo(&key);
    let fetched = t.path().join("fetched");
    cache::fetch_nar(
        &info,
        &[key.public()],
        p.packed.file.reader().unwrap(),
        &fetched,
    )
    .unwrap();
    let mut good = Vec::new();
    nar::dump_path(&fetched, &mut good).unwrap();
    assert_eq!(Sha256Hash::of(&good), info.nar_hash);
    // The narinfo as a server could state it for any bytes: uncompressed, NarHash theirs.
    let stated = |bytes: &[u8]| {
        let mut i = info.clone();
        i.compression = Compression::None;
        i.file_hash = None;
        i.file_size = None;
        i.nar_hash = Sha256Hash::of(bytes);
        i.nar_size = bytes.len() as u64;
        i.sign(&key);
        i
    };
    cache::fetch_nar(
        &stated(&good),
        &[key.public()],
        &good[..],
        &t.path().join("ok"),
    )
    .unwrap();
    let bad = replace(&good, b"#!", b"#?");
    assert_ne!(bad, good);
    let err = cache::fetch_nar(
        &stated(&bad),
        &[key.public()],
        &bad[..],
        &t.path().join("bad"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("CA (hash modulo self-references)"), "{err}");
    assert!(!t.path().join("bad").exists(), "nothing is left behind");
}
