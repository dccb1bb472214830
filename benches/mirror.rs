//! The Catalog tab's reload after a publish, against the catalog service on loopback: the
//! whole listing fetched and indexed again (what the workbench did before `catalog::mirror`)
//! against a mirror refresh that fetches and indexes only the catalog that changed. Also the
//! first load of each. Seeds PACKAGES packages in ORGS catalogs directly in a temporary SQLite
//! database, serves it in-process on 127.0.0.1:0, registers one more package per round (as a
//! publish does) and times both reloads alternately. Prints medians and the ratio.
//!
//! `cargo bench --bench mirror [-- PACKAGES ORGS ROUNDS]`   (100000 400 7)

use std::time::{Duration, Instant};

use pubdeck::catalog::mirror::{MirrorUpdate, PackageMirror};
use pubdeck::catalog::search::SearchIndex;
use pubdeck::catalog::{AnyCatalog, Catalog, CatalogClient, Listing};
use pubdeck::server::Server;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Adds `names` to catalog `org` in one transaction that moves its generation and the state
/// version on, as a registration does.
async fn add(db: &pubdeck::catalog::db::Db, org: &str, names: &[String]) -> anyhow::Result<()> {
    let mut tx = db.pool().begin().await?;
    for chunk in names.chunks(300) {
        let mut sql = String::from(
            "INSERT INTO packages (catalog, name, latest_version, description, updated_at) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("($1, ${}, '1.0', ${}, 0)", 2 * i + 2, 2 * i + 3));
        }
        let mut q = sqlx::query(&sql).bind(org.to_string());
        for name in chunk {
            q = q
                .bind(name.clone())
                .bind(format!("the {name} package, for benchmarks of the listing"));
        }
        q.execute(&mut *tx).await?;
    }
    sqlx::query("UPDATE catalogs SET generation = generation + 1 WHERE name = $1")
        .bind(org.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE catalog_state SET version = version + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The reload before the mirror: the whole listing, indexed again.
async fn full_reload(client: &AnyCatalog, etag: Option<&str>) -> anyhow::Result<(usize, String)> {
    match client.list_packages(etag).await? {
        Listing::Packages { etag, packages } => {
            let index = SearchIndex::of_packages(&packages);
            Ok((index.len(), etag))
        }
        Listing::NotModified { .. } => anyhow::bail!("the listing did not change"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let packages = args.first().copied().unwrap_or(100_000);
    let orgs = args.get(1).copied().unwrap_or(400).max(1);
    let rounds = args.get(2).copied().unwrap_or(7).clamp(1, 100);
    let tmp = tempfile::tempdir()?;
    let db_url = format!("sqlite://{}", tmp.path().join("mirror.sqlite").display());
    let server = Server::bind("127.0.0.1:0".parse()?, &db_url).await?;
    let db = server.backend().db().clone();
    let token = db.add_user("bench").await?;
    let t = Instant::now();
    for o in 0..orgs {
        let org = format!("org{o:04}");
        db.insert_catalog(&org, "bench", "file:///tmp/bench-store", &[])
            .await?;
        let names: Vec<String> = (o..packages)
            .step_by(orgs)
            .map(|i| format!("pkg-{i:06}"))
            .collect();
        add(&db, &org, &names).await?;
    }
    println!(
        "seeded {packages} packages in {orgs} catalogs in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let addr = server.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stop_rx.await;
    }));
    let client = AnyCatalog::Remote(CatalogClient::new(&format!("http://{addr}"), Some(token))?);

    // The service loads its per-catalog lists on first use: not part of either figure.
    client.search("pkg", 1).await?;
    let t = Instant::now();
    let (n, mut etag) = full_reload(&client, None).await?;
    let first_full = t.elapsed();
    let mut mirror = PackageMirror::new();
    let t = Instant::now();
    mirror.refresh(&client).await?;
    let first_mirror = t.elapsed();
    assert_eq!(mirror.index().len(), n);

    let (mut full, mut incremental) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        add(&db, &format!("org{:04}", r % orgs), &[format!("new-{r}")]).await?;
        // Alternate which goes first, so neither always meets a cold cache.
        for second in [false, true] {
            if (r % 2 == 0) == second {
                let t = Instant::now();
                let (len, e) = full_reload(&client, Some(&etag)).await?;
                full.push(t.elapsed());
                etag = e;
                assert_eq!(len, n + r + 1);
            } else {
                let t = Instant::now();
                let update = mirror.refresh(&client).await?;
                incremental.push(t.elapsed());
                let MirrorUpdate::Changed {
                    fetched_catalogs, ..
                } = update
                else {
                    anyhow::bail!("the mirror missed a change");
                };
                assert_eq!(fetched_catalogs, 1);
                assert_eq!(mirror.index().len(), n + r + 1);
            }
        }
    }
    let (full, incremental) = (median(full), median(incremental));
    println!(
        "first load: whole listing {:.1} ms, mirror {:.1} ms ({:.2}x)",
        ms(first_full),
        ms(first_mirror),
        ms(first_mirror) / ms(first_full)
    );
    println!(
        "reload after one registration (median of {rounds}): whole listing {:.1} ms, mirror {:.1} ms ({:.3}x)",
        ms(full),
        ms(incremental),
        ms(incremental) / ms(full)
    );
    let _ = stop_tx.send(());
    serving.await??;
    Ok(())
}
