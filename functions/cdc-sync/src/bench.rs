//! Benchmark support (cargo feature `bench`, which the tests crate turns on for its bench):
//! the decode-and-stage half of a run, without BigQuery.

use std::collections::HashMap;

use sluice::config::Pipeline;
use sluice::{Error, Result};

use crate::apply;
use crate::source::{cdc_sources, source_ctx, SourceCtx};
use crate::stream::{for_each_batch, Batch};

/// Drains `slot` — a copy of the pipeline's slot made with
/// `pg_copy_logical_replication_slot`, never the slot itself — decoding each batch and staging it
/// as Parquet in the lake, without BigQuery. Returns the changes and Parquet bytes staged.
pub async fn decode_and_stage(
    pipeline: &Pipeline,
    target_name: &str,
    source_name: &str,
    slot_copy: &str,
    batch_changes: u32,
) -> Result<(u64, u64)> {
    let target = pipeline.target(target_name)?;
    let (name, source, cdc) = cdc_sources(pipeline, Some(source_name))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::config(format!("no source {source_name}")))?;
    if slot_copy == cdc.slot(name) {
        return Err(Error::config(
            "decode_and_stage advances its slot without loading BigQuery: give it a copy",
        ));
    }
    let mut ctx = source_ctx(pipeline, &target, name, source, cdc, "stage").await?;
    ctx.slot = slot_copy.to_string();
    let mut types = HashMap::new();
    let (mut changes, mut bytes) = (0, 0);
    loop {
        // Each batch is staged before reading on, as `run` applies it.
        let peeked = for_each_batch(&ctx, batch_changes, &mut types, None, async |b: Batch| {
            bytes += stage_batch(&ctx, &b).await?;
            changes += b.changes;
            Ok(true)
        })
        .await?;
        if !peeked.more {
            break;
        }
    }
    Ok((changes, bytes))
}

/// Writes a batch's changes as Parquet in the lake, as `run` does (benchmark only).
async fn stage_batch(ctx: &SourceCtx<'_>, batch: &Batch) -> Result<u64> {
    let range = batch.range();
    let mut bytes = 0;
    for segs in batch.tables.values() {
        for (i, seg) in segs.iter().enumerate() {
            bytes += apply::stage(&ctx.sink, seg, &range, i).await?.1;
        }
    }
    Ok(bytes)
}
