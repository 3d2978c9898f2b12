//! The billing gateway: integrations, the webhook endpoint, the inbox, subscriptions.
use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use keygate_domain::Timestamp;
use keygate_store::gateway::{
    EventFilter, InboxStatus, Integration, IntegrationWrite, Mapping, NewWebhookEvent,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/integrations", "Connect a payment platform", create)
            .tag("gateway")
            .body("IntegrationInput")
            .returns(201, "Integration"),
        Route::get("/v1/integrations", "List integrations", list)
            .tag("gateway")
            .returns(200, "IntegrationList"),
        Route::get(
            "/v1/integrations/{id}",
            "Get an integration (never its secrets)",
            read,
        )
        .tag("gateway")
        .returns(200, "Integration"),
        Route::patch(
            "/v1/integrations/{id}",
            "Change an integration: name, secrets (rotation), options, mappings",
            update,
        )
        .tag("gateway")
        .body("IntegrationPatch")
        .returns(200, "Integration"),
        Route::get(
            "/v1/integrations/{id}/failures",
            "Refused deliveries (bad signature, stale timestamp, ...), newest first, the last 100",
            failures,
        )
        .tag("gateway")
        .returns(200, "WebhookFailureList"),
        Route::post(
            "/v1/webhooks/{provider}/{integration_id}",
            "A payment platform's webhook (raw body, verified by the platform's scheme)",
            webhook,
        )
        .tag("gateway")
        .public()
        .returns(200, "WebhookReceipt"),
        Route::get("/v1/events", "The webhook inbox", list_events)
            .tag("gateway")
            .query(&[
                ("integration_id", "only this integration's events"),
                ("status", "pending, applied, ignored or failed"),
                ("type", "the platform's event type or Keygate's kind"),
                PAGE_QUERY[0],
                PAGE_QUERY[1],
            ])
            .returns(200, "WebhookEventList"),
        Route::get(
            "/v1/events/{id}",
            "One inbox event, with its raw payload, actions and error",
            read_event,
        )
        .tag("gateway")
        .returns(200, "WebhookEvent"),
        Route::post(
            "/v1/events/{id}/replay",
            "Apply an event again (e.g. after adding a missing mapping)",
            replay,
        )
        .tag("gateway")
        .returns(200, "WebhookEvent"),
        Route::get(
            "/v1/subscriptions",
            "Platform subscriptions as Keygate knows them",
            list_subscriptions,
        )
        .tag("gateway")
        .query(&PAGE_QUERY)
        .returns(200, "SubscriptionList"),
        Route::get(
            "/v1/subscriptions/{id}",
            "One platform subscription",
            read_subscription,
        )
        .tag("gateway")
        .returns(200, "Subscription"),
    ]
}

/// The URL to configure on the platform's side.
pub fn webhook_url(state: &AppState, integration: &Integration) -> String {
    let base = state
        .config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.bind));
    format!(
        "{}/v1/webhooks/{}/{}",
        base.trim_end_matches('/'),
        integration.provider,
        integration.id
    )
}

fn shown(state: &AppState, integration: &Integration) -> Value {
    let mut v = serde_json::to_value(integration).unwrap_or_default();
    v["webhook_url"] = json!(webhook_url(state, integration));
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingInput {
    external_id: String,
    policy_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationInput {
    provider: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    mappings: Vec<MappingInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationPatch {
    #[serde(default)]
    name: Option<String>,
    /// Replaces the secrets: list the old and the new one during a rotation.
    #[serde(default)]
    secrets: Option<Vec<String>>,
    #[serde(default)]
    options: Option<Value>,
    #[serde(default)]
    mappings: Option<Vec<MappingInput>>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Options Keygate reads, checked; the platform-specific rest is kept as given.
fn check_options(options: &Value) -> ApiResult<()> {
    let Some(map) = options.as_object() else {
        return Err(invalid("INVALID_FIELD", "`options` must be a JSON object"));
    };
    if let Some(r) = map.get("renewal")
        && !matches!(r.as_str(), Some("extend" | "new_license"))
    {
        return Err(invalid(
            "INVALID_FIELD",
            "`options.renewal` must be `extend` or `new_license`",
        ));
    }
    if let Some(g) = map.get("grace_seconds")
        && g.as_i64().is_none_or(|g| g < 0)
    {
        return Err(invalid(
            "INVALID_FIELD",
            "`options.grace_seconds` must be a number of seconds",
        ));
    }
    for secret in ["password", "secret", "api_key", "secrets"] {
        if map.contains_key(secret) {
            return Err(invalid(
                "SECRET_IN_OPTIONS",
                format!(
                    "`options.{secret}` would be stored in clear and shown: put credentials in `secrets` (Chargebee: \"username:password\")"
                ),
            ));
        }
    }
    Ok(())
}

fn seal_secrets(state: &AppState, secrets: &[String]) -> (String, i64) {
    let usable: Vec<&String> = secrets.iter().filter(|s| !s.trim().is_empty()).collect();
    (
        state
            .signer
            .seal_text(&serde_json::to_string(&usable).unwrap_or_default()),
        usable.len() as i64,
    )
}

fn mappings(input: Vec<MappingInput>) -> Vec<Mapping> {
    input
        .into_iter()
        .map(|m| Mapping {
            external_id: m.external_id,
            policy_id: m.policy_id,
        })
        .collect()
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<IntegrationInput>,
) -> ApiResult<impl IntoResponse> {
    if keygate_billing::provider(&input.provider).is_none() {
        return Err(invalid(
            "UNKNOWN_PROVIDER",
            format!(
                "no provider `{}`: use one of {}",
                input.provider,
                keygate_billing::PROVIDER_NAMES.join(", ")
            ),
        ));
    }
    let options = input.options.unwrap_or_else(|| json!({}));
    check_options(&options)?;
    let integration = state
        .store
        .create_integration(
            &who,
            IntegrationWrite {
                name: input.name.unwrap_or_else(|| input.provider.clone()),
                provider: input.provider,
                sealed_secrets: Some(seal_secrets(&state, &input.secrets)),
                options,
                mappings: Some(mappings(input.mappings)),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(shown(&state, &integration))))
}

async fn list(Admin(who): Admin, State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let all = state.store.list_integrations(&who.account_id).await?;
    let data: Vec<Value> = all.iter().map(|i| shown(&state, i)).collect();
    Ok(axum::Json(json!({"data": data, "next_cursor": null})))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let integration = state.store.get_integration(&who.account_id, &id).await?;
    Ok(axum::Json(shown(&state, &integration)))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<IntegrationPatch>,
) -> ApiResult<impl IntoResponse> {
    let current = state.store.get_integration(&who.account_id, &id).await?;
    let options = patch.options.unwrap_or(current.options);
    check_options(&options)?;
    let integration = state
        .store
        .update_integration(
            &who,
            &id,
            IntegrationWrite {
                provider: current.provider,
                name: patch.name.unwrap_or(current.name),
                sealed_secrets: patch.secrets.map(|s| seal_secrets(&state, &s)),
                options,
                mappings: patch.mappings.map(mappings),
            },
        )
        .await?;
    Ok(axum::Json(shown(&state, &integration)))
}

async fn failures(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let data = state
        .store
        .list_webhook_failures(&who.account_id, &id)
        .await?;
    Ok(axum::Json(json!({"data": data, "next_cursor": null})))
}

/// Verify → parse → store (durable, de-duplicated) → apply. 2xx only once stored.
async fn webhook(
    State(state): State<AppState>,
    Path((provider_name, integration_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let unknown = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "INTEGRATION_NOT_FOUND",
            "no integration of this provider has this id",
        )
    };
    let provider = keygate_billing::provider(&provider_name).ok_or_else(unknown)?;
    let (integration, sealed) = state
        .store
        .integration_for_webhook(&integration_id)
        .await?
        .ok_or_else(unknown)?;
    if integration.provider != provider_name {
        return Err(unknown());
    }
    let secrets: Vec<String> = if sealed.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&state.signer.open_text(&sealed)?).unwrap_or_default()
    };
    let mut platform_headers = keygate_billing::Headers::new();
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            platform_headers.insert(name.as_str(), v);
        }
    }
    let secrets = keygate_billing::Secrets::new(secrets).with_options(integration.options.clone());
    let now = Timestamp::now();
    let events = match keygate_billing::receive(provider, &platform_headers, &body, &secrets, now) {
        Ok(events) => events,
        Err(e) => {
            // Nothing enters the inbox; the attempt goes to the bounded failure log.
            if let Err(log_error) = state
                .store
                .record_webhook_failure(&integration, e.code(), &e.to_string())
                .await
            {
                tracing::warn!(error = %log_error, "could not record a refused webhook");
            }
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return Err(ApiError::new(status, e.code(), e.to_string()));
        }
    };
    let raw = String::from_utf8_lossy(&body).into_owned();
    let mut receipts = Vec::new();
    for event in events {
        let ignored = event.kind == keygate_domain::billing::BillingEventKind::Ignored;
        let inserted = state
            .store
            .receive_event(
                &integration,
                NewWebhookEvent {
                    provider_event_id: event.event_id.clone(),
                    event_type: event.event_type.clone(),
                    kind: event.kind.as_str().to_string(),
                    occurred_at: event.occurred_at,
                    raw_body: raw.clone(),
                    normalized: serde_json::to_value(&event).unwrap_or_default(),
                    verified: true,
                    status: if ignored {
                        InboxStatus::Ignored
                    } else {
                        InboxStatus::Pending
                    },
                },
            )
            .await?;
        let status = inserted.status;
        receipts.push(json!({
            "id": inserted.id,
            "provider_event_id": event.event_id,
            "type": event.event_type,
            "status": status,
            "duplicate": !inserted.new,
        }));
    }
    // A batch (FastSpring) where only some events applied: 202 with what was processed.
    let failed = receipts.iter().filter(|r| r["status"] == "failed").count();
    let status = if failed > 0 && failed < receipts.len() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let processed: Vec<&Value> = receipts
        .iter()
        .filter(|r| r["status"] != "failed")
        .map(|r| &r["provider_event_id"])
        .collect();
    Ok((
        status,
        axum::Json(json!({"received": receipts.len(), "processed": processed, "events": receipts})),
    ))
}

#[derive(Deserialize)]
struct EventQuery {
    integration_id: Option<String>,
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_events(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    }
    .page();
    let filter = EventFilter {
        integration_id: q.integration_id,
        status: q.status,
        event_type: q.event_type,
    };
    Ok(axum::Json(
        state
            .store
            .list_events(&who.account_id, filter, page)
            .await?,
    ))
}

async fn read_event(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_event(&who.account_id, &id).await?,
    ))
}

async fn replay(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let event = state.store.get_event(&who.account_id, &id).await?;
    if event.status == "ignored" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "EVENT_IGNORED",
            "Keygate does not act on this event type",
        ));
    }
    crate::gateway::apply(&state, &who.account_id, &id).await;
    Ok(axum::Json(
        state.store.get_event(&who.account_id, &id).await?,
    ))
}

async fn list_subscriptions(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .list_subscriptions(&who.account_id, q.page())
            .await?,
    ))
}

async fn read_subscription(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_subscription(&who.account_id, &id).await?,
    ))
}
