//! Shopify: orders, refunds and Shopify Subscriptions, with the Admin GraphQL API's answers.
//!
//! A step's body is an envelope of what Shopify sends: `{"topic", "event_id", "triggered_at",
//! "body"}`; [`Kit::deliver`] posts `body` with the headers Shopify puts beside it
//! (`X-Shopify-Topic`, `-Hmac-Sha256`, `-Event-Id`, `-Webhook-Id`, `-Triggered-At`,
//! `-Shop-Domain`, `-API-Version`). Shapes follow Shopify's documented examples (the REST
//! resources' order and refund, the subscriptions reference app's contract and billing
//! attempt webhooks).

use super::{
    ApiRequest, Delivery, Ids, Kit, MONTH, OrderSteps, Settings, SignedHeaders, Stage, Steps,
    body_id, first_secret, rfc, unix_seconds,
};
use crate::providers::shopify::{API_VERSION, SCHEME};
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct ShopifyKit;

const SHOP: &str = "keygate-demo.myshopify.com";
const TOKEN: &str = "shpat_keygate_test_admin_token";
/// The variant the vendor maps (Shopify's documented "IPod Nano - 8GB", black).
const VARIANT: &str = "457924702";
const PRODUCT: &str = "632910392";
const CUSTOMER: &str = "207119551";
const CONTRACT: &str = "5927405681";
const ORIGIN_ORDER: &str = "450789469";
const RENEWAL_ORDER: &str = "450789470";
const RECOVERY_ORDER: &str = "450789471";

impl ShopifyKit {
    /// A delivery of `body` on `topic`, as Shopify sends it at `at`.
    pub fn envelope(topic: &str, event_id: &str, at: i64, body: Value) -> Value {
        json!({"topic": topic, "event_id": event_id, "triggered_at": rfc(at), "body": body})
    }

    /// An order line item as in the REST order resource.
    pub fn line_item(id: &str, variant: Option<&str>, sku: &str, quantity: i64) -> Value {
        json!({"id": id.parse::<i64>().unwrap_or_default(),
               "admin_graphql_api_id": format!("gid://shopify/LineItem/{id}"),
               "variant_id": variant.map(|v| v.parse::<i64>().unwrap_or_default()),
               "product_id": PRODUCT.parse::<i64>().unwrap_or_default(),
               "title": "IPod Nano - 8GB", "sku": sku, "quantity": quantity,
               "price": "199.00", "requires_shipping": false, "gift_card": false})
    }

    /// `orders/paid`'s body: an order with these line items.
    pub fn order(id: &str, at: i64, lines: Vec<Value>, source_name: &str) -> Value {
        json!({"id": id.parse::<i64>().unwrap_or_default(),
               "admin_graphql_api_id": format!("gid://shopify/Order/{id}"),
               "name": format!("#{}", 1000 + id.len()), "email": "bob.norman@mail.example.com",
               "created_at": rfc(at), "updated_at": rfc(at), "processed_at": rfc(at),
               "financial_status": "paid", "currency": "USD", "total_price": "398.00",
               "test": false, "source_name": source_name, "cancelled_at": null,
               "customer": {"id": CUSTOMER.parse::<i64>().unwrap_or_default(),
                            "email": "bob.norman@mail.example.com",
                            "first_name": "Bob", "last_name": "Norman"},
               "line_items": lines})
    }

    /// `refunds/create`'s body: these (line item id, quantity) of the order refunded.
    pub fn refund(id: &str, order: &str, at: i64, lines: &[(&str, i64)]) -> Value {
        let items: Vec<Value> = lines
            .iter()
            .enumerate()
            .map(|(i, (line, quantity))| {
                json!({"id": 104_689_539 + i as i64, "quantity": quantity,
                       "line_item_id": line.parse::<i64>().unwrap_or_default(),
                       "restock_type": "no_restock", "subtotal": 199.0, "total_tax": 0.0,
                       "line_item": Self::line_item(line, Some(VARIANT), "IPOD2008BLACK", 2)})
            })
            .collect();
        json!({"id": id.parse::<i64>().unwrap_or_default(),
               "admin_graphql_api_id": format!("gid://shopify/Refund/{id}"),
               "order_id": order.parse::<i64>().unwrap_or_default(),
               "created_at": rfc(at), "processed_at": rfc(at), "note": "refund",
               "restock": false, "refund_line_items": items, "transactions": []})
    }

    fn contract(status: &str) -> Value {
        json!({"admin_graphql_api_id": format!("gid://shopify/SubscriptionContract/{CONTRACT}"),
               "id": CONTRACT.parse::<i64>().unwrap_or_default(),
               "billing_policy": {"interval": "month", "interval_count": 1,
                                  "min_cycles": null, "max_cycles": null},
               "currency_code": "USD",
               "customer_id": CUSTOMER.parse::<i64>().unwrap_or_default(),
               "admin_graphql_api_customer_id": format!("gid://shopify/Customer/{CUSTOMER}"),
               "delivery_policy": {"interval": "month", "interval_count": 1},
               "status": status,
               "admin_graphql_api_origin_order_id": format!("gid://shopify/Order/{ORIGIN_ORDER}"),
               "origin_order_id": ORIGIN_ORDER.parse::<i64>().unwrap_or_default(),
               "revision_id": 1})
    }

    fn attempt(id: i64, order: Option<&str>, error: Option<&str>) -> Value {
        json!({"id": id, "admin_graphql_api_id": format!("gid://shopify/SubscriptionBillingAttempt/{id}"),
               "idempotency_key": format!("keygate-renewal-{id}"),
               "order_id": order.map(|o| o.parse::<i64>().unwrap_or_default()),
               "admin_graphql_api_order_id": order.map(|o| format!("gid://shopify/Order/{o}")),
               "subscription_contract_id": CONTRACT.parse::<i64>().unwrap_or_default(),
               "admin_graphql_api_subscription_contract_id":
                   format!("gid://shopify/SubscriptionContract/{CONTRACT}"),
               "ready": true, "error_message": error, "error_code": error})
    }

    /// The Admin GraphQL API's `subscriptionContract` as it stands once `step` happened.
    fn contract_answer(stage: &Stage) -> Value {
        let start = stage.start;
        let (status, quantity, next) = match stage.step {
            "created" => ("ACTIVE", 1, start + MONTH),
            "renewed" => ("ACTIVE", 1, start + 2 * MONTH),
            "quantity" | "failed" => ("ACTIVE", 5, start + 2 * MONTH),
            "recovered" => ("ACTIVE", 5, start + 3 * MONTH),
            _ => ("CANCELLED", 5, start + 3 * MONTH),
        };
        json!({"data": {"subscriptionContract": {
            "id": format!("gid://shopify/SubscriptionContract/{CONTRACT}"),
            "status": status, "nextBillingDate": rfc(next), "updatedAt": rfc(start),
            "billingPolicy": {"interval": "MONTH", "intervalCount": 1},
            "customer": {"id": format!("gid://shopify/Customer/{CUSTOMER}"),
                         "email": "bob.norman@mail.example.com",
                         "firstName": "Bob", "lastName": "Norman"},
            "originOrder": {"id": format!("gid://shopify/Order/{ORIGIN_ORDER}")},
            "lines": {"pageInfo": {"hasNextPage": false}, "edges": [{"node": {
                "id": "gid://shopify/SubscriptionLine/9a8b7c",
                "quantity": quantity,
                "variantId": format!("gid://shopify/ProductVariant/{VARIANT}"),
                "productId": format!("gid://shopify/Product/{PRODUCT}"),
                "sku": "IPOD2008BLACK"}}]}}},
            "extensions": {"cost": {"requestedQueryCost": 12, "actualQueryCost": 7}}})
    }
}

impl Kit for ShopifyKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec!["shpss_keygate_test_client_secret".into()],
            options: json!({}),
        }
    }

    /// The signature and delivery headers for a bare body (no topic: [`Kit::deliver`] adds it).
    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let secret = first_secret(secrets)?;
        Ok(vec![
            (
                "X-Shopify-Hmac-Sha256".into(),
                SCHEME.sign(secret.as_bytes(), body),
            ),
            ("X-Shopify-Shop-Domain".into(), SHOP.into()),
            ("X-Shopify-API-Version".into(), API_VERSION.into()),
            ("X-Shopify-Webhook-Id".into(), body_id(body)),
        ])
    }

    fn deliver(&self, secrets: &Secrets, step: &Value, now: Timestamp) -> Result<Delivery, String> {
        let Some(topic) = step["topic"].as_str() else {
            let body = step.to_string().into_bytes();
            let mut headers = vec![("content-type".into(), "application/json".into())];
            headers.extend(self.sign(secrets, &body, now)?);
            return Ok(Delivery {
                headers,
                body,
                query: String::new(),
            });
        };
        let body = step["body"].to_string().into_bytes();
        // Shopify's Event-Id is the merchant action's: the same for this body on every retry,
        // another for another order (`keygate simulate` rewrites the ids of each run).
        let event_id = format!(
            "{}-{}",
            step["event_id"].as_str().unwrap_or_default(),
            &body_id(&body)[..8]
        );
        let event_id = event_id.as_str();
        let triggered = step["triggered_at"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| rfc(unix_seconds(now)));
        let mut headers: SignedHeaders = vec![
            ("content-type".into(), "application/json".into()),
            ("X-Shopify-Topic".into(), topic.into()),
            ("X-Shopify-Event-Id".into(), event_id.into()),
            ("X-Shopify-Triggered-At".into(), triggered),
        ];
        headers.extend(self.sign(secrets, &body, now)?);
        // One delivery of one event on one topic keeps its id on every retry.
        if let Some(webhook) = headers
            .iter_mut()
            .find(|(n, _)| n == "X-Shopify-Webhook-Id")
        {
            webhook.1 = body_id(format!("{topic} {event_id}").as_bytes());
        }
        Ok(Delivery {
            headers,
            body,
            query: String::new(),
        })
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: VARIANT,
            customer: CUSTOMER,
            subscription: CONTRACT,
        }
    }

    fn api_credentials(&self) -> Option<Value> {
        Some(json!({"shop_domain": SHOP, "access_token": TOKEN}))
    }

    fn api_answer(&self, stage: &Stage, request: &ApiRequest) -> Option<(u16, Value)> {
        if request.headers.get("x-shopify-access-token") != Some(TOKEN) {
            return Some((
                401,
                json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            ));
        }
        let graphql = format!("/admin/api/{API_VERSION}/graphql.json");
        if request.method != "POST" || request.path_and_query != graphql {
            return None;
        }
        let query: Value = serde_json::from_slice(request.body).ok()?;
        let asked = query["variables"]["id"].as_str()?;
        // `keygate simulate` suffixes the contract id of each run.
        if !asked.starts_with(&format!("gid://shopify/SubscriptionContract/{CONTRACT}")) {
            return Some((200, json!({"data": {"subscriptionContract": null}})));
        }
        let mut answer = Self::contract_answer(stage);
        answer["data"]["subscriptionContract"]["id"] = json!(asked);
        Some((200, answer))
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        let origin = Self::order(
            ORIGIN_ORDER,
            start - 100,
            vec![Self::line_item(
                "703073504",
                Some(VARIANT),
                "IPOD2008BLACK",
                1,
            )],
            "web",
        );
        let e = Self::envelope;
        Some(Steps {
            // The first order (its checkout) and the contract it created: one license.
            created: vec![
                e("orders/paid", "e-origin-paid", start - 100, origin),
                e(
                    "subscription_contracts/create",
                    "e-contract-create",
                    start - 99,
                    Self::contract("active"),
                ),
            ],
            // The billing attempt renews. (The renewal order's own `orders/paid`, with
            // `source_name: subscription_contract`, parses as `ignored`: not a lifecycle step.)
            renewed: vec![e(
                "subscription_billing_attempts/success",
                "e-attempt-1",
                start - 90,
                Self::attempt(1, Some(RENEWAL_ORDER), None),
            )],
            quantity: vec![e(
                "subscription_contracts/update",
                "e-contract-update",
                start - 80,
                Self::contract("active"),
            )],
            failed: vec![e(
                "subscription_billing_attempts/failure",
                "e-attempt-2",
                failed_at,
                Self::attempt(2, None, Some("insufficient_funds")),
            )],
            recovered: vec![e(
                "subscription_billing_attempts/success",
                "e-attempt-3",
                failed_at + 1,
                Self::attempt(3, Some(RECOVERY_ORDER), None),
            )],
            cancelled: vec![e(
                "subscription_contracts/cancel",
                "e-contract-cancel",
                failed_at + 3,
                Self::contract("cancelled"),
            )],
            refunded: vec![e(
                "refunds/create",
                "e-refund-recovery",
                failed_at + 4,
                Self::refund(
                    "509562970",
                    RECOVERY_ORDER,
                    failed_at + 4,
                    &[("703073600", 1)],
                ),
            )],
            cancel_ends_at: start + 3 * MONTH,
        })
    }

    fn order_steps(&self, start: i64) -> Option<OrderSteps> {
        let order = "820982911946154508";
        let lines = vec![
            Self::line_item("866550311766439020", Some(VARIANT), "IPOD2008BLACK", 2),
            // A line the vendor does not license (no mapping for its variant, product or SKU
            // would match: another product).
            json!({"id": 141_249_953_214_522_974_i64, "variant_id": 808_950_810,
                   "product_id": 921_728_736, "sku": "TSHIRT-M", "title": "T-shirt",
                   "quantity": 1, "price": "20.00"}),
        ];
        Some(OrderSteps {
            paid: vec![Self::envelope(
                "orders/paid",
                "e-order-paid",
                start,
                Self::order(order, start, lines, "web"),
            )],
            refunded: vec![Self::envelope(
                "refunds/create",
                "e-order-refund",
                start + 60,
                Self::refund("509562969", order, start + 60, &[("866550311766439020", 2)]),
            )],
            order: order.into(),
        })
    }
}
