//! The catalog service against hostile or careless clients, on loopback: half-sent request
//! heads and idle connections, and error answers that are always JSON; and the client against
//! a hostile service (answers past its read limit).

#[path = "common/catalog_support.rs"]
mod catalog_support;

use std::time::{Duration, Instant};

use catalog_support::{Fixture, Kind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn service() -> Fixture {
    Fixture::start(Kind::SqliteService)
        .await
        .expect("SQLite service")
}

/// Sends raw bytes and reads the whole answer (the request asks to close).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_do_not_take_the_service_down() {
    let fx = service().await;
    let addr = fx.addr.unwrap();
    // 300 clients that start a request head and never finish it, without a token.
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /v1/search?q=x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        held.push(s);
    }
    // The service still answers, at once.
    let t = Instant::now();
    let health = reqwest::Client::new()
        .get(format!("http://{addr}/v1/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(health.status(), 200);
    assert!(took < Duration::from_secs(1), "health took {took:?}");
    // And it drops every half-sent request within 30 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (i, mut s) in held.into_iter().enumerate() {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("connection {i} still open after 30 s"));
        // Closed (EOF or reset); hyper sends no response for a timed-out head.
        assert!(matches!(n, Ok(0) | Err(_)), "connection {i}: {n:?}");
    }
    // An idle keep-alive connection is closed too.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
    fx.finish().await;
}

fn json_body(answer: &str) -> serde_json::Value {
    let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "not JSON: {head}"
    );
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_body_is_json() {
    let fx = service().await;
    let addr = fx.addr.unwrap();
    let token = fx.add_user("alice").await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            "404",
            "not_found",
        ),
        (
            "DELETE /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            "405",
            "method_not_allowed",
        ),
        (
            format!("PATCH /v1/catalogs HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
            "405",
            "method_not_allowed",
        ),
        (
            "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
            "401",
            "unauthorized",
        ),
        (
            format!(
                "POST /v1/catalogs HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 2000000\r\nConnection: close\r\n\r\n"
            ),
            "413",
            "",
        ),
        (
            format!(
                "POST /v1/catalogs HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{{oops"
            ),
            "400",
            "",
        ),
    ];
    for (request, status, code) in cases {
        let answer = raw(addr, request.as_bytes()).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?} → {answer}"
        );
        let v = json_body(&answer);
        let got = v["error"]["code"].as_str().unwrap_or_default();
        assert!(!got.is_empty(), "{answer}");
        if !code.is_empty() {
            assert_eq!(got, code, "{answer}");
        }
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // 405 keeps the Allow header.
    let answer = raw(
        addr,
        b"DELETE /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.to_ascii_lowercase().contains("allow: get"),
        "{answer}"
    );
    fx.finish().await;
}

/// A one-connection HTTP server on 127.0.0.1 that answers the first request with `head`
/// and then `body_bytes` bytes of body (in 64 KiB writes; it stops when the client goes).
async fn hostile_server(head: String, body_bytes: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 16 << 10];
        let _ = s.read(&mut buf).await;
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent < body_bytes {
            let n = chunk.len().min(body_bytes - sent);
            if s.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            sent += n;
        }
    });
    addr
}

/// Answers from a catalog service are read up to a limit: a declared length past it is
/// refused before reading, a body that streams past it is cut off, and an error answer is
/// read only as far as its message could go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_larger_than_the_limit_are_refused() {
    use pubdeck::catalog::{Catalog, CatalogClient, CatalogError};
    let client = |addr: std::net::SocketAddr| {
        CatalogClient::new(&format!("http://{addr}"), Some("t".into()))
            .unwrap()
            .with_body_limit(1 << 20)
    };
    let big = |err: CatalogError| {
        assert!(
            matches!(&err, CatalogError::Internal(m) if m.contains("larger than the 1048576 bytes")),
            "{err:?}"
        );
    };

    // Declared: 10 GB.
    let addr = hostile_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
            .into(),
        64 << 10,
    )
    .await;
    let t = Instant::now();
    big(client(addr).whoami().await.unwrap_err());
    assert!(t.elapsed() < Duration::from_secs(10));

    // Undeclared (read to the end of the connection): 8 MiB streamed, cut off at 1 MiB.
    let addr = hostile_server(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".into(),
        8 << 20,
    )
    .await;
    big(client(addr).search("x", 5).await.unwrap_err());

    // An error answer of 8 MiB: the status decides, the body is not held.
    let addr = hostile_server(
        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n".into(),
        8 << 20,
    )
    .await;
    let err = client(addr).whoami().await.unwrap_err();
    assert!(
        matches!(&err, CatalogError::Internal(m) if m.contains("500")),
        "{err:?}"
    );
}

/// A TCP proxy on 127.0.0.1 in front of PostgreSQL that the test can cut (its port closed, so
/// connections are refused as by a stopped server, and every proxied connection dropped)
/// and restore on the same port.
struct DbProxy {
    port: u16,
    target: std::net::SocketAddr,
    accept: Option<tokio::task::JoinHandle<()>>,
    pipes: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl DbProxy {
    async fn start(target: std::net::SocketAddr) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = DbProxy {
            port: listener.local_addr().unwrap().port(),
            target,
            accept: None,
            pipes: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (target, pipes) = (self.target, std::sync::Arc::clone(&self.pipes));
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                pipes.lock().unwrap().push(pipe);
            }
        }));
    }

    /// The database goes away: the port refuses connections and open ones are dropped.
    async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let pipes: Vec<_> = self.pipes.lock().unwrap().drain(..).collect();
        for pipe in pipes {
            pipe.abort();
            let _ = pipe.await;
        }
    }

    /// The database is back on the same port.
    async fn restore(&mut self) {
        for attempt in 0.. {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.serve(listener),
                Err(e) if attempt < 50 => {
                    eprintln!("rebinding port {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot listen on port {} again: {e}", self.port),
            }
        }
    }
}

/// With its PostgreSQL gone, the service answers at once with 503 and `Retry-After` (not a
/// 30 s wait and 408), readiness says 503 while liveness stays 200, and both come back with
/// the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_with_retry_after_and_not_ready() {
    // The fixture decides whether PostgreSQL runs here, and makes the database.
    let Some(fx) = Fixture::start(Kind::PostgresService).await else {
        return;
    };
    let token = fx.add_user("alice").await;
    let direct = reqwest::Url::parse(&fx.db_url).unwrap();
    let host = direct.host_str().unwrap().to_string();
    let target = tokio::net::lookup_host((host.as_str(), direct.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let mut proxy = DbProxy::start(target).await;
    let mut proxied = direct.clone();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(proxy.port)).unwrap();
    let server = pubdeck::server::Server::bind("127.0.0.1:0".parse().unwrap(), proxied.as_str())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let get = |path: &str, auth: bool| {
        let req = http.get(format!("{base}{path}"));
        if auth { req.bearer_auth(&token) } else { req }.send()
    };

    // Up: ready, and serving.
    let ready = get("/v1/ready", false).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    assert_eq!(get("/v1/whoami", true).await.unwrap().status(), 200);

    proxy.cut().await;
    for path in ["/v1/whoami", "/v1/catalogs", "/v1/search?q=x"] {
        let resp = get(path, true).await.unwrap();
        assert_eq!(resp.status(), 503, "{path}");
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        assert!(retry.is_some_and(|s| s > 0), "{path}: {:?}", resp.headers());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("database"), "{path}: {message}");
    }
    let ready = get("/v1/ready", false).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "unavailable"
    );
    // Liveness does not depend on the database.
    assert_eq!(get("/v1/health", false).await.unwrap().status(), 200);

    proxy.restore().await;
    let mut back = false;
    for _ in 0..100 {
        if get("/v1/ready", false).await.unwrap().status() == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "not ready again after the database came back");
    assert_eq!(get("/v1/whoami", true).await.unwrap().status(), 200);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    proxy.cut().await;
    fx.finish().await;
}

/// On SQLite the service is ready as soon as it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_on_sqlite() {
    let fx = service().await;
    let resp = reqwest::get(format!("{}/v1/ready", fx.base_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["status"],
        "ready"
    );
    fx.finish().await;
}
