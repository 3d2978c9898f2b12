//! The one list of platforms. The server's routing and integration validation, the OpenAPI
//! `provider` enum, the docs index and the end-to-end tests all read it; adding a platform is
//! one line here (plus its module, testkit part, fixtures, tests and docs page).

use crate::Provider;
use crate::providers::{
    chargebee, fastspring, generic, lemonsqueezy, mycommerce, paddle, paypal, prestashop,
    salesforce, stripe,
};

/// Every platform Keygate speaks, in the order the docs list them.
pub static PROVIDERS: &[&dyn Provider] = &[
    &stripe::Stripe,
    &paddle::Paddle,
    &paypal::PayPal,
    &chargebee::Chargebee,
    &fastspring::FastSpring,
    &lemonsqueezy::LemonSqueezy,
    &prestashop::PrestaShop,
    &salesforce::Salesforce,
    &mycommerce::MyCommerce,
    &generic::Generic,
];

/// A platform by its name.
pub fn provider(name: &str) -> Option<&'static dyn Provider> {
    PROVIDERS.iter().copied().find(|p| p.name() == name)
}

/// Every name, in registry order.
pub fn names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let names = names();
        for name in &names {
            assert_eq!(provider(name).unwrap().name(), *name);
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}: a URL path segment"
            );
        }
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(provider("nope").is_none());
    }
}
