use crate::harness::TestApp;
use crate::on_both_engines;
use keygate_domain::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

on_both_engines!(
    suspend_reinstate_revoke_and_audit,
    renew_and_extend,
    expiry_by_time_and_grace
);

fn t(v: &Value) -> Timestamp {
    Timestamp::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

async fn code(app: &TestApp, key: &Value) -> String {
    let r = app.validate(json!({"key": key})).await;
    r.body["code"].as_str().unwrap().to_string()
}

async fn suspend_reinstate_revoke_and_audit(app: &TestApp) {
    let api = app.account("Life").await;
    let license = app.license(&api, json!({})).await;
    let id = license["id"].as_str().unwrap();
    let key = &license["key"];
    let act = |a: &str| format!("/v1/licenses/{id}/actions/{a}");

    assert_eq!(code(app, key).await, "VALID");
    let s = app.post(&act("suspend"), &api, json!({})).await;
    assert_eq!(
        (s.status, s.body["status"].as_str()),
        (200, Some("suspended"))
    );
    let v = app.validate(json!({"key": key})).await;
    assert_eq!(
        (v.body["valid"].as_bool(), v.body["code"].as_str()),
        (Some(false), Some("SUSPENDED"))
    );
    let r = app.post(&act("reinstate"), &api, json!({})).await;
    assert_eq!(r.body["status"], "active");
    assert_eq!(code(app, key).await, "VALID");
    let r = app.post(&act("revoke"), &api, json!({})).await;
    assert_eq!(r.body["status"], "revoked");
    assert_eq!(code(app, key).await, "REVOKED");
    let r = app.post(&act("reinstate"), &api, json!({})).await;
    assert_eq!((r.status, r.code()), (409, "LICENSE_REVOKED"));
    let r = app.post(&act("fly"), &api, json!({})).await;
    assert_eq!((r.status, r.code()), (404, "UNKNOWN_ACTION"));
    // A revoked license refuses activation with its code.
    let r = app
        .client(
            "/v1/licenses/activate",
            json!({"key": key, "fingerprint": "m"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "REVOKED"));

    // Every change is audited: who (this API key), what, before and after.
    let keys = app.get("/v1/api-keys", &api).await;
    let key_id = keys.body["data"][0]["id"].as_str().unwrap();
    let audit = app.get(&format!("/v1/audit?license_id={id}"), &api).await;
    assert_eq!(audit.status, 200);
    let entries = audit.body["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "license.revoked",
            "license.reinstated",
            "license.suspended",
            "license.created"
        ]
    );
    let suspended = &entries[2];
    assert_eq!(suspended["actor_type"], "api_key");
    assert_eq!(suspended["actor_id"], key_id);
    assert_eq!(suspended["before"]["status"], "active");
    assert_eq!(suspended["after"]["status"], "suspended");
    let by_actor = app
        .get(&format!("/v1/audit?actor={key_id}&license_id={id}"), &api)
        .await;
    assert_eq!(by_actor.body["data"].as_array().unwrap().len(), 4);
    let future = app.get("/v1/audit?since=2999-01-01T00:00:00Z", &api).await;
    assert_eq!(future.body["data"].as_array().unwrap().len(), 0);
}

async fn renew_and_extend(app: &TestApp) {
    let api = app.account("Renew").await;
    let license = app.license(&api, json!({"duration_seconds": 3600})).await;
    let id = license["id"].as_str().unwrap();
    let expires = t(&license["expires_at"]);
    let renewed = app
        .post(&format!("/v1/licenses/{id}/actions/renew"), &api, json!({}))
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_eq!(t(&renewed.body["expires_at"]), expires.plus_seconds(3600));
    let extended = app
        .post(
            &format!("/v1/licenses/{id}/actions/extend"),
            &api,
            json!({"seconds": 60}),
        )
        .await;
    assert_eq!(t(&extended.body["expires_at"]), expires.plus_seconds(3660));
    let no_seconds = app
        .post(
            &format!("/v1/licenses/{id}/actions/extend"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!(no_seconds.status, 422);
    let negative = app
        .post(
            &format!("/v1/licenses/{id}/actions/extend"),
            &api,
            json!({"seconds": -5}),
        )
        .await;
    assert_eq!((negative.status, negative.code()), (422, "INVALID_FIELD"));

    // Already expired: renewal counts from now, not from the old expiry.
    let policy = app.policy(&api, json!({"duration_seconds": 3600})).await;
    let old = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(code(app, &old.body["key"]).await, "EXPIRED");
    let oid = old.body["id"].as_str().unwrap();
    let before = Timestamp::now();
    let renewed = app
        .post(
            &format!("/v1/licenses/{oid}/actions/renew"),
            &api,
            json!({}),
        )
        .await;
    let new_expiry = t(&renewed.body["expires_at"]);
    assert!(
        new_expiry >= before.plus_seconds(3600)
            && new_expiry <= Timestamp::now().plus_seconds(3600)
    );
    assert_eq!(code(app, &old.body["key"]).await, "VALID");

    // A trial, extended for a good lead.
    let trial = app
        .license(
            &api,
            json!({"trial_seconds": 600, "duration_seconds": 86400}),
        )
        .await;
    let trial_id = trial["id"].as_str().unwrap();
    let trial_end = t(&trial["expires_at"]);
    assert_eq!(trial_end, t(&trial["starts_at"]).plus_seconds(600));
    let longer = app
        .post(
            &format!("/v1/licenses/{trial_id}/actions/extend"),
            &api,
            json!({"seconds": 1209600}),
        )
        .await;
    assert_eq!(
        t(&longer.body["expires_at"]),
        trial_end.plus_seconds(1209600)
    );

    // Perpetual: nothing to renew; no duration: nothing to renew by.
    let perpetual = app.license(&api, json!({})).await;
    let pid = perpetual["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/v1/licenses/{pid}/actions/renew"),
            &api,
            json!({}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "POLICY_NOT_RENEWABLE"));
    let r = app
        .post(
            &format!("/v1/licenses/{pid}/actions/extend"),
            &api,
            json!({"seconds": 5}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "LICENSE_PERPETUAL"));
}

async fn expiry_by_time_and_grace(app: &TestApp) {
    let api = app.account("Time").await;
    let policy = app.policy(&api, json!({"grace_seconds": 60})).await;
    let soon = Timestamp::now().plus_seconds(2).to_rfc3339();
    let l = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "expires_at": soon}),
        )
        .await;
    let key = &l.body["key"];
    assert_eq!(code(app, key).await, "VALID");
    let no_grace = app.policy(&api, json!({})).await;
    let l2 = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": no_grace, "expires_at": soon}),
        )
        .await;
    assert_eq!(code(app, &l2.body["key"]).await, "VALID");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Past expiry: within the grace period it still passes, flagged; without grace it fails.
    let v = app.validate(json!({"key": key})).await;
    assert_eq!(v.body["code"], "GRACE_PERIOD");
    assert_eq!(v.body["valid"], true);
    assert_eq!(v.body["license"]["expired"], true);
    let v2 = app.validate(json!({"key": l2.body["key"]})).await;
    assert_eq!(
        (v2.body["code"].as_str(), v2.body["valid"].as_bool()),
        (Some("EXPIRED"), Some(false))
    );
    // Past the grace period too.
    let past = Timestamp::now().plus_seconds(-120).to_rfc3339();
    let l3 = app
        .post(
            "/v1/licenses",
            &api,
            json!({"policy_id": policy, "expires_at": past}),
        )
        .await;
    assert_eq!(code(app, &l3.body["key"]).await, "EXPIRED");
    let expired = app.get("/v1/licenses?status=expired", &api).await;
    assert_eq!(expired.body["data"].as_array().unwrap().len(), 3);
}
