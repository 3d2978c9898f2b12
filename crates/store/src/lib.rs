//! Keygate's storage: the `Store` traits (one per aggregate, in `traits`), implemented for
//! SQLite (the embedded default) and PostgreSQL (for several nodes) from the same SQL text, so
//! both engines behave the same (`sql`).

mod cache;
mod error;
pub mod gateway;
pub mod inputs;
mod migrate;
pub mod outbound;
mod sql;
pub mod sync;
mod traits;

pub use error::StoreError;
pub use inputs::*;
pub use sqlx;
pub use traits::*;

use keygate_domain::{Actor, Timestamp};
use std::sync::Arc;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens the database named by `url` (`sqlite://...` or `postgres://...`). Does not migrate.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        return Ok(Arc::new(sql::sqlite::SqliteStore::connect(url).await?));
        #[cfg(not(feature = "sqlite"))]
        return Err(StoreError::Config(
            "this build has no SQLite support (feature `sqlite` of keygate-store)".into(),
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(Arc::new(sql::postgres::PostgresStore::connect(url).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(StoreError::Config(
            "this build has no PostgreSQL support (feature `postgres` of keygate-store)".into(),
        ));
    }
    Err(StoreError::Config(format!(
        "unsupported database URL `{}`: use sqlite://PATH or postgres://...",
        redact_url(url)
    )))
}

/// A URL with its password removed, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::now()
}

pub(crate) fn actor_of(who: &Principal) -> Actor {
    Actor::ApiKey(who.api_key_id.clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://k.db"), "sqlite://k.db");
    }
}
