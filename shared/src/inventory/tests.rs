//! The inventory's tests: what each reader reads off it.

use super::*;

/// A scratch directory with event schemas `ev/page_view.json` (table `views`) and
/// `ev/signup.json`.
fn with_events(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("inventory_{name}_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("ev")).unwrap();
    std::fs::write(
        dir.join("ev/page_view.json"),
        r#"{"type": "object", "x-bigquery": {"table": "views"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("ev/signup.json"),
        r#"{"type": "object", "description": "A new account."}"#,
    )
    .unwrap();
    dir
}

#[test]
fn the_pipeline_lands_what_it_declares() {
    let dir = with_events("lands");
    let p = Pipeline::parse(
        "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
         sources:\n  shop:\n    dsn: { env: X }\n    dataset: shop_raw\n    tables:\n      orders: { mode: incremental, watermark_column: at }\n\
         \x20   cdc:\n      tables: [orders, billing.invoices]\n      history: [billing.invoices]\n\
         events:\n  schemas: ev\n",
        "t",
    )
    .unwrap();
    let l = Landed::of(&p, &dir);
    let names: Vec<&str> = l.tables.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "events.signup",
            "events.signup_dedup",
            "events.views",
            "events.views_dedup",
            "shop_raw.orders",
            "shop_replica.billing__invoices",
            "shop_replica.billing__invoices_history",
            "shop_replica.orders",
        ]
    );
    assert_eq!(
        l.producer("shop_raw", "orders"),
        Some(&Producer::PgCopy {
            source: "shop".into(),
            table: "orders".into(),
            full: false
        })
    );
    assert_eq!(l.producer("ops", "runs"), Some(&Producer::Ops));
    assert_eq!(l.producer("shop_replica", "invoices"), None);
    let cdc = p.sources["shop"].cdc.as_ref().unwrap();
    assert!(crate::catalog::keeps_history(
        &cdc.history,
        "billing",
        "invoices"
    ));
    assert!(!crate::catalog::keeps_history(
        &cdc.history,
        "public",
        "invoices"
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// Where the three walks disagreed, the one walk says what cdc-sync writes: a history of
/// each table it names; a table named twice is one table.
#[test]
fn a_table_is_listed_once_with_the_history_cdc_sync_keeps() {
    let p = Pipeline::parse(
        "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
         sources:\n  shop:\n    dsn: { env: X }\n    tables: {}\n\
         \x20   cdc:\n      tables: [public.orders]\n      history: [orders, audit.log]\n      per_table: {orders: {description: All orders.}}\n\
         \x20 billing:\n    dsn: { env: Y }\n    tables: {}\n\
         \x20   cdc: { schemas: [billing], history: [billing.invoices] }\n",
        "t",
    )
    .unwrap();
    let inv = Inventory::inputs(&p, Path::new("."));
    let names: Vec<String> = inv
        .tables
        .iter()
        .map(|t| format!("{}.{} {:?}", t.dataset, t.table, t.description))
        .collect();
    assert_eq!(
        names,
        [
            "shop_replica.orders Some(\"All orders.\")",
            "shop_replica.orders_history Some(\"Every change of public.orders, append-only.\")",
        ]
    );
    let l = inv.landed();
    // cdc-sync never replicates audit.log, so it writes no history of it.
    assert_eq!(l.producer("shop_replica", "audit__log_history"), None);
    // A whole schema's histories are in its open dataset.
    assert_eq!(
        l.producer("billing_replica", "billing__invoices_history"),
        Some(&Producer::Cdc {
            source: "billing".into()
        })
    );
}

#[cfg(feature = "marts")]
#[test]
fn every_scheduled_unit_runs_with_its_arguments() {
    let dir = with_events("units");
    let p = Pipeline::parse(
        "name: t\nbigquery: { project: p }\nlake: { bucket: b }\n\
         owners: {ana: {slack: U1}}\n\
         alerts: {digest: {at: \"07:15\", time_zone: Europe/Berlin}}\n\
         sources:\n  shop:\n    dsn: { env: X }\n    owner: \"@ana\"\n    tables:\n      orders: { mode: full, large: true }\n      clicks: { mode: incremental, watermark_column: at, schedule: hourly }\n\
         \x20   cdc:\n      tables: [orders]\n      verify: '30 2 * * 0'\n\
         events:\n  schemas: ev\n",
        "t",
    )
    .unwrap();
    let m = crate::marts::Mart::parse(
        "/*\ndescription: d\n*/\nSELECT 1 AS x FROM shop.clicks",
        Path::new("marts/m/daily.sql"),
        "m",
        "daily",
    )
    .unwrap();
    let dag = crate::marts::Dag::build(vec![m], &Landed::of(&p, &dir)).unwrap();
    let inv = Inventory::checked(&p, &dir, &dag).unwrap();
    let units: Vec<String> = inv
        .units
        .iter()
        .map(|u| {
            format!(
                "{} | {} | {} {:?} | large {} expected {} | {:?}",
                u.label(),
                u.command_line().join(" "),
                u.schedule.cron(),
                u.time_zone,
                u.large,
                u.expected,
                u.owner
            )
        })
        .collect();
    assert_eq!(
        units,
        [
            "pg-copy shop.clicks | --table shop.clicks | 15 * * * * None | large false expected true | Some(\"ana\")",
            "pg-copy shop.orders | --table shop.orders | 0 6 * * * None | large true expected true | Some(\"ana\")",
            "cdc-sync shop | run --source shop --max-duration 4m | */5 * * * * None | large false expected true | Some(\"ana\")",
            "cdc-sync shop | status --source shop | 30 2 * * 0 None | large false expected false | Some(\"ana\")",
            "mart-build m.daily | run --select m.daily | 45 0 * * * None | large false expected true | None",
            "monitor check | check | */10 * * * * None | large false expected false | None",
            "monitor digest | digest | 15 7 * * * Some(\"Europe/Berlin\") | large false expected false | None",
        ]
    );
    let kinds: Vec<String> = inv
        .tables
        .iter()
        .map(|t| format!("{}.{} {:?}", t.dataset, t.table, t.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            "events.signup Events",
            "events.signup_dedup Dedup",
            "events.views Events",
            "events.views_dedup Dedup",
            "m.daily Mart",
            "shop.clicks Copy { full: false }",
            "shop.orders Copy { full: true }",
            "shop_replica.orders Replica",
        ]
    );
    // What a mart may read is every table but the marts.
    assert!(inv.landed().producer("m", "daily").is_none());
    assert_eq!(
        inv.tables[0].description.as_deref(),
        Some("A new account."),
        "from the schema document"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let err = Inventory::checked(&p, &dir, &dag).unwrap_err().to_string();
    assert!(err.contains("cannot read event schemas in"), "{err}");
    assert_eq!(Inventory::of(&p, &dir, &dag).units.len(), 7);
}
