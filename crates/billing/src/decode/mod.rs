//! Body decoders: JSON (most platforms) and form-urlencoded (2Checkout, Braintree, Paddle
//! Classic post forms; Braintree's challenge comes in a query string).

pub mod form;
pub(crate) mod json;
pub mod outbound_message;
