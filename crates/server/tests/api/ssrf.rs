//! SSRF at creation as strict as at delivery (issue 13, point 7): the probe's 125 URL forms
//! (security-probe §6 and F6), each with the answer it must get when an endpoint is created
//! (and, for a sample, changed to it), and the same verdict from the delivery-time check.
use crate::harness::TestApp;
use crate::on_both_engines;
use keygate_server::outbound::http;
use serde_json::json;

on_both_engines!(the_probes_url_forms_get_their_answer);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Created,
    Private,
    Invalid,
    /// A name: refused as private exactly when it resolves here, and only to forbidden
    /// addresses (`/etc/hosts` entries such as `vm` or `runsc` differ between machines).
    AsResolved,
}
use Expect::*;

fn table() -> Vec<(String, Expect)> {
    let mut rows: Vec<(&str, Expect)> = vec![
        // Refused before as PRIVATE_ADDRESS: still refused.
        ("http://127.0.0.1/", Private),
        ("http://127.0.0.1:18799/x", Private),
        ("https://127.0.0.1/", Private),
        ("HTTP://127.0.0.1/", Private),
        ("  http://127.0.0.1/  ", Private),
        ("http://127.0.0.1#@example.com/", Private),
        ("http://127.0.0.1:0/", Invalid),
        ("http://127.0.0.1:65536/", Invalid),
        ("http://127.255.255.254/", Private),
        ("http://localhost/", Private),
        ("http://LOCALHOST/", Private),
        ("hTTp://LocalHost/", Private),
        ("http://api.localhost/", Private),
        ("https://localhost:8443/", Private),
        ("http://[::1]/", Private),
        ("http://[::1]:8080/", Private),
        ("http://[0:0:0:0:0:0:0:1]/", Private),
        ("http://[127.0.0.1]/", Invalid),
        ("http://0.0.0.0/", Private),
        ("http://[::]/", Private),
        ("http://169.254.169.254/", Private),
        ("http://[fe80::1]/", Private),
        ("http://[fd00::1]/", Private),
        ("http://[fc00::1]/", Private),
        ("http://10.0.0.1/", Private),
        ("http://10.255.255.53/", Private),
        ("http://172.16.0.1/", Private),
        ("http://172.31.255.255/", Private),
        ("http://192.168.0.1/", Private),
        ("http://100.64.0.1/", Private),
        ("http://192.0.2.1/", Private),
        ("http://198.18.0.1/", Private),
        ("http://224.0.0.1/", Private),
        ("http://255.255.255.255/", Private),
        ("http://240.0.0.1/", Private),
        ("http://192.0.0.1/", Private),
        ("http://[::ffff:127.0.0.1]/", Private),
        ("http://[::ffff:7f00:1]/", Private),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]/", Private),
        ("http://[::ffff:169.254.169.254]/", Private),
        ("http://[::ffff:a9fe:a9fe]/", Private),
        ("http://[::127.0.0.1]/", Private),
        ("http://[::7f00:1]/", Private),
        ("http://[64:ff9b::7f00:1]/", Private),
        ("http://[64:ff9b::169.254.169.254]/", Private),
        ("http://[2001:db8::1]/", Private),
        ("http://[::ffff:10.0.0.1]/", Private),
        ("http://[::1]:1/", Private),
        // Refused before as INVALID_URL: still refused.
        ("http://127.0.0.1@example.com/", Invalid),
        ("http://example.com@127.0.0.1/", Invalid),
        ("http://user:pass@example.com/", Invalid),
        ("http://example.com:80@127.0.0.1/", Invalid),
        ("http://127.0.0.1%23@example.com/", Invalid),
        ("http://%31%32%37.0.0.1/", Invalid),
        ("http://loc%61lhost/", Invalid),
        ("http://example.com\\@127.0.0.1/", Invalid),
        ("http:/127.0.0.1/", Invalid),
        ("http:127.0.0.1", Invalid),
        ("ftp://example.com/", Invalid),
        ("file:///etc/passwd", Invalid),
        ("gopher://127.0.0.1/", Invalid),
        ("dict://127.0.0.1:11211/", Invalid),
        ("javascript:alert(1)", Invalid),
        ("data:text/plain,hi", Invalid),
        ("http:///x", Invalid),
        ("http://exa mple.com/", Invalid),
        ("http://exa\tmple.com/", Invalid),
        ("http://exa\nmple.com/", Invalid),
        ("http://[::1/", Invalid),
        ("http://::1/", Invalid),
        ("http://example.com:80:80/", Invalid),
        ("http://%5B::1%5D/", Invalid),
        (
            "http://\u{ff11}\u{ff12}\u{ff17}.\u{ff10}.\u{ff10}.\u{ff11}/",
            Invalid,
        ),
        ("http://\u{2460}\u{2461}\u{2466}.0.0.1/", Invalid),
        ("http://127\u{3002}0\u{3002}0\u{3002}1/", Invalid),
        // Accepted before (F6): numeric IPv4 in inet_aton's spellings.
        ("http://2130706433/", Private),
        ("http://2130706433:18799/", Private),
        ("http://0x7f000001/", Private),
        ("http://0X7F000001/", Private),
        ("http://0177.0.0.1/", Private),
        ("http://017700000001/", Private),
        ("http://127.1/", Private),
        ("http://127.0.1/", Private),
        ("http://0x7f.0.0.1/", Private),
        ("http://0x7f.1/", Private),
        ("http://127.000.000.001/", Private),
        ("http://127.0.0.01/", Private),
        ("http://0/", Private),
        ("http://00/", Private),
        ("http://0x0/", Private),
        ("http://2852039166/", Private),
        ("http://0xa9fea9fe/", Private),
        ("http://0251.0376.0251.0376/", Private),
        ("http://169.254.43518/", Private),
        ("http://167772161/", Private),
        ("http://0xa000001/", Private),
        // Numeric hosts no resolver reads one way: refused as malformed.
        ("http://0189.0.0.1/", Invalid),
        ("http://256.0.0.1/", Invalid),
        ("http://1.2.3.4.5/", Invalid),
        ("http://4294967296/", Invalid),
        // Names (F6).
        ("http://localhost./", Private),
        ("http://localhost.localdomain/", Private),
        ("http://printer.local/", Private),
        ("http://metadata.internal/", Private),
        ("http://runsc/", AsResolved),
        ("http://vm/", AsResolved),
        ("http://VM/", AsResolved),
        ("http://vm./", AsResolved),
        ("http://localtest.me/", AsResolved),
        ("http://xn--localhost-/", AsResolved),
        // IPv6: a zone id, and ranges that embed an IPv4 address.
        ("http://[fe80::1%25eth0]/", Invalid),
        ("http://[::ffff:0:127.0.0.1]/", Private),
        ("http://[2002:7f00:1::]/", Private),
        ("http://[2001::7f00:1]/", Private),
        ("http://[64:ff9b:1::a9fe:a9fe]/", Private),
        ("http://[100::1]/", Private),
        // Ports outside 1-65535 (stored as written, delivered to the default port before).
        ("https://hooks.example.com:99999/x", Invalid),
        ("https://hooks.example.com:65536/x", Invalid),
        ("https://hooks.example.com:0/x", Invalid),
        // Public forms: accepted.
        ("https://hooks.example.com/keygate", AsResolved),
        ("http://93.184.215.14/", Created),
        ("http://[2606:4700::1111]/", Created),
        ("http://[::ffff:8.8.8.8]/", Created),
        ("http://172.32.0.1/", Created),
        ("http://100.128.0.1/", Created),
        ("https://hooks.example.com:8443/x", AsResolved),
        ("http://[2002:5db8:d70e::1]/", Created),
    ];
    let long = format!("https://hooks.example.com/{}", "a".repeat(2100));
    let mut out: Vec<(String, Expect)> = rows.drain(..).map(|(u, e)| (u.to_string(), e)).collect();
    out.push((long, Invalid));
    out
}

/// What a name must get: private when it resolves here to forbidden addresses only.
async fn resolved_verdict(url: &str) -> Expect {
    let host = url
        .split("://")
        .nth(1)
        .unwrap()
        .split(['/', ':'])
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match tokio::net::lookup_host((host.as_str(), 80)).await {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            if !addrs.is_empty() && addrs.iter().all(|a| http::is_forbidden(a.ip())) {
                Private
            } else {
                Created
            }
        }
        Err(_) => Created,
    }
}

async fn the_probes_url_forms_get_their_answer(app: &TestApp) {
    let api = app.account("Ssrf").await;
    let rows = table();
    assert!(
        rows.len() >= 125,
        "the probe's 125 forms, and a few more spellings"
    );
    let existing = app
        .post(
            "/v1/endpoints",
            &api,
            json!({"url": "http://93.184.215.14/hook", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(existing.status, 201, "{}", existing.body);
    let existing = existing.body["id"].as_str().unwrap().to_string();
    let mut tally = std::collections::BTreeMap::new();
    for (i, (url, expect)) in rows.iter().enumerate() {
        let expect = match expect {
            AsResolved => resolved_verdict(url).await,
            e => *e,
        };
        let r = app
            .post(
                "/v1/endpoints",
                &api,
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        let got = match (r.status, r.code()) {
            (201, _) => Created,
            (422, "PRIVATE_ADDRESS") => Private,
            (422, "INVALID_URL") => Invalid,
            _ => panic!("row {i} `{url}`: unexpected {} {}", r.status, r.body),
        };
        assert_eq!(got, expect, "row {i} `{url}`: {}", r.body);
        *tally.entry(format!("{got:?}")).or_insert(0) += 1;
        // A PATCH to the same URL gets the same answer (every fifth row, to stay quick).
        if i % 5 == 0 {
            let p = app
                .patch(
                    &format!("/v1/endpoints/{existing}"),
                    &api,
                    json!({"url": url}),
                )
                .await;
            let patched = match (p.status, p.code()) {
                (200, _) => Created,
                (422, "PRIVATE_ADDRESS") => Private,
                (422, "INVALID_URL") => Invalid,
                _ => panic!("PATCH `{url}`: {} {}", p.status, p.body),
            };
            assert_eq!(patched, expect, "PATCH `{url}`: {}", p.body);
        }
        // Delivery reads the stored URL with the same parser and the same vetting: what
        // creation refused, delivery refuses with the same code.
        if expect != Created {
            let verdict = match http::parse_url(url.trim()) {
                Err(e) => e.code(),
                Ok(target) => match http::vet(&target, false).await {
                    Err(e) => e.code(),
                    Ok(_) => "ACCEPTED",
                },
            };
            let code = if expect == Private {
                "PRIVATE_ADDRESS"
            } else {
                "INVALID_URL"
            };
            assert_eq!(verdict, code, "delivery check of `{url}`");
        }
    }
    eprintln!("ssrf table: {tally:?}");
    let stored = app.get("/v1/endpoints?limit=200", &api).await;
    let urls: Vec<&str> = stored.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.iter().all(|u| http::parse_url(u).is_ok()),
        "only parseable URLs were stored: {urls:?}"
    );
}

/// `KEYGATE_OUTBOUND_ALLOW_PRIVATE` (local receivers) lets private forms through, in any
/// spelling, but not malformed ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_may_allow_private_addresses() {
    let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
    let api = app.account("Local").await;
    for url in [
        "http://127.0.0.1:9/",
        "http://2130706433:9/",
        "http://localhost./",
        "http://[::1]:9/",
    ] {
        let r = app
            .post(
                "/v1/endpoints",
                &api,
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(r.status, 201, "{url}: {}", r.body);
    }
    for url in [
        "http://127.0.0.1:65536/",
        "http://[fe80::1%25eth0]/",
        "http://0189.0.0.1/",
    ] {
        let r = app
            .post(
                "/v1/endpoints",
                &api,
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        assert_eq!(
            (r.status, r.code()),
            (422, "INVALID_URL"),
            "{url}: {}",
            r.body
        );
    }
    app.finish().await;
}
