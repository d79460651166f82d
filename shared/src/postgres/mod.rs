//! Postgres helpers: connecting, reading the catalog, and decoding binary COPY.

pub mod catalog;
pub mod connect;
pub mod copy;
pub mod wire;

pub use catalog::{table_columns, TableColumns};
pub use connect::{connect, PgConnection};
pub use copy::{CopyDecoder, DecodeStats};
