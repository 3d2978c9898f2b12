//! OAuth2 client credentials against a local stand-in that answers as PayPal's REST API
//! documents it: `POST /v1/oauth2/token` (Basic client id:secret, form
//! `grant_type=client_credentials`, `{"access_token", "token_type": "Bearer", "expires_in"}`)
//! and `GET /v1/billing/subscriptions/{id}` with the bearer token. A PayPal renewal sale,
//! which carries no period, is completed from the subscription's `next_billing_time`.
use crate::harness::{Reply, TestApp};
use base64::Engine;
use keygate_billing::testkit::{self, Kit, MONTH};
use keygate_billing::{Secrets, provider};
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod paypal_renewal_completed_with_an_oauth_token {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::paypal_renewal_completed_with_an_oauth_token(&app).await;
        app.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::paypal_renewal_completed_with_an_oauth_token(&app).await;
        app.finish().await;
    }
}

const CLIENT_ID: &str = "AeA1QIZXiflr1_-r0U2UbWTziOWX1GRQer5";
const CLIENT_SECRET: &str = "ECYYrrSHdKfk_Q0EdvzdGkzj58a66kKaUQ5dZAEv";
const SUBSCRIPTION: &str = "I-BW452GLLEP1G";

/// PayPal's API as the stand-in plays it.
#[derive(Default)]
struct PayPalApi {
    /// The tokens it accepts (the last issued; older ones are "expired").
    valid_token: Option<String>,
    issued: usize,
    /// `billing_info.next_billing_time` of the subscription (Unix s).
    next_billing: i64,
    /// Answer 500 to this many subscription reads.
    failing: usize,
    /// `(method path, authorization, body)` of every request.
    seen: Vec<(String, String, String)>,
}

async fn stand_in(next_billing: i64) -> (String, Arc<Mutex<PayPalApi>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(PayPalApi {
        next_billing,
        ..PayPalApi::default()
    }));
    let shared = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let state = shared.clone();
            tokio::spawn(async move {
                let Some((head, body)) = read_request(&mut socket).await else {
                    return;
                };
                let line = head.lines().next().unwrap_or("").to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let (status, answer) = {
                    let mut api = state.lock().unwrap();
                    let seen = (
                        line.rsplit_once(' ')
                            .map_or(line.as_str(), |(l, _)| l)
                            .to_string(),
                        header("authorization"),
                        body.clone(),
                    );
                    api.seen.push(seen);
                    answer(
                        &mut api,
                        &line,
                        &header("authorization"),
                        &header("content-type"),
                        &body,
                    )
                };
                let answer = answer.to_string();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, state)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
        })
        .unwrap_or(0);
    while request.len() < end + 4 + length {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let body = String::from_utf8_lossy(&request[end + 4..end + 4 + length]).into_owned();
    Some((head, body))
}

fn answer(
    api: &mut PayPalApi,
    line: &str,
    auth: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let path = line.split(' ').nth(1).unwrap_or("");
    if line.starts_with("POST ") && path == "/v1/oauth2/token" {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        if auth != format!("Basic {basic}") {
            return (
                401,
                json!({"error": "invalid_client", "error_description": "Client Authentication failed"}),
            );
        }
        if !content_type.starts_with("application/x-www-form-urlencoded")
            || body != "grant_type=client_credentials"
        {
            return (400, json!({"error": "unsupported_grant_type"}));
        }
        api.issued += 1;
        let token = format!(
            "A21AAFEpH4PsADK7qSS7pSRsgzfENtu-Q1ysgEDVDESseMHBYXVJYE8ovjj{}",
            api.issued
        );
        api.valid_token = Some(token.clone());
        return (
            200,
            json!({"scope": "https://uri.paypal.com/services/subscriptions", "access_token": token,
                   "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": 32400,
                   "nonce": "2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg"}),
        );
    }
    let bearer_ok = api
        .valid_token
        .as_ref()
        .is_some_and(|t| auth == format!("Bearer {t}"));
    if !bearer_ok {
        return (
            401,
            json!({"error": "invalid_token", "error_description": "Token signature verification failed"}),
        );
    }
    if line.starts_with("GET ") && path == format!("/v1/billing/subscriptions/{SUBSCRIPTION}") {
        if api.failing > 0 {
            api.failing -= 1;
            return (500, json!({"name": "INTERNAL_SERVER_ERROR"}));
        }
        return (200, subscription(api.next_billing));
    }
    (404, json!({"name": "RESOURCE_NOT_FOUND"}))
}

/// The subscription as `GET /v1/billing/subscriptions/{id}` answers it.
fn subscription(next_billing: i64) -> Value {
    let rfc = |s: i64| Timestamp::from_unix_seconds(s).to_rfc3339();
    json!({"id": SUBSCRIPTION, "plan_id": "P-PRO", "status": "ACTIVE", "quantity": "1",
        "start_time": rfc(next_billing - 2 * MONTH),
        "subscriber": {"name": {"given_name": "Ann", "surname": "Example"},
                       "email_address": "ann@example.com", "payer_id": "2J6QB8YJQSJRJ"},
        "billing_info": {"outstanding_balance": {"currency_code": "USD", "value": "0.0"},
            "cycle_executions": [{"tenure_type": "REGULAR", "sequence": 1, "cycles_completed": 2,
                                  "cycles_remaining": 0, "total_cycles": 0}],
            "last_payment": {"amount": {"currency_code": "USD", "value": "30.0"},
                             "time": rfc(next_billing - MONTH)},
            "next_billing_time": rfc(next_billing), "failed_payments_count": 0},
        "create_time": rfc(next_billing - 2 * MONTH), "update_time": rfc(next_billing - MONTH),
        "links": [{"href": format!("https://api.paypal.com/v1/billing/subscriptions/{SUBSCRIPTION}"),
                   "rel": "self", "method": "GET"}]})
}

/// A renewal sale as PayPal sends it: no period, only the subscription's id.
fn sale(event_id: &str, sale_id: &str) -> Value {
    let now = Timestamp::now().to_rfc3339();
    json!({"id": event_id, "event_version": "1.0", "create_time": now, "resource_type": "sale",
        "event_type": "PAYMENT.SALE.COMPLETED", "summary": "Payment completed for $ 30.0 USD",
        "resource": {"id": sale_id, "state": "completed",
            "amount": {"total": "30.00", "currency": "USD"},
            "billing_agreement_id": SUBSCRIPTION, "create_time": now, "update_time": now},
        "links": [{"href": format!("https://api.paypal.com/v1/notifications/webhooks-events/{event_id}"),
                   "rel": "self", "method": "GET"}]})
}

async fn deliver(app: &TestApp, path: &str, kit: &dyn Kit, body: &Value) -> Reply {
    let body = body.to_string();
    let settings = kit.settings();
    let secrets = Secrets::new(settings.secrets).with_options(settings.options);
    let headers = kit
        .sign(&secrets, body.as_bytes(), Timestamp::now())
        .unwrap();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.send("POST", path, None, Some(Value::String(body)), &headers)
        .await
}

async fn event(app: &TestApp, api: &str, reply: &Reply) -> Value {
    let id = reply.body["events"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no event: {}", reply.body));
    app.get(&format!("/v1/events/{id}"), api).await.body
}

async fn expiry(app: &TestApp, api: &str) -> i64 {
    let list = app.get("/v1/licenses", api).await.body;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let at = list["data"][0]["expires_at"].as_str().unwrap();
    Timestamp::parse_rfc3339(at).unwrap().millis() / 1000
}

fn token_requests(api: &Mutex<PayPalApi>) -> usize {
    api.lock()
        .unwrap()
        .seen
        .iter()
        .filter(|(line, _, _)| line == "POST /v1/oauth2/token")
        .count()
}

async fn paypal_renewal_completed_with_an_oauth_token(app: &TestApp) {
    let kit = testkit::kit(provider("paypal").unwrap());
    let now = Timestamp::now().millis() / 1000;
    // What the API says differs from what Keygate would derive (one month on): a day more.
    let api_next = now + 2 * MONTH + 86_400;
    let (base, paypal) = stand_in(api_next).await;
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1}),
        )
        .await;
    let mut options = kit.settings().options;
    options["api_base_url"] = json!(base);
    let created = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "paypal", "options": options,
                   "api_credentials": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                   "mappings": [{"external_id": "P-PRO", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let integration = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/webhooks/paypal/{integration}");

    let steps = kit.steps(now, now).unwrap();
    let r = deliver(app, &path, kit, &steps.created[0]).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(expiry(app, &api).await, now + MONTH);
    assert!(
        paypal.lock().unwrap().seen.is_empty(),
        "a full event asks nothing"
    );

    // The renewal sale: a token (Basic client id:secret, the form grant), then the
    // subscription with it; the period is the API's, not a derived one.
    let r = deliver(app, &path, kit, &sale("WH-OA-1", "SALE-OA-1")).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(expiry(app, &api).await, api_next);
    {
        let api = paypal.lock().unwrap();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        assert_eq!(api.seen.len(), 2, "{:?}", api.seen);
        assert_eq!(
            api.seen[0],
            (
                "POST /v1/oauth2/token".to_string(),
                format!("Basic {basic}"),
                "grant_type=client_credentials".to_string()
            )
        );
        assert_eq!(
            api.seen[1].0,
            format!("GET /v1/billing/subscriptions/{SUBSCRIPTION}")
        );
        assert_eq!(
            api.seen[1].1,
            format!("Bearer {}", api.valid_token.clone().unwrap())
        );
    }

    // The next sale reuses the cached token.
    paypal.lock().unwrap().next_billing = api_next + MONTH;
    let r = deliver(app, &path, kit, &sale("WH-OA-2", "SALE-OA-2")).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(expiry(app, &api).await, api_next + MONTH);
    assert_eq!(token_requests(&paypal), 1);

    // PayPal revokes the token early: the 401 drops it and one new token is asked for.
    paypal.lock().unwrap().valid_token = Some("revoked-by-the-platform".into());
    paypal.lock().unwrap().next_billing = api_next + 2 * MONTH;
    let r = deliver(app, &path, kit, &sale("WH-OA-3", "SALE-OA-3")).await;
    assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
    assert_eq!(expiry(app, &api).await, api_next + 2 * MONTH);
    assert_eq!(token_requests(&paypal), 2);

    // The API failing (500): tried a few times, then `pending`, nothing applied; the worker
    // completes it once the API answers again.
    paypal.lock().unwrap().failing = 3;
    paypal.lock().unwrap().next_billing = api_next + 3 * MONTH;
    let r = deliver(app, &path, kit, &sale("WH-OA-4", "SALE-OA-4")).await;
    let pending = event(app, &api, &r).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["error"]["code"], "API_FETCH_FAILED", "{pending}");
    assert_eq!(expiry(app, &api).await, api_next + 2 * MONTH);
    let id = pending["id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..80 {
        status = app.get(&format!("/v1/events/{id}"), &api).await.body["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status == "applied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, "applied");
    assert_eq!(expiry(app, &api).await, api_next + 3 * MONTH);

    // Credentials the token endpoint refuses: `failed` with the code that says so, and no
    // token, secret or id in what the vendor reads.
    let r = app
        .patch(
            &format!("/v1/integrations/{integration}"),
            &api,
            json!({"api_credentials": {"client_id": CLIENT_ID, "client_secret": "wrong"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = deliver(app, &path, kit, &sale("WH-OA-5", "SALE-OA-5")).await;
    let refused = event(app, &api, &r).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(
        refused["error"]["code"], "API_CREDENTIALS_REJECTED",
        "{refused}"
    );
    let text = refused.to_string();
    let token = paypal.lock().unwrap().valid_token.clone().unwrap();
    for secret in [token.as_str(), "A21AAFEpH4", CLIENT_SECRET, "wrong\""] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(expiry(app, &api).await, api_next + 3 * MONTH);
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        failed.body
    );
}
