//! `catalog gc` over a large file:// store on /dev/shm: N store paths, half of them registered
//! (live), half garbage two days old. Times the dry run and the real run against the I/O floor
//! of the same job measured in the same run (walk the store, read every kept narinfo, which
//! GC must do to learn the NARs they name) and prints ratios.
//!
//! `cargo bench --bench gc` (release). `PUBDECK_GC_PATHS` (default 10000).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use pubdeck::cache::{self, PackOptions};
use pubdeck::catalog::embedded::CatalogBackend;
use pubdeck::catalog::{AnyCatalog, Catalog, ClosurePath, NewBuild};
use pubdeck::lifecycle::gc::{self, GcOptions};
use pubdeck::nix::sign::SecretKey;
use pubdeck::store::{OpenOptions, Store};

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("PUBDECK_GC_PATHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let base = if Path::new("/dev/shm").is_dir() {
        Path::new("/dev/shm")
    } else {
        Path::new("/tmp")
    };
    let tmp = tempfile::Builder::new()
        .prefix("pubdeck-bench-gc.")
        .tempdir_in(base)
        .unwrap();
    let root = tmp.path().join("store");
    let url = format!("file://{}", root.display());
    let store = Store::open_str(&url, &OpenOptions::default())
        .await
        .unwrap();
    let key = SecretKey::generate("bench-1").unwrap();
    let backend = CatalogBackend::connect(&format!(
        "sqlite://{}",
        tmp.path().join("catalog.sqlite").display()
    ))
    .await
    .unwrap();
    backend.db().ensure_user("bench").await.unwrap();
    let catalog = AnyCatalog::Embedded(backend.as_user("bench"));
    catalog
        .create_catalog("bench", &url, &[key.public().to_nix_string()])
        .await
        .unwrap();

    // N small store paths; the even ones are registered.
    let t = Instant::now();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut batch = Vec::new();
    for i in 0..n {
        std::fs::write(src.join("data"), format!("path {i}\n")).unwrap();
        let (info, _) = cache::add_source(
            &store,
            &src,
            &format!("p{i}"),
            &[],
            &PackOptions::default(),
            &key,
        )
        .await
        .unwrap();
        if i % 2 == 0 {
            batch.push(NewBuild {
                org: "bench".into(),
                package: format!("p{i}"),
                version: "1".into(),
                description: String::new(),
                system: "x86_64-linux".into(),
                store_path: info.store_path.to_string(),
                narinfo_url: format!("{url}/{}", info.file_name()),
                nar_hash: info.nar_hash.to_string(),
                nar_size: info.nar_size,
                references: vec![],
                signature: info.sigs[0].to_string(),
                key_name: String::new(),
                source_url: "https://example.invalid/r.git".into(),
                revision: "a".repeat(40),
                branch: "main".into(),
                build_name: format!("p{i}"),
                installed_packages: vec![],
                ca: info.ca.clone().unwrap_or_default(),
                closure: vec![ClosurePath {
                    store_path: info.store_path.to_string(),
                    nar_size: info.nar_size,
                }],
                ..Default::default()
            });
        }
        if batch.len() == 1000 {
            catalog.register_builds("bench", &batch).await.unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        catalog.register_builds("bench", &batch).await.unwrap();
    }
    let mut files = Vec::new();
    walk(&root, &mut files);
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    for f in &files {
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    println!(
        "store: {n} paths ({} objects), half registered; built in {:.1} s",
        files.len(),
        t.elapsed().as_secs_f64()
    );

    // The floor: walk the store and read every narinfo GC keeps (the registered half).
    let t = Instant::now();
    let mut all = Vec::new();
    walk(&root, &mut all);
    let live = catalog.live_paths("bench").await.unwrap().paths;
    let mut bytes = 0;
    for p in &live {
        let hash = &p["/nix/store/".len().."/nix/store/".len() + 32];
        bytes += std::fs::read(root.join(format!("{hash}.narinfo")))
            .unwrap()
            .len();
    }
    let floor = t.elapsed();
    println!(
        "floor (walk {} files + read {} narinfos, {bytes} bytes): {:.3} s",
        all.len(),
        live.len(),
        floor.as_secs_f64()
    );

    let (tx, mut rx) = pubdeck::event::channel();
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let opts = OpenOptions::default();
    let t = Instant::now();
    let dry = gc::collect(
        &catalog,
        "bench",
        &opts,
        &GcOptions {
            dry_run: true,
            ..Default::default()
        },
        &tx,
    )
    .await
    .unwrap();
    let dry_t = t.elapsed();
    let t = Instant::now();
    let done = gc::collect(&catalog, "bench", &opts, &GcOptions::default(), &tx)
        .await
        .unwrap();
    let real_t = t.elapsed();
    assert_eq!(dry.deleted.len(), done.deleted.len());
    println!(
        "gc --dry-run: {:.3} s ({:.2}x floor), {} objects, {} bytes to free",
        dry_t.as_secs_f64(),
        dry_t.as_secs_f64() / floor.as_secs_f64(),
        dry.deleted.len(),
        dry.bytes
    );
    println!(
        "gc:           {:.3} s ({:.2}x floor), {} objects deleted ({:.0} per second)",
        real_t.as_secs_f64(),
        real_t.as_secs_f64() / floor.as_secs_f64(),
        done.deleted.len(),
        done.deleted.len() as f64 / real_t.as_secs_f64()
    );
}
