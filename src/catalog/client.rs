//! HTTP client for the `pubdeck serve` catalog service (reqwest + rustls).
//!
//! The token is sent as `Authorization: Bearer …` and never appears in errors, logs or `Debug`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::types::*;
use super::validate::validate_version;
use super::validate::{validate_revision, validate_store_url};
use super::{
    AuthProblem, Catalog, CatalogError, CatalogResult, MAX_SEARCH_LIMIT, validate_org_name,
    validate_package_name, validate_user_name,
};

/// A client of the catalog service. Cheap to clone.
#[derive(Clone)]
pub struct CatalogClient {
    base: Url,
    token: Option<Arc<str>>,
    http: reqwest::Client,
    /// The largest answer read (see [`MAX_BODY`]).
    max_body: usize,
}

impl std::fmt::Debug for CatalogClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct UsersBody {
    users: Vec<String>,
}

#[derive(serde::Deserialize)]
struct WhoamiBody {
    user: String,
}

#[derive(serde::Deserialize)]
struct CatalogsBody {
    catalogs: Vec<CatalogInfo>,
}

#[derive(serde::Deserialize)]
struct PackagesBody {
    packages: Vec<PackageSummary>,
}

#[derive(serde::Deserialize)]
struct CheckBody {
    build: Option<BuildRecord>,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(serde::Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    message: String,
    /// The typed reason of a 403 or 404 (`CatalogError::reason`), and a scope refusal's
    /// scopes.
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    have: Option<String>,
    #[serde(default)]
    need: Option<String>,
}

#[derive(serde::Deserialize)]
struct AuditBody {
    entries: Vec<AuditEntry>,
}

/// What the service answers is checked again here, as the service checked it on the way in:
/// a store URL or key that reaches a store, `nix.conf` or a terminal must follow the rules
/// whatever wrote it into the service's database. The store URL comes back canonical.
trait Answer: Sized {
    fn checked(self) -> CatalogResult<Self>;
}

fn answered_store_url(url: &str) -> CatalogResult<String> {
    super::validate::canonical_store_url(url).map_err(|e| {
        CatalogError::Internal(format!("the catalog answered an invalid store URL: {e}"))
    })
}

fn answered_keys(keys: &[String]) -> CatalogResult<()> {
    for k in keys {
        super::parse_public_key_text(k).map_err(|e| {
            CatalogError::Internal(format!("the catalog answered an invalid key: {e}"))
        })?;
    }
    Ok(())
}

impl Answer for CatalogInfo {
    fn checked(mut self) -> CatalogResult<Self> {
        validate_org_name(&self.name)?;
        self.store_url = answered_store_url(&self.store_url)?;
        answered_keys(&self.keys)?;
        Ok(self)
    }
}

impl Answer for PackageDetail {
    fn checked(mut self) -> CatalogResult<Self> {
        validate_org_name(&self.org)?;
        self.store_url = answered_store_url(&self.store_url)?;
        answered_keys(&self.keys)?;
        Ok(self)
    }
}

impl Answer for LivePaths {
    fn checked(mut self) -> CatalogResult<Self> {
        self.store_url = answered_store_url(&self.store_url)?;
        Ok(self)
    }
}

/// The time in a 401 message "… expired at T" / "… revoked at T".
fn time_in(message: &str) -> String {
    message.rsplit(" at ").next().unwrap_or("").to_string()
}

impl CatalogClient {
    /// A client for the service at `base_url` (`http(s)://host:port[/prefix]`).
    pub fn new(base_url: &str, token: Option<String>) -> CatalogResult<CatalogClient> {
        let mut base = Url::parse(base_url).map_err(|_| {
            CatalogError::BadRequest(format!("invalid catalog URL {}", super::quote(base_url)))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(CatalogError::BadRequest(format!(
                "catalog URL {} must start with http:// or https://",
                super::quote(base_url)
            )));
        }
        if base.password().is_some() || !base.username().is_empty() {
            return Err(CatalogError::BadRequest(
                "the catalog URL must not contain credentials; use PUBDECK_TOKEN".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pubdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CatalogError::Internal(format!("cannot build the HTTP client: {e}")))?;
        let token = token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Arc::from(t.trim()));
        Ok(CatalogClient {
            base,
            token,
            http,
            max_body: MAX_BODY,
        })
    }

    /// This client refusing answers larger than `bytes` (default 256 MiB).
    pub fn with_body_limit(mut self, bytes: usize) -> CatalogClient {
        self.max_body = bytes;
        self
    }

    /// The service URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut s) = url.path_segments_mut() {
            s.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let req = self.http.request(method, self.url(segments));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> CatalogError {
        CatalogError::Unreachable {
            url: self.base.as_str().trim_end_matches('/').to_string(),
            reason: failure_reason(e),
        }
    }

    async fn send_raw(&self, req: RequestBuilder) -> CatalogResult<reqwest::Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(resp);
        }
        let text = read_bounded(resp, MAX_ERROR_BODY)
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .ok();
        let (code, message) = body.as_ref().map_or_else(
            || (String::new(), format!("the catalog answered {status}")),
            |b| (b.code.clone(), b.message.clone()),
        );
        let reason = body
            .as_ref()
            .and_then(|b| b.reason.as_deref())
            .unwrap_or("");
        let scope =
            |f: fn(&ErrorInner) -> &Option<String>| body.as_ref().and_then(|b| f(b).as_deref());
        Err(match status {
            StatusCode::UNAUTHORIZED => CatalogError::Unauthorized(match code.as_str() {
                "token_expired" => AuthProblem::Expired(time_in(&message)),
                "token_revoked" => AuthProblem::Revoked(time_in(&message)),
                _ => AuthProblem::Rejected,
            }),
            StatusCode::FORBIDDEN => CatalogError::forbidden(
                super::Refusal::parse(reason, scope(|b| &b.have), scope(|b| &b.need)),
                message,
            ),
            StatusCode::NOT_FOUND => {
                CatalogError::not_found(super::Missing::parse(reason), message)
            }
            StatusCode::CONFLICT => CatalogError::Conflict(message),
            StatusCode::SERVICE_UNAVAILABLE => CatalogError::Unavailable(message),
            s if s.is_client_error() => CatalogError::BadRequest(message),
            _ => CatalogError::Internal(message),
        })
    }

    async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> CatalogResult<T> {
        let resp = self.send_raw(req).await?;
        self.json(resp).await
    }

    /// The JSON body of `resp`, read up to [`MAX_BODY`].
    async fn json<T: DeserializeOwned>(&self, resp: reqwest::Response) -> CatalogResult<T> {
        let unexpected = |reason: String| {
            CatalogError::Internal(format!("unexpected answer from {}: {reason}", self.base))
        };
        let body = read_bounded(resp, self.max_body)
            .await
            .map_err(unexpected)?;
        serde_json::from_slice(&body).map_err(|e| unexpected(e.to_string()))
    }
}

/// The largest answer read from a catalog service (a listing of a million packages is about
/// 150 MB); past it the answer is refused rather than held.
const MAX_BODY: usize = 256 << 20;
/// The most of an error answer read (its message is a sentence).
const MAX_ERROR_BODY: usize = 64 << 10;

/// The body of `resp`, or why not: more than `max` bytes (by its length or as it streams) or
/// a broken read.
async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    let too_big = || format!("the answer is larger than the {max} bytes this client reads");
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize).min(max));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Catalog for CatalogClient {
    async fn whoami(&self) -> CatalogResult<String> {
        let body: WhoamiBody = self.send(self.request(Method::GET, &["whoami"])).await?;
        Ok(body.user)
    }

    async fn create_catalog(
        &self,
        org: &str,
        store_url: &str,
        keys: &[String],
    ) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        validate_store_url(store_url)?;
        let body = CreateCatalogRequest {
            name: org.to_string(),
            store_url: store_url.to_string(),
            keys: keys.to_vec(),
        };
        self.send::<CatalogInfo>(self.request(Method::POST, &["catalogs"]).json(&body))
            .await?
            .checked()
    }

    async fn catalog(&self, org: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        self.send::<CatalogInfo>(self.request(Method::GET, &["catalogs", org]))
            .await?
            .checked()
    }

    async fn catalogs(&self) -> CatalogResult<Vec<CatalogInfo>> {
        let body: CatalogsBody = self.send(self.request(Method::GET, &["catalogs"])).await?;
        body.catalogs.into_iter().map(Answer::checked).collect()
    }

    async fn set_store(&self, org: &str, store_url: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        validate_store_url(store_url)?;
        let req = self
            .request(Method::PUT, &["catalogs", org, "store"])
            .json(&SetStoreRequest {
                store_url: store_url.to_string(),
            });
        self.send::<CatalogInfo>(req).await?.checked()
    }

    async fn add_key(&self, org: &str, public_key: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        super::parse_public_key(public_key)?;
        let req = self
            .request(Method::POST, &["catalogs", org, "keys"])
            .json(&AddKeyRequest {
                key: public_key.trim().to_string(),
            });
        self.send::<CatalogInfo>(req).await?.checked()
    }

    async fn allow(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        validate_org_name(org)?;
        validate_user_name(user)?;
        let req = self.request(Method::PUT, &["catalogs", org, "allowlist", user]);
        Ok(self.send::<UsersBody>(req).await?.users)
    }

    async fn revoke(&self, org: &str, user: &str) -> CatalogResult<Vec<String>> {
        validate_org_name(org)?;
        validate_user_name(user)?;
        let req = self.request(Method::DELETE, &["catalogs", org, "allowlist", user]);
        Ok(self.send::<UsersBody>(req).await?.users)
    }

    async fn allowlist(&self, org: &str) -> CatalogResult<Vec<String>> {
        validate_org_name(org)?;
        let req = self.request(Method::GET, &["catalogs", org, "allowlist"]);
        Ok(self.send::<UsersBody>(req).await?.users)
    }

    async fn register_build(&self, build: &NewBuild) -> CatalogResult<RegisterOutcome> {
        super::validate::validate_new_build(build)?;
        let req = self
            .request(Method::POST, &["catalogs", &build.org, "builds"])
            .json(build);
        self.send(req).await
    }

    async fn register_builds(&self, org: &str, builds: &[NewBuild]) -> CatalogResult<BatchOutcome> {
        validate_org_name(org)?;
        let body = RegisterBatchRequest {
            builds: builds.to_vec(),
        };
        let req = self
            .request(Method::POST, &["catalogs", org, "builds", "batch"])
            .json(&body);
        self.send(req).await
    }

    async fn check_build(&self, query: &CheckBuild) -> CatalogResult<Option<BuildRecord>> {
        validate_org_name(&query.org)?;
        validate_package_name(&query.name)?;
        validate_revision(&query.revision)?;
        let params = CheckBuildQuery {
            name: query.name.clone(),
            revision: query.revision.clone(),
            system: query.system.clone(),
        };
        let req = self
            .request(Method::GET, &["catalogs", &query.org, "check-build"])
            .query(&params);
        Ok(self.send::<CheckBody>(req).await?.build)
    }

    async fn list_packages(&self, if_none_match: Option<&str>) -> CatalogResult<Listing> {
        let mut req = self.request(Method::GET, &["packages"]);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let resp = self.send_raw(req).await?;
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp.status() == StatusCode::NOT_MODIFIED {
            return Ok(Listing::NotModified {
                etag: etag
                    .or(if_none_match.map(str::to_string))
                    .unwrap_or_default(),
            });
        }
        let body: PackagesBody = self.json(resp).await?;
        Ok(Listing::Packages {
            etag: etag.unwrap_or_default(),
            packages: body.packages,
        })
    }

    async fn list_changes(&self, known: &[ListedCatalog]) -> CatalogResult<ListingChanges> {
        let body = ListChangesRequest {
            known: known.to_vec(),
        };
        self.send(
            self.request(Method::POST, &["packages", "changes"])
                .json(&body),
        )
        .await
    }

    async fn search_answer(&self, query: &str, limit: usize) -> CatalogResult<SearchAnswer> {
        let params = SearchQuery {
            q: query.to_string(),
            limit: Some(limit.clamp(1, MAX_SEARCH_LIMIT)),
        };
        let req = self.request(Method::GET, &["search"]).query(&params);
        let mut answer = self.send::<SearchAnswer>(req).await?;
        // Suggestions are package names, or nothing: a face prints them.
        answer
            .suggestions
            .retain(|s| super::parse_package_ref(s).is_ok());
        answer.suggestions.truncate(super::search::SUGGESTIONS);
        Ok(answer)
    }

    async fn show(&self, org: &str, package: &str) -> CatalogResult<PackageDetail> {
        validate_org_name(org)?;
        validate_package_name(package)?;
        self.send::<PackageDetail>(
            self.request(Method::GET, &["catalogs", org, "packages", package]),
        )
        .await?
        .checked()
    }

    async fn identity(&self) -> CatalogResult<Identity> {
        self.send(self.request(Method::GET, &["whoami"])).await
    }

    async fn yank(
        &self,
        org: &str,
        package: &str,
        version: &str,
        yanked: bool,
    ) -> CatalogResult<YankOutcome> {
        validate_org_name(org)?;
        validate_package_name(package)?;
        validate_version(version)?;
        let method = if yanked { Method::PUT } else { Method::DELETE };
        let path = [
            "catalogs", org, "packages", package, "versions", version, "yank",
        ];
        self.send(self.request(method, &path)).await
    }

    async fn remove_key(&self, org: &str, key_name: &str) -> CatalogResult<CatalogInfo> {
        validate_org_name(org)?;
        self.send::<CatalogInfo>(self.request(Method::DELETE, &["catalogs", org, "keys", key_name]))
            .await?
            .checked()
    }

    async fn audit_log(&self, org: &str, limit: usize) -> CatalogResult<Vec<AuditEntry>> {
        validate_org_name(org)?;
        let limit = limit.to_string();
        let req = self
            .request(Method::GET, &["catalogs", org, "log"])
            .query(&[("limit", limit.as_str())]);
        Ok(self.send::<AuditBody>(req).await?.entries)
    }

    async fn live_paths(&self, org: &str) -> CatalogResult<LivePaths> {
        validate_org_name(org)?;
        self.send::<LivePaths>(self.request(Method::GET, &["catalogs", org, "live-paths"]))
            .await?
            .checked()
    }

    async fn record(&self, org: &str, request: &RecordRequest) -> CatalogResult<()> {
        validate_org_name(org)?;
        let req = self
            .request(Method::POST, &["catalogs", org, "log"])
            .json(request);
        self.send_raw(req).await?;
        Ok(())
    }
}

/// Why an HTTP exchange failed, in a few words: timed out, connection failed, or the innermost
/// cause.
pub(crate) fn failure_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        let mut last = String::new();
        while let Some(s) = source {
            last = s.to_string();
            source = s.source();
        }
        last
    }
}
