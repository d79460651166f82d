//! cdc-sync with the rights the README grants: a role with REPLICATION and SELECT, owning no
//! table. `init` fails naming what is missing with the SQL for the tables' owner; once the owner
//! ran that SQL (parsed from the message, not written here), `init` adopts the publication,
//! creates the slot, and `run` replicates as that role.

use sluice_tests::limited::Limited;
use sluice_tests::{write_flushed as write, TestEnv};

/// The statements of a failed init's SQL block: its lines that end in `;`, after the first
/// (which says what is missing) and not comments.
fn printed_sql(message: &str) -> Vec<String> {
    message
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| l.ends_with(';') && !l.starts_with("--"))
        .map(String::from)
        .collect()
}

/// The live rows of a replica equal the source's: key and one column, as text.
async fn assert_replica_equals_source(env: &TestEnv, table: &str, column: &str) {
    let pg: Vec<(String, Option<String>)> = env
        .pg
        .query(
            &format!("SELECT id::text, {column}::text FROM {table} ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let bq = env
        .bq_query(&format!(
            "SELECT CAST(id AS STRING) AS id, CAST({column} AS STRING) AS c FROM {} \
             WHERE NOT IFNULL(_sluice_deleted, FALSE) ORDER BY id",
            env.bq_table("src_replica", table)
        ))
        .await;
    let replica: Vec<(String, Option<String>)> = (0..bq.rows.len())
        .map(|i| {
            (
                bq.get(i, "id").unwrap_or_default().to_string(),
                bq.get(i, "c").map(String::from),
            )
        })
        .collect();
    assert_eq!(replica, pg, "replica of {table} against Postgres");
}

async fn exists(env: &TestEnv, sql: &str) -> bool {
    env.pg_i64(&format!("SELECT count(*) FROM ({sql}) x")).await > 0
}

const TABLES: &str = "
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE TABLE orders (id int PRIMARY KEY, qty int);
INSERT INTO items VALUES (1, 'a'), (2, 'b');
INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30);";

#[tokio::test]
async fn a_role_with_replication_and_select_gets_the_owners_sql_then_adopts_and_replicates() {
    let t = Limited::new(TABLES, "REPLICATION").await;
    let env = t.env();
    let role = &t.role;
    env.sql(&format!("GRANT SELECT ON items, orders TO {role}"))
        .await;
    let config = env.scratch_dir().join("pipeline.yaml");
    let tables = "items: { mode: full }\norders: { mode: full }";
    std::fs::write(
        &config,
        env.pipeline_yaml(tables, Some("tables: [items, orders]"), ""),
    )
    .unwrap();
    let slot = env.slot();

    // The role owns neither table: init fails, saying so, with the owner's SQL.
    let out = t.cli("cdc-sync", &config, "init").await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("init as {role} (REPLICATION, SELECT):\n{stderr}");
    assert!(!out.status.success(), "init succeeded:\n{stderr}");
    let message = &stderr[stderr
        .find("cdc-sync: ")
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"))..];
    let first = message.lines().next().unwrap();
    assert!(
        first.contains("checking source src")
            && first.contains(&format!("role {role} cannot replicate from database {}", env.db))
            && first.contains(&format!(
                "publication {slot} does not exist, and role {role} may not create it: it does not own public.items, public.orders (owner postgres)"
            )),
        "{first}"
    );
    assert!(
        message.contains(&format!(
            "-- as postgres:\nCREATE PUBLICATION \"{slot}\" FOR TABLE \"public\".\"items\", \"public\".\"orders\";\nthen run `cdc-sync init` again"
        )),
        "{message}"
    );
    // Nothing half-done: no publication, no slot.
    assert!(
        !exists(
            env,
            &format!("SELECT 1 FROM pg_publication WHERE pubname = '{slot}'")
        )
        .await
    );
    assert!(
        !exists(
            env,
            &format!("SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}'")
        )
        .await
    );

    // The owner runs what init printed; then init adopts the publication and makes the slot.
    let sql = printed_sql(message);
    assert_eq!(sql.len(), 1, "{sql:?}");
    for s in &sql {
        env.sql(s).await;
    }
    let out = t.cli("cdc-sync", &config, "init").await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("source src: publication exists (adopted)")
            && stdout.contains("source src: slot created at"),
        "{stdout}"
    );
    let owner: String = env
        .pg
        .query_one(
            "SELECT pg_get_userbyid(pubowner)::text FROM pg_publication WHERE pubname = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "postgres");
    // Idempotent.
    let out = t.cli("cdc-sync", &config, "init").await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && stdout.contains("source src: slot exists"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `run` as the role: the snapshot, then the stream.
    let out = t.cli("cdc-sync", &config, "run").await;
    assert!(
        out.status.success(),
        "first run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains("snapshot public.items: 2 rows")
            && stdout.contains("snapshot public.orders: 3 rows"),
        "{stdout}"
    );
    assert_replica_equals_source(env, "items", "name").await;
    assert_replica_equals_source(env, "orders", "qty").await;
    write(
        env,
        "INSERT INTO items VALUES (3, 'c'), (4, 'd');
         UPDATE items SET name = 'B' WHERE id = 2;
         UPDATE orders SET qty = qty + 1;
         DELETE FROM orders WHERE id = 1;
         INSERT INTO orders VALUES (4, 40);",
    )
    .await;
    let out = t.cli("cdc-sync", &config, "run").await;
    assert!(
        out.status.success(),
        "second run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("items: 3 changes"), "{stdout}");
    assert_replica_equals_source(env, "items", "name").await;
    assert_replica_equals_source(env, "orders", "qty").await;
}

#[tokio::test]
async fn a_role_without_replication_or_select_gets_the_alter_role_and_grant_lines() {
    let t = Limited::new(TABLES, "").await;
    let env = t.env();
    let role = &t.role;
    env.sql(&format!("GRANT SELECT ON items TO {role}")).await;
    let p = env.pipeline_with_cdc(
        "items: { mode: full }\norders: { mode: full }",
        Some("tables: [items, orders]"),
    );
    let e = cdc_sync::init(&p, "local", None)
        .await
        .expect_err("init without REPLICATION")
        .to_string();
    eprintln!("init as {role} (SELECT on items only):\n{e}");
    let first = e.lines().next().unwrap();
    assert!(
        first.contains(&format!(
            "role {role} lacks the REPLICATION attribute, which creating and reading the slot needs"
        )) && first.contains(&format!(
            "role {role} may not SELECT public.orders, which the snapshot reads"
        )),
        "{first}"
    );
    let sql = printed_sql(&e);
    assert_eq!(
        sql,
        vec![
            format!("ALTER ROLE \"{role}\" WITH REPLICATION;"),
            format!("GRANT SELECT ON \"public\".\"orders\" TO \"{role}\";"),
            format!(
                "CREATE PUBLICATION \"{}\" FOR TABLE \"public\".\"items\", \"public\".\"orders\";",
                env.slot()
            ),
        ],
        "{e}"
    );
    assert!(e.contains("-- as a superuser:\nALTER ROLE"), "{e}");
    for s in &sql {
        env.sql(s).await;
    }
    let r = cdc_sync::init(&p, "local", None).await.expect("init");
    let (_, r) = &r[0];
    assert!(r.publication_adopted && r.slot_created, "{r:?}");
    let s = cdc_sync::run(&p, &cdc_sync::Options::new("local"))
        .await
        .expect("run");
    assert_eq!(s.snapshots.len(), 2, "{s:?}");
    assert_replica_equals_source(env, "orders", "qty").await;
}

/// A role that owns its tables (not a superuser) creates the publication itself, as before;
/// lacking CREATE on the database it is told to ask the database's owner for it.
#[tokio::test]
async fn a_role_owning_its_tables_creates_the_publication_once_it_may_create_in_the_database() {
    let t = Limited::new("SELECT 1", "REPLICATION").await;
    let env = t.env();
    let role = &t.role;
    env.sql(&format!(
        "GRANT CREATE ON SCHEMA public TO {role}; SET ROLE {role}; {TABLES} RESET ROLE;"
    ))
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [items, orders]"));
    let e = cdc_sync::init(&p, "local", None)
        .await
        .expect_err("init without CREATE on the database")
        .to_string();
    assert!(
        e.contains(&format!(
            "may not create it: it lacks CREATE on database {}",
            env.db
        )),
        "{e}"
    );
    let sql = printed_sql(&e);
    assert_eq!(
        sql,
        vec![format!(
            "GRANT CREATE ON DATABASE \"{}\" TO \"{role}\";",
            env.db
        )]
    );
    assert!(e.contains("-- as postgres:"), "{e}");
    env.sql(&sql[0]).await;
    let r = cdc_sync::init(&p, "local", None).await.expect("init");
    let (_, r) = &r[0];
    assert!(
        r.publication_created && !r.publication_adopted && r.slot_created,
        "{r:?}"
    );
    // Idempotent, and a table it owns is added to its publication by init itself.
    env.sql(&format!(
        "SET ROLE {role}; CREATE TABLE later (id int PRIMARY KEY); RESET ROLE;"
    ))
    .await;
    let p = env.pipeline_with_cdc("", Some("tables: [items, orders, later]"));
    let r = cdc_sync::init(&p, "local", None).await.expect("init again");
    let (_, r) = &r[0];
    assert!(
        !r.publication_created && !r.slot_created && r.tables_added == ["public.later"],
        "{r:?}"
    );
}
