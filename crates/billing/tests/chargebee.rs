//! Chargebee: HTTP Basic auth (no signature exists) and every fixture.

mod common;

use common::*;
use keygate_billing::{BillingEventKind as Kind, Headers, Secrets, SubscriptionStatus as Status};
use serde_json::json;

const SUB: &str = "AzZlGJSvUq8Sub1";
const T1: i64 = 1_769_904_000;
const T2: i64 = 1_772_323_200;

fn chargebee() -> Platform {
    Platform::named("chargebee")
}

fn basic(user_pass: &str) -> Headers {
    Headers::new().with(
        "Authorization",
        keygate_billing::scheme::basic_auth::header(user_pass),
    )
}

fn options(user: &str, pass: &str) -> Secrets {
    Secrets::default().with_options(json!({"username": user, "password": pass}))
}

#[test]
fn documented_vector_and_credentials() {
    let body = fixture("chargebee", "subscription_created.json");
    let now = secs(1_767_225_600);
    let h = Headers::new().with("authorization", "Basic dXNlcjpwYXNz");
    chargebee()
        .verify(&h, &body, &options("user", "pass"), now)
        .unwrap();
    chargebee()
        .verify(&h, &body, &secrets(&["user:pass"]), now)
        .unwrap();
    // The scheme word is case-insensitive, like the header name.
    let lower = Headers::new().with("AUTHORIZATION", "basic dXNlcjpwYXNz");
    chargebee()
        .verify(&lower, &body, &options("user", "pass"), now)
        .unwrap();
}

#[test]
fn refusals() {
    let body = fixture("chargebee", "subscription_created.json");
    let now = secs(1_767_225_600);
    let s = options("user", "pass");
    for (headers, code) in [
        (Headers::new(), "SIGNATURE_MISSING"),
        (basic("user:wrong"), "SIGNATURE_INVALID"),
        (basic("user:pass2"), "SIGNATURE_INVALID"),
        (basic("user:pas"), "SIGNATURE_INVALID"),
        (basic("other:pass"), "SIGNATURE_INVALID"),
        (basic(""), "SIGNATURE_INVALID"),
        (
            Headers::new().with("Authorization", "Bearer dXNlcjpwYXNz"),
            "SIGNATURE_INVALID",
        ),
        (
            Headers::new().with("Authorization", "Basic %%%"),
            "SIGNATURE_INVALID",
        ),
    ] {
        assert_eq!(refused(chargebee().verify(&headers, &body, &s, now)), code);
    }
    // Nothing configured (or only half of it): refuse even a request with credentials.
    for none in [
        Secrets::default(),
        secrets(&["", "no-colon"]),
        Secrets::default().with_options(json!({"username": "user"})),
        options("", ""),
    ] {
        assert_eq!(
            refused(chargebee().verify(&basic("user:pass"), &body, &none, now)),
            "SECRET_NOT_CONFIGURED"
        );
    }
}

#[test]
fn rotation_accepts_old_and_new_credentials_only() {
    let body = fixture("chargebee", "payment_failed.json");
    let now = secs(T1);
    let both = secrets(&["hooks:old-password", "hooks:new-password"]);
    for cred in ["hooks:old-password", "hooks:new-password"] {
        chargebee().verify(&basic(cred), &body, &both, now).unwrap();
    }
    assert_eq!(
        refused(chargebee().verify(&basic("hooks:third-password"), &body, &both, now)),
        "SIGNATURE_INVALID"
    );
    // Options and secrets together (moving from one to the other).
    let mixed = options("hooks", "old-password").with_options(json!({
        "username": "hooks", "password": "old-password"
    }));
    let mixed = Secrets {
        secrets: vec!["hooks:new-password".into()],
        ..mixed
    };
    for cred in ["hooks:old-password", "hooks:new-password"] {
        chargebee()
            .verify(&basic(cred), &body, &mixed, now)
            .unwrap();
    }
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("chargebee", name, &Headers::new())
}

#[test]
fn customers() {
    for (name, email) in [
        ("customer_created.json", "ann@example.com"),
        ("customer_changed.json", "ann@new.example"),
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            Kind::CustomerUpserted,
            Expect {
                customer_id: Some("AzZlGJSvUq7Yx1"),
                email: Some(email),
                ..Expect::default()
            },
        );
        assert_eq!(e.customer.unwrap().name.as_deref(), Some("Ann Example"));
        assert!(e.subscription.is_none());
    }
}

#[test]
fn subscription_lifecycle() {
    let created = parse("subscription_created.json");
    check(
        "created",
        &created,
        Kind::SubscriptionActivated,
        Expect {
            event_id: Some("ev_sub_created"),
            subscription_id: Some(SUB),
            status: Some(Status::Active),
            period_end: Some(secs(T1)),
            // The one-time setup charge is not a subscription item.
            items: Some(vec![("pro-USD-monthly", 3)]),
            customer_id: Some("AzZlGJSvUq7Yx1"),
            email: Some("ann@example.com"),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(created.ordering_version, Some(1_767_225_600_100));
    assert_eq!(created.occurred_at, secs(1_767_225_600));
    assert!(created.livemode);

    let trial = parse("subscription_created.in_trial.json");
    check(
        "in trial",
        &trial,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("AzZlGJSvUqTrial"),
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        trial.subscription.unwrap().trial_end,
        Some(secs(1_767_225_600 + 14 * 86400))
    );
    let extended = parse("subscription_trial_extended.json");
    check(
        "trial extended",
        &extended,
        Kind::TrialStarted,
        Expect {
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        extended.subscription.unwrap().trial_end,
        Some(secs(1_767_225_600 + 21 * 86400))
    );

    for (name, kind) in [
        ("subscription_started.json", Kind::SubscriptionActivated),
        ("subscription_activated.json", Kind::SubscriptionActivated),
        ("subscription_reactivated.json", Kind::SubscriptionActivated),
        ("subscription_items_renewed.json", Kind::SubscriptionUpdated),
        (
            "subscription_changes_scheduled.json",
            Kind::SubscriptionUpdated,
        ),
        (
            "subscription_scheduled_cancellation_removed.json",
            Kind::SubscriptionUpdated,
        ),
        (
            "subscription_pause_scheduled.json",
            Kind::SubscriptionUpdated,
        ),
        ("subscription_resumed.json", Kind::SubscriptionResumed),
    ] {
        let e = parse(name);
        check(
            name,
            &e,
            kind,
            Expect {
                status: Some(Status::Active),
                cancel_at_period_end: Some(false),
                ..Expect::default()
            },
        );
        assert!(e.ordering_version.is_some(), "{name}");
    }

    let renewed = parse("subscription_renewed.json");
    check(
        "renewed",
        &renewed,
        Kind::SubscriptionRenewed,
        Expect {
            subscription_id: Some(SUB),
            status: Some(Status::Active),
            period_end: Some(secs(T2)),
            items: Some(vec![("pro-USD-monthly", 3)]),
            order_id: Some("inv_renew_2"),
            ..Expect::default()
        },
    );
    assert_eq!(renewed.ordering_version, Some(1_769_904_000_100));

    let changed = parse("subscription_changed.pc1.json");
    check(
        "changed (catalog 1.0)",
        &changed,
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("pro-monthly", 8)]),
            ..Expect::default()
        },
    );

    let scheduled = parse("subscription_cancellation_scheduled.json");
    check(
        "cancel scheduled",
        &scheduled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            status: Some(Status::Active),
            cancel_at_period_end: Some(true),
            period_end: Some(secs(T1)),
            ..Expect::default()
        },
    );
    assert_eq!(scheduled.subscription.unwrap().cancel_at, Some(secs(T1)));

    let cancelled = parse("subscription_cancelled.json");
    check(
        "cancelled",
        &cancelled,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            cancel_at_period_end: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(cancelled.subscription.unwrap().ended_at, Some(secs(T1)));
    // Sent instead of the plain types: the same meaning. Deleted: access ends.
    for name in [
        "subscription_canceled_with_backdating.json",
        "subscription_deleted.json",
    ] {
        let event = parse(name);
        check(
            name,
            &event,
            Kind::SubscriptionCanceled,
            Expect {
                status: Some(Status::Canceled),
                ..Expect::default()
            },
        );
        assert!(event.subscription.unwrap().ended_at.is_some(), "{name}");
    }
    // Dunning: Chargebee keeps `active`, the unpaid invoices say otherwise; a snapshot
    // during dunning keeps the failure.
    check(
        "changed in dunning",
        &parse("subscription_changed.in_dunning.json"),
        Kind::SubscriptionUpdated,
        Expect {
            status: Some(Status::PastDue),
            partial: Some(false),
            ..Expect::default()
        },
    );

    check(
        "paused",
        &parse("subscription_paused.json"),
        Kind::SubscriptionPaused,
        Expect {
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
}

#[test]
fn payments_and_refunds() {
    let failed = parse("payment_failed.json");
    check(
        "payment failed",
        &failed,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some(SUB),
            // Chargebee keeps `active` during dunning; Keygate says past due.
            status: Some(Status::PastDue),
            order_id: Some("inv_renew_2"),
            ..Expect::default()
        },
    );
    let dunning = parse("invoice_updated.dunning.json");
    check(
        "invoice dunning",
        &dunning,
        Kind::PaymentFailed,
        Expect {
            subscription_id: Some(SUB),
            status: Some(Status::PastDue),
            partial: Some(true),
            order_id: Some("inv_renew_2"),
            ..Expect::default()
        },
    );
    assert_eq!(dunning.ordering_version, None);
    check(
        "recovered",
        &parse("payment_succeeded.recovered.json"),
        Kind::PaymentRecovered,
        Expect {
            subscription_id: Some(SUB),
            status: Some(Status::Active),
            order_id: Some("inv_renew_2"),
            ..Expect::default()
        },
    );
    for name in ["payment_refunded.json", "refund_initiated.json"] {
        let e = parse(name);
        check(
            name,
            &e,
            Kind::Refunded,
            Expect {
                subscription_id: Some(SUB),
                order_id: Some("inv_renew_2"),
                partial: Some(true),
                customer_id: Some("AzZlGJSvUq7Yx1"),
                ..Expect::default()
            },
        );
        assert_eq!(e.subscription.unwrap().status, None);
    }
    let reminder = parse("subscription_renewal_reminder.json");
    check(
        "reminder",
        &reminder,
        Kind::Ignored,
        Expect {
            event_id: Some("ev_sub_reminder"),
            ..Expect::default()
        },
    );
    assert!(reminder.subscription.is_none());
}

#[test]
fn every_fixture_verifies_and_parses() {
    let s = secrets(&["hooks:pw"]);
    for name in fixture_names("chargebee", &[]) {
        let body = fixture("chargebee", &name);
        let events =
            keygate_billing::receive(chargebee().0, &basic("hooks:pw"), &body, &s, secs(T1))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1);
        assert!(events[0].event_id.starts_with("ev_"), "{name}");
        assert!(name.starts_with(&events[0].event_type), "{name}");
    }
}

fn parse_value(body: &serde_json::Value) -> keygate_billing::BillingEvent {
    let bytes = body.to_string();
    let headers = Headers::new();
    let request = keygate_billing::Request::post(&headers, bytes.as_bytes());
    keygate_billing::provider("chargebee")
        .unwrap()
        .parse(&request)
        .unwrap()
        .remove(0)
}

/// The refund's size decides under `options.refunds`: a refund only initiated, a partial
/// refund and a full one are told apart.
#[test]
fn refund_sizes() {
    use keygate_domain::billing::Reversal as R;
    assert_eq!(parse("payment_refunded.json").reversal, Some(R::FullRefund));
    assert_eq!(
        parse("refund_initiated.json").reversal,
        Some(R::RefundInitiated)
    );
    let mut partial: serde_json::Value =
        serde_json::from_slice(&fixture("chargebee", "payment_refunded.json")).unwrap();
    partial["content"]["credit_note"]["amount_refunded"] = json!(1000);
    assert_eq!(parse_value(&partial).reversal, Some(R::PartialRefund));
    let mut unknown = partial.clone();
    unknown["content"]
        .as_object_mut()
        .unwrap()
        .remove("credit_note");
    unknown["content"]
        .as_object_mut()
        .unwrap()
        .remove("invoice");
    assert_eq!(parse_value(&unknown).reversal, Some(R::RefundOfUnknownSize));
}
