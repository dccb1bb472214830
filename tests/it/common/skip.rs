//! How a test that cannot run here says so.

/// A test that cannot run here: prints one line saying why and returns, or fails the test
/// when it must run: under `CI=true`, or when one of `require_vars` is `1`.
pub fn skip_or_fail(test: &str, why: &str, require_vars: &[&str]) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let required = require_vars
        .iter()
        .find(|v| std::env::var(v).as_deref() == Ok("1"));
    if ci || required.is_some() {
        let by = required.map_or("CI=true".to_string(), |v| format!("{v}=1"));
        panic!("{test} cannot run: {why}; it must run here ({by})");
    }
    eprintln!("SKIP {test}: {why}");
}
