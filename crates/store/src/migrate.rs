//! A tiny migration runner: numbered SQL files per engine, applied in order, each in its own
//! transaction, recorded in `keygate_migrations`. Embedded at compile time, no database needed
//! to build.

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

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
];

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
];
