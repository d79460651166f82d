//! Postgres helpers: connecting (over TLS as the DSN's sslmode says), reading the catalog, and
//! decoding binary COPY.

pub mod batch;
pub mod catalog;
pub mod connect;
pub mod copy;
pub mod pgoutput;
pub mod replication;
pub mod tls;
pub mod to_lake;
pub mod wire;

pub use batch::{ColumnBuilders, DecodeStats};
pub use catalog::{table_columns, TableColumns};
pub use connect::{connect, Answer, PgConnection};
pub use copy::CopyDecoder;
