//! Shopify: orders, refunds, customers and Shopify Subscriptions.
//!
//! Verify: `X-Shopify-Hmac-Sha256` = base64 HMAC-SHA256 over the raw body, keyed with the app's
//! client secret (or, for webhooks a merchant created under Settings → Notifications, the
//! signing key shown there) used as text. The newer Events delivery sends the same headers
//! without the `X-` prefix (`Shopify-Hmac-Sha256`, `Shopify-Topic`, ...); both are read, as
//! shopify-api-ruby does. No timestamp is signed, so there is no freshness check. Any
//! configured secret may match: after a client secret rotation Shopify keeps signing with the
//! old one for up to an hour, so configure both.
//!
//! Envelope: the body is the resource itself; the topic (`orders/paid`, ...) comes in
//! `X-Shopify-Topic`. Event id: `{topic}:{X-Shopify-Event-Id}` (one Event-Id covers every
//! topic and subscription one merchant action produced, so the topic is part of the key), else
//! `webhook:{X-Shopify-Webhook-Id}` (the same on every retry of one delivery), else
//! `{topic}:{id}:{updated_at}` from the body. Time: `X-Shopify-Triggered-At`, else the body's
//! `updated_at` / `created_at`.
//!
//! Topics:
//! - `orders/paid` → `order_paid`, a line per `line_items[]` entry: the line item `id` is the
//!   line id, the mapping is looked up on `variant_id`, then `product_id`, then `sku`
//!   ([`BillingItem::fallback_ids`]), `quantity` is the quantity. `test: true` → test mode.
//!   A recurring order of Shopify Subscriptions (`source_name` `subscription_contract…`) is
//!   `ignored`: its contract's billing attempt renews the subscription's license instead.
//! - `refunds/create` → `refunded` of `order_id`, limited to its `refund_line_items[]`
//!   (`line_item_id`, `quantity`): only those lines' licenses are revoked (or reduced, see
//!   `reconcile::plan_order`). A refund with no line items (shipping, an amount) is a partial
//!   refund of the order.
//! - `orders/cancelled` → `refunded` of the whole order.
//! - `customers/create`, `customers/update` → `customer_upserted`.
//! - `subscription_contracts/{create,activate,update,pause,cancel,expire,fail}` and
//!   `subscription_billing_attempts/{success,failure}`: the payloads carry no lines, next
//!   billing date or email, so each event is completed from the Admin GraphQL API
//!   (`subscriptionContract(id:)`, see [`CONTRACT_QUERY`]) with the integration's
//!   `api_credentials` `shop_domain` and `access_token` (`X-Shopify-Access-Token`). The
//!   contract's `nextBillingDate` is the paid-through date; a cancelled or expired contract
//!   keeps its licenses until then. Contract ids are the numeric ids of the payloads (a
//!   GraphQL gid `gid://shopify/SubscriptionContract/1` is read as `1`), so orders and
//!   contracts map on the same variant / product ids.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind};
use crate::json::{array, at, bool_at, full_name, int_at, parse_object, rfc3339_at, str_at};
use crate::scheme::{Algorithm, BodyHmac, Encoding};
use crate::{BillingError, ConfigError, Headers, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::{Value, json};

pub struct Shopify;

/// `X-Shopify-Hmac-Sha256: base64(HMAC-SHA256(secret, body))`.
pub const SCHEME: BodyHmac = BodyHmac {
    header: "x-shopify-hmac-sha256",
    algorithm: Algorithm::Sha256,
    encoding: Encoding::Base64,
    prefix: "",
};

/// The same signature as the Events delivery names it.
pub const SCHEME_UNPREFIXED: BodyHmac = BodyHmac {
    header: "shopify-hmac-sha256",
    ..SCHEME
};

/// The Admin API version Keygate's GraphQL query is written against.
pub const API_VERSION: &str = "2025-07";

/// What a license needs of a subscription contract (first page of lines: a contract of
/// software seats holds far fewer than 50).
pub const CONTRACT_QUERY: &str = "query KeygateSubscriptionContract($id: ID!) { \
subscriptionContract(id: $id) { id status nextBillingDate updatedAt \
billingPolicy { interval intervalCount } customer { id email firstName lastName } \
originOrder { id } lines(first: 50) { pageInfo { hasNextPage } \
edges { node { id quantity variantId productId sku } } } } }";

/// A Shopify header, `X-Shopify-{name}` or `Shopify-{name}`.
fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .value(&format!("x-shopify-{name}"))
        .or_else(|| headers.value(&format!("shopify-{name}")))
}

impl Provider for Shopify {
    fn name(&self) -> &'static str {
        "shopify"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::ShopifyKit
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
        let keys = secrets.required()?;
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let scheme = if request.headers.value(SCHEME.header).is_some() {
            SCHEME
        } else {
            SCHEME_UNPREFIXED
        };
        scheme
            .verify(request.headers, request.body, &keys)
            .map_err(|e| match e {
                BillingError::SignatureMissing(_) => BillingError::SignatureMissing(
                    "header `X-Shopify-Hmac-Sha256` (or `Shopify-Hmac-Sha256`) is missing".into(),
                ),
                other => other,
            })
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let body = parse_object(request.body)?;
        let topic = header(request.headers, "topic")
            .ok_or_else(|| BillingError::malformed("header `X-Shopify-Topic` is missing"))?
            .to_ascii_lowercase();
        let occurred_at = header(request.headers, "triggered-at")
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .or_else(|| rfc3339_at(&body, "/updated_at"))
            .or_else(|| rfc3339_at(&body, "/created_at"))
            .ok_or_else(|| {
                BillingError::malformed(
                    "no `X-Shopify-Triggered-At` header and no `updated_at` in the body",
                )
            })?;
        let event_id = match (
            header(request.headers, "event-id"),
            header(request.headers, "webhook-id"),
        ) {
            (Some(event), _) => format!("{topic}:{event}"),
            (None, Some(webhook)) => format!("webhook:{webhook}"),
            (None, None) => format!(
                "{topic}:{}:{}",
                str_at(&body, "/id").unwrap_or_default(),
                str_at(&body, "/updated_at")
                    .or_else(|| str_at(&body, "/created_at"))
                    .unwrap_or_default()
            ),
        };
        let mut out = BillingEvent::new(event_id, topic.clone(), Kind::Ignored, occurred_at);
        out.livemode = !bool_at(&body, "/test").unwrap_or(false);
        parse_topic(&topic, &body, &mut out)?;
        Ok(vec![out])
    }

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://{shop_domain}",
            auth: Auth::Header {
                name: "x-shopify-access-token",
                credential: "access_token",
            },
        })
    }

    /// One GraphQL query per contract event: the contract's lines, next billing date and
    /// customer.
    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|gid| {
                Fetch::post(
                    ObjectKind::Subscription,
                    format!("/admin/api/{API_VERSION}/graphql.json"),
                    json!({"query": CONTRACT_QUERY, "variables": {"id": gid}}),
                )
            })
            .collect()
    }

    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        for (_, answer) in fetched {
            if let Some(errors) = at(answer, "/errors") {
                return Err(BillingError::malformed(format!(
                    "the Admin API answered errors: {errors}"
                )));
            }
            let contract = at(answer, "/data/subscriptionContract").ok_or_else(|| {
                BillingError::malformed("the Admin API knows no such subscription contract")
            })?;
            complete_contract(&mut event, contract)?;
        }
        event.needs_fetch.clear();
        Ok(event)
    }
}

fn parse_topic(topic: &str, body: &Value, out: &mut BillingEvent) -> Result<(), BillingError> {
    let id =
        || str_at(body, "/id").ok_or_else(|| BillingError::malformed("the resource has no `id`"));
    match topic {
        "orders/paid" => {
            let recurring = str_at(body, "/source_name")
                .is_some_and(|s| s.starts_with("subscription_contract"));
            if recurring {
                // A contract's renewal order: its billing attempt renews the subscription.
                return Ok(());
            }
            out.kind = Kind::OrderPaid;
            out.customer = order_customer(body);
            out.order = Some(OrderRef {
                external_id: id()?,
                lines: array(body, "/line_items")
                    .iter()
                    .filter_map(|line| line_item(line, str_at(line, "/id"), None))
                    .collect(),
            });
        }
        "orders/cancelled" => {
            out.kind = Kind::Refunded;
            out.reversal = Some(Reversal::FullRefund);
            out.customer = order_customer(body);
            out.order = Some(OrderRef {
                external_id: id()?,
                lines: Vec::new(),
            });
        }
        "refunds/create" => {
            let order = str_at(body, "/order_id")
                .ok_or_else(|| BillingError::malformed("the refund has no `order_id`"))?;
            let lines: Vec<BillingItem> = array(body, "/refund_line_items")
                .iter()
                .filter_map(|r| {
                    let line = at(r, "/line_item").unwrap_or(&Value::Null);
                    let line_id = str_at(r, "/line_item_id").or_else(|| str_at(line, "/id"))?;
                    line_item(line, Some(line_id), int_at(r, "/quantity"))
                })
                .collect();
            out.kind = Kind::Refunded;
            // Lines named: the refund is of those lines (the reconcile revokes them alone);
            // none (shipping, an amount): a partial refund of the order.
            out.reversal = Some(Reversal::PartialRefund);
            out.order = Some(OrderRef {
                external_id: order,
                lines,
            });
        }
        "customers/create" | "customers/update" => {
            out.kind = Kind::CustomerUpserted;
            out.customer = Some(CustomerRef {
                external_id: Some(id()?),
                email: str_at(body, "/email"),
                name: full_name(str_at(body, "/first_name"), str_at(body, "/last_name")),
            });
        }
        "subscription_contracts/create"
        | "subscription_contracts/activate"
        | "subscription_contracts/update"
        | "subscription_contracts/pause"
        | "subscription_contracts/cancel"
        | "subscription_contracts/expire"
        | "subscription_contracts/fail" => {
            let contract = id()?;
            let status = str_at(body, "/status").map(|s| s.to_ascii_lowercase());
            out.kind = match topic {
                "subscription_contracts/create" | "subscription_contracts/activate" => {
                    match status.as_deref() {
                        Some("paused") => Kind::SubscriptionPaused,
                        _ => Kind::SubscriptionActivated,
                    }
                }
                "subscription_contracts/pause" => Kind::SubscriptionPaused,
                "subscription_contracts/cancel" | "subscription_contracts/expire" => {
                    Kind::SubscriptionCanceled
                }
                "subscription_contracts/fail" => Kind::PaymentFailed,
                _ => Kind::SubscriptionUpdated,
            };
            let mut snapshot = SubscriptionSnapshot::partial(contract.clone());
            snapshot.status = status.as_deref().and_then(contract_status);
            out.subscription = Some(snapshot);
            out.customer = str_at(body, "/customer_id").map(|c| CustomerRef {
                external_id: Some(c),
                ..CustomerRef::default()
            });
            out.order = str_at(body, "/origin_order_id").map(|o| OrderRef {
                external_id: o,
                lines: Vec::new(),
            });
            out.billing_interval_seconds = interval_seconds(
                str_at(body, "/billing_policy/interval").as_deref(),
                int_at(body, "/billing_policy/interval_count"),
            );
            out.needs_fetch = vec![contract_gid(&contract)];
        }
        "subscription_billing_attempts/success" | "subscription_billing_attempts/failure" => {
            let contract = str_at(body, "/subscription_contract_id")
                .map(|c| numeric_id(&c))
                .ok_or_else(|| {
                    BillingError::malformed("the billing attempt has no `subscription_contract_id`")
                })?;
            let success = topic.ends_with("success");
            out.kind = if success {
                Kind::SubscriptionRenewed
            } else {
                Kind::PaymentFailed
            };
            let mut snapshot = SubscriptionSnapshot::partial(contract.clone());
            snapshot.status = Some(if success {
                Status::Active
            } else {
                Status::PastDue
            });
            out.subscription = Some(snapshot);
            // The renewal order: its own `orders/paid` and a refund of it reach this contract.
            out.order = str_at(body, "/order_id").map(|o| OrderRef {
                external_id: o,
                lines: Vec::new(),
            });
            out.needs_fetch = vec![contract_gid(&contract)];
        }
        _ => {}
    }
    Ok(())
}

/// An order line: keyed on the variant, then the product, then the SKU.
fn line_item(line: &Value, line_id: Option<String>, quantity: Option<i64>) -> Option<BillingItem> {
    let candidates: Vec<String> = ["/variant_id", "/product_id", "/sku"]
        .iter()
        .filter_map(|p| str_at(line, p))
        .collect();
    let (first, rest) = candidates.split_first()?;
    Some(BillingItem {
        product_external_id: str_at(line, "/product_id"),
        line_id,
        fallback_ids: rest.to_vec(),
        ..BillingItem::new(
            first.clone(),
            quantity.or_else(|| int_at(line, "/quantity")).unwrap_or(1),
        )
    })
}

fn order_customer(order: &Value) -> Option<CustomerRef> {
    let customer = at(order, "/customer");
    let email = str_at(order, "/email")
        .or_else(|| str_at(order, "/contact_email"))
        .or_else(|| customer.and_then(|c| str_at(c, "/email")));
    let reference = CustomerRef {
        external_id: customer.and_then(|c| str_at(c, "/id")),
        email,
        name: customer.and_then(|c| full_name(str_at(c, "/first_name"), str_at(c, "/last_name"))),
    };
    (!reference.is_empty()).then_some(reference)
}

/// A contract status, as the webhook (lower case) or GraphQL (upper case) spells it.
fn contract_status(status: &str) -> Option<Status> {
    Some(match status.to_ascii_lowercase().as_str() {
        "active" => Status::Active,
        "paused" => Status::Paused,
        "cancelled" | "expired" => Status::Canceled,
        // Billing attempts exhausted (`subscriptionContractFail`).
        "failed" => Status::Unpaid,
        // Left after a failed migration or import: no longer billed.
        "stale" => Status::Canceled,
        _ => return None,
    })
}

/// The numeric id at the end of a GraphQL gid (`gid://shopify/ProductVariant/123` → `123`).
pub fn numeric_id(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

fn contract_gid(id: &str) -> String {
    format!("gid://shopify/SubscriptionContract/{id}")
}

fn interval_seconds(interval: Option<&str>, count: Option<i64>) -> Option<i64> {
    let unit = match interval?.to_ascii_lowercase().as_str() {
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    };
    Some(unit * count.unwrap_or(1).max(1))
}

/// The GraphQL contract into the event: lines, paid-through date, customer, status.
fn complete_contract(event: &mut BillingEvent, contract: &Value) -> Result<(), BillingError> {
    if bool_at(contract, "/lines/pageInfo/hasNextPage") == Some(true) {
        return Err(BillingError::malformed(
            "the subscription contract has more than 50 lines",
        ));
    }
    let items: Vec<BillingItem> = array(contract, "/lines/edges")
        .iter()
        .filter_map(|edge| {
            let node = at(edge, "/node")?;
            let candidates: Vec<String> = ["/variantId", "/productId", "/sku"]
                .iter()
                .filter_map(|p| str_at(node, p))
                .map(|id| numeric_id(&id))
                .collect();
            let (first, rest) = candidates.split_first()?;
            Some(BillingItem {
                product_external_id: str_at(node, "/productId").map(|p| numeric_id(&p)),
                fallback_ids: rest.to_vec(),
                ..BillingItem::new(first.clone(), int_at(node, "/quantity").unwrap_or(1))
            })
        })
        .collect();
    let next_billing = rfc3339_at(contract, "/nextBillingDate");
    let api_status = str_at(contract, "/status").and_then(|s| contract_status(&s));
    if let Some(customer) = at(contract, "/customer") {
        let known = event.customer.take().unwrap_or_default();
        event.customer = Some(CustomerRef {
            external_id: known
                .external_id
                .or_else(|| str_at(customer, "/id").map(|c| numeric_id(&c))),
            email: known.email.or_else(|| str_at(customer, "/email")),
            name: known.name.or_else(|| {
                full_name(
                    str_at(customer, "/firstName"),
                    str_at(customer, "/lastName"),
                )
            }),
        });
    }
    if event.order.is_none()
        && let Some(origin) = str_at(contract, "/originOrder/id")
    {
        event.order = Some(OrderRef {
            external_id: numeric_id(&origin),
            lines: Vec::new(),
        });
    }
    if event.billing_interval_seconds.is_none() {
        event.billing_interval_seconds = interval_seconds(
            str_at(contract, "/billingPolicy/interval").as_deref(),
            int_at(contract, "/billingPolicy/intervalCount"),
        );
    }
    let snapshot = event
        .subscription
        .as_mut()
        .ok_or_else(|| BillingError::malformed("not a subscription event"))?;
    // The webhook's status is the one at the event; the API's is today's, for events that
    // carry none.
    let status = snapshot.status.or(api_status);
    snapshot.status = status;
    snapshot.items = items;
    snapshot.current_period_end = next_billing;
    // A cancelled or expired contract bills no more: access lasts to the paid-through date.
    snapshot.ended_at = match status {
        Some(Status::Canceled) => next_billing.or(Some(event.occurred_at)),
        _ => None,
    };
    snapshot.partial = false;
    Ok(())
}
