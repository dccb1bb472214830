//! Writes the catalog-at-scale workload the `scripts/bench-*` scripts share, from a seed:
//! ORGS organisations of PACKAGES/ORGS packages each, named `lang-word-kind` with a
//! one-sentence description, every one a signed build pubdeck's catalog accepts.
//!
//! `cargo bench --bench workload -- OUT_DIR [PACKAGES [ORGS [SEED]]]` (100000, 400, 1) writes:
//! - `OUT_DIR/key`, `OUT_DIR/key.pub`: the signing key every org trusts;
//! - `OUT_DIR/orgs.txt`: the org names, one per line;
//! - `OUT_DIR/builds/<org>.ndjson`: one build per line (`pubdeck catalog import ORG FILE`);
//! - `OUT_DIR/fzf.txt`: `org/name<TAB>description` per package (what `fzf --filter` reads);
//! - `OUT_DIR/queries.txt`: the queries to time (prefixes and fuzzy abbreviations);
//! - `OUT_DIR/show.txt`: `org/name` paths to show;
//! - `OUT_DIR/extras/<i>.ndjson` (i < 64): one more build each, for the first org, not part of
//!   the seeded catalog (a change to make, e.g. before timing a reload).

use std::io::Write;
use std::path::Path;

use pubdeck::catalog::NewBuild;
use pubdeck::nix::sign::{self, SecretKey};
use pubdeck::nix::{Sha256Hash, StorePath};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const LANGS: &[&str] = &[
    "py", "perl", "node", "rust", "go", "lib", "haskell", "ruby", "php", "ocaml", "r", "java",
    "lua", "tcl", "dotnet", "elixir", "julia", "swift",
];
const KINDS: &[&str] = &[
    "client", "server", "utils", "tools", "core", "daemon", "cli", "bindings", "docs", "dev",
    "plugin", "extras", "sdk", "proxy", "agent", "test",
];
const WORDS: &[&str] = &[
    "dhcp",
    "dns",
    "http",
    "json",
    "yaml",
    "toml",
    "xml",
    "csv",
    "sql",
    "redis",
    "kafka",
    "grpc",
    "oauth",
    "jwt",
    "ssh",
    "tls",
    "zlib",
    "zstd",
    "lz4",
    "brotli",
    "image",
    "audio",
    "video",
    "pdf",
    "markdown",
    "html",
    "css",
    "svg",
    "font",
    "unicode",
    "regex",
    "glob",
    "path",
    "time",
    "date",
    "cron",
    "queue",
    "cache",
    "pool",
    "stream",
    "socket",
    "serial",
    "usb",
    "bluetooth",
    "gpio",
    "i2c",
    "spi",
    "can",
    "modbus",
    "mqtt",
    "amqp",
    "smtp",
    "imap",
    "ldap",
    "kerberos",
    "saml",
    "ntp",
    "ptp",
    "snmp",
    "syslog",
    "journal",
    "metrics",
    "trace",
    "log",
    "config",
    "secret",
    "vault",
    "consul",
    "etcd",
    "zookeeper",
    "raft",
    "paxos",
    "crdt",
    "merkle",
    "bloom",
    "hash",
    "crypto",
    "random",
    "uuid",
    "base64",
    "hex",
    "ascii",
    "ansi",
    "term",
    "curses",
    "readline",
    "shell",
    "prompt",
    "table",
    "chart",
    "plot",
    "graph",
    "tree",
    "trie",
    "heap",
    "queue",
    "matrix",
    "tensor",
    "linalg",
    "stats",
    "fft",
    "signal",
    "geo",
    "gis",
    "map",
    "tile",
    "osm",
    "gpx",
    "kml",
    "wasm",
    "llvm",
    "gcc",
    "clang",
    "lint",
    "format",
    "parser",
    "lexer",
    "ast",
    "macro",
    "template",
    "mustache",
    "jinja",
    "i18n",
    "locale",
    "money",
    "decimal",
    "bigint",
    "rational",
    "quaternion",
    "physics",
    "robot",
    "ros",
    "opencv",
    "ocr",
    "speech",
    "midi",
    "synth",
    "dsp",
    "codec",
    "mp3",
    "flac",
    "opus",
    "vorbis",
    "webm",
    "mkv",
    "rtsp",
    "webrtc",
    "sip",
    "xmpp",
    "irc",
    "matrixchat",
    "slack",
    "discord",
    "email",
    "mime",
    "vcard",
    "ical",
    "calendar",
    "contacts",
    "backup",
    "sync",
    "rsync",
    "diff",
    "patch",
    "git",
    "hg",
    "svn",
    "fossil",
    "docker",
    "oci",
    "podman",
    "k8s",
    "helm",
    "terraform",
    "ansible",
    "salt",
    "puppet",
    "chef",
    "nix",
    "flake",
    "cargo",
    "pip",
    "npm",
    "maven",
    "gradle",
    "bazel",
    "ninja",
    "meson",
    "cmake",
    "autotools",
    "make",
    "pkgconfig",
    "elf",
    "dwarf",
    "pe",
    "macho",
];
const ADJ: &[&str] = &[
    "fast",
    "small",
    "secure",
    "portable",
    "modern",
    "simple",
    "robust",
    "async",
    "zero-copy",
    "embeddable",
    "pure",
    "minimal",
    "streaming",
    "typed",
];
const WHAT: &[&str] = &[
    "library",
    "toolkit",
    "daemon",
    "parser",
    "codec",
    "framework",
    "shell",
    "client",
    "server",
    "bindings",
    "command-line tool",
    "test suite",
];
const SYLLABLES: &[&str] = &[
    "ac", "me", "glo", "bex", "ini", "tech", "umb", "rella", "sta", "rk", "wa", "yne", "cy", "ber",
    "dyne", "hoo", "li", "nova", "ter", "ra", "vex", "zen", "ora", "quin", "tor", "lux",
];

fn org_name(rng: &mut StdRng, i: usize) -> String {
    let a = SYLLABLES.choose(rng).unwrap();
    let b = SYLLABLES.choose(rng).unwrap();
    format!("{a}{b}{i}")
}

/// A build of `org/name@version` signed by `key`, its store path following from its content.
fn signed_build(
    key: &SecretKey,
    org: &str,
    name: &str,
    version: String,
    description: &str,
    nar_size: u64,
) -> anyhow::Result<NewBuild> {
    let nar_hash = Sha256Hash::of(format!("{org}/{name}@{version}").as_bytes());
    let path = StorePath::from_nar_hash(&nar_hash, &format!("{name}-{version}"), &[])?;
    let fp = sign::fingerprint(&path, &nar_hash, nar_size, &[]);
    Ok(NewBuild {
        org: org.to_string(),
        package: name.to_string(),
        version,
        description: description.to_string(),
        system: "x86_64-linux".into(),
        store_path: path.to_string(),
        narinfo_url: format!("file:///srv/cache/{}.narinfo", path.hash_part()),
        nar_hash: nar_hash.to_string(),
        nar_size,
        references: vec![],
        signature: key.sign(fp.as_bytes()).to_string(),
        key_name: "bench-1".into(),
        source_url: format!("https://git.example.invalid/{org}/{name}.git"),
        revision: hex::encode(&nar_hash.0[..20]),
        branch: "main".into(),
        build_name: name.to_string(),
        installed_packages: vec!["hello".into()],
        ca: format!("fixed:r:{nar_hash}"),
        closure: vec![],
        ..Default::default()
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(out) = args.first() else {
        anyhow::bail!("usage: cargo bench --bench workload -- OUT_DIR [PACKAGES [ORGS [SEED]]]");
    };
    let num = |i: usize, d: u64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (packages, orgs, seed) = (num(1, 100_000) as usize, num(2, 400) as usize, num(3, 1));
    let out = Path::new(out);
    std::fs::create_dir_all(out.join("builds"))?;
    let mut rng = StdRng::seed_from_u64(seed);

    let mut sk_bytes = [0u8; 32];
    rng.fill(&mut sk_bytes);
    let signing = ed25519_dalek::SigningKey::from_bytes(&sk_bytes);
    use base64::Engine as _;
    let key_text = format!(
        "bench-1:{}",
        base64::engine::general_purpose::STANDARD.encode(signing.to_keypair_bytes())
    );
    let key = SecretKey::parse(&key_text)?;
    std::fs::write(out.join("key"), &key_text)?;
    std::fs::write(out.join("key.pub"), key.public().to_nix_string())?;

    let mut org_list = std::fs::File::create(out.join("orgs.txt"))?;
    let mut fzf = std::io::BufWriter::new(std::fs::File::create(out.join("fzf.txt"))?);
    let mut show = std::io::BufWriter::new(std::fs::File::create(out.join("show.txt"))?);
    let per_org = packages.div_ceil(orgs);
    let mut written = 0;
    let mut all_names = Vec::new();
    let mut first_org = String::new();
    for o in 0..orgs {
        let org = org_name(&mut rng, o);
        if o == 0 {
            first_org = org.clone();
        }
        writeln!(org_list, "{org}")?;
        let mut file = std::io::BufWriter::new(std::fs::File::create(
            out.join("builds").join(format!("{org}.ndjson")),
        )?);
        let mut names = std::collections::HashSet::new();
        while names.len() < per_org && written < packages {
            let name = format!(
                "{}-{}-{}",
                LANGS.choose(&mut rng).unwrap(),
                WORDS.choose(&mut rng).unwrap(),
                KINDS.choose(&mut rng).unwrap()
            );
            if !names.insert(name.clone()) {
                continue;
            }
            written += 1;
            let description = format!(
                "A {} {} {} for {} and {}.",
                ADJ.choose(&mut rng).unwrap(),
                WORDS.choose(&mut rng).unwrap(),
                WHAT.choose(&mut rng).unwrap(),
                WORDS.choose(&mut rng).unwrap(),
                WORDS.choose(&mut rng).unwrap()
            );
            let version = format!(
                "{}.{}.{}",
                rng.gen_range(0..5),
                rng.gen_range(0..20),
                rng.gen_range(0..10)
            );
            let nar_size = rng.gen_range(10_000..50_000_000u64);
            let build = signed_build(&key, &org, &name, version, &description, nar_size)?;
            serde_json::to_writer(&mut file, &build)?;
            file.write_all(b"\n")?;
            writeln!(fzf, "{org}/{name}\t{description}")?;
            all_names.push(format!("{org}/{name}"));
        }
        file.flush()?;
    }
    fzf.flush()?;
    for name in all_names.choose_multiple(&mut rng, 200) {
        writeln!(show, "{name}")?;
    }
    show.flush()?;

    // Prefixes (2–6 characters) and fuzzy abbreviations of real names.
    let mut queries: Vec<String> = [
        "py-dh", "lbtaoc", "perl-q", "ut", "ru", "node-j", "gocli", "hsklsrv", "libz", "rdis",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for name in all_names.choose_multiple(&mut rng, 40) {
        let package = name.split('/').nth(1).unwrap();
        let q: String = if rng.gen_bool(0.5) {
            package.chars().take(rng.gen_range(2..=6)).collect()
        } else {
            // Every other character of the name: an abbreviation fzf users type.
            package
                .chars()
                .filter(|c| *c != '-')
                .step_by(2)
                .take(rng.gen_range(3..=6))
                .collect()
        };
        queries.push(q);
    }
    std::fs::write(out.join("queries.txt"), queries.join("\n") + "\n")?;
    std::fs::create_dir_all(out.join("extras"))?;
    for i in 0..64 {
        let b = signed_build(
            &key,
            &first_org,
            &format!("zz-extra-{i}"),
            "1.0.0".into(),
            "One more package, registered while the workbench is open.",
            4096,
        )?;
        std::fs::write(
            out.join("extras").join(format!("{i}.ndjson")),
            serde_json::to_string(&b)? + "\n",
        )?;
    }
    eprintln!(
        "workload: {written} packages in {orgs} orgs, {} queries, in {}",
        queries.len(),
        out.display()
    );
    Ok(())
}
