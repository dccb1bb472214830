//! URLs as they may be shown: parsed, with every secret they can carry taken out.

use super::Endpoint;

/// A URL as it may be shown (`config show`, logs, messages): parsed, never pattern-matched.
/// The password becomes `***` (and a user name without one, often a token), the fragment goes, and so does the value of every
/// query parameter but the few that carry no secret (`region`, `profile`, `scheme`, `mode`,
/// `sslmode`), while an `endpoint` parameter is itself shown as a URL by this rule, however it
/// is encoded. Text that does not parse as a URL is not shown at all.
pub fn redacted_url(input: &str) -> String {
    redacted(input, false)
}

/// [`redacted_url`]; `nested` (an endpoint inside a store URL, whose user name is an access
/// key id) hides the user name too.
fn redacted(input: &str, nested: bool) -> String {
    let Ok(mut url) = reqwest::Url::parse(input.trim()) else {
        return "(not a valid URL; not shown)".into();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if !url.username().is_empty() && (nested || url.password().is_none()) {
        // A user name alone is often a token (https://ghp_…@host).
        let _ = url.set_username("***");
    }
    url.set_fragment(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let shown = match &*k {
                    "region" | "profile" | "scheme" | "mode" | "sslmode" => v.into_owned(),
                    "endpoint" => match Endpoint::parse(&v) {
                        Ok(ep) => ep.to_string(),
                        Err(_) if v.contains("://") => redacted(&v, true),
                        Err(_) => "***".into(),
                    },
                    _ => "***".into(),
                };
                (k.into_owned(), shown)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    crate::text::terminal(url.as_str()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_by_parsing() {
        for (url, secrets) in [
            ("postgres://u:secret@127.0.0.1/db", &["secret"][..]),
            (
                "postgres://u@h/db?sslmode=require&password=secret",
                &["secret"],
            ),
            (
                "https://cat.example/?access_token=secret#frag",
                &["secret", "frag"],
            ),
            ("https://ghp_token@github.com/o/r", &["ghp_token"]),
            (
                "s3://bkt?endpoint=http://AKIA:secret@h:9",
                &["AKIA", "secret"],
            ),
            (
                "s3://bkt?endpoint=http%3A%2F%2FAKIA%3Asecret%40h%3A9",
                &["AKIA", "secret"],
            ),
            (
                "s3://bkt?endpoint=http%253A%252F%252FAKIA%253Asecret%2540h",
                &["AKIA", "secret"],
            ),
            ("not a url secret", &["secret"]),
        ] {
            let shown = redacted_url(url);
            for s in secrets {
                assert!(!shown.contains(s), "{url} -> {shown}");
            }
        }
        assert_eq!(
            redacted_url("s3://bkt?endpoint=http://127.0.0.1:9000&region=us-east-1"),
            "s3://bkt?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1"
        );
        assert_eq!(
            redacted_url("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080/"
        );
    }
}
