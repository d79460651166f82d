//! A mart's SELECT as it runs for a target: references to marts point at the target's
//! (suffixed) datasets, inputs at the datasets the pipeline lands them in, every name fully
//! qualified with the project. Rewritten in the parsed SQL, never by text replacement.

use crate::{Error, Result};
use std::ops::ControlFlow;

use sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart, Query};

use crate::config::Target;
use crate::marts::dag::Dag;

use crate::marts::mart::{name_parts, Mart, TableName};

/// Where things are for one target.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Where marts are written.
    pub project: String,
    /// Appended to the datasets marts write (`_dev`, `_dev_pr_123`).
    pub dataset_suffix: String,
    /// Where the pipeline's inputs are read: production's for `dev` and PR targets, so a
    /// change is checked against production data without writing next to it.
    pub inputs_project: String,
    pub inputs_suffix: String,
}

impl Placement {
    pub fn for_target(t: &Target) -> Placement {
        Placement {
            project: t.project.clone(),
            dataset_suffix: t.dataset_suffix.clone(),
            inputs_project: t.inputs_project.clone(),
            inputs_suffix: t.inputs_suffix.clone(),
        }
    }

    /// The table a reference reads, for this target.
    pub fn place(&self, dag: &Dag, name: &TableName) -> TableName {
        if name.project.is_some() {
            return name.clone();
        }
        let (project, suffix) = if dag.marts.contains_key(&name.short()) {
            (&self.project, &self.dataset_suffix)
        } else {
            (&self.inputs_project, &self.inputs_suffix)
        };
        TableName {
            project: Some(project.clone()),
            dataset: format!("{}{suffix}", name.dataset),
            table: name.table.clone(),
        }
    }

    /// The mart's SELECT with every table reference placed, as SQL text.
    pub fn render(&self, dag: &Dag, mart: &str) -> Result<String> {
        let m = dag
            .marts
            .get(mart)
            .ok_or_else(|| Error::config(format!("no mart `{mart}`")))?;
        Ok(rewrite(m, |name| self.place(dag, name)))
    }
}

/// A mart's SELECT with every table reference (not CTE names) replaced by `place`, as SQL text.
pub fn rewrite(m: &Mart, place: impl Fn(&TableName) -> TableName) -> String {
    format!("{:#}", placed_query(m, place))
}

/// A mart's SELECT with every table reference (not CTE names) replaced by `place`.
pub fn placed_query(m: &Mart, place: impl Fn(&TableName) -> TableName) -> Query {
    let mut query = (*m.query).clone();
    let ctes = crate::marts::mart::cte_names(&query);
    let _ = visit_relations_mut(&mut query, |rel| {
        let parts = name_parts(rel);
        if parts.len() == 1 && ctes.contains(&parts[0].to_ascii_lowercase()) {
            return ControlFlow::<()>::Continue(());
        }
        if let Some(name) = TableName::parse(&parts.join(".")) {
            let placed = place(&name);
            *rel = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                '`',
                placed.to_string(),
            ))]);
        }
        ControlFlow::Continue(())
    });
    query
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::marts::dag::{Landed, Producer};

    #[test]
    fn dev_targets_read_production_inputs_and_write_suffixed_marts() {
        let m = |name: &str, sql: &str| {
            Mart::parse(sql, Path::new("marts/m/x.sql"), "m", name).unwrap()
        };
        let mut inputs = Landed::default();
        inputs.tables.insert("raw.orders".into(), Producer::Events);
        let dag = Dag::build(
            vec![
                m("a", "/* */\nSELECT * FROM raw.orders"),
                m("b", "/* */\nWITH a AS (SELECT 1 AS x) SELECT * FROM m.a JOIN a USING (x) JOIN `other.raw.t` USING (x)"),
            ],
            &inputs,
        );
        // `other.raw.t` names its project: taken as it is, known or not.
        let dag = dag.unwrap_or_else(|e| panic!("{e}"));
        let p = Placement {
            project: "dev-proj".into(),
            dataset_suffix: "_dev_pr_1".into(),
            inputs_project: "prod-proj".into(),
            inputs_suffix: String::new(),
        };
        let sql = p.render(&dag, "m.b").unwrap();
        assert!(
            sql.contains("FROM\n  `dev-proj.m_dev_pr_1.a`\n  JOIN a USING(x)"),
            "{sql}"
        );
        assert!(sql.contains("`other.raw.t`"), "{sql}");
        assert!(p
            .render(&dag, "m.a")
            .unwrap()
            .contains("`prod-proj.raw.orders`"));
    }
}
