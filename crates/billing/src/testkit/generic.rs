//! Generic: Standard Webhooks over Keygate's own normalized BillingEvent JSON.

use super::body_id;
use super::{Ids, Kit, MONTH, Settings, SignedHeaders, Steps, rfc, unix_seconds};
use crate::scheme::standard_webhooks;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct GenericKit;

const KEY: &[u8] = b"keygate-generic-standard-webhooks-key";

impl Kit for GenericKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![format!("whsec_{}", crate::crypto::encode_base64(KEY))],
            options: json!({}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let key = secrets
            .required()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find_map(standard_webhooks::secret_key)
            .ok_or("no configured secret is a `whsec_` key")?;
        let id = format!("msg_{}", body_id(body));
        Ok(standard_webhooks::sign_headers(
            &key,
            &id,
            unix_seconds(now),
            body,
        ))
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: "pro-monthly",
            customer: "c-42",
            subscription: "sub-7",
        }
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        Some(generic_steps(start, failed_at))
    }
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
