//! Operations: liveness, readiness, metrics, the OpenAPI document.
use super::Route;
use crate::app::AppState;
use crate::error::{ApiError, ErrorCode};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use keygate_domain::credentials::secrets_equal;
use serde_json::json;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/healthz", "Liveness: the process answers", healthz)
            .tag("operations")
            .public()
            .returns(200, "Health"),
        Route::get("/readyz", "Readiness: the database answers", readyz)
            .tag("operations")
            .public()
            .returns(200, "Health"),
        Route::get("/metrics", "Prometheus metrics", metrics)
            .tag("operations")
            .public(),
        Route::get("/openapi.json", "This OpenAPI document", openapi)
            .tag("operations")
            .public(),
    ]
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok(axum::Json(
            json!({"status": "ok", "database": state.store.engine()}),
        )),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(
                ErrorCode::DatabaseUnavailable,
                "the database does not answer",
            ))
        }
    }
}

/// Public unless `KEYGATE_METRICS_TOKEN` is set (then `Authorization: Bearer <token>`).
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = state
        .config
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        if !secrets_equal(sent, token) {
            return Err(ApiError::new(
                ErrorCode::InvalidMetricsToken,
                "send `Authorization: Bearer <KEYGATE_METRICS_TOKEN>`",
            ));
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    ))
}

async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
}
