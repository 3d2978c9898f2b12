//! Accounts (operator) and API keys (admin).
use super::Route;
use crate::app::AppState;
use crate::auth::{Admin, Operator};
use crate::error::ApiResult;
use crate::extract::ApiJson;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post(
            "/v1/accounts",
            "Create an account and its first API key (operator)",
            create_account,
        )
        .tag("accounts")
        .root()
        .body("AccountInput")
        .returns(201, "AccountCreated"),
        Route::get(
            "/v1/account",
            "The account of the calling API key",
            current_account,
        )
        .tag("accounts")
        .returns(200, "Account"),
        Route::post(
            "/v1/api-keys",
            "Create another API key (shown once)",
            create_key,
        )
        .tag("accounts")
        .body("ApiKeyInput")
        .returns(201, "ApiKeyCreated"),
        Route::get("/v1/api-keys", "List the account's API keys", list_keys)
            .tag("accounts")
            .returns(200, "ApiKeyList"),
        Route::post("/v1/api-keys/{id}/revoke", "Revoke an API key", revoke_key)
            .tag("accounts")
            .returns(200, "ApiKey"),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountInput {
    name: String,
}

async fn create_account(
    _: Operator,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<AccountInput>,
) -> ApiResult<impl IntoResponse> {
    let (account, _key, secret) = state.store.create_account(&input.name).await?;
    state.signer.key_for(&*state.store, &account.id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"account": account, "api_key": secret})),
    ))
}

async fn current_account(
    Admin(who): Admin,
    State(state): State<AppState>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(state.store.get_account(&who.account_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    name: String,
}

async fn create_key(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<KeyInput>,
) -> ApiResult<impl IntoResponse> {
    let (key, secret) = state.store.create_api_key(&who, &input.name).await?;
    let mut body = serde_json::to_value(&key).unwrap_or_default();
    body["api_key"] = json!(secret);
    Ok((StatusCode::CREATED, axum::Json(body)))
}

async fn list_keys(
    Admin(who): Admin,
    State(state): State<AppState>,
) -> ApiResult<impl IntoResponse> {
    let keys = state.store.list_api_keys(&who.account_id).await?;
    Ok(axum::Json(json!({"data": keys, "next_cursor": null})))
}

async fn revoke_key(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(state.store.revoke_api_key(&who, &id).await?))
}
