//! The billing gateway: integrations, the webhook endpoint, the inbox, subscriptions.
use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::signing::{Purpose, Scope};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keygate_domain::Timestamp;
use keygate_store::gateway::{
    EventFilter, InboxStatus, Integration, IntegrationWrite, Mapping, NewWebhookEvent,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

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
        webhook_route(),
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

/// The platform's endpoint. GETs reach the platform too (challenges); they are not in the
/// OpenAPI document because no platform registered today answers them with anything but 405.
fn webhook_route() -> Route {
    let mut route = Route::post(
        "/v1/webhooks/{provider}/{integration_id}",
        "A payment platform's webhook (raw body, verified by the platform's scheme)",
        webhook,
    )
    .tag("gateway")
    .public()
    .returns(200, "WebhookReceipt");
    route.handler = route.handler.get(webhook_get);
    route
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
    if let Some(url) = super::keygen::keygen_url(state, integration) {
        v["keygen_url"] = json!(url);
    }
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
    /// Platform API credentials by name (sealed; answers show only the names set).
    #[serde(default)]
    api_credentials: Option<BTreeMap<String, String>>,
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
    /// Replaces the API credentials (`{}` removes them).
    #[serde(default)]
    api_credentials: Option<BTreeMap<String, String>>,
}

fn invalid(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

/// Options Keygate reads, checked; the platform-specific rest is kept as given.
fn check_options(options: &Value) -> ApiResult<()> {
    let Some(map) = options.as_object() else {
        return Err(invalid(
            ErrorCode::InvalidField,
            "`options` must be a JSON object",
        ));
    };
    if let Some(r) = map.get("renewal")
        && !matches!(r.as_str(), Some("extend" | "new_license"))
    {
        return Err(invalid(
            ErrorCode::InvalidField,
            "`options.renewal` must be `extend` or `new_license`",
        ));
    }
    if let Some(r) = map.get("refunds")
        && !matches!(r.as_str(), Some("full" | "any" | "never"))
    {
        return Err(invalid(
            ErrorCode::InvalidField,
            "`options.refunds` must be `full`, `any` or `never`",
        ));
    }
    if let Some(g) = map.get("grace_seconds")
        && g.as_i64().is_none_or(|g| g < 0)
    {
        return Err(invalid(
            ErrorCode::InvalidField,
            "`options.grace_seconds` must be a number of seconds",
        ));
    }
    crate::secret_guard::refuse_credentials_in_options(options)
}

/// The platform's own check of its secrets and options: 422 with the code naming what is
/// wrong, rather than a refused delivery later.
fn check_platform_settings(
    provider: &dyn keygate_billing::Provider,
    secrets: &[String],
    options: &Value,
) -> ApiResult<()> {
    let secrets =
        keygate_billing::Secrets::new(secrets.iter().cloned()).with_options(options.clone());
    provider
        .check_config(&secrets, Timestamp::now())
        .map_err(|e| ApiError::settings_refused(e.code(), e.to_string()))
}

/// An integration's secrets, unsealed (empty when none are stored).
async fn stored_secrets(state: &AppState, integration_id: &str) -> ApiResult<Vec<String>> {
    let Some((integration, sealed)) = state.store.integration_for_webhook(integration_id).await?
    else {
        return Ok(Vec::new());
    };
    open_secrets(state, &integration.account_id, &sealed)
}

fn open_secrets(state: &AppState, account_id: &str, sealed: &str) -> ApiResult<Vec<String>> {
    if sealed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(
        serde_json::from_str(&state.signer.open_text(&secrets_scope(account_id), sealed)?)
            .unwrap_or_default(),
    )
}

/// `api_credentials` as the platform names them (`keygate_billing::api::CREDENTIAL_NAMES`),
/// sealed like the secrets; the names set are kept in clear to be shown.
fn seal_api_credentials(
    state: &AppState,
    account_id: &str,
    provider: &str,
    credentials: &BTreeMap<String, String>,
) -> ApiResult<(String, Vec<String>)> {
    let allowed = keygate_billing::api::credential_names(provider);
    for (name, value) in credentials {
        if !allowed.contains(&name.as_str()) {
            let expected = if allowed.is_empty() {
                format!("`{provider}` takes no API credentials")
            } else {
                format!("`{provider}` takes {}", allowed.join(", "))
            };
            return Err(invalid(
                ErrorCode::UnknownApiCredential,
                format!("`api_credentials.{name}`: {expected}"),
            ));
        }
        if value.trim().is_empty() {
            return Err(invalid(
                ErrorCode::InvalidField,
                format!("`api_credentials.{name}` is empty"),
            ));
        }
    }
    if credentials.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let sealed = state.signer.seal_text(
        &Scope::new(account_id, Purpose::ApiCredentials),
        &serde_json::to_string(credentials).unwrap_or_default(),
    );
    Ok((sealed, credentials.keys().cloned().collect()))
}

/// `options.api_base_url`: https, or loopback http when private addresses are allowed.
fn check_api_base_url(state: &AppState, options: &Value) -> ApiResult<()> {
    let Some(url) = options.get("api_base_url") else {
        return Ok(());
    };
    let Some(url) = url.as_str() else {
        return Err(invalid(
            ErrorCode::OptionInvalid,
            "`options.api_base_url` must be a URL",
        ));
    };
    keygate_billing::api::check_api_base_url(url, state.config.outbound_allow_private)
        .map_err(|e| invalid(e.code(), e.to_string()))
}

fn secrets_scope(account_id: &str) -> Scope<'_> {
    Scope::new(account_id, Purpose::IntegrationSecrets)
}

fn seal_secrets(state: &AppState, account_id: &str, secrets: &[String]) -> (String, i64) {
    let usable: Vec<&String> = secrets.iter().filter(|s| !s.trim().is_empty()).collect();
    (
        state.signer.seal_text(
            &secrets_scope(account_id),
            &serde_json::to_string(&usable).unwrap_or_default(),
        ),
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
    let Some(provider) = keygate_billing::provider(&input.provider) else {
        return Err(invalid(
            ErrorCode::UnknownProvider,
            format!(
                "no provider `{}`: use one of {}",
                input.provider,
                keygate_billing::names().join(", ")
            ),
        ));
    };
    let options = input.options.unwrap_or_else(|| json!({}));
    check_options(&options)?;
    check_api_base_url(&state, &options)?;
    check_platform_settings(provider, &input.secrets, &options)?;
    let sealed_api_credentials = input
        .api_credentials
        .as_ref()
        .map(|c| seal_api_credentials(&state, &who.account_id, &input.provider, c))
        .transpose()?;
    let integration = state
        .store
        .create_integration(
            &who,
            IntegrationWrite {
                name: input.name.unwrap_or_else(|| input.provider.clone()),
                provider: input.provider,
                sealed_secrets: Some(seal_secrets(&state, &who.account_id, &input.secrets)),
                sealed_api_credentials,
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
    let settings_changed = patch.secrets.is_some() || patch.options.is_some();
    let options = patch.options.unwrap_or(current.options);
    check_options(&options)?;
    check_api_base_url(&state, &options)?;
    let sealed_api_credentials = patch
        .api_credentials
        .as_ref()
        .map(|c| seal_api_credentials(&state, &who.account_id, &current.provider, c))
        .transpose()?;
    // Only a change of secrets or options is checked, so a mapping change never fails on
    // settings stored before these checks existed.
    if settings_changed && let Some(provider) = keygate_billing::provider(&current.provider) {
        let secrets = match &patch.secrets {
            Some(secrets) => secrets.clone(),
            None => stored_secrets(&state, &id).await?,
        };
        check_platform_settings(provider, &secrets, &options)?;
    }
    let integration = state
        .store
        .update_integration(
            &who,
            &id,
            IntegrationWrite {
                provider: current.provider,
                name: patch.name.unwrap_or(current.name),
                sealed_secrets: patch
                    .secrets
                    .map(|s| seal_secrets(&state, &who.account_id, &s)),
                sealed_api_credentials,
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
    let data = crate::failure_log::list(&state, &who.account_id, &id).await?;
    Ok(axum::Json(json!({"data": data, "next_cursor": null})))
}

pub(crate) fn unknown_integration() -> ApiError {
    ApiError::new(
        ErrorCode::IntegrationNotFound,
        "no integration of this provider has this id",
    )
}

/// The integration a webhook URL names, with its verification material.
pub(crate) async fn webhook_integration(
    state: &AppState,
    provider_name: &str,
    integration_id: &str,
) -> ApiResult<(Integration, keygate_billing::Secrets)> {
    let (integration, sealed) = state
        .store
        .integration_for_webhook(integration_id)
        .await?
        .ok_or_else(unknown_integration)?;
    if integration.provider != provider_name {
        return Err(unknown_integration());
    }
    let secrets =
        keygate_billing::Secrets::new(open_secrets(state, &integration.account_id, &sealed)?)
            .with_options(integration.options.clone());
    Ok((integration, secrets))
}

pub(crate) fn platform_headers(headers: &HeaderMap) -> keygate_billing::Headers {
    let mut platform_headers = keygate_billing::Headers::new();
    for (name, value) in headers {
        if let Ok(v) = value.to_str() {
            platform_headers.insert(name.as_str(), v);
        }
    }
    platform_headers
}

pub(crate) fn answer(ack: keygate_billing::Ack) -> Response {
    let status = StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, ack.content_type)], ack.body).into_response()
}

/// A refusal: nothing enters the inbox; the attempt goes to the failure log, in memory first.
pub(crate) async fn refuse(
    state: &AppState,
    integration: &Integration,
    e: keygate_billing::BillingError,
) -> ApiError {
    state.metrics.record_webhook_refusal(e.code());
    state
        .failure_log
        .record(integration, e.code(), &e.to_string());
    ApiError::new(e.code(), e.to_string())
}

/// Verify → parse → store (durable, de-duplicated) → apply → the platform's acknowledgement.
/// 2xx only once stored.
async fn webhook(
    State(state): State<AppState>,
    Path((provider_name, integration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let provider = keygate_billing::provider(&provider_name).ok_or_else(unknown_integration)?;
    let (integration, secrets) =
        webhook_integration(&state, &provider_name, &integration_id).await?;
    let platform_headers = platform_headers(&headers);
    let query = query.unwrap_or_default();
    let request = keygate_billing::Request {
        query: &query,
        ..keygate_billing::Request::post(&platform_headers, &body)
    };
    let now = Timestamp::now();
    let events = match keygate_billing::receive_request(provider, &request, &secrets, now) {
        Ok(events) => events,
        Err(e) => return Err(refuse(&state, &integration, e).await),
    };
    let (events, raw) = crate::text_guard::scrub_webhook(events, &body);
    let mut receipts = Vec::new();
    for event in events {
        let ignored = event.kind == keygate_domain::billing::BillingEventKind::Ignored;
        let new_event = NewWebhookEvent {
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
        };
        let inserted = if !ignored && !event.needs_fetch.is_empty() {
            // Too thin to apply: stored first (so a slow platform API loses nothing), then
            // completed from the API and applied, or left for the worker or a replay.
            let mut inserted = state.store.insert_event(&integration, new_event).await?;
            if inserted.new {
                inserted.status =
                    crate::gateway::apply(&state, &integration.account_id, &inserted.id).await;
            }
            inserted
        } else {
            state.store.receive_event(&integration, new_event).await?
        };
        receipts.push(keygate_billing::Receipt {
            id: inserted.id,
            provider_event_id: event.event_id,
            event_type: event.event_type,
            status: inserted.status.to_string(),
            duplicate: !inserted.new,
        });
    }
    Ok(answer(provider.acknowledge(&request, &receipts)))
}

/// A GET on the webhook URL: the platform's challenge (Braintree), or, for the platforms that
/// send none, what any POST-only endpoint answers (405, `Allow: POST`).
async fn webhook_get(
    State(state): State<AppState>,
    Path((provider_name, integration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let Some(provider) = keygate_billing::provider(&provider_name).filter(|p| p.answers_get())
    else {
        return Ok((StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response());
    };
    let (integration, secrets) =
        webhook_integration(&state, &provider_name, &integration_id).await?;
    let platform_headers = platform_headers(&headers);
    let query = query.unwrap_or_default();
    let request = keygate_billing::Request::get(&platform_headers, &query);
    match provider.challenge(&request, &secrets) {
        Ok(ack) => Ok(answer(ack)),
        Err(e) => Err(refuse(&state, &integration, e).await),
    }
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
            ErrorCode::EventIgnored,
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
