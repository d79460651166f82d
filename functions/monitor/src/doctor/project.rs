//! What the project holds for the pipeline: credentials that work, every dataset and ops
//! table the target writes (with the staging dataset's expiry), and a readable lake.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice::config::Target;

use super::report::{apply_hint, Mark, Report};
use crate::context::{lake_uri, Monitor};

/// ✓ with the principal, or ✗ with how to log in. Returns whether Google calls can be made.
pub(super) async fn credentials(r: &mut Report, t: &Target) -> bool {
    if t.no_auth {
        r.add(
            Mark::Ok,
            "credentials",
            format!(
                "none needed (target {} has no_auth: the local emulators)",
                t.name
            ),
        );
        return true;
    }
    match sluice::auth::Auth::for_target(t).token().await {
        Ok(_) => {
            r.add(
                Mark::Ok,
                "credentials",
                sluice::auth::Auth::for_target(t).principal().await,
            );
            true
        }
        Err(e) => {
            r.add(
                Mark::Fail,
                "credentials",
                format!(
                    "{} — run `gcloud auth application-default login`, or point GOOGLE_APPLICATION_CREDENTIALS at a key or workload identity file",
                    e.into_message()
                ),
            );
            false
        }
    }
}

/// A dataset's access list (`None`: the dataset does not exist); datasets whose list could
/// not be read are not in the map.
pub(super) type Accesses = BTreeMap<String, Option<Vec<Value>>>;

/// Every dataset and ops table the target writes, and the staging dataset's expiry. Keeps
/// each dataset's access list for the grants.
pub(super) async fn datasets(
    r: &mut Report,
    m: &Monitor,
    d: &Value,
    cloud: bool,
    accesses: &mut Accesses,
) {
    let made_by = if cloud {
        apply_hint(&m.target.name)
    } else {
        "the workers create it on their first run on this target".to_string()
    };
    let empty = serde_json::Map::new();
    for (id, spec) in d["datasets"].as_object().unwrap_or(&empty) {
        let what = format!("dataset {id}");
        match m.bq.get_dataset(id).await {
            Ok(Some(ds)) => {
                if let Some(a) = ds["access"].as_array() {
                    accesses.insert(id.clone(), Some(a.clone()));
                }
                let staging = spec["role"] == "staging";
                let expiry = ds["defaultTableExpirationMs"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok());
                match (staging, expiry) {
                    (true, None) if cloud => r.add(
                        Mark::Warn,
                        what,
                        "exists, but its tables never expire: staging tables would be kept (and billed) forever; set a default table expiration of a day",
                    ),
                    (true, Some(ms)) => r.add(
                        Mark::Ok,
                        what,
                        format!("exists; staging tables expire after {}", hours(ms)),
                    ),
                    _ => r.add(Mark::Ok, what, "exists"),
                }
            }
            Ok(None) if cloud => {
                accesses.insert(id.clone(), None);
                r.add(Mark::Fail, what, format!("missing — {made_by}"))
            }
            Ok(None) => r.add(Mark::Skip, what, format!("not there yet: {made_by}")),
            Err(e) => r.add(
                Mark::Skip,
                what,
                format!("cannot read it: {}", e.into_message()),
            ),
        }
    }
    let ops = m.ops.clone();
    let tables: Vec<String> = d["ops_tables"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut missing = vec![];
    for table in &tables {
        match m.bq.get_table(&ops, table).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(table.clone()),
            Err(e) => {
                r.add(
                    Mark::Skip,
                    format!("ops tables of {ops}"),
                    format!("cannot read them: {}", e.into_message()),
                );
                return;
            }
        }
    }
    let what = format!("ops tables of {ops}");
    if missing.is_empty() {
        r.add(Mark::Ok, what, format!("{} exist", tables.join(", ")));
    } else if cloud {
        r.add(
            Mark::Fail,
            what,
            format!(
                "{} missing — {made_by} (the monitor may not create them)",
                missing.join(", ")
            ),
        );
    } else {
        r.add(
            Mark::Skip,
            what,
            format!("{} not there yet: {made_by}", missing.join(", ")),
        );
    }
}

fn hours(ms: u64) -> String {
    match ms / 3_600_000 {
        24 => "a day".into(),
        h => format!("{h} h"),
    }
}

/// The lake can be listed with the target's credentials.
pub(super) async fn lake(r: &mut Report, t: &Target) {
    let what = format!("lake {}", lake_uri(&t.lake));
    let listed = match sluice::lake::Lake::open(&t.lake, &sluice::auth::Auth::for_target(t)) {
        Ok(lake) => lake.list(&object_store::path::Path::from("status")).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(_) => r.add(Mark::Ok, what, "readable"),
        Err(e) => r.add(
            Mark::Fail,
            what,
            format!(
                "{} — terraform apply creates the bucket; the caller needs storage.objects.list on it",
                e.into_message()
            ),
        ),
    }
}
