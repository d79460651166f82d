//! cdc-sync: Postgres change data capture into BigQuery replica tables.
//!
//! Each run drains a logical replication slot (pgoutput) in bounded batches. A batch is
//! decoded, written as Parquet to `cdc/<source>/<table>/<from>-<to>.parquet`, loaded into a
//! staging table, MERGEd into the replica (latest change per key, only if newer than the row's
//! `_sluice_lsn`), and only then is the slot advanced. A crash between any two steps followed by
//! a rerun gives the same replica. Tables new to the publication are snapshotted first. Before
//! reading anything a run checks that the slot continues the stream the replicas came from
//! (`continuity`), and a caught-up run moves the slot to the server's flushed position even
//! when the published tables were idle, so retained WAL stays bounded.
//!
//! Where things live:
//! - `init` makes a source's publication and slot; `sync` is `run` (its `Options` and
//!   `Summary`): snapshots of new tables, then batches, with the slot advanced only after
//!   BigQuery committed; `resync` snapshots tables again, and `forget`s those that left.
//! - `source` opens a source for a run (connections, sink, recorder); `stream` reads the slot
//!   in bounded batches; `changes` collects one table's changes of a batch; `snapshot` copies
//!   a table through the lake.
//! - `sink` is where a source's replicas go (the `Sink`: replica and history tables made and
//!   kept up to date with the source's columns); `apply` brings them up to date with a batch;
//!   `layout` says the columns of staged changes, replicas and history tables; `sql` writes
//!   the MERGE.
//! - `tables` reads a table's shape and its state in the lake; `slot` administers
//!   publications and slots; `continuity` remembers each source's stream and names its breaks.
//! - `status` compares sources with their replicas, by content through `verify`.
//! - `failpoints` names the points the crash tests stop a run at (feature `failpoints`);
//!   `bench` is the benchmark's decode-and-stage drain (feature `bench`).
//!
//! The face below is what `main` and the tests use.

mod apply;
#[cfg(feature = "bench")]
mod bench;
mod changes;
mod continuity;
mod failpoints;
mod init;
mod layout;
mod resync;
mod sink;
mod slot;
mod snapshot;
mod source;
mod sql;
mod status;
mod stream;
mod sync;
mod tables;
mod verify;

#[cfg(feature = "bench")]
pub use bench::decode_and_stage;
pub use continuity::Break;
pub use failpoints::CrashPoint;
pub use init::init;
pub use resync::{forget, resync};
pub use slot::{InitReport, SlotHealth};
pub use status::{check, status, SourceStatus, TableStatus, Verdict};
pub use sync::{run, Options, Summary};
pub use verify::{Difference, Found, Queries};
