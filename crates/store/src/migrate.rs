//! The migrations: numbered SQL files per engine, embedded at compile time (no database needed
//! to build). The runner (`sql/shared/schema.rs`) applies each file whole, in order, each in its
//! own transaction, and records it in `keygate_migrations` with the SHA-256 of its text: a file
//! changed after it was applied is refused at start, since the databases it already ran on
//! would silently differ from new ones.

use sha2::{Digest, Sha256};

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// SHA-256 of the file, in hex, with CRLF line ends read as LF: a checkout that converts
    /// line ends does not make an applied migration look edited.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.replace("\r\n", "\n").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The PostgreSQL advisory lock every node takes around migration ("keygate" in ASCII), so
/// any number of nodes may start together on an empty or older database.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub const ADVISORY_LOCK_KEY: i64 = 0x006b_6579_6761_7465;

#[cfg(feature = "sqlite")]
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../migrations/sqlite/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "signing",
        sql: include_str!("../migrations/sqlite/0002_signing.sql"),
    },
    Migration {
        version: 3,
        name: "gateway",
        sql: include_str!("../migrations/sqlite/0003_gateway.sql"),
    },
    Migration {
        version: 4,
        name: "outbound",
        sql: include_str!("../migrations/sqlite/0004_outbound.sql"),
    },
    Migration {
        version: 5,
        name: "api_credentials",
        sql: include_str!("../migrations/sqlite/0005_api_credentials.sql"),
    },
    Migration {
        version: 6,
        name: "subscription_orders",
        sql: include_str!("../migrations/sqlite/0006_subscription_orders.sql"),
    },
    Migration {
        version: 7,
        name: "order_lines",
        sql: include_str!("../migrations/sqlite/0007_order_lines.sql"),
    },
];

#[cfg(feature = "postgres")]
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "core",
        sql: include_str!("../migrations/postgres/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "signing",
        sql: include_str!("../migrations/postgres/0002_signing.sql"),
    },
    Migration {
        version: 3,
        name: "gateway",
        sql: include_str!("../migrations/postgres/0003_gateway.sql"),
    },
    Migration {
        version: 4,
        name: "outbound",
        sql: include_str!("../migrations/postgres/0004_outbound.sql"),
    },
    Migration {
        version: 5,
        name: "api_credentials",
        sql: include_str!("../migrations/postgres/0005_api_credentials.sql"),
    },
    Migration {
        version: 6,
        name: "subscription_orders",
        sql: include_str!("../migrations/postgres/0006_subscription_orders.sql"),
    },
    Migration {
        version: 7,
        name: "order_lines",
        sql: include_str!("../migrations/postgres/0007_order_lines.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(feature = "sqlite", feature = "postgres"))]
    fn versions_are_dense_and_the_same_on_both_engines() {
        for list in [SQLITE, POSTGRES] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            }
        }
        let names = |l: &[Migration]| l.iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
    }

    #[test]
    fn checksums_are_sha256_of_the_text() {
        let m = Migration {
            version: 1,
            name: "x",
            sql: "abc",
        };
        assert_eq!(
            m.checksum(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let crlf = Migration { sql: "a\r\nb", ..m };
        let lf = Migration { sql: "a\nb", ..m };
        assert_eq!(crlf.checksum(), lf.checksum());
        assert_ne!(lf.checksum(), m.checksum());
    }
}
