//! Reading the facts from the database's catalog: queries any role may run; nothing is changed.

use std::collections::BTreeSet;

use super::facts::{
    Facts, OwnerFacts, Platform, PublicationFacts, SchemaFacts, Scope, SlotFacts, TableFacts,
    Wanted, ACTIONS,
};
use crate::error::Result;
use crate::postgres::PgConnection;

const CTX: &str = "reading what the role may do for logical replication";

impl Facts {
    /// Reads the facts for `wanted` (catalog queries any role may run; nothing is changed).
    pub async fn read(conn: &PgConnection, wanted: &Wanted) -> Result<Facts> {
        let mut facts = read_server_and_role(conn).await?;
        facts.publication =
            read_publication(conn, &wanted.publication, facts.server_version_num).await?;
        let schemas = match &wanted.scope {
            Scope::Schemas(s) => s.clone(),
            Scope::Tables(_) | Scope::AllTables => vec![],
        };
        facts.tables = read_tables(conn, wanted, &schemas).await?;
        if !schemas.is_empty() {
            facts.schemas = read_schemas(conn, &schemas).await?;
        }
        facts.owners = read_owners(conn, &facts).await?;
        facts.slot = read_slot(conn, &wanted.slot).await?;
        Ok(facts)
    }
}

/// The server, the role and the platform; no tables, publication or slot yet.
async fn read_server_and_role(conn: &PgConnection) -> Result<Facts> {
    let row = conn.query_one(CTX, ROLE_SQL, &[]).await?;
    let rds: bool = row.get(9);
    let platform = if row.get::<_, bool>(8) {
        Platform::CloudSql
    } else if rds {
        Platform::Rds
    } else {
        Platform::Postgres
    };
    let rolreplication: bool = row.get(7);
    let rds_replication: bool = row.get(10);
    Ok(Facts {
        role: row.get(0),
        database: row.get(1),
        server_version_num: row.get(2),
        wal_level: row.get(3),
        max_replication_slots: row.get(4),
        replication_slots_used: row.get(5),
        superuser: row.get(6),
        replication: rolreplication || (platform == Platform::Rds && rds_replication),
        platform,
        create_on_database: row.get(11),
        database_owner: row.get(12),
        tables: vec![],
        schemas: vec![],
        owners: vec![],
        publication: None,
        slot: None,
    })
}

/// The publication named `name`, if it exists: its owner, tables, schemas and actions.
async fn read_publication(
    conn: &PgConnection,
    name: &str,
    server_version_num: i32,
) -> Result<Option<PublicationFacts>> {
    let Some(r) = conn.query_opt(CTX, PUBLICATION_SQL, &[&name]).await? else {
        return Ok(None);
    };
    let tables = conn
        .query(
            CTX,
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let schemas = if server_version_num >= 150_000 {
        conn.query(CTX, PUBLICATION_SCHEMAS_SQL, &[&name])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        vec![]
    };
    let publishes = ACTIONS
        .iter()
        .zip(3usize..7)
        .filter(|(_, i)| r.get::<_, bool>(*i))
        .map(|(a, _)| a.to_string())
        .collect();
    Ok(Some(PublicationFacts {
        owner: r.get(0),
        owned: r.get(1),
        all_tables: r.get(2),
        tables,
        schemas,
        publishes,
    }))
}

/// Every table that matters (`TABLES_SQL`) and the role's rights on it.
async fn read_tables(
    conn: &PgConnection,
    wanted: &Wanted,
    schemas: &[String],
) -> Result<Vec<TableFacts>> {
    let (configured, all): (Vec<(String, String)>, bool) = match &wanted.scope {
        Scope::Tables(t) => (t.clone(), false),
        Scope::Schemas(_) => (vec![], false),
        Scope::AllTables => (vec![], true),
    };
    let (cs, ct): (Vec<String>, Vec<String>) = configured.into_iter().unzip();
    Ok(conn
        .query(
            CTX,
            TABLES_SQL,
            &[&cs, &ct, &wanted.publication, &schemas, &all],
        )
        .await?
        .iter()
        .map(|r| TableFacts {
            schema: r.get(0),
            name: r.get(1),
            configured: r.get(2),
            exists: r.get(3),
            owner: r.get(4),
            owned: r.get(5),
            select: r.get(6),
            schema_usage: r.get(7),
            schema_owner: r.get(8),
        })
        .collect())
}

/// Whether each configured schema exists.
async fn read_schemas(conn: &PgConnection, schemas: &[String]) -> Result<Vec<SchemaFacts>> {
    Ok(conn
        .query(
            CTX,
            "SELECT s, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) FROM unnest($1::text[]) AS s",
            &[&schemas],
        )
        .await?
        .iter()
        .map(|r| SchemaFacts {
            name: r.get(0),
            exists: r.get(1),
        })
        .collect())
}

/// The roles owning the tables or the publication: whether each could create the publication.
async fn read_owners(conn: &PgConnection, facts: &Facts) -> Result<Vec<OwnerFacts>> {
    let mut owners: BTreeSet<String> = facts
        .tables
        .iter()
        .filter_map(|t| t.owner.clone())
        .collect();
    if let Some(p) = &facts.publication {
        owners.insert(p.owner.clone());
    }
    let owners: Vec<String> = owners.into_iter().collect();
    Ok(conn
        .query(
            CTX,
            "SELECT rolname::text, rolsuper, has_database_privilege(oid, current_database(), 'CREATE')
             FROM pg_roles WHERE rolname = ANY($1::text[]) ORDER BY 1",
            &[&owners],
        )
        .await?
        .iter()
        .map(|r| OwnerFacts {
            name: r.get(0),
            superuser: r.get(1),
            create_on_database: r.get(2),
        })
        .collect())
}

/// The slot named `slot`, if it exists.
async fn read_slot(conn: &PgConnection, slot: &str) -> Result<Option<SlotFacts>> {
    Ok(conn
        .query_opt(
            CTX,
            "SELECT plugin::text, database::text, coalesce(database::text = current_database(), false), wal_status
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .map(|r| SlotFacts {
            plugin: r.get(0),
            database: r.get(1),
            same_database: r.get(2),
            wal_status: r.get(3),
        }))
}

/// The server, the role, and the roles that mark a managed service. On RDS the REPLICATION
/// attribute cannot be granted; membership in `rds_replication` stands for it.
const ROLE_SQL: &str = "
SELECT current_user::text, current_database()::text,
       current_setting('server_version_num')::int,
       current_setting('wal_level'), current_setting('max_replication_slots')::int,
       (SELECT count(*) FROM pg_replication_slots),
       r.rolsuper, r.rolreplication,
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'cloudsqlsuperuser'),
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname IN ('rds_superuser', 'rds_replication')),
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'rds_replication' AND pg_has_role(g.oid, 'MEMBER')),
       has_database_privilege(current_database(), 'CREATE'),
       pg_get_userbyid(d.datdba)::text
FROM pg_roles r, pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()";

const PUBLICATION_SQL: &str = "
SELECT pg_get_userbyid(p.pubowner)::text, pg_has_role(p.pubowner, 'USAGE'), p.puballtables,
       p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
FROM pg_publication p WHERE p.pubname = $1";

const PUBLICATION_SCHEMAS_SQL: &str = "
SELECT n.nspname::text
FROM pg_publication_namespace pn
JOIN pg_publication p ON p.oid = pn.pnpubid
JOIN pg_namespace n ON n.oid = pn.pnnspid
WHERE p.pubname = $1 ORDER BY 1";

/// Every table that matters: configured by name ($1 schemas, $2 names), in the publication
/// ($3), in the configured schemas ($4), or anywhere outside the system schemas ($5, for
/// `all_tables`); with its owner and the role's rights on it and its schema. Ownership counts
/// through membership (`USAGE`: the role has the owner's privileges), as Postgres checks it.
const TABLES_SQL: &str = "
WITH wanted AS (
    SELECT w.s AS schema, w.t AS name, true AS configured
    FROM unnest($1::text[], $2::text[]) AS w(s, t)
    UNION ALL
    SELECT schemaname::text, tablename::text, false FROM pg_publication_tables WHERE pubname = $3
    UNION ALL
    SELECT n.nspname::text, c.relname::text, false
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
      AND (n.nspname = ANY($4::text[])
           OR ($5 AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'))
), tables AS (
    SELECT schema, name, bool_or(configured) AS configured FROM wanted GROUP BY 1, 2
)
SELECT t.schema, t.name, t.configured, c.oid IS NOT NULL,
       pg_get_userbyid(c.relowner)::text,
       coalesce(pg_has_role(c.relowner, 'USAGE'), false),
       coalesce(has_table_privilege(c.oid, 'SELECT'), false),
       coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
       pg_get_userbyid(n.nspowner)::text
FROM tables t
LEFT JOIN pg_namespace n ON n.nspname = t.schema
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.name AND c.relkind IN ('r', 'p')
ORDER BY 1, 2";
