//! Tests of judging the server, the role and its rights to read.

use super::super::fixtures::{limited, publication, table, tables, wanted};
use super::super::*;
use crate::config::qualify;

#[test]
fn replication_is_granted_by_the_platforms_admin() {
    let mut f = limited();
    f.replication = false;
    f.publication = Some(publication(&["orders", "billing.invoices"]));
    let a = f.assess(&tables());
    assert_eq!(
        a.missing,
        vec!["role sluice lacks the REPLICATION attribute, which creating and reading the slot needs"]
    );
    assert_eq!(
        a.sql_block(),
        "-- as a superuser:\nALTER ROLE \"sluice\" WITH REPLICATION;\n"
    );
    f.platform = Platform::CloudSql;
    assert_eq!(
        f.assess(&tables()).sql_block(),
        "-- as a cloudsqlsuperuser member such as postgres:\nALTER ROLE \"sluice\" WITH REPLICATION;\n"
    );
    f.platform = Platform::Rds;
    let a = f.assess(&tables());
    assert!(a.missing[0].contains("not a member of rds_replication"));
    assert_eq!(
        a.sql_block(),
        "-- as the master user (an rds_superuser member):\nGRANT rds_replication TO \"sluice\";\n"
    );
    // A superuser needs nothing.
    f.superuser = true;
    assert!(f.assess(&tables()).is_ready());
}

#[test]
fn select_and_schema_usage_are_granted_by_their_owners() {
    let mut f = limited();
    f.publication = Some(publication(&["orders", "billing.invoices", "audit.log"]));
    f.tables[0].select = false;
    f.tables[1].select = false;
    f.tables[1].schema_usage = false;
    f.tables[1].schema_owner = Some("finance".into());
    f.tables.push(TableFacts {
        configured: false,
        ..table("audit.log", "auditor", false, false)
    });
    let a = f.assess(&tables());
    assert_eq!(
        a.missing,
        vec![
            "role sluice lacks USAGE on schema billing",
            "role sluice may not SELECT public.orders, billing.invoices, audit.log, which the snapshot reads"
        ]
    );
    assert_eq!(
        a.sql_block(),
        "-- as finance:\nGRANT USAGE ON SCHEMA \"billing\" TO \"sluice\";\n\
         -- as app:\nGRANT SELECT ON \"public\".\"orders\", \"billing\".\"invoices\" TO \"sluice\";\n\
         -- as auditor:\nGRANT SELECT ON \"audit\".\"log\" TO \"sluice\";\n"
    );
}

#[test]
fn the_server_settings_name_their_fix() {
    let mut f = limited();
    f.publication = Some(publication(&["orders", "billing.invoices"]));
    assert!(f.assess(&tables()).is_ready());
    f.wal_level = "replica".into();
    assert!(f.assess(&tables()).missing[0].contains("wal_level = logical in postgresql.conf"));
    f.platform = Platform::CloudSql;
    assert!(f.assess(&tables()).missing[0].contains("cloudsql.logical_decoding=on"));
    f.platform = Platform::Rds;
    assert!(f.assess(&tables()).missing[0].contains("rds.logical_replication=1"));
    let mut f = limited();
    f.publication = Some(publication(&["orders", "billing.invoices"]));
    f.max_replication_slots = 0;
    assert!(f.assess(&tables()).missing[0].contains("max_replication_slots is 0"));
    f.max_replication_slots = 1;
    assert!(f.assess(&tables()).missing[0].contains("all 1 replication slots are in use"));
    // An existing slot needs no free one.
    f.slot = Some(SlotFacts {
        plugin: Some("pgoutput".into()),
        database: Some("shop".into()),
        same_database: true,
        wal_status: Some("reserved".into()),
    });
    assert!(f.assess(&tables()).is_ready());
}

#[test]
fn what_is_not_there_is_named() {
    let mut f = limited();
    f.tables[1].exists = false;
    f.tables[1].owner = None;
    let a = f.assess(&tables());
    assert_eq!(
        a.missing,
        vec!["table billing.invoices does not exist in database shop (fix `cdc.tables`)"]
    );
    let mut f = limited();
    f.publication = Some(PublicationFacts {
        publishes: vec!["insert".into(), "update".into()],
        ..publication(&["orders", "billing.invoices"])
    });
    let a = f.assess(&tables());
    assert!(a.missing[0].contains("does not publish delete, truncate"));
    assert!(a.sql_block().contains(
        "ALTER PUBLICATION \"sluice_shop\" SET (publish = 'insert, update, delete, truncate');"
    ));
    let bad = SlotFacts {
        plugin: Some("test_decoding".into()),
        database: Some("shop".into()),
        same_database: true,
        wal_status: None,
    };
    assert!(bad.unusable("s").unwrap().contains("not a pgoutput slot"));
}

#[test]
fn identifiers_are_quoted() {
    let mut f = limited();
    f.role = "we\"ird".into();
    f.tables = vec![table("Odd Schema.t\"x", "app", false, false)];
    let w = wanted(Scope::Tables(vec![qualify("Odd Schema.t\"x")]));
    let sql = f.assess(&w).sql_block();
    assert!(
        sql.contains("GRANT SELECT ON \"Odd Schema\".\"t\"\"x\" TO \"we\"\"ird\";"),
        "{sql}"
    );
    assert!(
        sql.contains("FOR TABLE \"Odd Schema\".\"t\"\"x\";"),
        "{sql}"
    );
}
