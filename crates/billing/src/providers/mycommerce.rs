//! MyCommerce (Digital River's share-it): a key generator hosted by the vendor, called by
//! MyCommerce for every product of an approved order; the keys answered go into the order
//! confirmation the buyer gets.
//!
//! Verify: MyCommerce signs nothing. The key generator URL carries one of the integration's
//! secrets as `token=...` (constant-time; several during a rotation). Where the control panel
//! is set to send HTTP Basic credentials, put them in the secrets too, as `username:password`:
//! once one is configured, every call must also carry a matching `Authorization: Basic`.
//!
//! The call is a form (the Key Generator SDK's input values): `PURCHASE_ID` (the order),
//! `RUNNING_NO` (the product's position in the order), `PRODUCT_ID` (what the mappings are
//! keyed on), `QUANTITY`, `EMAIL`, `REG_NAME` (else `FIRSTNAME` + `LASTNAME`), `COMPANY`.
//! The answer is plain text, one key per line (`options.license_generator.licenses`:
//! `per_unit`, default, or `one_with_seats`).
//!
//! The same form posted to the webhook URL (an order notification) is an `order_paid` event
//! of the same id, so a notification after the key generator call changes nothing. MyCommerce's
//! refund notifications are not documented publicly: a refund is revoked by hand
//! (`POST /v1/licenses/{id}/actions/revoke`) until they are.

use crate::keygen::{self, KeyGenerator, KeygenOrder, Layout};
use crate::{BillingError, ConfigError, CustomerRef, Provider, Request, Secrets};
use keygate_domain::Timestamp;
use keygate_domain::billing::BillingEvent;

pub struct MyCommerce;

pub const TOKEN_PARAMETER: &str = "token";

/// The secrets that are URL tokens (no `:`), and the Basic credentials (`username:password`).
fn split(secrets: &Secrets) -> Result<(Vec<&str>, Vec<String>), BillingError> {
    let all = secrets.required()?;
    let (basic, tokens): (Vec<&str>, Vec<&str>) = all.into_iter().partition(|s| s.contains(':'));
    Ok((tokens, basic.into_iter().map(str::to_string).collect()))
}

/// The URL token (and, where configured, Basic auth) of a call or a notification.
pub fn verify_call(request: &Request, secrets: &Secrets) -> Result<(), BillingError> {
    let (tokens, basic) = split(secrets)?;
    if tokens.is_empty() {
        return Err(BillingError::SecretNotConfigured(
            "the integration has no URL token (a secret without `:`)".into(),
        ));
    }
    let query = request.query_fields()?;
    let token = query.get(TOKEN_PARAMETER).ok_or_else(|| {
        BillingError::SignatureMissing(format!(
            "the URL has no `{TOKEN_PARAMETER}` parameter (use the integration's keygen_url)"
        ))
    })?;
    let matched = tokens.iter().fold(false, |m, t| {
        crate::crypto::secret_eq(t.trim().as_bytes(), token.as_bytes()) | m
    });
    if !matched {
        return Err(BillingError::SignatureInvalid(
            "the URL token is not one of the integration's secrets".into(),
        ));
    }
    if !basic.is_empty() {
        crate::scheme::basic_auth::verify(request.headers, &basic)?;
    }
    Ok(())
}

impl Provider for MyCommerce {
    fn name(&self) -> &'static str {
        "mycommerce"
    }

    #[cfg(feature = "testkit")]
    fn kit(&self) -> &'static dyn crate::testkit::Kit {
        &crate::testkit::MyCommerceKit
    }

    fn check_config(&self, secrets: &Secrets, now: Timestamp) -> Result<(), ConfigError> {
        crate::config::require_secret(secrets, now)?;
        let (tokens, basic) =
            split(secrets).map_err(|e| ConfigError::SecretNotConfigured(e.to_string()))?;
        if tokens.is_empty() {
            return Err(ConfigError::SecretNotConfigured(
                "MyCommerce needs a URL token: a secret of at least 16 characters without `:`"
                    .into(),
            ));
        }
        if tokens.iter().any(|t| t.trim().len() < 16) {
            return Err(ConfigError::SecretInvalid(
                "a MyCommerce URL token must be at least 16 characters".into(),
            ));
        }
        if basic.iter().any(|b| b.starts_with(':') || b.ends_with(':')) {
            return Err(ConfigError::SecretInvalid(
                "a Basic credential is `username:password`, both non-empty".into(),
            ));
        }
        Layout::of(secrets).map(|_| ())
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        verify_call(request, secrets)
    }

    /// An order notification: the key generator's form, one product line. Seats come from the
    /// quantity here (one license per line, as every order webhook).
    fn parse(&self, request: &Request) -> Result<Vec<BillingEvent>, BillingError> {
        let order = MyCommerceKeygen.order(request)?;
        let mut event = order.event(self.name(), Layout::OneWithSeats, purchase_date(request));
        event.event_type = "mycommerce.order".into();
        Ok(vec![event])
    }

    fn keygen(&self) -> Option<&'static dyn KeyGenerator> {
        Some(&MyCommerceKeygen)
    }
}

/// `PURCHASE_DATE` (`dd/mm/yyyy`, as the SDK writes it), else the epoch: a notification's time
/// only orders it against other events of the same order.
fn purchase_date(request: &Request) -> Timestamp {
    let date = request
        .form()
        .ok()
        .and_then(|f| f.get("PURCHASE_DATE").map(str::to_string));
    date.and_then(|d| {
        let parts: Vec<&str> = d.trim().split('/').collect();
        let [day, month, year] = parts[..] else {
            return None;
        };
        Timestamp::parse_rfc3339(&format!("{year:0>4}-{month:0>2}-{day:0>2}T00:00:00Z")).ok()
    })
    .unwrap_or(Timestamp(0))
}

/// MyCommerce's key generator call.
pub struct MyCommerceKeygen;

impl KeyGenerator for MyCommerceKeygen {
    fn layout(&self, secrets: &Secrets) -> Result<Layout, ConfigError> {
        Layout::of(secrets)
    }

    fn verify(
        &self,
        request: &Request,
        secrets: &Secrets,
        _now: Timestamp,
    ) -> Result<(), BillingError> {
        verify_call(request, secrets)
    }

    fn order(&self, request: &Request) -> Result<KeygenOrder, BillingError> {
        let form = request.form()?;
        let purchase = keygen::required(&form, "PURCHASE_ID")?.to_string();
        let product = keygen::required(&form, "PRODUCT_ID")?.to_string();
        let running = keygen::optional(&form, "RUNNING_NO").unwrap_or_else(|| product.clone());
        let name = keygen::optional(&form, "REG_NAME").or_else(|| {
            crate::json::full_name(
                keygen::optional(&form, "FIRSTNAME"),
                keygen::optional(&form, "LASTNAME"),
            )
        });
        Ok(KeygenOrder {
            order: purchase,
            line: running,
            product,
            quantity: keygen::quantity(form.get("QUANTITY"))?,
            customer: CustomerRef {
                external_id: None,
                email: keygen::optional(&form, "EMAIL"),
                name: name.or_else(|| keygen::optional(&form, "COMPANY")),
            },
            livemode: true,
        })
    }
}
