//! Salesforce Outbound Messages: the URL token and the OrganizationId authenticate; the SOAP
//! envelope reads through the integration's options; one event per Notification.
mod common;

use common::{fixture, rfc};
use keygate_billing::testkit::salesforce::{ORGANIZATION_ID, options};
use keygate_billing::{
    BillingEventKind as Kind, Headers, Provider, Request, Secrets, SubscriptionStatus, Timestamp,
    provider,
};
use serde_json::json;

const TOKEN: &str = "sf-outbound-token-0123456789abcdef";

fn salesforce() -> &'static dyn Provider {
    provider("salesforce").unwrap()
}

fn settings() -> Secrets {
    Secrets::new([TOKEN]).with_options(options())
}

fn now() -> Timestamp {
    rfc("2026-01-06T00:00:00Z")
}

fn verify(body: &[u8], query: &str, secrets: &Secrets) -> Result<(), &'static str> {
    let headers = Headers::new().with("content-type", "text/xml; charset=utf-8");
    salesforce()
        .verify(
            &Request::post(&headers, body).with_query(query),
            secrets,
            now(),
        )
        .map_err(|e| e.code().as_str())
}

fn events(name: &str) -> Vec<keygate_billing::BillingEvent> {
    let body = fixture("salesforce", name);
    let headers = Headers::new();
    let request = Request::post(&headers, &body).with_query("token=x");
    salesforce()
        .parse_configured(&request, &settings(), now())
        .unwrap()
}

#[test]
fn the_token_and_the_org_authenticate() {
    let body = fixture("salesforce", "opportunity_active.xml");
    let query = format!("token={TOKEN}");
    assert_eq!(verify(&body, &query, &settings()), Ok(()));
    assert_eq!(
        verify(&body, "", &settings()),
        Err("SIGNATURE_MISSING"),
        "no token"
    );
    assert_eq!(
        verify(
            &body,
            "token=sf-outbound-token-0123456789abcdeX",
            &settings()
        ),
        Err("SIGNATURE_INVALID")
    );
    // Rotation: either secret.
    let two = Secrets::new(["sf-new-token-0123456789abcdef", TOKEN]).with_options(options());
    assert_eq!(verify(&body, &query, &two), Ok(()));
    // No secret at all: refused, whatever the URL says.
    let none = Secrets::new(Vec::<String>::new()).with_options(options());
    assert_eq!(verify(&body, &query, &none), Err("SECRET_NOT_CONFIGURED"));
    // Another org's message with our token: refused.
    let other = String::from_utf8(body.clone())
        .unwrap()
        .replace(ORGANIZATION_ID, "00DKG0000000999AAA");
    assert_eq!(
        verify(other.as_bytes(), &query, &settings()),
        Err("SIGNATURE_INVALID")
    );
    // The 15-character form of the org id in the options is the same org.
    let mut short = options();
    short["organization_id"] = json!(&ORGANIZATION_ID[..15]);
    let short = Secrets::new([TOKEN]).with_options(short);
    assert_eq!(verify(&body, &query, &short), Ok(()));
    // Not a SOAP message: malformed, not accepted.
    assert_eq!(
        verify(b"{\"a\":1}", &query, &settings()),
        Err("MALFORMED_PAYLOAD")
    );
}

#[test]
fn a_dtd_is_refused_before_anything_is_read() {
    let body = String::from_utf8(fixture("salesforce", "opportunity_active.xml")).unwrap();
    let bomb = body.replacen(
        "<soapenv:Envelope",
        "<!DOCTYPE e [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]><soapenv:Envelope",
        1,
    );
    assert_eq!(
        verify(bomb.as_bytes(), &format!("token={TOKEN}"), &settings()),
        Err("MALFORMED_PAYLOAD")
    );
}

#[test]
fn every_notification_is_an_event() {
    let all = events("opportunity_active.xml");
    assert_eq!(all.len(), 2);
    let first = &all[0];
    assert_eq!(first.event_id, "04lKG0000000101AAA");
    assert_eq!(first.kind, Kind::SubscriptionUpdated);
    assert_eq!(first.event_type, "Opportunity.Active");
    assert_eq!(first.occurred_at, rfc("2026-01-05T09:30:00Z"));
    let sub = first.subscription.as_ref().unwrap();
    assert_eq!(sub.external_id, "006KG0000000101AAA");
    assert_eq!(sub.status, Some(SubscriptionStatus::Active));
    assert!(!sub.partial);
    assert_eq!(sub.items.len(), 1);
    assert_eq!(sub.items[0].external_id, "KG-PRO");
    assert_eq!(sub.items[0].quantity, 10);
    // A Date term end: licensed through that day.
    assert_eq!(sub.current_period_end, Some(rfc("2027-01-05T00:00:00Z")));
    let customer = first.customer.as_ref().unwrap();
    assert_eq!(customer.external_id.as_deref(), Some("001KG0000000101AAA"));
    assert_eq!(customer.email.as_deref(), Some("ann@example.com"));
    assert_eq!(customer.name.as_deref(), Some("Ann Example"));

    let second = &all[1];
    assert_eq!(second.event_id, "04lKG0000000102AAA");
    assert_eq!(
        second.subscription.as_ref().unwrap().current_period_end,
        Some(rfc("2026-07-04T23:59:59Z"))
    );
    assert_eq!(second.customer.as_ref().unwrap().name, None, "xsi:nil");
}

#[test]
fn statuses_map_to_the_lifecycle() {
    let cancelled = &events("opportunity_cancelled.xml")[0];
    assert_eq!(cancelled.kind, Kind::SubscriptionCancelScheduled);
    let sub = cancelled.subscription.as_ref().unwrap();
    assert!(sub.cancel_at_period_end);
    assert_eq!(sub.cancel_at, Some(rfc("2027-01-05T00:00:00Z")));

    let refunded = &events("opportunity_refunded.xml")[0];
    assert_eq!(refunded.kind, Kind::Refunded);
    assert_eq!(
        refunded.subscription_id(),
        Some("006KG0000000101AAA"),
        "the record's licenses are revoked"
    );

    // A status in none of the lists, and another sObject type: stored, not acted on.
    assert_eq!(events("opportunity_prospecting.xml")[0].kind, Kind::Ignored);
    let contact = &events("contact_prefixed.xml")[0];
    assert_eq!(contact.kind, Kind::Ignored);
    assert_eq!(
        contact.event_id, "04lKG0000000106AAA",
        "prefixed envelope read"
    );
}

#[test]
fn cancelled_without_a_term_end_ends_now() {
    let mut o = options();
    o["fields"].as_object_mut().unwrap().remove("term_end");
    let body = fixture("salesforce", "opportunity_cancelled.xml");
    let headers = Headers::new();
    let event = &salesforce()
        .parse_configured(
            &Request::post(&headers, &body),
            &Secrets::new([TOKEN]).with_options(o),
            now(),
        )
        .unwrap()[0];
    assert_eq!(event.kind, Kind::SubscriptionCanceled);
    assert_eq!(
        event.subscription.as_ref().unwrap().status,
        Some(SubscriptionStatus::Canceled)
    );
}

#[test]
fn incomplete_options_are_refused_with_what_to_set() {
    let check = |options: serde_json::Value, secrets: &[&str]| {
        salesforce()
            .check_config(
                &Secrets::new(secrets.iter().copied()).with_options(options),
                now(),
            )
            .map_err(|e| (e.code().as_str(), e.to_string()))
    };
    assert_eq!(check(options(), &[TOKEN]), Ok(()));
    assert_eq!(
        check(options(), &[]).unwrap_err().0,
        "SECRET_NOT_CONFIGURED"
    );
    assert_eq!(
        check(options(), &["short"]).unwrap_err().0,
        "SECRET_INVALID"
    );
    for (pointer, code) in [
        ("/organization_id", "OPTION_NOT_CONFIGURED"),
        ("/sobject", "OPTION_NOT_CONFIGURED"),
        ("/fields/product_code", "OPTION_NOT_CONFIGURED"),
        ("/fields/status", "OPTION_NOT_CONFIGURED"),
        ("/status_values/active", "OPTION_NOT_CONFIGURED"),
    ] {
        let mut o = options();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut o
        } else {
            o.pointer_mut(parent).unwrap()
        };
        parent.as_object_mut().unwrap().remove(key);
        let (got, message) = check(o, &[TOKEN]).unwrap_err();
        assert_eq!(got, code, "{pointer}");
        assert!(
            message.contains(&pointer[1..].replace('/', ".")),
            "{message}"
        );
    }
    let mut o = options();
    o["organization_id"] = json!("00D-not-an-id");
    assert_eq!(check(o, &[TOKEN]).unwrap_err().0, "OPTION_INVALID");
    let mut o = options();
    o["fields"]["email"] = json!("Email; DROP");
    assert_eq!(check(o, &[TOKEN]).unwrap_err().0, "OPTION_INVALID");
    let mut o = options();
    o["status_values"]["refunded"] = json!(["Active"]);
    assert_eq!(check(o, &[TOKEN]).unwrap_err().0, "OPTION_INVALID");
}

#[test]
fn the_ack_is_the_soap_answer_salesforce_waits_for() {
    let headers = Headers::new();
    let ack = salesforce().acknowledge(&Request::post(&headers, b""), &[]);
    assert_eq!(ack.status, 200);
    assert!(ack.content_type.starts_with("text/xml"));
    let body = String::from_utf8(ack.body).unwrap();
    assert!(body.contains("<Ack>true</Ack>"), "{body}");
    assert!(
        body.contains("<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">")
    );
    assert!(body.contains("http://schemas.xmlsoap.org/soap/envelope/"));
}
