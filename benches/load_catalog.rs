//! Load test of the catalog service on loopback: seeds a catalog with many packages directly
//! in the database, starts `pubdeck serve` on 127.0.0.1:0 in-process, then runs concurrent
//! clients doing a mix of search and show through the real client. Bounded in count and time.
//!
//! `cargo bench --bench load_catalog` (release). Environment knobs:
//! `PUBDECK_LOAD_PACKAGES` (100000), `PUBDECK_LOAD_CLIENTS` (200), `PUBDECK_LOAD_REQUESTS`
//! (50 per client), `PUBDECK_LOAD_DB` (a `postgres://` URL to an empty database; default a
//! temporary SQLite file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pubdeck::catalog::db::Db;
use pubdeck::catalog::{AnyCatalog, Catalog, CatalogClient};
use pubdeck::server::Server;

const WORDS: &[&str] = &[
    "lib", "py", "node", "rust", "go", "data", "net", "http", "json", "xml", "crypto", "image",
    "audio", "video", "tool", "util", "core", "server", "client", "db", "cli", "stream", "cache",
    "parse",
];
const ADJ: &[&str] = &[
    "fast", "small", "secure", "portable", "modern", "simple", "robust",
];
const NOUN: &[&str] = &[
    "library",
    "toolkit",
    "daemon",
    "parser",
    "codec",
    "framework",
    "shell",
];
const QUERIES: &[&str] = &[
    "http",
    "json tool",
    "py-crypto",
    "srvr",
    "image 4242",
    "audio codec",
    "rust-net-1234",
    "stream cache",
    "secure daemon",
    "xml-parse-99",
];
const TIME_LIMIT: Duration = Duration::from_secs(600);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn package(i: usize) -> (String, String) {
    let a = WORDS[i % WORDS.len()];
    let b = WORDS[(i / WORDS.len()) % WORDS.len()];
    let name = format!("{a}-{b}-{i}");
    let desc = format!(
        "A {} {} for {} {}",
        ADJ[i % ADJ.len()],
        NOUN[(i / 7) % NOUN.len()],
        b,
        WORDS[(i / 13) % WORDS.len()]
    );
    (name, desc)
}

async fn seed(db: &Db, packages: usize) -> anyhow::Result<String> {
    let token = db.add_user("bench").await?;
    db.insert_catalog("benchorg", "bench", "file:///tmp/bench-store", &[])
        .await?;
    let mut tx = db.pool().begin().await?;
    let batch = 500;
    for start in (0..packages).step_by(batch) {
        let end = (start + batch).min(packages);
        let mut pkg_sql = String::from(
            "INSERT INTO packages (catalog, name, latest_version, description, updated_at) VALUES ",
        );
        let mut build_sql = String::from(
            "INSERT INTO builds (catalog, package, version, system, description, store_path, \
             narinfo_url, nar_hash, nar_size, refs, signature, key_name, source_url, revision, \
             branch, build_name, installed, published_by, published_at) VALUES ",
        );
        for (n, i) in (start..end).enumerate() {
            let p = n * 3;
            if n > 0 {
                pkg_sql.push(',');
                build_sql.push(',');
            }
            pkg_sql.push_str(&format!("('benchorg', ${}, '1.0', ${}, 0)", p + 1, p + 2));
            build_sql.push_str(&format!(
                "('benchorg', ${}, '1.0', 'x86_64-linux', ${}, ${}, 'file:///x.narinfo', \
                 'sha256:0000000000000000000000000000000000000000000000000000', 1, '[]', 'k:sig', \
                 'k', 'https://example.invalid/r.git', 'aaaaaaa', 'main', 'b', '[]', 'bench', 0)",
                p + 1,
                p + 2,
                p + 3
            ));
            let _ = i;
        }
        let mut q1 = sqlx::query(&pkg_sql);
        let mut q2 = sqlx::query(&build_sql);
        for i in start..end {
            let (name, desc) = package(i);
            q1 = q1.bind(name.clone()).bind(desc.clone()).bind(String::new());
            q2 = q2
                .bind(name.clone())
                .bind(desc)
                .bind(format!("/nix/store/{:0>32}-{name}-1.0", i));
        }
        q1.execute(&mut *tx).await?;
        q2.execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE catalogs SET generation = generation + 1 WHERE name = 'benchorg'")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(token)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn report(label: &str, lat: &mut [Duration], elapsed: Duration) {
    lat.sort();
    println!(
        "{label:<7} {:>6} req  {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
        lat.len(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        percentile(lat, 0.50).as_secs_f64() * 1e3,
        percentile(lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let packages = env_usize("PUBDECK_LOAD_PACKAGES", 100_000);
    let clients = env_usize("PUBDECK_LOAD_CLIENTS", 200);
    let requests = env_usize("PUBDECK_LOAD_REQUESTS", 50);
    let tmp = tempfile::tempdir()?;
    let db_url = std::env::var("PUBDECK_LOAD_DB")
        .unwrap_or_else(|_| format!("sqlite://{}", tmp.path().join("load.sqlite").display()));

    let t = Instant::now();
    let server = Server::bind("127.0.0.1:0".parse()?, &db_url).await?;
    let token = seed(server.backend().db(), packages).await?;
    println!("seeded {packages} packages in {:.2?}", t.elapsed());
    let addr = server.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stop_rx.await;
    }));

    let client = AnyCatalog::Remote(CatalogClient::new(&format!("http://{addr}"), Some(token))?);
    let t = Instant::now();
    let warm = client.search("http", 20).await?;
    println!(
        "first search (cache load) {:.2?}, {} hits",
        t.elapsed(),
        warm.len()
    );

    // unloaded latency, one client, distinct queries
    let t = Instant::now();
    for i in 0..20 {
        client
            .search(&format!("{}-{i}", WORDS[i % WORDS.len()]), 20)
            .await?;
    }
    let per_search = t.elapsed() / 20;
    let t = Instant::now();
    for i in 0..20 {
        client.show("benchorg", &package(i * 4999).0).await?;
    }
    println!(
        "sequential: search {per_search:.2?} per request (uncached), show {:.2?}",
        t.elapsed() / 20
    );

    let started = Instant::now();
    let deadline = started + TIME_LIMIT;
    let client = Arc::new(client);
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let mut search = Vec::new();
            let mut show = Vec::new();
            let mut errors = 0usize;
            for r in 0..requests {
                if Instant::now() > deadline {
                    break;
                }
                let n = c * requests + r;
                let t = Instant::now();
                if n.is_multiple_of(2) {
                    // half repeated queries, half unique ones (no result-cache hits)
                    let q = if n.is_multiple_of(4) {
                        QUERIES[(n / 4) % QUERIES.len()].to_string()
                    } else {
                        format!("{}-{}", WORDS[n % WORDS.len()], n / 4)
                    };
                    let ok = client.search(&q, 20).await.is_ok();
                    search.push(t.elapsed());
                    errors += usize::from(!ok);
                } else {
                    let (name, _) = package((n * 7919) % packages.max(1));
                    let ok = client.show("benchorg", &name).await.is_ok();
                    show.push(t.elapsed());
                    errors += usize::from(!ok);
                }
            }
            (search, show, errors)
        }));
    }
    let (mut search, mut show, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (s, w, e) = t.await?;
        search.extend(s);
        show.extend(w);
        errors += e;
    }
    let elapsed = started.elapsed();
    let mut all: Vec<Duration> = search.iter().chain(show.iter()).copied().collect();
    println!(
        "{clients} clients x {requests} requests against {packages} packages on {}",
        if db_url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    report("all", &mut all, elapsed);
    report("search", &mut search, elapsed);
    report("show", &mut show, elapsed);
    println!("errors  {errors}");
    let _ = stop_tx.send(());
    serving.await??;
    if errors > 0 {
        anyhow::bail!("{errors} requests failed");
    }
    Ok(())
}
