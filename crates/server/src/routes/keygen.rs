//! Remote key generation (`keygate_billing::keygen`): a shop calls this during checkout and
//! shows the buyer the keys answered. One handler for every shop that offers it: the platform's
//! [`KeyGenerator`](keygate_billing::keygen::KeyGenerator) verifies the call and says which
//! order line it is; the call is stored and applied as an `order_paid` inbox event in one
//! transaction (so a repeated call is a duplicate and answers the same keys, and a refund
//! webhook naming the order revokes them); the keys are read back and written in the shop's
//! format.
use super::Route;
use super::gateway::{answer, platform_headers, refuse, unknown_integration, webhook_integration};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorCode};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use keygate_domain::Timestamp;
use keygate_store::gateway::{InboxStatus, Integration, NewWebhookEvent};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/keygen/{provider}/{integration_id}",
            "Remote key generation during a shop's checkout (MyCommerce, FastSpring's remote license generator): the keys, in the shop's format",
            keygen,
        )
        .tag("gateway")
        .public(),
    ]
}

/// The URL to give the shop, for the platforms that call one (MyCommerce: add `?token=` and
/// one of the integration's secrets).
pub fn keygen_url(state: &AppState, integration: &Integration) -> Option<String> {
    keygate_billing::provider(&integration.provider)?.keygen()?;
    let webhook = super::gateway::webhook_url(state, integration);
    Some(webhook.replacen("/v1/webhooks/", "/v1/keygen/", 1))
}

fn not_configured(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::KeygenNotConfigured, message)
}

async fn keygen(
    State(state): State<AppState>,
    Path((provider_name, integration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let provider = keygate_billing::provider(&provider_name).ok_or_else(unknown_integration)?;
    let generator = provider
        .keygen()
        .ok_or_else(|| not_configured(format!("`{provider_name}` has no remote key generation")))?;
    let (integration, secrets) =
        webhook_integration(&state, &provider_name, &integration_id).await?;
    let layout = generator
        .layout(&secrets)
        .map_err(|e| not_configured(e.to_string()))?;
    let platform_headers = platform_headers(&headers);
    let query = query.unwrap_or_default();
    let request = keygate_billing::Request {
        query: &query,
        ..keygate_billing::Request::post(&platform_headers, &body)
    };
    let now = Timestamp::now();
    let order = match generator
        .verify(&request, &secrets, now)
        .and_then(|()| generator.order(&request))
    {
        Ok(order) => order,
        Err(e) => return Err(refuse(&state, &integration, e).await),
    };
    // Checked before anything is stored: the shop shows the buyer an error now, and its retry
    // after the vendor adds the mapping issues the keys.
    if !integration
        .mappings
        .iter()
        .any(|m| m.external_id == order.product)
    {
        return Err(ApiError::new(
            ErrorCode::NoMapping,
            format!(
                "no mapping for the product `{}`: add one to the integration (external_id = the shop's product id), then the shop's retry issues the keys",
                order.product
            ),
        ));
    }
    let event = order.event(provider.name(), layout, now);
    let (mut events, raw) = crate::text_guard::scrub_webhook(vec![event], &body);
    let Some(event) = events.pop() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "the call read as no event",
        ));
    };
    let inserted = state
        .store
        .receive_event(
            &integration,
            NewWebhookEvent {
                provider_event_id: event.event_id.clone(),
                event_type: event.event_type.clone(),
                kind: event.kind.as_str().to_string(),
                occurred_at: event.occurred_at,
                raw_body: raw,
                normalized: serde_json::to_value(&event).unwrap_or_default(),
                verified: true,
                status: InboxStatus::Pending,
            },
        )
        .await?;
    match inserted.status {
        InboxStatus::Applied => {}
        InboxStatus::Failed => {
            let stored = state
                .store
                .get_event(&integration.account_id, &inserted.id)
                .await?;
            let error = stored.error.unwrap_or(keygate_store::gateway::EventError {
                code: "INVALID_FIELD".into(),
                message: "the order could not be applied".into(),
            });
            return Err(ApiError::new(
                ErrorCode::parse(&error.code).unwrap_or(ErrorCode::InvalidField),
                format!(
                    "{} (inbox event {}: fix it, replay the event, and the shop's retry answers the keys)",
                    error.message, inserted.id
                ),
            ));
        }
        // Stored but not applied (a transient database error): the worker applies it; the
        // shop's retry then answers the keys.
        InboxStatus::Pending | InboxStatus::Ignored => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the order is stored but its keys are not issued yet: retry",
            ));
        }
    }
    let keys = state
        .store
        .order_license_keys(&integration, &order.order, &order.product)
        .await?;
    if keys.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the order's keys are not issued yet: retry",
        ));
    }
    Ok(answer(generator.answer(&keys)))
}
