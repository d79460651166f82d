//! Facts to judge in the tests: a limited role and its two tables, the wanted publication.

use super::facts::ACTIONS;
use super::*;
use crate::config::qualify;

pub(super) fn table(name: &str, owner: &str, owned: bool, select: bool) -> TableFacts {
    let (schema, name) = qualify(name);
    TableFacts {
        schema,
        name,
        configured: true,
        exists: true,
        owner: Some(owner.into()),
        owned,
        select,
        schema_usage: true,
        schema_owner: Some("pg_database_owner".into()),
    }
}

/// A role with REPLICATION and SELECT on two tables owned by `app`; no publication yet.
pub(super) fn limited() -> Facts {
    Facts {
        database: "shop".into(),
        database_owner: "app".into(),
        role: "sluice".into(),
        server_version_num: 150_004,
        platform: Platform::Postgres,
        wal_level: "logical".into(),
        max_replication_slots: 10,
        replication_slots_used: 1,
        superuser: false,
        replication: true,
        create_on_database: false,
        tables: vec![
            table("orders", "app", false, true),
            table("billing.invoices", "app", false, true),
        ],
        schemas: vec![],
        owners: vec![OwnerFacts {
            name: "app".into(),
            superuser: false,
            create_on_database: true,
        }],
        publication: None,
        slot: None,
    }
}

pub(super) fn wanted(scope: Scope) -> Wanted {
    Wanted {
        publication: "sluice_shop".into(),
        slot: "sluice_shop".into(),
        scope,
    }
}

pub(super) fn tables() -> Wanted {
    wanted(Scope::Tables(vec![
        qualify("orders"),
        qualify("billing.invoices"),
    ]))
}

pub(super) fn publication(tables: &[&str]) -> PublicationFacts {
    PublicationFacts {
        owner: "app".into(),
        owned: false,
        all_tables: false,
        tables: tables.iter().map(|t| qualify(t)).collect(),
        schemas: vec![],
        publishes: ACTIONS.iter().map(|a| a.to_string()).collect(),
    }
}
