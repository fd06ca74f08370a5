//! Multi-row upserts for the CDR writer, portable between SQLite and PostgreSQL.
//!
//! sqlx's `QueryBuilder` writes `?` placeholders for the `Any` driver, which PostgreSQL rejects,
//! so the statement text is built here: `$N` for PostgreSQL, `?` for SQLite. It is made only of
//! constant SQL and placeholders, never of values.

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

/// Rows per statement: the writers cut their batches into statements of at most this many
/// rows, each kept prepared on its connection (sqlx's cache: one entry per row count, eight
/// per table). Small on purpose: when its statements were numbered (`$N`, which SQLite takes
/// for *named* parameters), both SQLite's parser and sqlx's binding looked each name up in a
/// list of the statement's parameters — a cost quadratic in the parameters per statement. With
/// 400 rows a statement (8,400 parameters for `calls`), parsing and binding took half the
/// server's CPU at 600 calls/s (`perf`, 2026-11-26) and the CDR writer fell behind at 1,000
/// calls/s. SQLite's statements are now unnamed (see [`Upsert::new`]); a statement prepared
/// once per row count keeps the parsing off the path either way.
pub(super) const ROWS_PER_STATEMENT: usize = 8;

impl Upsert {
    /// `head` is `INSERT INTO t (a, b, …)`, `tail` the `ON CONFLICT …` clause; `numbered`
    /// for PostgreSQL (`$N`), else SQLite's unnamed `?`.
    ///
    /// SQLite takes `$N` for a *named* parameter, and sqlx binds each value by asking SQLite
    /// the name of each parameter (`sqlite3_bind_parameter_name`), which scans the statement's
    /// list of names: at 8 rows of 21 columns that was 9 % of the CDR writer's thread at
    /// 2,500 calls/s (`perf`, 2026-11-27). An unnamed `?` has no name to look up, and the
    /// values are bound in order, as they are pushed here.
    pub(super) fn new(numbered: bool, head: &str, columns: usize, rows: usize, tail: &str) -> Self {
        let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
        sql.push_str(head);
        sql.push_str(" VALUES ");
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns {
                if c > 0 {
                    sql.push_str(", ");
                }
                if numbered {
                    let _ = write!(sql, "${}", r * columns + c + 1);
                } else {
                    sql.push('?');
                }
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
            .persistent(self.rows <= ROWS_PER_STATEMENT)
            .execute(conn)
            .await?;
        Ok(())
    }
}
