//! The catalog service against hostile or careless clients, on loopback: half-sent request
//! heads and idle connections, and error answers that are always JSON; and the client against
//! a hostile service (answers past its read limit).

use crate::common::catalog_support;

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

/// A service on a fresh SQLite file with these limits; stop it with the sender.
async fn limited_service(
    limits: pubdeck::server::Limits,
) -> (
    tempfile::TempDir,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", tmp.path().join("service.sqlite").display());
    let server = pubdeck::server::Server::bind("127.0.0.1:0".parse().unwrap(), &db)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_with(limits, async move {
        let _ = stopped.await;
    }));
    (tmp, addr, stop, task)
}

/// A client at `from` (a loopback address) that keeps `count` half-open connections to
/// `addr` (each connects and sends nothing or the start of a request head, then waits) and
/// opens each again as soon as the service closes it, until `done`, at most `max_opens`
/// connections in all. `opened` counts the connections made.
fn flood(
    from: std::net::Ipv4Addr,
    addr: std::net::SocketAddr,
    count: usize,
    max_opens: usize,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    (0..count)
        .map(|i| {
            let (done, opened) = (done.clone(), opened.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) && opened.load(Ordering::Relaxed) < max_opens {
                    let socket = tokio::net::TcpSocket::new_v4().unwrap();
                    socket.bind((from, 0).into()).unwrap();
                    let connecting =
                        tokio::time::timeout(Duration::from_secs(1), socket.connect(addr));
                    let Ok(Ok(mut s)) = connecting.await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    if i % 2 == 1 {
                        let _ = s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n").await;
                    }
                    // Until the service closes it (or the test is done).
                    let mut buf = [0u8; 64];
                    loop {
                        if done.load(Ordering::Relaxed) {
                            return;
                        }
                        let read =
                            tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf));
                        if let Ok(Ok(0) | Err(_)) = read.await {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect()
}

/// `n` probes of `path` from 127.0.0.1, each on a new connection: their statuses, up to the
/// first that got no answer within 10 s.
async fn probe(addr: std::net::SocketAddr, path: &str, n: usize) -> Vec<Result<u16, String>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let answer = http.get(format!("http://{addr}{path}")).send().await;
        let failed = answer.is_err();
        out.push(
            answer
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string()),
        );
        if failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// Waits (at most 20 s) until the flood has opened `n` connections.
async fn flood_started(opened: &std::sync::atomic::AtomicUsize, n: usize) {
    for _ in 0..200 {
        if opened.load(std::sync::atomic::Ordering::Relaxed) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the flood did not start");
}

/// One address that keeps reopening half-open connections, four times as many as the
/// service takes at once, holds at most its share: health probes from another address are
/// all answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_flood_from_one_address_does_not_starve_health() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let limits = pubdeck::server::Limits {
        max_connections: 16,
        max_per_address: 4,
        probe_connections: 4,
        header_read_timeout: Duration::from_secs(30),
    };
    let (_tmp, addr, stop, task) = limited_service(limits).await;
    let (done, opened) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let attackers = flood(
        std::net::Ipv4Addr::new(127, 0, 0, 2),
        addr,
        64,
        20_000,
        done.clone(),
        opened.clone(),
    );
    flood_started(&opened, 64).await;
    let answers = probe(addr, "/v1/health", 16).await;
    done.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.unwrap();
    }
    assert!(answers.iter().all(|a| a == &Ok(200)), "{answers:?}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// Every connection slot taken (four addresses at their share each): health and readiness
/// are still answered, on the connections kept for probes; anything else there gets 503
/// with `Retry-After` instead of waiting in the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_when_every_slot_is_taken() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let limits = pubdeck::server::Limits {
        max_connections: 16,
        max_per_address: 4,
        probe_connections: 4,
        header_read_timeout: Duration::from_secs(30),
    };
    let (_tmp, addr, stop, task) = limited_service(limits).await;
    let (done, opened) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut attackers = Vec::new();
    for last in 2..=5 {
        attackers.extend(flood(
            std::net::Ipv4Addr::new(127, 0, 0, last),
            addr,
            8,
            20_000,
            done.clone(),
            opened.clone(),
        ));
    }
    flood_started(&opened, 32).await;
    let health = probe(addr, "/v1/health", 8).await;
    let ready = probe(addr, "/v1/ready", 4).await;
    let other = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("http://{addr}/v1/whoami"))
        .send()
        .await;
    done.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.unwrap();
    }
    assert!(health.iter().all(|a| a == &Ok(200)), "{health:?}");
    assert!(ready.iter().all(|a| a == &Ok(200)), "{ready:?}");
    let other = other.expect("an answer, not a wait in the backlog");
    assert_eq!(other.status(), 503);
    assert!(other.headers().contains_key("retry-after"));
    let body: serde_json::Value = other.json().await.unwrap();
    assert_eq!(body["error"]["code"], "busy", "{body}");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
