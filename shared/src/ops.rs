//! sluice's own tables in the ops dataset, defined once: each one's name, columns,
//! partitioning, clustering and description. Workers write them and the monitor reads them;
//! `OpsTable::ensure` creates a table, or adds the columns a newer sluice gave it.

use serde_json::{json, Value};

use crate::bigquery::schema::{self, evolve, Field};
use crate::bigquery::sql::table_ref;
use crate::bigquery::BigQuery;
use crate::error::{Error, ErrorKind, Result};
use crate::types::BqType::{Bool, Bytes, Date, Float64, Int64, Json, String as Text, Timestamp};

/// One table of the ops dataset.
#[derive(Debug, Clone, Copy)]
pub struct OpsTable {
    pub name: &'static str,
    /// Its columns.
    pub fields: fn() -> Vec<Field>,
    /// The DATE or TIMESTAMP column it is partitioned by (by day).
    pub partitioned_by: &'static str,
    pub clustered_by: &'static [&'static str],
    pub description: &'static str,
}

/// `runs`, the run ledger: one row per unit of work of every worker run.
pub const RUNS: OpsTable = OpsTable {
    name: "runs",
    fields: || {
        vec![
            Field::required("run_id", Text),
            Field::required("worker", Text),
            Field::required("target", Text),
            Field::nullable("source", Text),
            Field::nullable("table_name", Text),
            Field::nullable("logical_date", Date),
            Field::nullable("lsn_range", Text),
            Field::required("started_at", Timestamp),
            Field::required("finished_at", Timestamp),
            Field::required("status", Text),
            Field::required("rows_in", Int64),
            Field::required("rows_loaded", Int64),
            Field::required("rows_dead_lettered", Int64),
            Field::required("bytes", Int64),
            Field::nullable("error", Text),
            Field::nullable("details", Json),
        ]
    },
    partitioned_by: "started_at",
    clustered_by: &["worker", "table_name"],
    description: "One row per unit of work of every sluice worker run.",
};

/// `dead_letter`: events log-ingest could not store, with why.
pub const DEAD_LETTER: OpsTable = OpsTable {
    name: "dead_letter",
    fields: || {
        vec![
            Field::required("message_id", Text).describe("Pub/Sub message id"),
            Field::nullable("subscription", Text).describe("Subscription it came through"),
            Field::nullable("event_type", Text).describe("Event type, when one was named"),
            Field::required("reason_code", Text).describe("not_json, bad_base64, missing_type, unknown_type, schema_violation, payload_too_large, bigquery_rejected"),
            Field::required("reason", Text).describe("What was wrong, with the JSON pointer of the first failing field"),
            Field::nullable("payload", Bytes).describe("The message data as received (cut at events.max_payload_bytes)"),
            Field::required("payload_size", Int64).describe("Size of the whole message data in bytes"),
            Field::nullable("attributes", Json).describe("Message attributes"),
            Field::nullable("publish_time", Timestamp).describe("When Pub/Sub accepted the message"),
            Field::required("received_at", Timestamp).describe("When log-ingest received it"),
            Field::nullable("delivery_attempt", Int64).describe("Pub/Sub delivery attempt, when the subscription has a dead-letter policy"),
            Field::required("via", Text).describe("push, pull or replay"),
        ]
    },
    partitioned_by: "received_at",
    clustered_by: &["reason_code", "event_type"],
    description: "Events log-ingest could not store, with the reason and the payload as received.",
};

/// `dead_letter_replays`: dead letters `log-ingest replay` stored in their tables (appended:
/// `dead_letter` itself is never updated, as rows still in the streaming buffer cannot be).
pub const DEAD_LETTER_REPLAYS: OpsTable = OpsTable {
    name: "dead_letter_replays",
    fields: || {
        vec![
            Field::required("message_id", Text),
            Field::required("reason_code", Text),
            Field::nullable("event_type", Text),
            Field::required("table_name", Text),
            Field::required("replayed_at", Timestamp),
            Field::required("run_id", Text),
        ]
    },
    partitioned_by: "replayed_at",
    clustered_by: &[],
    description: "Dead letters `log-ingest replay` stored in their tables.",
};

/// `dq_results`: every data-quality check of every mart build.
pub const DQ_RESULTS: OpsTable = OpsTable {
    name: "dq_results",
    fields: || {
        vec![
            Field::required("run_id", Text),
            Field::required("target", Text),
            Field::required("mart", Text),
            Field::required("ds", Date),
            Field::required("check_name", Text),
            Field::required("kind", Text),
            Field::required("check_type", Text),
            Field::nullable("expression", Text),
            Field::nullable("value", Float64),
            Field::nullable("rows", Int64),
            Field::nullable("threshold", Float64),
            Field::required("passed", Bool),
            Field::required("recorded_at", Timestamp),
        ]
    },
    partitioned_by: "ds",
    clustered_by: &["mart"],
    description: "One row per data-quality check of every mart built by mart-build.",
};

/// `alerts`: the monitor's incidents, append-only; the newest row of an incident is its state.
pub const ALERTS: OpsTable = OpsTable {
    name: "alerts",
    fields: || {
        vec![
            Field::required("incident_key", Text).describe("Names the problem across checks: kind, worker, table or mart, date"),
            Field::required("kind", Text).describe("failed, missed, stale, fail_condition, dq_metric, dead_letters, cdc_lag, cdc_wal, counts"),
            Field::required("severity", Text).describe("warn or error"),
            Field::required("status", Text).describe("open; resolving (cleared, recovery notice not delivered yet); resolved"),
            Field::required("event", Text).describe("What this check did: opened, repeated, seen, resolved, held (quiet period), retry"),
            Field::required("title", Text),
            Field::nullable("worker", Text),
            Field::nullable("subject", Text).describe("Table, mart or unit"),
            Field::nullable("owner", Text),
            Field::nullable("run_id", Text).describe("The run it is about"),
            Field::required("first_seen", Timestamp),
            Field::required("last_seen", Timestamp),
            Field::nullable("last_sent_at", Timestamp).describe("When a message about it last reached every channel"),
            Field::nullable("resolved_at", Timestamp),
            Field::nullable("sent_to", Json).describe("Channel -> delivered, or the error of its last attempt"),
            Field::required("delivery_failures", Int64).describe("Sends that failed after every retry, so far"),
            Field::nullable("finding", Json).describe("The finding as the check saw it"),
            Field::required("check_run_id", Text),
            Field::required("recorded_at", Timestamp),
        ]
    },
    partitioned_by: "recorded_at",
    clustered_by: &["incident_key"],
    description: "Incidents of the sluice monitor: one row per change or send; the newest row of an incident is its state.",
};

/// `declared_tables`: what pipeline.yaml and marts/ declare of each table, written by the
/// monitor on each check for the catalog and freshness views.
pub const DECLARED_TABLES: OpsTable = OpsTable {
    name: "declared_tables",
    fields: || {
        vec![
            Field::required("dataset", Text),
            Field::required("table_name", Text),
            Field::required("producer", Text).describe("The worker that lands it"),
            Field::nullable("source", Text)
                .describe("The ledger's source of the unit that lands it"),
            Field::nullable("unit_table", Text).describe("The ledger's table_name of that unit"),
            Field::nullable("owner", Text),
            Field::nullable("description", Text),
            Field::nullable("schedule", Text).describe("Cron, UTC"),
            Field::nullable("warn_after_s", Int64),
            Field::nullable("error_after_s", Int64),
            Field::required("declared_at", Timestamp),
        ]
    },
    partitioned_by: "declared_at",
    clustered_by: &[],
    description:
        "What pipeline.yaml and marts/ declare of each table (newest declared_at is current).",
};

/// The view of dead letters not replayed yet, one row per message and reason.
pub const DEAD_LETTER_OPEN: &str = "dead_letter_open";

/// `CREATE OR REPLACE VIEW` of `DEAD_LETTER_OPEN` in `project.dataset`.
pub fn dead_letter_open_view(project: &str, dataset: &str) -> String {
    let dl = table_ref(project, dataset, DEAD_LETTER.name);
    let rp = table_ref(project, dataset, DEAD_LETTER_REPLAYS.name);
    let open = table_ref(project, dataset, DEAD_LETTER_OPEN);
    format!(
        "CREATE OR REPLACE VIEW {open} OPTIONS (description = 'Dead letters not replayed yet, one row per message and reason.') AS\n\
         SELECT d.* FROM {dl} AS d\n\
         WHERE NOT EXISTS (SELECT 1 FROM {rp} AS r WHERE r.message_id = d.message_id)\n\
         QUALIFY ROW_NUMBER() OVER (PARTITION BY d.message_id, d.reason_code ORDER BY d.received_at) = 1"
    )
}

impl OpsTable {
    /// The REST table resource that creates it.
    pub fn resource(&self) -> Value {
        let mut r = json!({
            "schema": {"fields": schema::to_json(&(self.fields)())},
            "timePartitioning": {"type": "DAY", "field": self.partitioned_by},
            "description": self.description,
        });
        if !self.clustered_by.is_empty() {
            r["clustering"] = json!({"fields": self.clustered_by});
        }
        r
    }

    /// Creates the table in `dataset` (the target's ops dataset), or adds the columns it lacks;
    /// a column whose type differs is an error naming it.
    pub async fn ensure(&self, bq: &BigQuery, dataset: &str) -> Result<()> {
        let Some(existing) = bq.table_schema(dataset, self.name).await? else {
            bq.create_table(dataset, self.name, self.resource()).await?;
            return Ok(());
        };
        let e = evolve(&existing, &(self.fields)(), false);
        if let Some(bad) = e.incompatible.first() {
            return Err(Error::bigquery(
                format!("checking {dataset}.{}", self.name),
                ErrorKind::Permanent,
                format!(
                    "column {bad} differs from what sluice writes; rename the table to keep it, and sluice makes a new one"
                ),
            ));
        }
        if e.changes() {
            bq.patch_schema(dataset, self.name, &e.fields).await?;
            tracing::info!(table = %format!("{dataset}.{}", self.name), columns = %e.added.join(","), "columns added");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_is_partitioned_by_one_of_its_dates() {
        for t in [
            RUNS,
            DEAD_LETTER,
            DEAD_LETTER_REPLAYS,
            DQ_RESULTS,
            ALERTS,
            DECLARED_TABLES,
        ] {
            let fields = (t.fields)();
            let p = fields.iter().find(|f| f.name == t.partitioned_by);
            assert!(
                matches!(p.and_then(Field::scalar), Some(Timestamp | Date)),
                "{} partitioned by {}",
                t.name,
                t.partitioned_by
            );
            for c in t.clustered_by {
                assert!(fields.iter().any(|f| &f.name == c), "{}: {c}", t.name);
            }
            assert_eq!(t.resource()["schema"]["fields"][0]["mode"], "REQUIRED");
        }
    }

    #[test]
    fn the_open_dead_letters_view() {
        assert!(dead_letter_open_view("p", "ops").starts_with(
            "CREATE OR REPLACE VIEW `p.ops.dead_letter_open` OPTIONS (description = 'Dead letters not replayed yet, one row per message and reason.') AS\nSELECT d.* FROM `p.ops.dead_letter` AS d\n"
        ));
    }
}
