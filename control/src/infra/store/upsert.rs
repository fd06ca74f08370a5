//! Multi-row upserts for the CDR writer, portable between SQLite and PostgreSQL.
//!
//! sqlx's `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL rejects;
//! numbered `$N` placeholders are valid on both, so the statement text is built here. It is made
//! only of constant SQL and placeholder numbers, never of values.

use sqlx::Arguments;
use sqlx::any::AnyArguments;
use sqlx::{Any, AssertSqlSafe, Encode, Type};
use std::fmt::Write;

/// `INSERT INTO table (columns) VALUES ($1, …), (…) ON CONFLICT …` for `rows` rows.
pub(super) struct Upsert {
    sql: String,
    args: AnyArguments,
    columns: usize,
    rows: usize,
    bound: usize,
}

/// Statements of at most this many rows are kept prepared on their connection (sqlx's cache);
/// larger ones are prepared for each use. Every row count is a statement of its own, and a
/// prepared 400-row upsert holds hundreds of KB: caching all sizes made memory grow with the
/// variety of batch sizes seen, up to the cache's 100 entries per connection.
const PREPARED_MAX_ROWS: usize = 8;

impl Upsert {
    /// `head` is `INSERT INTO t (a, b, …)`, `tail` the `ON CONFLICT …` clause.
    pub(super) fn new(head: &str, columns: usize, rows: usize, tail: &str) -> Self {
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                let _ = write!(
                    sql,
                    "{}${}",
                    if c == 0 { "" } else { ", " },
                    r * columns + c + 1
                );
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        Self {
            sql,
            args: AnyArguments::default(),
            columns,
            rows,
            bound: 0,
        }
    }

    pub(super) fn bind<'q, T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        // Encoding into AnyArguments only fails for types Any cannot carry, which none here are.
        let _ = self.args.add(value);
        self.bound += 1;
        self
    }

    pub(super) async fn execute(self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        debug_assert_eq!(self.bound % self.columns, 0, "whole rows bound");
        sqlx::query_with(AssertSqlSafe(self.sql), self.args)
            .persistent(self.rows <= PREPARED_MAX_ROWS)
            .execute(conn)
            .await?;
        Ok(())
    }
}
