//! Crash points: where the crash tests stop a run as if it had crashed (cargo feature
//! `failpoints`, which the tests crate turns on; without it, a crash point does nothing).

use sluice::Result;

/// Places where tests stop a run as if it had crashed: the step boundaries of the first batch,
/// and of the first snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the batch is in the lake and its staging table is loaded.
    AfterLoad,
    /// After the MERGE, before the slot advances.
    AfterMerge,
    /// The new position is remembered in the lake; the slot has not advanced yet.
    PositionRecorded,
    /// A snapshot's Parquet files are in the lake.
    SnapshotInLake,
    /// The replica table exists (created, or its columns brought up to date).
    SnapshotReplicaReady,
    /// The snapshot is loaded into its staging table.
    SnapshotStaged,
    /// The replica holds the snapshot; its staging table and state are not yet done.
    SnapshotReplaced,
    /// The staging table is gone; the table's state is not yet written.
    SnapshotCleaned,
}

impl CrashPoint {
    /// Every boundary of a snapshot, in order.
    pub const SNAPSHOT: [CrashPoint; 5] = [
        CrashPoint::SnapshotInLake,
        CrashPoint::SnapshotReplicaReady,
        CrashPoint::SnapshotStaged,
        CrashPoint::SnapshotReplaced,
        CrashPoint::SnapshotCleaned,
    ];
}

/// Stops here as if crashed when a test asked for this point (with the `failpoints` feature;
/// without it, never).
pub(crate) fn crash_at(wanted: Option<CrashPoint>, here: CrashPoint) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if wanted == Some(here) {
        return Err(sluice::Error::Injected(format!("crash at {here:?}")));
    }
    let _ = (wanted, here);
    Ok(())
}
