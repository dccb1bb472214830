//! The catalog `pubdeck serve --upstream URL` forwards to: everything that is not about
//! pubdeck's orgs (base packages, other catalogs, routes pubdeck does not serve).
//!
//! Bounded: a connection within [`CONNECT_TIMEOUT`], a whole exchange within
//! [`EXCHANGE_TIMEOUT`], at most [`MAX_ANSWER_BYTES`] read, one retry after a connection
//! failure or a 502/503/504. No header of the caller's request is sent on (least of all its
//! `Authorization`: pubdeck's tokens are not the upstream's); only the method, the path and
//! query, the body and its content type.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;

/// Longest the upstream may take to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one exchange (request and whole answer) may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Most bytes of one answer read; a longer answer is cut off.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Attempts of one exchange (the first and one retry).
pub const ATTEMPTS: usize = 2;

/// Why the upstream gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream catalog {url} did not answer within {} s", .after.as_secs())]
    Timeout { url: String, after: Duration },
    #[error("the upstream catalog {url} sent more than {} MiB; its answer was cut off", .limit / (1024 * 1024))]
    TooLarge { url: String, limit: usize },
    #[error("cannot reach the upstream catalog {url} ({reason})")]
    Unreachable { url: String, reason: String },
    #[error(
        "the upstream catalog {url} answered {status} with a body that is not the expected JSON"
    )]
    BadAnswer { url: String, status: u16 },
}

/// An answer as the upstream gave it.
#[derive(Debug, Clone)]
pub struct Forwarded {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The upstream catalog.
#[derive(Debug, Clone)]
pub struct Upstream {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl Upstream {
    /// An upstream at `base` (`http://` or `https://`, no credentials).
    pub fn new(base: &str) -> Result<Upstream, String> {
        Self::with_timeout(base, EXCHANGE_TIMEOUT)
    }

    /// [`Upstream::new`] with another bound on one exchange (tests).
    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Upstream, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("upstream URL {base:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("upstream URL {base:?} must be http:// or https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the upstream URL must not hold credentials".into());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("upstream client: {e}"))?;
        Ok(Upstream {
            base: base.trim_end_matches('/').to_string(),
            http,
            timeout,
        })
    }

    /// The upstream's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sends `method path_and_query` (with `body` of `content_type`) and reads the answer,
    /// bounded as the module says.
    pub async fn forward(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<(Bytes, String)>,
    ) -> Result<Forwarded, UpstreamError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| {
            UpstreamError::Unreachable {
                url: self.base.clone(),
                reason: "unsupported method".into(),
            }
        })?;
        let url = format!("{}{path_and_query}", self.base);
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut req = self.http.request(method.clone(), &url);
            if let Some((bytes, ct)) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct.as_str())
                    .body(bytes.clone());
            }
            let exchange = async {
                let resp = req.send().await.map_err(|e| UpstreamError::Unreachable {
                    url: self.base.clone(),
                    reason: crate::catalog::client::failure_reason(&e),
                })?;
                let status = resp.status().as_u16();
                let content_type = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if resp
                    .content_length()
                    .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
                {
                    return Err(self.too_large());
                }
                let mut body = Vec::new();
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| UpstreamError::Unreachable {
                        url: self.base.clone(),
                        reason: crate::catalog::client::failure_reason(&e),
                    })?;
                    if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(self.too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Forwarded {
                    status,
                    content_type,
                    body: Bytes::from(body),
                })
            };
            let outcome = match tokio::time::timeout(self.timeout, exchange).await {
                Ok(r) => r,
                Err(_) => Err(UpstreamError::Timeout {
                    url: self.base.clone(),
                    after: self.timeout,
                }),
            };
            match outcome {
                Ok(f) if matches!(f.status, 502..=504) && attempt + 1 < ATTEMPTS => {
                    last = Some(Ok(f));
                }
                Err(e @ UpstreamError::Unreachable { .. }) if attempt + 1 < ATTEMPTS => {
                    last = Some(Err(e));
                }
                done => return done,
            }
        }
        last.unwrap_or_else(|| {
            Err(UpstreamError::Unreachable {
                url: self.base.clone(),
                reason: "no attempt".into(),
            })
        })
    }

    /// [`Upstream::forward`] of a JSON request, its answer parsed as `T` (status and value).
    pub async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, T), UpstreamError> {
        let body = body.map(|b| {
            (
                Bytes::from(serde_json::to_vec(b).unwrap_or_default()),
                "application/json".to_string(),
            )
        });
        let f = self.forward(method, path_and_query, body).await?;
        let value = serde_json::from_slice(&f.body).map_err(|_| UpstreamError::BadAnswer {
            url: self.base.clone(),
            status: f.status,
        })?;
        Ok((f.status, value))
    }

    /// `Ok` for a 200 answer; any other status of a JSON exchange is not the expected answer.
    pub fn expect_ok(&self, status: u16) -> Result<(), UpstreamError> {
        if status == 200 {
            Ok(())
        } else {
            Err(UpstreamError::BadAnswer {
                url: self.base.clone(),
                status,
            })
        }
    }

    fn too_large(&self) -> UpstreamError {
        UpstreamError::TooLarge {
            url: self.base.clone(),
            limit: MAX_ANSWER_BYTES,
        }
    }
}
