//! Integration tests: the real server on a random port, a fresh database per test, both
//! engines, everything through HTTP as a vendor would use it.
mod harness;

mod accounts;
mod bad_input;
mod cli;
mod edge;
mod enforcement;
mod gateway;
mod idempotency;
mod keygen;
mod lifecycle;
mod ops;
mod order_lines;
mod outbound;
mod platform_api;
mod platforms;
mod poison;
mod prestashop;
mod resources;
mod sealing;
mod signing;
mod ssrf;
mod stand_in;
mod truth;
