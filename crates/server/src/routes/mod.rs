//! Every HTTP endpoint, one file per resource. Each file lists its routes with their docs; the
//! router and the OpenAPI document are both built from that one list, so they cannot drift.
use crate::app::AppState;
use axum::handler::Handler;
use axum::routing::{MethodRouter, delete, get, patch, post};

pub mod accounts;
pub mod audit;
pub mod client;
pub mod customers;
pub mod endpoints;
pub mod gateway;
pub mod keygen;
pub mod keys;
pub mod licenses;
pub mod ops;
pub mod policies;
pub mod products;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Public,
    ApiKey,
    RootToken,
}

/// Which rate limit a route is under (see `crate::limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// Per client address: the public client endpoints (the license key is the credential).
    ClientAddress,
    /// Per integration: platforms' webhooks.
    Integration,
}

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    pub auth: Auth,
    /// Schema name of the JSON body, if any.
    pub request: Option<&'static str>,
    /// Success status and schema name of its body (`None`: no body, or not JSON).
    pub response: (u16, Option<&'static str>),
    /// Query parameters: (name, description).
    pub query: &'static [(&'static str, &'static str)],
    pub handler: MethodRouter<AppState>,
}

macro_rules! constructor {
    ($name:ident, $method:literal, $router:ident) => {
        pub fn $name<H, T>(path: &'static str, summary: &'static str, handler: H) -> Route
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            Route {
                method: $method,
                path,
                summary,
                tag: "",
                auth: Auth::ApiKey,
                request: None,
                response: (200, None),
                query: &[],
                handler: $router(handler),
            }
        }
    };
}

impl Route {
    constructor!(get, "GET", get);
    constructor!(post, "POST", post);
    constructor!(patch, "PATCH", patch);
    constructor!(delete, "DELETE", delete);

    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
    pub fn public(mut self) -> Self {
        self.auth = Auth::Public;
        self
    }
    pub fn root(mut self) -> Self {
        self.auth = Auth::RootToken;
        self
    }
    pub fn body(mut self, schema: &'static str) -> Self {
        self.request = Some(schema);
        self
    }
    pub fn returns(mut self, status: u16, schema: &'static str) -> Self {
        self.response = (status, Some(schema));
        self
    }
    pub fn no_content(mut self) -> Self {
        self.response = (204, None);
        self
    }
    pub fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.query = query;
        self
    }

    pub fn rate_limit(&self) -> Option<RateLimit> {
        if self.path.starts_with("/v1/webhooks/") || self.path.starts_with("/v1/keygen/") {
            Some(RateLimit::Integration)
        } else if self.auth == Auth::Public && self.path.starts_with("/v1/") {
            Some(RateLimit::ClientAddress)
        } else {
            None
        }
    }
}

/// All routes of the server.
pub fn all() -> Vec<Route> {
    let mut routes = Vec::new();
    routes.extend(ops::routes());
    routes.extend(accounts::routes());
    routes.extend(products::routes());
    routes.extend(policies::routes());
    routes.extend(customers::routes());
    routes.extend(licenses::routes());
    routes.extend(client::routes());
    routes.extend(keys::routes());
    routes.extend(gateway::routes());
    routes.extend(keygen::routes());
    routes.extend(endpoints::routes());
    routes.extend(audit::routes());
    routes
}

pub const PAGE_QUERY: [(&str, &str); 2] = [
    ("cursor", "the `next_cursor` of the previous page"),
    ("limit", "page size, 1-200 (default 50)"),
];

#[derive(serde::Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl PageQuery {
    pub fn page(&self) -> keygate_store::PageRequest {
        keygate_store::PageRequest::new(self.cursor.clone(), self.limit)
    }
}
