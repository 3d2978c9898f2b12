use crate::harness::{ROOT_TOKEN, TestApp};
use crate::on_both_engines;
use serde_json::json;

on_both_engines!(
    operator_creates_accounts,
    api_keys_are_shown_once_and_revocable,
    accounts_are_isolated
);

async fn operator_creates_accounts(app: &TestApp) {
    let r = app
        .send(
            "POST",
            "/v1/accounts",
            Some(ROOT_TOKEN),
            Some(json!({"name": "Acme"})),
            &[],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["account"]["name"], "Acme");
    let key = r.body["api_key"].as_str().unwrap();
    assert!(key.starts_with("kg_sk_"));
    let me = app.get("/v1/account", key).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], r.body["account"]["id"]);

    let wrong = app
        .send(
            "POST",
            "/v1/accounts",
            Some("not-root"),
            Some(json!({"name": "X"})),
            &[],
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "INVALID_ROOT_TOKEN"));
    // An API key is not the root token.
    let as_key = app
        .send(
            "POST",
            "/v1/accounts",
            Some(key),
            Some(json!({"name": "X"})),
            &[],
        )
        .await;
    assert_eq!(as_key.status, 401);
    let none = app
        .send(
            "POST",
            "/v1/accounts",
            None,
            Some(json!({"name": "X"})),
            &[],
        )
        .await;
    assert_eq!((none.status, none.code()), (401, "MISSING_CREDENTIALS"));
}

async fn api_keys_are_shown_once_and_revocable(app: &TestApp) {
    let key = app.account("Keys").await;
    let created = app.post("/v1/api-keys", &key, json!({"name": "ci"})).await;
    assert_eq!(created.status, 201);
    let second = created.body["api_key"].as_str().unwrap().to_string();
    assert!(second.starts_with("kg_sk_"));
    let list = app.get("/v1/api-keys", &key).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    // Listing shows a short prefix to tell keys apart, never the secret.
    assert!(
        !list
            .raw
            .windows(second.len())
            .any(|w| w == second.as_bytes())
    );
    assert!(second.starts_with(list.body["data"][1]["prefix"].as_str().unwrap()));
    assert_eq!(app.get("/v1/products", &second).await.status, 200);

    let id = created.body["id"].as_str().unwrap();
    let revoked = app
        .post(&format!("/v1/api-keys/{id}/revoke"), &key, json!({}))
        .await;
    assert_eq!(revoked.status, 200);
    assert!(revoked.body["revoked_at"].is_string());
    let refused = app.get("/v1/products", &second).await;
    assert_eq!((refused.status, refused.code()), (401, "INVALID_API_KEY"));

    // The last active key cannot be revoked: the account would be locked out.
    let list = app.get("/v1/api-keys", &key).await;
    let first = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let last = app
        .post(&format!("/v1/api-keys/{first}/revoke"), &key, json!({}))
        .await;
    assert_eq!((last.status, last.code()), (409, "LAST_API_KEY"));

    // Keys are stored hashed: the secret does not appear in the database.
    let audit = app.get("/v1/audit?actor=operator", &key).await;
    assert!(
        !audit
            .raw
            .windows(second.len())
            .any(|w| w == second.as_bytes())
    );
}

async fn accounts_are_isolated(app: &TestApp) {
    let a = app.account("A").await;
    let b = app.account("B").await;
    let license = app.license(&a, json!({"max_activations": 1})).await;
    let lid = license["id"].as_str().unwrap();
    let pid = license["policy_id"].as_str().unwrap();
    let prod = license["product_id"].as_str().unwrap();
    let customer = app
        .post("/v1/customers", &a, json!({"email": "a@example.com"}))
        .await;
    let cid = customer.body["id"].as_str().unwrap();

    // B can read none of A's objects...
    for path in [
        format!("/v1/licenses/{lid}"),
        format!("/v1/policies/{pid}"),
        format!("/v1/products/{prod}"),
        format!("/v1/customers/{cid}"),
        format!("/v1/licenses/{lid}/activations"),
    ] {
        let r = app.get(&path, &b).await;
        assert_eq!((r.status, r.code()), (404, "NOT_FOUND"), "{path}");
    }
    // ...list none of them...
    for path in [
        "/v1/licenses",
        "/v1/policies",
        "/v1/products",
        "/v1/customers",
        "/v1/audit",
    ] {
        let r = app.get(path, &b).await;
        assert_eq!(r.status, 200);
        let ids: Vec<&str> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        for id in [lid, pid, prod, cid] {
            assert!(!ids.contains(&id), "{path} leaks {id}");
        }
    }
    let by_email = app.get("/v1/customers?email=a@example.com", &b).await;
    assert_eq!(by_email.body["data"].as_array().unwrap().len(), 0);
    // ...and change none of them.
    let r = app
        .post(&format!("/v1/licenses/{lid}/actions/revoke"), &b, json!({}))
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .patch(&format!("/v1/products/{prod}"), &b, json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .patch(&format!("/v1/customers/{cid}"), &b, json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .patch(&format!("/v1/policies/{pid}"), &b, json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 404);
    let r = app
        .send(
            "DELETE",
            &format!("/v1/products/{prod}"),
            Some(&b),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    // B cannot issue a license on A's policy or for A's customer.
    let r = app
        .post("/v1/licenses", &b, json!({"policy_id": pid}))
        .await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_FOUND"));
    let own = app.policy(&b, json!({})).await;
    let r = app
        .post(
            "/v1/licenses",
            &b,
            json!({"policy_id": own, "customer_id": cid}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "CUSTOMER_NOT_FOUND"));
    // A's license is untouched.
    let still = app.get(&format!("/v1/licenses/{lid}"), &a).await;
    assert_eq!(still.body["status"], "active");
}
