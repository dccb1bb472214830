//! The service's scan for queries it never saw, with and without the score bounds
//! (`catalog::search`): per query, the bounded scan and the full scan (every candidate
//! scored) alternate on one thread over the same `ScanSet`, so both see the same machine.
//! The set is merged on its second search, as the service's sets are (the full scan of the
//! first query pays for it). Prints
//! mean, p50 and p99 of each, their ratio, and the share of packages the bounds spared. Exits
//! non-zero if any query ranks differently.
//!
//! `cargo bench --bench scan -- WORK [QUERIES]` where WORK is a workload directory of
//! `scripts/bench-serve.sh` (its `catalog.sqlite.search` and `distinct-queries.txt`, after one
//! run of `scripts/bench-search.sh`); QUERIES defaults to 3,000. With `SCAN_PROFILE=1` only the
//! bounded scan runs, for a profiler (`perf record`), and nothing is compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use pubdeck::catalog::index_file;
use pubdeck::catalog::search::ScanSet;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let Some(work) = args.next() else {
        eprintln!("usage: cargo bench --bench scan -- WORK [QUERIES]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3000);
    let work = Path::new(&work);
    let Some(catalogs) = index_file::load(&work.join("catalog.sqlite.search")) else {
        eprintln!(
            "scan: no index file in {} (run scripts/bench-search.sh)",
            work.display()
        );
        std::process::exit(2);
    };
    let catalogs: Vec<_> = catalogs.into_iter().map(Arc::new).collect();
    let packages: usize = catalogs.iter().map(|c| c.index.len()).sum();
    // As the service holds a visible set: merged from its second search on.
    let set = ScanSet::standalone(catalogs);
    let queries = std::fs::read_to_string(work.join("distinct-queries.txt")).unwrap_or_default();
    let queries: Vec<&str> = queries.lines().take(n).collect();
    if queries.is_empty() {
        eprintln!(
            "scan: no distinct-queries.txt in {} (run scripts/bench-serve.sh)",
            work.display()
        );
        std::process::exit(2);
    }
    let (mut bounded, mut full) = (Vec::new(), Vec::new());
    let (mut scored_bounded, mut scored_full) = (0usize, 0usize);
    // Per shape of query: the bounded and full scans' total time and the query count.
    let mut shapes: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
    let mut slowest: Vec<(f64, &str)> = Vec::new();
    if std::env::var_os("SCAN_PROFILE").is_some() {
        let t = Instant::now();
        let scored: usize = queries.iter().map(|q| set.scan(q, 20, true).1).sum();
        let ms = t.elapsed().as_secs_f64() * 1e3 / queries.len() as f64;
        println!("bounded scan only: mean {ms:.3} ms, {scored} scored");
        return;
    }
    for q in &queries {
        let t = Instant::now();
        let (a, sa) = set.scan(q, 20, true);
        bounded.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let (b, sb) = set.scan(q, 20, false);
        full.push(t.elapsed().as_secs_f64() * 1e3);
        if a != b {
            eprintln!("scan: {q:?} ranks differently with the bounds:\n  {a:?}\n  {b:?}");
            std::process::exit(1);
        }
        (scored_bounded, scored_full) = (scored_bounded + sa, scored_full + sb);
        let shape = if q.contains(' ') {
            "description words"
        } else if a
            .first()
            .is_some_and(|(_, name)| name.split('/').nth(1).is_some_and(|n| n.starts_with(q)))
        {
            "name prefix"
        } else {
            "abbreviation"
        };
        let (b, f) = (bounded[bounded.len() - 1], full[full.len() - 1]);
        let e = shapes.entry(shape).or_default();
        (e.0, e.1, e.2) = (e.0 + b, e.1 + f, e.2 + 1);
        slowest.push((b, q));
    }
    let stats = |v: &mut Vec<f64>| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        (mean, at(0.5), at(0.99))
    };
    let (bm, b50, b99) = stats(&mut bounded);
    let (fm, f50, f99) = stats(&mut full);
    println!(
        "{} never-repeated queries over {packages} packages, one thread, limit 20",
        queries.len()
    );
    println!("bounded scan  mean {bm:6.3} ms  p50 {b50:6.3} ms  p99 {b99:6.3} ms");
    println!("full scan     mean {fm:6.3} ms  p50 {f50:6.3} ms  p99 {f99:6.3} ms");
    println!(
        "ratio bounded/full: mean {:.2}x  p50 {:.2}x  p99 {:.2}x; scored {:.0}% of the full scan's",
        bm / fm,
        b50 / f50,
        b99 / f99,
        100.0 * scored_bounded as f64 / scored_full as f64
    );
    for (shape, (b, f, n)) in &shapes {
        let (b, f) = (b / *n as f64, f / *n as f64);
        println!(
            "  {shape:<18} {n:5} queries: bounded mean {b:6.3} ms, full {f:6.3} ms, {:.2}x",
            b / f
        );
    }
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    let slowest: Vec<String> = slowest
        .iter()
        .take(8)
        .map(|(ms, q)| format!("{q:?} {ms:.2}"))
        .collect();
    println!("slowest bounded (ms): {}", slowest.join(", "));
}
