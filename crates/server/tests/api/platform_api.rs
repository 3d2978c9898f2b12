//! Thin events completed from the platform's API: a local stand-in answers exactly as Stripe's
//! documented API does (`GET /v1/checkout/sessions/{id}/line_items`, Bearer secret key).
use crate::harness::{Reply, TestApp};
use crate::stand_in::ApiStandIn;
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

mod checkout_line_items_fetched {
    use crate::harness::TestApp;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::sqlite_with(|c| c.outbound_allow_private = true).await;
        super::checkout_line_items_fetched(&app).await;
        app.finish().await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let app = TestApp::postgres_with(|c| c.outbound_allow_private = true).await;
        super::checkout_line_items_fetched(&app).await;
        app.finish().await;
    }
}

crate::on_both_engines!(
    subscription_refunds_reach_licenses_on_every_api_version,
    refund_policy_revokes_only_what_it_says
);

const SECRET: &str = "whsec_test_secret";
const SECRET_KEY: &str = "sk_test_standin_key";

/// A local stand-in for `api.stripe.com`: line items of known sessions, 401 without the
/// right key, 404 for unknown sessions (Stripe's error shape).
async fn stand_in() -> ApiStandIn {
    ApiStandIn::start(|seen| {
        let line = format!("{} {} HTTP/1.1", seen.method, seen.path_and_query);
        answer(&line, seen.headers.get("authorization").unwrap_or(""))
    })
    .await
}

/// What the stand-in was asked: `(request line, authorization header)`.
fn asked(stand_in: &ApiStandIn) -> Vec<(String, String)> {
    stand_in
        .seen()
        .into_iter()
        .map(|s| {
            (
                format!("{} {} HTTP/1.1", s.method, s.path_and_query),
                s.headers.get("authorization").unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn answer(line: &str, auth: &str) -> (u16, Value) {
    if auth != format!("Bearer {SECRET_KEY}") {
        return (
            401,
            json!({"error": {"type": "invalid_request_error",
                   "message": "Invalid API Key provided: sk_test_***"}}),
        );
    }
    let path = line.split(' ').nth(1).unwrap_or("");
    let Some(session) = path
        .strip_prefix("/v1/checkout/sessions/")
        .and_then(|rest| rest.strip_suffix("/line_items?limit=100"))
    else {
        return (404, json!({"error": {"type": "invalid_request_error"}}));
    };
    let quantity = match session {
        "cs_test_one" => 1,
        "cs_test_two" => 3,
        _ => {
            return (
                404,
                json!({"error": {"code": "resource_missing", "type": "invalid_request_error",
                       "message": format!("No such checkout.session: '{session}'")}}),
            );
        }
    };
    (
        200,
        json!({"object": "list", "url": format!("/v1/checkout/sessions/{session}/line_items"),
            "has_more": false, "data": [{
                "id": format!("li_{session}"), "object": "item", "amount_discount": 0,
                "amount_subtotal": 9900 * quantity, "amount_tax": 0,
                "amount_total": 9900 * quantity, "currency": "usd", "description": "Lifetime",
                "price": {"id": "price_lifetime", "object": "price", "active": true,
                    "billing_scheme": "per_unit", "currency": "usd", "livemode": false,
                    "product": "prod_lifetime", "type": "one_time", "unit_amount": 9900},
                "quantity": quantity}]}),
    )
}

/// `checkout.session.completed` for a one-time payment, as Stripe sends it: no `line_items`.
pub fn checkout(event_id: &str, session: &str, payment_intent: &str) -> Value {
    json!({"id": event_id, "object": "event", "api_version": "2025-03-31.basil",
        "created": Timestamp::now().millis() / 1000, "livemode": false,
        "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "type": "checkout.session.completed", "data": {"object": {
            "id": session, "object": "checkout.session", "mode": "payment",
            "status": "complete", "payment_status": "paid", "amount_total": 9900,
            "currency": "usd", "customer": null,
            "customer_details": {"email": "eve@example.com", "name": "Eve"},
            "payment_intent": payment_intent, "subscription": null, "invoice": null,
            "metadata": {}, "livemode": false}}})
}

pub async fn deliver(app: &TestApp, integration: &Value, event: &Value) -> Reply {
    let body = event.to_string();
    let t = Timestamp::now().millis() / 1000;
    let signature =
        keygate_billing::providers::stripe::SCHEME.sign(SECRET.as_bytes(), t, body.as_bytes());
    let url = integration["webhook_url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    app.send(
        "POST",
        path,
        None,
        Some(Value::String(body)),
        &[("stripe-signature", &signature)],
    )
    .await
}

pub async fn event_of(app: &TestApp, api: &str, reply: &Reply) -> Value {
    let id = reply.body["events"][0]["id"]
        .as_str()
        .or_else(|| reply.body["data"][0]["id"].as_str())
        .unwrap_or_else(|| panic!("no event id: {}", reply.body));
    app.get(&format!("/v1/events/{id}"), api).await.body
}

async fn licenses(app: &TestApp, api: &str) -> Vec<Value> {
    app.get("/v1/licenses", api).await.body["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn checkout_line_items_fetched(app: &TestApp) {
    let stand_in = stand_in().await;
    let base = stand_in.base_url.clone();
    let api = app.account("Shop").await;
    let policy = app.policy(&api, json!({"max_activations": 1})).await;
    let created = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET],
                   "options": {"api_base_url": base},
                   "mappings": [{"external_id": "price_lifetime", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let integration = created.body;
    let path = format!("/v1/integrations/{}", integration["id"].as_str().unwrap());

    // No API credentials: failed with what to configure, nothing granted, nothing asked.
    let r = deliver(
        app,
        &integration,
        &checkout("evt_one", "cs_test_one", "pi_one"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let event = event_of(app, &api, &r).await;
    assert_eq!(event["status"], "failed", "{event}");
    assert_eq!(
        event["error"]["code"], "API_CREDENTIALS_REQUIRED",
        "{event}"
    );
    assert!(licenses(app, &api).await.is_empty());
    assert!(asked(&stand_in).is_empty());

    // Credentials set, the event replayed: the line items fetched, the mapped price licensed.
    let r = app
        .patch(
            &path,
            &api,
            json!({"api_credentials": {"secret_key": SECRET_KEY}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let event_id = event["id"].as_str().unwrap();
    let replayed = app
        .post(&format!("/v1/events/{event_id}/replay"), &api, json!({}))
        .await;
    assert_eq!(replayed.body["status"], "applied", "{}", replayed.body);
    assert_eq!(
        asked(&stand_in),
        [(
            "GET /v1/checkout/sessions/cs_test_one/line_items?limit=100 HTTP/1.1".to_string(),
            format!("Bearer {SECRET_KEY}")
        )]
    );
    let granted = licenses(app, &api).await;
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0]["policy_id"], policy.as_str());
    // Replaying the completed event asks the API nothing more and grants nothing more.
    app.post(&format!("/v1/events/{event_id}/replay"), &api, json!({}))
        .await;
    assert_eq!(asked(&stand_in).len(), 1);
    assert_eq!(licenses(app, &api).await.len(), 1);

    // The platform's API down: a few tries, then `pending`, never `applied` with no items;
    // the worker completes it once the API answers again.
    stand_in.fail_next(3);
    let r = deliver(
        app,
        &integration,
        &checkout("evt_two", "cs_test_two", "pi_two"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let event = event_of(app, &api, &r).await;
    assert_eq!(event["status"], "pending", "{event}");
    assert_eq!(event["error"]["code"], "API_FETCH_FAILED", "{event}");
    assert_eq!(asked(&stand_in).len(), 4, "three tries");
    assert_eq!(licenses(app, &api).await.len(), 1);
    let two = event["id"].as_str().unwrap().to_string();
    let mut status = String::new();
    for _ in 0..60 {
        status = app.get(&format!("/v1/events/{two}"), &api).await.body["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if status == "applied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, "applied");
    let granted = licenses(app, &api).await;
    assert_eq!(granted.len(), 2, "{granted:?}");

    // A key the platform refuses: failed with the code that says so, not retried forever.
    app.patch(
        &path,
        &api,
        json!({"api_credentials": {"secret_key": "sk_test_revoked"}}),
    )
    .await;
    let r = deliver(
        app,
        &integration,
        &checkout("evt_three", "cs_test_one", "pi_three"),
    )
    .await;
    let event = event_of(app, &api, &r).await;
    assert_eq!(event["status"], "failed", "{event}");
    assert_eq!(
        event["error"]["code"], "API_CREDENTIALS_REJECTED",
        "{event}"
    );
    assert_eq!(licenses(app, &api).await.len(), 2);
}

fn stripe_event(id: &str, kind: &str, api_version: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "api_version": api_version,
        "created": Timestamp::now().millis() / 1000, "livemode": true, "type": kind,
        "data": {"object": object}})
}

fn subscription_created(sub: &str, api_version: &str) -> Value {
    let now = Timestamp::now().millis() / 1000;
    stripe_event(
        &format!("evt_created_{sub}"),
        "customer.subscription.created",
        api_version,
        json!({
        "id": sub, "object": "subscription", "customer": "cus_ann", "status": "active",
        "cancel_at": null, "cancel_at_period_end": false, "canceled_at": null, "ended_at": null,
        "trial_end": null, "pause_collection": null, "current_period_end": now + 30 * 86400,
        "items": {"object": "list", "has_more": false, "data": [{
            "id": format!("si_{sub}"), "object": "subscription_item", "quantity": 1,
            "current_period_end": now + 30 * 86400, "subscription": sub,
            "price": {"id": "price_pro", "object": "price", "product": "prod_pro"}}]}}),
    )
}

/// A renewal invoice: pre-basil it names its payment intent and charge, basil does not.
fn renewal_paid(sub: &str, invoice: &str, api_version: &str, pre_basil: bool) -> Value {
    let now = Timestamp::now().millis() / 1000;
    let mut object = json!({
        "id": invoice, "object": "invoice", "billing_reason": "subscription_cycle",
        "status": "paid", "amount_paid": 5000, "customer": "cus_ann",
        "lines": {"object": "list", "has_more": false, "data": [{
            "id": "il_1", "object": "line_item", "amount": 5000, "quantity": 1,
            "period": {"start": now, "end": now + 60 * 86400},
            "type": "subscription", "proration": false, "subscription": sub,
            "price": {"id": "price_pro", "product": "prod_pro"}}]}});
    if pre_basil {
        object["subscription"] = sub.into();
        object["payment_intent"] = format!("pi_{invoice}").into();
        object["charge"] = format!("ch_{invoice}").into();
    } else {
        object["parent"] = json!({"type": "subscription_details",
            "subscription_details": {"metadata": {}, "subscription": sub}});
    }
    stripe_event(
        &format!("evt_paid_{invoice}"),
        "invoice.paid",
        api_version,
        object,
    )
}

async fn state_of(app: &TestApp, api: &str) -> (String, String) {
    let list = licenses(app, api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let v = app.validate(json!({"key": list[0]["key"]})).await;
    (
        list[0]["status"].as_str().unwrap_or("").to_string(),
        v.body["code"].as_str().unwrap_or("").to_string(),
    )
}

/// A refund or dispute naming only the payment intent or the charge of a renewal reaches the
/// subscription's licenses, before basil (the invoice names them) and after (the
/// `invoice_payment.paid` event does).
async fn subscription_refunds_reach_licenses_on_every_api_version(app: &TestApp) {
    for (version, pre_basil) in [("2024-06-20", true), ("2025-03-31.basil", false)] {
        let api = app.account(&format!("Shop {version}")).await;
        let policy = app
            .policy(
                &api,
                json!({"expiry": "subscription", "max_activations": 1}),
            )
            .await;
        let integration = app
            .post(
                "/v1/integrations",
                &api,
                json!({"provider": "stripe", "secrets": [SECRET],
                       "mappings": [{"external_id": "price_pro", "policy_id": policy}]}),
            )
            .await
            .body;
        let sub = format!("sub_{}", if pre_basil { "old" } else { "new" });
        let invoice = format!("in_{}", if pre_basil { "old" } else { "new" });
        for event in [
            subscription_created(&sub, version),
            renewal_paid(&sub, &invoice, version, pre_basil),
        ] {
            let r = deliver(app, &integration, &event).await;
            assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
        }
        if !pre_basil {
            let link = stripe_event(
                "evt_inpay",
                "invoice_payment.paid",
                version,
                json!({
                "id": "inpay_1", "object": "invoice_payment", "amount_paid": 5000,
                "currency": "usd", "invoice": invoice, "is_default": true, "livemode": true,
                "payment": {"type": "payment_intent", "payment_intent": format!("pi_{invoice}")},
                "status": "paid", "status_transitions": {"canceled_at": null, "paid_at": 1}}),
            );
            let r = deliver(app, &integration, &link).await;
            assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
        }
        assert_eq!(state_of(app, &api).await.1, "VALID");
        // Basil refunds and disputes carry `payment_intent` and `charge`, never `invoice`.
        let dispute = stripe_event(
            "evt_dispute",
            "charge.dispute.created",
            version,
            json!({
            "id": "dp_1", "object": "dispute", "amount": 5000, "currency": "usd",
            "charge": format!("ch_{invoice}"),
            "payment_intent": if pre_basil { Value::Null } else { format!("pi_{invoice}").into() },
            "reason": "fraudulent", "status": "needs_response", "is_charge_refundable": false}),
        );
        let r = deliver(app, &integration, &dispute).await;
        let event = event_of(app, &api, &r).await;
        assert_eq!(event["status"], "applied", "{event}");
        let (status, code) = state_of(app, &api).await;
        assert_eq!(
            (status.as_str(), code.as_str()),
            ("revoked", "REVOKED"),
            "{version}: {event}"
        );
    }
}

fn charge_refunded(id: &str, invoice: &str, amount_refunded: i64) -> Value {
    stripe_event(
        id,
        "charge.refunded",
        "2024-06-20",
        json!({
        "id": format!("ch_{invoice}"), "object": "charge", "amount": 5000,
        "amount_refunded": amount_refunded, "refunded": amount_refunded >= 5000,
        "customer": "cus_ann", "invoice": invoice, "payment_intent": format!("pi_{invoice}")}),
    )
}

/// `options.refunds`: `full` (the default) revokes on a full refund or a chargeback only,
/// `any` on any refund, `never` on nothing; what does not revoke is recorded.
async fn refund_policy_revokes_only_what_it_says(app: &TestApp) {
    for (policy_option, partial_revokes, full_revokes) in [
        (None, false, true),
        (Some("any"), true, true),
        (Some("never"), false, false),
    ] {
        let api = app.account(&format!("Shop {policy_option:?}")).await;
        let policy = app
            .policy(
                &api,
                json!({"expiry": "subscription", "max_activations": 1}),
            )
            .await;
        let mut options = json!({});
        if let Some(p) = policy_option {
            options["refunds"] = p.into();
        }
        let integration = app
            .post(
                "/v1/integrations",
                &api,
                json!({"provider": "stripe", "secrets": [SECRET], "options": options,
                       "mappings": [{"external_id": "price_pro", "policy_id": policy}]}),
            )
            .await
            .body;
        for event in [
            subscription_created("sub_p", "2024-06-20"),
            renewal_paid("sub_p", "in_p", "2024-06-20", true),
        ] {
            deliver(app, &integration, &event).await;
        }
        // An inquiry never revokes: recorded in the event's actions.
        let inquiry = stripe_event(
            "evt_inquiry",
            "charge.dispute.created",
            "2024-06-20",
            json!({
            "id": "dp_w", "object": "dispute", "amount": 5000, "charge": "ch_in_p",
            "payment_intent": "pi_in_p", "status": "warning_needs_response"}),
        );
        let event = event_of(app, &api, &deliver(app, &integration, &inquiry).await).await;
        assert_eq!(event["status"], "applied", "{event}");
        assert!(
            event["actions"].to_string().contains("dispute_inquiry"),
            "{event}"
        );
        assert_eq!(state_of(app, &api).await.1, "VALID");

        let partial = charge_refunded("evt_partial", "in_p", 500);
        let event = event_of(app, &api, &deliver(app, &integration, &partial).await).await;
        assert_eq!(event["status"], "applied", "{event}");
        let (status, _) = state_of(app, &api).await;
        assert_eq!(
            status == "revoked",
            partial_revokes,
            "{policy_option:?}: {event}"
        );
        if !partial_revokes {
            assert!(
                event["actions"].to_string().contains("partial_refund"),
                "{event}"
            );
        }
        let full = charge_refunded("evt_full", "in_p", 5000);
        let event = event_of(app, &api, &deliver(app, &integration, &full).await).await;
        let (status, _) = state_of(app, &api).await;
        assert_eq!(
            status == "revoked",
            full_revokes,
            "{policy_option:?}: {event}"
        );
    }
    let api = app.account("Bad option").await;
    let r = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": [SECRET], "options": {"refunds": "some"}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INVALID_FIELD"), "{}", r.body);
}
