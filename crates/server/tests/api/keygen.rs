//! Remote key generation end to end (`POST /v1/keygen/{provider}/{integration_id}`), and
//! Salesforce's Outbound Messages beyond the registry lifecycle (the SOAP answer, refusals,
//! a replay storm).
use crate::harness::{Reply, TestApp};
use crate::on_both_engines;
use crate::platforms::{deliver, kit_integration};
use keygate_billing::providers::fastspring_keygen::request_hash;
use keygate_billing::testkit::{self, mycommerce};
use keygate_billing::{Form, Secrets, Timestamp, provider};
use serde_json::{Value, json};

on_both_engines!(
    mycommerce_keygen_answers_keys_once_per_order_line,
    fastspring_remote_generator_then_refund_revokes,
    salesforce_answers_the_soap_ack_and_refuses_strangers,
    salesforce_replay_storm_matches_in_order,
);

const MC_TOKEN: &str = "mycommerce-vendor-token-0123456789";
const FORM: &str = "application/x-www-form-urlencoded";

async fn post_form(app: &TestApp, path: &str, form: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("content-type", FORM)];
    all.extend_from_slice(headers);
    app.send_bytes("POST", path, None, form.to_string().into(), &all)
        .await
}

fn keys(reply: &Reply) -> Vec<String> {
    String::from_utf8_lossy(&reply.raw)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn code_of(app: &TestApp, key: &str) -> String {
    let v = app.validate(json!({"key": key})).await;
    v.body["code"].as_str().unwrap().to_string()
}

async fn license_of(app: &TestApp, api: &str, key: &str) -> Value {
    let list = app.get("/v1/licenses?limit=200", api).await;
    list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no license {key}: {}", list.body))
}

async fn mycommerce_keygen_answers_keys_once_per_order_line(app: &TestApp) {
    let api = app.account("Shop").await;
    let policy = app
        .policy(
            &api,
            json!({"expiry": "fixed", "max_activations": 1, "seats_from_quantity": true}),
        )
        .await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "mycommerce", "secrets": [MC_TOKEN],
                   "mappings": [{"external_id": mycommerce::PRODUCT, "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let id = integration.body["id"].as_str().unwrap();
    let url = integration.body["keygen_url"].as_str().unwrap();
    let path = &url[url.find("/v1/").unwrap()..];
    assert_eq!(path, format!("/v1/keygen/mycommerce/{id}"));
    let with_token = format!("{path}?token={MC_TOKEN}");
    let call = testkit::form_encode(&mycommerce::call("90000001", 1, mycommerce::PRODUCT, 3));

    // Three units: three keys, one per line, each a valid license of the buyer.
    let r = post_form(app, &with_token, &call, &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let first = keys(&r);
    assert_eq!(first.len(), 3, "{first:?}");
    for key in &first {
        assert_eq!(code_of(app, key).await, "VALID");
        let license = license_of(app, &api, key).await;
        assert_eq!(license["max_activations"], 1, "{license}");
        assert!(!license["customer_id"].is_null());
    }
    let customers = app.get("/v1/customers?email=ann@example.com", &api).await;
    assert_eq!(
        customers.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        customers.body
    );

    // The shop posts the same order line again (a timeout on its side): the same keys.
    let again = post_form(app, &with_token, &call, &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(keys(&again), first);
    let all = app.get("/v1/licenses", &api).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 3);

    // Refused: no token, a wrong one; nothing issued, the attempts logged.
    let r = post_form(app, path, &call, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_MISSING"),
        "{}",
        r.body
    );
    let r = post_form(
        app,
        &format!("{path}?token=mycommerce-vendor-token-0123456780"),
        &call,
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
    let failures = app
        .get(&format!("/v1/integrations/{id}/failures"), &api)
        .await;
    assert_eq!(
        failures.body["data"].as_array().unwrap().len(),
        2,
        "{}",
        failures.body
    );

    // A product no mapping names: a clear error, nothing stored or issued.
    let unmapped = testkit::form_encode(&mycommerce::call("90000001", 2, "300999999", 1));
    let r = post_form(app, &with_token, &unmapped, &[]).await;
    assert_eq!((r.status, r.code()), (422, "NO_MAPPING"), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300999999")
    );
    // Not a key generator call at all.
    let r = post_form(app, &with_token, "QUANTITY=2", &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "MALFORMED_PAYLOAD"),
        "{}",
        r.body
    );
    let all = app.get("/v1/licenses", &api).await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 3);

    // One license with seats, per option; and Basic auth once configured.
    let patch = app
        .send(
            "PATCH",
            &format!("/v1/integrations/{id}"),
            Some(&api),
            Some(json!({"secrets": [MC_TOKEN, "shop:s3cret-pass"],
                        "options": {"license_generator": {"licenses": "one_with_seats"}}})),
            &[],
        )
        .await;
    assert_eq!(patch.status, 200, "{}", patch.body);
    let call = testkit::form_encode(&mycommerce::call("90000002", 1, mycommerce::PRODUCT, 4));
    let r = post_form(app, &with_token, &call, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_MISSING"),
        "Basic auth now required"
    );
    let basic = keygate_billing::scheme::basic_auth::header("shop:s3cret-pass");
    let r = post_form(app, &with_token, &call, &[("authorization", &basic)]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    let one = keys(&r);
    assert_eq!(one.len(), 1);
    let license = license_of(app, &api, &one[0]).await;
    assert_eq!(license["max_activations"], 4, "{license}");

    // A platform without remote key generation, an unknown integration.
    let stripe = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "stripe", "secrets": ["whsec_x"]}),
        )
        .await;
    assert!(stripe.body.get("keygen_url").is_none(), "{}", stripe.body);
    let sid = stripe.body["id"].as_str().unwrap();
    let r = post_form(app, &format!("/v1/keygen/stripe/{sid}"), &call, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "KEYGEN_NOT_CONFIGURED"),
        "{}",
        r.body
    );
    let r = post_form(app, &format!("/v1/keygen/fastspring/{id}"), &call, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "INTEGRATION_NOT_FOUND"),
        "{}",
        r.body
    );
}

const FS_HMAC: &str = "fs-webhook-hmac-secret";
const FS_PRIVATE: &str = "fs-remote-generator-private-key";

fn fastspring_call(reference: &str, product: &str, quantity: i64, key: &str) -> String {
    let unsigned = format!(
        "company=Example+Corp&email=ann%40example.com&internalProductName={product}&name=Ann+Example&quantity={quantity}&reference={reference}"
    );
    let form = Form::parse(unsigned.as_bytes()).unwrap();
    format!(
        "{unsigned}&security_request_hash={}",
        request_hash(form.fields(), key)
    )
}

async fn fastspring_remote_generator_then_refund_revokes(app: &TestApp) {
    let api = app.account("Shop").await;
    let policy = app
        .policy(&api, json!({"expiry": "fixed", "max_activations": 1}))
        .await;
    let integration = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "fastspring", "secrets": [FS_HMAC, FS_PRIVATE],
                   "options": {"license_generator": {}},
                   "mappings": [{"external_id": "pro-perpetual", "policy_id": policy}]}),
        )
        .await;
    assert_eq!(integration.status, 201, "{}", integration.body);
    let url = integration.body["keygen_url"].as_str().unwrap();
    let path = url[url.find("/v1/").unwrap()..].to_string();
    let webhook = integration.body["webhook_url"].as_str().unwrap();
    let webhook = webhook[webhook.find("/v1/").unwrap()..].to_string();
    let reference = "VEN261201-4321-12345";

    let call = fastspring_call(reference, "pro-perpetual", 2, FS_PRIVATE);
    let r = post_form(app, &path, &call, &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    let issued = keys(&r);
    assert_eq!(issued.len(), 2);
    let again = post_form(app, &path, &call, &[]).await;
    assert_eq!(keys(&again), issued, "the same order answers the same keys");

    // A bad hash, a missing one, an unmapped product.
    let forged = fastspring_call(reference, "pro-perpetual", 20, "guessed-key");
    let r = post_form(app, &path, &forged, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
    let r = post_form(
        app,
        &path,
        "reference=x&internalProductName=pro-perpetual&quantity=1",
        &[],
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_MISSING"),
        "{}",
        r.body
    );
    let unmapped = fastspring_call(reference, "other-product", 1, FS_PRIVATE);
    let r = post_form(app, &path, &unmapped, &[]).await;
    assert_eq!((r.status, r.code()), (422, "NO_MAPPING"), "{}", r.body);

    // FastSpring's order webhook for the same order (id + reference): no second set of keys.
    let kit = testkit::kit(provider("fastspring").unwrap());
    let secrets = Secrets::new([FS_HMAC]);
    let order = json!({"events": [{"id": "evt_fs_order", "type": "order.completed", "live": true,
        "created": Timestamp::now().millis(), "processed": false,
        "data": {"id": "ordFS123", "order": "ordFS123", "reference": reference, "completed": true,
                 "customer": {"first": "Ann", "last": "Example", "email": "ann@example.com"},
                 "items": [{"product": "pro-perpetual", "quantity": 2}]}}]});
    let refund = json!({"events": [{"id": "evt_fs_return", "type": "return.created", "live": true,
        "created": Timestamp::now().millis() + 1000, "processed": false,
        "data": {"return": "retFS1", "reference": "VEN261202-0000-00000R", "completed": true,
                 "original": {"id": "ordFS123", "order": "ordFS123", "reference": reference},
                 "customer": {"first": "Ann", "last": "Example", "email": "ann@example.com"},
                 "items": [{"product": "pro-perpetual", "quantity": 2, "fullReturn": true}]}}]});
    for body in [&order, &refund] {
        let body = body.to_string();
        let headers = kit
            .sign(&secrets, body.as_bytes(), Timestamp::now())
            .unwrap();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let r = app
            .send_bytes("POST", &webhook, None, body.into(), &headers)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["events"][0]["status"], "applied", "{}", r.body);
        if r.body["events"][0]["provider_event_id"] == "evt_fs_order" {
            let all = app.get("/v1/licenses", &api).await;
            assert_eq!(
                all.body["data"].as_array().unwrap().len(),
                2,
                "{}",
                all.body
            );
        }
    }
    // The refund names the order by id; its reference reaches the keys the generator issued.
    for key in &issued {
        assert_eq!(code_of(app, key).await, "REVOKED");
    }

    // Without `options.license_generator` the integration does not answer key generation.
    let plain = app
        .post(
            "/v1/integrations",
            &api,
            json!({"provider": "fastspring", "secrets": [FS_PRIVATE]}),
        )
        .await;
    let pid = plain.body["id"].as_str().unwrap();
    let r = post_form(app, &format!("/v1/keygen/fastspring/{pid}"), &call, &[]).await;
    assert_eq!(
        (r.status, r.code()),
        (404, "KEYGEN_NOT_CONFIGURED"),
        "{}",
        r.body
    );
}

async fn salesforce_answers_the_soap_ack_and_refuses_strangers(app: &TestApp) {
    let salesforce = provider("salesforce").unwrap();
    let kit = testkit::kit(salesforce);
    let setup = kit_integration(
        app,
        salesforce,
        json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true}),
    )
    .await;
    let now = Timestamp::now().millis() / 1000;
    let steps = kit.steps(now, now).unwrap();
    let r = deliver(app, &setup.path, kit, &steps.created[0]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let answer = String::from_utf8_lossy(&r.raw);
    assert!(answer.contains("<Ack>true</Ack>"), "{answer}");
    let events = app.get("/v1/events", &setup.api).await;
    assert_eq!(
        events.body["data"][0]["provider_event_id"],
        "04lKG00000000A1AAA"
    );
    assert_eq!(
        events.body["data"][0]["status"], "applied",
        "{}",
        events.body
    );

    let xml = testkit::salesforce::render(&steps.renewed[0], &kit.settings().options);
    let soap = [("content-type", "text/xml; charset=utf-8")];
    // No token, a wrong token, another org, a DTD: refused, nothing stored.
    let r = app
        .send_bytes("POST", &setup.path, None, xml.clone().into(), &soap)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_MISSING"),
        "{}",
        r.body
    );
    let wrong = format!(
        "{}?token=sf-outbound-token-for-tests-0123456780",
        setup.path
    );
    let r = app
        .send_bytes("POST", &wrong, None, xml.clone().into(), &soap)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
    let query = testkit::salesforce::query(&kit.settings().secrets()).unwrap();
    let good = format!("{}?{query}", setup.path);
    let other_org = xml.replace(testkit::salesforce::ORGANIZATION_ID, "00DKG0000000999AAA");
    let r = app
        .send_bytes("POST", &good, None, other_org.into(), &soap)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "SIGNATURE_INVALID"),
        "{}",
        r.body
    );
    let dtd = xml.replacen(
        "<soapenv:Envelope",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><soapenv:Envelope",
        1,
    );
    let r = app.send_bytes("POST", &good, None, dtd.into(), &soap).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "MALFORMED_PAYLOAD"),
        "{}",
        r.body
    );
    let events = app.get("/v1/events", &setup.api).await;
    assert_eq!(
        events.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        events.body
    );

    // Incomplete options: 422 naming what to set.
    let mut options = kit.settings().options;
    options["fields"]
        .as_object_mut()
        .unwrap()
        .remove("product_code");
    let r = app
        .post(
            "/v1/integrations",
            &setup.api,
            json!({"provider": "salesforce", "secrets": kit.settings().secrets, "options": options}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "OPTION_NOT_CONFIGURED"),
        "{}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fields.product_code")
    );
}

/// The lifecycle's messages delivered three times each in a shuffled order end where the
/// in-order delivery ends (notification ids de-duplicate, SystemModstamp orders).
async fn salesforce_replay_storm_matches_in_order(app: &TestApp) {
    let salesforce = provider("salesforce").unwrap();
    let kit = testkit::kit(salesforce);
    let policy =
        json!({"expiry": "subscription", "max_activations": 1, "seats_from_quantity": true});
    let now = Timestamp::now().millis() / 1000;
    let steps = kit.steps(now, now).unwrap();
    // Up to the cancellation: the refund would make both end revoked whatever the order.
    let messages: Vec<Value> = [
        &steps.created,
        &steps.renewed,
        &steps.quantity,
        &steps.cancelled,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let in_order = kit_integration(app, salesforce, policy.clone()).await;
    for m in &messages {
        assert_eq!(deliver(app, &in_order.path, kit, m).await.status, 200);
    }
    let storm = kit_integration(app, salesforce, policy).await;
    let mut shuffled: Vec<&Value> = messages.iter().chain(&messages).chain(&messages).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..shuffled.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        shuffled.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    for m in shuffled {
        assert_eq!(deliver(app, &storm.path, kit, m).await.status, 200);
    }
    let a = app.get("/v1/licenses", &in_order.api).await.body["data"][0].clone();
    let b = app.get("/v1/licenses", &storm.api).await.body["data"][0].clone();
    for field in ["status", "expires_at", "max_activations", "quantity"] {
        assert_eq!(a[field], b[field], "{field} differs: {a} / {b}");
    }
    assert_eq!(b["max_activations"], 5);
    assert_eq!(
        code_of(app, a["key"].as_str().unwrap()).await,
        code_of(app, b["key"].as_str().unwrap()).await
    );
}
