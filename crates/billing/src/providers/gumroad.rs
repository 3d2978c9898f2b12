//! Gumroad: "Ping" and resource-subscription notifications.
//!
//! Verify: Gumroad signs nothing. The integration's secret is a token the vendor puts in the
//! URL Gumroad posts to, `…/v1/webhooks/gumroad/{integration_id}?token={secret}`; the `token`
//! query field must equal one configured secret (constant time, both sides hashed first, so
//! neither content nor length leaks; several during a rotation). With the integration's
//! `api_credentials.access_token` set, every ping is also confirmed through Gumroad's API
//! before it applies: `GET /v2/sales/{sale_id}` (sale, refund, dispute, dispute_won) or
//! `GET /v2/subscribers/{subscription_id}` (cancellation, subscription_*), which must name the
//! same product and say the same thing (refunded, disputed, cancelled, ended); without a
//! token the ping applies as posted.
//!
//! Parse: `application/x-www-form-urlencoded` with bracketed keys (`card[visual]`,
//! `variants[Tier]`, `custom_fields[...]`, `purchase_ids[]`), or JSON when the subscription
//! chose it. `resource_name` is the event type (absent in the legacy Ping: `sale`).
//! Gumroad has no event id, so `event_id` is synthetic:
//! - `sale:{sale_id}`, `dispute:{sale_id}`, `dispute_won:{sale_id}`,
//!   `refund:{sale_id}:{full|partial}` (`refunded=true` is a full refund);
//! - `{resource_name}:{subscription_id}:{time}` for the subscription resources, with the time
//!   the ping reports (`cancelled_at`, `ended_at`, `restarted_at`, `effective_as_of`), and
//!   the new plan's tier and quantity for `subscription_updated`.
//!
//! `retry_count` (added to retried pings) never enters the identity. Items are keyed on
//! `product_id`. A membership sale has no period in it: the paid-through date is the charge's
//! `sale_timestamp` plus the `recurrence` in calendar months (Gumroad's own `1.month`), and
//! `is_recurring_charge=true` marks a renewal. Gumroad's `license_key` rides on the event
//! ([`BillingEvent::license_key`]), so the license Keygate issues keeps the buyer's key.

use crate::api::{ApiSpec, Auth, Fetch, ObjectKind};
use crate::crypto::secret_eq;
use crate::decode::civil;
use crate::json::{at, bool_at, int_at, parse_object, rfc3339_at, str_at};
use crate::{BillingError, ConfigError, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::{
    BillingEvent, BillingEventKind as Kind, BillingItem, CustomerRef, OrderRef, Reversal,
    SubscriptionSnapshot, SubscriptionStatus as Status,
};
use serde_json::Value;

pub struct Gumroad;

/// The query field that carries the integration's secret.
pub const TOKEN_FIELD: &str = "token";
/// Shorter tokens are guessable; the docs suggest `openssl rand -hex 24`.
pub const MIN_TOKEN_LENGTH: usize = 16;

impl Provider for Gumroad {
    fn name(&self) -> &'static str {
        "gumroad"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::GumroadKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        for (index, token) in secrets.required().unwrap_or_default().iter().enumerate() {
            let url_safe = token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if token.len() < MIN_TOKEN_LENGTH || !url_safe {
                return Err(ConfigError::SecretInvalid(format!(
                    "secrets[{index}]: the URL token must be at least {MIN_TOKEN_LENGTH} \
                     characters of A-Z, a-z, 0-9, `-` or `_` (e.g. `openssl rand -hex 24`)"
                )));
            }
        }
        Ok(())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        let tokens = secrets.required()?;
        let query = request.query_fields()?;
        let presented = query
            .get(TOKEN_FIELD)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                BillingError::SignatureMissing(format!(
                    "the webhook URL has no `?{TOKEN_FIELD}=`: add the integration's secret to \
                     the URL pasted in Gumroad"
                ))
            })?;
        let mut matched = false;
        for token in tokens {
            matched |= secret_eq(presented.as_bytes(), token.as_bytes());
        }
        if !matched {
            return Err(BillingError::SignatureInvalid(
                "the URL token does not match the integration's secret".into(),
            ));
        }
        Ok(())
    }

    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let body = request.body;
        let ping = if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            parse_object(body)?
        } else {
            request.form()?.nested()
        };
        Ok(vec![parse_ping(&ping)?])
    }

    fn api(&self) -> Option<ApiSpec> {
        Some(ApiSpec {
            default_base_url: "https://api.gumroad.com",
            auth: Auth::Bearer("access_token"),
        })
    }

    fn api_optional(&self) -> bool {
        true
    }

    fn fetches(&self, event: &BillingEvent) -> Vec<Fetch> {
        event
            .needs_fetch
            .iter()
            .map(|path| {
                let object = if path.starts_with("/v2/sales/") {
                    ObjectKind::Order
                } else {
                    ObjectKind::Subscription
                };
                Fetch::get(object, path.clone())
            })
            .collect()
    }

    /// The ping stands only if Gumroad's own record says the same.
    fn complete(
        &self,
        mut event: BillingEvent,
        fetched: &[(Fetch, Value)],
    ) -> Result<BillingEvent, BillingError> {
        for (fetch, answer) in fetched {
            let unconfirmed = |why: &str| {
                BillingError::SignatureInvalid(format!(
                    "Gumroad's API does not confirm the ping ({}): {why}",
                    fetch.path
                ))
            };
            if bool_at(answer, "/success") != Some(true) {
                return Err(unconfirmed("`success` is not true"));
            }
            let (object, id) = match fetch.object {
                ObjectKind::Order => (at(answer, "/sale"), event.order_id()),
                _ => (at(answer, "/subscriber"), event.subscription_id()),
            };
            let object = object.ok_or_else(|| unconfirmed("no object in the answer"))?;
            if str_at(object, "/id").as_deref() != id {
                return Err(unconfirmed("another id"));
            }
            let product = event.items().first().map(|i| i.external_id.as_str());
            if product.is_some() && str_at(object, "/product_id").as_deref() != product {
                return Err(unconfirmed("another product"));
            }
            let says = |pointer: &str| bool_at(object, pointer) == Some(true);
            let present = |pointer: &str| str_at(object, pointer).is_some();
            let resource = event.event_type.as_str();
            let confirmed = match resource {
                "refund" => says("/refunded") || says("/partially_refunded"),
                "dispute" => says("/disputed") || says("/chargedback"),
                "dispute_won" => says("/dispute_won"),
                "cancellation" => present("/cancelled_at") || present("/failed_at"),
                "subscription_ended" => present("/ended_at"),
                "subscription_restarted" => !present("/ended_at") && !present("/cancelled_at"),
                _ => true,
            };
            if !confirmed {
                return Err(unconfirmed(&format!(
                    "the record does not show the {resource}"
                )));
            }
            // The size of a refund as Gumroad's record has it.
            if resource == "refund" {
                event.reversal = Some(if says("/refunded") {
                    Reversal::FullRefund
                } else {
                    Reversal::PartialRefund
                });
            }
        }
        event.needs_fetch.clear();
        Ok(event)
    }
}

/// Calendar months per Gumroad `recurrence`.
fn months(recurrence: &str) -> Option<i64> {
    match recurrence {
        "monthly" => Some(1),
        "quarterly" => Some(3),
        "biannually" => Some(6),
        "yearly" => Some(12),
        "every_two_years" => Some(24),
        _ => None,
    }
}

fn time_at(ping: &Value, pointer: &str) -> Option<Timestamp> {
    rfc3339_at(ping, pointer)
}

fn parse_ping(ping: &Value) -> Result<BillingEvent, BillingError> {
    let resource = str_at(ping, "/resource_name").unwrap_or_else(|| "sale".into());
    match resource.as_str() {
        "sale" | "refund" | "dispute" | "dispute_won" => sale_ping(ping, &resource),
        "cancellation"
        | "subscription_updated"
        | "subscription_ended"
        | "subscription_restarted" => subscription_ping(ping, &resource),
        _ => {
            // Stored and answered, nothing applied; the id still ignores `retry_count`.
            let object = str_at(ping, "/sale_id")
                .or_else(|| str_at(ping, "/subscription_id"))
                .unwrap_or_default();
            Ok(BillingEvent::new(
                format!("{resource}:{object}"),
                resource,
                Kind::Ignored,
                Timestamp(0),
            ))
        }
    }
}

fn sale_ping(ping: &Value, resource: &str) -> Result<BillingEvent, BillingError> {
    let sale_id = str_at(ping, "/sale_id")
        .ok_or_else(|| BillingError::malformed("the ping has no `sale_id`"))?;
    let sold_at = time_at(ping, "/sale_timestamp")
        .ok_or_else(|| BillingError::malformed("`sale_timestamp` is missing or not RFC 3339"))?;
    let full_refund = bool_at(ping, "/refunded") == Some(true);
    let event_id = match resource {
        "refund" if full_refund => format!("refund:{sale_id}:full"),
        "refund" => format!("refund:{sale_id}:partial"),
        _ => format!("{resource}:{sale_id}"),
    };
    let mut out = BillingEvent::new(event_id, resource, Kind::Ignored, sold_at);
    out.livemode = bool_at(ping, "/test") != Some(true);
    out.customer = customer(ping, "/purchaser_id", "/email", "/full_name");
    out.needs_fetch = vec![format!("/v2/sales/{}", path_segment(&sale_id))];
    out.license_key = str_at(ping, "/license_key");
    let item = str_at(ping, "/product_id").map(|product| BillingItem {
        external_id: product,
        product_external_id: None,
        line_id: None,
        fallback_ids: Vec::new(),
        quantity: int_at(ping, "/quantity").unwrap_or(1).max(1),
    });
    let subscription_id = str_at(ping, "/subscription_id");
    out.order = Some(OrderRef {
        external_id: sale_id,
        lines: if subscription_id.is_none() {
            item.clone().into_iter().collect()
        } else {
            Vec::new()
        },
    });
    if let Some(id) = &subscription_id {
        let mut snapshot = SubscriptionSnapshot::partial(id.as_str());
        if resource == "sale" {
            snapshot.status = Some(Status::Active);
            snapshot.items = item.into_iter().collect();
            snapshot.current_period_end = str_at(ping, "/recurrence")
                .and_then(|r| months(&r))
                .map(|m| civil::plus_months(sold_at, m));
        }
        out.subscription = Some(snapshot);
    }
    out.kind = match resource {
        "sale" if subscription_id.is_none() => Kind::OrderPaid,
        "sale" if bool_at(ping, "/is_recurring_charge") == Some(true) => Kind::SubscriptionRenewed,
        "sale" => Kind::SubscriptionActivated,
        "refund" => {
            out.reversal = Some(if full_refund {
                Reversal::FullRefund
            } else {
                Reversal::PartialRefund
            });
            Kind::Refunded
        }
        "dispute" => {
            out.reversal = Some(Reversal::Chargeback);
            Kind::Chargeback
        }
        // The seller won the dispute: the money is back, but a revoked license stays revoked
        // (Keygate never un-revokes); recorded only.
        _ => Kind::Ignored,
    };
    if out.kind == Kind::Ignored {
        out.needs_fetch.clear();
    }
    Ok(out)
}

fn subscription_ping(ping: &Value, resource: &str) -> Result<BillingEvent, BillingError> {
    let id = str_at(ping, "/subscription_id")
        .ok_or_else(|| BillingError::malformed("the ping has no `subscription_id`"))?;
    let (pointer, kind) = match resource {
        "cancellation" => ("/cancelled_at", Kind::SubscriptionCancelScheduled),
        "subscription_ended" => ("/ended_at", Kind::SubscriptionCanceled),
        "subscription_restarted" => ("/restarted_at", Kind::SubscriptionResumed),
        _ => ("/effective_as_of", Kind::SubscriptionUpdated),
    };
    let raw_time = str_at(ping, pointer);
    let occurred_at = raw_time
        .as_deref()
        .and_then(|t| Timestamp::parse_rfc3339(t.trim()).ok())
        .ok_or_else(|| {
            BillingError::malformed(format!("`{pointer}` is missing or not RFC 3339"))
        })?;
    let mut event_id = format!("{resource}:{id}:{}", raw_time.unwrap_or_default());
    let mut snapshot = SubscriptionSnapshot::partial(id.as_str());
    match resource {
        "subscription_ended" => {
            snapshot.status = Some(Status::Canceled);
            snapshot.ended_at = Some(occurred_at);
        }
        "subscription_restarted" => snapshot.status = Some(Status::Active),
        "subscription_updated" => {
            let tier = str_at(ping, "/new_plan/tier/id").unwrap_or_default();
            let quantity = int_at(ping, "/new_plan/quantity");
            event_id = format!("{event_id}:{tier}:{}", quantity.unwrap_or(1));
            snapshot.items = str_at(ping, "/product_id")
                .map(|product| BillingItem {
                    external_id: product,
                    product_external_id: None,
                    line_id: None,
                    fallback_ids: Vec::new(),
                    quantity: quantity.unwrap_or(1).max(1),
                })
                .into_iter()
                .collect();
        }
        _ => {}
    }
    let mut out = BillingEvent::new(event_id, resource, kind, occurred_at);
    out.customer = customer(ping, "/user_id", "/user_email", "/full_name");
    out.subscription = Some(snapshot);
    out.license_key = str_at(ping, "/license_key");
    out.needs_fetch = vec![format!("/v2/subscribers/{}", path_segment(&id))];
    Ok(out)
}

/// An id as a URL path segment (Gumroad's ids are base64: `=` is fine, `/` and `+` are not).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'=' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn customer(ping: &Value, id: &str, email: &str, name: &str) -> Option<CustomerRef> {
    let reference = CustomerRef {
        external_id: str_at(ping, id),
        email: str_at(ping, email),
        name: str_at(ping, name),
    };
    (!reference.is_empty()).then_some(reference)
}
