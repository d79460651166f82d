//! What a source's `cdc:` block asks of its database (`Wanted`), and what the database says
//! that bears on it (`Facts`, filled by `read`).

use crate::config::{qualify, CdcConfig};
use crate::postgres::catalog::quote_ident;

/// What a publication may publish; cdc-sync needs all four.
pub(super) const ACTIONS: [&str; 4] = ["insert", "update", "delete", "truncate"];

/// What a source's `cdc:` block asks of its database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub publication: String,
    pub slot: String,
    pub scope: Scope,
}

/// Which tables the publication must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `tables:`, as (schema, table).
    Tables(Vec<(String, String)>),
    /// `schemas:`: `FOR TABLES IN SCHEMA`.
    Schemas(Vec<String>),
    /// `all_tables: true`: `FOR ALL TABLES`.
    AllTables,
}

impl Wanted {
    /// What source `source`'s `cdc:` block configures.
    pub fn for_source(source: &str, cdc: &CdcConfig) -> Wanted {
        let scope = if cdc.all_tables {
            Scope::AllTables
        } else if !cdc.schemas.is_empty() {
            Scope::Schemas(cdc.schemas.clone())
        } else {
            Scope::Tables(cdc.tables.iter().map(|t| qualify(t)).collect())
        };
        Wanted {
            publication: cdc.publication(source),
            slot: cdc.slot(source),
            scope,
        }
    }
}

/// Where the server runs: its settings and its most privileged role differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Postgres,
    /// Cloud SQL for PostgreSQL (the role `cloudsqlsuperuser` exists).
    CloudSql,
    /// Amazon RDS or Aurora (the role `rds_superuser` or `rds_replication` exists).
    Rds,
}

impl Platform {
    /// Who holds the rights no ordinary role has.
    pub fn admin(self) -> &'static str {
        match self {
            Platform::Postgres => "a superuser",
            Platform::CloudSql => "a cloudsqlsuperuser member such as postgres",
            Platform::Rds => "the master user (an rds_superuser member)",
        }
    }

    pub(super) fn logical_decoding_fix(self) -> &'static str {
        match self {
            Platform::Postgres => {
                "set wal_level = logical in postgresql.conf and restart the server"
            }
            Platform::CloudSql => {
                "set the Cloud SQL flag cloudsql.logical_decoding=on (the instance restarts)"
            }
            Platform::Rds => {
                "set rds.logical_replication=1 in the instance's parameter group and reboot it"
            }
        }
    }
}

/// Everything the database says that bears on replicating the wanted tables.
#[derive(Debug, Clone)]
pub struct Facts {
    pub database: String,
    pub database_owner: String,
    /// The role the pipeline connects as (`current_user`).
    pub role: String,
    pub server_version_num: i32,
    pub platform: Platform,
    pub wal_level: String,
    pub max_replication_slots: i32,
    /// Slots of any kind and database: all count against `max_replication_slots`.
    pub replication_slots_used: i64,
    pub superuser: bool,
    /// May create and read slots: the REPLICATION attribute (on RDS: membership in
    /// `rds_replication`).
    pub replication: bool,
    pub create_on_database: bool,
    /// The configured tables, the tables of the configured schemas (or of the database, for
    /// `all_tables`) and the tables the publication has, each once.
    pub tables: Vec<TableFacts>,
    /// The configured schemas (`schemas:` only).
    pub schemas: Vec<SchemaFacts>,
    /// The roles that own those tables or the publication.
    pub owners: Vec<OwnerFacts>,
    pub publication: Option<PublicationFacts>,
    pub slot: Option<SlotFacts>,
}

/// One table and what the role may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    pub schema: String,
    pub name: String,
    /// Named under `tables:` (rather than found in a schema, the database or the publication).
    pub configured: bool,
    pub exists: bool,
    pub owner: Option<String>,
    /// The role owns it or inherits from its owner (`pg_has_role(relowner, 'USAGE')`).
    pub owned: bool,
    pub select: bool,
    /// USAGE on the table's schema (reading the table needs it too).
    pub schema_usage: bool,
    pub schema_owner: Option<String>,
}

impl TableFacts {
    pub(super) fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub(super) fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// A configured schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFacts {
    pub name: String,
    pub exists: bool,
}

/// A role that owns a table or the publication: whether it could create the publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFacts {
    pub name: String,
    pub superuser: bool,
    pub create_on_database: bool,
}

/// The publication as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationFacts {
    pub owner: String,
    /// The role owns it or inherits from its owner.
    pub owned: bool,
    pub all_tables: bool,
    /// The (schema, table) pairs it publishes now, whatever made them part of it.
    pub tables: Vec<(String, String)>,
    /// Its `TABLES IN SCHEMA` schemas (PostgreSQL 15 and later).
    pub schemas: Vec<String>,
    /// Which of insert, update, delete, truncate it publishes.
    pub publishes: Vec<String>,
}

/// The replication slot as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFacts {
    pub plugin: Option<String>,
    pub database: Option<String>,
    /// It belongs to the database connected to.
    pub same_database: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

impl SlotFacts {
    /// Why cdc-sync cannot use this slot at all (another plugin or database), if it cannot.
    pub fn unusable(&self, slot: &str) -> Option<String> {
        (self.plugin.as_deref() != Some("pgoutput") || !self.same_database).then(|| {
            format!("slot {slot} exists but is not a pgoutput slot of this database; set `cdc.slot` to another name")
        })
    }
}
