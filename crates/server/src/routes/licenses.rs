use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiJson, ApiQuery, parse_json};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keygate_store::{LicenseAction, LicenseFilter, LicenseInput, LicensePatch};
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/licenses", "Create a license", create)
            .tag("licenses")
            .body("LicenseInput")
            .returns(201, "License"),
        Route::get("/v1/licenses", "List licenses", list)
            .tag("licenses")
            .query(&[
                ("customer_id", "only this customer's licenses"),
                ("email", "only licenses of the customer with this email"),
                ("subscription_id", "only licenses of this billing subscription"),
                ("policy_id", "only licenses of this policy"),
                ("product_id", "only licenses of this product"),
                ("status", "active, suspended, revoked, or expired"),
                PAGE_QUERY[0],
                PAGE_QUERY[1],
            ])
            .returns(200, "LicenseList"),
        Route::get("/v1/licenses/{id}", "Get a license", read)
            .tag("licenses")
            .returns(200, "License"),
        Route::patch("/v1/licenses/{id}", "Change a license", update)
            .tag("licenses")
            .body("LicensePatch")
            .returns(200, "License"),
        Route::post(
            "/v1/licenses/{id}/actions/{action}",
            "Lifecycle: suspend, reinstate, revoke, renew (by the policy's duration) or extend ({\"seconds\": N})",
            action,
        )
        .tag("licenses")
        .body("ExtendInput")
        .returns(200, "License"),
        Route::get("/v1/licenses/{id}/activations", "The machines a license is activated on", activations)
            .tag("activations")
            .returns(200, "ActivationList"),
        Route::delete("/v1/activations/{id}", "Remove a machine activation", delete_activation)
            .tag("activations")
            .no_content(),
    ]
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<LicenseInput>,
) -> ApiResult<impl IntoResponse> {
    keygate_domain::limits::overrides(&input.overrides).map_err(ApiError::from)?;
    let license = state.store.create_license(&who, input).await?;
    Ok((StatusCode::CREATED, axum::Json(license)))
}

#[derive(Deserialize)]
struct ListQuery {
    customer_id: Option<String>,
    email: Option<String>,
    subscription_id: Option<String>,
    policy_id: Option<String>,
    product_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let page = PageQuery {
        cursor: q.cursor,
        limit: q.limit,
    }
    .page();
    let filter = LicenseFilter {
        customer_id: q.customer_id,
        email: q.email,
        subscription_id: q.subscription_id,
        status: q.status,
        policy_id: q.policy_id,
        product_id: q.product_id,
        order: None,
    };
    Ok(axum::Json(
        state
            .store
            .list_licenses(&who.account_id, filter, page)
            .await?,
    ))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_license(&who.account_id, &id).await?,
    ))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<LicensePatch>,
) -> ApiResult<impl IntoResponse> {
    if let Some(o) = &patch.overrides {
        keygate_domain::limits::overrides(o).map_err(ApiError::from)?;
    }
    Ok(axum::Json(
        state.store.update_license(&who, &id, patch).await?,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExtendInput {
    seconds: Option<i64>,
}

async fn action(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    // The body is optional except for `extend`.
    let input: ExtendInput = if body.iter().all(u8::is_ascii_whitespace) {
        ExtendInput::default()
    } else {
        parse_json(&body)?
    };
    let action = match action.as_str() {
        "suspend" => LicenseAction::Suspend,
        "reinstate" => LicenseAction::Reinstate,
        "revoke" => LicenseAction::Revoke,
        "renew" => LicenseAction::Renew,
        "extend" => {
            let seconds = input.seconds.ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidField, "extend needs {\"seconds\": N}")
            })?;
            keygate_domain::limits::duration("seconds", Some(seconds)).map_err(ApiError::from)?;
            LicenseAction::Extend(seconds)
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::UnknownAction,
                format!(
                    "no license action `{other}`: use suspend, reinstate, revoke, renew or extend"
                ),
            ));
        }
    };
    Ok(axum::Json(
        state.store.license_action(&who, &id, action).await?,
    ))
}

async fn activations(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let data = state.store.list_activations(&who.account_id, &id).await?;
    Ok(axum::Json(json!({"data": data, "next_cursor": null})))
}

async fn delete_activation(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_activation(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
