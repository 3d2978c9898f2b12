//! One module per payment platform. Each exposes a unit struct implementing
//! [`Provider`](crate::Provider), registered in [`PROVIDERS`](crate::PROVIDERS).

pub mod chargebee;
pub mod fastspring;
pub mod fastspring_keygen;
pub mod generic;
pub mod lemonsqueezy;
pub mod mycommerce;
pub mod paddle;
pub mod paypal;
pub mod prestashop;
pub mod salesforce;
pub mod stripe;
