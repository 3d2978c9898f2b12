//! Remote key generation calls: MyCommerce's key generator (URL token, optional Basic auth) and
//! FastSpring's remote license generator (`security_request_hash`).
mod common;

use common::fixture;
use keygate_billing::keygen::Layout;
use keygate_billing::providers::fastspring_keygen::request_hash;
use keygate_billing::scheme::basic_auth;
use keygate_billing::{BillingEventKind, Form, Headers, Request, Secrets, Timestamp, provider};
use serde_json::json;

const TOKEN: &str = "mycommerce-keygen-token-0123";

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000)
}

fn mycommerce_verify(
    query: &str,
    headers: &Headers,
    secrets: &Secrets,
) -> Result<(), &'static str> {
    let body = fixture("mycommerce", "keygen_call.form");
    let keygen = provider("mycommerce").unwrap().keygen().unwrap();
    keygen
        .verify(
            &Request::post(headers, &body).with_query(query),
            secrets,
            now(),
        )
        .map_err(|e| e.code().as_str())
}

#[test]
fn mycommerce_token_and_basic_auth() {
    let query = format!("token={TOKEN}");
    let none = Headers::new();
    assert_eq!(
        mycommerce_verify(&query, &none, &Secrets::new([TOKEN])),
        Ok(())
    );
    assert_eq!(
        mycommerce_verify("", &none, &Secrets::new([TOKEN])),
        Err("SIGNATURE_MISSING")
    );
    assert_eq!(
        mycommerce_verify(
            "token=mycommerce-keygen-token-0124",
            &none,
            &Secrets::new([TOKEN])
        ),
        Err("SIGNATURE_INVALID")
    );
    assert_eq!(
        mycommerce_verify(&query, &none, &Secrets::new(Vec::<String>::new())),
        Err("SECRET_NOT_CONFIGURED")
    );
    // Basic credentials configured: required as well.
    let both = Secrets::new([TOKEN, "shop:pa55word"]);
    assert_eq!(
        mycommerce_verify(&query, &none, &both),
        Err("SIGNATURE_MISSING")
    );
    let good = Headers::new().with("authorization", basic_auth::header("shop:pa55word"));
    assert_eq!(mycommerce_verify(&query, &good, &both), Ok(()));
    let bad = Headers::new().with("authorization", basic_auth::header("shop:guess"));
    assert_eq!(
        mycommerce_verify(&query, &bad, &both),
        Err("SIGNATURE_INVALID")
    );
    // Only Basic credentials and no token: not enough.
    assert_eq!(
        mycommerce_verify(&query, &good, &Secrets::new(["shop:pa55word"])),
        Err("SECRET_NOT_CONFIGURED")
    );
}

#[test]
fn mycommerce_call_is_one_order_line() {
    let body = fixture("mycommerce", "keygen_call.form");
    let headers = Headers::new();
    let mycommerce = provider("mycommerce").unwrap();
    let order = mycommerce
        .keygen()
        .unwrap()
        .order(&Request::post(&headers, &body))
        .unwrap();
    assert_eq!(order.order, "12345678");
    assert_eq!(order.line, "1");
    assert_eq!(order.product, "300123456");
    assert_eq!(order.quantity, 3);
    assert_eq!(order.customer.email.as_deref(), Some("ann@example.com"));
    assert_eq!(order.customer.name.as_deref(), Some("Ann Example"));
    let event = order.event("mycommerce", Layout::PerUnit, now());
    assert_eq!(event.items().len(), 3);
    // The same form as an order notification: the same event id, one line of 3 seats.
    let notified = mycommerce.parse(&Request::post(&headers, &body)).unwrap();
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0].event_id, event.event_id);
    assert_eq!(notified[0].kind, BillingEventKind::OrderPaid);
    assert_eq!(notified[0].items()[0].quantity, 3);
    // Missing product or a silly quantity: malformed.
    for (field, value) in [("PRODUCT_ID", ""), ("QUANTITY", "0"), ("QUANTITY", "lots")] {
        let text = String::from_utf8(body.clone()).unwrap();
        let form = Form::parse(text.as_bytes()).unwrap();
        let changed: Vec<String> = form
            .fields()
            .iter()
            .map(|(k, v)| format!("{k}={}", if k == field { value } else { v }))
            .collect();
        let changed = changed.join("&").replace('@', "%40").replace(' ', "+");
        let err = mycommerce
            .keygen()
            .unwrap()
            .order(&Request::post(&headers, changed.as_bytes()))
            .unwrap_err();
        assert_eq!(err.code(), "MALFORMED_PAYLOAD", "{field}={value}");
    }
}

#[test]
fn mycommerce_settings() {
    let mycommerce = provider("mycommerce").unwrap();
    let check = |secrets: &[&str], options: serde_json::Value| {
        mycommerce
            .check_config(
                &Secrets::new(secrets.iter().copied()).with_options(options),
                now(),
            )
            .map_err(|e| e.code().as_str())
    };
    assert_eq!(check(&[TOKEN], json!({})), Ok(()));
    assert_eq!(check(&[], json!({})), Err("SECRET_NOT_CONFIGURED"));
    assert_eq!(check(&["shop:pw"], json!({})), Err("SECRET_NOT_CONFIGURED"));
    assert_eq!(check(&["short"], json!({})), Err("SECRET_INVALID"));
    assert_eq!(check(&[TOKEN, ":pw"], json!({})), Err("SECRET_INVALID"));
    assert_eq!(
        check(&[TOKEN], json!({"license_generator": {"licenses": "many"}})),
        Err("OPTION_INVALID")
    );
}

const PRIVATE_KEY: &str = "fs-remote-generator-private-key";

fn fastspring_verify(body: &[u8], secrets: &Secrets) -> Result<(), &'static str> {
    let headers = Headers::new();
    provider("fastspring")
        .unwrap()
        .keygen()
        .unwrap()
        .verify(&Request::post(&headers, body), secrets, now())
        .map_err(|e| e.code().as_str())
}

fn signed(unsigned: &[u8], key: &str) -> Vec<u8> {
    let form = Form::parse(unsigned).unwrap();
    let hash = request_hash(form.fields(), key);
    let mut body = unsigned.to_vec();
    body.extend_from_slice(format!("&security_request_hash={hash}").as_bytes());
    body
}

#[test]
fn fastspring_request_hash() {
    let unsigned = fixture("fastspring", "keygen_call.form");
    let body = signed(&unsigned, PRIVATE_KEY);
    // The webhook's HMAC secret and the generator's private key side by side: either may be it.
    let secrets = Secrets::new(["fs-hmac-secret", PRIVATE_KEY])
        .with_options(json!({"license_generator": {}}));
    assert_eq!(fastspring_verify(&body, &secrets), Ok(()));
    assert_eq!(
        fastspring_verify(&unsigned, &secrets),
        Err("SIGNATURE_MISSING")
    );
    assert_eq!(
        fastspring_verify(&signed(&unsigned, "another-key"), &secrets),
        Err("SIGNATURE_INVALID")
    );
    // A tampered quantity does not verify.
    let text = String::from_utf8(body.clone())
        .unwrap()
        .replace("quantity=2", "quantity=200");
    assert_eq!(
        fastspring_verify(text.as_bytes(), &secrets),
        Err("SIGNATURE_INVALID")
    );
    // The hash is hex MD5 over the values in name order, then the key.
    let by_hand = {
        use md5::Digest;
        hex::encode(md5::Md5::digest(
            format!("Example Corpann@example.compro-perpetualAnn Example2VEN260101-1234-56789true{PRIVATE_KEY}")
                .as_bytes(),
        ))
    };
    assert!(String::from_utf8(body.clone()).unwrap().ends_with(&by_hand));
    let headers = Headers::new();
    let keygen = provider("fastspring").unwrap().keygen().unwrap();
    let order = keygen.order(&Request::post(&headers, &body)).unwrap();
    assert_eq!(order.order, "VEN260101-1234-56789");
    assert_eq!(order.product, "pro-perpetual");
    assert_eq!(order.quantity, 2);
    assert!(!order.livemode, "test=true");
    // Not enabled without `options.license_generator`.
    assert_eq!(
        keygen
            .layout(&Secrets::new([PRIVATE_KEY]))
            .unwrap_err()
            .code(),
        "OPTION_NOT_CONFIGURED"
    );
}
