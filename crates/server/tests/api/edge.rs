//! The edge of the server under hostile or careless clients: slow and half-sent connections,
//! the connection caps, the header/body/idle deadlines, rate limits, oversized bodies, and
//! one error envelope for every refusal. Raw sockets, so the bytes are exactly the attack's.
use crate::harness::TestApp;
use keygate_domain::ErrorCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `local` (any 127.x.y.z address works on loopback): another client.
async fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// A raw answer: status, headers (lowercased names), body.
struct Raw {
    status: u16,
    head: String,
    body: Value,
}

/// Reads one answer (the server closes after it: `Connection: close` is sent or implied).
async fn read_answer(stream: &mut TcpStream, within: Duration) -> Option<Raw> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
            if let Some(end) = find(&bytes, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    read.ok()?;
    let end = find(&bytes, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Raw {
        status,
        head,
        body: serde_json::from_slice(&bytes[end + 4..]).unwrap_or(Value::Null),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` on a new connection from `local` and reads the answer.
async fn exchange(local: &str, server: SocketAddr, request: &str, within: Duration) -> Option<Raw> {
    let mut stream = connect_from(local, server).await;
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(&mut stream, within).await
}

/// Waits until the server closes `stream` (EOF or reset); `None` if it is still open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|_| started.elapsed())
}

fn validate_request(key: &str) -> String {
    let body = json!({"key": key}).to_string();
    format!(
        "POST /v1/licenses/validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// The metric's value in a Prometheus text page.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

async fn metrics_text(server: SocketAddr) -> String {
    let mut stream = connect_from("127.0.0.1", server).await;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// Opens `n` connections from `local` that send part of a request head and then nothing.
async fn half_sent(local: &str, server: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut stream = connect_from(local, server).await;
        // The server may already have closed it (a cap): that is what is being tested.
        let _ = stream
            .write_all(b"POST /v1/licenses/validate HTTP/1.1\r\nHost: x\r\nContent-Le")
            .await;
        streams.push(stream);
    }
    streams
}

/// When (after `since`) the server closed each stream, watched all at once.
async fn close_times(streams: Vec<TcpStream>, since: Instant, within: Duration) -> Vec<Duration> {
    let watchers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                closed_within(&mut stream, within)
                    .await
                    .map(|_| since.elapsed())
            })
        })
        .collect();
    let mut times = Vec::new();
    for watcher in watchers {
        times.push(
            watcher
                .await
                .unwrap()
                .expect("every slow connection is closed by the server"),
        );
    }
    times
}

/// 300 half-sent requests from one address: it gets its 32 connections, the others are
/// closed on arrival, other clients are answered at once, and the 32 are cut off when their
/// headers' deadline passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_from_one_address_do_not_shut_others_out() {
    let app = TestApp::sqlite_with(|c| {
        c.max_connections = 64;
        c.max_connections_per_ip = 32;
        c.header_read_timeout_seconds = 1.5;
    })
    .await;
    let key = app.account("Edge").await;
    let license = app.license(&key, json!({})).await;
    let license_key = license["key"].as_str().unwrap().to_string();
    let server = app.server.addr;

    let started = Instant::now();
    let slow = half_sent("127.0.0.9", server, 300).await;

    let asked = Instant::now();
    let health = exchange("127.0.0.2", server, HEALTHZ, Duration::from_secs(5))
        .await
        .expect("/healthz answers while 300 slow connections are open");
    assert_eq!(health.status, 200);
    let valid = exchange(
        "127.0.0.3",
        server,
        &validate_request(&license_key),
        Duration::from_secs(5),
    )
    .await
    .expect("a validation answers while 300 slow connections are open");
    assert_eq!(
        (valid.status, valid.body["code"].as_str()),
        (200, Some("VALID"))
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "answered before any slow connection was cut: {:?}",
        asked.elapsed()
    );

    let times = close_times(slow, started, Duration::from_secs(8)).await;
    let at_once = times
        .iter()
        .filter(|t| **t < Duration::from_millis(1200))
        .count();
    let at_deadline = times.len() - at_once;
    assert!(at_deadline <= 32, "at most 32 were held: {at_deadline}");
    assert!(
        at_once >= 268,
        "the others were closed on arrival: {at_once}"
    );
    assert!(
        times.iter().all(|t| *t < Duration::from_secs(5)),
        "the held ones are cut at their deadline (1.5 s): {:?}",
        times.iter().max()
    );
    let text = metrics_text(server).await;
    assert!(
        metric(
            &text,
            "keygate_connections_total{event=\"per_address_cap\"}"
        ) >= 268.0,
        "{text}"
    );
    assert!(metric(&text, "keygate_connections_total{event=\"header_timeout\"}") >= 1.0);
    app.finish().await;
}

/// 300 half-sent requests from many addresses against a cap of 50: the server never serves
/// more than 50 at once (the rest wait in the backlog), cuts each at its deadline, and
/// `/healthz` is answered once the slow ones have been worked through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_holds_and_slow_connections_are_worked_off() {
    let app = TestApp::sqlite_with(|c| {
        c.max_connections = 50;
        c.max_connections_per_ip = 0;
        c.header_read_timeout_seconds = 0.5;
        c.metrics_addr = Some("127.0.0.1:0".into());
    })
    .await;
    let server = app.server.addr;
    let metrics = app.server.metrics_addr.expect("a metrics listener");
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..300 {
        slow.extend(half_sent(&format!("127.0.1.{}", i % 250 + 1), server, 1).await);
    }
    let health = tokio::spawn(async move {
        let asked = Instant::now();
        let answer = exchange("127.0.0.2", server, HEALTHZ, Duration::from_secs(15)).await;
        (answer.map(|a| a.status), asked.elapsed())
    });
    let mut most_open = 0.0f64;
    while !health.is_finished() {
        let text = metrics_text(metrics).await;
        most_open = most_open.max(metric(&text, "keygate_connections_open"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, waited) = health.await.unwrap();
    assert_eq!(status, Some(200), "answered after {waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    // The gauge counts both listeners: the 50 of the cap and the metrics request itself.
    assert!(
        (40.0..=51.0).contains(&most_open),
        "connections open at once: {most_open}"
    );
    let times = close_times(slow, started, Duration::from_secs(10)).await;
    assert!(times.iter().all(|t| *t >= Duration::from_millis(450)));
    let text = metrics_text(metrics).await;
    assert!(metric(&text, "keygate_connections_total{event=\"cap_reached\"}") >= 1.0);
    assert!(metric(&text, "keygate_connections_total{event=\"header_timeout\"}") >= 250.0);
    app.finish().await;
}

/// A body that stops coming is answered 408 once its deadline passes; a keep-alive
/// connection with nothing to do is closed after the idle deadline, not before; a
/// `Content-Length` over the limit is answered 413 at once, before any body arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_idle_deadlines_and_a_lying_content_length() {
    let app = TestApp::sqlite_with(|c| {
        c.body_read_timeout_seconds = 1.0;
        c.idle_timeout_seconds = 1.0;
    })
    .await;
    let server = app.server.addr;

    let mut stream = connect_from("127.0.0.1", server).await;
    let sent = Instant::now();
    stream
        .write_all(
            b"POST /v1/licenses/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(5))
        .await
        .expect("a slow body is answered");
    assert_eq!(answer.status, 408);
    assert_eq!(answer.body["error"]["code"], "REQUEST_TIMEOUT");
    assert!(
        sent.elapsed() >= Duration::from_millis(900),
        "{:?}",
        sent.elapsed()
    );
    assert!(
        closed_within(&mut stream, Duration::from_secs(2))
            .await
            .is_some()
    );

    let mut stream = connect_from("127.0.0.1", server).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_answer(&mut stream, Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    let idle = closed_within(&mut stream, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(idle >= Duration::from_millis(800), "closed after {idle:?}");

    for path in [
        "/v1/licenses/validate",
        "/v1/webhooks/stripe/anything",
        "/v1/products",
    ] {
        let mut stream = connect_from("127.0.0.1", server).await;
        let sent = Instant::now();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000\r\n\r\n{{}}"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let answer = read_answer(&mut stream, Duration::from_secs(5))
            .await
            .expect("an oversized Content-Length is answered");
        assert_eq!(answer.status, 413, "{path}");
        assert_eq!(answer.body["error"]["code"], "PAYLOAD_TOO_LARGE");
        assert!(answer.head.contains("connection: close"));
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "{:?}",
            sent.elapsed()
        );
    }
    app.finish().await;
}

/// The client endpoints allow a burst per address, then 429 with `Retry-After`; webhooks
/// have a bucket per integration; operations endpoints are not limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let app = TestApp::sqlite_with(|c| {
        c.client_rate_per_second = 0.5;
        c.client_rate_burst = 3;
        c.webhook_rate_per_second = 0.5;
        c.webhook_rate_burst = 2;
    })
    .await;
    let key = app.account("Limits").await;
    let license = app.license(&key, json!({})).await;
    for _ in 0..3 {
        app.validate(json!({"key": license["key"]})).await;
    }
    let limited = app
        .client("/v1/licenses/validate", json!({"key": license["key"]}))
        .await;
    assert_eq!((limited.status, limited.code()), (429, "RATE_LIMITED"));
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Every client endpoint shares the address's bucket.
    let activate = app
        .client(
            "/v1/licenses/activate",
            json!({"key": license["key"], "fingerprint": "m"}),
        )
        .await;
    assert_eq!(activate.status, 429);
    // Another address has its own.
    let other = exchange(
        "127.0.0.5",
        app.server.addr,
        &validate_request(license["key"].as_str().unwrap()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(other.status, 200);
    // Operations and admin routes are not limited.
    for _ in 0..5 {
        assert_eq!(
            app.send("GET", "/healthz", None, None, &[]).await.status,
            200
        );
        assert_eq!(app.get("/v1/products", &key).await.status, 200);
    }

    let webhook = |id: &'static str| {
        let app = &app;
        async move {
            app.send(
                "POST",
                &format!("/v1/webhooks/stripe/{id}"),
                None,
                Some(json!({})),
                &[],
            )
            .await
        }
    };
    assert_eq!(webhook("one").await.status, 404);
    assert_eq!(webhook("one").await.status, 404);
    let limited = webhook("one").await;
    assert_eq!((limited.status, limited.code()), (429, "RATE_LIMITED"));
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        webhook("two").await.status,
        404,
        "another integration's bucket"
    );
    let from_elsewhere = exchange(
        "127.0.0.6",
        app.server.addr,
        "POST /v1/webhooks/stripe/one HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(from_elsewhere.status, 404, "another sender's bucket");

    let text = String::from_utf8(
        app.send("GET", "/metrics", None, None, &[])
            .await
            .raw
            .to_vec(),
    )
    .unwrap();
    assert!(metric(&text, "keygate_rate_limited_total{scope=\"client\"}") >= 2.0);
    assert_eq!(
        metric(&text, "keygate_rate_limited_total{scope=\"webhook\"}"),
        1.0
    );
    let doc = app.send("GET", "/openapi.json", None, None, &[]).await.body;
    for path in [
        "/v1/licenses/validate",
        "/v1/webhooks/{provider}/{integration_id}",
    ] {
        let limited = &doc["paths"][path]["post"]["responses"]["429"];
        assert!(
            limited["headers"]["Retry-After"].is_object(),
            "{path}: {limited}"
        );
    }
    assert!(doc["paths"]["/v1/products"]["get"]["responses"]["429"].is_null());
    app.finish().await;
}

/// Every refusal, whoever writes it (a handler, an extractor, the router, a limit), is the
/// JSON envelope with a documented code whose status is the answer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_error_envelope() {
    let app = TestApp::sqlite_with(|c| {
        c.webhook_rate_burst = 1;
        c.webhook_rate_per_second = 0.01;
    })
    .await;
    let key = app.account("Envelope").await;
    let license = app.license(&key, json!({})).await;
    let id = license["id"].as_str().unwrap();
    let big = "a".repeat(1024 * 1024 + 10);
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        ("GET", "/v1/nothing".into(), None, 404, "ROUTE_NOT_FOUND"),
        (
            "PUT",
            "/v1/products".into(),
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "DELETE",
            "/v1/licenses/validate".into(),
            None,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        (
            "POST",
            "/v1/products".into(),
            Some(json!("{")),
            400,
            "MALFORMED_JSON",
        ),
        (
            "POST",
            "/v1/products".into(),
            Some(json!({"code": 5})),
            400,
            "INVALID_BODY",
        ),
        (
            "GET",
            "/v1/licenses?limit=abc".into(),
            None,
            400,
            "INVALID_QUERY",
        ),
        ("GET", "/v1/products/%FF".into(), None, 400, "BAD_REQUEST"),
        (
            "POST",
            format!("/v1/licenses/{id}/actions/extend"),
            Some(Value::String(big.clone())),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "POST",
            "/v1/webhooks/stripe/x".into(),
            Some(Value::String(big.clone())),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "POST",
            "/v1/webhooks/stripe/y".into(),
            Some(json!({})),
            404,
            "INTEGRATION_NOT_FOUND",
        ),
        (
            "POST",
            "/v1/webhooks/stripe/y".into(),
            Some(json!({})),
            429,
            "RATE_LIMITED",
        ),
    ];
    for (method, path, body, status, code) in cases {
        if status == 413 {
            // Writing the whole body races the server's early close (a broken pipe under
            // load): send the oversized Content-Length alone, as a client does before its body.
            let mut stream = connect_from("127.0.0.1", app.server.addr).await;
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                big.len()
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let answer = read_answer(&mut stream, Duration::from_secs(5))
                .await
                .expect("an oversized body is answered");
            assert_eq!(answer.status, 413, "{method} {path}");
            assert_eq!(answer.body["error"]["code"], code, "{method} {path}");
            assert!(
                answer.head.contains("content-type: application/json"),
                "{method} {path}"
            );
            continue;
        }
        let token = (!path.starts_with("/v1/webhooks")).then_some(key.as_str());
        let r = app.send(method, &path, token, body, &[]).await;
        assert_envelope(&r, status, code, &format!("{method} {path}"));
    }
    let r = app.send("PUT", "/v1/products", Some(&key), None, &[]).await;
    assert!(
        r.headers.contains_key("allow"),
        "405 keeps the Allow header"
    );

    // JSON bodies in another media type (the harness always labels its bodies JSON).
    let labelled = |content_type: &str| {
        let body = json!({"key": "k"}).to_string();
        format!(
            "POST /v1/licenses/validate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    for content_type in [
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data",
    ] {
        let answer = exchange(
            "127.0.0.1",
            app.server.addr,
            &labelled(content_type),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 415, "{content_type}");
        assert_eq!(answer.body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    }
    // What `curl -d` sends, and JSON types, are read.
    for content_type in [
        "application/x-www-form-urlencoded",
        "application/vnd.api+json",
        "application/json; charset=UTF-8",
    ] {
        let answer = exchange(
            "127.0.0.1",
            app.server.addr,
            &labelled(content_type),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 200, "{content_type}");
    }

    // Chunked, so the size is only known once read: the body limit, not the Content-Length
    // check, refuses it, on a raw-body route.
    let mut stream = connect_from("127.0.0.1", app.server.addr).await;
    let chunk = "a".repeat(1024 * 1024 + 10);
    let request = format!(
        "POST /v1/webhooks/stripe/z HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = read_answer(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 413);
    assert_eq!(answer.body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert!(answer.head.contains("content-type: application/json"));
    app.finish().await;
}

fn assert_envelope(r: &crate::harness::Reply, status: u16, code: &str, what: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.body);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    let known = ErrorCode::parse(code).unwrap_or_else(|| panic!("{code} is no ErrorCode"));
    assert_eq!(known.status(), status, "{what}");
}

/// `/metrics` behind a token, and on a listener of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_behind_a_token_or_on_its_own_listener() {
    let app = TestApp::sqlite_with(|c| c.metrics_token = Some("m-secret".into())).await;
    let open = app.send("GET", "/metrics", None, None, &[]).await;
    assert_envelope(&open, 401, "INVALID_METRICS_TOKEN", "no token");
    let wrong = app
        .send(
            "GET",
            "/metrics",
            None,
            None,
            &[("authorization", "Bearer m-secreT")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let ok = app
            .send(
                "GET",
                "/metrics",
                None,
                None,
                &[("authorization", &format!("{scheme} m-secret"))],
            )
            .await;
        assert_eq!(ok.status, 200, "{scheme}");
        assert!(String::from_utf8_lossy(&ok.raw).contains("keygate_http_requests_total"));
    }
    app.finish().await;

    let app = TestApp::sqlite_with(|c| c.metrics_addr = Some("127.0.0.1:0".into())).await;
    let main = app.send("GET", "/metrics", None, None, &[]).await;
    assert_eq!((main.status, main.code()), (404, "ROUTE_NOT_FOUND"));
    let text = metrics_text(app.server.metrics_addr.unwrap()).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("keygate_connections_open"));
    let doc = app.send("GET", "/openapi.json", None, None, &[]).await;
    assert!(
        doc.body["paths"]["/metrics"].is_null(),
        "not on this listener"
    );
    app.finish().await;
}

/// Refused webhook deliveries are listed at once but written in batches (by the flusher,
/// and at a clean stop), never one write each; they are counted in /metrics, and the log
/// keeps the newest 100.
async fn refused_deliveries_are_batched(app: TestApp) -> TestApp {
    let api = app.account("Refusals").await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": ["whsec_edge"]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let id = integration.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/webhooks/stripe/{id}");
    let refuse = async |app: &TestApp, n: usize| {
        for i in 0..n {
            let r = app
                .send(
                    "POST",
                    &path,
                    None,
                    Some(json!({"id": format!("evt_{i}")})),
                    &[("stripe-signature", &format!("t=1,v1={}", "0".repeat(64)))],
                )
                .await;
            assert_eq!(r.status, 401, "{}", r.body);
        }
    };

    refuse(&app, 50).await;
    let first = failure_ids(&app, &api, &id).await;
    assert_eq!(first.len(), 50, "listed at once");
    assert!(first.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(failure_rows(&app, "").await, 0, "no write per refusal");
    let text = String::from_utf8(
        app.send("GET", "/metrics", None, None, &[])
            .await
            .raw
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        metric(
            &text,
            "keygate_webhook_refusals_total{code=\"SIGNATURE_INVALID\"}"
        ),
        50.0
    );

    // A burst above the log's size: the newest 100 are kept; a clean stop writes them.
    refuse(&app, 150).await;
    let burst = failure_ids(&app, &api, &id).await;
    assert_eq!(burst.len(), 100);
    assert!(
        burst.iter().all(|f| !first.contains(f)),
        "the burst's newest 100"
    );
    assert_eq!(failure_rows(&app, "").await, 0);
    let app = app
        .restart_with(|c| c.failure_log_flush_seconds = 0.2)
        .await;
    assert_eq!(failure_rows(&app, "").await, 100);
    assert_eq!(
        failure_ids(&app, &api, &id).await,
        burst,
        "the same entries, once"
    );

    // The flusher writes new ones within its interval.
    refuse(&app, 10).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while failure_rows(&app, &burst[0]).await < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failure_rows(&app, &burst[0]).await, 10);
    assert_eq!(failure_rows(&app, "").await, 100, "bounded");
    app
}

async fn failure_ids(app: &TestApp, api: &str, id: &str) -> Vec<String> {
    let r = app
        .get(&format!("/v1/integrations/{id}/failures"), api)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// Rows in the failure log table with an id after `after` (all: "").
async fn failure_rows(app: &TestApp, after: &str) -> i64 {
    use keygate_store::sqlx::{self, Connection};
    let count = "SELECT COUNT(*) FROM webhook_failures WHERE id > $1";
    if app.database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(count)
            .bind(after)
            .fetch_one(&mut c)
            .await
            .unwrap()
    } else {
        let mut c = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        sqlx::query_scalar(count)
            .bind(after)
            .fetch_one(&mut c)
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_are_batched_sqlite() {
    refused_deliveries_are_batched(
        TestApp::sqlite_with(|c| c.failure_log_flush_seconds = 3600.0).await,
    )
    .await
    .finish()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_deliveries_are_batched_postgres() {
    refused_deliveries_are_batched(
        TestApp::postgres_with(|c| c.failure_log_flush_seconds = 3600.0).await,
    )
    .await
    .finish()
    .await;
}
