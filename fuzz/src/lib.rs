//! Shared parts of the fuzz targets: the one call into the billing crate, each platform's
//! signing scheme (so a fuzzed body gets past verification and reaches the parser), and the
//! properties every target checks.
//!
//! The targets are thin: `fuzz_targets/provider_*.rs` call [`provider_target`] with a
//! platform name. When the billing crate's API changes, only [`receive`] and [`parse_only`]
//! need adapting (and [`signed_headers`] / [`secrets`], which build its `Headers` and
//! `Secrets`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use keygate_billing::{BillingError, BillingEvent, Headers, Secrets, Timestamp};
use sha2::{Digest, Sha256};

/// The clock every target verifies at: fixed, so a crash reproduces. Inside the validity of
/// `keys/paypal_fuzz_cert.pem` (2026-12-01 .. 2126-11-07).
pub const NOW_SECONDS: i64 = 1_798_761_600; // 2027-01-01T00:00:00Z

pub fn now() -> Timestamp {
    Timestamp::from_unix_seconds(NOW_SECONDS)
}

// ---------------------------------------------------------------------------------------------
// The adapter: the only place that knows the billing crate's API.
// ---------------------------------------------------------------------------------------------

/// Verify, then parse one delivery, as the webhook endpoint does.
pub fn receive(
    provider: &str,
    headers: &Headers,
    body: &[u8],
    secrets: &Secrets,
    now: Timestamp,
) -> Result<Vec<BillingEvent>, BillingError> {
    let p = keygate_billing::provider(provider).expect("a known provider name");
    keygate_billing::receive(p, headers, body, secrets, now)
}

/// Parse without verifying (what happens after a positive verification).
pub fn parse_only(
    provider: &str,
    headers: &Headers,
    body: &[u8],
) -> Result<Vec<BillingEvent>, BillingError> {
    keygate_billing::provider(provider)
        .expect("a known provider name")
        .parse(&keygate_billing::Request::post(headers, body))
}

// ---------------------------------------------------------------------------------------------
// Each platform's signing scheme, with fixed test secrets.
// ---------------------------------------------------------------------------------------------

const HMAC_SECRET: &str = "fuzz_webhook_secret";
/// Standard Webhooks secret: `whsec_` + base64 of the key bytes.
const GENERIC_SECRET: &str = "whsec_ZnV6el9zdGFuZGFyZF93ZWJob29rc19rZXk=";
const GENERIC_KEY: &[u8] = b"fuzz_standard_webhooks_key";
const CHARGEBEE_CREDENTIALS: &str = "fuzzuser:fuzzpass";
const PAYPAL_WEBHOOK_ID: &str = "WH-FUZZ-0001";
const PAYPAL_CERT: &str = include_str!("../keys/paypal_fuzz_cert.pem");
const PAYPAL_KEY: &str = include_str!("../keys/paypal_fuzz_key.pem");

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The integration's verification material for `provider`.
pub fn secrets(provider: &str) -> Secrets {
    match provider {
        "generic" => Secrets::new([GENERIC_SECRET]),
        "chargebee" => Secrets::new([CHARGEBEE_CREDENTIALS]),
        "paypal" => Secrets::new([PAYPAL_WEBHOOK_ID])
            .with_options(serde_json::json!({"certificate_pem": PAYPAL_CERT})),
        _ => Secrets::new([HMAC_SECRET]),
    }
}

fn paypal_key() -> &'static rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    static KEY: std::sync::OnceLock<rsa::RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        rsa::RsaPrivateKey::from_pkcs8_pem(PAYPAL_KEY).expect("the fuzz key is PKCS#8 PEM")
    })
}

/// The headers the platform would send with `body`, correctly signed at [`now`].
/// `extra` is added first (an event-name header, say), so the signature headers win.
pub fn signed_headers(provider: &str, body: &[u8], extra: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (name, value) in extra {
        h.insert(name, *value);
    }
    let t = NOW_SECONDS.to_string();
    match provider {
        "stripe" => {
            let sig = hmac_sha256(HMAC_SECRET.as_bytes(), &[t.as_bytes(), b".", body]);
            h.insert("Stripe-Signature", format!("t={t},v1={}", hex::encode(sig)));
        }
        "paddle" => {
            let sig = hmac_sha256(HMAC_SECRET.as_bytes(), &[t.as_bytes(), b":", body]);
            h.insert(
                "Paddle-Signature",
                format!("ts={t};h1={}", hex::encode(sig)),
            );
        }
        "lemonsqueezy" => {
            let sig = hmac_sha256(HMAC_SECRET.as_bytes(), &[body]);
            h.insert("X-Signature", hex::encode(sig));
        }
        "fastspring" => {
            let sig = hmac_sha256(HMAC_SECRET.as_bytes(), &[body]);
            h.insert("X-FS-Signature", STANDARD.encode(sig));
        }
        "chargebee" => {
            h.insert(
                "Authorization",
                format!("Basic {}", STANDARD.encode(CHARGEBEE_CREDENTIALS)),
            );
        }
        "generic" => {
            let id = "msg_fuzz";
            let sig = hmac_sha256(
                GENERIC_KEY,
                &[id.as_bytes(), b".", t.as_bytes(), b".", body],
            );
            h.insert("webhook-id", id);
            h.insert("webhook-timestamp", t.as_str());
            h.insert("webhook-signature", format!("v1,{}", STANDARD.encode(sig)));
        }
        "paypal" => {
            let transmission_id = "fuzz-transmission-1";
            let time = "2027-01-01T00:00:00Z";
            let message = format!(
                "{transmission_id}|{time}|{PAYPAL_WEBHOOK_ID}|{}",
                crc32fast::hash(body)
            );
            let digest = Sha256::digest(message.as_bytes());
            let sig = paypal_key()
                .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
                .expect("RSA signing of a digest");
            h.insert("PAYPAL-TRANSMISSION-ID", transmission_id);
            h.insert("PAYPAL-TRANSMISSION-TIME", time);
            h.insert("PAYPAL-TRANSMISSION-SIG", STANDARD.encode(sig));
            h.insert("PAYPAL-AUTH-ALGO", "SHA256withRSA");
        }
        other => panic!("no signing scheme for {other}"),
    }
    h
}

/// The signature header names of each platform, to build forged headers from fuzz bytes.
fn signature_header_names(provider: &str) -> &'static [&'static str] {
    match provider {
        "stripe" => &["Stripe-Signature"],
        "paddle" => &["Paddle-Signature"],
        "lemonsqueezy" => &["X-Signature"],
        "fastspring" => &["X-FS-Signature"],
        "chargebee" => &["Authorization"],
        "generic" => &["webhook-id", "webhook-timestamp", "webhook-signature"],
        "paypal" => &[
            "PAYPAL-TRANSMISSION-ID",
            "PAYPAL-TRANSMISSION-TIME",
            "PAYPAL-TRANSMISSION-SIG",
            "PAYPAL-AUTH-ALGO",
        ],
        other => panic!("no header names for {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The properties.
// ---------------------------------------------------------------------------------------------

/// What the inbox does with a parsed event: it stores it as JSON and reads it back. Both ways
/// must work, and reading back must give an event that stores as the same JSON.
///
/// The events themselves must be equal when their times are within the years RFC 3339 can
/// write (0000..=9999). Outside them (a Unix `created` of 10^15 s, say) `Timestamp` is written
/// as the nearest bound: known and reported, so only the JSON fixed point is asserted then.
pub fn check_events(provider: &str, events: &[BillingEvent]) {
    for event in events {
        let json = serde_json::to_string(event)
            .unwrap_or_else(|e| panic!("{provider}: a parsed event does not serialize: {e}"));
        let back: BillingEvent = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!("{provider}: a stored event does not read back: {e}\n{json}")
        });
        let again = serde_json::to_string(&back).expect("a read-back event serializes");
        assert_eq!(
            again, json,
            "{provider}: the event changed in the inbox round trip"
        );
        if in_rfc3339_range(event) {
            assert_eq!(
                &back, event,
                "{provider}: the event changed in the inbox round trip"
            );
        }
    }
}

fn writable(t: Timestamp) -> bool {
    (Timestamp::MIN_RFC3339_MILLIS..=Timestamp::MAX_RFC3339_MILLIS).contains(&t.millis())
}

/// Whether every time in the event has an RFC 3339 spelling.
fn in_rfc3339_range(event: &BillingEvent) -> bool {
    let mut times = vec![event.occurred_at];
    if let Some(s) = &event.subscription {
        times.extend(
            [s.current_period_end, s.cancel_at, s.ended_at, s.trial_end]
                .into_iter()
                .flatten(),
        );
    }
    times.into_iter().all(writable)
}

/// One fuzz input for a platform: the input is the raw webhook body.
///
/// 1. Unsigned (no signature headers): verification must refuse it.
/// 2. Signed correctly: verify+parse must not refuse it for authenticity (only a malformed
///    body may be refused); parsed events must survive the inbox round trip and the domain's
///    subscription bookkeeping.
/// 3. Signature headers made of fuzz bytes: must not panic (and is accepted only by luck).
///
/// PayPal signs with RSA, which costs far more than an HMAC, so its signed path runs on one
/// input in 16 (chosen by the body's CRC, so it is deterministic) and the others are parsed
/// without verification.
pub fn provider_target(provider: &str, body: &[u8]) {
    let secrets = secrets(provider);
    let unsigned = receive(provider, &Headers::new(), body, &secrets, now());
    assert!(
        unsigned.is_err(),
        "{provider}: an unsigned delivery was accepted"
    );

    let extra: &[(&str, &str)] = match provider {
        // LemonSqueezy falls back to this header when the body has no event name.
        "lemonsqueezy" => &[("X-Event-Name", "subscription_created")],
        _ => &[],
    };
    let sign_this = provider != "paypal" || crc32fast::hash(body) % 16 == 0;
    // Parsers that read headers also run without the signature headers (generic: the event id
    // defaults to webhook-id).
    if !sign_this || matches!(provider, "generic" | "lemonsqueezy") {
        if let Ok(events) = parse_only(provider, &Headers::new(), body) {
            check_events(provider, &events);
            events.iter().for_each(reconcile);
        }
    }
    if sign_this {
        let headers = signed_headers(provider, body, extra);
        match receive(provider, &headers, body, &secrets, now()) {
            Ok(events) => {
                check_events(provider, &events);
                events.iter().for_each(reconcile);
            }
            Err(e) if e.code() == "MALFORMED_PAYLOAD" => {}
            Err(e) => panic!("{provider}: a correctly signed delivery was refused: {e}"),
        }
    }

    // Forged signature headers: the body's first bytes, split at NUL, as header values.
    let names = signature_header_names(provider);
    let head = &body[..body.len().min(256)];
    let mut forged = Headers::new();
    for (name, value) in names.iter().zip(head.split(|b| *b == 0)) {
        forged.insert(name, String::from_utf8_lossy(value).into_owned());
    }
    let _ = receive(provider, &forged, body, &secrets, now());
}

// ---------------------------------------------------------------------------------------------
// Signed formats (crates/licfile).
// ---------------------------------------------------------------------------------------------

pub fn signing_key() -> &'static keygate_licfile::SigningKey {
    static KEY: std::sync::OnceLock<keygate_licfile::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| keygate_licfile::SigningKey::from_bytes(&[7u8; 32]))
}

pub fn key_ring() -> keygate_licfile::KeyRing {
    let mut ring = keygate_licfile::KeyRing::new();
    ring.add(signing_key().verifying_key());
    ring
}

// ---------------------------------------------------------------------------------------------
// JSON request bodies.
// ---------------------------------------------------------------------------------------------

/// The request shapes [`json_body_target`] knows, by selector byte (modulo the count).
pub const JSON_SHAPES: [&str; 12] = [
    "ProductInput",
    "ProductPatch",
    "CustomerInput",
    "CustomerPatch",
    "LicenseInput",
    "LicensePatch",
    "ActivateInput",
    "UsageInput",
    "PolicyInput",
    "Overrides",
    "IntegrationOptions",
    "BillingEvent",
];

/// What the server does with a body before the store sees it: refuse an empty one, then
/// serde_json with the error classified (syntax vs shape), as `extract::parse_json` does.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Some(v),
        Err(e) => {
            let _ = e.classify();
            None
        }
    }
}

fn metadata_checked(value: &serde_json::Value) {
    let _ = keygate_domain::policy::validate_metadata(value);
}

fn roundtrip<T>(shape: &str, value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value)
        .unwrap_or_else(|e| panic!("{shape}: an accepted body does not serialize: {e}"));
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{shape}: a serialized value does not read back: {e}\n{json}"));
    assert_eq!(&back, value, "{shape}: changed in a JSON round trip");
}

/// One body for the request shape `selector` picks.
pub fn json_body_target(selector: u8, body: &[u8]) {
    use keygate_store::inputs as i;
    let shape = JSON_SHAPES[selector as usize % JSON_SHAPES.len()];
    match shape {
        "ProductInput" => {
            if let Some(v) = parse_body::<i::ProductInput>(body) {
                metadata_checked(&v.metadata);
            }
        }
        "ProductPatch" => {
            if let Some(v) = parse_body::<i::ProductPatch>(body)
                && let Some(m) = &v.metadata
            {
                metadata_checked(m);
            }
        }
        "CustomerInput" => {
            if let Some(v) = parse_body::<i::CustomerInput>(body) {
                metadata_checked(&v.metadata);
            }
        }
        "CustomerPatch" => {
            if let Some(v) = parse_body::<i::CustomerPatch>(body)
                && let Some(m) = &v.metadata
            {
                metadata_checked(m);
            }
        }
        "LicenseInput" => {
            if let Some(v) = parse_body::<i::LicenseInput>(body) {
                metadata_checked(&v.metadata);
                for f in v
                    .overrides
                    .add_features
                    .iter()
                    .chain(&v.overrides.remove_features)
                {
                    let _ = keygate_domain::policy::validate_feature_code(f);
                }
                for t in [v.starts_at, v.expires_at].into_iter().flatten() {
                    timestamp_roundtrip(t);
                }
            }
        }
        "LicensePatch" => {
            if let Some(v) = parse_body::<i::LicensePatch>(body) {
                if let Some(m) = &v.metadata {
                    metadata_checked(m);
                }
                if let Some(Some(t)) = v.expires_at {
                    timestamp_roundtrip(t);
                }
            }
        }
        "ActivateInput" => {
            let _ = parse_body::<i::ActivateInput>(body);
        }
        "UsageInput" => {
            let _ = parse_body::<i::UsageInput>(body);
        }
        "PolicyInput" => {
            if let Some(v) = parse_body::<keygate_domain::PolicyInput>(body) {
                let _ = v.validate();
                let _ = v.require_activation();
                let normalized = v.features_normalized();
                assert!(
                    normalized.windows(2).all(|w| w[0] < w[1]),
                    "features not normalized"
                );
                roundtrip(shape, &v);
            }
        }
        "Overrides" => {
            if let Some(v) = parse_body::<keygate_domain::Overrides>(body) {
                roundtrip(shape, &v);
            }
        }
        "IntegrationOptions" => {
            if let Some(v) = parse_body::<keygate_domain::reconcile::IntegrationOptions>(body) {
                roundtrip(shape, &v);
            }
        }
        // What the inbox reads back: a stored normalized event.
        "BillingEvent" => {
            if let Some(event) = parse_body::<BillingEvent>(body) {
                reconcile(&event);
            }
        }
        _ => unreachable!("every shape has an arm"),
    }
}

/// A timestamp a client sent is shown back in RFC 3339: it must parse to the same instant,
/// within the years the format can write (0000-9999).
fn timestamp_roundtrip(t: Timestamp) {
    if writable(t) {
        let text = t.to_rfc3339();
        let back = Timestamp::parse_rfc3339(&text)
            .unwrap_or_else(|e| panic!("{text} does not parse back: {e}"));
        assert_eq!(back, t, "{text}: changed in an RFC 3339 round trip");
    }
}

/// The domain's subscription bookkeeping on a parsed event: apply it to nothing and to its own
/// result (a redelivery), and keep the stored state round-tripping.
pub fn reconcile(event: &BillingEvent) {
    use keygate_domain::reconcile::apply_event;
    if let Some(state) = apply_event(None, event) {
        if in_rfc3339_range(event) {
            roundtrip("SubscriptionState", &state);
        }
        let _ = apply_event(Some(&state), event);
        let _ = keygate_domain::reconcile::desired_status(&state);
        let _ = keygate_domain::reconcile::paid_through(&state);
    }
}
