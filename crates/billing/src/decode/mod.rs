//! Body decoders: JSON (most platforms) and form-urlencoded (2Checkout, Braintree, Paddle
//! Classic post forms; Braintree's challenge comes in a query string).

pub(crate) mod dates;
pub mod form;
pub(crate) mod json;
