//! The properties every fuzz target checks, one function per target. Each takes arbitrary
//! bytes and panics only when pubdeck breaks a promise: a parser panics, accepts input it then
//! cannot handle, or its writer and reader disagree.
//!
//! Shared by the cargo-afl targets (`tests/fuzz/src/*.rs`, `scripts/fuzz.sh`) and by the
//! normal suite (`tests/it/fuzz_regressions.rs`), which replays the seeds and every crasher ever
//! found, and runs seeded mutations of them.

#![allow(dead_code)]

use std::path::Path;

use pubdeck::catalog::validate::{
    validate_content_address, validate_new_build, validate_store_url,
};
use pubdeck::catalog::{
    AddKeyRequest, CheckBuildQuery, CreateCatalogRequest, NewBuild, SearchQuery, SetStoreRequest,
    parse_public_key, validate_org_name,
};
use pubdeck::manifest::edit::NewInstall;
use pubdeck::manifest::{Manifest, VersionSpec};
use pubdeck::nix::nar::{
    HashPart, ListingWriter, NarReadError, RefScanner, Rewriter, dump_path, list_nar, unpack_nar,
    validate_nar,
};
use pubdeck::nix::narinfo::NarInfo;
use pubdeck::nix::sign::PublicKey;

/// The fuzz targets, by name (`scripts/fuzz.sh TARGET`).
pub const TARGETS: [&str; 6] = [
    "nar",
    "narinfo",
    "manifest",
    "catalog_json",
    "store_url",
    "key_name",
];

/// Runs the property of target `name` over `data`.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "nar" => nar(data),
        "narinfo" => narinfo(data),
        "manifest" => manifest(data),
        "catalog_json" => catalog_json(data),
        "store_url" => store_url(data),
        "key_name" => key_name(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

/// Nothing unsafe for a terminal: no control character, bidi or zero-width mark.
fn shows_safely(s: &str) -> bool {
    !s.chars().any(pubdeck::text::is_unsafe_char)
}

/// A valid public key's base64 (any name may be put in front of it).
const KEY_B64: &str = "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=";

/// What `use` writes into an empty nix.conf for a catalog whose store URL and keys come from
/// arbitrary text: either nothing (refused), or exactly the two template lines, each value a
/// single nix.conf token.
fn nix_conf_takes_only_the_template(store_url: &str, keys: &[String]) {
    use pubdeck::catalog::{CatalogInfo, Role};
    use pubdeck::lifecycle::nixconf;
    let info = CatalogInfo {
        name: "myorg".into(),
        owner: "alice".into(),
        store_url: store_url.into(),
        keys: keys.to_vec(),
        role: Role::Reader,
        created_at: String::new(),
    };
    // A file that does not exist: `plan` only reads it.
    let file = std::path::Path::new("/nonexistent/pubdeck-fuzz/nix.conf");
    let Ok(plan) = nixconf::plan(file, &info) else {
        return;
    };
    for v in std::iter::once(&plan.substituter).chain(&plan.keys) {
        assert!(pubdeck::text::is_config_token(v), "{v:?} is not one token");
    }
    let want = format!(
        "extra-substituters = {}\nextra-trusted-public-keys = {}\n",
        plan.substituter,
        plan.keys.join(" ")
    );
    assert_eq!(
        plan.new_text, want,
        "nix.conf would get more than the template"
    );
}

/// Store URLs (and endpoints, and the redaction of any URL): whatever parses has one canonical
/// form that is a single nix.conf token, shows safely, parses back to the same value and is
/// what the catalog stores; AWS is decided on the parsed host; every error message shows
/// safely; `use` writes only its template.
pub fn store_url(data: &[u8]) {
    use pubdeck::store::{Endpoint, Host, StoreUrl};
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    match StoreUrl::parse(text) {
        Ok(url) => {
            let shown = url.to_string();
            assert!(pubdeck::text::is_config_token(&shown), "{shown:?}");
            assert!(shows_safely(&shown), "{shown:?}");
            assert_eq!(StoreUrl::parse(&shown).ok(), Some(url.clone()), "{shown:?}");
            assert_eq!(
                pubdeck::catalog::validate::canonical_store_url(text).ok(),
                Some(shown.clone())
            );
            if let StoreUrl::S3(loc) = &url
                && let Some(ep) = &loc.endpoint
                && ep.is_aws()
            {
                let Host::Name(h) = &ep.host else {
                    panic!("AWS by an address: {ep}")
                };
                assert!(h.ends_with(".amazonaws.com") || h.ends_with(".amazonaws.com.cn"));
                assert!(ep.https && ep.port.is_none(), "{ep}");
            }
        }
        Err(e) => assert!(shows_safely(&e.to_string()), "{e}"),
    }
    match Endpoint::parse(text) {
        Ok(ep) => {
            let shown = ep.to_string();
            assert!(pubdeck::text::is_config_token(&shown), "{shown:?}");
            assert_eq!(Endpoint::parse(&shown).ok(), Some(ep), "{shown:?}");
        }
        Err(e) => assert!(shows_safely(&e), "{e}"),
    }
    assert!(shows_safely(&pubdeck::store::redacted_url(text)));
    nix_conf_takes_only_the_template(text, &[format!("myorg-1:{KEY_B64}")]);
}

/// Key names, and the other names a catalog owner picks (org, package): a name the rules
/// accept is a single nix.conf token that shows safely; a key parses exactly when its name
/// follows the rule; a signature's name never holds whitespace or a control character; a
/// name from a NAR listing shows safely once escaped; `use` writes only its template.
pub fn key_name(data: &[u8]) {
    use pubdeck::nix::sign::{PublicKey, Signature, is_valid_key_name};
    let text = String::from_utf8_lossy(data);
    let name = text.as_ref();
    let valid = is_valid_key_name(name);
    if valid {
        assert!(
            pubdeck::text::is_config_token(name) && !name.contains(':'),
            "{name:?}"
        );
    }
    match PublicKey::parse(&format!("{name}:{KEY_B64}")) {
        Ok(k) => {
            // Whitespace around a key file's text is ignored; the name itself must follow.
            assert_eq!(k.name(), name.trim_start(), "{name:?}");
            assert!(is_valid_key_name(k.name()), "{name:?} was accepted");
            assert!(pubdeck::text::is_config_token(&k.to_nix_string()));
        }
        Err(e) => {
            assert!(!valid, "{name:?} refused: {e}");
            assert!(shows_safely(&e.to_string()), "{e}");
        }
    }
    let sig = format!("{name}:{}", "A".repeat(86) + "==");
    if let Ok(s) = Signature::parse(&sig) {
        assert!(
            !s.key_name()
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()),
            "{:?}",
            s.key_name()
        );
    }
    for ok in [
        validate_org_name(name).is_ok(),
        pubdeck::catalog::validate_package_name(name).is_ok(),
    ] {
        if ok {
            assert!(
                pubdeck::text::is_config_token(name) && shows_safely(name),
                "{name:?}"
            );
        }
    }
    assert!(shows_safely(&pubdeck::text::terminal(name)));
    // A log line keeps its colours (SGR) and tabs, and nothing else unsafe.
    let logged = pubdeck::text::log_line(name);
    let mut rest = logged.as_ref();
    let mut plain = String::new();
    while let Some(c) = rest.chars().next() {
        if let Some(body) = rest.strip_prefix("\x1b[")
            && let Some(end) = body.find('m')
            && body[..end]
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b';' || b == b':')
        {
            rest = &body[end + 1..];
            continue;
        }
        if c != '\t' {
            plain.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    assert!(shows_safely(&plain), "{logged:?}");
    nix_conf_takes_only_the_template("file:///srv/cache", &[format!("{name}:{KEY_B64}")]);
}

/// The NAR reader. Input the validator accepts unpacks (unless the file system refuses a
/// name, e.g. one longer than 255 bytes) to a tree whose NAR is the input, byte for byte; the
/// validator and the unpacker agree on the hash and size. The reference scanner and the
/// rewriter give the same answer however the stream is cut into chunks.
pub fn nar(data: &[u8]) {
    scanning_is_chunk_independent(data);
    let validated = validate_nar(data);
    // The listing accepts exactly what the validator accepts.
    let listed = list_nar(data);
    assert_eq!(
        listed.is_ok(),
        validated.is_ok(),
        "the listing and the validator disagree"
    );
    // The listing built while the bytes pass (in two pieces) is the parsed one.
    if let Ok(want) = &listed {
        let mut w = ListingWriter::default();
        let (a, b) = data.split_at(data.len() / 3);
        w.feed(a);
        w.feed(b);
        assert_eq!(
            w.finish().as_ref(),
            Some(want),
            "push and parsed listings differ"
        );
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dest = dir.path().join("out");
    let unpacked = unpack_nar(data, &dest);
    let summary = match (validated, unpacked) {
        (Err(v), Err(u)) => {
            // Both refuse; a structural refusal must be the same one.
            if let (Some(a), Some(b)) = (v.problem(), u.problem()) {
                assert_eq!(
                    a.to_string(),
                    b.to_string(),
                    "validator and unpacker disagree"
                );
            }
            return;
        }
        (Ok(_), Err(NarReadError::Output { .. })) => return,
        (Ok(v), Err(u)) => panic!("validated NAR ({} bytes) failed to unpack: {u}", v.nar_size),
        (Err(v), Ok(_)) => panic!("unpacker accepted a NAR the validator refused: {v}"),
        (Ok(v), Ok(u)) => {
            assert_eq!(
                v.nar_size, u.nar_size,
                "validator and unpacker disagree on the size"
            );
            assert_eq!(
                v.nar_hash, u.nar_hash,
                "validator and unpacker disagree on the hash"
            );
            v
        }
    };
    assert_eq!(
        summary.nar_size,
        data.len() as u64,
        "accepted NAR with trailing bytes"
    );
    let mut again = Vec::with_capacity(data.len());
    dump_path(&dest, &mut again).expect("an unpacked NAR packs again");
    assert!(again == data, "NAR → tree → NAR changed the bytes");
}

/// Candidate hash parts taken from the data itself, so that matches happen.
fn candidates(data: &[u8]) -> Vec<HashPart> {
    let mut out = Vec::new();
    for start in [0, data.len() / 3, data.len() / 2] {
        if let Some(window) = data.get(start..start + 32) {
            let mut part = [0u8; 32];
            for (p, b) in part.iter_mut().zip(window) {
                // Map into the nix32 alphabet; the scanner only reports nix32 strings.
                *p = b"0123456789abcdfghijklmnpqrsvwxyz"[usize::from(*b) % 32];
            }
            out.push(part);
        }
    }
    out
}

fn scanning_is_chunk_independent(data: &[u8]) {
    let cands = candidates(data);
    if cands.is_empty() {
        return;
    }
    let cut = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    let mut whole = RefScanner::new(cands.iter().copied());
    whole.scan(data);
    let mut chunked = RefScanner::new(cands.iter().copied());
    chunked.scan(&data[..cut]);
    for piece in data[cut..].chunks(7) {
        chunked.scan(piece);
    }
    assert_eq!(
        whole.found(),
        chunked.found(),
        "scanner depends on chunking"
    );

    let rewrites = vec![(cands[0].to_vec(), [b'0'; 32].to_vec())];
    let own = cands.last().map(|c| (c.to_vec(), [b'z'; 32].to_vec()));
    let mut one = Rewriter::new(Vec::new(), rewrites.clone(), own.clone());
    std::io::Write::write_all(&mut one, data).expect("writing to memory");
    let (one_out, one_at) = one.finish().expect("finishing in memory");
    let mut many = Rewriter::new(Vec::new(), rewrites, own);
    std::io::Write::write_all(&mut many, &data[..cut]).expect("writing to memory");
    for piece in data[cut..].chunks(5) {
        std::io::Write::write_all(&mut many, piece).expect("writing to memory");
    }
    let (many_out, many_at) = many.finish().expect("finishing in memory");
    assert_eq!(one_out.len(), data.len(), "rewriting changed the length");
    assert!(one_out == many_out, "rewriter depends on chunking");
    assert_eq!(
        one_at, many_at,
        "rewriter's self offsets depend on chunking"
    );
}

/// The narinfo parser: whatever it accepts writes out as text it reads back to the same
/// value, and that text is a fixed point.
pub fn narinfo(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(info) = NarInfo::parse(text) else {
        return;
    };
    let written = info.to_string();
    let again = NarInfo::parse(&written)
        .unwrap_or_else(|e| panic!("a narinfo we wrote does not parse: {e}\n{written}"));
    assert_eq!(again, info, "narinfo → text → narinfo changed the value");
    assert_eq!(
        again.to_string(),
        written,
        "narinfo text is not a fixed point"
    );
    let _ = info.fingerprint();
    let _ = info.file_name();
}

/// The manifest parser, and the two edits pubdeck makes on a manifest it accepted: setting a
/// build's version and adding an install entry. An edit of an accepted manifest either
/// succeeds with text that parses and says what was asked, or refuses with an error.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/.flox/env/manifest.toml");
    let Ok(m) = Manifest::parse(path, text.to_string()) else {
        return;
    };
    for b in m.builds.iter().take(4) {
        let _ = m.nearest_build(&b.name);
        match m.with_build_version(&b.name, "9.8.7") {
            Ok(edited) => {
                let re = Manifest::parse(path, edited).expect("an edited manifest parses");
                let build = re.build(&b.name).expect("the edited build is still there");
                assert_eq!(
                    build.version,
                    Some(VersionSpec::Literal("9.8.7".into())),
                    "version not set"
                );
                assert_eq!(
                    re.builds.len(),
                    m.builds.len(),
                    "an edit changed the builds"
                );
                assert_eq!(
                    re.install.len(),
                    m.install.len(),
                    "an edit changed installs"
                );
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let entry = NewInstall {
        id: "fuzzed",
        pkg_path: "myorg/fuzzed",
        pkg_group: Some("fuzzed"),
        version: Some("1.0"),
    };
    match m.with_install(&entry) {
        Ok(edited) => {
            let re = Manifest::parse(path, edited).expect("an edited manifest parses");
            let added = re.install.iter().find(|i| i.id == "fuzzed");
            assert!(added.is_some(), "install entry not added");
            assert_eq!(
                re.install.len(),
                m.install.len() + 1,
                "an edit changed installs"
            );
            assert_eq!(
                re.builds.len(),
                m.builds.len(),
                "an edit changed the builds"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The catalog's JSON request types: every body the service deserializes serializes back to
/// the same value, and the validation run on it never panics.
pub fn catalog_json(data: &[u8]) {
    if let Ok(b) = serde_json::from_slice::<NewBuild>(data) {
        round_trip(&b);
        if validate_new_build(&b).is_ok() {
            let _ = validate_content_address(&b);
        }
    }
    if let Ok(c) = serde_json::from_slice::<CreateCatalogRequest>(data) {
        round_trip(&c);
        let _ = validate_org_name(&c.name);
        let _ = validate_store_url(&c.store_url);
        for k in &c.keys {
            let _ = parse_public_key(k);
        }
    }
    if let Ok(s) = serde_json::from_slice::<SetStoreRequest>(data) {
        round_trip(&s);
        let _ = validate_store_url(&s.store_url);
    }
    if let Ok(k) = serde_json::from_slice::<AddKeyRequest>(data) {
        round_trip(&k);
        if let Ok(name) = parse_public_key(&k.key) {
            let key = PublicKey::parse(&k.key).expect("the catalog and sign agree on keys");
            assert_eq!(key.name(), name);
            let text = key.to_nix_string();
            assert_eq!(
                PublicKey::parse(&text).ok(),
                Some(key),
                "key text round trip"
            );
        }
    }
    if let Ok(q) = serde_json::from_slice::<CheckBuildQuery>(data) {
        round_trip(&q);
    }
    if let Ok(q) = serde_json::from_slice::<SearchQuery>(data) {
        round_trip(&q);
    }
}

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = serde_json::to_vec(value).expect("a request type serializes");
    let back: T = serde_json::from_slice(&bytes).expect("a serialized request deserializes");
    assert_eq!(&back, value, "JSON round trip changed the value");
}
