use super::{PAGE_QUERY, PageQuery, Route};
use crate::app::AppState;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use axum::extract::State;
use axum::response::IntoResponse;
use keygate_domain::Timestamp;
use keygate_store::AuditFilter;
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/audit",
            "The audit log: every change, who made it, before and after",
            list,
        )
        .tag("audit")
        .query(&[
            ("license_id", "changes to this license"),
            ("customer_id", "changes concerning this customer"),
            (
                "actor",
                "an API key id, or an actor type: api_key, operator, client, system, webhook_event",
            ),
            ("since", "RFC 3339 time, inclusive"),
            ("until", "RFC 3339 time, exclusive"),
            PAGE_QUERY[0],
            PAGE_QUERY[1],
        ])
        .returns(200, "AuditList"),
    ]
}

#[derive(Deserialize)]
struct ListQuery {
    license_id: Option<String>,
    customer_id: Option<String>,
    actor: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
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
    let filter = AuditFilter {
        license_id: q.license_id,
        customer_id: q.customer_id,
        actor: q.actor,
        since: q.since,
        until: q.until,
    };
    Ok(axum::Json(
        state
            .store
            .list_audit(&who.account_id, filter, page)
            .await?,
    ))
}
