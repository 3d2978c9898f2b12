//! PayPal: self-verification (RSA-SHA256 over the CRC32 string, pinned certificate) with
//! PayPal's official SDK vector and certificates generated for the tests, and every fixture.

mod common;

use common::*;
use keygate_billing::{
    BillingEventKind as Kind, Headers, Secrets, SubscriptionStatus as Status, Timestamp,
};
use serde_json::json;

const WEBHOOK_ID: &str = "8PT597110X687430LKGECATA";
const TRANSMISSION_ID: &str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55";
const TRANSMISSION_TIME: &str = "2027-01-01T00:00:00Z";

fn paypal() -> Platform {
    Platform::named("paypal")
}

fn text(name: &str) -> String {
    String::from_utf8(fixture("paypal", name)).unwrap()
}

fn now() -> Timestamp {
    rfc(TRANSMISSION_TIME)
}

fn pinned(certs: &[&str]) -> Secrets {
    let pems: Vec<String> = certs.iter().map(|c| text(c)).collect();
    Secrets::default().with_options(json!({"webhook_id": WEBHOOK_ID, "certificate_pem": pems}))
}

/// PayPal's scheme: base64 RSA PKCS#1 v1.5 SHA-256 over `id|time|webhook_id|crc32(body)`.
fn sign(key_file: &str, webhook_id: &str, body: &[u8]) -> String {
    let message = keygate_billing::providers::paypal::signed_text(
        TRANSMISSION_ID,
        TRANSMISSION_TIME,
        webhook_id,
        crc32fast::hash(body),
    );
    keygate_billing::scheme::rsa_signature::sign_sha256(&text(key_file), message.as_bytes())
}

fn headers(signature: String) -> Headers {
    Headers::new()
        .with("PAYPAL-TRANSMISSION-ID", TRANSMISSION_ID)
        .with("PAYPAL-TRANSMISSION-TIME", TRANSMISSION_TIME)
        .with("PAYPAL-TRANSMISSION-SIG", signature)
        .with("PAYPAL-AUTH-ALGO", "SHA256withRSA")
        .with(
            "PAYPAL-CERT-URL",
            "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-test",
        )
}

fn official_headers() -> Headers {
    Headers::new()
        .with("paypal-cert-url", "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270")
        .with("paypal-transmission-id", "afa30d40-ca4a-11e9-ab68-7d4e2605c70c")
        .with("paypal-transmission-time", "2019-08-29T10:49:33Z")
        .with("paypal-auth-algo", "SHA256withRSA")
        .with("paypal-transmission-sig", "K7DF5+hOyGS6v0xTZ9PkEO+BFNQmpryxw2hFlXbHgmxpu+883ldEC9HcL6ccEmB8sfy80y/Q3qcZZL1MR8Qi0e1ysylVj/yROgKK6zBsQPoNmgXC8yTiNoAjULuhk5Aoau0Itk3nrkgAfji1zvADlErMFM9VZe2nDvhM3nDMLjCi/K5fRjWp3eGo6Nx17GX/WIEibeKDyS+YdJMex3i+KO4aWmm9zznC/FJ5Y/ntd0MxOJNrM0r0f3y7c3e3sO5pB3oPgN6KzKVS5P6AWHqtS8acD3DjgCKZ1uqKz7q954G1aBz2/m0wRGOFFsv0/D3FE2uIheRRmoQtVSOAX7Aupg==")
}

#[test]
fn official_java_sdk_vector() {
    let body = fixture("paypal", "official_body.json");
    assert_eq!(crc32fast::hash(&body), 3_674_300_368);
    let secrets = |webhook_id: &str| {
        Secrets::default().with_options(json!({
            "webhook_id": webhook_id,
            "certificate_pem": text("official_cert.pem"),
        }))
    };
    let at = rfc("2019-08-29T10:49:33Z");
    paypal()
        .verify(
            &official_headers(),
            &body,
            &secrets("0FV983392A0531201"),
            at,
        )
        .unwrap();
    // The SDK's testInvalidWebhookId.
    assert_eq!(
        refused(paypal().verify(&official_headers(), &body, &secrets("NotToBeFound"), at)),
        "SIGNATURE_INVALID"
    );
    // The SDK's testInvalidAuthAlgo.
    let bad_algo: Headers = official_headers()
        .get_all("paypal-transmission-id")
        .map(|v| ("paypal-transmission-id", v.to_string()))
        .chain([
            (
                "paypal-transmission-time",
                "2019-08-29T10:49:33Z".to_string(),
            ),
            ("paypal-auth-algo", "NotToBeFound".to_string()),
            (
                "paypal-transmission-sig",
                official_headers()
                    .get("paypal-transmission-sig")
                    .unwrap()
                    .to_string(),
            ),
        ])
        .collect();
    assert_eq!(
        refused(paypal().verify(&bad_algo, &body, &secrets("0FV983392A0531201"), at)),
        "SIGNATURE_INVALID"
    );
    // The certificate expired in 2021: not used any more.
    assert_eq!(
        refused(paypal().verify(
            &official_headers(),
            &body,
            &secrets("0FV983392A0531201"),
            now()
        )),
        "CERTIFICATE_INVALID"
    );
    // A sandbox event, told by its cert URL and links.
    let event = paypal()
        .parse(&official_headers(), &body)
        .unwrap()
        .remove(0);
    assert!(!event.livemode);
    assert_eq!(event.kind, Kind::Ignored);
    assert_eq!(event.event_id, "WH-7MU294299R542214K-4N1831857K851783H");
    assert_eq!(event.event_type, "PAYMENTS.PAYMENT.CREATED");
}

#[test]
fn generated_certificate_verifies() {
    let body = fixture("paypal", "BILLING.SUBSCRIPTION.ACTIVATED.json");
    let h = headers(sign("test_key.pem", WEBHOOK_ID, &body));
    paypal()
        .verify(&h, &body, &pinned(&["test_cert.pem"]), now())
        .unwrap();
    // Webhook id also accepted from the secrets list.
    let from_secrets =
        Secrets::new([WEBHOOK_ID]).with_options(json!({"certificate_pem": text("test_cert.pem")}));
    paypal().verify(&h, &body, &from_secrets, now()).unwrap();
}

#[test]
fn refusals() {
    let body = fixture("paypal", "BILLING.SUBSCRIPTION.ACTIVATED.json");
    let good = headers(sign("test_key.pem", WEBHOOK_ID, &body));
    let s = pinned(&["test_cert.pem"]);

    let mut tampered = body.clone();
    tampered[5] ^= 1;
    assert_eq!(
        refused(paypal().verify(&good, &tampered, &s, now())),
        "SIGNATURE_INVALID"
    );
    // Signed for another webhook id / with another key.
    let other_webhook = headers(sign("test_key.pem", "OTHERWEBHOOK", &body));
    assert_eq!(
        refused(paypal().verify(&other_webhook, &body, &s, now())),
        "SIGNATURE_INVALID"
    );
    let other_key = headers(sign("other_key.pem", WEBHOOK_ID, &body));
    assert_eq!(
        refused(paypal().verify(&other_key, &body, &s, now())),
        "SIGNATURE_INVALID"
    );
    assert_eq!(
        refused(paypal().verify(&headers("not base64!".into()), &body, &s, now())),
        "SIGNATURE_INVALID"
    );
    // Each required header missing.
    for missing in [
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
    ] {
        let partial: Headers = [
            ("paypal-transmission-id", TRANSMISSION_ID.to_string()),
            ("paypal-transmission-time", TRANSMISSION_TIME.to_string()),
            (
                "paypal-transmission-sig",
                good.get("paypal-transmission-sig").unwrap().to_string(),
            ),
        ]
        .into_iter()
        .filter(|(name, _)| *name != missing)
        .collect();
        assert_eq!(
            refused(paypal().verify(&partial, &body, &s, now())),
            "SIGNATURE_MISSING",
            "{missing}"
        );
    }
    // Configuration: no webhook id, no certificate, a broken certificate.
    let no_webhook =
        Secrets::default().with_options(json!({"certificate_pem": text("test_cert.pem")}));
    assert_eq!(
        refused(paypal().verify(&good, &body, &no_webhook, now())),
        "SECRET_NOT_CONFIGURED"
    );
    let no_cert = Secrets::default().with_options(json!({"webhook_id": WEBHOOK_ID}));
    assert_eq!(
        refused(paypal().verify(&good, &body, &no_cert, now())),
        "CERTIFICATE_NOT_CONFIGURED"
    );
    let empty_cert =
        Secrets::default().with_options(json!({"webhook_id": WEBHOOK_ID, "certificate_pem": " "}));
    assert_eq!(
        refused(paypal().verify(&good, &body, &empty_cert, now())),
        "CERTIFICATE_NOT_CONFIGURED"
    );
    let broken = Secrets::default().with_options(json!({"webhook_id": WEBHOOK_ID, "certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}));
    assert_eq!(
        refused(paypal().verify(&good, &body, &broken, now())),
        "CERTIFICATE_INVALID"
    );
    // Before the test certificate's validity.
    assert_eq!(
        refused(paypal().verify(&good, &body, &s, rfc("2020-01-01T00:00:00Z"))),
        "CERTIFICATE_INVALID"
    );
    // Stale transmission, when the integration asks for a window.
    let window = Secrets::default().with_options(json!({
        "webhook_id": WEBHOOK_ID,
        "certificate_pem": text("test_cert.pem"),
        "tolerance_seconds": 300,
    }));
    paypal()
        .verify(&good, &body, &window, now().plus_seconds(300))
        .unwrap();
    assert_eq!(
        refused(paypal().verify(&good, &body, &window, now().plus_seconds(301))),
        "TIMESTAMP_OUT_OF_TOLERANCE"
    );
}

#[test]
fn rotation_of_certificates_and_webhook_ids() {
    let body = fixture("paypal", "PAYMENT.SALE.COMPLETED.json");
    let both = pinned(&["test_cert.pem", "other_cert.pem"]);
    for key in ["test_key.pem", "other_key.pem"] {
        paypal()
            .verify(&headers(sign(key, WEBHOOK_ID, &body)), &body, &both, now())
            .unwrap();
    }
    assert_eq!(
        refused(paypal().verify(
            &headers(sign("third_key.pem", WEBHOOK_ID, &body)),
            &body,
            &both,
            now()
        )),
        "SIGNATURE_INVALID"
    );
    // Two PEM blocks in one string work too.
    let joined = Secrets::default().with_options(json!({
        "webhook_id": [WEBHOOK_ID, "NEWWEBHOOK"],
        "certificate_pem": format!("{}{}", text("test_cert.pem"), text("other_cert.pem")),
    }));
    for webhook_id in [WEBHOOK_ID, "NEWWEBHOOK"] {
        paypal()
            .verify(
                &headers(sign("other_key.pem", webhook_id, &body)),
                &body,
                &joined,
                now(),
            )
            .unwrap();
    }
    assert_eq!(
        refused(paypal().verify(
            &headers(sign("other_key.pem", "THIRDWEBHOOK", &body)),
            &body,
            &joined,
            now()
        )),
        "SIGNATURE_INVALID"
    );
}

fn parse(name: &str) -> keygate_billing::BillingEvent {
    parse_one("paypal", name, &Headers::new())
}

#[test]
fn subscription_events() {
    let created = parse("BILLING.SUBSCRIPTION.CREATED.json");
    check(
        "created",
        &created,
        Kind::SubscriptionUpdated,
        Expect {
            event_id: Some("WH-1CREATED"),
            subscription_id: Some("I-BW452GLLEP1G"),
            status: Some(Status::Incomplete),
            items: Some(vec![("P-5ML4271244454362WXNWU5NQ", 3)]),
            customer_id: Some("2J6QB8YJQSJRJ"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
    assert!(created.livemode);
    let activated = parse("BILLING.SUBSCRIPTION.ACTIVATED.json");
    check(
        "activated",
        &activated,
        Kind::SubscriptionActivated,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-02-01T10:00:00Z")),
            items: Some(vec![("P-5ML4271244454362WXNWU5NQ", 3)]),
            partial: Some(false),
            ..Expect::default()
        },
    );
    assert_eq!(activated.occurred_at, rfc("2026-01-01T10:00:05Z"));
    assert_eq!(
        activated.customer.unwrap().name.as_deref(),
        Some("Ann Example")
    );
    let trial = parse("BILLING.SUBSCRIPTION.ACTIVATED.trial.json");
    check(
        "trial",
        &trial,
        Kind::TrialStarted,
        Expect {
            subscription_id: Some("I-TRIAL00000001"),
            status: Some(Status::Trialing),
            ..Expect::default()
        },
    );
    assert_eq!(
        trial.subscription.unwrap().trial_end,
        Some(rfc("2026-01-15T10:00:00Z"))
    );
    check(
        "updated",
        &parse("BILLING.SUBSCRIPTION.UPDATED.json"),
        Kind::SubscriptionUpdated,
        Expect {
            items: Some(vec![("P-5ML4271244454362WXNWU5NQ", 7)]),
            ..Expect::default()
        },
    );
    check(
        "failed",
        &parse("BILLING.SUBSCRIPTION.PAYMENT.FAILED.json"),
        Kind::PaymentFailed,
        Expect {
            status: Some(Status::PastDue),
            ..Expect::default()
        },
    );
    check(
        "suspended",
        &parse("BILLING.SUBSCRIPTION.SUSPENDED.json"),
        Kind::SubscriptionPaused,
        Expect {
            status: Some(Status::Paused),
            ..Expect::default()
        },
    );
    check(
        "re-activated",
        &parse("BILLING.SUBSCRIPTION.RE-ACTIVATED.json"),
        Kind::SubscriptionResumed,
        Expect {
            status: Some(Status::Active),
            period_end: Some(rfc("2026-03-06T10:00:00Z")),
            ..Expect::default()
        },
    );
    let cancelled = parse("BILLING.SUBSCRIPTION.CANCELLED.json");
    check(
        "cancelled",
        &cancelled,
        Kind::SubscriptionCancelScheduled,
        Expect {
            // Billing stopped; what was paid for stays paid for. Real CANCELLED resources
            // have no `next_billing_time`: the snapshot does not tell the period (it keeps
            // the known one, the reconcile ends the licenses there: `SubscriptionCancelScheduled`).
            status: Some(Status::Active),
            partial: Some(true),
            items: Some(vec![("P-5ML4271244454362WXNWU5NQ", 7)]),
            ..Expect::default()
        },
    );
    assert_eq!(
        cancelled.subscription.as_ref().unwrap().current_period_end,
        None
    );
    let expired = parse("BILLING.SUBSCRIPTION.EXPIRED.json");
    check(
        "expired",
        &expired,
        Kind::SubscriptionCanceled,
        Expect {
            status: Some(Status::Canceled),
            ..Expect::default()
        },
    );
    assert_eq!(
        expired.subscription.unwrap().ended_at,
        Some(rfc("2026-12-01T10:00:00Z"))
    );
}

#[test]
fn payment_events() {
    check(
        "sale",
        &parse("PAYMENT.SALE.COMPLETED.json"),
        Kind::SubscriptionRenewed,
        Expect {
            event_id: Some("WH-10SALE"),
            subscription_id: Some("I-BW452GLLEP1G"),
            status: Some(Status::Active),
            order_id: Some("80021663DE681814L"),
            partial: Some(true),
            ..Expect::default()
        },
    );
    // The sale has no period: derived from the known one, else API_CREDENTIALS_REQUIRED.
    assert_eq!(
        parse("PAYMENT.SALE.COMPLETED.json")
            .period_missing
            .map(|m| m.code()),
        Some("API_CREDENTIALS_REQUIRED")
    );
    check(
        "refund",
        &parse("PAYMENT.SALE.REFUNDED.json"),
        Kind::Refunded,
        Expect {
            order_id: Some("80021663DE681814L"),
            ..Expect::default()
        },
    );
    check(
        "reversal",
        &parse("PAYMENT.SALE.REVERSED.json"),
        Kind::Chargeback,
        Expect {
            order_id: Some("80021663DE681814L"),
            ..Expect::default()
        },
    );
    check(
        "dispute",
        &parse("CUSTOMER.DISPUTE.CREATED.json"),
        Kind::Chargeback,
        Expect {
            order_id: Some("80021663DE681814L"),
            email: Some("ann@example.com"),
            ..Expect::default()
        },
    );
}

#[test]
fn every_fixture_verifies_and_parses() {
    let s = pinned(&["test_cert.pem"]);
    for name in fixture_names("paypal", &["official_body.json"]) {
        let body = fixture("paypal", &name);
        let h = headers(sign("test_key.pem", WEBHOOK_ID, &body));
        let events = keygate_billing::receive(paypal().0, &h, &body, &s, now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(events.len(), 1);
        assert!(events[0].event_id.starts_with("WH-"), "{name}");
        assert!(events[0].livemode, "{name}");
        assert_eq!(
            format!("{}.json", events[0].event_type),
            name.replace(".trial", "")
        );
    }
}

/// A dispute PayPal opens as an inquiry moves no money: told apart from a chargeback.
#[test]
fn dispute_stage_decides_the_reversal() {
    use keygate_domain::billing::Reversal as R;
    assert_eq!(
        parse("CUSTOMER.DISPUTE.CREATED.json").reversal,
        Some(R::Chargeback)
    );
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("paypal", "CUSTOMER.DISPUTE.CREATED.json")).unwrap();
    body["resource"]["dispute_life_cycle_stage"] = json!("INQUIRY");
    let bytes = body.to_string();
    let headers = Headers::new();
    let request = keygate_billing::Request::post(&headers, bytes.as_bytes());
    let events = keygate_billing::provider("paypal")
        .unwrap()
        .parse(&request)
        .unwrap();
    assert_eq!(events[0].kind, Kind::Chargeback);
    assert_eq!(events[0].reversal, Some(R::DisputeInquiry));
}
