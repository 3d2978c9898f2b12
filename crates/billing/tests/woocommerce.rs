//! WooCommerce: base64 HMAC-SHA256 over the body with the WordPress-decoded secret, the
//! unsigned creation ping, synthetic state ids, every fixture (REST v3 orders, refunds,
//! WooCommerce Subscriptions subscriptions), the sync listing's pages.

mod common;

use common::*;
use keygate_billing::api::ListPage;
use keygate_billing::providers::woocommerce::SCHEME;
use keygate_billing::{BillingEventKind as Kind, Headers, SubscriptionStatus as Status};

const NAME: &str = "woocommerce";

fn woo() -> Platform {
    Platform::named(NAME)
}

/// The topic a fixture is delivered under: its name's first two parts (`order.updated`).
fn topic_of(fixture: &str) -> String {
    fixture.split('.').take(2).collect::<Vec<_>>().join(".")
}

fn delivered(topic: &str, key: &str, body: &[u8]) -> Headers {
    let (resource, event) = topic.split_once('.').unwrap();
    Headers::new()
        .with("X-WC-Webhook-Topic", topic)
        .with("X-WC-Webhook-Resource", resource)
        .with("X-WC-Webhook-Event", event)
        .with("X-WC-Webhook-ID", "12")
        .with("X-WC-Webhook-Delivery-ID", "a1b2c3")
        .with("X-WC-Webhook-Source", "https://shop.example.com/")
        .with("X-WC-Webhook-Signature", SCHEME.sign(key.as_bytes(), body))
}

fn parse(name: &str) -> Vec<keygate_billing::BillingEvent> {
    let body = fixture(NAME, name);
    woo()
        .parse(&delivered(&topic_of(name), "k", &body), &body)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(name: &str) -> keygate_billing::BillingEvent {
    let mut events = parse(name);
    assert_eq!(events.len(), 1, "{name}: {events:?}");
    events.remove(0)
}

#[test]
fn official_vector_through_the_scheme() {
    // `test_generate_signature`: a webhook with secret '' signs 'secret' as below. Keygate
    // refuses an empty secret, so the vector is checked on the scheme itself.
    assert_eq!(
        SCHEME.sign(b"", b"secret"),
        "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs="
    );
    let h = Headers::new().with(
        "X-WC-Webhook-Signature",
        "GBDo00G55h6IiV+6CxqivQPLbI//KzaOZm747971tPs=",
    );
    assert_eq!(
        refused(woo().verify(&h, b"secret", &secrets(&[""]), secs(0))),
        "SECRET_NOT_CONFIGURED"
    );
}

#[test]
fn the_secret_is_decoded_as_woocommerce_signs_with_it() {
    let body = fixture(NAME, "order.updated.processing.json");
    // Stored (and so configured) as `p&lt;ss&amp;word`; WooCommerce signs with `p<ss&word`.
    let stored = secrets(&["p&lt;ss&amp;word"]);
    let h = delivered("order.updated", "p<ss&word", &body);
    woo().verify(&h, &body, &stored, secs(0)).unwrap();
    // The same secret typed plain works too (nothing to decode).
    woo()
        .verify(&h, &body, &secrets(&["p<ss&word"]), secs(0))
        .unwrap();
    // Signed with the undecoded text: not what WooCommerce sends.
    let raw = delivered("order.updated", "p&lt;ss&amp;word", &body);
    assert_eq!(
        refused(woo().verify(&raw, &body, &stored, secs(0))),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn refusals_and_rotation() {
    let body = fixture(NAME, "subscription.created.active.json");
    let s = secrets(&["wc-secret"]);
    let now = secs(0);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let h = delivered("subscription.created", "wc-secret", &body);
    assert_eq!(
        refused(woo().verify(&h, &tampered, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(woo().verify(
            &delivered("subscription.created", "nope", &body),
            &body,
            &s,
            now
        )),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(woo().verify(&Headers::new(), &body, &s, now)),
        "SIGNATURE_MISSING"
    );
    let garbage = Headers::new().with("X-WC-Webhook-Signature", "%%%");
    assert_eq!(
        refused(woo().verify(&garbage, &body, &s, now)),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(woo().verify(&h, &body, &secrets(&[" "]), now)),
        "SECRET_NOT_CONFIGURED"
    );
    let both = secrets(&["old-secret", "new-secret"]);
    for key in ["old-secret", "new-secret"] {
        let h = delivered("subscription.created", key, &body);
        woo().verify(&h, &body, &both, now).unwrap();
    }
}

/// The creation ping is answered and stored nowhere; nothing else passes unsigned.
#[test]
fn the_unsigned_ping_only_in_its_exact_shape() {
    let s = secrets(&["wc-secret"]);
    let none = Headers::new()
        .with("content-type", "application/x-www-form-urlencoded")
        .with("user-agent", "WooCommerce/9.4.2 Hookshot (WordPress/6.7.1)");
    woo().verify(&none, b"webhook_id=12", &s, secs(0)).unwrap();
    assert!(woo().parse(&none, b"webhook_id=12").unwrap().is_empty());
    // Fail closed: no secret configured, no ping either.
    assert_eq!(
        refused(woo().verify(&none, b"webhook_id=12", &secrets(&[]), secs(0))),
        "SECRET_NOT_CONFIGURED"
    );
    for body in [
        &b"webhook_id="[..],
        b"webhook_id=12&x=1",
        b"webhook_id=12\n",
        b"webhook_id=-1",
        b"webhook_id=1e3",
        br#"{"id":727,"status":"processing"}"#,
        b"",
    ] {
        assert_eq!(
            refused(woo().verify(&none, body, &s, secs(0))),
            "SIGNATURE_MISSING",
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // A ping body with a wrong signature is refused like any delivery.
    let forged = none.clone().with("X-WC-Webhook-Signature", "AAAA");
    assert_eq!(
        refused(woo().verify(&forged, b"webhook_id=12", &s, secs(0))),
        "SIGNATURE_INVALID"
    );
}

#[test]
fn every_fixture_verifies_and_parses() {
    for name in fixture_names(NAME, &[]) {
        let body = fixture(NAME, &name);
        let h = delivered(&topic_of(&name), "wc-secret", &body);
        woo()
            .verify(&h, &body, &secrets(&["wc-secret"]), secs(0))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let events = woo()
            .parse(&h, &body)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!events.is_empty(), "{name}");
    }
    let body = fixture(NAME, "order.updated.processing.json");
    let no_topic = Headers::new();
    assert_eq!(
        woo().parse(&no_topic, &body).unwrap_err().code().as_str(),
        "MALFORMED_PAYLOAD"
    );
}

#[test]
fn orders() {
    let pending = one("order.created.pending.json");
    check("pending", &pending, Kind::Ignored, Expect::default());

    let paid = one("order.updated.processing.json");
    check(
        "paid",
        &paid,
        Kind::OrderPaid,
        Expect {
            order_id: Some("727"),
            items: Some(vec![("2002", 2), ("93", 1)]),
            customer_id: Some("25"),
            email: Some("john.doe@example.com"),
            ..Expect::default()
        },
    );
    assert_eq!(paid.occurred_at, rfc("2026-01-05T10:00:08Z"));
    assert!(
        paid.event_id.starts_with("order:727:2026-01-05T10:00:08:"),
        "{}",
        paid.event_id
    );
    assert_eq!(paid.items()[0].product_external_id.as_deref(), Some("2001"));
    // Mapped by the variation, then the product, then the SKU; each line is its order item.
    assert_eq!(paid.items()[0].fallback_ids, ["2001", "KG-PRO-MONTHLY"]);
    assert_eq!(paid.items()[0].line_id.as_deref(), Some("315"));
    assert!(
        paid.items()[1].fallback_ids.is_empty(),
        "a simple product without SKU"
    );
    // Mapped by the variation, then the product, then the SKU; each line is its order item.
    assert_eq!(paid.items()[0].fallback_ids, ["2001", "KG-PRO-MONTHLY"]);
    assert_eq!(paid.items()[0].line_id.as_deref(), Some("315"));
    assert!(
        paid.items()[1].fallback_ids.is_empty(),
        "a simple product without SKU"
    );

    // Still paid, one refund: the order stays paid (same fact), the refund is its own event,
    // completed with its lines from the REST API.
    let events = parse("order.updated.partial_refund.json");
    assert_eq!(events.len(), 2, "{events:?}");
    check("paid again", &events[0], Kind::OrderPaid, Expect::default());
    assert_ne!(events[0].event_id, paid.event_id, "another state");
    let refund = &events[1];
    check(
        "partial refund",
        refund,
        Kind::Refunded,
        Expect {
            event_id: Some("order:727:refund:726"),
            order_id: Some("727"),
            ..Expect::default()
        },
    );
    assert_eq!(refund.reversal.map(|r| r.as_str()), Some("partial_refund"));
    assert_eq!(
        refund.needs_fetch,
        ["/wp-json/wc/v3/orders/727/refunds/726"]
    );
    let provider = keygate_billing::provider(NAME).unwrap();
    let fetches = provider.fetches(refund);
    assert_eq!(fetches.len(), 1);
    let answer: serde_json::Value =
        serde_json::from_slice(&fixture(NAME, "refund.726.api")).unwrap();
    let completed = provider
        .complete(refund.clone(), &[(fetches[0].clone(), answer)])
        .unwrap();
    assert!(completed.needs_fetch.is_empty());
    let lines: Vec<(&str, i64)> = completed
        .items()
        .iter()
        .map(|l| (l.external_id.as_str(), l.quantity))
        .collect();
    assert_eq!(lines, [("2002", 1)]);
    assert_eq!(
        completed.items()[0].line_id.as_deref(),
        Some("315"),
        "the refunded order item"
    );
    assert_eq!(
        completed.items()[0].line_id.as_deref(),
        Some("315"),
        "the refunded order item"
    );
    let not_a_refund = provider.complete(
        refund.clone(),
        &[(fetches[0].clone(), serde_json::json!([]))],
    );
    assert_eq!(
        not_a_refund.unwrap_err().code().as_str(),
        "MALFORMED_PAYLOAD"
    );

    // Wholly refunded: a full refund of the order (its refunds are not split again).
    let refunded = one("order.updated.refunded.json");
    check(
        "refunded",
        &refunded,
        Kind::Refunded,
        Expect {
            order_id: Some("727"),
            ..Expect::default()
        },
    );
    assert_eq!(refunded.reversal.map(|r| r.as_str()), Some("full_refund"));
    let cancelled = one("order.updated.cancelled.json");
    check("cancelled", &cancelled, Kind::Refunded, Expect::default());
    assert_eq!(
        cancelled.reversal, None,
        "a cancellation revokes as a full reversal"
    );

    let deleted = one("order.deleted.json");
    check(
        "deleted",
        &deleted,
        Kind::Refunded,
        Expect {
            event_id: Some("order:727:deleted"),
            order_id: Some("727"),
            ..Expect::default()
        },
    );
}

#[test]
fn a_renewal_order_extends_its_subscription() {
    let renewal = one("order.created.renewal.json");
    check(
        "renewal",
        &renewal,
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some("1250"),
            order_id: Some("1301"),
            partial: Some(true),
            status: Some(Status::Active),
            customer_id: Some("25"),
            ..Expect::default()
        },
    );
    // No license of its own: the period comes with the subscription's update (or the sync).
    assert!(renewal.order.as_ref().unwrap().lines.is_empty());
    assert!(
        renewal.period_missing.is_none(),
        "the period comes with the subscription"
    );
    assert_eq!(renewal.occurred_at, rfc("2026-02-05T10:00:03Z"));
}

#[test]
fn subscriptions() {
    let created = one("subscription.created.active.json");
    check(
        "created",
        &created,
        Kind::SubscriptionActivated,
        Expect {
            subscription_id: Some("1250"),
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-05T10:00:08Z")),
            items: Some(vec![("2002", 1)]),
            order_id: Some("727"),
            customer_id: Some("25"),
            partial: Some(false),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(created.billing_interval_seconds, Some(31 * 86_400));
    assert_eq!(created.last_payment_at, Some(rfc("2026-01-05T10:00:08Z")));

    let renewed = one("subscription.updated.renewed.json");
    check(
        "renewed",
        &renewed,
        Kind::SubscriptionUpdated,
        Expect {
            period_end: Some(rfc("2026-03-05T10:00:08Z")),
            ..Expect::default()
        },
    );

    // A failed renewal payment puts it on hold: grace, then suspended. Its next payment date
    // is cleared, so the snapshot is partial and the known date stays.
    let on_hold = one("subscription.updated.on_hold.json");
    check(
        "on-hold",
        &on_hold,
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            partial: Some(true),
            ..Expect::default()
        },
    );

    let pending_cancel = one("subscription.updated.pending_cancel.json");
    check(
        "pending-cancel",
        &pending_cancel,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-03-05T10:00:08Z")),
            cancel_at_period_end: Some(true),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(
        pending_cancel.subscription.as_ref().unwrap().cancel_at,
        Some(rfc("2026-03-05T10:00:08Z"))
    );

    for (name, ended) in [
        (
            "subscription.updated.cancelled.json",
            "2026-02-20T08:00:00Z",
        ),
        ("subscription.updated.expired.json", "2027-01-05T10:00:08Z"),
    ] {
        let event = one(name);
        check(
            name,
            &event,
            Kind::SubscriptionCanceled,
            Expect {
                status: Some(Status::Canceled),
                ..Expect::default()
            },
        );
        assert_eq!(
            event.subscription.as_ref().unwrap().ended_at,
            Some(rfc(ended)),
            "{name}"
        );
    }

    let switched = one("subscription.switched.json");
    check(
        "switched",
        &switched,
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("2002", 3)]),
            ..Expect::default()
        },
    );
    let deleted = one("subscription.deleted.json");
    check(
        "deleted",
        &deleted,
        Kind::SubscriptionCanceled,
        Expect {
            event_id: Some("subscription:1250:deleted"),
            status: Some(Status::Canceled),
            partial: Some(true),
            ..Expect::default()
        },
    );
}

#[test]
fn customers_and_ignored_topics() {
    let customer = one("customer.created.json");
    check(
        "customer",
        &customer,
        Kind::CustomerUpserted,
        Expect {
            customer_id: Some("25"),
            email: Some("john.doe@example.com"),
            ..Expect::default()
        },
    );
    check(
        "product",
        &one("product.updated.json"),
        Kind::Ignored,
        Expect::default(),
    );
    // A custom action topic: stored, ignored.
    let body = br#"{"action":"woocommerce_payment_complete","arg":727}"#;
    let h = delivered("action.woocommerce_payment_complete", "k", body);
    let events = woo().parse(&h, body).unwrap();
    assert_eq!(events.len(), 1);
    check("action", &events[0], Kind::Ignored, Expect::default());
}

/// The same state of the same object is the same event, whichever topic or the sync brought it;
/// every change is a new one.
#[test]
fn synthetic_ids_name_the_state() {
    let body = fixture(NAME, "order.updated.processing.json");
    let as_created = woo()
        .parse(&delivered("order.created", "k", &body), &body)
        .unwrap();
    let as_updated = woo()
        .parse(&delivered("order.updated", "k", &body), &body)
        .unwrap();
    assert_eq!(as_created[0].event_id, as_updated[0].event_id);
    // Same second, another status: another event.
    let mut other: serde_json::Value = serde_json::from_slice(&body).unwrap();
    other["status"] = "completed".into();
    let other = other.to_string();
    let changed = woo()
        .parse(
            &delivered("order.updated", "k", other.as_bytes()),
            other.as_bytes(),
        )
        .unwrap();
    assert_ne!(changed[0].event_id, as_updated[0].event_id);
}

#[test]
fn sync_listings_and_pages() {
    let provider = keygate_billing::provider(NAME).unwrap();
    let first = provider.sync_requests(Some(rfc("2026-01-05T00:00:00Z")));
    let paths: Vec<&str> = first.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/wp-json/wc/v3/orders?per_page=100&page=1&orderby=modified&order=asc&modified_after=2026-01-05T00:00:00&dates_are_gmt=true",
            "/wp-json/wc/v3/subscriptions?per_page=100&page=1&orderby=modified&order=asc&modified_after=2026-01-05T00:00:00&dates_are_gmt=true",
        ]
    );
    assert!(
        !provider.sync_requests(None)[0]
            .path
            .contains("modified_after"),
        "a first sync reads everything"
    );
    let order: serde_json::Value =
        serde_json::from_slice(&fixture(NAME, "order.updated.processing.json")).unwrap();
    let body = serde_json::json!([order]);
    let two_pages = Headers::new()
        .with("X-WP-Total", "101")
        .with("X-WP-TotalPages", "2");
    let page = provider
        .parse_sync_page(
            &first[0],
            &ListPage {
                headers: &two_pages,
                body: &body,
            },
        )
        .unwrap();
    assert_eq!(page.objects.len(), 1);
    // The same event id as the webhook of that state: a duplicate in the inbox.
    let webhook = one("order.updated.processing.json");
    assert_eq!(page.objects[0].events[0].event_id, webhook.event_id);
    assert_eq!(page.objects[0].events[0].event_type, "order.synced");
    let next = page.next.expect("page 2 of 2");
    assert!(next.path.contains("&page=2&"), "{}", next.path);
    assert!(
        next.path.contains("modified_after=2026-01-05T00:00:00"),
        "{}",
        next.path
    );
    let last = provider
        .parse_sync_page(
            &next,
            &ListPage {
                headers: &two_pages,
                body: &body,
            },
        )
        .unwrap();
    assert!(last.next.is_none());
    let not_a_list = provider.parse_sync_page(
        &first[1],
        &ListPage {
            headers: &Headers::new(),
            body: &order,
        },
    );
    assert_eq!(not_a_list.unwrap_err().code().as_str(), "MALFORMED_PAYLOAD");
    let subscription: serde_json::Value =
        serde_json::from_slice(&fixture(NAME, "subscription.created.active.json")).unwrap();
    let page = provider
        .parse_sync_page(
            &first[1],
            &ListPage {
                headers: &Headers::new(),
                body: &serde_json::json!([subscription]),
            },
        )
        .unwrap();
    assert_eq!(page.objects[0].events[0].subscription_id(), Some("1250"));
    assert!(
        page.next.is_none(),
        "a short page without headers is the last"
    );
}
