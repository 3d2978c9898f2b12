//! Shopify: base64 HMAC-SHA256 over the body (both header spellings, rotation), event ids from
//! the delivery headers, every fixture, and contracts completed from the Admin GraphQL API.

mod common;

use common::*;
use keygate_billing::api::Fetch;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status, provider};
use keygate_domain::billing::Reversal;
use serde_json::Value;

const SECRET: &str = "shpss_test_client_secret";

fn shopify() -> Platform {
    Platform::named("shopify")
}

fn sign(secret: &str, body: &[u8]) -> Headers {
    Headers::new().with(
        "X-Shopify-Hmac-Sha256",
        keygate_billing::providers::shopify::SCHEME.sign(secret.as_bytes(), body),
    )
}

/// The delivery headers of `topic`, as Shopify sends them.
fn delivery(topic: &str, event: &str) -> Headers {
    Headers::new()
        .with("X-Shopify-Topic", topic)
        .with("X-Shopify-Event-Id", event)
        .with("X-Shopify-Webhook-Id", format!("wh-{event}"))
        .with("X-Shopify-Triggered-At", "2025-07-01T18:23:07.123456789Z")
        .with("X-Shopify-Shop-Domain", "keygate-demo.myshopify.com")
}

/// The topic a fixture is named after: `orders_paid.test.json` → `orders/paid`.
fn topic_of(name: &str) -> String {
    let stem = name.split('.').next().unwrap();
    for prefix in [
        "subscription_billing_attempts",
        "subscription_contracts",
        "orders",
        "refunds",
        "customers",
    ] {
        if let Some(rest) = stem.strip_prefix(prefix) {
            return format!("{prefix}/{}", rest.trim_start_matches('_'));
        }
    }
    panic!("{name}: no topic")
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("shopify", name, &delivery(&topic_of(name), "ev-1"))
}

/// The official scheme's vector (inputs of shopify-api-ruby's `registry_test.rb`), on both
/// header spellings.
#[test]
fn official_vector_on_both_header_spellings() {
    let sig = "+ihUB5l+D7QrohDEi/6NcBcJRyKssyWqos13LmnsBbs=";
    let s = secrets(&["API_SECRET_KEY"]);
    for name in ["X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256"] {
        let h = Headers::new().with(name, sig);
        shopify().verify(&h, b"{}", &s, secs(0)).unwrap();
        assert_eq!(
            refused(shopify().verify(&h, b"{ }", &s, secs(0))),
            "SIGNATURE_INVALID",
            "{name}"
        );
    }
}

#[test]
fn refusals_and_rotation() {
    let body = fixture("shopify", "orders_paid.json");
    let s = secrets(&[SECRET]);
    let now = secs(1_767_225_600);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        refused(shopify().verify(&sign(SECRET, &body), &tampered, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(shopify().verify(&sign("other", &body), &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(shopify().verify(&Headers::new(), &body, &s, now)),
        "SIGNATURE_MISSING"
    );
    let hex = Headers::new().with("X-Shopify-Hmac-Sha256", "fa28540799 not base64 at all");
    assert_eq!(
        refused(shopify().verify(&hex, &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(shopify().verify(&sign(SECRET, &body), &body, &secrets(&[" "]), now)),
        "SECRET_NOT_CONFIGURED"
    );
    // During a client secret rotation Shopify signs with either for up to an hour.
    let both = secrets(&["old-client-secret", "new-client-secret"]);
    for secret in ["old-client-secret", "new-client-secret"] {
        shopify()
            .verify(&sign(secret, &body), &body, &both, now)
            .unwrap();
    }
    assert_eq!(
        refused(shopify().verify(&sign("third", &body), &body, &both, now)),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn event_ids_come_from_the_delivery_headers() {
    let body = fixture("shopify", "orders_paid.json");
    let p = shopify();
    let events = p.parse(&delivery("orders/paid", "ev-77"), &body).unwrap();
    assert_eq!(events[0].event_id, "orders/paid:ev-77");
    assert_eq!(events[0].occurred_at, rfc("2025-07-01T18:23:07.123Z"));
    // One merchant action, two topics: two events.
    let other = p
        .parse(&delivery("orders/cancelled", "ev-77"), &body)
        .unwrap();
    assert_eq!(other[0].event_id, "orders/cancelled:ev-77");
    // The unprefixed spellings of the Events delivery.
    let unprefixed = Headers::new()
        .with("Shopify-Topic", "orders/paid")
        .with("Shopify-Event-Id", "ev-78")
        .with("Shopify-Triggered-At", "2025-07-01T18:23:07Z");
    assert_eq!(
        p.parse(&unprefixed, &body).unwrap()[0].event_id,
        "orders/paid:ev-78"
    );
    // No Event-Id: the webhook id; neither: the body's id and update time; the time from
    // the body.
    let webhook = Headers::new().with("X-Shopify-Topic", "orders/paid").with(
        "X-Shopify-Webhook-Id",
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    );
    let e = &p.parse(&webhook, &body).unwrap()[0];
    assert_eq!(e.event_id, "webhook:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
    assert_eq!(e.occurred_at, rfc("2025-07-01T18:23:05Z"));
    let bare = Headers::new().with("X-Shopify-Topic", "orders/paid");
    assert_eq!(
        p.parse(&bare, &body).unwrap()[0].event_id,
        "orders/paid:820982911946154508:2025-07-01T14:23:05-04:00"
    );
    // No topic at all: malformed, never guessed.
    assert_eq!(
        p.parse(&Headers::new(), &body).unwrap_err().code(),
        "MALFORMED_PAYLOAD"
    );
}

#[test]
fn orders_paid_lines_map_on_variant_then_product_then_sku() {
    let e = parse("orders_paid.json");
    check(
        "orders_paid",
        &e,
        Kind::OrderPaid,
        Expect {
            order_id: Some("820982911946154508"),
            customer_id: Some("115310627314723954"),
            email: Some("jon@example.com"),
            items: Some(vec![("808950810", 3), ("49148385", 1), ("632910392", 1)]),
            ..Expect::default()
        },
    );
    assert!(e.livemode);
    let lines = &e.order.as_ref().unwrap().lines;
    assert_eq!(lines[0].line_id.as_deref(), Some("866550311766439020"));
    assert_eq!(lines[0].fallback_ids, ["632910392", "IPOD2008PINK"]);
    assert_eq!(lines[0].product_external_id.as_deref(), Some("632910392"));
    // No variant: the product, then the SKU. A line with none of the three (gift wrapping) is
    // no billing item at all.
    assert_eq!(lines[2].fallback_ids, ["IPOD2008CUSTOM"]);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0].mapped_id(|id| id == "IPOD2008PINK"),
        Some("IPOD2008PINK")
    );

    let test = parse("orders_paid.test.json");
    assert!(!test.livemode, "test orders are test mode");
    let recurring = parse("orders_paid.recurring.json");
    assert_eq!(
        recurring.kind,
        Kind::Ignored,
        "a contract's renewal order is renewed by its billing attempt"
    );
}

#[test]
fn refunds_name_their_lines_and_cancellations_the_order() {
    let e = parse("refunds_create.json");
    check(
        "refunds_create",
        &e,
        Kind::Refunded,
        Expect {
            order_id: Some("820982911946154508"),
            items: Some(vec![("808950810", 1), ("49148385", 1)]),
            ..Expect::default()
        },
    );
    assert_eq!(e.reversal, Some(Reversal::PartialRefund));
    let lines = &e.order.as_ref().unwrap().lines;
    assert_eq!(lines[0].line_id.as_deref(), Some("866550311766439020"));
    assert_eq!(lines[1].line_id.as_deref(), Some("141249953214522974"));
    assert!(keygate_domain::reconcile::reversed_lines(&e).is_some());

    let money_only = parse("refunds_create.no_lines.json");
    assert_eq!(money_only.kind, Kind::Refunded);
    assert!(money_only.order.as_ref().unwrap().lines.is_empty());
    assert!(
        !keygate_domain::reconcile::reversal_revokes(&money_only, &Default::default()),
        "a refund of shipping or an amount revokes nothing under refunds: full"
    );

    let cancelled = parse("orders_cancelled.json");
    assert_eq!(cancelled.kind, Kind::Refunded);
    assert_eq!(cancelled.reversal, Some(Reversal::FullRefund));
    assert_eq!(cancelled.order_id(), Some("820982911946154508"));
    assert!(
        cancelled.order.as_ref().unwrap().lines.is_empty(),
        "the whole order"
    );
}

#[test]
fn customers_and_ignored_topics() {
    let c = parse("customers_create.json");
    check(
        "customers_create",
        &c,
        Kind::CustomerUpserted,
        Expect {
            customer_id: Some("706405506930370084"),
            email: Some("bob@biller.com"),
            ..Expect::default()
        },
    );
    assert_eq!(
        c.customer.as_ref().unwrap().name.as_deref(),
        Some("Bob Biller")
    );
    assert_eq!(parse("orders_updated.json").kind, Kind::Ignored);
}

fn graphql_answer() -> Value {
    serde_json::from_slice(&fixture("shopify", "graphql.subscription_contract.json")).unwrap()
}

fn completed(name: &str) -> keygate_billing::BillingEvent {
    let p = provider("shopify").unwrap();
    let event = parse(name);
    let fetches = p.fetches(&event);
    assert_eq!(fetches.len(), 1, "{name}");
    let answers: Vec<(Fetch, Value)> = fetches.into_iter().map(|f| (f, graphql_answer())).collect();
    p.complete(event, &answers).unwrap()
}

#[test]
fn contract_events_are_completed_from_the_admin_graphql_api() {
    let p = provider("shopify").unwrap();
    let thin = parse("subscription_contracts_create.json");
    assert_eq!(thin.kind, Kind::SubscriptionActivated);
    assert_eq!(
        thin.needs_fetch,
        ["gid://shopify/SubscriptionContract/5927405681"]
    );
    let fetch = &p.fetches(&thin)[0];
    assert_eq!(fetch.method(), "POST");
    assert_eq!(fetch.path, "/admin/api/2025-07/graphql.json");
    let body = fetch.body.as_ref().unwrap();
    assert!(
        body["query"]
            .as_str()
            .unwrap()
            .contains("subscriptionContract(id: $id)")
    );
    assert_eq!(
        body["variables"]["id"],
        "gid://shopify/SubscriptionContract/5927405681"
    );
    let spec = p.api().unwrap();
    assert_eq!(
        spec.base_url(|name| (name == "shop_domain").then_some("acme.myshopify.com")),
        Some("https://acme.myshopify.com".to_string())
    );
    assert_eq!(spec.base_url(|_| Some("evil.com/@x")), None);
    assert_eq!(spec.base_url(|_| None), None);

    let created = completed("subscription_contracts_create.json");
    check(
        "subscription_contracts_create",
        &created,
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("5927405681"),
            status: Some(Status::Active),
            period_end: Some(rfc("2025-08-01T18:23:05Z")),
            items: Some(vec![("457924702", 3)]),
            order_id: Some("450789469"),
            customer_id: Some("207119551"),
            email: Some("bob.norman@mail.example.com"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert!(created.needs_fetch.is_empty());
    assert_eq!(created.billing_interval_seconds, Some(30 * 86_400));
    let item = &created.subscription.as_ref().unwrap().items[0];
    assert_eq!(item.fallback_ids, ["632910392", "IPOD2008BLACK"]);

    for (name, kind, status) in [
        (
            "subscription_contracts_activate.json",
            Kind::SubscriptionActivated,
            Status::Active,
        ),
        (
            "subscription_contracts_update.json",
            Kind::SubscriptionUpdated,
            Status::Active,
        ),
        (
            "subscription_contracts_pause.json",
            Kind::SubscriptionPaused,
            Status::Paused,
        ),
        (
            "subscription_contracts_cancel.json",
            Kind::SubscriptionCanceled,
            Status::Canceled,
        ),
        (
            "subscription_contracts_expire.json",
            Kind::SubscriptionCanceled,
            Status::Canceled,
        ),
        (
            "subscription_contracts_fail.json",
            Kind::PaymentFailed,
            Status::Unpaid,
        ),
        (
            "subscription_billing_attempts_success.json",
            Kind::SubscriptionRenewed,
            Status::Active,
        ),
        (
            "subscription_billing_attempts_failure.json",
            Kind::PaymentFailed,
            Status::PastDue,
        ),
    ] {
        let e = completed(name);
        check(
            name,
            &e,
            kind,
            Expect {
                subscription_id: Some("5927405681"),
                status: Some(status),
                items: Some(vec![("457924702", 3)]),
                ..Expect::default()
            },
        );
    }
    // A cancelled contract bills no more: access to the paid-through date.
    let cancelled = completed("subscription_contracts_cancel.json");
    let snap = cancelled.subscription.as_ref().unwrap();
    assert_eq!(snap.ended_at, snap.current_period_end);
    // The renewal names its order, so that order's refund reaches the subscription.
    assert_eq!(
        completed("subscription_billing_attempts_success.json").order_id(),
        Some("450789470")
    );

    // GraphQL errors, or no such contract: not completed (the event is retried).
    let errors: Value = serde_json::json!({"errors": [{"message": "Throttled"}]});
    let event = parse("subscription_contracts_update.json");
    let fetches: Vec<(Fetch, Value)> = p
        .fetches(&event)
        .into_iter()
        .map(|f| (f, errors.clone()))
        .collect();
    assert!(p.complete(event.clone(), &fetches).is_err());
    let missing = serde_json::json!({"data": {"subscriptionContract": null}});
    let fetches: Vec<(Fetch, Value)> = p
        .fetches(&event)
        .into_iter()
        .map(|f| (f, missing.clone()))
        .collect();
    assert!(p.complete(event, &fetches).is_err());
}

#[test]
fn every_fixture_parses() {
    for name in fixture_names("shopify", &["graphql.subscription_contract.json"]) {
        let events = parse_all("shopify", &name, &delivery(&topic_of(&name), "ev-1"));
        assert_eq!(events.len(), 1, "{name}");
        let expect_ignored = ["orders_updated.json", "orders_paid.recurring.json"];
        assert_eq!(
            events[0].kind == Kind::Ignored,
            expect_ignored.contains(&name.as_str()),
            "{name}: {:?}",
            events[0].kind
        );
    }
}
