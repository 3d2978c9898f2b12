//! Gumroad: the URL token (constant time, rotation), bracketed form pings and JSON pings,
//! synthetic event ids that ignore `retry_count`, every fixture, and the API confirmation.
//!
//! Fixtures are pings shaped as Gumroad's `payload_for_ping_notification` builds them
//! (antiwork/gumroad: `Purchase::PingNotification`, `Subscription::PingNotification`), nested as
//! JSON; they are posted form-encoded the way Gumroad's worker encodes them.

mod common;

use common::*;
use keygate_billing::api::{Fetch, ObjectKind};
use keygate_billing::testkit::{GumroadKit, form_encode};
use keygate_billing::{
    BillingEvent, BillingEventKind as Kind, Headers, Provider, Request,
    SubscriptionStatus as Status,
};
use keygate_domain::billing::Reversal;
use serde_json::{Value, json};

const TOKEN: &str = "a-url-token-of-some-length";

fn platform() -> &'static dyn Provider {
    keygate_billing::provider("gumroad").unwrap()
}

fn payload(name: &str) -> Value {
    serde_json::from_slice(&fixture("gumroad", name)).unwrap()
}

fn form(payload: &Value) -> Vec<u8> {
    form_encode(&GumroadKit::form_pairs(payload)).into_bytes()
}

fn parse_body(body: &[u8]) -> BillingEvent {
    let headers = Headers::new();
    let mut events = platform().parse(&Request::post(&headers, body)).unwrap();
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn parse(name: &str) -> BillingEvent {
    parse_body(&form(&payload(name)))
}

fn verify(query: &str, tokens: &[&str]) -> Result<(), keygate_billing::BillingError> {
    let headers = Headers::new();
    let body = form(&payload("sale.json"));
    let request = Request::post(&headers, &body).with_query(query);
    platform().verify(&request, &secrets(tokens), secs(0))
}

#[test]
fn the_url_token_authenticates() {
    verify(&format!("token={TOKEN}"), &[TOKEN]).unwrap();
    // Rotation: either token.
    verify(
        &format!("token={TOKEN}"),
        &["another-token-0123456789", TOKEN],
    )
    .unwrap();
    verify(
        "a=1&token=another-token-0123456789",
        &["another-token-0123456789", TOKEN],
    )
    .unwrap();
    assert_eq!(refused(verify("", &[TOKEN])), "SIGNATURE_MISSING");
    assert_eq!(refused(verify("token=", &[TOKEN])), "SIGNATURE_MISSING");
    assert_eq!(refused(verify("tok=x", &[TOKEN])), "SIGNATURE_MISSING");
    for wrong in [
        "token=a-url-token-of-some-lengtH",
        "token=a-url-token-of-some-length-and-more",
        "token=a",
    ] {
        assert_eq!(
            refused(verify(wrong, &[TOKEN])),
            "SIGNATURE_INVALID",
            "{wrong}"
        );
    }
    assert_eq!(
        refused(verify(&format!("token={TOKEN}"), &[" "])),
        "SECRET_NOT_CONFIGURED"
    );
}

#[test]
fn tokens_must_be_long_and_url_safe() {
    let now = secs(0);
    platform().check_config(&secrets(&[TOKEN]), now).unwrap();
    for bad in [
        "short",
        "has space in the token",
        "with/slash/0123456789",
        "ümlaut-0123456789ab",
    ] {
        let err = platform().check_config(&secrets(&[bad]), now).unwrap_err();
        assert_eq!(err.code(), "SECRET_INVALID", "{bad}");
    }
    let err = platform().check_config(&secrets(&[]), now).unwrap_err();
    assert_eq!(err.code(), "SECRET_NOT_CONFIGURED");
}

#[test]
fn bracketed_forms_as_gumroad_posts_them() {
    // Written by hand as HTTParty encodes a nested hash: structural brackets percent-encoded,
    // brackets inside a name escaped once more by Gumroad's worker, and a retry's count.
    let body = b"seller_id=kL9mN0pQ1rS2tU3v%3D%3D&product_id=32-nPainLBVrqUBGAV9gHw%3D%3D\
        &email=buyer%40example.com&price=3000&quantity=2&currency=usd\
        &card%5Bvisual%5D=%2A%2A%2A%2A+%2A%2A%2A%2A+%2A%2A%2A%2A+4242&card%5Btype%5D=visa\
        &card%5Bbin%5D=&sale_id=Kd81mWq0tYbP3cXe5Zr7Lg%3D%3D\
        &sale_timestamp=2026-03-05T14%3A22%3A09Z&full_name=Bj%C3%B6rn+Buyer\
        &purchaser_id=6251289846914&variants%5BEdition%5D=Team\
        &custom_fields%5BCompany+%255Blegal+name%255D%5D=Example+GmbH\
        &license_key=1A2B3C4D-5E6F7A8B-9C0D1E2F-3A4B5C6D&refunded=false&resource_name=sale\
        &disputed=false&dispute_won=false&retry_count=2";
    let event = parse_body(body);
    assert_eq!(event, parse("sale.json"), "a retry is the same event");
    check(
        "sale",
        &event,
        Kind::OrderPaid,
        Expect {
            event_id: Some("sale:Kd81mWq0tYbP3cXe5Zr7Lg=="),
            order_id: Some("Kd81mWq0tYbP3cXe5Zr7Lg=="),
            items: Some(vec![("32-nPainLBVrqUBGAV9gHw==", 2)]),
            customer_id: Some("6251289846914"),
            email: Some("buyer@example.com"),
            ..Expect::default()
        },
    );
    assert_eq!(event.customer.unwrap().name.as_deref(), Some("Björn Buyer"));
    assert_eq!(
        event.license_key.as_deref(),
        Some("1A2B3C4D-5E6F7A8B-9C0D1E2F-3A4B5C6D")
    );
    assert_eq!(event.occurred_at, rfc("2026-03-05T14:22:09Z"));
    assert!(event.livemode);
    assert_eq!(event.needs_fetch, ["/v2/sales/Kd81mWq0tYbP3cXe5Zr7Lg=="]);
}

#[test]
fn json_pings_read_like_forms() {
    for name in fixture_names("gumroad", &[]) {
        let json = serde_json::to_vec(&payload(&name)).unwrap();
        assert_eq!(parse_body(&json), parse(&name), "{name}");
    }
    // Typed JSON values (booleans, numbers) as a JSON resource subscription sends them.
    let mut typed = payload("sale.recurring.json");
    typed["is_recurring_charge"] = json!(true);
    typed["quantity"] = json!(3);
    typed["test"] = json!(true);
    let event = parse_body(&serde_json::to_vec(&typed).unwrap());
    assert_eq!(event.kind, Kind::SubscriptionRenewed);
    assert_eq!(event.items()[0].quantity, 3);
    assert!(!event.livemode, "a test purchase");
}

#[test]
fn membership_sales_carry_their_period() {
    let first = parse("sale.membership.json");
    check(
        "membership",
        &first,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("sale:FO8TXN-dbxYaBdahG97Y-Q=="),
            subscription_id: Some("ifsMOaNAoTMZhq2Zf2kaDQ=="),
            status: Some(Status::Active),
            // 31 January + 1 month, as Rails adds it.
            period_end: Some(rfc("2026-02-28T10:00:00Z")),
            items: Some(vec![("eFgH1234IjKl5678MnOp==", 1)]),
            order_id: Some("FO8TXN-dbxYaBdahG97Y-Q=="),
            partial: Some(true),
            ..Expect::default()
        },
    );
    assert!(first.order.as_ref().unwrap().lines.is_empty());
    check(
        "renewal",
        &parse("sale.recurring.json"),
        Kind::SubscriptionRenewed,
        Expect {
            period_end: Some(rfc("2026-03-28T10:00:03Z")),
            ..Expect::default()
        },
    );
    check(
        "yearly from a leap day",
        &parse("sale.yearly.json"),
        Kind::SubscriptionActivated,
        Expect {
            period_end: Some(rfc("2025-02-28T08:00:00Z")),
            ..Expect::default()
        },
    );
}

#[test]
fn refunds_and_disputes() {
    let full = parse("refund.json");
    check(
        "refund",
        &full,
        Kind::Refunded,
        Expect {
            event_id: Some("refund:Kd81mWq0tYbP3cXe5Zr7Lg==:full"),
            order_id: Some("Kd81mWq0tYbP3cXe5Zr7Lg=="),
            ..Expect::default()
        },
    );
    assert_eq!(full.reversal, Some(Reversal::FullRefund));
    let partial = parse("refund.partial.json");
    assert_eq!(partial.event_id, "refund:Kd81mWq0tYbP3cXe5Zr7Lg==:partial");
    assert_eq!(partial.reversal, Some(Reversal::PartialRefund));
    let dispute = parse("dispute.json");
    check(
        "dispute",
        &dispute,
        Kind::Chargeback,
        Expect {
            event_id: Some("dispute:FO8TXN-dbxYaBdahG97Y-Q=="),
            subscription_id: Some("ifsMOaNAoTMZhq2Zf2kaDQ=="),
            ..Expect::default()
        },
    );
    // A dispute names the membership but tells nothing about its status or period.
    let sub = dispute.subscription.unwrap();
    assert_eq!((sub.status, sub.current_period_end), (None, None));
    let won = parse("dispute_won.json");
    check("won", &won, Kind::Ignored, Expect::default());
    assert!(won.needs_fetch.is_empty(), "nothing to confirm");
}

#[test]
fn membership_changes() {
    let cancel = parse("cancellation.json");
    check(
        "cancellation",
        &cancel,
        Kind::SubscriptionCancelScheduled,
        Expect {
            event_id: Some("cancellation:ifsMOaNAoTMZhq2Zf2kaDQ==:2026-03-10T09:30:00Z"),
            subscription_id: Some("ifsMOaNAoTMZhq2Zf2kaDQ=="),
            customer_id: Some("6251289846914"),
            email: Some("buyer@example.com"),
            ..Expect::default()
        },
    );
    assert_eq!(
        cancel.needs_fetch,
        ["/v2/subscribers/ifsMOaNAoTMZhq2Zf2kaDQ=="]
    );
    assert_ne!(
        parse("cancellation.payment_failures.json").event_id,
        cancel.event_id
    );
    let updated = parse("subscription_updated.json");
    check(
        "updated",
        &updated,
        Kind::SubscriptionUpdated,
        Expect {
            event_id: Some(
                "subscription_updated:ifsMOaNAoTMZhq2Zf2kaDQ==:2026-03-02T12:00:00Z:tIeR2==:5",
            ),
            items: Some(vec![("eFgH1234IjKl5678MnOp==", 5)]),
            ..Expect::default()
        },
    );
    let ended = parse("subscription_ended.json");
    check(
        "ended",
        &ended,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            ..Expect::default()
        },
    );
    assert_eq!(
        ended.subscription.unwrap().ended_at,
        Some(rfc("2026-03-31T10:00:00Z"))
    );
    check(
        "restarted",
        &parse("subscription_restarted.json"),
        Kind::SubscriptionResumed,
        Expect {
            status: Some(Status::Active),
            ..Expect::default()
        },
    );
}

#[test]
fn malformed_and_unknown_pings() {
    let headers = Headers::new();
    for (body, why) in [
        (
            &b"resource_name=sale&sale_timestamp=2026-01-01T00%3A00%3A00Z"[..],
            "no sale_id",
        ),
        (
            b"resource_name=sale&sale_id=x&sale_timestamp=yesterday",
            "bad time",
        ),
        (
            b"resource_name=cancellation&cancelled_at=2026-01-01T00%3A00%3A00Z",
            "no subscription",
        ),
        (
            b"resource_name=subscription_ended&subscription_id=s",
            "no ended_at",
        ),
        (b"{\"resource_name\": ", "broken JSON"),
    ] {
        let err = platform()
            .parse(&Request::post(&headers, body))
            .unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PAYLOAD", "{why}");
    }
    let unknown = parse_body(b"resource_name=product_updated&sale_id=x&retry_count=1");
    assert_eq!(unknown.kind, Kind::Ignored);
    assert_eq!(unknown.event_id, "product_updated:x");
    // The legacy Ping sends no `resource_name`: a sale.
    let mut legacy = payload("sale.json");
    legacy.as_object_mut().unwrap().remove("resource_name");
    assert_eq!(
        parse_body(&form(&legacy)).event_id,
        "sale:Kd81mWq0tYbP3cXe5Zr7Lg=="
    );
}

fn api_sale(overrides: Value) -> Value {
    let mut sale = json!({"id": "Kd81mWq0tYbP3cXe5Zr7Lg==", "product_id": "32-nPainLBVrqUBGAV9gHw==",
                          "refunded": false, "partially_refunded": false, "chargedback": false,
                          "disputed": false, "dispute_won": false});
    for (k, v) in overrides.as_object().unwrap() {
        sale[k] = v.clone();
    }
    json!({"success": true, "sale": sale})
}

fn complete(
    event: BillingEvent,
    answer: Value,
) -> Result<BillingEvent, keygate_billing::BillingError> {
    let fetches = platform().fetches(&event);
    assert_eq!(fetches.len(), 1);
    platform().complete(event, &[(fetches[0].clone(), answer)])
}

#[test]
fn the_api_confirms_each_ping() {
    assert!(platform().api_optional());
    let spec = platform().api().unwrap();
    assert_eq!(spec.default_base_url, "https://api.gumroad.com");
    assert_eq!(
        platform().fetches(&parse("sale.json")),
        [Fetch::get(
            ObjectKind::Order,
            "/v2/sales/Kd81mWq0tYbP3cXe5Zr7Lg=="
        )]
    );
    let done = complete(parse("sale.json"), api_sale(json!({}))).unwrap();
    assert!(done.needs_fetch.is_empty());
    assert_eq!(done.kind, Kind::OrderPaid);

    for (name, answer, why) in [
        (
            "sale.json",
            json!({"success": false, "message": "not found"}),
            "no such sale",
        ),
        (
            "sale.json",
            api_sale(json!({"id": "other=="})),
            "another sale",
        ),
        (
            "sale.json",
            api_sale(json!({"product_id": "other=="})),
            "another product",
        ),
        ("refund.json", api_sale(json!({})), "not refunded"),
        (
            "dispute.json",
            api_sale(json!({"id": "FO8TXN-dbxYaBdahG97Y-Q=="})),
            "no dispute",
        ),
    ] {
        let err = complete(parse(name), answer).unwrap_err();
        assert_eq!(err.code(), "SIGNATURE_INVALID", "{why}");
    }
    // The refund's size is Gumroad's record, not the ping's.
    let refund = complete(
        parse("refund.json"),
        api_sale(json!({"partially_refunded": true})),
    )
    .unwrap();
    assert_eq!(refund.reversal, Some(Reversal::PartialRefund));
    let refund = complete(
        parse("refund.partial.json"),
        api_sale(json!({"refunded": true})),
    )
    .unwrap();
    assert_eq!(refund.reversal, Some(Reversal::FullRefund));

    let subscriber = |fields: Value| {
        let mut s = json!({"id": "ifsMOaNAoTMZhq2Zf2kaDQ==", "product_id": "eFgH1234IjKl5678MnOp==",
                           "cancelled_at": null, "ended_at": null, "failed_at": null});
        for (k, v) in fields.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"success": true, "subscriber": s})
    };
    complete(
        parse("cancellation.json"),
        subscriber(json!({"cancelled_at": "2026-03-10T09:30:00Z"})),
    )
    .unwrap();
    let err = complete(parse("cancellation.json"), subscriber(json!({}))).unwrap_err();
    assert_eq!(err.code(), "SIGNATURE_INVALID");
    complete(
        parse("subscription_ended.json"),
        subscriber(json!({"ended_at": "2026-03-31T10:00:00Z"})),
    )
    .unwrap();
    let err = complete(
        parse("subscription_restarted.json"),
        subscriber(json!({"ended_at": "2026-03-31T10:00:00Z"})),
    )
    .unwrap_err();
    assert_eq!(err.code(), "SIGNATURE_INVALID");
    let err = complete(
        parse("subscription_updated.json"),
        subscriber(json!({"product_id": "x"})),
    )
    .unwrap_err();
    assert_eq!(err.code(), "SIGNATURE_INVALID");
}
