//! The one search (`catalog::search`) as the workbench uses it: per-keystroke filtering of a
//! 100,000-package list (400 orgs), typing queries one character at a time (incremental
//! narrowing), each query from scratch, and the same narrowing scored by `fuzzy-matcher`'s
//! skim v2 (the matcher first tried; the measurement behind the choice in ARCHITECTURE.md).
//! `--write-list FILE` writes the list (`org/name<TAB>description` per line) for
//! `fzf --filter`.
//!
//! `cargo bench --bench search -- [--write-list FILE] [--queries a,b,c]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use fuzzy_matcher::FuzzyMatcher;
use fuzzy_matcher::skim::SkimMatcherV2;
use pubdeck::catalog::search::{DISPLAY_CAP, Filter, SearchIndex};
use pubdeck::tui::test_support::fake::synthetic_packages;

/// The same narrowing + top-K algorithm as `Filter`, scored by skim v2.
struct Skim {
    list: Vec<String>,
    matcher: SkimMatcherV2,
    query: String,
    matched: Vec<usize>,
}

impl Skim {
    fn set_query(&mut self, q: &str) -> usize {
        let narrowing = !self.query.is_empty() && q.starts_with(self.query.as_str());
        let candidates = if narrowing {
            std::mem::take(&mut self.matched)
        } else {
            (0..self.list.len()).collect()
        };
        let mut scored: Vec<(i64, usize)> = candidates
            .into_iter()
            .filter_map(|id| Some((self.matcher.fuzzy_match(&self.list[id], q)?, id)))
            .collect();
        self.matched = scored.iter().map(|s| s.1).collect();
        if scored.len() > DISPLAY_CAP {
            scored.select_nth_unstable_by(DISPLAY_CAP - 1, |a, b| b.cmp(a));
            scored.truncate(DISPLAY_CAP);
        }
        scored.sort_unstable_by(|a, b| b.cmp(a));
        for (_, id) in &scored {
            let _ = self.matcher.fuzzy_indices(&self.list[*id], q);
        }
        self.query = q.to_string();
        scored.len()
    }
}

const QUERIES: &str =
    "py-dh,lbtaoc,perl-q,ut,json-check,rs-auth,paygw,cfgsync,service,org001/web,xyz";

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let packages = synthetic_packages(100_000, 400);
    let list: Vec<String> = packages.iter().map(|p| p.reference()).collect();
    if let Some(path) = arg("--write-list") {
        let lines: Vec<String> = packages
            .iter()
            .map(|p| format!("{}\t{}", p.reference(), p.description))
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write list");
        eprintln!("wrote {} lines to {path}", lines.len());
    }
    let queries = arg("--queries").unwrap_or_else(|| QUERIES.to_string());
    let queries: Vec<&str> = queries.split(',').filter(|q| !q.is_empty()).collect();

    let t = Instant::now();
    let mut index =
        Filter::new(Arc::new(SearchIndex::new(packages.iter().map(|p| {
            (p.org.as_str(), p.name.as_str(), p.description.as_str())
        }))));
    println!("index build: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);

    let mut keystrokes = Vec::new();
    let mut first_keys = Vec::new();
    for q in &queries {
        index.set_query("");
        let mut typed = String::new();
        for (i, c) in q.chars().enumerate() {
            typed.push(c);
            let t = Instant::now();
            index.set_query(&typed);
            let d = t.elapsed();
            if args.iter().any(|a| a == "--verbose") {
                println!(
                    "  {typed:<14} {:>6} matches {:>7.2} ms",
                    index.total(),
                    d.as_secs_f64() * 1e3
                );
            }
            keystrokes.push(d);
            if i == 0 {
                first_keys.push(d);
            }
        }
        println!(
            "{q:<14} {:>6} matches (top: {})",
            index.total(),
            index
                .hits()
                .first()
                .map(|h| list[h.id].as_str())
                .unwrap_or("-")
        );
    }
    let mut fresh = Vec::new();
    for q in &queries {
        index.set_query("");
        let t = Instant::now();
        index.set_query(q);
        fresh.push(t.elapsed());
    }
    let n = keystrokes.len();
    println!(
        "per keystroke (incremental), {n} keystrokes: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(&mut keystrokes, 0.5),
        pct(&mut keystrokes, 0.99),
        pct(&mut keystrokes, 1.0)
    );
    println!(
        "first keystroke (full list): max {:.2} ms",
        pct(&mut first_keys, 1.0)
    );
    let mut skim = Skim {
        list: list.clone(),
        matcher: SkimMatcherV2::default().smart_case(),
        query: String::new(),
        matched: Vec::new(),
    };
    let mut skim_keys = Vec::new();
    for q in &queries {
        skim.query.clear();
        let mut typed = String::new();
        for c in q.chars() {
            typed.push(c);
            let t = Instant::now();
            skim.set_query(&typed);
            skim_keys.push(t.elapsed());
        }
    }
    println!(
        "fuzzy-matcher skim v2, same keystrokes: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(&mut skim_keys, 0.5),
        pct(&mut skim_keys, 0.99),
        pct(&mut skim_keys, 1.0)
    );
    println!(
        "whole query from scratch:    p50 {:.2} ms  max {:.2} ms",
        pct(&mut fresh, 0.5),
        pct(&mut fresh, 1.0)
    );
}
