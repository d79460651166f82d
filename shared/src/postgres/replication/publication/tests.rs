//! Tests of judging the publication: adopted, created, added to, or the SQL for who may.

use super::super::fixtures::{limited, publication, tables, wanted};
use super::super::*;

#[test]
fn an_owner_with_create_creates_the_publication_itself() {
    let mut f = limited();
    for t in &mut f.tables {
        t.owned = true;
    }
    f.create_on_database = true;
    let a = f.assess(&tables());
    assert!(a.is_ready(), "{:?}", a.missing);
    assert_eq!(
        a.publication,
        PublicationStep::Create(
            "CREATE PUBLICATION \"sluice_shop\" FOR TABLE \"public\".\"orders\", \"billing\".\"invoices\"".into()
        )
    );
    assert_eq!(a.sql_block(), "");
}

#[test]
fn a_role_owning_nothing_gets_the_publication_sql_for_the_owner() {
    let a = limited().assess(&tables());
    assert_eq!(
        a.missing,
        vec!["publication sluice_shop does not exist, and role sluice may not create it: it does not own public.orders, billing.invoices (owner app)"]
    );
    assert_eq!(
        a.sql_block(),
        "-- as app:\nCREATE PUBLICATION \"sluice_shop\" FOR TABLE \"public\".\"orders\", \"billing\".\"invoices\";\n"
    );
}

#[test]
fn an_existing_publication_that_covers_the_tables_is_adopted() {
    let mut f = limited();
    f.publication = Some(publication(&["orders", "billing.invoices", "extra"]));
    let a = f.assess(&tables());
    assert!(a.is_ready(), "{:?}", a.missing);
    assert_eq!(a.publication, PublicationStep::Adopt);
    // FOR ALL TABLES covers any list.
    let mut f = limited();
    f.publication = Some(PublicationFacts {
        all_tables: true,
        ..publication(&[])
    });
    assert_eq!(f.assess(&tables()).publication, PublicationStep::Adopt);
    assert!(f.assess(&wanted(Scope::AllTables)).is_ready());
}

#[test]
fn tables_missing_from_a_publication_are_added_by_whoever_may() {
    // The role owns the publication and the table: init adds it.
    let mut f = limited();
    f.tables[1].owned = true;
    f.publication = Some(PublicationFacts {
        owned: true,
        ..publication(&["orders"])
    });
    let a = f.assess(&tables());
    assert!(a.is_ready(), "{:?}", a.missing);
    assert_eq!(
        a.publication,
        PublicationStep::Add(vec![(
            "billing.invoices".into(),
            "ALTER PUBLICATION \"sluice_shop\" ADD TABLE \"billing\".\"invoices\"".into()
        )])
    );
    // It owns neither: the owner of both runs it.
    let mut f = limited();
    f.publication = Some(publication(&["orders"]));
    let a = f.assess(&tables());
    assert_eq!(
        a.missing,
        vec!["publication sluice_shop lacks billing.invoices, and role sluice may not add it: it does not own the publication (owner app), and it does not own billing.invoices (owner app)"]
    );
    assert_eq!(
        a.sql_block(),
        "-- as app:\nALTER PUBLICATION \"sluice_shop\" ADD TABLE \"billing\".\"invoices\";\n"
    );
}

#[test]
fn an_owner_without_create_on_the_database_is_granted_it_first() {
    let mut f = limited();
    f.owners[0].create_on_database = false;
    f.database_owner = "postgres".into();
    f.tables[1].select = false;
    f.replication = false;
    let a = f.assess(&tables());
    assert_eq!(a.missing.len(), 3, "{:?}", a.missing);
    assert_eq!(
        a.sql_block(),
        "-- as a superuser:\nALTER ROLE \"sluice\" WITH REPLICATION;\n\
         -- as postgres:\nGRANT CREATE ON DATABASE \"shop\" TO \"app\";\n\
         -- as app:\nGRANT SELECT ON \"billing\".\"invoices\" TO \"sluice\";\n\
         CREATE PUBLICATION \"sluice_shop\" FOR TABLE \"public\".\"orders\", \"billing\".\"invoices\";\n"
    );
    // The role owning every table but lacking CREATE gets it from the database's owner.
    let mut f = limited();
    for t in &mut f.tables {
        t.owned = true;
    }
    let a = f.assess(&tables());
    assert_eq!(
        a.missing,
        vec!["publication sluice_shop does not exist, and role sluice may not create it: it lacks CREATE on database shop"]
    );
    assert_eq!(
        a.sql_block(),
        "-- as app:\nGRANT CREATE ON DATABASE \"shop\" TO \"sluice\";\n"
    );
}

#[test]
fn tables_of_several_owners_need_a_member_of_each_or_a_superuser() {
    let mut f = limited();
    f.tables[1].owner = Some("finance".into());
    f.owners.push(OwnerFacts {
        name: "finance".into(),
        superuser: false,
        create_on_database: false,
    });
    let a = f.assess(&tables());
    assert!(
        a.missing[0].contains("(owner app, finance)"),
        "{:?}",
        a.missing
    );
    assert_eq!(
        a.fixes[0].run_as,
        RunAs::MemberOfEach(vec!["app".into(), "finance".into()])
    );
    assert!(a
        .sql_block()
        .starts_with("-- as a role that is a member of each of app, finance, or a superuser:\nCREATE PUBLICATION"));
    // One of them a superuser: that one.
    f.owners[1].superuser = true;
    assert_eq!(
        f.assess(&tables()).fixes[0].run_as,
        RunAs::Role("finance".into())
    );
}

#[test]
fn all_tables_and_schemas_need_a_superuser_unless_the_publication_covers_them() {
    let mut f = limited();
    f.tables.clear();
    f.platform = Platform::CloudSql;
    let a = f.assess(&wanted(Scope::AllTables));
    assert_eq!(
        a.missing,
        vec!["publication sluice_shop does not exist, and role sluice may not create it: FOR ALL TABLES needs a superuser (or list the tables under `cdc.tables`)"]
    );
    assert_eq!(
        a.sql_block(),
        "-- as a cloudsqlsuperuser member such as postgres:\nCREATE PUBLICATION \"sluice_shop\" FOR ALL TABLES;\n"
    );
    let schemas = wanted(Scope::Schemas(vec!["billing".into(), "crm".into()]));
    f.schemas = vec![
        SchemaFacts {
            name: "billing".into(),
            exists: true,
        },
        SchemaFacts {
            name: "crm".into(),
            exists: true,
        },
    ];
    assert!(f.assess(&schemas).sql_block().ends_with(
        "CREATE PUBLICATION \"sluice_shop\" FOR TABLES IN SCHEMA \"billing\", \"crm\";\n"
    ));
    // An existing publication with one of the schemas: the other is added by an admin.
    f.publication = Some(PublicationFacts {
        schemas: vec!["billing".into()],
        ..publication(&[])
    });
    let a = f.assess(&schemas);
    assert!(a.missing[0].starts_with("publication sluice_shop lacks schema crm"));
    assert!(a
        .sql_block()
        .ends_with("ALTER PUBLICATION \"sluice_shop\" ADD TABLES IN SCHEMA \"crm\";\n"));
    f.publication = Some(PublicationFacts {
        schemas: vec!["billing".into(), "crm".into()],
        ..publication(&[])
    });
    assert!(f.assess(&schemas).is_ready());
    // A superuser creates either itself.
    f.publication = None;
    f.superuser = true;
    assert_eq!(
        f.assess(&wanted(Scope::AllTables)).publication,
        PublicationStep::Create("CREATE PUBLICATION \"sluice_shop\" FOR ALL TABLES".into())
    );
    // Before PostgreSQL 15 there is no TABLES IN SCHEMA.
    f.server_version_num = 140_011;
    assert!(f.assess(&schemas).missing[0].contains("needs PostgreSQL 15"));
}
