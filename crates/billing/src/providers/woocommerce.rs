//! WooCommerce core webhooks and WooCommerce Subscriptions.
//!
//! Verify (`WC_Webhook::deliver` / `generate_signature`): `X-WC-Webhook-Signature` =
//! base64(HMAC-SHA256(key, body)) over the exact bytes sent (`trim(wp_json_encode(payload))`),
//! with `key = wp_specialchars_decode(secret, ENT_QUOTES)`: WooCommerce stores the secret as
//! `sanitize_text_field` left it (a lone `<` becomes `&lt;`) and decodes the HTML entities
//! `&amp; &lt; &gt; &quot; &#039;` (and their numeric forms, see [`wp_specialchars_decode`])
//! before signing, so Keygate decodes each configured secret the same way. Any configured
//! secret may match (rotation on Keygate's side; WooCommerce has one secret per webhook). No
//! timestamp is signed.
//!
//! The creation **ping** (`WC_Webhook::deliver_ping`): `webhook_id=N`, form-encoded, no
//! signature and no `X-WC-*` header, must be answered exactly 200. It is accepted only in that
//! exact shape, only when the integration has a secret, and yields no event: nothing is stored.
//! Any other body without a signature is refused (`SIGNATURE_MISSING`).
//!
//! Parse: the body is the resource's current REST v3 representation (built when delivered,
//! not when the event happened), the topic comes in `X-WC-Webhook-Topic` (`order.updated`).
//! WooCommerce has **no event id** (`X-WC-Webhook-Delivery-ID` is `wp_hash(webhook_id .
//! time())`, new on every attempt), so `event_id` is synthetic and names the *state* of the
//! object: `{resource}:{id}:{date_modified_gmt}:{digest}`, the digest (SHA-256, 12 hex) over
//! the fields Keygate reads, so the same state of the same object has the same id whichever
//! webhook (`order.created`, `order.updated`) or the periodic sync brought it; a refund is
//! `order:{id}:refund:{refund_id}`, a deletion `{resource}:{id}:deleted`. `occurred_at` is
//! `date_modified_gmt` (WooCommerce writes GMT times without an offset).
//!
//! Orders: paid (`processing`, `completed`, or `date_paid_gmt` set) → `order_paid` with a
//! line per line item (`line_id` = the order item id; mapped by `variation_id`, then
//! `product_id`, then `sku`); `refunded` → a full refund; `cancelled` and `order.deleted`
//! (trashed) → revoke; each entry of `refunds[]` on an order not wholly refunded → a partial
//! refund whose lines are fetched from the REST API (`GET /orders/{id}/refunds/{refund_id}`:
//! the refund's line items name the order item in `_refunded_item_id`). A renewal order of
//! WooCommerce Subscriptions (meta `_subscription_renewal` = the subscription id) extends that
//! subscription instead of issuing a license; its refund reaches the subscription's licenses.
//!
//! Subscriptions (`subscription.created|updated|switched|deleted`): a full snapshot of the
//! REST v3 subscription, see [`subscription`].

use crate::api::{ApiSpec, Auth, Fetch, ListPage, ObjectKind, SyncPage, SyncedObject};
use crate::json::{array, at, int_at, str_at};
use crate::scheme::{Algorithm, BodyHmac, Encoding};
use crate::{BillingError, ConfigError, Headers, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct WooCommerce;

/// `X-WC-Webhook-Signature: base64(HMAC-SHA256(key, body))`.
pub const SCHEME: BodyHmac = BodyHmac {
    header: "x-wc-webhook-signature",
    algorithm: Algorithm::Sha256,
    encoding: Encoding::Base64,
    prefix: "",
};

/// The REST API's root under the store URL.
pub const REST_ROOT: &str = "/wp-json/wc/v3";

/// Objects per page of a sync listing (the REST API's largest `per_page`).
pub const SYNC_PAGE_SIZE: u32 = 100;

impl Provider for WooCommerce {
    fn name(&self) -> &'static str {
        "woocommerce"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::WooCommerceKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let keys: Vec<String> = secrets
            .required()?
            .into_iter()
            .map(wp_specialchars_decode)
            .collect();
        if request.headers.value(SCHEME.header).is_none() && is_ping(request) {
            return Ok(());
        }
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        SCHEME.verify(request.headers, request.body, &keys)
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        if is_ping(request) {
            return Ok(Vec::new());
        }
        let topic = topic(request.headers)?;
        let object = request.json()?;
        let (resource, event) = topic.split_once('.').unwrap_or((topic.as_str(), ""));
        parse_object(resource, event, &topic, &object)
    }

    /// The store's REST API, at `api_credentials.store_url` (see [`Provider::api_base_url`]),
    /// Basic auth with the consumer key and secret (over https, as WooCommerce requires).
    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "",
            auth: Auth::Basic {
                user: "consumer_key",
                password: Some("consumer_secret"),
            },
        })
    }

    fn api_base_url(&self, credential: &dyn Fn(&str) -> Option<String>) -> Option<String> {
        credential("store_url").map(|url| url.trim().trim_end_matches('/').to_string())
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|path| fetch(path.clone()))
            .collect()
    }

    /// A partial refund's lines, from the refund object: each line item names the order item it
    /// refunds (`_refunded_item_id`) and its (negative) quantity.
    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        for (fetch, refund) in fetched {
            if !refund.is_object() || at(refund, "/id").is_none() {
                return Err(BillingError::malformed(format!(
                    "`{}` did not answer a refund",
                    fetch.path
                )));
            }
            if let Some(order) = &mut event.order {
                order
                    .lines
                    .extend(array(refund, "/line_items").iter().filter_map(refund_line));
            }
        }
        event.needs_fetch.clear();
        Ok(event)
    }

    /// Orders and subscriptions modified since the last sync, oldest first.
    fn sync_requests(&self, since: Option<Timestamp>) -> Vec<Fetch> {
        ["orders", "subscriptions"]
            .into_iter()
            .map(|listing| fetch(listing_path(listing, since, 1)))
            .collect()
    }

    /// One page of a listing: each object parsed as its `*.updated` webhook would be (same
    /// event ids, so what a webhook already brought is a duplicate); the next page from
    /// `X-WP-TotalPages` (or, without it, a full page).
    fn parse_sync_page(&self, listing: &Fetch, page: &ListPage) -> Result<SyncPage, BillingError> {
        let objects = page
            .body
            .as_array()
            .ok_or_else(|| BillingError::malformed(format!("`{}` is not a list", listing.path)))?;
        let resource = if listing.path.contains("/subscriptions") {
            "subscription"
        } else {
            "order"
        };
        let topic = format!("{resource}.synced");
        let mut out = Vec::with_capacity(objects.len());
        for object in objects {
            out.push(SyncedObject {
                raw: object.to_string(),
                events: parse_object(resource, "updated", &topic, object)?,
            });
        }
        let current = query_number(&listing.path, "page").unwrap_or(1);
        let more = match page
            .headers
            .value("x-wp-totalpages")
            .and_then(|t| t.parse::<u32>().ok())
        {
            Some(total) => current < total,
            None => objects.len() >= SYNC_PAGE_SIZE as usize,
        };
        let next = more.then(|| {
            let listing_name = if resource == "order" {
                "orders"
            } else {
                "subscriptions"
            };
            let since = query_value(&listing.path, "modified_after")
                .and_then(|s| Timestamp::parse_rfc3339(&format!("{s}Z")).ok());
            fetch(listing_path(listing_name, since, current + 1))
        });
        Ok(SyncPage { objects: out, next })
    }
}

/// A GET of the store's REST API (orders, refunds and subscriptions alike).
fn fetch(path: String) -> Fetch {
    Fetch::get(ObjectKind::Order, path)
}

/// The creation ping: exactly `webhook_id=<digits>`.
fn is_ping(request: &Request) -> bool {
    request
        .body
        .strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit))
}

fn topic(headers: &Headers) -> Result<String, BillingError> {
    if let Some(topic) = headers.value("x-wc-webhook-topic") {
        return Ok(topic.to_string());
    }
    match (
        headers.value("x-wc-webhook-resource"),
        headers.value("x-wc-webhook-event"),
    ) {
        (Some(resource), Some(event)) => Ok(format!("{resource}.{event}")),
        _ => Err(BillingError::malformed("`X-WC-Webhook-Topic` is missing")),
    }
}

/// `{REST_ROOT}/{listing}?...`: modified after `since` (GMT), oldest first, one page.
fn listing_path(listing: &str, since: Option<Timestamp>, page: u32) -> String {
    let mut path = format!(
        "{REST_ROOT}/{listing}?per_page={SYNC_PAGE_SIZE}&page={page}&orderby=modified&order=asc"
    );
    if let Some(since) = since {
        // WooCommerce reads `modified_after` as ISO 8601 without an offset; `dates_are_gmt`
        // makes it GMT rather than the store's time zone.
        let text = since.to_rfc3339();
        let text = text.trim_end_matches('Z');
        let text = text.split('.').next().unwrap_or(text);
        path.push_str(&format!("&modified_after={text}&dates_are_gmt=true"));
    }
    path
}

fn query_value<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn query_number(path: &str, name: &str) -> Option<u32> {
    query_value(path, name)?.parse().ok()
}

/// A WooCommerce GMT time: `2017-03-22T16:28:08` (no offset), or empty/absent.
fn gmt_at(value: &Value, pointer: &str) -> Option<Timestamp> {
    let text = at(value, pointer)?.as_str()?.trim();
    if text.is_empty() || text.starts_with("0000") {
        return None;
    }
    let has_offset =
        text.ends_with('Z') || text.get(19..).is_some_and(|tail| tail.contains(['+', '-']));
    if has_offset {
        Timestamp::parse_rfc3339(text).ok()
    } else {
        Timestamp::parse_rfc3339(&format!("{text}Z")).ok()
    }
}

/// A positive id (WooCommerce writes `0` for "none").
fn id_at(value: &Value, pointer: &str) -> Option<String> {
    str_at(value, pointer).filter(|id| id != "0")
}

/// The webhook (or sync) object of `resource` as events.
fn parse_object(
    resource: &str,
    event: &str,
    topic: &str,
    object: &Value,
) -> Result<Vec<BillingEvent>, BillingError> {
    if !matches!(resource, "order" | "subscription" | "customer") {
        // Products, coupons, custom `action.*` topics: stored, never acted on (never refused,
        // or WooCommerce disables the webhook after five failures).
        let id = format!(
            "{topic}:{}",
            hex::encode(&Sha256::digest(object.to_string())[..12])
        );
        let at = gmt_at(object, "/date_modified_gmt").unwrap_or_else(Timestamp::now);
        return Ok(vec![BillingEvent::new(id, topic, Kind::Ignored, at)]);
    }
    let object_id =
        str_at(object, "/id").ok_or_else(|| BillingError::malformed("`/id` is missing"))?;
    if event == "deleted" {
        return Ok(vec![deleted(resource, topic, &object_id)]);
    }
    let modified_raw = str_at(object, "/date_modified_gmt")
        .or_else(|| str_at(object, "/date_created_gmt"))
        .ok_or_else(|| BillingError::malformed("`/date_modified_gmt` is missing"))?;
    let occurred_at = gmt_at(object, "/date_modified_gmt")
        .or_else(|| gmt_at(object, "/date_created_gmt"))
        .ok_or_else(|| BillingError::malformed(format!("`{modified_raw}` is not a time")))?;
    let event_id = format!(
        "{resource}:{object_id}:{modified_raw}:{}",
        digest(resource, object)
    );
    let base = BillingEvent::new(event_id, topic, Kind::Ignored, occurred_at);
    Ok(match resource {
        "order" => order_events(base, &object_id, object),
        "subscription" => vec![subscription_event(base, event, &object_id, object)],
        _ => vec![BillingEvent {
            kind: Kind::CustomerUpserted,
            customer: customer(object, "/id", "/email"),
            ..base
        }],
    })
}

/// What the digest of an object's state covers: the fields Keygate reads.
fn digest(resource: &str, object: &Value) -> String {
    let fields: &[&str] = match resource {
        "order" => &[
            "/status",
            "/date_paid_gmt",
            "/refunds",
            "/line_items",
            "/meta_data",
        ],
        "subscription" => &[
            "/status",
            "/line_items",
            "/next_payment_date_gmt",
            "/end_date_gmt",
            "/trial_end_date_gmt",
            "/last_payment_date_gmt",
            "/cancelled_date_gmt",
            "/billing_period",
            "/billing_interval",
        ],
        _ => &["/email", "/first_name", "/last_name"],
    };
    let mut hash = Sha256::new();
    for field in fields {
        hash.update(field.as_bytes());
        hash.update(at(object, field).map(Value::to_string).unwrap_or_default());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..6])
}

fn deleted(resource: &str, topic: &str, object_id: &str) -> BillingEvent {
    // A deletion carries only the id, and no time: stamped with the receipt. Being final, it
    // is kept whatever came before it (revocation and cancellation are sticky).
    let mut out = BillingEvent::new(
        format!("{resource}:{object_id}:deleted"),
        topic,
        Kind::Ignored,
        Timestamp::now(),
    );
    match resource {
        "order" => {
            out.kind = Kind::Refunded;
            out.order = Some(OrderRef {
                external_id: object_id.to_string(),
                lines: Vec::new(),
            });
        }
        "subscription" => {
            let mut snapshot = SubscriptionSnapshot::partial(object_id);
            snapshot.status = Some(Status::Canceled);
            out.kind = Kind::SubscriptionCanceled;
            out.subscription = Some(snapshot);
        }
        _ => {}
    }
    out
}

/// The subscription a renewal order pays (meta `_subscription_renewal`).
fn renewal_of(order: &Value) -> Option<String> {
    array(order, "/meta_data")
        .iter()
        .find(|m| str_at(m, "/key").as_deref() == Some("_subscription_renewal"))
        .and_then(|m| str_at(m, "/value"))
}

fn order_events(base: BillingEvent, order_id: &str, order: &Value) -> Vec<BillingEvent> {
    let status = str_at(order, "/status").unwrap_or_default();
    let paid = matches!(status.as_str(), "processing" | "completed")
        || gmt_at(order, "/date_paid_gmt").is_some();
    let customer = customer(order, "/customer_id", "/billing/email");
    let renewal = renewal_of(order);
    let order_ref = |lines: Vec<BillingItem>| OrderRef {
        external_id: order_id.to_string(),
        lines,
    };
    let mut out = Vec::new();
    match status.as_str() {
        "refunded" | "cancelled" | "trash" => {
            out.push(BillingEvent {
                kind: Kind::Refunded,
                reversal: (status == "refunded").then_some(Reversal::FullRefund),
                customer,
                subscription: renewal.map(SubscriptionSnapshot::partial),
                order: Some(order_ref(Vec::new())),
                ..base
            });
            return out;
        }
        _ if !paid => {
            out.push(base);
            return out;
        }
        _ => {}
    }
    let refunds = array(order, "/refunds");
    let paid_event = match &renewal {
        // A renewal payment: no license of its own. The new period comes with the
        // subscription's own update (WooCommerce Subscriptions fires `subscription.updated` on
        // `woocommerce_subscription_date_updated` with the new `next_payment_date_gmt`), or
        // with the next sync when that delivery was lost. It is not derived here: a renewal
        // order may well arrive before anything is known of its subscription.
        Some(subscription) => {
            let mut snapshot = SubscriptionSnapshot::partial(subscription.clone());
            snapshot.status = Some(Status::Active);
            BillingEvent {
                kind: Kind::SubscriptionRenewed,
                occurred_at: gmt_at(order, "/date_paid_gmt").unwrap_or(base.occurred_at),
                customer: customer.clone(),
                subscription: Some(snapshot),
                order: Some(order_ref(Vec::new())),
                ..base.clone()
            }
        }
        None => BillingEvent {
            kind: Kind::OrderPaid,
            customer: customer.clone(),
            order: Some(order_ref(
                array(order, "/line_items")
                    .iter()
                    .filter_map(order_line)
                    .collect(),
            )),
            ..base.clone()
        },
    };
    out.push(paid_event);
    for refund in refunds {
        let Some(refund_id) = str_at(refund, "/id") else {
            continue;
        };
        out.push(BillingEvent {
            event_id: format!("order:{order_id}:refund:{refund_id}"),
            kind: Kind::Refunded,
            reversal: Some(Reversal::PartialRefund),
            customer: customer.clone(),
            subscription: renewal.clone().map(SubscriptionSnapshot::partial),
            order: Some(order_ref(Vec::new())),
            needs_fetch: vec![format!("{REST_ROOT}/orders/{order_id}/refunds/{refund_id}")],
            ..base.clone()
        });
    }
    out
}

/// `variation_id` (0 for a simple product), then `product_id`, then `sku`.
fn line_ids(line: &Value) -> Vec<String> {
    let mut ids: Vec<String> = [
        id_at(line, "/variation_id"),
        id_at(line, "/product_id"),
        str_at(line, "/sku"),
    ]
    .into_iter()
    .flatten()
    .collect();
    ids.dedup();
    ids
}

fn item(line: &Value, quantity: i64, line_id: Option<String>) -> Option<BillingItem> {
    let ids = line_ids(line);
    let (first, fallbacks) = ids.split_first()?;
    Some(BillingItem {
        product_external_id: id_at(line, "/product_id"),
        line_id,
        fallback_ids: fallbacks.to_vec(),
        ..BillingItem::new(first.clone(), quantity)
    })
}

/// An order's line: its order item id is the line (a refund names it).
fn order_line(line: &Value) -> Option<BillingItem> {
    item(
        line,
        int_at(line, "/quantity").unwrap_or(1),
        str_at(line, "/id"),
    )
}

/// A subscription's line item: what the subscription bills, no line of an order.
fn subscription_line(line: &Value) -> Option<BillingItem> {
    item(line, int_at(line, "/quantity").unwrap_or(1), None)
}

/// A refund's line item: the order item it refunds (`_refunded_item_id`), and how many
/// (written negative). A line without it cannot be told apart: the refund is then of the
/// whole order, as its size says.
fn refund_line(line: &Value) -> Option<BillingItem> {
    let refunded_item = array(line, "/meta_data")
        .iter()
        .find(|m| str_at(m, "/key").as_deref() == Some("_refunded_item_id"))
        .and_then(|m| str_at(m, "/value"));
    item(
        line,
        int_at(line, "/quantity").unwrap_or(-1).abs(),
        refunded_item,
    )
}

fn customer(object: &Value, id: &str, email: &str) -> Option<CustomerRef> {
    let name = crate::json::full_name(
        str_at(object, "/billing/first_name").or_else(|| str_at(object, "/first_name")),
        str_at(object, "/billing/last_name").or_else(|| str_at(object, "/last_name")),
    );
    let reference = CustomerRef {
        external_id: id_at(object, id),
        email: str_at(object, email),
        name,
    };
    (!reference.is_empty()).then_some(reference)
}

/// `billing_interval` × `billing_period`, generously (a month is 31 days, a year 366): what a
/// renewal that carries no period would be derived from, never ending access early.
fn interval_seconds(subscription: &Value) -> Option<i64> {
    let count = int_at(subscription, "/billing_interval").filter(|n| *n > 0)?;
    let unit = match str_at(subscription, "/billing_period")?.as_str() {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 31 * 86_400,
        "year" => 366 * 86_400,
        _ => return None,
    };
    Some(count * unit)
}

/// A WooCommerce Subscriptions subscription (REST v3), as Keygate's snapshot:
/// - `active` → active; `on-hold` → past due (a renewal payment failed, or the store put it
///   on hold: grace, then suspended); `pending-cancel` → active until `end_date_gmt` (else
///   the next payment date) with the cancellation scheduled; `cancelled`, `expired` and
///   `switched` (replaced by another subscription in a switch) → ended; `pending` → not paid
///   yet (no license).
/// - the paid-through date is `next_payment_date_gmt`, else `end_date_gmt`. A subscription
///   that gives neither (on hold with its next payment cleared) is sent as a partial snapshot,
///   so the known date stays.
fn subscription_event(base: BillingEvent, event: &str, id: &str, object: &Value) -> BillingEvent {
    let raw = str_at(object, "/status").unwrap_or_default();
    let status = match raw.as_str() {
        "active" | "pending-cancel" => Some(Status::Active),
        "on-hold" => Some(Status::PastDue),
        "cancelled" | "expired" | "switched" | "trash" => Some(Status::Canceled),
        "pending" => Some(Status::Incomplete),
        _ => None,
    };
    let next_payment = gmt_at(object, "/next_payment_date_gmt");
    let end = gmt_at(object, "/end_date_gmt");
    let period_end = next_payment.or(end);
    let scheduled = raw == "pending-cancel";
    let ended = status == Some(Status::Canceled);
    let snapshot = SubscriptionSnapshot {
        external_id: id.to_string(),
        status,
        items: array(object, "/line_items")
            .iter()
            .filter_map(subscription_line)
            .collect(),
        current_period_end: period_end,
        cancel_at_period_end: scheduled,
        cancel_at: if scheduled {
            end.or(next_payment)
        } else {
            None
        },
        ended_at: if ended {
            gmt_at(object, "/cancelled_date_gmt")
                .or(end)
                .or(Some(base.occurred_at))
        } else {
            None
        },
        trial_end: gmt_at(object, "/trial_end_date_gmt"),
        partial: period_end.is_none() && !ended,
    };
    let kind = match (event, status) {
        (_, Some(Status::Canceled)) => Kind::SubscriptionCanceled,
        (_, Some(Status::PastDue)) => Kind::PaymentFailed,
        (_, Some(Status::Incomplete)) | (_, None) => Kind::SubscriptionUpdated,
        _ if scheduled => Kind::SubscriptionCancelScheduled,
        ("created", _) => Kind::SubscriptionActivated,
        _ => Kind::SubscriptionUpdated,
    };
    BillingEvent {
        kind,
        customer: customer(object, "/customer_id", "/billing/email"),
        order: id_at(object, "/parent_id").map(|external_id| OrderRef {
            external_id,
            lines: Vec::new(),
        }),
        billing_interval_seconds: interval_seconds(object),
        last_payment_at: gmt_at(object, "/last_payment_date_gmt"),
        subscription: Some(snapshot),
        ..base
    }
}

/// WordPress's `wp_specialchars_decode($text, ENT_QUOTES)`, which WooCommerce applies to the
/// webhook secret before signing: first the zero padding of the numeric entities it knows is
/// removed (`&#0*39;` → `&#039;`, `&#x0*27;` → `&#x27;` in any case, likewise 34/x22, 60, 62,
/// 38/x26), then one pass replaces `&#039; &#x27; &quot; &#034; &#x22; &lt; &#060; &gt;
/// &#062; &amp; &#038; &#x26;` by `' ' " " " < < > > & & &`. Nothing else is decoded (`&#x3c;`
/// stays), and the replacement is not repeated (`&amp;lt;` becomes `&lt;`).
pub fn wp_specialchars_decode(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    const TABLE: [(&str, char); 12] = [
        ("&#039;", '\''),
        ("&#x27;", '\''),
        ("&quot;", '"'),
        ("&#034;", '"'),
        ("&#x22;", '"'),
        ("&lt;", '<'),
        ("&#060;", '<'),
        ("&gt;", '>'),
        ("&#062;", '>'),
        ("&amp;", '&'),
        ("&#038;", '&'),
        ("&#x26;", '&'),
    ];
    let normalized = strip_entity_padding(text);
    let mut out = String::with_capacity(normalized.len());
    let mut rest = normalized.as_str();
    while let Some(index) = rest.find('&') {
        out.push_str(&rest[..index]);
        rest = &rest[index..];
        match TABLE.iter().find(|(entity, _)| rest.starts_with(entity)) {
            Some((entity, decoded)) => {
                out.push(*decoded);
                rest = &rest[entity.len()..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `preg_replace` step of [`wp_specialchars_decode`]: `&#` + zeros + a known number + `;`
/// becomes the canonical entity (decimal: 39 34 60 62 38 → three digits; hex, `x` in any case:
/// 27 22 26 → `&#x..;`).
fn strip_entity_padding(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find("&#") {
        out.push_str(&rest[..index]);
        rest = &rest[index..];
        let body = &rest[2..];
        let (hex, digits) = match body.as_bytes().first() {
            Some(b'x' | b'X') => (true, &body[1..]),
            _ => (false, body),
        };
        let unpadded = digits.trim_start_matches('0');
        let canonical = unpadded.split_once(';').and_then(|(number, _)| {
            let number = number.to_ascii_lowercase();
            let known = if hex {
                matches!(number.as_str(), "27" | "22" | "26").then(|| format!("&#x{number};"))
            } else {
                matches!(number.as_str(), "39" | "34" | "60" | "62" | "38")
                    .then(|| format!("&#0{number};"))
            };
            known.map(|k| (k, number.len()))
        });
        match canonical {
            Some((entity, number_len)) => {
                let consumed =
                    2 + usize::from(hex) + (digits.len() - unpadded.len()) + number_len + 1;
                out.push_str(&entity);
                rest = &rest[consumed..];
            }
            None => {
                out.push_str("&#");
                rest = &rest[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_decoded_as_wordpress_does() {
        assert_eq!(wp_specialchars_decode("plain"), "plain");
        assert_eq!(wp_specialchars_decode("a&amp;b&lt;c&gt;d"), "a&b<c>d");
        assert_eq!(
            wp_specialchars_decode("&quot;&#039;&#39;&#x27;&#X27;"),
            "\"''''"
        );
        assert_eq!(wp_specialchars_decode("&#0000038;&#x0026;&#34;"), "&&\"");
        assert_eq!(wp_specialchars_decode("&#060;&#62;"), "<>");
        // Not decoded by WordPress: other entities, hex forms of < and >, a second pass.
        assert_eq!(
            wp_specialchars_decode("&#x3c;&eacute;&#65;"),
            "&#x3c;&eacute;&#65;"
        );
        assert_eq!(wp_specialchars_decode("&amp;lt;"), "&lt;");
        assert_eq!(wp_specialchars_decode("&#;&#x;&&#0;"), "&#;&#x;&&#0;");
        // A lone '<' typed in the admin is stored as `&lt;` and signed as '<'.
        assert_eq!(wp_specialchars_decode("s3cr&lt;t"), "s3cr<t");
    }

    #[test]
    fn gmt_times_without_offset() {
        let v =
            serde_json::json!({"a": "2017-03-22T16:28:08", "b": "", "c": "2017-03-22T16:28:08Z"});
        assert_eq!(
            gmt_at(&v, "/a").unwrap().to_rfc3339(),
            "2017-03-22T16:28:08Z"
        );
        assert_eq!(gmt_at(&v, "/b"), None);
        assert_eq!(gmt_at(&v, "/a"), gmt_at(&v, "/c"));
    }

    #[test]
    fn sync_listing_pages() {
        let since = Timestamp::parse_rfc3339("2026-01-02T03:04:05.678Z").unwrap();
        let path = listing_path("orders", Some(since), 1);
        assert_eq!(
            path,
            "/wp-json/wc/v3/orders?per_page=100&page=1&orderby=modified&order=asc\
             &modified_after=2026-01-02T03:04:05&dates_are_gmt=true"
        );
        assert_eq!(query_number(&path, "page"), Some(1));
        assert_eq!(
            query_value(&path, "modified_after"),
            Some("2026-01-02T03:04:05")
        );
    }
}
