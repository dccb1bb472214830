//! Retries with exponential backoff and full jitter.
//!
//! Which errors are worth retrying is decided by the error type (`Transient`); the
//! S3 backend classifies 5xx, 429, throttling codes and connection/timeout failures
//! as transient and everything else (4xx, auth) as final.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::progress::{Progress, ProgressSink};

/// How often and how patiently to retry a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// Backoff cap of the first retry; doubles each attempt.
    pub base_delay: Duration,
    /// Largest backoff cap.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: uniform in `[0, min(max_delay, base_delay * 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let cap = self.base_delay.saturating_mul(exp).min(self.max_delay);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=millis))
    }
}

/// Why an error may go away when retried.
#[derive(Debug, Clone)]
pub(crate) struct RetryHint {
    pub reason: String,
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

/// Errors that know whether they are transient.
pub(crate) trait Transient {
    /// `Some` when a retry could succeed.
    fn retry_hint(&self) -> Option<RetryHint>;
}

/// Longest `Retry-After` we honour; beyond it the user is better served by an error.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Run `op(attempt)` until it succeeds, fails for good, or attempts run out.
/// Each retry emits a `Progress::Retry` event on `sink`.
pub(crate) async fn with_retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    sink: &ProgressSink,
    part: Option<u32>,
    mut op: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(err) => {
                let Some(hint) = err.retry_hint() else {
                    return Err(err);
                };
                if attempt >= policy.max_attempts.max(1) {
                    return Err(err);
                }
                let delay = match hint.retry_after {
                    Some(d) => d.min(MAX_RETRY_AFTER),
                    None => policy.backoff(attempt),
                };
                tracing::debug!(?part, attempt, ?delay, reason = %hint.reason, "retrying");
                sink.send(Progress::Retry {
                    part,
                    attempt,
                    delay,
                    reason: hint.reason,
                });
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// Parse a `Retry-After` header given in seconds (HTTP dates are ignored).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E(bool);
    impl Transient for E {
        fn retry_hint(&self) -> Option<RetryHint> {
            self.0.then(|| RetryHint {
                reason: "boom".into(),
                retry_after: None,
            })
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn backoff_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            assert!(p.backoff(attempt) <= p.max_delay);
        }
        assert!(p.backoff(1) <= p.base_delay);
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let (sink, mut rx) = ProgressSink::channel();
        let r: Result<u32, E> = with_retry(&fast(), &sink, Some(3), |a| async move {
            if a < 3 { Err(E(true)) } else { Ok(a) }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
        let mut retries = 0;
        while let Ok(ev) = rx.try_recv() {
            assert!(matches!(ev, Progress::Retry { part: Some(3), .. }));
            retries += 1;
        }
        assert_eq!(retries, 2);
    }

    #[tokio::test]
    async fn fatal_is_not_retried_and_attempts_are_bounded() {
        let mut calls = 0;
        let r: Result<(), E> = with_retry(&fast(), &ProgressSink::none(), None, |_| {
            calls += 1;
            async { Err(E(false)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: Result<(), E> = with_retry(&fast(), &ProgressSink::none(), None, |_| {
            calls += 1;
            async { Err(E(true)) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 4);
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
