//! What a source database lets the pipeline's role do for logical replication: the facts read
//! from its catalog, what is missing, and the SQL whoever holds the rights must run.
//!
//! The rules, the same from PostgreSQL 15 through 18 ("Logical Replication: Security",
//! <https://www.postgresql.org/docs/15/logical-replication-security.html>, and
//! `CREATE PUBLICATION`): a slot is created and read by a role with REPLICATION (or a
//! superuser; on RDS membership in `rds_replication`); `CREATE PUBLICATION` needs CREATE on the
//! database, and `FOR TABLE` / `ADD TABLE` ownership of every table named (membership in the
//! owning role counts); `FOR ALL TABLES` and `TABLES IN SCHEMA` need a superuser (on Cloud SQL
//! a `cloudsqlsuperuser` member, on RDS the master user); copying a table's rows needs SELECT on
//! it and USAGE on its schema. PostgreSQL 16 narrowed CREATEROLE: a non-superuser may give
//! REPLICATION only if it has REPLICATION itself (and ADMIN on the role), so the fix is written
//! for a superuser.
//!
//! Reading (`Facts::read`) is separate from judging (`Facts::assess`, pure), so the judging is
//! unit-tested without a database and `cdc-sync init` and `monitor doctor` say the same thing.

use std::collections::BTreeSet;

use super::catalog::quote_ident;
use super::PgConnection;
use crate::catalog::qualify;
use crate::config::CdcConfig;
use crate::error::Result;

/// The end of the WAL logical decoding can read now: the flushed position on a primary (a
/// peek reads no further, and with asynchronous commit the written position may be ahead of
/// it), the replayed one on a standby (where logical decoding also works from Postgres 16).
pub const CURRENT_WAL_LSN: &str = "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
     ELSE pg_current_wal_flush_lsn() END)";

/// The WAL Postgres keeps for a slot, in bytes, over `pg_replication_slots` (as `slots`): from
/// its `restart_lsn` (what `max_slot_wal_keep_size` measures) to the current position. NULL
/// when the slot has none.
pub fn retained_wal(slots: &str) -> String {
    format!("pg_wal_lsn_diff({CURRENT_WAL_LSN}, {slots}.restart_lsn)::int8")
}

/// The WAL Postgres keeps for slot `$1` (`retained_wal`).
pub fn retained_wal_sql() -> String {
    format!(
        "SELECT {} FROM pg_replication_slots s WHERE s.slot_name = $1",
        retained_wal("s")
    )
}

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

    fn logical_decoding_fix(self) -> &'static str {
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
    fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    fn quoted(&self) -> String {
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

/// Who must run a group of statements.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RunAs {
    /// The platform's most privileged role (`Platform::admin`).
    Admin,
    /// This role (it owns what the statements touch, or is a superuser).
    Role(String),
    /// A role that inherits from each of these (it then owns all they own).
    MemberOfEach(Vec<String>),
}

impl RunAs {
    /// `postgres`, `a superuser`, … as the SQL block's comment says it.
    pub fn describe(&self, platform: Platform) -> String {
        match self {
            RunAs::Admin => platform.admin().to_string(),
            RunAs::Role(r) => r.clone(),
            RunAs::MemberOfEach(roles) => {
                let or_superuser = if platform == Platform::Postgres {
                    ", or a superuser"
                } else {
                    ""
                };
                format!(
                    "a role that is a member of each of {}{or_superuser}",
                    roles.join(", ")
                )
            }
        }
    }
}

/// Statements one role must run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub run_as: RunAs,
    pub statements: Vec<String>,
}

/// What `cdc-sync init` does to the publication itself once nothing is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationStep {
    /// It exists and covers what is configured: use it as it is.
    Adopt,
    /// It does not exist and the role may create it: this statement.
    Create(String),
    /// It lacks some tables or schemas the role may add: (what, statement) each.
    Add(Vec<(String, String)>),
}

/// The verdict on a set of facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// What is missing, one line each; empty when nothing is.
    pub missing: Vec<String>,
    /// The SQL that supplies what is missing, by who must run it, in the order to run it.
    pub fixes: Vec<Fix>,
    /// What init then does to the publication (meaningful when nothing is missing).
    pub publication: PublicationStep,
    platform: Platform,
}

impl Assessment {
    /// Nothing is missing.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }

    /// The fixes as one SQL text: `-- as <who>:` before each role's statements.
    pub fn sql_block(&self) -> String {
        let mut out = String::new();
        for f in &self.fixes {
            out.push_str(&format!("-- as {}:\n", f.run_as.describe(self.platform)));
            for s in &f.statements {
                out.push_str(s);
                out.push('\n');
            }
        }
        out
    }
}

/// Statements collected with the step they belong to; grouped by who runs them at the end.
#[derive(Default)]
struct Fixes(Vec<(Step, RunAs, String)>);

/// Order of the statements: a grant of CREATE on the database before the publication it
/// allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Replication,
    DatabaseCreate,
    SchemaUsage,
    Select,
    Publication,
}

impl Fixes {
    fn add(&mut self, step: Step, run_as: RunAs, sql: String) {
        self.0.push((step, run_as, sql));
    }

    fn grouped(mut self) -> Vec<Fix> {
        self.0.sort_by_key(|(step, _, _)| *step);
        let mut out: Vec<Fix> = vec![];
        for (_, run_as, sql) in self.0 {
            match out.iter_mut().find(|f| f.run_as == run_as) {
                Some(f) => f.statements.push(sql),
                None => out.push(Fix {
                    run_as,
                    statements: vec![sql],
                }),
            }
        }
        out
    }
}

const ACTIONS: [&str; 4] = ["insert", "update", "delete", "truncate"];

fn list(items: &[String]) -> String {
    items.join(", ")
}

impl Facts {
    /// The statement that lets `role` create publications in this database.
    fn grant_create(&self, role: &str) -> String {
        format!(
            "GRANT CREATE ON DATABASE {} TO {};",
            quote_ident(&self.database),
            quote_ident(role)
        )
    }

    fn owner(&self, name: &str) -> Option<&OwnerFacts> {
        self.owners.iter().find(|o| o.name == name)
    }

    /// Who can act on everything these roles own: one of them alone if it is the only one or a
    /// superuser, else a member of each.
    fn run_as_owner_of_all(&self, roles: BTreeSet<String>) -> RunAs {
        if roles.len() == 1 {
            return RunAs::Role(roles.into_iter().next().unwrap_or_default());
        }
        let superuser = roles.iter().find(|r| {
            (**r == self.role && self.superuser) || self.owner(r).is_some_and(|o| o.superuser)
        });
        match superuser {
            Some(s) => RunAs::Role(s.clone()),
            None => RunAs::MemberOfEach(roles.into_iter().collect()),
        }
    }

    /// What is missing for `wanted`, the SQL that supplies it, and what init does then.
    pub fn assess(&self, wanted: &Wanted) -> Assessment {
        let mut missing = vec![];
        let mut fixes = Fixes::default();
        let role = &self.role;
        let quoted_role = quote_ident(role);

        if self.wal_level != "logical" {
            missing.push(format!(
                "wal_level is {}, logical decoding needs logical: {}",
                self.wal_level,
                self.platform.logical_decoding_fix()
            ));
        }
        if self.max_replication_slots < 1 {
            missing
                .push("max_replication_slots is 0: raise it (and restart) to create a slot".into());
        } else if self.slot.is_none()
            && self.replication_slots_used >= i64::from(self.max_replication_slots)
        {
            missing.push(format!(
                "all {} replication slots are in use: drop one no longer used (pg_drop_replication_slot) or raise max_replication_slots (and restart)",
                self.max_replication_slots
            ));
        }
        if !self.superuser && !self.replication {
            if self.platform == Platform::Rds {
                missing.push(format!(
                    "role {role} is not a member of rds_replication, which creating and reading the slot needs"
                ));
                fixes.add(
                    Step::Replication,
                    RunAs::Admin,
                    format!("GRANT rds_replication TO {quoted_role};"),
                );
            } else {
                missing.push(format!(
                    "role {role} lacks the REPLICATION attribute, which creating and reading the slot needs"
                ));
                fixes.add(
                    Step::Replication,
                    RunAs::Admin,
                    format!("ALTER ROLE {quoted_role} WITH REPLICATION;"),
                );
            }
        }

        let absent: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.configured && !t.exists)
            .map(TableFacts::qualified)
            .collect();
        if !absent.is_empty() {
            missing.push(format!(
                "table {} does not exist in database {} (fix `cdc.tables`)",
                list(&absent),
                self.database
            ));
        }
        let absent: Vec<String> = self
            .schemas
            .iter()
            .filter(|s| !s.exists)
            .map(|s| s.name.clone())
            .collect();
        if !absent.is_empty() {
            missing.push(format!(
                "schema {} does not exist in database {} (fix `cdc.schemas`)",
                list(&absent),
                self.database
            ));
        }

        let publication = self.publication_step(wanted, &mut missing, &mut fixes);

        // Reading a table needs USAGE on its schema as well as SELECT on it.
        let mut schemas: Vec<(String, String)> = self
            .tables
            .iter()
            .filter(|t| t.exists && !t.schema_usage)
            .map(|t| (t.schema.clone(), t.schema_owner.clone().unwrap_or_default()))
            .collect();
        schemas.sort();
        schemas.dedup();
        for (schema, owner) in &schemas {
            missing.push(format!("role {role} lacks USAGE on schema {schema}"));
            fixes.add(
                Step::SchemaUsage,
                RunAs::Role(owner.clone()),
                format!(
                    "GRANT USAGE ON SCHEMA {} TO {quoted_role};",
                    quote_ident(schema)
                ),
            );
        }
        let unreadable: Vec<&TableFacts> = self
            .tables
            .iter()
            .filter(|t| t.exists && !t.select)
            .collect();
        if !unreadable.is_empty() {
            let names: Vec<String> = unreadable.iter().map(|t| t.qualified()).collect();
            missing.push(format!(
                "role {role} may not SELECT {}, which the snapshot reads",
                list(&names)
            ));
            let owners: BTreeSet<&str> = unreadable
                .iter()
                .filter_map(|t| t.owner.as_deref())
                .collect();
            for owner in owners {
                let tables: Vec<String> = unreadable
                    .iter()
                    .filter(|t| t.owner.as_deref() == Some(owner))
                    .map(|t| t.quoted())
                    .collect();
                fixes.add(
                    Step::Select,
                    RunAs::Role(owner.to_string()),
                    format!("GRANT SELECT ON {} TO {quoted_role};", list(&tables)),
                );
            }
        }

        Assessment {
            missing,
            fixes: fixes.grouped(),
            publication,
            platform: self.platform,
        }
    }

    /// Whether the publication is there, or may be made or completed by this role; else what
    /// is missing and the SQL for whoever may.
    fn publication_step(
        &self,
        wanted: &Wanted,
        missing: &mut Vec<String>,
        fixes: &mut Fixes,
    ) -> PublicationStep {
        let role = &self.role;
        let name = &wanted.publication;
        let quoted = quote_ident(name);
        let configured: Vec<&TableFacts> = self.tables.iter().filter(|t| t.configured).collect();
        let Some(p) = &self.publication else {
            return self.create_step(wanted, &configured, missing, fixes);
        };
        let unpublished: Vec<String> = ACTIONS
            .iter()
            .filter(|a| !p.publishes.iter().any(|p| p == *a))
            .map(|a| a.to_string())
            .collect();
        if !unpublished.is_empty() {
            missing.push(format!(
                "publication {name} does not publish {}; cdc-sync replicates inserts, updates, deletes and truncates",
                list(&unpublished)
            ));
            fixes.add(
                Step::Publication,
                RunAs::Role(p.owner.clone()),
                format!(
                    "ALTER PUBLICATION {quoted} SET (publish = 'insert, update, delete, truncate');"
                ),
            );
        }
        if p.all_tables {
            return PublicationStep::Adopt;
        }
        match &wanted.scope {
            Scope::Tables(_) => {
                let lacking: Vec<&TableFacts> = configured
                    .iter()
                    .copied()
                    .filter(|t| t.exists)
                    .filter(|t| !p.tables.iter().any(|(s, n)| *s == t.schema && *n == t.name))
                    .collect();
                if lacking.is_empty() {
                    return PublicationStep::Adopt;
                }
                let names: Vec<String> = lacking.iter().map(|t| t.qualified()).collect();
                let foreign: Vec<&TableFacts> =
                    lacking.iter().copied().filter(|t| !t.owned).collect();
                if p.owned && foreign.is_empty() {
                    return PublicationStep::Add(
                        lacking
                            .iter()
                            .map(|t| {
                                (
                                    t.qualified(),
                                    format!("ALTER PUBLICATION {quoted} ADD TABLE {}", t.quoted()),
                                )
                            })
                            .collect(),
                    );
                }
                let mut why = vec![];
                if !p.owned {
                    why.push(format!(
                        "it does not own the publication (owner {})",
                        p.owner
                    ));
                }
                if !foreign.is_empty() {
                    why.push(self.not_owned(&foreign));
                }
                missing.push(format!(
                    "publication {name} lacks {}, and role {role} may not add {}: {}",
                    list(&names),
                    if names.len() == 1 { "it" } else { "them" },
                    why.join(", and ")
                ));
                let mut roles: BTreeSet<String> =
                    lacking.iter().filter_map(|t| t.owner.clone()).collect();
                roles.insert(p.owner.clone());
                let tables: Vec<String> = lacking.iter().map(|t| t.quoted()).collect();
                fixes.add(
                    Step::Publication,
                    self.run_as_owner_of_all(roles),
                    format!("ALTER PUBLICATION {quoted} ADD TABLE {};", list(&tables)),
                );
                PublicationStep::Adopt
            }
            Scope::Schemas(schemas) => {
                let lacking: Vec<String> = schemas
                    .iter()
                    .filter(|s| self.schemas.iter().any(|f| f.name == **s && f.exists))
                    .filter(|s| !p.schemas.contains(s))
                    .cloned()
                    .collect();
                if lacking.is_empty() {
                    return PublicationStep::Adopt;
                }
                if self.superuser {
                    return PublicationStep::Add(
                        lacking
                            .iter()
                            .map(|s| {
                                (
                                    format!("schema {s}"),
                                    format!(
                                        "ALTER PUBLICATION {quoted} ADD TABLES IN SCHEMA {}",
                                        quote_ident(s)
                                    ),
                                )
                            })
                            .collect(),
                    );
                }
                missing.push(format!(
                    "publication {name} lacks schema {}, and adding TABLES IN SCHEMA needs a superuser, which role {role} is not",
                    list(&lacking)
                ));
                let quoted_schemas: Vec<String> = lacking.iter().map(|s| quote_ident(s)).collect();
                fixes.add(
                    Step::Publication,
                    RunAs::Admin,
                    format!(
                        "ALTER PUBLICATION {quoted} ADD TABLES IN SCHEMA {};",
                        list(&quoted_schemas)
                    ),
                );
                PublicationStep::Adopt
            }
            Scope::AllTables => {
                missing.push(format!(
                    "publication {name} exists but is not FOR ALL TABLES: list its tables under `cdc.tables`, or set `cdc.publication` to another name"
                ));
                PublicationStep::Adopt
            }
        }
    }

    /// `it does not own a.b, c.d (owner x)`.
    fn not_owned(&self, tables: &[&TableFacts]) -> String {
        let names: Vec<String> = tables.iter().map(|t| t.qualified()).collect();
        let owners: BTreeSet<&str> = tables.iter().filter_map(|t| t.owner.as_deref()).collect();
        format!(
            "it does not own {} (owner {})",
            list(&names),
            owners.into_iter().collect::<Vec<_>>().join(", ")
        )
    }

    /// The publication does not exist: create it, or say who may.
    fn create_step(
        &self,
        wanted: &Wanted,
        configured: &[&TableFacts],
        missing: &mut Vec<String>,
        fixes: &mut Fixes,
    ) -> PublicationStep {
        let role = &self.role;
        let name = &wanted.publication;
        let quoted = quote_ident(name);
        let (clause, needs_superuser) = match &wanted.scope {
            Scope::Tables(_) => {
                if configured.iter().any(|t| !t.exists) {
                    // Said above; the statement would fail until the config is fixed.
                    return PublicationStep::Adopt;
                }
                let tables: Vec<String> = configured.iter().map(|t| t.quoted()).collect();
                (format!("TABLE {}", list(&tables)), None)
            }
            Scope::Schemas(schemas) => {
                if self.server_version_num < 150_000 {
                    missing.push(format!(
                        "FOR TABLES IN SCHEMA needs PostgreSQL 15 or later, and this server is {}: list the tables under `cdc.tables`",
                        self.server_version_num / 10_000
                    ));
                    return PublicationStep::Adopt;
                }
                let s: Vec<String> = schemas.iter().map(|s| quote_ident(s)).collect();
                (
                    format!("TABLES IN SCHEMA {}", list(&s)),
                    Some("FOR TABLES IN SCHEMA"),
                )
            }
            Scope::AllTables => ("ALL TABLES".to_string(), Some("FOR ALL TABLES")),
        };
        let create = format!("CREATE PUBLICATION {quoted} FOR {clause}");
        if let Some(what) = needs_superuser {
            if self.superuser {
                return PublicationStep::Create(create);
            }
            missing.push(format!(
                "publication {name} does not exist, and role {role} may not create it: {what} needs a superuser (or list the tables under `cdc.tables`)"
            ));
            fixes.add(Step::Publication, RunAs::Admin, format!("{create};"));
            return PublicationStep::Adopt;
        }
        let foreign: Vec<&TableFacts> = configured.iter().copied().filter(|t| !t.owned).collect();
        if foreign.is_empty() {
            if self.superuser || self.create_on_database {
                return PublicationStep::Create(create);
            }
            missing.push(format!(
                "publication {name} does not exist, and role {role} may not create it: it lacks CREATE on database {}",
                self.database
            ));
            fixes.add(
                Step::DatabaseCreate,
                RunAs::Role(self.database_owner.clone()),
                self.grant_create(role),
            );
            return PublicationStep::Adopt;
        }
        missing.push(format!(
            "publication {name} does not exist, and role {role} may not create it: {}",
            self.not_owned(&foreign)
        ));
        // FOR TABLE needs one role owning every table; it also needs CREATE on the database.
        let owners: BTreeSet<String> = configured.iter().filter_map(|t| t.owner.clone()).collect();
        let run_as = self.run_as_owner_of_all(owners);
        if let RunAs::Role(o) = &run_as {
            if self
                .owner(o)
                .is_some_and(|f| !f.superuser && !f.create_on_database)
            {
                fixes.add(
                    Step::DatabaseCreate,
                    RunAs::Role(self.database_owner.clone()),
                    self.grant_create(o),
                );
            }
        }
        fixes.add(Step::Publication, run_as, format!("{create};"));
        PublicationStep::Adopt
    }

    /// Reads the facts for `wanted` (catalog queries any role may run; nothing is changed).
    pub async fn read(conn: &PgConnection, wanted: &Wanted) -> Result<Facts> {
        let ctx = "reading what the role may do for logical replication";
        let row = conn.query_one(ctx, ROLE_SQL, &[]).await?;
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
        let mut facts = Facts {
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
        };

        let pub_row = conn
            .query_opt(ctx, PUBLICATION_SQL, &[&wanted.publication])
            .await?;
        if let Some(r) = pub_row {
            let tables = conn
                .query(
                    ctx,
                    "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
                    &[&wanted.publication],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let schemas = if facts.server_version_num >= 150_000 {
                conn.query(ctx, PUBLICATION_SCHEMAS_SQL, &[&wanted.publication])
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
            facts.publication = Some(PublicationFacts {
                owner: r.get(0),
                owned: r.get(1),
                all_tables: r.get(2),
                tables,
                schemas,
                publishes,
            });
        }

        let (configured, schemas, all): (Vec<(String, String)>, Vec<String>, bool) =
            match &wanted.scope {
                Scope::Tables(t) => (t.clone(), vec![], false),
                Scope::Schemas(s) => (vec![], s.clone(), false),
                Scope::AllTables => (vec![], vec![], true),
            };
        let (cs, ct): (Vec<String>, Vec<String>) = configured.into_iter().unzip();
        facts.tables = conn
            .query(
                ctx,
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
            .collect();
        if !schemas.is_empty() {
            facts.schemas = conn
                .query(
                    ctx,
                    "SELECT s, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s) FROM unnest($1::text[]) AS s",
                    &[&schemas],
                )
                .await?
                .iter()
                .map(|r| SchemaFacts {
                    name: r.get(0),
                    exists: r.get(1),
                })
                .collect();
        }

        let mut owners: BTreeSet<String> = facts
            .tables
            .iter()
            .filter_map(|t| t.owner.clone())
            .collect();
        if let Some(p) = &facts.publication {
            owners.insert(p.owner.clone());
        }
        let owners: Vec<String> = owners.into_iter().collect();
        facts.owners = conn
            .query(
                ctx,
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
            .collect();

        facts.slot = conn
            .query_opt(
                ctx,
                "SELECT plugin::text, database::text, coalesce(database::text = current_database(), false), wal_status
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&wanted.slot],
            )
            .await?
            .map(|r| SlotFacts {
                plugin: r.get(0),
                database: r.get(1),
                same_database: r.get(2),
                wal_status: r.get(3),
            });
        Ok(facts)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, owner: &str, owned: bool, select: bool) -> TableFacts {
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
    fn limited() -> Facts {
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

    fn wanted(scope: Scope) -> Wanted {
        Wanted {
            publication: "sluice_shop".into(),
            slot: "sluice_shop".into(),
            scope,
        }
    }

    fn tables() -> Wanted {
        wanted(Scope::Tables(vec![
            qualify("orders"),
            qualify("billing.invoices"),
        ]))
    }

    fn publication(tables: &[&str]) -> PublicationFacts {
        PublicationFacts {
            owner: "app".into(),
            owned: false,
            all_tables: false,
            tables: tables.iter().map(|t| qualify(t)).collect(),
            schemas: vec![],
            publishes: ACTIONS.iter().map(|a| a.to_string()).collect(),
        }
    }

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
}
