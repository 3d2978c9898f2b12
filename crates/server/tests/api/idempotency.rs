//! `Idempotency-Key` under concurrency, and whatever the spelling of `Authorization`.
use crate::harness::TestApp;
use crate::on_both_engines;
use keygate_domain::Timestamp;
use keygate_store::IdempotencyClaim;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Runs the futures together (in this task), all in flight at once.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *out = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

async fn licenses_of(app: &TestApp, key: &str, policy: &str) -> usize {
    let list = app
        .get(&format!("/v1/licenses?policy_id={policy}"), key)
        .await;
    list.body["data"].as_array().unwrap().len()
}

on_both_engines!(concurrent_retries_with_one_key_create_one_license);

async fn concurrent_retries_with_one_key_create_one_license(app: &TestApp) {
    let key = app.account("Concurrent").await;
    let policy = app.policy(&key, json!({})).await;
    for round in 0..3 {
        let idem = format!("order-{round}");
        let body = json!({"policy_id": policy, "metadata": {"round": round}});
        let (key, idem_ref) = (key.as_str(), idem.as_str());
        let sends = (0..8)
            .map(|_| {
                let body = body.clone();
                async move {
                    app.send(
                        "POST",
                        "/v1/licenses",
                        Some(key),
                        Some(body),
                        &[("idempotency-key", idem_ref)],
                    )
                    .await
                }
            })
            .collect();
        let replies = join_all(sends).await;
        let mut ids = Vec::new();
        for r in &replies {
            match (r.status, r.code()) {
                (201, _) => ids.push(r.body["id"].clone()),
                (409, "IDEMPOTENCY_IN_PROGRESS") => {
                    assert_eq!(r.headers["retry-after"], "1");
                }
                other => panic!("unexpected answer {other:?}: {}", r.body),
            }
        }
        assert!(!ids.is_empty(), "one of them did the work");
        assert!(ids.iter().all(|id| *id == ids[0]), "one license: {ids:?}");
        assert_eq!(licenses_of(app, key, &policy).await, round + 1);
        // Once it has answered, every retry replays that answer.
        let again = app
            .send(
                "POST",
                "/v1/licenses",
                Some(key),
                Some(body.clone()),
                &[("idempotency-key", idem.as_str())],
            )
            .await;
        assert_eq!((again.status, &again.body["id"]), (201, &ids[0]));
        assert_eq!(again.headers["idempotent-replayed"], "true");
    }
}

on_both_engines!(idempotency_holds_whatever_the_bearer_spelling);

async fn idempotency_holds_whatever_the_bearer_spelling(app: &TestApp) {
    let key = app.account("Spelling").await;
    let policy = app.policy(&key, json!({})).await;
    let body = json!({"policy_id": policy});
    let mut first_id = Value::Null;
    for (i, scheme) in ["Bearer", "bearer", "BEARER", "bEaReR", "Bearer  "]
        .iter()
        .enumerate()
    {
        let authorization = format!("{scheme} {key}");
        let r = app
            .send(
                "POST",
                "/v1/licenses",
                None,
                Some(body.clone()),
                &[
                    ("authorization", authorization.as_str()),
                    ("idempotency-key", "spelled"),
                ],
            )
            .await;
        assert_eq!(r.status, 201, "{authorization:?}: {}", r.body);
        if i == 0 {
            first_id = r.body["id"].clone();
        } else {
            assert_eq!(r.body["id"], first_id, "{authorization:?} replays");
            assert_eq!(
                r.headers["idempotent-replayed"], "true",
                "{authorization:?}"
            );
        }
    }
    assert_eq!(licenses_of(app, &key, &policy).await, 1);
}

on_both_engines!(a_claim_in_progress_is_answered_409_and_a_stale_one_taken_over);

async fn a_claim_in_progress_is_answered_409_and_a_stale_one_taken_over(app: &TestApp) {
    let key = app.account("Claims").await;
    let policy = app.policy(&key, json!({})).await;
    let store = keygate_store::connect(&app.database_url).await.unwrap();
    let who = store.authenticate(&key).await.unwrap().unwrap();
    let body = json!({"policy_id": policy}).to_string();
    // The hash the server computes: method, path, body.
    let mut hasher = Sha256::new();
    hasher.update(b"POST /v1/licenses\n");
    hasher.update(body.as_bytes());
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let send = |idem: &'static str| {
        let body = Value::String(body.clone());
        let key = key.clone();
        async move {
            app.send(
                "POST",
                "/v1/licenses",
                Some(&key),
                Some(body),
                &[("idempotency-key", idem)],
            )
            .await
        }
    };
    // A request holding the key right now (claimed a moment ago, not answered).
    let claim = store
        .claim_idempotency_key(
            &who.account_id,
            "held",
            &hash,
            Timestamp::now().plus_seconds(-300),
        )
        .await
        .unwrap();
    assert!(matches!(claim, IdempotencyClaim::Claimed));
    let busy = send("held").await;
    assert_eq!((busy.status, busy.code()), (409, "IDEMPOTENCY_IN_PROGRESS"));
    assert_eq!(licenses_of(app, &key, &policy).await, 0);
    // A claim whose process died long ago is taken over by the retry.
    let stale = store
        .claim_idempotency_key(
            &who.account_id,
            "orphan",
            &hash,
            Timestamp::now().plus_seconds(-300),
        )
        .await
        .unwrap();
    assert!(matches!(stale, IdempotencyClaim::Claimed));
    let in_future = store
        .claim_idempotency_key(
            &who.account_id,
            "orphan",
            &hash,
            Timestamp::now().plus_seconds(3600),
        )
        .await
        .unwrap();
    assert!(
        matches!(in_future, IdempotencyClaim::Claimed),
        "a claim older than the staleness limit is taken over"
    );
    // The server's limit is minutes: the orphan just taken over is held, not stale.
    let retried = send("orphan").await;
    assert_eq!(retried.status, 409);
    // Released (as after a server error), the key runs the request again.
    store
        .release_idempotency_key(&who.account_id, "orphan")
        .await
        .unwrap();
    let ran = send("orphan").await;
    assert_eq!(ran.status, 201, "{}", ran.body);
    assert_eq!(licenses_of(app, &key, &policy).await, 1);
}
