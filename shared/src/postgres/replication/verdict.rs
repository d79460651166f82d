//! The verdict on a database's facts: what is missing, and the SQL that supplies it, by who
//! must run it and in the order to run it.

use super::facts::Platform;

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
    pub(super) platform: Platform,
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
pub(super) struct Fixes(Vec<(Step, RunAs, String)>);

/// Order of the statements: a grant of CREATE on the database before the publication it
/// allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    Replication,
    DatabaseCreate,
    SchemaUsage,
    Select,
    Publication,
}

impl Fixes {
    pub(super) fn add(&mut self, step: Step, run_as: RunAs, sql: String) {
        self.0.push((step, run_as, sql));
    }

    pub(super) fn grouped(mut self) -> Vec<Fix> {
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

/// `a, b, c`.
pub(super) fn list(items: &[String]) -> String {
    items.join(", ")
}
