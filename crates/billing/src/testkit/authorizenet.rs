//! Authorize.Net: notifications signed in `X-ANET-Signature` with the Signature Key's text, and
//! the JSON API (`POST /xml/v1/request.api`) as the stand-in answers it for the lifecycle step
//! reached. ARB has no quantity, so the lifecycle has no quantity step.

use super::{
    ApiRequest, Ids, Kit, MONTH, Settings, SignedHeaders, Stage, Steps, first_secret, rfc,
};
use crate::providers::authorizenet::SCHEME;
use crate::{Secrets, Timestamp};
use serde_json::{Value, json};

pub struct AuthorizeNetKit;

/// A Signature Key's shape: 128 hex characters (used as text).
const SIGNATURE_KEY: &str = "6D2E4B1C9A7F3E5D8B0C2A4F6E8D1B3C5A7E9F0D2B4C6A8E1F3D5B7C9E0A2C4E\
                             8F1A3C5E7B9D0F2A4C6E8B1D3F5A7C9E0B2D4F6A8C1E3B5D7F9A0C2E4B6D8F1A";
/// The integration's `api_credentials` in the lifecycle.
pub const API_LOGIN_ID: &str = "5KP3u95bQpv";
pub const TRANSACTION_KEY: &str = "346HZ32z3fP4hTG2";
const SUBSCRIPTION: &str = "9387264";
const PROFILE: &str = "1916033093";
const NAME: &str = "Keygate Pro Monthly";
const WEBHOOK: &str = "72a55c78-66e6-4b1e-a4d6-3f925c00561f";
const DAY: i64 = 86_400;

const STEPS: [&str; 7] = [
    "created",
    "renewed",
    "quantity",
    "failed",
    "recovered",
    "cancelled",
    "refunded",
];

/// The lifecycle's transactions: (id, step, payment number or refunded id).
const CHARGES: [(&str, &str, i64); 3] = [
    ("60200000001", "created", 1),
    ("60200000002", "renewed", 2),
    ("60200000003", "recovered", 3),
];
const REFUND: &str = "60200000009";

impl Kit for AuthorizeNetKit {
    fn settings(&self) -> Settings {
        Settings {
            secrets: vec![SIGNATURE_KEY.into()],
            options: json!({}),
        }
    }

    fn sign(
        &self,
        secrets: &Secrets,
        body: &[u8],
        _now: Timestamp,
    ) -> Result<SignedHeaders, String> {
        let key = first_secret(secrets)?;
        Ok(vec![(
            "x-anet-signature".into(),
            SCHEME.sign(key.trim().as_bytes(), body),
        )])
    }

    fn ids(&self) -> Ids {
        Ids {
            mapping: NAME,
            customer: PROFILE,
            subscription: SUBSCRIPTION,
        }
    }

    fn api_credentials(&self) -> Option<Value> {
        Some(json!({"api_login_id": API_LOGIN_ID, "transaction_key": TRANSACTION_KEY}))
    }

    /// The JSON API answers 200 to every well-formed request (errors are in `messages`), with
    /// a byte order mark the stand-in cannot add (the server's handling of it is tested apart).
    fn api_answer(&self, stage: &Stage, request: &ApiRequest) -> Option<(u16, Value)> {
        if request.method != "POST"
            || request.path_and_query != crate::providers::authorizenet::API_PATH
        {
            return None;
        }
        let body: Value = serde_json::from_slice(request.body).ok()?;
        self.answer(stage.start, stage.failed_at, stage.step, &body)
            .map(|answer| (200, answer))
    }

    fn steps(&self, start: i64, failed_at: i64) -> Option<Steps> {
        let at = start - 100;
        Some(Steps {
            created: vec![
                subscription_event("created", at, "active"),
                payment(CHARGES[0].0, at + 1),
            ],
            renewed: vec![payment(CHARGES[1].0, at + 10)],
            quantity: Vec::new(),
            failed: vec![subscription_event("failed", failed_at, "suspended")],
            recovered: vec![payment(CHARGES[2].0, failed_at + 1)],
            cancelled: vec![subscription_event("cancelled", failed_at + 2, "canceled")],
            refunded: vec![notification(
                "net.authorize.payment.refund.created",
                failed_at + 3,
                json!({"responseCode": 1, "authCode": "", "avsResponse": "P", "authAmount": 50.00,
                       "entityName": "transaction", "id": REFUND}),
            )],
            // The recovered payment (number 3) pays up to 3 months after the start.
            cancel_ends_at: start + 3 * MONTH,
        })
    }
}

impl AuthorizeNetKit {
    /// The JSON API as it stands once `step` was reached, for one request body (credentials
    /// filled in): `None` = not a request the lifecycle makes. Wrong credentials answer
    /// Authorize.Net's `E00007`.
    pub fn answer(&self, start: i64, failed_at: i64, step: &str, body: &Value) -> Option<Value> {
        let reached = STEPS.iter().position(|s| *s == step)?;
        let past = |s: &str| {
            STEPS
                .iter()
                .position(|x| *x == s)
                .is_some_and(|i| i <= reached)
        };
        let (name, request) = body.as_object()?.iter().next()?;
        let auth = &request["merchantAuthentication"];
        if auth["name"] != API_LOGIN_ID || auth["transactionKey"] != TRANSACTION_KEY {
            return Some(error(
                "E00007",
                "User authentication failed due to invalid authentication values.",
            ));
        }
        match name.as_str() {
            "ARBGetSubscriptionRequest" if request["subscriptionId"] == SUBSCRIPTION => {
                let status = match step {
                    "failed" => "suspended",
                    "cancelled" | "refunded" => "canceled",
                    _ => "active",
                };
                Some(ok(json!({"subscription": subscription(start, status)})))
            }
            "getTransactionDetailsRequest" => {
                let id = request["transId"].as_str()?;
                if id == REFUND && past("refunded") {
                    return Some(ok(json!({"transaction": refund(failed_at + 3)})));
                }
                let (id, step_of, pay_num) = CHARGES.iter().find(|c| c.0 == id)?;
                if !past(step_of) {
                    return Some(error("E00040", "The record cannot be found."));
                }
                Some(ok(json!({"transaction": charge(id, start, *pay_num)})))
            }
            _ => Some(error("E00040", "The record cannot be found.")),
        }
    }
}

/// The envelope every notification shares.
fn notification(event_type: &str, at: i64, payload: Value) -> Value {
    let seed = format!("{event_type}{at}{payload}");
    let h = crate::testkit::body_id(seed.as_bytes())
        + &crate::testkit::body_id(payload.to_string().as_bytes());
    let id = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    );
    json!({"notificationId": id, "eventType": event_type,
           "eventDate": format!("{}", rfc(at).replace('Z', ".1234567Z")),
           "webhookId": WEBHOOK, "payload": payload})
}

fn subscription_event(what: &str, at: i64, status: &str) -> Value {
    notification(
        &format!("net.authorize.customer.subscription.{what}"),
        at,
        json!({"name": NAME, "amount": 50.00, "status": status,
               "profile": {"customerProfileId": PROFILE.parse::<i64>().unwrap(),
                           "customerPaymentProfileId": 1829447315,
                           "customerShippingAddressId": 1877520101},
               "entityName": "subscription", "id": SUBSCRIPTION}),
    )
}

fn payment(trans_id: &str, at: i64) -> Value {
    notification(
        "net.authorize.payment.authcapture.created",
        at,
        json!({"responseCode": 1, "authCode": "QJ7ZD2", "avsResponse": "Y", "authAmount": 50.00,
               "invoiceNumber": format!("INV{trans_id}"), "entityName": "transaction",
               "id": trans_id}),
    )
}

fn ok(mut answer: Value) -> Value {
    answer["messages"] = json!({"resultCode": "Ok",
        "message": [{"code": "I00001", "text": "Successful."}]});
    answer
}

fn error(code: &str, text: &str) -> Value {
    json!({"messages": {"resultCode": "Error", "message": [{"code": code, "text": text}]}})
}

/// `ARBGetSubscriptionResponse.subscription`: 30-day intervals (so a period is the lifecycle's
/// month), started the day the lifecycle starts.
fn subscription(start: i64, status: &str) -> Value {
    let start_date = &rfc(start)[..10];
    json!({"name": NAME,
        "paymentSchedule": {"interval": {"length": 30, "unit": "days"},
                            "startDate": start_date, "totalOccurrences": 9999,
                            "trialOccurrences": 0},
        "amount": 50.00, "trialAmount": 0.00, "status": status,
        "profile": {"merchantCustomerId": "ann", "description": "Ann Example",
            "email": "ann@example.com", "customerProfileId": PROFILE,
            "paymentProfile": {"customerType": "individual",
                "billTo": {"firstName": "Ann", "lastName": "Example", "country": "US"},
                "customerPaymentProfileId": "1829447315",
                "payment": {"creditCard": {"cardNumber": "XXXX1111", "expirationDate": "XXXX"}}}}})
}

/// `getTransactionDetailsResponse.transaction` of payment `pay_num`: charged a day before its
/// period starts (ARB's daily batch), so it pays through the day after the period's end.
fn charge(trans_id: &str, start: i64, pay_num: i64) -> Value {
    let submitted = start + (pay_num - 1) * MONTH - DAY;
    json!({"transId": trans_id, "submitTimeUTC": rfc(submitted),
        "submitTimeLocal": rfc(submitted - 7 * 3600).trim_end_matches('Z'),
        "transactionType": "authCaptureTransaction", "transactionStatus": "settledSuccessfully",
        "responseCode": 1, "responseReasonCode": 1,
        "responseReasonDescription": "Approval", "authCode": "QJ7ZD2", "AVSResponse": "Y",
        "subscription": {"id": SUBSCRIPTION.parse::<i64>().unwrap(), "payNum": pay_num},
        "order": {"invoiceNumber": format!("INV{trans_id}"), "description": NAME},
        "authAmount": 50.00, "settleAmount": 50.00, "taxExempt": false,
        "payment": {"creditCard": {"cardNumber": "XXXX1111", "expirationDate": "XXXX",
                                   "cardType": "Visa"}},
        "customer": {"id": "ann", "email": "ann@example.com"},
        "recurringBilling": true, "marketType": "eCommerce", "product": "Card Not Present",
        "profile": {"customerProfileId": PROFILE, "customerPaymentProfileId": "1829447315"}})
}

/// The refund of the last charge, in full.
fn refund(at: i64) -> Value {
    json!({"transId": REFUND, "refTransId": CHARGES[2].0, "submitTimeUTC": rfc(at),
        "transactionType": "refundTransaction", "transactionStatus": "refundPendingSettlement",
        "responseCode": 1, "responseReasonCode": 1,
        "responseReasonDescription": "Approval", "authAmount": 50.00, "settleAmount": 50.00,
        "payment": {"creditCard": {"cardNumber": "XXXX1111", "expirationDate": "XXXX",
                                   "cardType": "Visa"}},
        "recurringBilling": false, "marketType": "eCommerce", "product": "Card Not Present"})
}
