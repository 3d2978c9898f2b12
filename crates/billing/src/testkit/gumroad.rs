//! Gumroad: unsigned form pings with bracketed keys, authenticated by the integration's token
//! in the URL (`?token=`), and confirmed through a stand-in for Gumroad's API
//! (`GET /v2/sales/{id}`, `GET /v2/subscribers/{id}`). Steps are the pings' payloads as JSON
//! (nested as Gumroad builds them); [`deliver`](Kit::deliver) encodes them as Gumroad's worker
//! does (HTTParty's nested params, literal brackets in names escaped first).
//!
//! Gumroad has no ping for a failed or a recovered payment (a membership whose charges fail is
//! cancelled, then ends): those steps are empty. A membership's periods are calendar months
//! from the charge, so the renewal charge happens when the first month is over.

use super::{
    ApiRequest, Delivery, Ids, Kit, OrderSteps, Settings, SignedHeaders, Stage, Steps,
    first_secret, rfc,
};
use crate::decode::civil;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct GumroadKit;

const TOKEN: &str = "gumroad-url-token-for-tests-3f9a";
pub const ACCESS_TOKEN: &str = "gumroad-api-access-token-for-tests";
const PRODUCT: &str = "32-nPainLBVrqUBGAV9gHw==";
const PURCHASER: &str = "6251289846914";
const SUBSCRIPTION: &str = "ifsMOaNAoTMZhq2Zf2kaDQ==";
const FIRST_SALE: &str = "FO8TXN-dbxYaBdahG97Y-Q==";
const RENEWAL_SALE: &str = "xLq2ab9Wd3VsC8mNkT0pEw==";
const ONE_TIME_SALE: &str = "Kd81mWq0tYbP3cXe5Zr7Lg==";
const LICENSE_KEY: &str = "85DB562A-C11D4B06-A2335A6B-8C079166";
const ONE_TIME_KEY: &str = "1A2B3C4D-5E6F7A8B-9C0D1E2F-3A4B5C6D";

impl GumroadKit {
    /// The pairs Gumroad's worker posts for a nested payload: `a[b]=`, `a[]=`, booleans as
    /// `true`/`false`, `null` as an empty value; brackets inside a name escaped as `%5B`/`%5D`.
    pub fn form_pairs(payload: &Value) -> Vec<(String, String)> {
        fn escape(name: &str) -> String {
            name.replace('[', "%5B").replace(']', "%5D")
        }
        fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        let name = if prefix.is_empty() {
                            escape(k)
                        } else {
                            format!("{prefix}[{}]", escape(k))
                        };
                        walk(&name, v, out);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        walk(&format!("{prefix}[]"), item, out);
                    }
                }
                Value::String(s) => out.push((prefix.to_string(), s.clone())),
                Value::Null => out.push((prefix.to_string(), String::new())),
                other => out.push((prefix.to_string(), other.to_string())),
            }
        }
        let mut out = Vec::new();
        walk("", payload, &mut out);
        out
    }
}

impl Kit for GumroadKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![TOKEN.into()],
            options: json!({}),
        }
    }

    /// Gumroad signs nothing.
    fn sign(
        &self,
        _secrets: &Secrets,
        _body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        Ok(Vec::new())
    }

    fn deliver(
        &self,
        secrets: &Secrets,
        body: &Value,
        _now: Timestamp,
    ) -> Result<Delivery, String> {
        let token = first_secret(secrets)?;
        Ok(Delivery {
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: super::form_encode(&GumroadKit::form_pairs(body)).into_bytes(),
            query: super::form_encode(&[("token".into(), token.into())]),
        })
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: PRODUCT,
            customer: PURCHASER,
            subscription: SUBSCRIPTION,
        }
    }

    fn steps(&self, start: i64, _failed_at: i64) -> Option<Steps> {
        Some(gumroad_steps(start))
    }

    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        Some(gumroad_order(start))
    }

    fn expires_after(&self, start: i64, periods: i64) -> i64 {
        charge(start, periods)
    }

    fn unique_ids(&self) -> Vec<&'static str> {
        vec![
            FIRST_SALE,
            RENEWAL_SALE,
            ONE_TIME_SALE,
            LICENSE_KEY,
            ONE_TIME_KEY,
        ]
    }

    fn api_credentials(&self) -> Option<Value> {
        Some(json!({"access_token": ACCESS_TOKEN}))
    }

    fn api_answer(&self, stage: &Stage, request: &ApiRequest) -> Option<(u16, Value)> {
        if request.headers.get("authorization") != Some(format!("Bearer {ACCESS_TOKEN}").as_str()) {
            return Some((
                401,
                json!({"success": false, "message": "The access token is invalid"}),
            ));
        }
        let path = request.path_and_query.split('?').next().unwrap_or("");
        let answer = match path.strip_prefix("/v2/sales/") {
            Some(id) => api_sale(stage, &percent_decoded(id))?,
            None => api_subscriber(
                stage,
                &percent_decoded(path.strip_prefix("/v2/subscribers/")?),
            )?,
        };
        Some((200, answer))
    }
}

/// Ids in the path are base64 (`=`, maybe `/` or `+`) and may arrive percent-encoded.
fn percent_decoded(text: &str) -> String {
    crate::Form::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .ok()
        .and_then(|f| f.get("x").map(str::to_string))
        .unwrap_or_else(|| text.to_string())
}

/// When charge number `n` (0 = the purchase) of a membership bought at `start - 100` happens:
/// every charge a calendar month after the one before.
fn charge(start: i64, n: i64) -> i64 {
    let mut at = Timestamp::from_unix_seconds(start - 100);
    for _ in 0..n {
        at = civil::plus_months(at, 1);
    }
    at.millis() / 1000
}

fn step_index(step: &str) -> usize {
    [
        "created",
        "renewed",
        "quantity",
        "failed",
        "recovered",
        "cancelled",
        "refunded",
    ]
    .iter()
    .position(|s| *s == step)
    .unwrap_or(0)
}

/// `GET /v2/sales/{id}` as Gumroad answers it at `stage`.
fn api_sale(stage: &Stage, id: &str) -> Option<Value> {
    let (sold_at, subscription, refunded) = match id {
        FIRST_SALE => (charge(stage.start, 0), true, false),
        RENEWAL_SALE if step_index(stage.step) >= 1 => (
            charge(stage.start, 1),
            true,
            step_index(stage.step) >= step_index("refunded"),
        ),
        ONE_TIME_SALE => (stage.start - 10, false, stage.step == "refunded"),
        _ => return None,
    };
    let mut sale = json!({
        "id": id, "email": "ann@example.com", "seller_id": "kL9mN0pQ1rS2tU3v==",
        "created_at": rfc(sold_at), "product_name": "Keygate Pro", "product_id": PRODUCT,
        "product_permalink": "keygate", "price": 1500, "gumroad_fee": 150,
        "refunded": refunded, "partially_refunded": false, "chargedback": false,
        "disputed": false, "dispute_won": false, "purchaser_id": PURCHASER,
        "order_id": 524459995, "quantity": if subscription { 1 } else { 2 },
        "license_key": if subscription { LICENSE_KEY } else { ONE_TIME_KEY },
        "is_recurring_billing": subscription,
        "card": {"visual": "**** **** **** 4242", "type": "visa"},
    });
    if subscription {
        sale["subscription_id"] = json!(SUBSCRIPTION);
        sale["recurring_charge"] = json!(id == RENEWAL_SALE);
        sale["cancelled"] = json!(step_index(stage.step) >= step_index("cancelled"));
        sale["ended"] = json!(false);
    }
    Some(json!({"success": true, "sale": sale}))
}

/// `GET /v2/subscribers/{id}` as Gumroad answers it at `stage`.
fn api_subscriber(stage: &Stage, id: &str) -> Option<Value> {
    if id != SUBSCRIPTION {
        return None;
    }
    let cancelled = step_index(stage.step) >= step_index("cancelled");
    Some(json!({"success": true, "subscriber": {
        "id": SUBSCRIPTION, "product_id": PRODUCT, "product_name": "Keygate Pro",
        "user_id": PURCHASER, "user_email": "ann@example.com",
        "purchase_ids": [FIRST_SALE, RENEWAL_SALE], "created_at": rfc(charge(stage.start, 0)),
        "user_requested_cancellation_at": if cancelled { json!(rfc(charge(stage.start, 1) + 120)) } else { Value::Null },
        "charge_occurrence_count": null, "recurrence": "monthly",
        "cancelled_at": if cancelled { json!(rfc(charge(stage.start, 1) + 120)) } else { Value::Null },
        "ended_at": null, "failed_at": null, "free_trial_ends_at": null,
        "status": if cancelled { "pending_cancellation" } else { "alive" },
        "license_key": LICENSE_KEY,
    }}))
}

/// A sale ping (`resource_name` sale, refund, dispute, dispute_won) as `payload_for_ping_notification` builds it.
fn sale(resource: &str, id: &str, sold_at: i64, quantity: u32, subscription: bool) -> Value {
    let mut ping = json!({
        "seller_id": "kL9mN0pQ1rS2tU3v==", "product_id": PRODUCT,
        "product_name": "Keygate Pro", "permalink": "keygate",
        "product_permalink": "https://ann.gumroad.com/l/keygate", "short_product_id": "keygate",
        "email": "ann@example.com", "price": (1500 * quantity).to_string(), "gumroad_fee": "150",
        "currency": "usd", "quantity": quantity.to_string(), "discover_fee_charged": "false",
        "can_contact": "true", "referrer": "direct",
        "card": {"visual": "**** **** **** 4242", "type": "visa", "bin": null,
                 "expiry_month": null, "expiry_year": null},
        "order_number": "524459995", "sale_id": id, "sale_timestamp": rfc(sold_at),
        "full_name": "Ann Example", "purchaser_id": PURCHASER,
        "variants": {"Tier": "Pro"}, "ip_country": "Germany",
        "custom_fields": {"Company [legal name]": "Example GmbH"},
        "Company [legal name]": "Example GmbH",
        "is_gift_receiver_purchase": "false",
        "refunded": (resource == "refund").to_string(), "resource_name": resource,
        "disputed": "false", "dispute_won": "false",
    });
    if subscription {
        ping["subscription_id"] = json!(SUBSCRIPTION);
        ping["recurrence"] = json!("monthly");
        ping["license_key"] = json!(LICENSE_KEY);
        ping["is_multiseat_license"] = json!("false");
        if id != FIRST_SALE {
            ping["is_recurring_charge"] = json!("true");
        }
    } else {
        ping["license_key"] = json!(ONE_TIME_KEY);
    }
    ping
}

/// A subscription ping as `Subscription#payload_for_ping_notification` builds it.
fn subscription(resource: &str, start: i64, extra: Value) -> Value {
    let mut ping = json!({
        "subscription_id": SUBSCRIPTION, "product_id": PRODUCT, "product_name": "Keygate Pro",
        "user_id": PURCHASER, "user_email": "ann@example.com",
        "purchase_ids": [FIRST_SALE, RENEWAL_SALE], "created_at": rfc(charge(start, 0)),
        "charge_occurrence_count": "", "recurrence": "monthly", "free_trial_ends_at": "",
        "resource_name": resource, "license_key": LICENSE_KEY,
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        ping[k] = v.clone();
    }
    ping
}

fn gumroad_steps(start: i64) -> Steps {
    let renewal = charge(start, 1);
    Steps {
        created: vec![sale("sale", FIRST_SALE, charge(start, 0), 1, true)],
        renewed: vec![sale("sale", RENEWAL_SALE, renewal, 1, true)],
        // A tier/quantity change of a tiered membership, effective at once (an upgrade).
        quantity: vec![subscription(
            "subscription_updated",
            start,
            json!({"type": "upgrade", "effective_as_of": rfc(renewal + 60),
                   "old_plan": {"tier": {"id": "tier-pro==", "name": "Pro"},
                                "recurrence": "monthly", "price_cents": "1500", "quantity": "1"},
                   "new_plan": {"tier": {"id": "tier-pro==", "name": "Pro"},
                                "recurrence": "monthly", "price_cents": "7500", "quantity": "5"}}),
        )],
        failed: Vec::new(),
        recovered: Vec::new(),
        // The buyer cancels: the membership runs until the paid period is over.
        cancelled: vec![subscription(
            "cancellation",
            start,
            json!({"cancelled": "true", "cancelled_at": rfc(renewal + 120),
                   "cancelled_by_buyer": "true"}),
        )],
        refunded: vec![sale("refund", RENEWAL_SALE, renewal, 1, true)],
        cancel_ends_at: charge(start, 2),
    }
}

fn gumroad_order(start: i64) -> OrderSteps {
    let mut refund = sale("refund", ONE_TIME_SALE, start - 10, 2, false);
    refund["refunded"] = json!("true");
    OrderSteps {
        paid: vec![sale("sale", ONE_TIME_SALE, start - 10, 2, false)],
        refunded: vec![refund],
        order: ONE_TIME_SALE.to_string(),
    }
}
