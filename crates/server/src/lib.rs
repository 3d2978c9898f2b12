//! The `keygate` server: HTTP routing, authentication, OpenAPI, metrics and the CLI.
//! Handlers stay thin: they parse, call the store, and shape the answer.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod failure_log;
pub mod gateway;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub mod platform_api;
pub mod platform_token;
pub mod routes;
pub mod secret_guard;
pub mod serve;
pub mod signing;
pub mod simulate;
pub mod telemetry;
pub mod text_guard;

pub use app::{AppState, Server};
pub use config::Config;
