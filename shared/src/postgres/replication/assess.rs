//! Judging the facts: the server's settings, the role's REPLICATION, what configured is not
//! there, and the rights reading the tables needs; the publication is `publication`'s.

use std::collections::BTreeSet;

use super::facts::{Facts, Platform, TableFacts, Wanted};
use super::verdict::{list, Assessment, Fixes, RunAs, Step};
use crate::postgres::catalog::quote_ident;

impl Facts {
    /// What is missing for `wanted`, the SQL that supplies it, and what init does then.
    pub fn assess(&self, wanted: &Wanted) -> Assessment {
        let mut missing = vec![];
        let mut fixes = Fixes::default();
        self.server_and_role(&mut missing, &mut fixes);
        self.absent(&mut missing);
        let publication = self.publication_step(wanted, &mut missing, &mut fixes);
        self.reading_rights(&mut missing, &mut fixes);
        Assessment {
            missing,
            fixes: fixes.grouped(),
            publication,
            platform: self.platform,
        }
    }

    /// The server's `wal_level` and free slots, and the role's right to create and read one.
    fn server_and_role(&self, missing: &mut Vec<String>, fixes: &mut Fixes) {
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
    }

    /// Configured tables and schemas the database does not have.
    fn absent(&self, missing: &mut Vec<String>) {
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
    }

    /// Reading a table needs USAGE on its schema as well as SELECT on it.
    fn reading_rights(&self, missing: &mut Vec<String>, fixes: &mut Fixes) {
        let role = &self.role;
        let quoted_role = quote_ident(role);
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
        if unreadable.is_empty() {
            return;
        }
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
}

#[cfg(test)]
mod tests;
