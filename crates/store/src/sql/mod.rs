//! The SQL implementation of `Store`. `shared/` is one source compiled once per engine: each of
//! `sqlite.rs` and `postgres.rs` mounts it as a module of its own beside an `engine` module that
//! holds the few dialect differences (constants the compiler folds away) and how the engine's
//! connections are opened. The SQL text is the same on both: both engines accept `$N`
//! placeholders, `RETURNING`, `ON CONFLICT` and `FILTER`.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Appends `sql` to `out` with every `$N` shifted by `offset`.
pub(crate) fn renumber_placeholders(out: &mut String, sql: &str, offset: usize) {
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    #[test]
    fn renumbers_placeholders_past_the_offset() {
        let mut out = String::from("INSERT INTO a VALUES ($1, $2);\n");
        super::renumber_placeholders(&mut out, "UPDATE b SET x = $2 WHERE id = $1 AND y = $10", 2);
        assert_eq!(
            out,
            "INSERT INTO a VALUES ($1, $2);\nUPDATE b SET x = $4 WHERE id = $3 AND y = $12"
        );
    }
}
