//! What a source database lets the pipeline's role do for logical replication: the facts read
//! from its catalog, what is missing, and the SQL whoever holds the rights must run.
//!
//! The rules, the same from PostgreSQL 15 through 18 ("Logical Replication: Security",
//! <https://www.postgresql.org/docs/15/logical-replication-security.html>, and
//! `CREATE PUBLICATION`): a slot is created and read by a role with REPLICATION (or a
//! superuser; on RDS membership in `rds_replication`); `CREATE PUBLICATION` needs CREATE on the
//! database, and `FOR TABLE` / `ADD TABLE` ownership of every table named (membership in the
//! owning role counts); `FOR ALL TABLES` and `TABLES IN SCHEMA` need a superuser (on Cloud SQL
//! a `cloudsqlsuperuser` member, on RDS the master user); copying a table's rows needs SELECT on
//! it and USAGE on its schema. PostgreSQL 16 narrowed CREATEROLE: a non-superuser may give
//! REPLICATION only if it has REPLICATION itself (and ADMIN on the role), so the fix is written
//! for a superuser.
//!
//! Reading (`Facts::read`) is separate from judging (`Facts::assess`, pure), so the judging is
//! unit-tested without a database and `cdc-sync init` and `monitor doctor` say the same thing.
//!
//! - `facts`: what is wanted (`Wanted`) and what the database says (`Facts`); `read`: the
//!   catalog queries that fill `Facts`.
//! - `assess`: the server's settings, the role's attributes and its rights to read; it asks
//!   `publication` whether the publication is there or who may make or complete it; `verdict`:
//!   what both say (`Assessment`, the `Fix`es by who runs them).
//! - `wal`: the WAL positions a slot is measured by.

mod assess;
mod facts;
#[cfg(test)]
mod fixtures;
mod publication;
mod read;
mod verdict;
mod wal;

pub use facts::{
    Facts, OwnerFacts, Platform, PublicationFacts, SchemaFacts, Scope, SlotFacts, TableFacts,
    Wanted,
};
pub use verdict::{Assessment, Fix, PublicationStep, RunAs};
pub use wal::{retained_wal, retained_wal_sql, CURRENT_WAL_LSN};
