//! PayPal (Subscriptions API webhooks).
//!
//! Verify (self-verification, as PayPal's SDKs do it): the `PAYPAL-TRANSMISSION-SIG` header
//! is base64 RSA PKCS#1 v1.5 SHA-256 (`PAYPAL-AUTH-ALGO: SHA256withRSA`) over
//! `"{PAYPAL-TRANSMISSION-ID}|{PAYPAL-TRANSMISSION-TIME}|{webhook_id}|{crc32(raw body)}"`, the
//! CRC32 (IEEE) printed as unsigned decimal. `webhook_id` is the integration's own webhook
//! (`options.webhook_id`, or the integration's secrets; any may match). The certificate must
//! be **pinned** in `options.certificate_pem` (one or more PEM certificates, a string or an
//! array: pin the next one before PayPal rotates). This crate never fetches
//! `PAYPAL-CERT-URL`: without a pinned certificate verification fails with
//! `CERTIFICATE_NOT_CONFIGURED` (the server may fetch it from PayPal's hosts only, cache it,
//! and pass it in). A certificate outside its validity at `now` is not used. PayPal signs
//! no freshness window; `options.tolerance_seconds` turns on a check of the transmission time.
//!
//! Parse: envelope `{id, event_version, create_time, resource_type, event_type, resource}`.
//! No test flag exists: `livemode` is false when the cert URL or the event's links point at
//! `sandbox.paypal.com`.

use crate::json::{array, at, int_at, parse_object, required, rfc3339_at, str_at};
use crate::scheme::rsa_signature;
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct PayPal;

impl Provider for PayPal {
    fn name(&self) -> &'static str {
        "paypal"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::PayPalKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        webhook_ids(secrets).map_err(|_| {
            ConfigError::OptionNotConfigured(
                "set `options.webhook_id` to the id of the webhook in PayPal's dashboard".into(),
            )
        })?;
        rsa_signature::pinned_keys(&certificates(secrets), now).map_err(|e| match e {
            BillingError::CertificateNotConfigured(m) => ConfigError::CertificateNotConfigured(m),
            other => ConfigError::CertificateInvalid(other.to_string()),
        })?;
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<(), BillingError> {
        let headers = request.headers;
        let webhook_ids = webhook_ids(secrets)?;
        let keys = rsa_signature::pinned_keys(&certificates(secrets), now)?;
        let transmission_id = headers.require("paypal-transmission-id")?;
        let transmission_time = headers.require("paypal-transmission-time")?;
        let signature = headers.require("paypal-transmission-sig")?;
        if let Some(algo) = headers.value("paypal-auth-algo")
            && algo != "SHA256withRSA"
        {
            return Err(BillingError::SignatureInvalid(format!(
                "unsupported PAYPAL-AUTH-ALGO `{algo}`"
            )));
        }
        let crc = crc32fast::hash(request.body);
        let messages: Vec<Vec<u8>> = webhook_ids
            .iter()
            .map(|id| signed_text(transmission_id, transmission_time, id, crc).into_bytes())
            .collect();
        rsa_signature::verify_sha256(&keys, &messages, signature)?;
        if let Some(tolerance) = secrets
            .options
            .get("tolerance_seconds")
            .and_then(Value::as_i64)
            .filter(|t| *t > 0)
        {
            let sent = Timestamp::parse_rfc3339(transmission_time).map_err(|_| {
                BillingError::SignatureInvalid("PAYPAL-TRANSMISSION-TIME is not RFC 3339".into())
            })?;
            if (now.millis() - sent.millis()).abs() > tolerance.saturating_mul(1000) {
                return Err(BillingError::TimestampOutOfTolerance(format!(
                    "transmitted at {sent}, tolerance {tolerance} s"
                )));
            }
        }
        Ok(())
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let (headers, body) = (request.headers, request.body);
        let event = parse_object(body)?;
        let sandbox = headers
            .value("paypal-cert-url")
            .is_some_and(|url| url.contains("sandbox.paypal.com"))
            || array(&event, "/links")
                .iter()
                .filter_map(|link| str_at(link, "/href"))
                .any(|href| href.contains("sandbox.paypal.com"));
        let mut out = parse_event(&event)?;
        out.livemode = !sandbox;
        Ok(vec![out])
    }
}

/// The configured webhook ids: `options.webhook_id` (a string or an array), else the secrets.
fn webhook_ids(secrets: &Secrets) -> Result<Vec<String>, BillingError> {
    let mut ids: Vec<String> = match secrets.options.get("webhook_id") {
        Some(Value::String(id)) => vec![id.trim().to_string()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(|s| s.trim().to_string())
            .collect(),
        _ => Vec::new(),
    };
    ids.retain(|id| !id.is_empty());
    if ids.is_empty() {
        ids = secrets
            .required()
            .map_err(|_| {
                BillingError::SecretNotConfigured("the integration has no PayPal webhook_id".into())
            })?
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect();
    }
    Ok(ids)
}

/// What PayPal signs: `"{transmission id}|{transmission time}|{webhook id}|{crc32(body)}"`.
pub fn signed_text(
    transmission_id: &str,
    transmission_time: &str,
    webhook_id: &str,
    crc: u32,
) -> String {
    format!("{transmission_id}|{transmission_time}|{webhook_id}|{crc}")
}

/// The pinned PEM certificates: `options.certificate_pem`, a string or an array.
fn certificates(secrets: &Secrets) -> Vec<&str> {
    match secrets.options.get("certificate_pem") {
        Some(Value::String(pem)) => vec![pem.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn parse_event(event: &Value) -> Result<BillingEvent, BillingError> {
    let event_id = required(event, "/id")?;
    let event_type = required(event, "/event_type")?;
    let occurred_at = rfc3339_at(event, "/create_time")
        .ok_or_else(|| BillingError::malformed("`/create_time` is missing or not RFC 3339"))?;
    let mut out = BillingEvent::new(event_id, event_type.as_str(), Kind::Ignored, occurred_at);
    let Some(resource) = at(event, "/resource") else {
        return Ok(out);
    };

    match event_type.as_str() {
        "BILLING.SUBSCRIPTION.CREATED"
        | "BILLING.SUBSCRIPTION.ACTIVATED"
        | "BILLING.SUBSCRIPTION.UPDATED"
        | "BILLING.SUBSCRIPTION.CANCELLED"
        | "BILLING.SUBSCRIPTION.EXPIRED"
        | "BILLING.SUBSCRIPTION.SUSPENDED"
        | "BILLING.SUBSCRIPTION.RE-ACTIVATED"
        | "BILLING.SUBSCRIPTION.REACTIVATED"
        | "BILLING.SUBSCRIPTION.PAYMENT.FAILED" => {
            let mut snapshot = subscription(resource)?;
            let trial = snapshot.status == Some(Status::Trialing);
            out.kind = match event_type.as_str() {
                "BILLING.SUBSCRIPTION.CREATED" | "BILLING.SUBSCRIPTION.ACTIVATED" if trial => {
                    Kind::TrialStarted
                }
                "BILLING.SUBSCRIPTION.ACTIVATED" => Kind::SubscriptionActivated,
                "BILLING.SUBSCRIPTION.CREATED" if snapshot.status == Some(Status::Active) => {
                    Kind::SubscriptionActivated
                }
                "BILLING.SUBSCRIPTION.CANCELLED" => Kind::SubscriptionCancelScheduled,
                "BILLING.SUBSCRIPTION.EXPIRED" => Kind::SubscriptionCanceled,
                "BILLING.SUBSCRIPTION.SUSPENDED" => Kind::SubscriptionPaused,
                "BILLING.SUBSCRIPTION.RE-ACTIVATED" | "BILLING.SUBSCRIPTION.REACTIVATED" => {
                    Kind::SubscriptionResumed
                }
                "BILLING.SUBSCRIPTION.PAYMENT.FAILED" => {
                    snapshot.status = Some(Status::PastDue);
                    Kind::PaymentFailed
                }
                _ => Kind::SubscriptionUpdated,
            };
            if snapshot.status == Some(Status::Canceled) && snapshot.ended_at.is_none() {
                snapshot.ended_at = Some(occurred_at);
            }
            out.customer = subscriber(resource);
            out.subscription = Some(snapshot);
            out.last_payment_at = rfc3339_at(resource, "/billing_info/last_payment/time");
            out.billing_interval_seconds = billing_interval(resource);
        }
        "PAYMENT.SALE.COMPLETED" => {
            // A subscription payment (first or recurring). The sale carries no period and
            // PayPal sends no subscription event on renewal: the reconcile extends the known
            // paid-through date by the known interval (once per sale; the first sale is the
            // activation's `last_payment`), else the event fails API_CREDENTIALS_REQUIRED.
            if let Some(sub_id) = str_at(resource, "/billing_agreement_id") {
                let mut snapshot = SubscriptionSnapshot::partial(sub_id);
                snapshot.status = Some(Status::Active);
                out.kind = Kind::SubscriptionRenewed;
                out.subscription = Some(snapshot);
                out.order = order(str_at(resource, "/id"));
                out.period_missing = Some(keygate_domain::billing::MissingPeriod::ApiCredentials);
            }
        }
        "PAYMENT.SALE.REFUNDED" | "PAYMENT.SALE.REVERSED" => {
            out.kind = if event_type == "PAYMENT.SALE.REFUNDED" {
                Kind::Refunded
            } else {
                Kind::Chargeback
            };
            out.subscription =
                str_at(resource, "/billing_agreement_id").map(SubscriptionSnapshot::partial);
            out.order = order(str_at(resource, "/sale_id").or_else(|| str_at(resource, "/id")));
        }
        "CUSTOMER.DISPUTE.CREATED" => {
            out.kind = Kind::Chargeback;
            // An inquiry moves no money; a chargeback (or a claim PayPal escalated) does.
            out.reversal = Some(
                match str_at(resource, "/dispute_life_cycle_stage").as_deref() {
                    Some("INQUIRY") => keygate_domain::billing::Reversal::DisputeInquiry,
                    _ => keygate_domain::billing::Reversal::Chargeback,
                },
            );
            let disputed = array(resource, "/disputed_transactions");
            out.order = order(
                disputed
                    .iter()
                    .find_map(|t| str_at(t, "/seller_transaction_id")),
            );
            let email = disputed.iter().find_map(|t| str_at(t, "/buyer/email"));
            out.customer = email.map(|email| CustomerRef {
                email: Some(email),
                ..CustomerRef::default()
            });
        }
        _ => {}
    }
    Ok(out)
}

fn order(external_id: Option<String>) -> Option<OrderRef> {
    external_id.map(|external_id| OrderRef {
        external_id,
        lines: Vec::new(),
    })
}

fn subscriber(resource: &Value) -> Option<CustomerRef> {
    let customer = CustomerRef {
        external_id: str_at(resource, "/subscriber/payer_id"),
        email: str_at(resource, "/subscriber/email_address"),
        name: crate::json::full_name(
            str_at(resource, "/subscriber/name/given_name"),
            str_at(resource, "/subscriber/name/surname"),
        ),
    };
    (!customer.is_empty()).then_some(customer)
}

/// In a trial: active, the plan has a TRIAL cycle and no REGULAR cycle was billed yet.
fn in_trial(resource: &Value) -> bool {
    let cycles = array(resource, "/billing_info/cycle_executions");
    let has_trial = cycles
        .iter()
        .any(|c| str_at(c, "/tenure_type").as_deref() == Some("TRIAL"));
    let regular_billed = cycles.iter().any(|c| {
        str_at(c, "/tenure_type").as_deref() == Some("REGULAR")
            && int_at(c, "/cycles_completed").unwrap_or(0) > 0
    });
    has_trial && !regular_billed
}

/// The billing interval: from the last payment to the next billing time, in whole days (the
/// plan's frequency is not in the resource; months differ by a day or two, which the next
/// subscription event corrects).
fn billing_interval(resource: &Value) -> Option<i64> {
    const DAY: i64 = 86_400;
    let last = rfc3339_at(resource, "/billing_info/last_payment/time")?;
    let next = rfc3339_at(resource, "/billing_info/next_billing_time")?;
    let days = ((next.millis() - last.millis()) / 1000 + DAY / 2).div_euclid(DAY);
    (days > 0).then_some(days * DAY)
}

fn subscription(resource: &Value) -> Result<SubscriptionSnapshot, BillingError> {
    let external_id = required(resource, "/id")?;
    let raw = str_at(resource, "/status").unwrap_or_default();
    let next_billing = rfc3339_at(resource, "/billing_info/next_billing_time");
    let cancelled = raw == "CANCELLED";
    let status = match raw.as_str() {
        "APPROVAL_PENDING" | "APPROVED" => Some(Status::Incomplete),
        "ACTIVE" if in_trial(resource) => Some(Status::Trialing),
        // Cancelling stops future billing; what was paid for stays paid for.
        "ACTIVE" | "CANCELLED" => Some(Status::Active),
        "SUSPENDED" => Some(Status::Paused),
        "EXPIRED" => Some(Status::Canceled),
        _ => None,
    };
    let items: Vec<BillingItem> = str_at(resource, "/plan_id")
        .map(|plan_id| BillingItem {
            external_id: plan_id,
            product_external_id: None,
            quantity: int_at(resource, "/quantity").unwrap_or(1),
            line_id: None,
            fallback_ids: Vec::new(),
        })
        .into_iter()
        .collect();
    if cancelled && next_billing.is_none() {
        // Real CANCELLED resources carry no `next_billing_time`: what was paid for stays
        // paid for, so the known period end is kept (a partial snapshot does not erase it)
        // and the licenses end there.
        let mut snapshot = SubscriptionSnapshot::partial(external_id);
        snapshot.status = status;
        snapshot.items = items;
        return Ok(snapshot);
    }
    Ok(SubscriptionSnapshot {
        external_id,
        status,
        items,
        current_period_end: next_billing,
        cancel_at_period_end: cancelled,
        cancel_at: if cancelled { next_billing } else { None },
        ended_at: if status == Some(Status::Canceled) {
            rfc3339_at(resource, "/status_update_time")
        } else {
            None
        },
        trial_end: if status == Some(Status::Trialing) {
            next_billing
        } else {
            None
        },
        partial: false,
    })
}
