//! Postgres over TLS, against a server that, like managed Postgres with "require SSL", accepts
//! TCP connections over TLS only (`hostssl` lines only in pg_hba.conf) with a certificate for
//! `localhost` signed by a CA the test makes: `verify-full` copies and replicates; a wrong host
//! name, an unknown CA and `sslmode=disable` each fail at once with one line naming the
//! source and the reason.

use std::time::{Duration, Instant};

use sluice::config::Timeouts;
use sluice::postgres::tls::SslMode;
use sluice::secret::Secret;
use sluice_tests::pg_tls::{certs, TlsPostgres};
use sluice_tests::{binary, TestEnv};

/// A TLS-only server with a database named like the test's and a table of 1,000 rows, and
/// the path of its CA.
async fn server(env: &TestEnv) -> (TlsPostgres, std::path::PathBuf) {
    let certs = certs("sluice test CA", &["localhost"]);
    let pg = TlsPostgres::start(&certs);
    let ca = pg.write_file("ca.pem", &certs.ca_pem);
    pg.psql("postgres", &format!("CREATE DATABASE {}", env.db));
    pg.psql(
        &env.db,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;",
    );
    (pg, ca)
}

#[tokio::test]
async fn verify_full_copies_and_replicates_over_tls() {
    let env = TestEnv::new().await;
    let (pg, ca) = server(&env).await;
    let dsn = pg.dsn(
        "localhost",
        &env.db,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    // The connection is encrypted and checked: the server says so of its own session.
    let conn = sluice::postgres::connect("src", &Secret::new(&dsn), "test", &Timeouts::default())
        .await
        .expect("verify-full connects to localhost with the right CA");
    assert_eq!(conn.tls().mode, SslMode::VerifyFull);
    let row = conn
        .query_one(
            "reading pg_stat_ssl",
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let (ssl, version): (bool, Option<String>) = (row.get(0), row.get(1));
    assert!(ssl, "the session is not encrypted");
    assert!(version.unwrap_or_default().starts_with("TLSv1."));
    drop(conn);

    std::env::set_var(env.dsn_var(), &dsn);
    let p = env.pipeline_with_cdc("items: { mode: full }", Some("tables: [items]"));
    let mut o = pg_copy::Options::new("local");
    o.verify = true;
    let s = pg_copy::run(&p, &o).await.expect("pg-copy starts");
    for u in &s.units {
        assert_eq!(u.status, sluice::ledger::Status::Success, "{:?}", u.error);
    }
    assert_eq!(env.bq_count("src", "items", "").await, 1000);

    // cdc-sync: the slot and every read of it go over the same TLS connection settings.
    cdc_sync::init(&p, "local", None)
        .await
        .expect("init over TLS");
    cdc_sync::run(&p, &cdc_sync::Options::new("local"))
        .await
        .expect("the snapshot over TLS");
    pg.psql(
        &env.db,
        "UPDATE items SET name = 'changed ' || id WHERE id <= 10;
         INSERT INTO items VALUES (1001, 'new');
         DELETE FROM items WHERE id = 1000;",
    );
    cdc_sync::run(&p, &cdc_sync::Options::new("local"))
        .await
        .expect("changes streamed over TLS");
    let live = env
        .bq_count(
            "src_replica",
            "items",
            "WHERE NOT COALESCE(_sluice_deleted, false)",
        )
        .await;
    assert_eq!(live, 1000);
    let changed = env
        .bq_count(
            "src_replica",
            "items",
            "WHERE name LIKE 'changed %' AND NOT COALESCE(_sluice_deleted, false)",
        )
        .await;
    assert_eq!(changed, 10);
}

/// Runs `pg-copy` against the server with `options` and returns its exit success, its
/// stderr and how long it took.
async fn copy_with(
    env: &TestEnv,
    pg: &TlsPostgres,
    host: &str,
    options: &str,
) -> (bool, String, Duration) {
    let yaml = env.pipeline_yaml("items: { mode: full }", None, "");
    let file = pg.write_file("pipeline.yaml", &yaml);
    let started = Instant::now();
    let out = tokio::process::Command::new(binary("pg-copy"))
        .args(["--target", "local", "--log-format", "human", "--config"])
        .arg(&file)
        .env(env.dsn_var(), pg.dsn(host, &env.db, options))
        .output()
        .await
        .expect("pg-copy runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout),
        started.elapsed(),
    )
}

/// The line of the output that names the source's connection, asserted to say `reason`.
fn failure_line<'a>(out: &'a str, reason: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| l.contains("connecting to source src at"))
        .unwrap_or_else(|| panic!("no line names the source:\n{out}"));
    assert!(line.contains(reason), "{line}");
    line
}

#[tokio::test]
async fn a_wrong_host_name_an_unknown_ca_and_no_tls_each_fail_at_once_saying_why() {
    let env = TestEnv::new().await;
    let (pg, ca) = server(&env).await;
    let other = certs("another CA", &["localhost"]);
    let other_ca = pg.write_file("other-ca.pem", &other.ca_pem);
    let limit = Duration::from_secs(20);

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca (which
    // does not check the name) connects.
    let (ok, out, took) = copy_with(
        &env,
        &pg,
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
    .await;
    assert!(!ok, "{out}");
    failure_line(&out, "not valid for host name 127.0.0.1");
    assert!(took < limit, "took {took:?}");
    let (ok, out, _) = copy_with(
        &env,
        &pg,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
    )
    .await;
    assert!(ok, "verify-ca does not check the host name:\n{out}");

    let (ok, out, took) = copy_with(
        &env,
        &pg,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    )
    .await;
    assert!(!ok, "{out}");
    failure_line(&out, "not signed by the CA in sslrootcert");
    assert!(took < limit, "took {took:?}");

    let (ok, out, took) = copy_with(&env, &pg, "localhost", "sslmode=disable").await;
    assert!(!ok, "{out}");
    let line = failure_line(&out, "no encryption");
    assert!(line.contains("set sslmode=require or stronger"), "{line}");
    assert!(took < limit, "took {took:?}");

    // libpq's default, prefer, and require without a root both encrypt and take the
    // certificate as it comes.
    for options in ["", "sslmode=require", "sslmode=prefer"] {
        let (ok, out, _) = copy_with(&env, &pg, "127.0.0.1", options).await;
        assert!(ok, "{options}: {out}");
    }
}

#[tokio::test]
async fn verify_full_against_a_server_without_tls_says_the_server_offers_none() {
    // The local stack's server has ssl off.
    let env = TestEnv::new().await;
    let dsn = format!(
        "postgres://postgres@{}:{}/{}?sslmode=verify-full",
        env.stack.pg_host, env.stack.pg_port, env.db
    );
    let started = Instant::now();
    let err = sluice::postgres::connect("src", &Secret::new(dsn), "test", &Timeouts::default())
        .await
        .err()
        .expect("verify-full needs TLS");
    let msg = err.to_string();
    assert!(
        msg.contains("connecting to source src") && msg.contains("does not offer TLS"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
