//! The doctor's report: one line per check, ✓ or ✗ with the fix (`!` a warning, `–` a check
//! that could not run here, saying why), and the fix for what Terraform makes.

use std::fmt;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Works, but something deserves attention (not a failure).
    Warn,
    Fail,
    /// Could not be checked here (no right to read it, or not on this target).
    Skip,
}

impl Mark {
    /// ✓, !, ✗ or –.
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Ok => "✓",
            Mark::Warn => "!",
            Mark::Fail => "✗",
            Mark::Skip => "–",
        }
    }
}

/// One line of the report: what was checked and what was found (with the fix, for ✗).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub mark: Mark,
    pub what: String,
    pub found: String,
}

impl fmt::Display for Check {
    /// One line; what follows a line break (SQL to run) is indented under it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.mark.symbol(),
            self.what,
            self.found.replace('\n', "\n      ")
        )
    }
}

/// Every line, in the order they were checked.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds a line.
    pub(super) fn add(&mut self, mark: Mark, what: impl Into<String>, found: impl Into<String>) {
        self.checks.push(Check {
            mark,
            what: what.into(),
            found: found.into(),
        });
    }

    /// The lines with `mark`.
    pub fn count(&self, mark: Mark) -> usize {
        self.checks.iter().filter(|c| c.mark == mark).count()
    }

    /// `12 checks: 10 ✓, 1 ✗, 1 –`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [Mark::Ok, Mark::Warn, Mark::Fail, Mark::Skip]
            .into_iter()
            .filter(|m| self.count(*m) > 0)
            .map(|m| format!("{} {}", self.count(m), m.symbol()))
            .collect();
        format!("{} checks: {}", self.checks.len(), parts.join(", "))
    }
}

/// How to make what Terraform makes: the README's Deploy step 5, in the target's workspace.
pub(super) fn apply_hint(target: &str) -> String {
    format!("terraform -chdir=terraform workspace select {target} && terraform -chdir=terraform apply -var-file={target}.tfvars -var image_tag=<tag>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_a_checklist() {
        let mut r = Report::default();
        r.add(
            Mark::Ok,
            "credentials",
            "me@example.com (gcloud user credentials)",
        );
        r.add(Mark::Fail, "source shop", "no TLS");
        r.add(Mark::Skip, "project p IAM policy", "not readable here");
        assert_eq!(r.checks[1].to_string(), "✗ source shop: no TLS");
        assert_eq!(r.summary(), "3 checks: 1 ✓, 1 ✗, 1 –");
        assert_eq!(r.count(Mark::Fail), 1);
    }
}
