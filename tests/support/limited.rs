//! A test database whose pipeline connects as a login role of its own, `r_<id>`, with only
//! the attributes and grants a test gives it (the rights a team grants sluice).

use std::process::Output;

use crate::TestEnv;

/// A test database with a login role `r_<id>` that the pipeline's DSN connects as. Roles are
/// cluster-wide: it is dropped after the database (whose grants would otherwise keep it).
pub struct Limited {
    env: Option<TestEnv>,
    pub role: String,
    pub dsn: String,
}

impl Limited {
    /// `sql` runs as postgres first (to create the tables); then the role is created with
    /// `attributes` and the pipeline's DSN variable points at it.
    pub async fn new(sql: &str, attributes: &str) -> Limited {
        let env = TestEnv::new().await;
        env.sql(sql).await;
        let role = format!("r_{}", env.id);
        env.sql(&format!("CREATE ROLE {role} LOGIN {attributes}"))
            .await;
        let dsn = format!(
            "postgres://{role}@{}:{}/{}",
            env.stack.pg_host, env.stack.pg_port, env.db
        );
        // nextest runs each test in its own process: the variable is this test's alone.
        std::env::set_var(env.dsn_var(), &dsn);
        Limited {
            env: Some(env),
            role,
            dsn,
        }
    }

    /// The test's environment (its database, datasets and pipeline).
    pub fn env(&self) -> &TestEnv {
        self.env.as_ref().expect("the test's environment")
    }

    /// Runs a worker's command (`cdc-sync init`, `monitor doctor`) as the role, with this
    /// test's pipeline.
    pub async fn cli(&self, worker: &str, config: &std::path::Path, cmd: &str) -> Output {
        tokio::process::Command::new(crate::binary(worker))
            .args([cmd, "--target", "local", "--log-format", "json", "--config"])
            .arg(config)
            .env(self.env().dsn_var(), &self.dsn)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the worker runs")
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        // The database first (its slots, grants and objects go with it), then the role.
        drop(self.env.take());
        let stack = crate::Stack::from_env();
        let role = self.role.clone();
        crate::cleanup(async move {
            if let Some(c) = stack.admin().await {
                let _ = c
                    .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
                    .await;
            }
        });
    }
}
