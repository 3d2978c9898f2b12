use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keygate_store::{CustomerInput, CustomerPatch};
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/customers", "Create a customer", create)
            .tag("customers")
            .body("CustomerInput")
            .returns(201, "Customer"),
        Route::get("/v1/customers", "List customers", list)
            .tag("customers")
            .query(&[
                ("email", "only customers with this email (case-insensitive)"),
                PAGE_QUERY[0],
                PAGE_QUERY[1],
            ])
            .returns(200, "CustomerList"),
        Route::get("/v1/customers/{id}", "Get a customer", read)
            .tag("customers")
            .returns(200, "Customer"),
        Route::patch("/v1/customers/{id}", "Change a customer", update)
            .tag("customers")
            .body("CustomerPatch")
            .returns(200, "Customer"),
    ]
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CustomerInput>,
) -> ApiResult<impl IntoResponse> {
    let customer = state.store.create_customer(&who, input).await?;
    Ok((StatusCode::CREATED, axum::Json(customer)))
}

#[derive(Deserialize)]
struct ListQuery {
    email: Option<String>,
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
            .list_customers(&who.account_id, q.email, page)
            .await?,
    ))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_customer(&who.account_id, &id).await?,
    ))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<CustomerPatch>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.update_customer(&who, &id, patch).await?,
    ))
}
