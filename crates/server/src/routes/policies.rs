use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keygate_domain::PolicyInput;
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/policies", "Create a policy (licensing model)", create)
            .tag("policies")
            .body("PolicyInput")
            .returns(201, "Policy"),
        Route::get("/v1/policies", "List policies", list)
            .tag("policies")
            .query(&[
                ("product_id", "only this product's policies"),
                PAGE_QUERY[0],
                PAGE_QUERY[1],
            ])
            .returns(200, "PolicyList"),
        Route::get("/v1/policies/{id}", "Get a policy", read)
            .tag("policies")
            .returns(200, "Policy"),
        Route::patch(
            "/v1/policies/{id}",
            "Change a policy (fields as in create; product_id is fixed)",
            update,
        )
        .tag("policies")
        .body("PolicyPatch")
        .returns(200, "Policy"),
    ]
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> ApiResult<impl IntoResponse> {
    let policy = state.store.create_policy(&who, input).await?;
    Ok((StatusCode::CREATED, axum::Json(policy)))
}

#[derive(Deserialize)]
struct ListQuery {
    product_id: Option<String>,
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
    Ok(axum::Json(
        state
            .store
            .list_policies(&who.account_id, q.product_id, page)
            .await?,
    ))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_policy(&who.account_id, &id).await?,
    ))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.update_policy(&who, &id, patch).await?,
    ))
}
