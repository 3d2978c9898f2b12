//! Salesforce Outbound Messages: licenses follow a CRM record (an Opportunity, an Order, a
//! custom object), not a payment.
//!
//! Verify: Salesforce signs nothing. A message is accepted when the URL carries one of the
//! integration's secrets as `token=...` (compared in constant time; several during a rotation)
//! **and** its `OrganizationId` is the integration's `options.organization_id` (the 15- and
//! 18-character forms of an id are the same id: the 18-character one only appends a checksum
//! of the letter case). No timestamp is signed; a replay is harmless (de-duplicated on the
//! notification id, newer-wins on the record).
//!
//! Parse: one SOAP 1.1 `notifications` message carries up to 100 `Notification`s; each is one
//! [`BillingEvent`] whose id is the notification's `Id` (Salesforce keeps it across its retries,
//! which go on for 24 hours until Keygate answers the `Ack`). The record (`sObject`) is read
//! through the integration's options, since every org names its fields differently:
//! `fields.{email, name, product_code, quantity, term_end, status}` name the sObject's fields,
//! `status_values.{active, cancelled, refunded}` list the status field's values. The record is
//! a subscription whose id is the record's `Id`: `active` → licensed until the term end,
//! `cancelled` → licensed until the term end and not beyond (or suspended now without one),
//! `refunded` → revoked; any other status is stored as `ignored`. The time of the change is
//! the record's `SystemModstamp` (else `LastModifiedDate`, else the receipt time): send one of
//! them so a late retry never overwrites a newer state.

use crate::decode::outbound_message::{self, Notification, OutboundMessage};
use crate::{Ack, BillingError, ConfigError, Provider, Receipt, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, SubscriptionSnapshot,
    SubscriptionStatus as Status,
};
use serde::Deserialize;

pub struct Salesforce;

/// The query parameter that carries the integration's secret.
pub const TOKEN_PARAMETER: &str = "token";

/// The answer Salesforce requires, or it retries the message for 24 hours.
pub const ACK: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
    r#"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
);

/// `options.fields`: which sObject field holds what.
#[derive(Debug, Clone, Deserialize)]
pub struct Fields {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub product_code: String,
    /// Absent: one.
    #[serde(default)]
    pub quantity: Option<String>,
    /// A Date or DateTime field; absent: the policy's own duration.
    #[serde(default)]
    pub term_end: Option<String>,
    pub status: String,
    /// The customer's id in Salesforce (default `AccountId`, when the record sends it).
    #[serde(default)]
    pub customer_id: Option<String>,
}

/// `options.status_values`: the status field's values, per outcome.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusValues {
    pub active: Vec<String>,
    #[serde(default)]
    pub cancelled: Vec<String>,
    #[serde(default)]
    pub refunded: Vec<String>,
}

/// The integration's options (contract).
#[derive(Debug, Clone, Deserialize)]
pub struct Options {
    pub organization_id: String,
    pub sobject: String,
    pub fields: Fields,
    pub status_values: StatusValues,
}

impl Options {
    pub fn read(options: &serde_json::Value) -> Result<Options, ConfigError> {
        let missing = |what: &str| {
            ConfigError::OptionNotConfigured(format!(
                "Salesforce needs `options.{what}` (see docs/platforms/salesforce.md)"
            ))
        };
        for required in ["organization_id", "sobject", "fields", "status_values"] {
            if options.get(required).is_none_or(serde_json::Value::is_null) {
                return Err(missing(required));
            }
        }
        for required in ["product_code", "status"] {
            if options["fields"].get(required).is_none() {
                return Err(missing(&format!("fields.{required}")));
            }
        }
        if options["status_values"].get("active").is_none() {
            return Err(missing("status_values.active"));
        }
        let parsed: Options = serde_json::from_value(options.clone())
            .map_err(|e| ConfigError::OptionInvalid(format!("Salesforce options: {e}")))?;
        if !valid_id(&parsed.organization_id) {
            return Err(ConfigError::OptionInvalid(
                "`options.organization_id` must be the org's 15- or 18-character id (Setup → Company Information → Salesforce.com Organization ID)".into(),
            ));
        }
        let names = [
            Some(&parsed.sobject),
            Some(&parsed.fields.product_code),
            Some(&parsed.fields.status),
            parsed.fields.email.as_ref(),
            parsed.fields.name.as_ref(),
            parsed.fields.quantity.as_ref(),
            parsed.fields.term_end.as_ref(),
            parsed.fields.customer_id.as_ref(),
        ];
        if let Some(bad) = names.into_iter().flatten().find(|n| !api_name(n)) {
            return Err(ConfigError::OptionInvalid(format!(
                "`{bad}` is not a Salesforce API name (letters, digits and `_`, e.g. `Product_Code__c`)"
            )));
        }
        let values = &parsed.status_values;
        if values.active.iter().all(|v| v.trim().is_empty()) {
            return Err(missing("status_values.active"));
        }
        let all: Vec<&String> = values
            .active
            .iter()
            .chain(&values.cancelled)
            .chain(&values.refunded)
            .collect();
        for (i, v) in all.iter().enumerate() {
            if all[..i]
                .iter()
                .any(|w| w.trim().eq_ignore_ascii_case(v.trim()))
            {
                return Err(ConfigError::OptionInvalid(format!(
                    "the status value `{v}` is listed twice in `options.status_values`"
                )));
            }
        }
        Ok(parsed)
    }

    fn outcome(&self, status: &str) -> Option<Outcome> {
        let is = |list: &[String]| list.iter().any(|v| v.trim().eq_ignore_ascii_case(status));
        let v = &self.status_values;
        if is(&v.refunded) {
            Some(Outcome::Refunded)
        } else if is(&v.cancelled) {
            Some(Outcome::Cancelled)
        } else if is(&v.active) {
            Some(Outcome::Active)
        } else {
            None
        }
    }
}

enum Outcome {
    Active,
    Cancelled,
    Refunded,
}

fn valid_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn api_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.as_bytes()[0].is_ascii_alphabetic()
}

/// The same org: ids compare on their first 15 characters, case-sensitively (the 18-character
/// form adds a case checksum, nothing else).
pub fn same_org(a: &str, b: &str) -> bool {
    valid_id(a) && valid_id(b) && crate::crypto::secret_eq(&a.as_bytes()[..15], &b.as_bytes()[..15])
}

impl Provider for Salesforce {
    fn name(&self) -> &'static str {
        "salesforce"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::SalesforceKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        if secrets
            .secrets
            .iter()
            .any(|s| !s.trim().is_empty() && s.trim().len() < 16)
        {
            return Err(ConfigError::SecretInvalid(
                "a Salesforce URL token must be at least 16 characters (it is the only credential)"
                    .into(),
            ));
        }
        Options::read(&secrets.options).map(|_| ())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys = secrets.required()?;
        let query = request.query_fields()?;
        let token = query.get(TOKEN_PARAMETER).ok_or_else(|| {
            BillingError::SignatureMissing(format!(
                "the URL has no `{TOKEN_PARAMETER}` parameter (configure the outbound message's endpoint as the integration's webhook_url?token=...)"
            ))
        })?;
        // Every key is compared, so the time does not tell which one matched.
        let matched = keys.iter().fold(false, |m, k| {
            crate::crypto::secret_eq(k.trim().as_bytes(), token.as_bytes()) | m
        });
        if !matched {
            return Err(BillingError::SignatureInvalid(
                "the URL token is not one of the integration's secrets".into(),
            ));
        }
        let expected = secrets.option_str("organization_id").ok_or_else(|| {
            BillingError::SecretNotConfigured("`options.organization_id` is not set".into())
        })?;
        let message = outbound_message::parse(request.body)?;
        if !same_org(&message.organization_id, expected) {
            return Err(BillingError::SignatureInvalid(
                "the message's OrganizationId is not the integration's organization_id".into(),
            ));
        }
        Ok(())
    }

    fn parse(&self, _request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        Err(BillingError::malformed(
            "Salesforce notifications are read through the integration's options",
        ))
    }

    fn parse_configured(
        &self,
        request: &Request,
        secrets: &Secrets,
        now: Timestamp,
    ) -> Result<Vec<BillingEvent>, BillingError> {
        let options = Options::read(&secrets.options)
            .map_err(|e| BillingError::SecretNotConfigured(e.to_string()))?;
        let message = outbound_message::parse(request.body)?;
        Ok(events(&message, &options, now))
    }

    /// The SOAP `Ack`, once every notification is stored (a failed one is kept for a replay:
    /// Salesforce sending it again would change nothing).
    fn acknowledge(&self, _request: &Request, _receipts: &[Receipt]) -> Ack {
        Ack {
            status: 200,
            content_type: "text/xml; charset=utf-8",
            body: ACK.as_bytes().to_vec(),
        }
    }
}

/// One event per notification, in order.
pub fn events(message: &OutboundMessage, options: &Options, now: Timestamp) -> Vec<BillingEvent> {
    message
        .notifications
        .iter()
        .map(|n| event(n, options, now))
        .collect()
}

fn event(n: &Notification, options: &Options, now: Timestamp) -> BillingEvent {
    let fields = &options.fields;
    let status = n.field(&fields.status).unwrap_or("");
    let occurred_at = ["SystemModstamp", "LastModifiedDate"]
        .iter()
        .find_map(|f| n.field(f).and_then(date_time))
        .unwrap_or(now);
    let event_type = format!(
        "{}.{}",
        n.sobject_type,
        if status.is_empty() { "-" } else { status }
    );
    let mut out = BillingEvent::new(&n.id, event_type, Kind::Ignored, occurred_at);
    let (Some(record), true) = (n.field("Id"), n.sobject_type == options.sobject) else {
        return out;
    };
    let Some(outcome) = options.outcome(status) else {
        return out;
    };
    out.customer = Some(CustomerRef {
        external_id: n
            .field(fields.customer_id.as_deref().unwrap_or("AccountId"))
            .map(str::to_string),
        email: fields
            .email
            .as_deref()
            .and_then(|f| n.field(f))
            .map(str::to_string),
        name: fields
            .name
            .as_deref()
            .and_then(|f| n.field(f))
            .map(str::to_string),
    })
    .filter(|c| !c.is_empty());
    let term_end = fields
        .term_end
        .as_deref()
        .and_then(|f| n.field(f))
        .and_then(term_end);
    let items: Vec<BillingItem> = n
        .field(&fields.product_code)
        .map(|code| {
            let seats = fields
                .quantity
                .as_deref()
                .map_or(Some(1), |f| n.field(f).map(quantity).unwrap_or(Some(1)))
                // Not a whole number: refused by the reconcile (INVALID_QUANTITY, kept on the
                // event) rather than rounded into seats nobody sold.
                .unwrap_or(0);
            BillingItem::new(code, seats)
        })
        .into_iter()
        .collect();
    let full = |status: Status| SubscriptionSnapshot {
        external_id: record.to_string(),
        status: Some(status),
        items: items.clone(),
        current_period_end: term_end,
        cancel_at_period_end: false,
        cancel_at: None,
        ended_at: None,
        trial_end: None,
        partial: false,
    };
    let (kind, snapshot) = match outcome {
        Outcome::Active => (Kind::SubscriptionUpdated, full(Status::Active)),
        Outcome::Cancelled if term_end.is_some() => (
            Kind::SubscriptionCancelScheduled,
            SubscriptionSnapshot {
                cancel_at_period_end: true,
                cancel_at: term_end,
                ..full(Status::Active)
            },
        ),
        Outcome::Cancelled => (
            Kind::SubscriptionCanceled,
            SubscriptionSnapshot {
                ended_at: Some(occurred_at),
                ..full(Status::Canceled)
            },
        ),
        Outcome::Refunded => (Kind::Refunded, SubscriptionSnapshot::partial(record)),
    };
    out.kind = kind;
    out.subscription = Some(snapshot);
    out
}

/// `2025-06-30T12:00:00.000Z` (DateTime).
fn date_time(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text).ok()
}

/// A DateTime, or a Date (`2025-06-30`: licensed through that day, UTC, so until the next
/// midnight).
fn term_end(text: &str) -> Option<Timestamp> {
    date_time(text).or_else(|| {
        (text.len() == 10)
            .then(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")).ok())
            .flatten()
            .map(|t| t.plus_seconds(86_400))
    })
}

/// Salesforce sends numbers as `5` or `5.0`.
fn quantity(text: &str) -> Option<i64> {
    let value: f64 = text.parse().ok()?;
    (value.fract() == 0.0 && value.abs() < 1e12).then_some(value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_compare_in_both_forms() {
        assert!(same_org("00DKG0000000001", "00DKG0000000001AAA"));
        assert!(same_org("00DKG0000000001AAA", "00DKG0000000001AAA"));
        assert!(!same_org("00DKG0000000001", "00dkg0000000001AAA"));
        assert!(!same_org("00DKG0000000002", "00DKG0000000001AAA"));
        assert!(!same_org("00DKG", "00DKG"));
    }

    #[test]
    fn dates_and_quantities() {
        assert_eq!(
            term_end("2025-06-30"),
            Some(Timestamp::parse_rfc3339("2025-07-01T00:00:00Z").unwrap())
        );
        assert_eq!(
            term_end("2025-06-30T10:00:00.000Z"),
            Some(Timestamp::parse_rfc3339("2025-06-30T10:00:00Z").unwrap())
        );
        assert_eq!(term_end("soon"), None);
        assert_eq!(quantity("5.0"), Some(5));
        assert_eq!(quantity("2"), Some(2));
        assert_eq!(quantity("2.5"), None);
        assert_eq!(quantity("x"), None);
    }
}
