//! Every mart of `marts/`, checked as a whole before anything runs: references resolve to a
//! mart or to a table the pipeline lands, there is no cycle, and the marts come out in
//! dependency order, in levels that may run in parallel.

use crate::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::marts::mart::{Mart, TableName};

pub use crate::catalog::{Landed, Producer};

/// What lands a table a mart reads, if the pipeline lands it. Tables of other projects
/// (`project.dataset.table`) are taken as they are: only a dataset-relative name can be
/// checked against the pipeline.
pub fn producer<'a>(landed: &'a Landed, t: &TableName) -> Option<&'a Producer> {
    match t.project {
        Some(_) => None,
        None => landed.producer(&t.dataset, &t.table),
    }
}

fn knows(landed: &Landed, t: &TableName) -> bool {
    t.project.is_some() || producer(landed, t).is_some()
}

/// The marts, in run order.
#[derive(Debug, Clone)]
pub struct Dag {
    /// By `dataset.name`.
    pub marts: BTreeMap<String, Mart>,
    /// Upstream marts of each mart.
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// Levels: every mart's upstream marts are in earlier levels.
    pub levels: Vec<Vec<String>>,
    /// The tables the pipeline lands, which marts read.
    pub inputs: Landed,
}

/// Reads `dir/<dataset>/<name>.sql`. Every problem of every file is reported, one per line.
pub fn load_dir(dir: &Path) -> Result<Vec<Mart>> {
    let mut files: Vec<(PathBuf, String)> = vec![];
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::config(format!("cannot read marts in {}: {e}", dir.display())))?;
    for d in entries.flatten() {
        let ds = d.path();
        if !ds.is_dir() {
            continue;
        }
        let dataset = d.file_name().to_string_lossy().to_string();
        for f in std::fs::read_dir(&ds).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "sql") {
                files.push((f.path(), dataset.clone()));
            }
        }
    }
    files.sort();
    let mut marts = vec![];
    let mut errors = vec![];
    for (file, dataset) in files {
        match Mart::load(&file, &dataset) {
            Ok(m) => marts.push(m),
            Err(e) => errors.push(e.into_message()),
        }
    }
    if errors.is_empty() {
        Ok(marts)
    } else {
        Err(Error::config(errors.join("\n")))
    }
}

impl Dag {
    /// Resolves references and orders the marts; errors name the file and line, or the cycle.
    pub fn build(marts: Vec<Mart>, inputs: &Landed) -> Result<Dag> {
        let marts: BTreeMap<String, Mart> = marts.into_iter().map(|m| (m.id.short(), m)).collect();
        let mut upstream: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut errors = vec![];
        for (id, m) in &marts {
            let ups = upstream.entry(id.clone()).or_default();
            for r in &m.references {
                let short = r.name.short();
                if r.name.project.is_none() && marts.contains_key(&short) {
                    if &short == id {
                        errors.push(format!(
                            "{}:{}: the mart reads itself",
                            m.file.display(),
                            r.line
                        ));
                    }
                    ups.insert(short);
                } else if !knows(inputs, &r.name)
                    && !m.header.depends_on.contains(&r.name.to_string())
                {
                    errors.push(format!(
                        "{}:{}: unknown table `{}`: not a mart, not in pipeline.yaml (add it to depends_on if it is made elsewhere)",
                        m.file.display(),
                        r.line,
                        r.name
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::config(errors.join("\n")));
        }
        // Kahn's algorithm by levels; what is left over sits on a cycle.
        let mut remaining: BTreeMap<&String, usize> =
            upstream.iter().map(|(k, v)| (k, v.len())).collect();
        let mut levels: Vec<Vec<String>> = vec![];
        loop {
            let ready: Vec<String> = remaining
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(k, _)| (*k).clone())
                .collect();
            if ready.is_empty() {
                break;
            }
            for r in &ready {
                remaining.remove(r);
            }
            for (k, n) in remaining.iter_mut() {
                *n -= upstream[*k].iter().filter(|u| ready.contains(u)).count();
            }
            levels.push(ready);
        }
        if !remaining.is_empty() {
            let left: BTreeSet<String> = remaining.keys().map(|k| (*k).clone()).collect();
            return Err(Error::config(format!(
                "marts depend on each other in a cycle: {}",
                cycle(&left, &upstream)
            )));
        }
        Ok(Dag {
            marts,
            upstream,
            levels,
            inputs: inputs.clone(),
        })
    }

    /// Marts in run order.
    pub fn order(&self) -> impl Iterator<Item = &String> {
        self.levels.iter().flatten()
    }

    /// Downstream marts of each mart.
    pub fn downstream(&self) -> BTreeMap<&String, BTreeSet<&String>> {
        let mut down: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
        for (id, ups) in &self.upstream {
            down.entry(id).or_default();
            for u in ups {
                down.entry(u).or_default().insert(id);
            }
        }
        down
    }

    /// `--select`: `mart` (just it), `mart+` (and everything downstream), `+mart` (and
    /// everything upstream); a mart is `dataset.name` or a name that is unique. Several
    /// selectors add up; none selects all.
    pub fn select(&self, selectors: &[String]) -> Result<BTreeSet<String>> {
        if selectors.is_empty() {
            return Ok(self.marts.keys().cloned().collect());
        }
        let down = self.downstream();
        let mut out = BTreeSet::new();
        for s in selectors.iter().flat_map(|s| s.split(',')) {
            let (up, name, downs) = (
                s.starts_with('+'),
                s.trim_start_matches('+').trim_end_matches('+'),
                s.ends_with('+'),
            );
            let id = self.resolve(name)?;
            if !up && !downs {
                out.insert(id);
                continue;
            }
            if up {
                walk(&mut out, &id, &|m| {
                    self.upstream[m].iter().cloned().collect()
                });
            }
            if downs {
                walk(&mut out, &id, &|m| {
                    down[m].iter().map(|s| (*s).clone()).collect()
                });
            }
        }
        Ok(out)
    }

    /// `dataset.name`, or a bare name when only one dataset has it.
    pub fn resolve(&self, name: &str) -> Result<String> {
        if self.marts.contains_key(name) {
            return Ok(name.to_string());
        }
        let hits: Vec<&String> = self
            .marts
            .keys()
            .filter(|k| k.rsplit('.').next() == Some(name))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::config(format!(
                "no mart `{name}` (marts: {})",
                self.marts.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
            many => Err(Error::config(format!(
                "`{name}` is ambiguous: {}",
                many.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The plan as text: one line per mart in run order, with its level and upstream marts.
    pub fn plan_text(&self, selected: &BTreeSet<String>) -> String {
        let mut out = String::new();
        for (n, level) in self.levels.iter().enumerate() {
            for id in level.iter().filter(|id| selected.contains(*id)) {
                let m = &self.marts[id];
                let ups: Vec<&str> = self.upstream[id].iter().map(String::as_str).collect();
                let inputs: Vec<String> = m
                    .references
                    .iter()
                    .map(|r| r.name.short())
                    .filter(|r| !self.marts.contains_key(r))
                    .collect();
                out.push_str(&format!(
                    "{:>3}  {id}  ({}, {} checks){}{}\n",
                    n + 1,
                    m.header.materialized.as_str(),
                    m.fail_conditions.len() + m.dq_metrics.len(),
                    if ups.is_empty() {
                        String::new()
                    } else {
                        format!("  after {}", ups.join(", "))
                    },
                    if inputs.is_empty() {
                        String::new()
                    } else {
                        format!("  reads {}", inputs.join(", "))
                    },
                ));
            }
        }
        out
    }

    /// The plan as a Mermaid flowchart (inputs as rounded nodes, marts as boxes).
    pub fn plan_mermaid(&self, selected: &BTreeSet<String>) -> String {
        let node = |s: &str| s.replace('.', "__");
        let mut out = String::from("flowchart LR\n");
        let mut inputs = BTreeSet::new();
        for id in self.order().filter(|id| selected.contains(*id)) {
            out.push_str(&format!("  {}[\"{id}\"]\n", node(id)));
            for r in &self.marts[id].references {
                let r = r.name.short();
                if !self.marts.contains_key(&r) {
                    inputs.insert(r.clone());
                }
                out.push_str(&format!("  {} --> {}\n", node(&r), node(id)));
            }
        }
        for i in inputs {
            out.push_str(&format!("  {}(\"{i}\")\n", node(&i)));
        }
        out
    }
}

/// Adds `start` and everything reachable from it through `next` to `out`.
fn walk(out: &mut BTreeSet<String>, start: &str, next: &dyn Fn(&String) -> Vec<String>) {
    let mut stack = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    while let Some(m) = stack.pop() {
        if seen.insert(m.clone()) {
            out.insert(m.clone());
            stack.extend(next(&m));
        }
    }
}

/// One cycle among `left` (marts that never became ready), as `a → b → a`.
fn cycle(left: &BTreeSet<String>, upstream: &BTreeMap<String, BTreeSet<String>>) -> String {
    let Some(start) = left.iter().next() else {
        return String::new();
    };
    // Walk upstream inside `left` until a mart repeats.
    let mut path: Vec<&String> = vec![start];
    loop {
        let here = path[path.len() - 1];
        let Some(next) = upstream[here].iter().find(|u| left.contains(*u)) else {
            break;
        };
        if let Some(i) = path.iter().position(|p| *p == next) {
            // Written in the direction data flows: from an upstream mart to its reader.
            let mut c: Vec<&str> = vec![next];
            c.extend(path[i..].iter().rev().map(|s| s.as_str()));
            return c.join(" → ");
        }
        path.push(next);
    }
    left.iter().cloned().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mart `m.<name>` reading `reads` (dataset.table names).
    fn mart(name: &str, reads: &[&str]) -> Mart {
        let from: Vec<String> = reads
            .iter()
            .map(|r| format!("SELECT 1 AS x FROM {r}"))
            .collect();
        let sql = format!("/* description: {name} */\n{}", from.join("\nUNION ALL "));
        Mart::parse(&sql, Path::new(&format!("marts/m/{name}.sql")), "m", name).unwrap()
    }

    fn inputs() -> Landed {
        let mut i = Landed::default();
        i.tables.insert("raw.orders".into(), Producer::Events);
        i
    }

    #[test]
    fn orders_marts_in_levels_and_selects() {
        let dag = Dag::build(
            vec![
                mart("c", &["m.a", "m.b"]),
                mart("a", &["raw.orders"]),
                mart("b", &["m.a"]),
                mart("d", &["raw.orders"]),
            ],
            &inputs(),
        )
        .unwrap();
        assert_eq!(dag.levels, [vec!["m.a", "m.d"], vec!["m.b"], vec!["m.c"]]);
        let sel = |s: &[&str]| -> Vec<String> {
            let s: Vec<String> = s.iter().map(|s| s.to_string()).collect();
            dag.select(&s).unwrap().into_iter().collect()
        };
        assert_eq!(sel(&["b"]), ["m.b"]);
        assert_eq!(sel(&["b+"]), ["m.b", "m.c"]);
        assert_eq!(sel(&["+b"]), ["m.a", "m.b"]);
        assert_eq!(sel(&["m.a+", "d"]), ["m.a", "m.b", "m.c", "m.d"]);
        assert!(dag
            .select(&["nope".into()])
            .unwrap_err()
            .into_message()
            .contains("no mart `nope`"));
        let text = dag.plan_text(&dag.select(&[]).unwrap());
        assert!(
            text.contains("  3  m.c  (table, 0 checks)  after m.a, m.b"),
            "{text}"
        );
        let mermaid = dag.plan_mermaid(&dag.select(&[]).unwrap());
        assert!(
            mermaid.contains("m__a --> m__b") && mermaid.contains("raw__orders(\"raw.orders\")"),
            "{mermaid}"
        );
    }

    #[test]
    fn cycles_are_named() {
        let e = Dag::build(
            vec![
                mart("a", &["m.c"]),
                mart("b", &["m.a"]),
                mart("c", &["m.b"]),
                mart("d", &["raw.orders"]),
            ],
            &inputs(),
        )
        .unwrap_err()
        .into_message();
        assert!(
            e.starts_with("marts depend on each other in a cycle: "),
            "{e}"
        );
        for m in ["m.a", "m.b", "m.c"] {
            assert!(e.contains(m), "{e}");
        }
        assert!(!e.contains("m.d"), "{e}");
    }

    #[test]
    fn unknown_tables_are_named_with_file_and_line() {
        let e = Dag::build(vec![mart("a", &["raw.ordres"])], &inputs())
            .unwrap_err()
            .into_message();
        assert!(
            e.starts_with("marts/m/a.sql:2: unknown table `raw.ordres`"),
            "{e}"
        );
    }
}
