//! The billing gateway: integrations (platform connections), the webhook inbox, group commit
//! of deliveries on SQLite, and applying a delivery to its subscription or order.

mod apply;
mod group_commit;
mod inbox;
mod integrations;
mod lookups;
mod subscriptions;

pub(crate) use group_commit::{GroupCommitQueue, spawn_group_commit};
pub(crate) use integrations::load_integration;
