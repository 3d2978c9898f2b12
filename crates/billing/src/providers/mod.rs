//! One module per payment platform. Each exposes a unit struct implementing
//! [`Provider`](crate::Provider), registered in [`PROVIDERS`](crate::PROVIDERS).

pub mod chargebee;
pub mod fastspring;
pub mod generic;
pub mod gumroad;
pub mod lemonsqueezy;
pub mod paddle;
pub mod paddle_classic;
pub mod paypal;
pub mod prestashop;
pub mod stripe;
