//! Judging the publication: adopt it, create it or add to it as this role, or say who may and
//! with which SQL.

use std::collections::BTreeSet;

use super::facts::{Facts, OwnerFacts, PublicationFacts, Scope, TableFacts, Wanted, ACTIONS};
use super::verdict::{list, Fixes, PublicationStep, RunAs, Step};
use crate::postgres::catalog::quote_ident;

impl Facts {
    /// Whether the publication is there, or may be made or completed by this role; else what
    /// is missing and the SQL for whoever may.
    pub(super) fn publication_step(
        &self,
        wanted: &Wanted,
        missing: &mut Vec<String>,
        fixes: &mut Fixes,
    ) -> PublicationStep {
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
            Scope::Tables(_) => self.add_tables(p, name, &configured, missing, fixes),
            Scope::Schemas(schemas) => self.add_schemas(p, name, schemas, missing, fixes),
            Scope::AllTables => {
                missing.push(format!(
                    "publication {name} exists but is not FOR ALL TABLES: list its tables under `cdc.tables`, or set `cdc.publication` to another name"
                ));
                PublicationStep::Adopt
            }
        }
    }

    /// The publication lacks configured tables: add them, or say who may.
    fn add_tables(
        &self,
        p: &PublicationFacts,
        name: &str,
        configured: &[&TableFacts],
        missing: &mut Vec<String>,
        fixes: &mut Fixes,
    ) -> PublicationStep {
        let role = &self.role;
        let quoted = quote_ident(name);
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
        let foreign: Vec<&TableFacts> = lacking.iter().copied().filter(|t| !t.owned).collect();
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
        let mut roles: BTreeSet<String> = lacking.iter().filter_map(|t| t.owner.clone()).collect();
        roles.insert(p.owner.clone());
        let tables: Vec<String> = lacking.iter().map(|t| t.quoted()).collect();
        fixes.add(
            Step::Publication,
            self.run_as_owner_of_all(roles),
            format!("ALTER PUBLICATION {quoted} ADD TABLE {};", list(&tables)),
        );
        PublicationStep::Adopt
    }

    /// The publication lacks configured schemas: add them, or say who may.
    fn add_schemas(
        &self,
        p: &PublicationFacts,
        name: &str,
        schemas: &[String],
        missing: &mut Vec<String>,
        fixes: &mut Fixes,
    ) -> PublicationStep {
        let role = &self.role;
        let quoted = quote_ident(name);
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
}

#[cfg(test)]
mod tests;
