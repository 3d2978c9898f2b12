use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keygate_store::{ProductInput, ProductPatch};

pub fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/products", "Create a product", create)
            .tag("products")
            .body("ProductInput")
            .returns(201, "Product"),
        Route::get("/v1/products", "List products", list)
            .tag("products")
            .query(&PAGE_QUERY)
            .returns(200, "ProductList"),
        Route::get("/v1/products/{id}", "Get a product", read)
            .tag("products")
            .returns(200, "Product"),
        Route::patch("/v1/products/{id}", "Change a product", update)
            .tag("products")
            .body("ProductPatch")
            .returns(200, "Product"),
        Route::delete(
            "/v1/products/{id}",
            "Delete a product without policies",
            remove,
        )
        .tag("products")
        .no_content(),
    ]
}

async fn create(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<impl IntoResponse> {
    let product = state.store.create_product(&who, input).await?;
    Ok((StatusCode::CREATED, axum::Json(product)))
}

async fn list(
    Admin(who): Admin,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.list_products(&who.account_id, q.page()).await?,
    ))
}

async fn read(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.get_product(&who.account_id, &id).await?,
    ))
}

async fn update(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.store.update_product(&who, &id, patch).await?,
    ))
}

async fn remove(
    Admin(who): Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_product(&who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
