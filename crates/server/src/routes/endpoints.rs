//! Outbound webhook endpoints of the vendor, their secrets and their delivery logs.
use super::{PAGE_QUERY, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::outbound::{self, http};
use crate::signing::{Purpose, Scope};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keygate_domain::Timestamp;
use keygate_store::outbound::{EndpointPatch, EndpointWrite, WebhookEndpoint};
use keygate_store::{PageRequest, nullable};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/endpoints",
            "Add an outbound webhook endpoint (its whsec_ secret is shown only in this answer)",
            create,
        )
        .tag("webhooks")
        .body("EndpointInput")
        .returns(201, "EndpointCreated"),
        Route::get("/v1/endpoints", "List outbound webhook endpoints", list)
            .tag("webhooks")
            .query(&PAGE_QUERY)
            .returns(200, "EndpointList"),
        Route::get("/v1/endpoints/{id}", "Get an endpoint (never its secret)", read)
            .tag("webhooks")
            .returns(200, "Endpoint"),
        Route::patch(
            "/v1/endpoints/{id}",
            "Change an endpoint: url, event_types, description, enabled (enabling clears the disabled reason)",
            update,
        )
        .tag("webhooks")
        .body("EndpointPatch")
        .returns(200, "Endpoint"),
        Route::delete(
            "/v1/endpoints/{id}",
            "Delete an endpoint and its delivery log",
            remove,
        )
        .tag("webhooks")
        .no_content(),
        Route::post(
            "/v1/endpoints/{id}/rotate-secret",
            "New secret (shown once); the old one keeps signing for 24 h",
            rotate,
        )
        .tag("webhooks")
        .returns(200, "EndpointCreated"),
        Route::get(
            "/v1/endpoints/{id}/deliveries",
            "The endpoint's deliveries, newest first, with every attempt",
            deliveries,
        )
        .tag("webhooks")
        .query(&[
            ("status", "pending, succeeded or failed"),
            PAGE_QUERY[0],
            PAGE_QUERY[1],
        ])
        .returns(200, "DeliveryList"),
        Route::post(
            "/v1/endpoints/{id}/deliveries/{delivery_id}/retry",
            "Attempt a delivery again now (also a failed or succeeded one)",
            retry,
        )
        .tag("webhooks")
        .returns(200, "Delivery"),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointInput {
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointPatchInput {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
}

/// A URL Keygate may post to: http(s), no credentials, and (unless the operator allows private
/// addresses) no host that is or resolves only to a private, loopback or link-local address,
/// read exactly as delivery reads it ([`http::check_destination`]). Names are checked again at
/// every delivery, on the addresses they resolve to then.
async fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    let url = url.trim();
    http::check_destination(url, state.config.outbound_allow_private)
        .await
        .map_err(|e| {
            let code = match e {
                http::SendError::PrivateAddress(_) => ErrorCode::PrivateAddress,
                _ => ErrorCode::InvalidUrl,
            };
            ApiError::new(code, e.to_string())
        })?;
    crate::secret_guard::refuse_secret_in_text("url", url)?;
    Ok(url.to_string())
}

/// Where an endpoint's secrets are sealed: its account, one purpose for the current and the
/// previous secret (a rotation moves the sealed value from one column to the other).
pub fn endpoint_scope(account_id: &str) -> Scope<'_> {
    Scope::new(account_id, Purpose::EndpointSecret)
}

fn with_secret(endpoint: &WebhookEndpoint, secret: &str) -> Value {
    let mut v = serde_json::to_value(endpoint).unwrap_or_default();
    v["secret"] = json!(secret);
    v
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<EndpointInput>,
) -> ApiResult<impl IntoResponse> {
    let url = check_url(&state, &input.url).await?;
    if let Some(d) = &input.description {
        crate::secret_guard::refuse_secret_in_text("description", d)?;
    }
    let secret = outbound::generate_secret();
    let endpoint = state
        .store
        .create_endpoint(
            &who,
            EndpointWrite {
                url,
                description: input.description,
                event_types: input.event_types,
                enabled: input.enabled,
                sealed_secret: state
                    .signer
                    .seal_text(&endpoint_scope(&who.account_id), &secret),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(with_secret(&endpoint, &secret)),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.cursor, q.limit);
    Ok(axum::Json(
        state.store.list_endpoints(&who.account_id, page).await?,
    ))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_endpoint(&who.account_id, &id).await?,
    ))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<EndpointPatchInput>,
) -> ApiResult<impl IntoResponse> {
    let url = match patch.url.as_deref() {
        Some(u) => Some(check_url(&state, u).await?),
        None => None,
    };
    if let Some(Some(d)) = &patch.description {
        crate::secret_guard::refuse_secret_in_text("description", d)?;
    }
    let endpoint = state
        .store
        .update_endpoint(
            &who,
            &id,
            EndpointPatch {
                url,
                description: patch.description,
                event_types: patch.event_types,
                enabled: patch.enabled,
            },
        )
        .await?;
    Ok(axum::Json(endpoint))
}

async fn remove(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    state.store.delete_endpoint(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let secret = outbound::generate_secret();
    let endpoint = state
        .store
        .rotate_endpoint_secret(
            &who,
            &id,
            state
                .signer
                .seal_text(&endpoint_scope(&who.account_id), &secret),
            Timestamp::now().plus_seconds(outbound::PREVIOUS_SECRET_SECONDS),
        )
        .await?;
    Ok(axum::Json(with_secret(&endpoint, &secret)))
}

#[derive(Deserialize)]
struct DeliveryQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageRequest::new(q.cursor, q.limit);
    Ok(axum::Json(
        state
            .store
            .list_deliveries(&who.account_id, &id, q.status, page)
            .await?,
    ))
}

async fn retry(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state
            .store
            .retry_delivery(&who.account_id, &id, &delivery_id)
            .await?,
    ))
}
