use super::suggest::distance;
use super::*;

pub(crate) fn summaries(names: &[(&str, &str, &str)]) -> Vec<PackageSummary> {
    names
        .iter()
        .map(|(o, n, d)| PackageSummary {
            name: format!("{o}/{n}"),
            org: (*o).into(),
            package: (*n).into(),
            latest_version: "1".into(),
            description: (*d).into(),
        })
        .collect()
}

pub(crate) fn cat(names: &[(&str, &str)]) -> Arc<CatalogIndex> {
    let rows: Vec<(&str, &str, &str)> = names.iter().map(|(n, d)| ("org", *n, *d)).collect();
    Arc::new(CatalogIndex::new("org", 0, 0, &summaries(&rows)))
}

/// The prefilters reject only what the matcher would: every package gets the same score
/// (or none) with and without them, for names and queries in upper and lower case, with
/// digits, punctuation, accents and other scripts.
/// `(org, name, description)`.
type Row = (String, String, String);

/// 600 packages of mixed names (cases, digits, punctuation, accents, other scripts,
/// whitespace and delimiters) and queries over them.
fn mixed() -> (Vec<Row>, SearchIndex, Vec<&'static str>) {
    let parts = [
        "py", "dh", "Auth", "café", "naïve", "ß", "日本", "x86_64", "v1.2", "-", "lib", "ÉTÉ",
        "qz", "utils", "ü", "perl-q", "a", "a b", "p|q", "c:d", "x/y",
    ];
    let mut rows = Vec::new();
    let mut state = 7u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    for i in 0..600 {
        let name: String = (0..1 + next(3))
            .map(|_| parts[next(parts.len())])
            .collect::<Vec<_>>()
            .join(if i % 2 == 0 { "-" } else { "" });
        let description: String = (0..next(6))
            .map(|_| parts[next(parts.len())])
            .collect::<Vec<_>>()
            .join(" ");
        let org = ["Acme", "beta", "çorp"][i % 3];
        rows.push((org.to_string(), format!("{name}{i}"), description));
    }
    // Names equal to a query, or starting with one longer than eight bytes.
    for (org, name) in [
        ("Acme", "py"),
        ("beta", "Auth"),
        ("çorp", "café"),
        ("Acme", "perl-query-builder-extra"),
        ("beta", "PY-upper"),
        ("Acme", "x86_64"),
    ] {
        rows.push((org.to_string(), name.to_string(), "py utils".to_string()));
    }
    let idx = SearchIndex::new(
        rows.iter()
            .map(|(o, n, d)| (o.as_str(), n.as_str(), d.as_str())),
    );
    let queries = [
        "py",
        "PY",
        "pydh",
        "auth",
        "Auth",
        "AUTH",
        "cafe",
        "café",
        "CAFÉ",
        "naive",
        "ss",
        "ß",
        "日本",
        "本",
        "x86",
        "x8664",
        "_",
        "v1.2",
        "1.2",
        ".",
        "-",
        "lib utils",
        "qz a",
        "perl-q",
        "e",
        "é",
        "ete",
        "été",
        "acme/py",
        "/lib",
        "çorp/",
        "beta/au",
        "ü u",
        "a b",
        "x/y",
        "p|q",
        "utils café",
        "zz",
        "a a a",
        "9",
        "59",
        "acme-py",
        "acme py",
        "acme/py",
        "perl-query-b",
        "perl-query-builder-extra",
        "py-upper",
        "x86_64",
        "beta",
        "BETA au",
        "Acme PY",
        "çorp café",
        "acme x86_64",
        "PERL-Q",
        "utils",
        "lib Utils",
    ];
    (rows, idx, queries.to_vec())
}

#[test]
fn prefilters_change_no_result() {
    let (rows, idx, queries) = mixed();
    let columns = Columns::of(&idx);
    // Whether the order sets ever reject what the characters let through.
    let mut narrower = false;
    let mut m = Matcher::new(Config::DEFAULT);
    let mut matching_queries = 0;
    for q in queries {
        let q = Query::parse(q);
        let mut matched = 0;
        let need = q.character_needs();
        let candidates: std::collections::HashSet<usize> = idx.candidates(&need).collect();
        // Both column passes: the same candidates, with the same terms' names.
        let mut by_columns = HashMap::new();
        columns.candidates_narrow(&q.column_needs(), idx.len(), |id, names| {
            by_columns.insert(id, names);
        });
        let mut wide = HashMap::new();
        columns.candidates_wide(&q.column_needs(), idx.len(), |id, names| {
            wide.insert(id, names);
        });
        assert_eq!(by_columns, wide, "{:?}", q.as_str());
        assert!(
            by_columns.keys().all(|id| candidates.contains(id)),
            "{:?}",
            q.as_str()
        );
        narrower |= by_columns.len() < candidates.len();
        for (id, row) in rows.iter().enumerate() {
            let with = score_filtered(&mut m, &idx, id, &q, true, None);
            let without = score_filtered(&mut m, &idx, id, &q, false, None);
            assert_eq!(with, without, "{:?} on {row:?}", q.as_str());
            assert!(
                without.is_none() || by_columns.contains_key(&id),
                "the scan's first pass drops a match: {:?} on {row:?}",
                q.as_str()
            );
            // Told which names the columns rule out, the score is the same and the bound
            // still holds.
            if let Some(&names) = by_columns.get(&id) {
                let told = score_filtered(&mut m, &idx, id, &q, true, Some(names));
                assert_eq!(told, without, "{:?} on {row:?}", q.as_str());
            }
            if let (Some(score), Some(&names)) = (without, by_columns.get(&id)) {
                let bound = q.bound(&idx, id, Some(names));
                assert!(
                    bound >= score,
                    "{:?} on {row:?}: {bound} < {score}",
                    q.as_str()
                );
            }
            matched += usize::from(with.is_some());
        }
        matching_queries += usize::from(matched > 0);
    }
    assert!(
        matching_queries >= 30,
        "{matching_queries} queries matched anything"
    );
    assert!(
        narrower,
        "the columns never rejected more than the row filters"
    );
    // Filters do reject: a query of characters no name or description has.
    let q = Query::parse("zzz");
    assert!((0..idx.len()).all(|id| score_filtered(&mut m, &idx, id, &q, true, None).is_none()));
}

/// The scan's score bound is at least the score of every package for every query, and a
/// scan that skips by it ranks exactly as one that scores everything.
#[test]
fn score_bounds_hold() {
    let (rows, idx, queries) = mixed();
    let mut m = Matcher::new(Config::DEFAULT);
    let mut scored = 0;
    for q in &queries {
        let q = Query::parse(q);
        for (id, row) in rows.iter().enumerate() {
            if let Some(score) = score_filtered(&mut m, &idx, id, &q, false, None) {
                let bound = q.bound(&idx, id, None);
                assert!(
                    bound >= score,
                    "{:?} on {row:?}: {score} > {bound}",
                    q.as_str()
                );
                scored += 1;
            }
        }
    }
    assert!(scored > 1000, "{scored} scores checked");
    // Names of the shape the bound is tight on (`lang-word-kind`, many equal scores),
    // in several catalogs, against the same names scored in full.
    let (langs, words, kinds) = (
        ["py", "r", "lua", "go", "rust", "lib", "Perl", "x86"],
        [
            "tls", "log", "tree", "ansible", "dhcp", "lz4", "queue", "Util", "daemon",
        ],
        ["cli", "dev", "sdk", "utils", "docs", "test"],
    );
    let catalogs: Vec<Arc<CatalogIndex>> = (0..6)
        .map(|c| {
            let org = format!("org{c}");
            let rows: Vec<PackageSummary> = (0..700)
                .map(|i: usize| {
                    let n = format!(
                        "{}-{}-{}",
                        langs[(i * 7 + c) % langs.len()],
                        words[(i / 3 + c) % words.len()],
                        kinds[(i / 11) % kinds.len()]
                    );
                    PackageSummary {
                        name: format!("{org}/{n}"),
                        org: org.clone(),
                        package: n,
                        latest_version: "1".into(),
                        description: format!("A {} daemon for {}", words[i % 9], kinds[i % 6]),
                    }
                })
                .collect();
            Arc::new(CatalogIndex::new(&org, 0, 0, &rows))
        })
        .collect();
    let mut skipped_any = false;
    let extra = [
        "l-l",
        "al-",
        "tre",
        "a daemon",
        "-tls",
        "ut",
        "lbtaoc",
        "py-tls-cli",
        "py",
        "py-t",
        "lua-tree-",
        "rust-ansible-c",
        "rust-ansible-cli",
        "Py",
        "perl",
        "x86-lz4-docs",
        "r",
        "zz-",
    ];
    for query in queries.iter().chain(&extra) {
        let q = Query::parse(query);
        for limit in [1, 3, 20, 200] {
            let (all, n_all) = scan_bounded(&catalogs, &q, limit, false);
            let (some, n_some) = scan_bounded(&catalogs, &q, limit, true);
            // By name: the generated names repeat, and equal keys may come in any order.
            let key = |h: &[(i64, &CatalogIndex, usize)]| -> Vec<(i64, String, String)> {
                h.iter()
                    .map(|&(s, c, id)| (s, c.name.clone(), c.index.name(id).to_string()))
                    .collect()
            };
            assert_eq!(key(&some), key(&all), "{query} limit {limit}");
            skipped_any |= n_some < n_all;
        }
    }
    assert!(skipped_any, "the bound never spared a score");
    // Enough names start with "py" for the prefix pass to answer alone; none starts with
    // "tre" (fuzzy and description matches), so its pass cannot.
    let mut m = Matcher::new(Config::DEFAULT);
    assert!(prefix_pass(&mut m, &catalogs, &Query::parse("py"), 20).settled(&Query::parse("py")));
    let tre = Query::parse("tre");
    assert!(!prefix_pass(&mut m, &catalogs, &tre, 20).settled(&tre));
}

/// One search of a set merges nothing and builds no columns (`pubdeck search` searches
/// once per process); the second merges the set, which then answers as its catalogs did.
/// A set over the memory budget builds its catalogs' columns instead, and a dropped set
/// gives its bytes back.
#[test]
fn a_set_merges_with_its_second_search() {
    let a = cat(&[("py-dhcp", "a daemon"), ("lua-tls", "bindings")]);
    let b = Arc::new(CatalogIndex::new(
        "beta",
        0,
        0,
        &summaries(&[("beta", "pdns", "dns"), ("beta", "py", "python")]),
    ));
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(MERGED_BYTES));
    let set = ScanSet::new(vec![Arc::clone(&a), Arc::clone(&b)], Arc::clone(&budget));
    // "pd" matches no name by prefix: the prefix pass, then the full pass.
    let first = set.search("pd", 20, Some(1));
    assert!(set.merged().is_none());
    assert!(a.index.columns().is_none() && b.index.columns().is_none());
    assert_eq!(set.search("pd", 20, Some(1)), first);
    let merged = set.merged().expect("merged on the second search");
    assert!(merged.catalog.index.columns().is_some());
    assert_eq!(merged.catalog.index.len(), 4);
    assert!(a.index.columns().is_none(), "no columns per catalog");
    for q in ["py", "beta/p", "dns", "daemon lua", "zz"] {
        assert_eq!(
            set.search(q, 20, Some(1)).unwrap().results,
            search_on(&[Arc::clone(&a), Arc::clone(&b)], q, 20, Some(1)).unwrap(),
            "{q}"
        );
    }
    let taken = MERGED_BYTES - budget.load(std::sync::atomic::Ordering::Relaxed);
    let merged_bytes = merged.catalog.index.heap_bytes() + Columns::bytes_for(4);
    assert!(taken >= merged_bytes / 2, "{taken}");
    drop(set);
    assert_eq!(
        budget.load(std::sync::atomic::Ordering::Relaxed),
        MERGED_BYTES
    );
    // No budget left: the catalogs get their own columns instead.
    let set = ScanSet::new(
        vec![Arc::clone(&a)],
        Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    );
    set.search("pd", 20, Some(1)).unwrap();
    set.search("pd", 20, Some(1)).unwrap();
    assert!(set.merged().is_none());
    assert!(a.index.columns().is_some());
}

/// `org/name` earns the exact bonus only for the query naming it with its `/` (or as the
/// two terms `org name`).
#[test]
fn only_org_slash_name_is_an_exact_org_match() {
    let idx = SearchIndex::new([("acme", "py", "the acme-py tool"), ("acme", "pyx", "")]);
    let score = |q: &str| score(&idx, 0, &Query::parse(q));
    assert!(score("acme/py").is_some_and(|s| s >= EXACT));
    assert!(score("py").is_some_and(|s| s >= EXACT));
    // `acme py` names it as `acme/py` does; `acme-py` matches (the description holds it)
    // without naming it.
    assert!(score("acme py").is_some_and(|s| s >= EXACT));
    assert!(score("py acme").is_some_and(|s| s < PREFIX));
    assert!(score("acme-py").is_some_and(|s| s < PREFIX));
}

#[test]
fn joined_indexes_are_the_index_of_all_their_packages() {
    let a = summaries(&[
        ("Acme", "Hello-World", "Prints greetings"),
        ("Acme", "curl", "transfers data"),
    ]);
    let b = summaries(&[("beta", "hello", "GNU hello"), ("beta", "zsh", "a shell")]);
    let empty = SearchIndex::default();
    let (ia, ib) = (SearchIndex::of_packages(&a), SearchIndex::of_packages(&b));
    let joined = SearchIndex::concat(&[&ia, &empty, &ib]);
    let all: Vec<PackageSummary> = a.iter().chain(&b).cloned().collect();
    let whole = SearchIndex::of_packages(&all);
    assert_eq!(joined.len(), whole.len());
    for id in 0..whole.len() {
        assert_eq!(joined.summary(id), whole.summary(id));
        assert_eq!(joined.lower_name(id), whole.lower_name(id));
        assert_eq!(joined.lower_description(id), whole.lower_description(id));
    }
    for query in ["hello", "acme/", "ACME/hw", "beta/h", "greet", "sh", "zz"] {
        let (mut fj, mut fw) = (
            Filter::new(Arc::new(SearchIndex::concat(&[&ia, &ib]))),
            Filter::new(Arc::new(SearchIndex::of_packages(&all))),
        );
        fj.set_query(query);
        fw.set_query(query);
        assert_eq!(fj.hits(), fw.hits(), "{query}");
    }
}

#[test]
fn ranking() {
    let c = cat(&[
        ("hello-world", "prints greetings"),
        ("hello", "GNU hello"),
        ("shell-tools", "helpers"),
        ("curl", "transfers data"),
    ]);
    let hits = search(std::slice::from_ref(&c), "hello", 10);
    assert_eq!(hits[0].name, "org/hello");
    assert_eq!(hits[1].name, "org/hello-world", "a prefix match comes next");
    assert!(hits.iter().all(|h| h.name != "org/curl"));
    let hits = search(std::slice::from_ref(&c), "transfers", 10);
    assert_eq!(hits[0].name, "org/curl", "descriptions are searched");
    assert_eq!(search(std::slice::from_ref(&c), "", 2).len(), 2);
    assert_eq!(
        search(std::slice::from_ref(&c), "HELLO", 1)[0].name,
        "org/hello"
    );
    assert_eq!(search(&[c], "org/hello", 1)[0].name, "org/hello");
}

#[test]
fn even_runs_cover_the_items_in_order_in_at_most_the_parts_asked() {
    let items: Vec<usize> = (0..50).map(|i| (i * 37) % 11).collect();
    for parts in 1..8 {
        for items in [&items[..], &[], &[0, 0, 0], &[5]] {
            let runs = even_runs(items, parts, |&w| w);
            assert!(runs.len() <= parts.max(1), "{parts}: {} runs", runs.len());
            assert!(runs.iter().all(|r| !r.is_empty()));
            assert_eq!(runs.concat(), items);
        }
    }
    let runs = even_runs(&[1; 100], 4, |&w| w);
    assert_eq!(runs.iter().map(|r| r.len()).collect::<Vec<_>>(), [25; 4]);
}

#[test]
fn a_split_scan_equals_one_scan() {
    let words = [
        "py", "lib", "perl", "go", "dhcp", "table", "utils", "queue", "Tools",
    ];
    let mut catalogs = Vec::new();
    for c in 0..37 {
        let org = format!("org{c}");
        let rows: Vec<PackageSummary> = (0..211)
            .map(|i| {
                let n = format!("{}-{}-{i}", words[(i + c) % 9], words[(i / 9) % 9]);
                let d = format!("A {} tool for {}", words[i % 9], words[(i + 3) % 9]);
                PackageSummary {
                    name: format!("{org}/{n}"),
                    org: org.clone(),
                    package: n,
                    latest_version: format!("1.{i}"),
                    description: d,
                }
            })
            .collect();
        catalogs.push(Arc::new(CatalogIndex::new(&org, 0, 0, &rows)));
    }
    for q in [
        "py-dh",
        "ut",
        "tools",
        "org3/lib",
        "perl q",
        "queue-lib-13",
        "zz",
    ] {
        let one = search_on(&catalogs, q, 20, Some(1)).unwrap();
        for threads in [2, 3, 8, 64] {
            assert_eq!(
                search_on(&catalogs, q, 20, Some(threads)).unwrap(),
                one,
                "{q} on {threads}"
            );
        }
        if q != "zz" {
            assert!(!one.is_empty(), "{q}");
        }
    }
    assert_eq!(
        search_on(&catalogs, "queue-lib-13", 1, Some(2)).unwrap()[0].package,
        "queue-lib-13",
        "the exact name first"
    );
}

#[test]
fn ranking_a_large_list_on_all_cores_equals_a_plain_sort() {
    let words = [
        "py", "lib", "perl", "go", "dhcp", "table", "utils", "queue", "Tools",
    ];
    let rows: Vec<(String, String, String)> = (0..30_000)
        .map(|i| {
            let name = format!("{}-{}-{}", words[i % 9], words[(i / 9) % 9], i % 977);
            let desc = format!("A {} tool for {}", words[(i / 81) % 9], words[(i / 7) % 9]);
            (format!("org{}", i % 50), name, desc)
        })
        .collect();
    let idx = SearchIndex::new(
        rows.iter()
            .map(|(o, n, d)| (o.as_str(), n.as_str(), d.as_str())),
    );
    for query in ["p", "py-dh", "ut", "tools q", "org7/lib", "zz"] {
        let q = Query::parse(query);
        let (matched, hits) = rank(&idx, &q, 0..idx.len(), DISPLAY_CAP).unwrap();
        let mut all: Vec<(i64, usize)> = (0..idx.len())
            .filter_map(|id| Some((score(&idx, id, &q)?, id)))
            .collect();
        assert_eq!(
            matched,
            all.iter().map(|&(_, id)| id).collect::<Vec<_>>(),
            "{query}"
        );
        all.sort_by(|&(a, x), &(b, y)| {
            b.cmp(&a)
                .then(idx.lower_name(x).len().cmp(&idx.lower_name(y).len()))
                .then(idx.lower_name(x).cmp(idx.lower_name(y)))
                .then(idx.org(x).to_lowercase().cmp(&idx.org(y).to_lowercase()))
                .then(x.cmp(&y))
        });
        all.truncate(DISPLAY_CAP);
        let got: Vec<(i64, usize)> = hits.iter().map(|h| (h.score, h.id)).collect();
        assert_eq!(got, all, "{query}");
    }
}

/// The search as every face sees it: the service's and the CLI's answer over `catalogs`
/// (a [`ScanSet`], searched twice so the merged index answers too), and the workbench's
/// filter over the same packages joined, which must agree; returns the names.
fn everywhere(catalogs: &[Arc<CatalogIndex>], query: &str) -> (Vec<String>, Vec<String>) {
    let set = ScanSet::standalone(catalogs.to_vec());
    let first = set.search(query, 50, Some(1)).unwrap();
    assert_eq!(
        set.search(query, 50, Some(1)).unwrap(),
        first,
        "{query}: merged"
    );
    let parts: Vec<&SearchIndex> = catalogs.iter().map(|c| &*c.index).collect();
    let mut f = Filter::new(Arc::new(SearchIndex::concat(&parts)));
    f.set_query(query);
    let name = |id: usize| format!("{}/{}", f.index().org(id), f.index().name(id));
    let workbench: Vec<String> = f.hits().iter().take(50).map(|h| name(h.id)).collect();
    let service: Vec<String> = first.results.iter().map(|h| h.name.clone()).collect();
    assert_eq!(workbench, service, "{query}: the workbench and the service");
    let near: Vec<String> = f.suggestions().iter().map(|&id| name(id)).collect();
    assert_eq!(near, first.suggestions, "{query}: suggestions");
    (service, near)
}

fn org_catalog(org: &str, rows: &[(&str, &str)]) -> Arc<CatalogIndex> {
    let rows: Vec<(&str, &str, &str)> = rows.iter().map(|(n, d)| (org, *n, *d)).collect();
    Arc::new(CatalogIndex::new(org, 0, 0, &summaries(&rows)))
}

fn two_orgs() -> Vec<Arc<CatalogIndex>> {
    vec![
        org_catalog(
            "myorg",
            &[
                ("hello", "Greets the organisation"),
                ("go-release-notes-cli", "Generates release notes"),
                ("HelloWorld", "prints a greeting"),
                (
                    "py-hello-server",
                    "Server for hello: greets the organisation",
                ),
                ("help2man", "manual pages"),
            ],
        ),
        org_catalog(
            "tools",
            &[
                ("hello", "GNU hello"),
                ("greetsd", "a daemon that greets"),
                ("myorg-sync", "copies myorg"),
                ("greeter", "greetings, as a service"),
            ],
        ),
    ]
}

/// Item 14: an upper-case letter in the query never makes the match case-sensitive.
#[test]
fn case_never_hides_an_exact_match() {
    let cats = two_orgs();
    for q in ["hello", "Hello", "HELLO", "hElLo"] {
        let (hits, _) = everywhere(&cats, q);
        assert_eq!(hits[..2], ["myorg/hello", "tools/hello"], "{q}");
        // Every case of the query ranks alike.
        assert_eq!(hits, everywhere(&cats, "hello").0, "{q}");
    }
    for q in ["HELLOWORLD", "helloworld", "HelloWorld"] {
        assert_eq!(everywhere(&cats, q).0[0], "myorg/HelloWorld", "{q}");
    }
    // The prefix pass takes upper-case queries too, and answers as the full scan.
    let q = Query::parse("HEL");
    assert!(q.by_prefix);
    let (bounded, _) = scan_bounded(&cats, &q, 3, true);
    let (full, _) = scan_bounded(&cats, &q, 3, false);
    let ids = |h: &[(i64, &CatalogIndex, usize)]| -> Vec<(i64, usize)> {
        h.iter().map(|&(s, _, id)| (s, id)).collect()
    };
    assert_eq!(ids(&bounded), ids(&full));
}

/// Item 15: every term matches the organisation (by naming it), the name or the
/// description; `org name` names a package as `org/name` does.
#[test]
fn terms_are_anded_over_org_name_and_description() {
    let cats = two_orgs();
    let (hits, _) = everywhere(&cats, "myorg hello");
    assert_eq!(hits[0], "myorg/hello", "{hits:?}");
    assert!(!hits.contains(&"tools/hello".to_string()), "{hits:?}");
    assert!(hits.contains(&"myorg/py-hello-server".to_string()));
    let (hits, _) = everywhere(&cats, "MyOrg HELLO");
    assert_eq!(hits[0], "myorg/hello", "{hits:?}");
    let (hits, _) = everywhere(&cats, "tools hello");
    assert_eq!(hits[0], "tools/hello", "{hits:?}");
    // Either order of the terms finds it; only `org name` is an exact match.
    let (hits, _) = everywhere(&cats, "hello myorg");
    assert!(hits.contains(&"myorg/hello".to_string()), "{hits:?}");
    let idx = &cats[0].index;
    let exact = score(idx, 0, &Query::parse("myorg hello")).unwrap();
    let other = score(idx, 0, &Query::parse("hello myorg")).unwrap();
    assert!(exact >= EXACT && other < EXACT, "{exact} {other}");
    // An organisation is named whole, not matched by a letter of it.
    let (hits, _) = everywhere(&cats, "myorg");
    assert_eq!(
        hits.len(),
        6,
        "every package of myorg, and the one naming it: {hits:?}"
    );
    assert!(everywhere(&cats, "myor zzz").0.is_empty());
}

/// Item 15: the tiers of one term (module rules): a name holding it, then a whole word
/// of the description (or the organisation's name), then a weak fuzzy name match, then a
/// description holding it inside a word.
#[test]
fn a_whole_word_in_the_description_outranks_a_weak_fuzzy_name() {
    let cats = two_orgs();
    let (hits, _) = everywhere(&cats, "greets");
    let at = |n: &str| {
        hits.iter()
            .position(|h| h == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    assert_eq!(hits[0], "tools/greetsd", "the name holds it: {hits:?}");
    assert!(
        at("myorg/hello") < at("myorg/go-release-notes-cli"),
        "{hits:?}"
    );
    assert!(at("myorg/py-hello-server") < at("myorg/go-release-notes-cli"));
    assert!(at("tools/greetsd") < at("myorg/hello"));
    // "greet" is inside "greets" and "greetings": no whole word, and every name holding
    // it ranks first.
    let (hits, _) = everywhere(&cats, "greet");
    assert_eq!(hits[..2], ["tools/greeter", "tools/greetsd"], "{hits:?}");
    // The tiers hold for terms of every length, against names built to score high.
    for n in 1..=12 {
        let term: String = ('a'..='l').take(n).collect();
        let (word, inside, holds) = (
            format!("the {term} word"),
            format!("x{term}x"),
            format!("x_{term}"),
        );
        let idx = SearchIndex::new([
            ("o", "A-B-C-D-E-F-G-H-I-J-K-L", "x"),
            ("o", "n", word.as_str()),
            ("o", holds.as_str(), "x"),
            ("o", "m", inside.as_str()),
        ]);
        let q = Query::parse(&term);
        let score = |id| score(&idx, id, &q);
        let (holds, word, inside) = (score(2), score(1), score(3));
        let weak = score(0).filter(|_| n > 1);
        assert!(holds > word, "{term}: {holds:?} {word:?}");
        assert!(word > weak, "{term}: {word:?} {weak:?}");
        if n > 1 {
            assert!(weak > Some(0) && inside < word, "{term}");
        }
    }
    // Whole words: at either end of the text, around punctuation, not inside a word.
    for (text, at, len, whole) in [
        ("greets the", 0, 6, true),
        ("it greets", 3, 6, true),
        ("(greets)", 1, 6, true),
        ("regreets", 2, 6, false),
        ("greetsx", 0, 6, false),
        ("a-b", 1, 1, true),
        ("café-x", 0, 5, true),
    ] {
        assert_eq!(whole_word(text.as_bytes(), at, len), whole, "{text}");
    }
    // A whole-word match always finds its first word in the text's word mask, whatever
    // punctuation the term holds; the mask spares reading most other descriptions.
    for (text, term) in [
        ("greets the organisation", "greets"),
        ("generates release-notes, fast", "release-notes"),
        ("see -x for help", "-x"),
        ("the café opens", "café"),
        ("(greets)", "greets)"),
    ] {
        let q = Query::parse(term);
        let t = &q.terms[0];
        assert!(t.text_word != 0, "{term}");
        assert!(
            word_mask(text.as_bytes()) & t.text_word != 0,
            "{term} in {text}"
        );
        let idx = SearchIndex::new([("o", "zz", text)]);
        assert_eq!(text_score(&idx, 0, t, true, 0), Some(t.word), "{term}");
    }
    assert_eq!(Query::parse("--").terms[0].text_word, 0);
}

/// Item 16: a query nothing matches gets the nearest names (case-insensitive, swaps of
/// neighbours count one), at most [`SUGGESTIONS`]; a query with results gets none.
#[test]
fn no_match_suggests_the_nearest_names() {
    let cats = two_orgs();
    for q in ["hlelo", "HLELO", "ehllo", "hellp"] {
        let (hits, near) = everywhere(&cats, q);
        assert!(hits.is_empty(), "{q}: {hits:?}");
        assert_eq!(near, ["myorg/hello", "tools/hello"], "{q}");
    }
    assert_eq!(everywhere(&cats, "myorg/hlelo").1, ["myorg/hello"]);
    assert_eq!(everywhere(&cats, "tols/hlelo").1, ["tools/hello"]);
    assert_eq!(everywhere(&cats, "myorg hlelo").1, ["myorg/hello"]);
    // Nearest first: one swap, then two substitutions (within a third of 7 characters).
    assert_eq!(
        everywhere(&cats, "greetre").1,
        ["tools/greeter", "tools/greetsd"]
    );
    assert!(everywhere(&cats, "qqqqqq").1.is_empty());
    assert!(everywhere(&cats, "hello").1.is_empty());
    assert!(everywhere(&cats, "a b c").1.is_empty());
    // At most a few, nearest first.
    let many: Vec<(String, String)> = (0..10)
        .map(|i| (format!("abcdef{i}"), String::new()))
        .collect();
    let rows: Vec<(&str, &str)> = many.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    let one = [org_catalog("acme", &rows)];
    let (_, near) = everywhere(&one, "abcedf5");
    assert_eq!(near.len(), SUGGESTIONS);
    assert_eq!(near[0], "acme/abcdef5");
    // The distance itself.
    let d = |a: &str, b: &str, max| {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        distance(&a, &b, max, &mut Vec::new())
    };
    assert_eq!(d("hlelo", "hello", 3), Some(1));
    assert_eq!(d("ca", "abc", 3), Some(3), "no edits inside a swap");
    assert_eq!(d("kitten", "sitting", 3), Some(3));
    assert_eq!(d("kitten", "sitting", 2), None);
    assert_eq!(d("", "ab", 2), Some(2));
    assert_eq!(d("café", "cafe", 1), Some(1));
}

/// Results of one score and name length come in the same order in every face: by name,
/// then by organisation.
#[test]
fn ties_are_ordered_alike_in_every_face() {
    let cats = vec![
        org_catalog("alpha", &[("zz", "a tool"), ("mm", "a tool")]),
        org_catalog("beta", &[("yy", "a tool"), ("mm", "a tool")]),
    ];
    let (hits, _) = everywhere(&cats, "tool");
    assert_eq!(hits, ["alpha/mm", "beta/mm", "beta/yy", "alpha/zz"]);
}

fn filter() -> Filter {
    let rows = summaries(&[
        ("myorg", "hello", "says hello"),
        ("myorg", "jq-tools", "json helpers"),
        ("myorg", "json-check", "validates documents"),
        ("myorg", "help2man", "manual pages"),
    ]);
    Filter::new(Arc::new(SearchIndex::of_packages(&rows)))
}

#[test]
fn empty_query_lists_everything_in_order() {
    let f = filter();
    assert_eq!(f.total(), 4);
    assert_eq!(
        f.hits().iter().map(|h| h.id).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn filters_ranks_and_reports_indices() {
    let mut f = filter();
    f.set_query("hel");
    let ids: Vec<_> = f.hits().iter().map(|h| h.id).collect();
    assert_eq!(ids[..2], [0, 3], "name matches first");
    assert_eq!(ids[2], 1, "then the description match (json helpers)");
    assert_eq!(f.hits()[0].indices, vec![6, 7, 8]);
    assert!(
        f.hits()[2].indices.is_empty(),
        "nothing to highlight in the name"
    );
    f.set_query("jsc");
    assert_eq!(f.hits()[0].id, 2);
    assert_eq!(f.hits()[0].indices, vec![6, 7, 11]);
}

#[test]
fn the_org_is_matched_only_when_the_query_names_it() {
    let mut f = filter();
    f.set_query("m");
    assert_eq!(
        f.total(),
        2,
        "help2man by name, json-check by description; not the org of all four"
    );
    f.set_query("m/h");
    assert_eq!(f.total(), 3, "org part matches myorg, name part has an h");
    assert_eq!(f.hits()[0].indices, [0, 6]);
    f.set_query("x/h");
    assert_eq!(f.total(), 0, "no org matches x");
    f.set_query("myorg/");
    assert_eq!(f.total(), 4);
    assert_eq!(f.hits()[0].indices, [0, 1, 2, 3, 4]);
}

#[test]
fn narrowing_equals_a_fresh_search() {
    let mut a = filter();
    for q in ["j", "js", "jso", "json", "json ", "json c"] {
        a.set_query(q);
        let mut b = filter();
        b.set_query(q);
        assert_eq!(a.hits(), b.hits(), "{q:?}");
        assert_eq!(a.total(), b.total(), "{q:?}");
    }
    a.set_query("j");
    assert_eq!(a.total(), 2, "widening searches everything again");
    a.set_query("");
    assert_eq!(a.total(), 4);
}

#[test]
fn every_term_must_match() {
    let mut f = filter();
    f.set_query("json check");
    assert_eq!(f.hits().iter().map(|h| h.id).collect::<Vec<_>>(), [2]);
    f.set_query("json zzz");
    assert_eq!(f.total(), 0);
}
