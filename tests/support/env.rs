//! The test environment: the running stack's endpoints, and for each test its own Postgres
//! database, BigQuery dataset suffix, lake bucket and scratch directory, all dropped with it.

use std::path::PathBuf;

use sluice::bigquery::{BigQuery, QueryRows};
use sluice::config::Pipeline;
use sluice::ledger::Ledger;
use tokio_postgres::{Client, NoTls};

/// Endpoints of the running stack, from the variables `scripts/local-stack.sh env` prints.
#[derive(Debug, Clone)]
pub struct Stack {
    pub pg_host: String,
    pub pg_port: u16,
    pub bq_endpoint: String,
    pub bq_project: String,
    pub lake_dir: PathBuf,
    pub gcs_endpoint: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the stack with `scripts/local-stack.sh up` and `eval \"$(scripts/local-stack.sh env)\"` (make test does both)")
    })
}

impl Stack {
    /// The stack the environment names; a missing variable fails the test (never a skip).
    pub fn from_env() -> Stack {
        Stack {
            pg_host: var("SLUICE_PG_HOST"),
            pg_port: var("SLUICE_PG_PORT")
                .parse()
                .expect("SLUICE_PG_PORT is a port"),
            bq_endpoint: var("SLUICE_BQ_ENDPOINT"),
            bq_project: var("SLUICE_BQ_PROJECT"),
            lake_dir: PathBuf::from(var("SLUICE_LAKE_DIR")),
            gcs_endpoint: var("SLUICE_GCS_ENDPOINT"),
        }
    }

    /// The superuser's DSN of database `db` on the stack's Postgres.
    pub fn dsn(&self, db: &str) -> String {
        format!("postgres://postgres@{}:{}/{db}", self.pg_host, self.pg_port)
    }

    /// The superuser's connection to the stack's `postgres` database, if it answers.
    pub async fn admin(&self) -> Option<Client> {
        let (c, conn) = tokio_postgres::connect(&self.dsn("postgres"), NoTls)
            .await
            .ok()?;
        tokio::spawn(conn);
        Some(c)
    }
}

/// A fresh Postgres database, a dataset suffix, a lake bucket and a scratch directory for one
/// test.
pub struct TestEnv {
    pub stack: Stack,
    /// Short random id: database `t_<id>`, datasets `*_t<id>`, bucket `t<id>`.
    pub id: String,
    pub db: String,
    pub pg: Client,
    pub bq: BigQuery,
    dsn_var: String,
}

impl TestEnv {
    /// Creates the test's database and points its DSN variable at it.
    pub async fn new() -> TestEnv {
        let stack = Stack::from_env();
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let db = format!("t_{id}");
        let admin = connect(&stack.dsn("postgres")).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .expect("create the test database");
        let pg = connect(&stack.dsn(&db)).await;
        let bq =
            BigQuery::emulator(&stack.bq_endpoint, &stack.bq_project).expect("emulator client");
        let dsn_var = format!("SLUICE_TEST_DSN_{}", id.to_uppercase());
        // nextest runs every test in its own process, so this variable is the test's alone.
        std::env::set_var(&dsn_var, stack.dsn(&db));
        TestEnv {
            stack,
            id,
            db,
            pg,
            bq,
            dsn_var,
        }
    }

    /// The environment variable that holds this test's DSN.
    pub fn dsn_var(&self) -> &str {
        &self.dsn_var
    }

    /// A dataset name as the test's target writes it.
    pub fn dataset(&self, name: &str) -> String {
        format!("{name}_t{}", self.id)
    }

    /// A directory of this test's own for the files it writes (pipeline.yaml, schemas, marts),
    /// made on first use and deleted with the environment.
    pub fn scratch_dir(&self) -> PathBuf {
        let dir = scratch_dir(&self.id);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        dir
    }

    /// A pipeline with one source `src` (dataset `src`) and the given `tables:` YAML block,
    /// whose `local` target writes to this test's datasets and lake bucket.
    pub fn pipeline(&self, tables_yaml: &str) -> Pipeline {
        self.pipeline_with_cdc(tables_yaml, None)
    }

    /// The slot and publication name a CDC test uses (slots are cluster-wide, so unique).
    pub fn slot(&self) -> String {
        format!("s_{}", self.id)
    }

    /// Like `pipeline`, with a `cdc:` block for `src` (YAML lines under `cdc:`); the slot and
    /// publication are named by `slot()`.
    pub fn pipeline_with_cdc(&self, tables_yaml: &str, cdc_yaml: Option<&str>) -> Pipeline {
        let yaml = self.pipeline_yaml(tables_yaml, cdc_yaml, "");
        Pipeline::parse(&yaml, "test pipeline").unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    /// A pipeline with an `events:` block (YAML lines under `events:`) reading schemas from
    /// `schemas`, as YAML text (to write to a file) and parsed.
    pub fn pipeline_with_events(
        &self,
        schemas: &std::path::Path,
        events_yaml: &str,
    ) -> (String, Pipeline) {
        let body: String = events_yaml.lines().map(|l| format!("  {l}\n")).collect();
        let extra = format!("events:\n  schemas: {}\n{body}", schemas.display());
        let yaml = self.pipeline_yaml("", None, &extra);
        let p = Pipeline::parse(&yaml, "test pipeline").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        (yaml, p)
    }

    /// The pipeline's YAML text: source `src` with `tables_yaml`, an optional `cdc:` block, any
    /// `extra` top-level blocks, and a `local` target writing to this test's datasets.
    pub fn pipeline_yaml(&self, tables_yaml: &str, cdc_yaml: Option<&str>, extra: &str) -> String {
        let mut tables: String = tables_yaml
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect();
        if tables.is_empty() {
            tables = "      {}\n".into();
        }
        let cdc = match cdc_yaml {
            None => String::new(),
            Some(c) => {
                let body: String = c.lines().map(|l| format!("      {l}\n")).collect();
                format!(
                    "    cdc:\n      slot: {s}\n      publication: {s}\n{body}",
                    s = self.slot()
                )
            }
        };
        format!(
            "name: test\n\
             bigquery: {{ project: {project} }}\n\
             lake: {{ bucket: unused }}\n\
             sources:\n  src:\n    dsn: {{ env: {dsn} }}\n    tables:\n{tables}{cdc}{extra}\
             targets:\n  local:\n    project: {project}\n    bigquery_endpoint: {bq}\n    lake: {lake}\n    lake_bucket: t{id}\n    dataset_suffix: _t{id}\n    no_auth: true\n    verify_push_tokens: false\n",
            project = self.stack.bq_project,
            dsn = self.dsn_var,
            bq = self.stack.bq_endpoint,
            lake = self.stack.lake_dir.display(),
            id = self.id,
        )
    }

    /// Runs SQL in the test database.
    pub async fn sql(&self, sql: &str) {
        self.pg
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs a BigQuery query.
    pub async fn bq_query(&self, sql: &str) -> QueryRows {
        self.bq
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The one value a BigQuery query returns (its only column, first row) as text; `None`
    /// when it is NULL or there is no row. For tests that query one value, then assert on it.
    pub async fn bq_scalar(&self, sql: &str) -> Option<String> {
        let r = self.bq_query(sql).await;
        assert_eq!(r.columns.len(), 1, "{sql}: one column, got {:?}", r.columns);
        r.rows.first()?.first()?.as_str().map(String::from)
    }

    /// `project.dataset_tID.table` quoted.
    pub fn bq_table(&self, dataset: &str, table: &str) -> String {
        format!(
            "`{}.{}.{table}`",
            self.stack.bq_project,
            self.dataset(dataset)
        )
    }

    /// COUNT(*) of a BigQuery query's FROM clause, e.g. `bq_count("src", "t", "WHERE x")`.
    pub async fn bq_count(&self, dataset: &str, table: &str, filter: &str) -> u64 {
        self.bq_scalar(&format!(
            "SELECT COUNT(*) AS n FROM {} {filter}",
            self.bq_table(dataset, table)
        ))
        .await
        .expect("a count")
        .parse()
        .expect("a number")
    }

    /// A single number from Postgres.
    pub async fn pg_i64(&self, sql: &str) -> i64 {
        self.pg
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// The run ledger of this test's target (`ops.runs`), made if need be: for seeding rows.
    pub async fn ledger(&self) -> Ledger {
        Ledger::open(self.bq.clone(), &self.dataset("ops"))
            .await
            .expect("the run ledger opens")
    }

    /// The lake directory of this test's bucket.
    pub fn lake_bucket_dir(&self) -> PathBuf {
        self.stack.lake_dir.join(format!("t{}", self.id))
    }
}

/// The scratch directory of the test with id `id`.
fn scratch_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-t{id}"))
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let stack = self.stack.clone();
        let db = self.db.clone();
        let id = self.id.clone();
        let bucket = self.lake_bucket_dir();
        let _ = std::fs::remove_dir_all(scratch_dir(&id));
        cleanup(async move {
            if let Some(c) = stack.admin().await {
                // A database with a replication slot cannot be dropped.
                let _ = c
                    .execute(
                        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1",
                        &[&db],
                    )
                    .await;
                let _ = c
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .await;
            }
            if let Ok(bq) = BigQuery::emulator(&stack.bq_endpoint, &stack.bq_project) {
                for ds in ["src", "src_replica", "ops", "sluice_staging", "events", "m"] {
                    let _ = bq.delete_dataset(&format!("{ds}_t{id}")).await;
                }
            }
            let _ = std::fs::remove_dir_all(bucket);
        });
    }
}

/// Runs SQL and waits until its WAL is flushed: logical decoding reads only flushed WAL, and
/// the local server commits asynchronously (synchronous_commit=off). The WAL writer flushes
/// only up to the last asynchronous commit and whole pages, so WAL written after the commit
/// (a running-xacts record, say) can wait on an idle server indefinitely: a small synchronous
/// commit after the SQL flushes everything before it.
pub async fn write_flushed(env: &TestEnv, sql: &str) {
    env.sql(sql).await;
    let lsn: String = env
        .pg
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    env.sql("BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT")
        .await;
    for _ in 0..500 {
        let done: bool = env
            .pg
            .query_one(
                "SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .await
            .unwrap()
            .get(0);
        if done {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("WAL not flushed past {lsn} after 10 s");
}

/// Runs clean-up work to its end on a runtime of its own thread: `Drop` may run inside the
/// test's runtime, which cannot be blocked on.
pub fn cleanup(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work)
    })
    .join();
}

async fn connect(dsn: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(dsn, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the stack's Postgres at {dsn}: {e}; run scripts/local-stack.sh up")
        });
    tokio::spawn(conn);
    c
}
