//! Tests of reading and validating pipeline.yaml.

use std::time::Duration;

use super::validate::line_of;
use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("50m").unwrap(), Duration::from_secs(3000));
    assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
    assert!(parse_duration("m").is_err());
}

const SAMPLE: &str = r#"
name: shop
bigquery:
  project: acme-data
lake:
  bucket: acme-lake
sources:
  shop:
    dsn: { env: SHOP_DATABASE_URL }
    tables:
      users:
        mode: full
      orders:
        mode: incremental
        watermark_column: created_at
targets:
  local:
    project: sluice-local
    bigquery_endpoint: http://127.0.0.1:9050
    lake: .local/lake
    no_auth: true
  dev:
    dataset_suffix: _dev
  prod: {}
"#;

#[test]
fn parses_the_sample() {
    let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
    let orders = &p.sources["shop"].tables["orders"];
    assert_eq!(orders.mode, Mode::Incremental);
    assert_eq!(orders.schema, "public");
    assert_eq!(p.bigquery.ops_dataset, "ops");
}

#[test]
fn targets_resolve_datasets_and_lake() {
    let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
    let prod = p.target("prod").unwrap();
    assert_eq!(prod.dataset("shop"), "shop");
    assert_eq!(prod.project, "acme-data");
    assert_eq!(
        prod.lake,
        LakeLocation::Gcs {
            bucket: "acme-lake".into()
        }
    );
    let dev = p.target("dev").unwrap();
    assert_eq!(dev.dataset("shop"), "shop_dev");
    let pr = p.target("pr-42").unwrap();
    assert_eq!(pr.dataset("ops"), "ops_dev_pr_42");
    let err = p.target("prdo").unwrap_err().to_string();
    assert!(err.contains("unknown target `prdo`"), "{err}");
    assert!(err.contains("dev, local, prod"), "{err}");
}

#[test]
fn timeouts_default_and_are_set_per_target() {
    let p = Pipeline::parse(SAMPLE, "pipeline.yaml").unwrap();
    assert_eq!(p.target("prod").unwrap().timeouts, Timeouts::default());
    let set = SAMPLE.replace(
        "    dataset_suffix: _dev",
        "    dataset_suffix: _dev\n    timeouts: { connect: 2s, statement: 10m }",
    );
    let p = Pipeline::parse(&set, "pipeline.yaml").unwrap();
    let t = p.target("pr-7").unwrap().timeouts;
    assert_eq!(
        (t.connect, t.request, t.statement),
        (
            Duration::from_secs(2),
            Timeouts::default().request,
            Duration::from_secs(600)
        )
    );
    let bad = SAMPLE.replace(
        "    dataset_suffix: _dev",
        "    dataset_suffix: _dev\n    timeouts: { connect: 0s }",
    );
    let e = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("must be more than 0") && e.contains("line 24"),
        "{e}"
    );
}

#[test]
fn unknown_keys_name_the_key_and_line() {
    let bad = SAMPLE.replace(
        "        mode: full",
        "        mode: full\n        modee: full",
    );
    let err = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `modee`"), "{err}");
    assert!(err.contains("line 13"), "{err}");
}

#[test]
fn bad_values_name_the_key_and_line() {
    let bad = SAMPLE.replace("mode: full", "mode: sometimes");
    let err = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `sometimes`"), "{err}");
    assert!(err.contains("line 12"), "{err}");
}

#[test]
fn incremental_without_watermark_is_an_error_with_its_line() {
    let bad = SAMPLE.replace("        watermark_column: created_at\n", "");
    let err = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sources.shop.tables.orders (line 13)"),
        "{err}"
    );
    assert!(err.contains("watermark_column"), "{err}");
}

#[test]
fn tables_are_copied_daily_or_hourly() {
    let hourly = SAMPLE.replace(
        "        mode: full\n",
        "        mode: full\n        schedule: hourly\n",
    );
    let p = Pipeline::parse(&hourly, "pipeline.yaml").unwrap();
    assert_eq!(p.sources["shop"].tables["users"].schedule, Schedule::Hourly);
    let cron = SAMPLE.replace(
        "        mode: full\n",
        "        mode: full\n        schedule: 0 3 * * *\n",
    );
    let e = Pipeline::parse(&cron, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sources.shop.tables.users.schedule (line 13): `0 3 * * *`: a copy runs daily"),
        "{e}"
    );
    let bad = SAMPLE.replace(
        "        mode: full\n",
        "        mode: full\n        schedule: weekly\n",
    );
    let e = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("schedule `weekly`"), "{e}");
}

#[test]
fn inline_secrets_are_refused() {
    let bad = SAMPLE.replace(
        "dsn: { env: SHOP_DATABASE_URL }",
        "dsn: postgres://u:pw@h/db",
    );
    let err = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sources.shop.dsn"), "{err}");
    assert!(
        err.contains("a secret is never written in pipeline.yaml"),
        "{err}"
    );
    assert!(
        !err.contains("pw@h"),
        "the error does not repeat the secret: {err}"
    );
    // A webhook URL likewise.
    let hook = format!(
        "{SAMPLE}alerts:\n  channels:\n    s: {{ kind: slack, url: \"https://hooks.slack.com/services/T0/B0/xyz\" }}\n  default: [s]\n"
    );
    let err = Pipeline::parse(&hook, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("alerts.channels.s.url: a secret is never written"),
        "{err}"
    );
    assert!(!err.contains("xyz"), "{err}");
    // Both fields, or none, are refused by name.
    let both = SAMPLE.replace(
        "dsn: { env: SHOP_DATABASE_URL }",
        "dsn: { env: A, secret: projects/p/secrets/s }",
    );
    let err = Pipeline::parse(&both, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("exactly one of"), "{err}");
}

#[test]
fn bad_table_names_are_refused() {
    let bad = SAMPLE.replace("      users:", "      \"us-ers\":");
    let err = Pipeline::parse(&bad, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid BigQuery name"), "{err}");
}

#[test]
fn cdc_blocks_are_checked() {
    let base = "name: x\nbigquery: { project: p }\nlake: { bucket: b }\nsources:\n  shop:\n    dsn: { env: X }\n    cdc:\n";
    let p = Pipeline::parse(
        &format!("{base}      tables: [orders, billing.invoices]\n      deletes: hard\n"),
        "t",
    )
    .unwrap();
    let cdc = p.sources["shop"].cdc.as_ref().unwrap();
    assert_eq!(cdc.deletes, DeleteMode::Hard);
    // The replicas' dataset (`shop_replica`) is the catalog's: its tests check it.
    assert_eq!(
        (cdc.slot("shop"), cdc.publication("shop")),
        ("sluice_shop".into(), "sluice_shop".into())
    );
    let both = Pipeline::parse(
        &format!("{base}      tables: [a]\n      all_tables: true\n"),
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(
        both.contains("sources.shop.cdc (line 7): give exactly one of"),
        "{both}"
    );
    let bad_slot = Pipeline::parse(
        &format!("{base}      tables: [a]\n      slot: My-Slot\n"),
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad_slot.contains("sources.shop.cdc.slot (line 9)"),
        "{bad_slot}"
    );
    let unknown = Pipeline::parse(
        &format!("{base}      tables: [a]\n      delete: hard\n"),
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("unknown field `delete`"), "{unknown}");
}

#[test]
fn duplicate_keys_name_both_lines() {
    let twice = SAMPLE.replace(
            "      users:\n        mode: full\n",
            "      users:\n        mode: full\n      users:\n        mode: incremental\n        watermark_column: at\n",
        );
    let e = Pipeline::parse(&twice, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
            e,
            "config: pipeline.yaml: sources.shop.tables: key `users` is given twice, at lines 11 and 13; keep one"
        );
    let top = format!("{SAMPLE}name: again\n");
    let e = Pipeline::parse(&top, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(": key `name` is given twice, at lines 2 and 25"),
        "{e}"
    );
    let flow = SAMPLE.replace("  prod: {}", "  prod: { no_auth: true, no_auth: false }");
    let e = Pipeline::parse(&flow, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("targets.prod: key `no_auth` is given twice on line 24"),
        "{e}"
    );
    let nested = SAMPLE.replace(
            "    dataset_suffix: _dev",
            "    dataset_suffix: _dev\n    sources:\n      shop: { dsn: { env: A } }\n    dataset_suffix: _dev2",
        );
    let e = Pipeline::parse(&nested, "pipeline.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("targets.dev: key `dataset_suffix` is given twice, at lines 23 and 26"),
        "{e}"
    );
}

#[test]
fn line_of_follows_nesting() {
    assert_eq!(
        line_of(SAMPLE, &["sources", "shop", "tables", "orders"]),
        Some(13)
    );
    assert_eq!(
        line_of(SAMPLE, &["targets", "dev", "dataset_suffix"]),
        Some(23)
    );
    assert_eq!(line_of(SAMPLE, &["sources", "nope"]), None);
}
