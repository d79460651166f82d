//! One mart: `marts/<dataset>/<name>.sql`, a YAML header in a leading comment block, then one
//! SELECT in BigQuery SQL.
//!
//! ```sql
//! /*
//! description: Revenue per day from paid orders.
//! owner: "@ana"
//! materialized: partition
//! partition_by: day
//! fail_conditions:
//!   - not_null: day
//!   - {name: positive_revenue, threshold: 1.0, expression: "COUNTIF(revenue >= 0)"}
//! */
//! SELECT DATE(created_at) AS day, SUM(total) AS revenue
//! FROM shop_raw.orders WHERE DATE(created_at) = @ds GROUP BY day
//! ```
//!
//! The header may also be a run of `--` lines. Every error names the file and, where it can,
//! the line.

use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use sqlparser::ast::{visit_relations, Expr, Query, Statement, Value, Visit, Visitor};
use sqlparser::dialect::BigQueryDialect;
use sqlparser::parser::Parser;

use crate::marts::checks::Check;
use crate::marts::header::{CheckSpec, Header, Materialized, Runner};

/// `dataset.table` as a mart names it (the project is the target's unless written).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub project: Option<String>,
    pub dataset: String,
    pub table: String,
}

impl TableName {
    /// `dataset.table`, or `project.dataset.table` when a project is written.
    pub fn parse(s: &str) -> Option<TableName> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = |p: &&str| !p.is_empty();
        match parts.as_slice() {
            [d, t] if ok(d) && ok(t) => Some(TableName {
                project: None,
                dataset: d.to_string(),
                table: t.to_string(),
            }),
            [p, d, t] if ok(p) && ok(d) && ok(t) => Some(TableName {
                project: Some(p.to_string()),
                dataset: d.to_string(),
                table: t.to_string(),
            }),
            _ => None,
        }
    }

    /// `dataset.table`: how marts are named in plans and selections.
    pub fn short(&self) -> String {
        format!("{}.{}", self.dataset, self.table)
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.project {
            Some(p) => write!(f, "{p}.{}.{}", self.dataset, self.table),
            None => write!(f, "{}.{}", self.dataset, self.table),
        }
    }
}

/// A table the SQL reads, and the line of its first mention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub name: TableName,
    pub line: u64,
}

/// A parsed mart.
#[derive(Debug, Clone)]
pub struct Mart {
    /// `dataset.name`.
    pub id: TableName,
    pub file: PathBuf,
    pub header: Header,
    /// The SELECT, parsed.
    pub query: Box<Query>,
    /// Tables the SELECT reads (CTE names excluded), then `depends_on`.
    pub references: Vec<Reference>,
    pub fail_conditions: Vec<Check>,
    pub dq_metrics: Vec<Check>,
}

/// The leading comment block: its text (comment markers removed) and the file line it starts on.
fn split_header(text: &str) -> Option<(String, usize)> {
    let start = text.len() - text.trim_start().len();
    let first_line = text[..start].matches('\n').count() + 1;
    let rest = &text[start..];
    if let Some(body) = rest.strip_prefix("/*") {
        let end = body.find("*/")?;
        return Some((body[..end].to_string(), first_line));
    }
    if rest.starts_with("--") {
        let lines: Vec<String> = rest
            .lines()
            .take_while(|l| l.trim_start().starts_with("--"))
            .map(|l| {
                let l = l.trim_start().trim_start_matches("--");
                l.strip_prefix(' ').unwrap_or(l).to_string()
            })
            .collect();
        return Some((lines.join("\n"), first_line));
    }
    None
}

/// Collects the names WITH clauses give, so they are not taken for tables.
#[derive(Default)]
struct CteNames(BTreeSet<String>);

impl Visitor for CteNames {
    type Break = ();
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Names WITH clauses give anywhere in the query, lower-cased.
pub fn cte_names(query: &Query) -> BTreeSet<String> {
    let mut ctes = CteNames::default();
    let _ = query.visit(&mut ctes);
    ctes.0
}

/// A query parameter (`@ds`): its name without the `@`, and its line. The BigQuery dialect
/// reads `@ds` as an identifier; other dialects as a placeholder.
pub fn parameter(expr: &Expr) -> Option<(String, u64)> {
    match expr {
        Expr::Identifier(i) if i.quote_style.is_none() && i.value.starts_with('@') => {
            Some((i.value[1..].to_string(), i.span.start.line))
        }
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) if p.starts_with('@') => {
                Some((p[1..].to_string(), v.span.start.line))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The query parameters (`@ds`) a query uses, without the `@`, each with the line of its first use.
pub fn parameters(query: &Query) -> BTreeMap<String, u64> {
    struct Params(BTreeMap<String, u64>);
    impl Visitor for Params {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Some((name, line)) = parameter(expr) {
                self.0.entry(name).or_insert(line);
            }
            ControlFlow::Continue(())
        }
    }
    let mut p = Params(BTreeMap::new());
    let _ = query.visit(&mut p);
    p.0
}

/// The parameters a mart's SELECT may use: the logical date, and the start and end of its
/// day as TIMESTAMPs (`[ds 00:00, ds+1 00:00)` UTC), for filtering timestamp columns.
pub const PARAMETERS: [&str; 3] = ["ds", "ds_start", "ds_end"];

/// The parts of a table name as BigQuery reads them: a backquoted `project.dataset.table`
/// is one identifier holding dots.
pub fn name_parts(name: &sqlparser::ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|p| match p.as_ident() {
            Some(i) => i.value.split('.').map(str::to_string).collect::<Vec<_>>(),
            None => vec![p.to_string()],
        })
        .collect()
}

impl Mart {
    /// Reads `marts/<dataset>/<name>.sql`; `dataset` and `name` come from the path.
    pub fn load(file: &Path, dataset: &str) -> Result<Mart> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::config(format!("{}: cannot read: {e}", file.display())))?;
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        Mart::parse(&text, file, dataset, name).map_err(|e| match e {
            Error::Config(m) => Error::config(format!("{}:{m}", file.display())),
            other => other,
        })
    }

    /// Parses a mart's text. Errors start with the line (`12: ...`), or with `:` and the
    /// message when no line applies.
    pub fn parse(text: &str, file: &Path, dataset: &str, name: &str) -> Result<Mart> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        if !valid(dataset) || !valid(name) {
            return Err(Error::config(format!(
                " the dataset directory and file name must be letters, digits and underscores (`{dataset}/{name}`)"
            )));
        }
        let (header, header_line) = read_header(text)?;
        let query = read_query(text)?;
        let references = references(&query, &header, header_line)?;
        let params = parameters(&query);
        check_header(&header, &params, header_line)?;
        let (fail_conditions, dq_metrics) = resolve_checks(&header, header_line)?;
        Ok(Mart {
            id: TableName {
                project: None,
                dataset: dataset.to_string(),
                table: name.to_string(),
            },
            file: file.to_path_buf(),
            header,
            query,
            references,
            fail_conditions,
            dq_metrics,
        })
    }
}

/// The YAML header of a mart's text, and the line it starts on.
fn read_header(text: &str) -> Result<(Header, usize)> {
    let Some((yaml, header_line)) = split_header(text) else {
        return Err(Error::config("1: no header: start the file with a /* ... */ comment holding YAML (description, owner, materialized, ...)"));
    };
    if let Some(d) = crate::config::duplicate_key(&yaml) {
        let line = d.lines.first().copied().unwrap_or(d.mapping_line) + header_line - 1;
        return Err(Error::config(format!(
            "{line}: header: {}",
            d.describe(header_line - 1)
        )));
    }
    if yaml.trim().is_empty() {
        return Ok((Header::default(), header_line));
    }
    let header = serde_yaml::from_str(&yaml).map_err(|e| {
        let line = e
            .location()
            .map_or(header_line, |l| header_line + l.line() - 1);
        // serde_yaml adds "at line L column C", which counts inside the header.
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg);
        Error::config(format!("{line}: header: {msg}"))
    })?;
    Ok((header, header_line))
}

/// The one SELECT of a mart's text.
fn read_query(text: &str) -> Result<Box<Query>> {
    let statements = Parser::parse_sql(&BigQueryDialect {}, text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.trim_start_matches("sql parser error: ");
        match msg.rsplit_once(" at Line: ") {
            Some((what, at)) => {
                let line = at.split(',').next().unwrap_or("?");
                Error::config(format!("{line}: SQL: {what}"))
            }
            // Only the end of the text lacks a position.
            None => Error::config(format!("{}: SQL: {msg}", text.trim_end().lines().count())),
        }
    })?;
    match statements.as_slice() {
        [Statement::Query(q)] => Ok(q.clone()),
        [] => Err(Error::config(" no SELECT after the header")),
        [_] => Err(Error::config(
            " the SQL must be one SELECT (mart-build writes the table)",
        )),
        _ => Err(Error::config(format!(
            " the SQL must be one SELECT, not {} statements",
            statements.len()
        ))),
    }
}

/// The tables a mart reads: those its SQL names (CTEs aside), then its header's `depends_on`.
fn references(query: &Query, header: &Header, header_line: usize) -> Result<Vec<Reference>> {
    let ctes = cte_names(query);
    let mut references: Vec<Reference> = vec![];
    let mut bad: Option<String> = None;
    let _ = visit_relations(query, |rel| {
        let parts = name_parts(rel);
        let line = rel
            .0
            .first()
            .and_then(|p| p.as_ident())
            .map_or(0, |i| i.span.start.line);
        let name = match parts.as_slice() {
            [one] if ctes.contains(&one.to_ascii_lowercase()) => return ControlFlow::Continue(()),
            [one] => {
                bad = Some(format!(
                    "{line}: table `{one}` needs its dataset (`dataset.{one}`)"
                ));
                return ControlFlow::Break(());
            }
            _ => TableName::parse(&parts.join(".")),
        };
        match name {
            Some(name) => {
                if !references.iter().any(|r| r.name == name) {
                    references.push(Reference { name, line });
                }
                ControlFlow::Continue(())
            }
            None => {
                bad = Some(format!("{line}: cannot read table name `{rel}`"));
                ControlFlow::Break(())
            }
        }
    });
    if let Some(e) = bad {
        return Err(Error::config(e));
    }
    for d in &header.depends_on {
        let name = TableName::parse(d).ok_or_else(|| {
            Error::config(format!(
                "{header_line}: header: depends_on `{d}` is not `dataset.table`"
            ))
        })?;
        if !references.iter().any(|r| r.name == name) {
            references.push(Reference {
                name,
                line: header_line as u64,
            });
        }
    }
    Ok(references)
}

/// What the header and the SQL must agree on: known parameters, and what each
/// materialization and runner allows.
fn check_header(h: &Header, params: &BTreeMap<String, u64>, header_line: usize) -> Result<()> {
    if let Some((p, line)) = params
        .iter()
        .find(|(p, _)| !PARAMETERS.contains(&p.as_str()))
    {
        return Err(Error::config(format!(
            "{line}: SQL: unknown parameter @{p} (marts get @ds, @ds_start and @ds_end)"
        )));
    }
    let at = |msg: String| Error::config(format!("{header_line}: header: {msg}"));
    if h.materialized == Materialized::View {
        if let Some((p, line)) = params.iter().next() {
            return Err(Error::config(format!(
                "{line}: SQL: a view cannot take parameters (@{p}); use materialized: table, or filter in the readers"
            )));
        }
    }
    match h.materialized {
        Materialized::Partition if h.partition_by.is_none() => {
            return Err(at(
                "materialized: partition needs partition_by (a DATE column)".into(),
            ))
        }
        Materialized::Merge if h.unique_key.0.is_empty() => {
            return Err(at("materialized: merge needs unique_key".into()))
        }
        Materialized::View if !h.fail_conditions.is_empty() => {
            return Err(at(
                "a view builds nothing, so it takes no fail_conditions".into()
            ))
        }
        _ => {}
    }
    if h.runner == Runner::ScheduledQuery {
        if !h.fail_conditions.is_empty() || !h.dq_metrics.is_empty() {
            return Err(at("runner: scheduled_query runs no checks (use runner: mart-build for fail_conditions and dq_metrics)".into()));
        }
        if matches!(h.materialized, Materialized::Merge | Materialized::View) {
            return Err(at(format!(
                "runner: scheduled_query writes a table or a partition, not materialized: {}",
                h.materialized.as_str()
            )));
        }
    }
    Ok(())
}

/// The header's checks resolved (`fail_conditions`, `dq_metrics`), names unique, and a
/// merge's key checked before the MERGE would fail on it.
fn resolve_checks(h: &Header, header_line: usize) -> Result<(Vec<Check>, Vec<Check>)> {
    let at = |msg: String| Error::config(format!("{header_line}: header: {msg}"));
    let mut names = BTreeSet::new();
    let mut checks = |specs: &[CheckSpec], kind: &str| -> Result<Vec<Check>> {
        let prefix = if kind == "fail_conditions" {
            "fc"
        } else {
            "dq"
        };
        specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let c = s
                    .resolve(h, &format!("{prefix}{i}_values"))
                    .map_err(|e| e.within(&format!("{header_line}: header: {kind}[{i}]")))?;
                if !names.insert(c.name.clone()) {
                    return Err(at(format!(
                        "{kind}[{i}]: a check named `{}` is already defined",
                        c.name
                    )));
                }
                Ok(c)
            })
            .collect()
    };
    let mut fail_conditions = checks(&h.fail_conditions, "fail_conditions")?;
    let dq_metrics = checks(&h.dq_metrics, "dq_metrics")?;
    if h.materialized == Materialized::Merge {
        // MERGE fails when a key matches two built rows: say so before it does.
        let spec = CheckSpec {
            name: Some("unique_key".into()),
            unique: Some(h.unique_key.clone()),
            ..CheckSpec::default()
        };
        if !names.contains("unique_key") {
            fail_conditions.push(
                spec.resolve(h, "")
                    .map_err(|e| e.within(&format!("{header_line}: header")))?,
            );
        }
    }
    Ok((fail_conditions, dq_metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Mart> {
        Mart::parse(text, Path::new("marts/m/x.sql"), "m", "x")
    }

    const OK: &str = "/*\ndescription: d\nmaterialized: partition\npartition_by: day\nfail_conditions:\n  - not_null: day\n*/\n\
        WITH recent AS (SELECT * FROM shop.orders WHERE day = @ds)\n\
        SELECT r.day, u.id FROM recent AS r JOIN `shop.users` AS u ON u.id = r.user_id\n\
        WHERE r.created_at >= @ds_start\n";

    #[test]
    fn reads_header_references_and_parameters() {
        let m = parse(OK).unwrap();
        assert_eq!(m.header.materialized, Materialized::Partition);
        let refs: Vec<(String, u64)> = m
            .references
            .iter()
            .map(|r| (r.name.to_string(), r.line))
            .collect();
        // The CTE is not a table; a backquoted dotted name is one.
        assert_eq!(
            refs,
            [
                ("shop.orders".to_string(), 8),
                ("shop.users".to_string(), 9)
            ]
        );
        let params: Vec<String> = parameters(&m.query).into_keys().collect();
        assert_eq!(params, ["ds", "ds_start"]);
        assert_eq!(m.fail_conditions[0].name, "not_null_day");
    }

    #[test]
    fn dash_comment_headers_work_too() {
        let m = parse("-- description: d\n-- owner: \"@ana\"\nSELECT 1 AS x FROM a.b\n").unwrap();
        assert_eq!(m.header.owner.as_deref(), Some("@ana"));
    }

    #[test]
    fn bad_files_say_where() {
        let e = |t: &str| parse(t).unwrap_err().into_message();
        assert_eq!(
            e("/*\ndescription: d\nmaterialised: table\n*/\nSELECT 1 FROM a.b")
                .split(" expected")
                .next()
                .unwrap(),
            "3: header: unknown field `materialised`,"
        );
        assert!(
            e("/* description: d */\nSELECT 1\nFROM a.b\nWHERE (x").starts_with("4: SQL: "),
            "{}",
            e("/* description: d */\nSELECT 1\nFROM a.b\nWHERE (x")
        );
        assert!(e("SELECT 1").starts_with("1: no header"));
        assert!(e("/* */\nSELECT 1 FROM a.b; SELECT 2 FROM a.b").contains("one SELECT, not 2"));
        assert!(e("/* */\nDELETE FROM a.b WHERE TRUE").contains("must be one SELECT"));
        assert!(
            e("/* */\nSELECT 1 FROM\n  orders").starts_with("3: table `orders` needs its dataset")
        );
        assert!(e("/* */\nSELECT 1 FROM a.b\nWHERE d = @day")
            .starts_with("3: SQL: unknown parameter @day"));
        assert!(
            e("/*\nmaterialized: view\n*/\nSELECT 1 FROM a.b WHERE d = @ds")
                .contains("a view cannot take parameters")
        );
        assert!(
            e("/*\nmaterialized: partition\n*/\nSELECT 1 FROM a.b").contains("needs partition_by")
        );
        assert!(e("/*\nmaterialized: merge\n*/\nSELECT 1 FROM a.b").contains("needs unique_key"));
        assert!(e("/*\nrunner: scheduled_query\nfail_conditions: [{not_null: x}]\n*/\nSELECT 1 AS x FROM a.b").contains("runs no checks"));
        assert!(e("/*\nschedule: weekly\n*/\nSELECT 1 FROM a.b").contains("schedule `weekly`"));
        assert!(e("/*\nrunner: scheduled_query\nmaterialized: merge\nunique_key: id\n*/\nSELECT 1 AS id FROM a.b")
            .contains("not materialized: merge"));
        assert!(e(
            "/*\nfail_conditions: [{not_null: x}, {not_null: x}]\n*/\nSELECT 1 AS x FROM a.b"
        )
        .contains("`not_null_x` is already defined"));
        assert_eq!(
            e("\n/*\ndescription: d\ncolumns:\n  x: one\n  x: two\n*/\nSELECT 1 AS x FROM a.b"),
            "5: header: columns: key `x` is given twice, at lines 5 and 6; keep one"
        );
    }

    #[test]
    fn merge_marts_check_their_key() {
        let m = parse(
            "/*\nmaterialized: merge\nunique_key: [a, b]\n*/\nSELECT 1 AS a, 2 AS b FROM x.y",
        )
        .unwrap();
        let c = m.fail_conditions.last().unwrap();
        assert_eq!(
            (c.name.as_str(), c.expression.as_str()),
            ("unique_key", "COUNT(DISTINCT TO_JSON_STRING(STRUCT(a, b)))")
        );
    }
}
