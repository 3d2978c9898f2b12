//! The billing gateway end to end for every platform other than Stripe (see `gateway.rs`):
//! signed webhooks, written in each platform's documented payload shape with times relative
//! to now, through HTTP into license state. One lifecycle per platform, on both engines:
//! subscription created → VALID until the period end → renewed (expiry moves) → quantity
//! changed (seats change) → payment failed (GRACE_PERIOD, then SUSPENDED after the grace) →
//! recovered (VALID) → cancelled (the license ends at the cancellation date) → refund
//! (REVOKED).
use crate::harness::{Reply, TestApp, uuid_like};
use crate::on_both_engines;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::Duration;

on_both_engines!(
    paddle_lifecycle,
    paypal_lifecycle,
    chargebee_lifecycle,
    fastspring_lifecycle,
    lemonsqueezy_lifecycle,
    generic_lifecycle
);

const MONTH: i64 = 30 * 86_400;
const GRACE_SECONDS: i64 = 2;

// ---------------------------------------------------------------------------------------
// The shared lifecycle.

/// The webhook bodies of one lifecycle, step by step (a step may take several deliveries).
struct Steps {
    created: Vec<Value>,
    renewed: Vec<Value>,
    quantity: Vec<Value>,
    failed: Vec<Value>,
    recovered: Vec<Value>,
    cancelled: Vec<Value>,
    refunded: Vec<Value>,
    /// When the license must end after the cancellation.
    cancel_ends_at: i64,
}

/// One platform: how its integration is configured, how it signs, what it sends.
struct Platform {
    provider: &'static str,
    secrets: Vec<String>,
    options: Value,
    /// The mapping's external id (price, plan, item price, product path, variant, ...).
    mapping: &'static str,
    /// The platform's customer id and subscription id the events carry.
    customer: &'static str,
    subscription: &'static str,
    /// The headers that authenticate `body`.
    sign: fn(&str) -> Vec<(String, String)>,
    /// The events, for a lifecycle that starts at `now` and whose payment fails at
    /// `failed_at` (deterministic: built twice, the failure time only known later).
    steps: fn(i64, i64) -> Steps,
}

fn now_s() -> i64 {
    Timestamp::now().millis() / 1000
}

fn rfc(seconds: i64) -> String {
    Timestamp::from_unix_seconds(seconds).to_rfc3339()
}

fn t(v: &Value) -> i64 {
    Timestamp::parse_rfc3339(v.as_str().unwrap())
        .unwrap()
        .millis()
        / 1000
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::digest([ipad.as_slice(), message].concat());
    Sha256::digest([opad.as_slice(), inner.as_slice()].concat()).to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn post_signed(app: &TestApp, path: &str, platform: &Platform, body: &str) -> Reply {
    let headers = (platform.sign)(body);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(body.to_string())),
        &headers,
    )
    .await
}

/// Delivers every body of a step; each must be answered 200 with every event applied.
async fn deliver_step(
    app: &TestApp,
    path: &str,
    platform: &Platform,
    step: &str,
    bodies: &[Value],
) {
    for body in bodies {
        let r = post_signed(app, path, platform, &body.to_string()).await;
        assert_eq!(r.status, 200, "{}: {step}: {}", platform.provider, r.body);
        let events = r.body["events"].as_array().unwrap();
        assert!(
            !events.is_empty(),
            "{}: {step}: {}",
            platform.provider,
            r.body
        );
        for e in events {
            assert_eq!(
                e["status"], "applied",
                "{}: {step}: {} for {body}",
                platform.provider, r.body
            );
        }
    }
}

async fn only_license(app: &TestApp, api: &str) -> Value {
    let list = app.get("/v1/licenses", api).await;
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "exactly one license: {}", list.body);
    data[0].clone()
}

async fn code_of(app: &TestApp, license: &Value) -> String {
    let v = app.validate(json!({"key": license["key"]})).await;
    v.body["code"].as_str().unwrap().to_string()
}

async fn lifecycle(app: &TestApp, platform: Platform) {
    let name = platform.provider;
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let mut options = platform.options.clone();
    options["grace_seconds"] = json!(GRACE_SECONDS);
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": name, "secrets": platform.secrets, "options": options,
                   "mappings": [{"external_id": platform.mapping, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{name}: {}", integration.body);
    let url = integration.body["webhook_url"].as_str().unwrap();
    let path = url[url.find("/v1/").unwrap()..].to_string();
    assert_eq!(
        path,
        format!(
            "/v1/webhooks/{name}/{}",
            integration.body["id"].as_str().unwrap()
        )
    );

    let now = now_s();
    let steps = (platform.steps)(now, now);

    // Subscription created → one license, valid until the paid-through date.
    deliver_step(app, &path, &platform, "created", &steps.created).await;
    let license = only_license(app, &api).await;
    assert_eq!(t(&license["expires_at"]), now + MONTH, "{name}: {license}");
    assert_eq!(license["max_activations"], 1, "{name}: {license}");
    assert_eq!(code_of(app, &license).await, "VALID", "{name}");
    let customers = app.get("/v1/customers", &api).await;
    assert_eq!(
        customers.body["data"][0]["external_ids"][name], platform.customer,
        "{name}: {}",
        customers.body
    );
    // The platform retries the same delivery: a duplicate, nothing more.
    for body in &steps.created {
        let again = post_signed(app, &path, &platform, &body.to_string()).await;
        assert_eq!(again.status, 200, "{name}: {}", again.body);
        assert_eq!(
            again.body["events"][0]["duplicate"], true,
            "{name}: {}",
            again.body
        );
    }
    only_license(app, &api).await;

    // Renewed: the expiry moves to the new period end.
    deliver_step(app, &path, &platform, "renewed", &steps.renewed).await;
    let license = only_license(app, &api).await;
    assert_eq!(
        t(&license["expires_at"]),
        now + 2 * MONTH,
        "{name}: renewed: {license}"
    );
    assert_eq!(code_of(app, &license).await, "VALID", "{name}");

    // Quantity changed: seats follow.
    deliver_step(app, &path, &platform, "quantity", &steps.quantity).await;
    let license = only_license(app, &api).await;
    assert_eq!(license["max_activations"], 5, "{name}: quantity: {license}");
    assert_eq!(
        t(&license["expires_at"]),
        now + 2 * MONTH,
        "{name}: {license}"
    );

    // Payment failed: grace, then suspended once the grace is over.
    let failed_at = now_s();
    let steps = (platform.steps)(now, failed_at);
    deliver_step(app, &path, &platform, "failed", &steps.failed).await;
    assert_eq!(code_of(app, &license).await, "GRACE_PERIOD", "{name}");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(code_of(app, &license).await, "SUSPENDED", "{name}");
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": license["key"], "fingerprint": "m"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "SUSPENDED"), "{name}");

    // Recovered: valid again.
    deliver_step(app, &path, &platform, "recovered", &steps.recovered).await;
    assert_eq!(code_of(app, &license).await, "VALID", "{name}: recovered");

    // Cancelled (at the end of the paid period, or at the date the platform names): still
    // valid, and the license ends at that date.
    deliver_step(app, &path, &platform, "cancelled", &steps.cancelled).await;
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "VALID", "{name}: cancelled");
    assert_eq!(
        t(&license["expires_at"]),
        steps.cancel_ends_at,
        "{name}: cancelled: {license}"
    );
    assert_eq!(license["max_activations"], 5, "{name}: {license}");

    // Refund: revoked, for good.
    deliver_step(app, &path, &platform, "refunded", &steps.refunded).await;
    let license = only_license(app, &api).await;
    assert_eq!(code_of(app, &license).await, "REVOKED", "{name}: refunded");

    // Every change is audited with the webhook event that caused it.
    let id = license["id"].as_str().unwrap();
    let audit = app.get(&format!("/v1/audit?license_id={id}"), &api).await;
    let entries = audit.body["data"].as_array().unwrap();
    assert!(
        entries.iter().all(|e| e["actor_type"] == "webhook_event"),
        "{name}: {}",
        audit.body
    );
    assert!(
        entries.iter().any(|e| e["action"] == "license.revoked"),
        "{name}: {}",
        audit.body
    );
    let subs = app.get("/v1/subscriptions", &api).await;
    let subs = subs.body["data"].as_array().unwrap();
    assert_eq!(subs.len(), 1, "{name}: {subs:?}");
    assert_eq!(subs[0]["external_id"], platform.subscription, "{name}");
    let failed = app.get("/v1/events?status=failed", &api).await;
    assert_eq!(
        failed.body["data"].as_array().unwrap().len(),
        0,
        "{name}: {}",
        failed.body
    );
}

// ---------------------------------------------------------------------------------------
// Paddle Billing: `Paddle-Signature: ts=..;h1=hex(HMAC-SHA256(secret, "{ts}:{body}"))`.

const PADDLE_SECRET: &str = "pdl_ntfset_01keygate_test_secret";

fn paddle_sign(body: &str) -> Vec<(String, String)> {
    let ts = now_s();
    let h1 = hex(&hmac_sha256(
        PADDLE_SECRET.as_bytes(),
        format!("{ts}:{body}").as_bytes(),
    ));
    vec![("paddle-signature".into(), format!("ts={ts};h1={h1}"))]
}

fn paddle_envelope(event_id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"event_id": event_id, "event_type": event_type, "occurred_at": rfc(at),
           "notification_id": format!("ntf_{event_id}"), "data": data})
}

fn paddle_items(qty: i64) -> Value {
    json!([{"status": "active", "quantity": qty, "recurring": true,
            "price": {"id": "pri_pro", "product_id": "pro_app", "description": "Pro monthly"}}])
}

#[allow(clippy::too_many_arguments)]
fn paddle_subscription(
    event_id: &str,
    event_type: &str,
    at: i64,
    started: i64,
    status: &str,
    qty: i64,
    period_end: i64,
    cancel_at: Option<i64>,
) -> Value {
    paddle_envelope(
        event_id,
        event_type,
        at,
        json!({
            "id": "sub_01pdl", "status": status, "customer_id": "ctm_01ann",
            "address_id": "add_01", "currency_code": "USD", "collection_mode": "automatic",
            "created_at": rfc(started), "updated_at": rfc(at), "started_at": rfc(started),
            "first_billed_at": rfc(started), "next_billed_at": cancel_at.map_or(json!(rfc(period_end)), |_| Value::Null),
            "paused_at": null, "canceled_at": null,
            "billing_cycle": {"interval": "month", "frequency": 1},
            "current_billing_period": {"starts_at": rfc(period_end - MONTH), "ends_at": rfc(period_end)},
            "scheduled_change": cancel_at.map(|c| json!({"action": "cancel", "effective_at": rfc(c), "resume_at": null})),
            "items": paddle_items(qty),
        }),
    )
}

fn paddle_transaction(
    event_id: &str,
    event_type: &str,
    at: i64,
    txn: &str,
    status: &str,
    qty: i64,
    period_end: i64,
) -> Value {
    paddle_envelope(
        event_id,
        event_type,
        at,
        json!({
            "id": txn, "status": status, "origin": "subscription_recurring",
            "subscription_id": "sub_01pdl", "customer_id": "ctm_01ann", "currency_code": "USD",
            "billing_period": {"starts_at": rfc(period_end - MONTH), "ends_at": rfc(period_end)},
            "items": [{"price": {"id": "pri_pro", "product_id": "pro_app"}, "quantity": qty}],
            "created_at": rfc(at), "updated_at": rfc(at),
        }),
    )
}

fn paddle_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        created: vec![paddle_subscription(
            "evt_01created",
            "subscription.created",
            now - 100,
            now - 100,
            "active",
            1,
            p1,
            None,
        )],
        // The renewal payment, then the subscription with its new billing period.
        renewed: vec![
            paddle_transaction(
                "evt_01renewal_txn",
                "transaction.completed",
                now - 90,
                "txn_02",
                "completed",
                1,
                p2,
            ),
            paddle_subscription(
                "evt_01renewal_sub",
                "subscription.updated",
                now - 89,
                now - 100,
                "active",
                1,
                p2,
                None,
            ),
        ],
        quantity: vec![paddle_subscription(
            "evt_01qty",
            "subscription.updated",
            now - 80,
            now - 100,
            "active",
            5,
            p2,
            None,
        )],
        failed: vec![
            paddle_transaction(
                "evt_01failed_txn",
                "transaction.payment_failed",
                failed_at,
                "txn_03",
                "past_due",
                5,
                p2,
            ),
            paddle_subscription(
                "evt_01past_due",
                "subscription.past_due",
                failed_at,
                now - 100,
                "past_due",
                5,
                p2,
                None,
            ),
        ],
        recovered: vec![paddle_subscription(
            "evt_01recovered",
            "subscription.updated",
            failed_at + 1,
            now - 100,
            "active",
            5,
            p2,
            None,
        )],
        cancelled: vec![paddle_subscription(
            "evt_01cancel",
            "subscription.updated",
            failed_at + 2,
            now - 100,
            "active",
            5,
            p2,
            Some(p2),
        )],
        refunded: vec![paddle_envelope(
            "evt_01refund",
            "adjustment.updated",
            failed_at + 3,
            json!({"id": "adj_01", "action": "refund", "type": "full", "status": "approved",
                   "transaction_id": "txn_02", "subscription_id": "sub_01pdl",
                   "customer_id": "ctm_01ann", "reason": "requested",
                   "created_at": rfc(failed_at + 3), "updated_at": rfc(failed_at + 3)}),
        )],
        cancel_ends_at: p2,
    }
}

async fn paddle_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "paddle",
            secrets: vec![PADDLE_SECRET.into()],
            options: json!({}),
            mapping: "pri_pro",
            customer: "ctm_01ann",
            subscription: "sub_01pdl",
            sign: paddle_sign,
            steps: paddle_steps,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// PayPal: RSA-SHA256 over "{transmission id}|{transmission time}|{webhook id}|{crc32(body)}",
// verified with the certificate pinned in the integration (generated for the tests).

const PAYPAL_WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";

fn paypal_fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../billing/tests/fixtures/paypal/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn paypal_sign(body: &str) -> Vec<(String, String)> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::{Pkcs1v15Sign, RsaPrivateKey};
    let key = RsaPrivateKey::from_pkcs8_pem(&paypal_fixture("test_key.pem")).unwrap();
    let transmission_id = format!("tx-{}", uuid_like());
    let time = Timestamp::from_unix_seconds(now_s()).to_rfc3339();
    let message = format!(
        "{transmission_id}|{time}|{PAYPAL_WEBHOOK_ID}|{}",
        crc32fast::hash(body.as_bytes())
    );
    let digest = Sha256::digest(message.as_bytes());
    let signature = STANDARD.encode(key.sign(Pkcs1v15Sign::new::<Sha256>(), &digest).unwrap());
    vec![
        ("paypal-transmission-id".into(), transmission_id),
        ("paypal-transmission-time".into(), time),
        ("paypal-transmission-sig".into(), signature),
        ("paypal-auth-algo".into(), "SHA256withRSA".into()),
        (
            "paypal-cert-url".into(),
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test".into(),
        ),
    ]
}

fn paypal_envelope(
    id: &str,
    event_type: &str,
    at: i64,
    resource_type: &str,
    resource: Value,
) -> Value {
    json!({"id": id, "event_version": "1.0", "create_time": rfc(at),
           "resource_type": resource_type, "resource_version": "2.0", "event_type": event_type,
           "summary": event_type, "resource": resource,
           "links": [{"href": format!("https://api.paypal.com/v1/notifications/webhooks-events/{id}"),
                      "rel": "self", "method": "GET"}]})
}

fn paypal_subscription(
    id: &str,
    event_type: &str,
    at: i64,
    status: &str,
    qty: i64,
    next_billing: i64,
    cycles: i64,
) -> Value {
    paypal_envelope(
        id,
        event_type,
        at,
        "subscription",
        json!({
            "id": "I-BW452GLLEP1G", "plan_id": "P-PRO", "start_time": rfc(at - 100),
            "quantity": qty.to_string(),
            "subscriber": {"name": {"given_name": "Ann", "surname": "Example"},
                           "email_address": "ann@example.com", "payer_id": "2J6QB8YJQSJRJ"},
            "billing_info": {
                "outstanding_balance": {"currency_code": "USD", "value": "0.0"},
                "cycle_executions": [{"tenure_type": "REGULAR", "sequence": 1,
                    "cycles_completed": cycles, "cycles_remaining": 0, "total_cycles": 0}],
                "failed_payments_count": i64::from(event_type == "BILLING.SUBSCRIPTION.PAYMENT.FAILED"),
                "last_payment": {"amount": {"currency_code": "USD", "value": "30.0"}, "time": rfc(at - 10)},
                "next_billing_time": rfc(next_billing)},
            "create_time": rfc(at - 100), "update_time": rfc(at),
            "status": status, "status_update_time": rfc(at),
        }),
    )
}

fn paypal_sale(id: &str, event_type: &str, at: i64, sale: &str) -> Value {
    let refund = event_type == "PAYMENT.SALE.REFUNDED";
    let mut resource = json!({
        "id": if refund { format!("R-{sale}") } else { sale.to_string() },
        "state": "completed",
        "amount": {"total": "150.00", "currency": "USD"},
        "billing_agreement_id": "I-BW452GLLEP1G",
        "create_time": rfc(at), "update_time": rfc(at),
    });
    if refund {
        resource["sale_id"] = json!(sale);
    }
    paypal_envelope(
        id,
        event_type,
        at,
        if refund { "refund" } else { "sale" },
        resource,
    )
}

fn paypal_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    Steps {
        created: vec![paypal_subscription(
            "WH-1ACTIVATED",
            "BILLING.SUBSCRIPTION.ACTIVATED",
            now - 100,
            "ACTIVE",
            1,
            p1,
            1,
        )],
        // GAP: PayPal's renewal event, PAYMENT.SALE.COMPLETED, carries no period (and Keygate
        // does not fetch the subscription), so on its own it cannot move the expiry: the new
        // paid-through date (`next_billing_time`) only arrives with the next
        // BILLING.SUBSCRIPTION.* event. The renewal is therefore the sale followed by such an
        // event (here BILLING.SUBSCRIPTION.UPDATED with the next billing time moved).
        renewed: vec![
            paypal_sale("WH-2SALE", "PAYMENT.SALE.COMPLETED", now - 90, "SALE-2"),
            paypal_subscription(
                "WH-3UPDATED",
                "BILLING.SUBSCRIPTION.UPDATED",
                now - 89,
                "ACTIVE",
                1,
                p2,
                2,
            ),
        ],
        quantity: vec![paypal_subscription(
            "WH-4QTY",
            "BILLING.SUBSCRIPTION.UPDATED",
            now - 80,
            "ACTIVE",
            5,
            p2,
            2,
        )],
        failed: vec![paypal_subscription(
            "WH-5FAILED",
            "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
            failed_at,
            "ACTIVE",
            5,
            p2,
            2,
        )],
        // The retried payment succeeds.
        recovered: vec![paypal_sale(
            "WH-6SALE",
            "PAYMENT.SALE.COMPLETED",
            failed_at + 1,
            "SALE-3",
        )],
        // CANCELLED stops future billing; what was paid for stays until next_billing_time.
        cancelled: vec![paypal_subscription(
            "WH-7CANCELLED",
            "BILLING.SUBSCRIPTION.CANCELLED",
            failed_at + 2,
            "CANCELLED",
            5,
            p2,
            2,
        )],
        refunded: vec![paypal_sale(
            "WH-8REFUND",
            "PAYMENT.SALE.REFUNDED",
            failed_at + 3,
            "SALE-2",
        )],
        cancel_ends_at: p2,
    }
}

async fn paypal_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "paypal",
            secrets: vec![],
            options: json!({"webhook_id": PAYPAL_WEBHOOK_ID,
                            "certificate_pem": paypal_fixture("test_cert.pem")}),
            mapping: "P-PRO",
            customer: "2J6QB8YJQSJRJ",
            subscription: "I-BW452GLLEP1G",
            sign: paypal_sign,
            steps: paypal_steps,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Chargebee: no signature; HTTP Basic auth with the credentials configured as a secret.

const CHARGEBEE_CREDENTIALS: &str = "keygate:cb-webhook-pass";

fn chargebee_sign(_body: &str) -> Vec<(String, String)> {
    vec![(
        "authorization".into(),
        format!("Basic {}", STANDARD.encode(CHARGEBEE_CREDENTIALS)),
    )]
}

fn chargebee_event(id: &str, event_type: &str, at: i64, content: Value) -> Value {
    json!({"id": id, "occurred_at": at, "source": "scheduled_job", "object": "event",
           "api_version": "v2", "event_type": event_type, "webhook_status": "not_configured",
           "content": content})
}

fn chargebee_customer() -> Value {
    json!({"id": "cb_ann", "first_name": "Ann", "last_name": "Example",
           "email": "ann@example.com", "object": "customer"})
}

fn chargebee_subscription(
    status: &str,
    started: i64,
    qty: i64,
    term_end: i64,
    version: i64,
    cancelled_at: Option<i64>,
) -> Value {
    json!({"id": "cb_sub_1", "customer_id": "cb_ann", "status": status,
           "billing_period": 1, "billing_period_unit": "month",
           "current_term_start": term_end - MONTH, "current_term_end": term_end,
           "next_billing_at": if status == "non_renewing" { Value::Null } else { json!(term_end) },
           "started_at": started, "activated_at": started, "created_at": started,
           "cancelled_at": cancelled_at, "has_scheduled_changes": false,
           "resource_version": version, "object": "subscription", "currency_code": "USD",
           "subscription_items": [
               {"item_price_id": "pro-USD-monthly", "item_type": "plan", "quantity": qty,
                "unit_price": 3000, "amount": 3000 * qty, "object": "subscription_item"}]})
}

fn chargebee_invoice(id: &str, status: &str, dunning: Option<&str>, at: i64) -> Value {
    let mut invoice = json!({"id": id, "customer_id": "cb_ann", "subscription_id": "cb_sub_1",
        "recurring": true, "status": status, "date": at, "total": 15000,
        "amount_paid": if status == "paid" { 15000 } else { 0 }, "object": "invoice"});
    if let Some(d) = dunning {
        invoice["dunning_status"] = json!(d);
    }
    invoice
}

fn chargebee_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let started = now - 100;
    // A cancellation scheduled for a specific date before the end of the paid term
    // (Chargebee's `cancel_option: specific_date`): the license ends then.
    let cancel_on = p2 - 86_400;
    Steps {
        created: vec![chargebee_event(
            "ev_cb_created",
            "subscription_created",
            now - 100,
            json!({"subscription": chargebee_subscription("active", started, 1, p1, 1000, None),
                   "customer": chargebee_customer()}),
        )],
        renewed: vec![chargebee_event(
            "ev_cb_renewed",
            "subscription_renewed",
            now - 90,
            json!({"subscription": chargebee_subscription("active", started, 1, p2, 1001, None),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_2", "paid", None, now - 90)}),
        )],
        quantity: vec![chargebee_event(
            "ev_cb_changed",
            "subscription_changed",
            now - 80,
            json!({"subscription": chargebee_subscription("active", started, 5, p2, 1002, None),
                   "customer": chargebee_customer()}),
        )],
        // Chargebee keeps the subscription `active` during dunning.
        failed: vec![chargebee_event(
            "ev_cb_failed",
            "payment_failed",
            failed_at,
            json!({"subscription": chargebee_subscription("active", started, 5, p2, 1003, None),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_3", "payment_due", Some("in_progress"), failed_at),
                   "transaction": {"id": "txn_3", "status": "failure", "type": "payment",
                                   "object": "transaction"}}),
        )],
        recovered: vec![chargebee_event(
            "ev_cb_recovered",
            "payment_succeeded",
            failed_at + 1,
            json!({"subscription": chargebee_subscription("active", started, 5, p2, 1004, None),
                   "customer": chargebee_customer(),
                   "invoice": chargebee_invoice("inv_3", "paid", Some("stopped"), failed_at + 1),
                   "transaction": {"id": "txn_4", "status": "success", "type": "payment",
                                   "object": "transaction"}}),
        )],
        cancelled: vec![chargebee_event(
            "ev_cb_cancel_scheduled",
            "subscription_cancellation_scheduled",
            failed_at + 2,
            json!({"subscription": chargebee_subscription("non_renewing", started, 5, p2, 1005,
                                                          Some(cancel_on)),
                   "customer": chargebee_customer()}),
        )],
        // The refund names the subscription through the refunded invoice.
        refunded: vec![chargebee_event(
            "ev_cb_refunded",
            "payment_refunded",
            failed_at + 3,
            json!({"invoice": chargebee_invoice("inv_2", "paid", None, now - 90),
                   "credit_note": {"id": "cn_1", "reference_invoice_id": "inv_2",
                                   "subscription_id": "cb_sub_1", "type": "refundable",
                                   "status": "refunded", "object": "credit_note"},
                   "transaction": {"id": "txn_r1", "type": "refund", "status": "success",
                                   "object": "transaction"}}),
        )],
        cancel_ends_at: cancel_on,
    }
}

async fn chargebee_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "chargebee",
            secrets: vec![CHARGEBEE_CREDENTIALS.into()],
            options: json!({}),
            mapping: "pro-USD-monthly",
            customer: "cb_ann",
            subscription: "cb_sub_1",
            sign: chargebee_sign,
            steps: chargebee_steps,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// FastSpring: `X-FS-Signature: base64(HMAC-SHA256(secret, body))`; batched `events[]`.

const FASTSPRING_SECRET: &str = "fs-hmac-secret-for-tests";

fn fastspring_sign(body: &str) -> Vec<(String, String)> {
    vec![(
        "x-fs-signature".into(),
        STANDARD.encode(hmac_sha256(FASTSPRING_SECRET.as_bytes(), body.as_bytes())),
    )]
}

fn fastspring_batch(events: Vec<Value>) -> Value {
    json!({"events": events})
}

fn fastspring_event(id: &str, event_type: &str, at: i64, data: Value) -> Value {
    json!({"id": id, "processed": false, "created": at * 1000, "type": event_type,
           "live": true, "data": data})
}

/// A subscription object (Webhook Expansion on): `state`, `active`, `nextInSeconds`, ...
fn fastspring_subscription(
    state: &str,
    qty: i64,
    next: Option<i64>,
    deactivation: Option<i64>,
    changed: i64,
) -> Value {
    json!({"id": "sub_FS1", "subscription": "sub_FS1", "active": true, "state": state,
           "changed": changed * 1000, "changedInSeconds": changed, "live": true,
           "currency": "USD", "account": "acct_Ann1",
           "product": "pro-monthly", "sku": "PRO-M", "display": "Pro Monthly", "quantity": qty,
           "price": 30, "subtotal": 30 * qty, "autoRenew": state != "canceled",
           "next": next.map(|n| n * 1000), "nextInSeconds": next,
           "end": null, "endInSeconds": null,
           "canceledDate": deactivation.map(|_| changed * 1000),
           "canceledDateInSeconds": deactivation.map(|_| changed),
           "deactivationDate": deactivation.map(|d| d * 1000),
           "deactivationDateInSeconds": deactivation,
           "intervalUnit": "month", "intervalLength": 1, "addons": []})
}

fn fastspring_charge(
    id: &str,
    event_type: &str,
    at: i64,
    order: &str,
    status: &str,
    subscription: Value,
) -> Value {
    fastspring_event(
        id,
        event_type,
        at,
        json!({"order": {"id": order, "order": order, "reference": format!("REF-{order}"),
                         "completed": status == "successful", "account": "acct_Ann1"},
               "currency": "USD", "total": 150, "status": status,
               "timestamp": at * 1000, "timestampInSeconds": at,
               "account": {"id": "acct_Ann1", "account": "acct_Ann1",
                           "contact": {"first": "Ann", "last": "Example", "email": "ann@example.com"}},
               "subscription": subscription}),
    )
}

fn fastspring_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let with_customer = |mut sub: Value| {
        sub["customer"] = json!({"first": "Ann", "last": "Example", "email": "ann@example.com"});
        sub
    };
    Steps {
        created: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_activated",
            "subscription.activated",
            now - 100,
            with_customer(fastspring_subscription(
                "active",
                1,
                Some(p1),
                None,
                now - 100,
            )),
        )])],
        renewed: vec![fastspring_batch(vec![fastspring_charge(
            "evt_FS_charge_2",
            "subscription.charge.completed",
            now - 90,
            "ord_FS2",
            "successful",
            fastspring_subscription("active", 1, Some(p2), None, now - 90),
        )])],
        quantity: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_updated",
            "subscription.updated",
            now - 80,
            fastspring_subscription("active", 5, Some(p2), None, now - 80),
        )])],
        // Two events in one POST: the failed charge and the overdue notice.
        failed: vec![fastspring_batch(vec![
            fastspring_charge(
                "evt_FS_charge_failed",
                "subscription.charge.failed",
                failed_at,
                "ord_FS3",
                "failed",
                fastspring_subscription("active", 5, Some(p2), None, failed_at),
            ),
            fastspring_event(
                "evt_FS_overdue",
                "subscription.payment.overdue",
                failed_at,
                fastspring_subscription("overdue", 5, Some(p2), None, failed_at),
            ),
        ])],
        // FastSpring has no "recovered" event: the retried charge completes.
        recovered: vec![fastspring_batch(vec![fastspring_charge(
            "evt_FS_charge_3",
            "subscription.charge.completed",
            failed_at + 1,
            "ord_FS3",
            "successful",
            fastspring_subscription("active", 5, Some(p2), None, failed_at + 1),
        )])],
        // Cancelled: `state: canceled`, still `active` until the deactivation date.
        cancelled: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_canceled",
            "subscription.canceled",
            failed_at + 2,
            fastspring_subscription("canceled", 5, None, Some(p2), failed_at + 2),
        )])],
        // A return of the subscription's renewal order; its item names the subscription.
        refunded: vec![fastspring_batch(vec![fastspring_event(
            "evt_FS_return",
            "return.created",
            failed_at + 3,
            json!({"return": "ret_FS1", "reference": "REF-RET1", "completed": true,
                   "live": true, "account": "acct_Ann1", "currency": "USD",
                   "totalReturn": 150, "reason": "Customer request", "type": "RETURN",
                   "original": {"id": "ord_FS2", "order": "ord_FS2", "account": "acct_Ann1"},
                   "customer": {"first": "Ann", "last": "Example", "email": "ann@example.com"},
                   "items": [{"product": "pro-monthly", "quantity": 5, "subscription": "sub_FS1",
                              "subtotalReturn": 150, "fullReturn": true}]}),
        )])],
        cancel_ends_at: p2,
    }
}

async fn fastspring_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "fastspring",
            secrets: vec![FASTSPRING_SECRET.into()],
            options: json!({}),
            mapping: "pro-monthly",
            customer: "acct_Ann1",
            subscription: "sub_FS1",
            sign: fastspring_sign,
            steps: fastspring_steps,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Lemon Squeezy: `X-Signature: hex(HMAC-SHA256(secret, body))`; JSON:API payloads, synthetic
// event ids from `updated_at`.

const LEMONSQUEEZY_SECRET: &str = "ls-signing-secret-for-tests";

fn lemonsqueezy_sign(body: &str) -> Vec<(String, String)> {
    vec![(
        "x-signature".into(),
        hex(&hmac_sha256(
            LEMONSQUEEZY_SECRET.as_bytes(),
            body.as_bytes(),
        )),
    )]
}

fn lemonsqueezy_event(event_name: &str, data_type: &str, id: &str, attributes: Value) -> Value {
    json!({"meta": {"test_mode": false, "event_name": event_name,
                    "webhook_id": "b5e8a8d2-0f6c-4d8a-9d6c-2b3c4d5e6f70", "custom_data": null},
           "data": {"type": data_type, "id": id, "attributes": attributes,
                    "links": {"self": format!("https://api.lemonsqueezy.com/v1/{data_type}/{id}")}}})
}

fn lemonsqueezy_subscription(
    event_name: &str,
    at: i64,
    status: &str,
    qty: i64,
    renews_at: i64,
    ends_at: Option<i64>,
    created: i64,
) -> Value {
    lemonsqueezy_event(
        event_name,
        "subscriptions",
        "1234",
        json!({"store_id": 4242, "customer_id": 9001, "order_id": 5501, "order_item_id": 6601,
               "product_id": 7001, "variant_id": 8001, "product_name": "Keygate Pro",
               "variant_name": "Monthly", "user_name": "Ann Example",
               "user_email": "ann@example.com", "status": status,
               "cancelled": status == "cancelled", "pause": null, "trial_ends_at": null,
               "billing_anchor": 1,
               "first_subscription_item": {"id": 3301, "subscription_id": 1234, "price_id": 2201,
                   "quantity": qty, "is_usage_based": false,
                   "created_at": rfc(created), "updated_at": rfc(at)},
               "renews_at": rfc(renews_at), "ends_at": ends_at.map(rfc),
               "created_at": rfc(created), "updated_at": rfc(at), "test_mode": false}),
    )
}

fn lemonsqueezy_invoice(event_name: &str, id: &str, at: i64, reason: &str, status: &str) -> Value {
    lemonsqueezy_event(
        event_name,
        "subscription-invoices",
        id,
        json!({"store_id": 4242, "subscription_id": 1234, "customer_id": 9001,
               "user_name": "Ann Example", "user_email": "ann@example.com",
               "billing_reason": reason, "currency": "USD", "status": status,
               "refunded": status == "refunded", "total": 15000,
               "created_at": rfc(at - 1), "updated_at": rfc(at), "test_mode": false}),
    )
}

fn lemonsqueezy_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    let created = now - 100;
    Steps {
        created: vec![lemonsqueezy_subscription(
            "subscription_created",
            now - 100,
            "active",
            1,
            p1,
            None,
            created,
        )],
        // The renewal payment carries no period; `subscription_updated` brings `renews_at`.
        renewed: vec![
            lemonsqueezy_invoice(
                "subscription_payment_success",
                "5551",
                now - 90,
                "renewal",
                "paid",
            ),
            lemonsqueezy_subscription(
                "subscription_updated",
                now - 89,
                "active",
                1,
                p2,
                None,
                created,
            ),
        ],
        quantity: vec![lemonsqueezy_subscription(
            "subscription_updated",
            now - 80,
            "active",
            5,
            p2,
            None,
            created,
        )],
        failed: vec![lemonsqueezy_invoice(
            "subscription_payment_failed",
            "5552",
            failed_at,
            "renewal",
            "pending",
        )],
        recovered: vec![lemonsqueezy_invoice(
            "subscription_payment_recovered",
            "5552",
            failed_at + 1,
            "renewal",
            "paid",
        )],
        // `cancelled` is Lemon Squeezy's grace period: access continues until `ends_at`.
        cancelled: vec![lemonsqueezy_subscription(
            "subscription_cancelled",
            failed_at + 2,
            "cancelled",
            5,
            p2,
            Some(p2),
            created,
        )],
        refunded: vec![lemonsqueezy_invoice(
            "subscription_payment_refunded",
            "5551",
            failed_at + 3,
            "renewal",
            "refunded",
        )],
        cancel_ends_at: p2,
    }
}

async fn lemonsqueezy_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "lemonsqueezy",
            secrets: vec![LEMONSQUEEZY_SECRET.into()],
            options: json!({}),
            mapping: "8001",
            customer: "9001",
            subscription: "1234",
            sign: lemonsqueezy_sign,
            steps: lemonsqueezy_steps,
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Generic: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64
// HMAC-SHA256(key, "{id}.{ts}.{body}")>`, key = base64 after `whsec_`) over Keygate's own
// normalized BillingEvent JSON.

const GENERIC_KEY: &[u8] = b"keygate-generic-standard-webhooks-key";

fn generic_secret() -> String {
    format!("whsec_{}", STANDARD.encode(GENERIC_KEY))
}

fn generic_sign(body: &str) -> Vec<(String, String)> {
    let id = format!("msg_{}", uuid_like());
    let ts = now_s();
    let signature = STANDARD.encode(hmac_sha256(
        GENERIC_KEY,
        format!("{id}.{ts}.{body}").as_bytes(),
    ));
    vec![
        ("webhook-id".into(), id),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{signature}")),
    ]
}

fn generic_event(
    event_id: &str,
    kind: &str,
    at: i64,
    subscription: Value,
    order: Option<&str>,
) -> Value {
    json!({"event_id": event_id, "event_type": format!("shop.{kind}"), "kind": kind,
           "occurred_at": rfc(at), "livemode": true,
           "customer": {"external_id": "c-42", "email": "ann@example.com", "name": "Ann"},
           "subscription": subscription,
           "order": order.map(|o| json!({"external_id": o, "lines": []}))})
}

fn generic_full(qty: i64, period_end: i64, cancel_at: Option<i64>) -> Value {
    json!({"external_id": "sub-7", "status": "active",
           "items": [{"external_id": "pro-monthly", "product_external_id": "pro", "quantity": qty}],
           "current_period_end": rfc(period_end), "cancel_at_period_end": cancel_at.is_some(),
           "cancel_at": cancel_at.map(rfc), "ended_at": null, "trial_end": null,
           "partial": false})
}

fn generic_steps(now: i64, failed_at: i64) -> Steps {
    let p1 = now + MONTH;
    let p2 = now + 2 * MONTH;
    // A cancellation the shop schedules for a date before the end of the paid period.
    let cancel_on = p2 - 86_400;
    Steps {
        created: vec![generic_event(
            "sub-7-activated",
            "subscription_activated",
            now - 100,
            generic_full(1, p1, None),
            Some("inv-1"),
        )],
        renewed: vec![generic_event(
            "sub-7-renewed",
            "subscription_renewed",
            now - 90,
            json!({"external_id": "sub-7", "current_period_end": rfc(p2), "partial": true}),
            Some("inv-2"),
        )],
        quantity: vec![generic_event(
            "sub-7-seats",
            "subscription_updated",
            now - 80,
            generic_full(5, p2, None),
            None,
        )],
        failed: vec![generic_event(
            "sub-7-failed",
            "payment_failed",
            failed_at,
            json!({"external_id": "sub-7", "status": "past_due", "partial": true}),
            Some("inv-3"),
        )],
        recovered: vec![generic_event(
            "sub-7-recovered",
            "payment_recovered",
            failed_at + 1,
            json!({"external_id": "sub-7", "partial": true}),
            Some("inv-3"),
        )],
        cancelled: vec![generic_event(
            "sub-7-cancel",
            "subscription_cancel_scheduled",
            failed_at + 2,
            generic_full(5, p2, Some(cancel_on)),
            None,
        )],
        refunded: vec![generic_event(
            "sub-7-refund",
            "refunded",
            failed_at + 3,
            json!({"external_id": "sub-7", "partial": true}),
            Some("inv-2"),
        )],
        cancel_ends_at: cancel_on,
    }
}

async fn generic_lifecycle(app: &TestApp) {
    lifecycle(
        app,
        Platform {
            provider: "generic",
            secrets: vec![generic_secret()],
            options: json!({}),
            mapping: "pro-monthly",
            customer: "c-42",
            subscription: "sub-7",
            sign: generic_sign,
            steps: generic_steps,
        },
    )
    .await;
}
