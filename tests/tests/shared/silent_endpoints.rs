//! Endpoints that accept the TCP connection and never answer (a firewall dropping packets, a
//! stuck proxy): every worker fails in bounded time with one line naming the endpoint and what
//! it did not answer, never a hang. The silent endpoints are real local listeners; the rest of
//! the stack is the real one.

use std::process::Output;
use std::time::{Duration, Instant};

use sluice::config::Timeouts;
use sluice::postgres::connect;
use sluice::secret::Secret;
use sluice::ErrorKind;
use sluice_tests::proxy::TcpProxy;
use sluice_tests::TestEnv;
use tokio::net::TcpListener;

/// A listener on a free loopback port that accepts connections, holds them open and never
/// sends a byte.
async fn silent_listener() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

/// The HTTP client every Google call uses: a request to a silent endpoint ends within the
/// request timeout, and the error says so.
#[tokio::test]
async fn a_silent_http_endpoint_times_out_with_a_clear_message() {
    let (port, _hold) = silent_listener().await;
    let t = Timeouts {
        request: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let started = Instant::now();
    let e = sluice::http::client(&t)
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sluice::http::kind(&e), ErrorKind::Unanswered);
    assert_eq!(
        sluice::http::describe(&e, &t),
        "accepted the connection but did not answer within 300 ms (timeouts.request of the target)"
    );
}

/// A Postgres connect to a silent server fails after three tries of the connect timeout,
/// naming the endpoint and what it did not answer.
#[tokio::test]
async fn a_silent_server_fails_the_postgres_connect_in_bounded_time() {
    let (port, _hold) = silent_listener().await;
    let t = Timeouts {
        connect: Duration::from_millis(200),
        ..Timeouts::default()
    };
    let dsn = Secret::new(format!("postgres://app:pw@127.0.0.1:{port}/shop"));
    let started = Instant::now();
    let e = connect("shop", &dsn, "test", &t).await.err().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Unanswered);
    assert_eq!(
        e.to_string(),
        format!("postgres (connecting to source shop at 127.0.0.1:{port}/shop as app): accepted the connection but did not answer its startup within 200 ms (timeouts.connect of the target)")
    );
}

/// The test's pipeline YAML with `timeouts` set on the local target.
fn with_timeouts(yaml: &str, timeouts: &str) -> String {
    yaml.replace(
        "    verify_push_tokens: false\n",
        &format!("    verify_push_tokens: false\n    timeouts: {timeouts}\n"),
    )
}

/// Runs a worker binary with `args` and the test's config; env pairs override the stack's.
async fn run(
    worker: &str,
    args: &[&str],
    config: &std::path::Path,
    env: &[(&str, String)],
) -> (Output, Duration) {
    let mut c = tokio::process::Command::new(sluice_tests::binary(worker));
    c.args(args)
        .args(["--target", "local", "--log-format", "json", "--config"])
        .arg(config)
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(120), c.output())
        .await
        .unwrap_or_else(|_| panic!("{worker} {args:?} still running after 120 s"))
        .unwrap();
    (out, started.elapsed())
}

/// The last line a worker printed on stderr: its error.
fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// `worker` failed within `within`, its last line starting with its name and naming each of
/// `names`.
fn assert_fails_naming(
    worker: &str,
    out: &Output,
    took: Duration,
    within: Duration,
    names: &[&str],
) {
    let line = last_line(out);
    assert!(
        !out.status.success(),
        "{worker} succeeded against a silent endpoint"
    );
    assert!(
        took < within,
        "{worker} took {took:?} (bound {within:?}): {line}"
    );
    for n in names {
        assert!(
            line.contains(n),
            "{worker}: `{n}` is not in its last line: {line}"
        );
    }
    assert!(line.starts_with(&format!("{worker}: ")), "{line}");
}

/// `yaml` written as `<name>.yaml` in the test's scratch directory.
fn write_config(env: &TestEnv, yaml: &str, name: &str) -> std::path::PathBuf {
    let path = env.scratch_dir().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn a_silent_postgres_fails_pg_copy_and_cdc_sync_in_bounded_time() {
    let env = TestEnv::new().await;
    let (port, _hold) = silent_listener().await;
    let yaml = with_timeouts(
        &env.pipeline_yaml(
            "a: { mode: full }\nb: { mode: full }",
            Some("tables: [a]"),
            "",
        ),
        "{ connect: 500ms }",
    );
    let config = write_config(&env, &yaml, "silent-pg");
    let silent = vec![(
        env.dsn_var(),
        format!("postgres://app:secret@127.0.0.1:{port}/shop"),
    )];
    let endpoint = format!("127.0.0.1:{port}/shop as app");
    // Three tries of 0.5 s and the backoff between them; the second table (one unit at a
    // time) is not tried again.
    let (out, took) = run("pg-copy", &["--concurrency", "1"], &config, &silent).await;
    assert_fails_naming(
        "pg-copy",
        &out,
        took,
        Duration::from_secs(15),
        &[
            &endpoint,
            "did not answer its startup within 500 ms",
            "2 of 2 units failed",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not tried: source src did not answer"),
        "{stdout}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
    for cmd in [&["init"][..], &["run"][..], &["status"][..]] {
        let (out, took) = run("cdc-sync", cmd, &config, &silent).await;
        assert_fails_naming(
            "cdc-sync",
            &out,
            took,
            Duration::from_secs(15),
            &[&endpoint, "did not answer its startup within 500 ms"],
        );
    }
}

/// The defaults bound it too: three tries of 10 s.
#[tokio::test]
async fn with_default_timeouts_a_silent_postgres_fails_within_a_minute() {
    let env = TestEnv::new().await;
    let (port, _hold) = silent_listener().await;
    let config = write_config(
        &env,
        &env.pipeline_yaml("", Some("tables: [a]"), ""),
        "defaults",
    );
    let silent = vec![(
        env.dsn_var(),
        format!("postgres://app@127.0.0.1:{port}/shop"),
    )];
    let (out, took) = run("cdc-sync", &["run"], &config, &silent).await;
    assert_fails_naming(
        "cdc-sync",
        &out,
        took,
        Duration::from_secs(60),
        &[
            &format!("127.0.0.1:{port}"),
            "within 10 s (timeouts.connect of the target)",
        ],
    );
    assert!(
        took >= Duration::from_secs(30),
        "three tries of 10 s: {took:?}"
    );
}

#[tokio::test]
async fn a_silent_bigquery_fails_every_worker_in_bounded_time() {
    let env = TestEnv::new().await;
    env.sql("CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a VALUES (1, 'x');")
        .await;
    let (port, _hold) = silent_listener().await;
    let schemas = env.scratch_dir().join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::write(
        schemas.join("ping.json"),
        r#"{"type": "object", "properties": {"n": {"type": "integer"}}}"#,
    )
    .unwrap();
    let events = format!("events:\n  schemas: {}\n", schemas.display());
    let yaml = with_timeouts(
        &env.pipeline_yaml("a: { mode: full }", Some("tables: [a]"), &events),
        "{ request: 1s }",
    );
    let config = write_config(&env, &yaml, "silent-bq");
    let url = format!("http://127.0.0.1:{port}");
    let silent = vec![("SLUICE_BQ_ENDPOINT", url.clone())];
    let names = [
        format!("BigQuery at {url}"),
        "did not answer within 1 s (timeouts.request of the target)".to_string(),
    ];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let bound = Duration::from_secs(20);
    let (out, took) = run("pg-copy", &[], &config, &silent).await;
    assert_fails_naming("pg-copy", &out, took, bound, &names);
    let (out, _) = run("cdc-sync", &["init"], &config, &[]).await;
    assert!(out.status.success(), "{}", last_line(&out));
    let (out, took) = run("cdc-sync", &["run"], &config, &silent).await;
    assert_fails_naming("cdc-sync", &out, took, bound, &names);
    let (out, took) = run("log-ingest", &["serve", "--port", "0"], &config, &silent).await;
    assert_fails_naming("log-ingest", &out, took, bound, &names);
    let marts = env.scratch_dir().join("marts");
    std::fs::create_dir_all(marts.join("m")).unwrap();
    std::fs::write(
        marts.join("m/one.sql"),
        "/*\nmaterialized: table\n*/\nSELECT 1 AS x\n",
    )
    .unwrap();
    let marts_arg = marts.display().to_string();
    let (out, took) = run(
        "mart-build",
        &["run", "--ds", "2024-05-01", "--marts", &marts_arg],
        &config,
        &silent,
    )
    .await;
    assert_fails_naming("mart-build", &out, took, bound, &names);
}

#[tokio::test]
async fn a_postgres_that_stops_answering_mid_session_fails_the_statement() {
    let env = TestEnv::new().await;
    let proxy = TcpProxy::start(format!("{}:{}", env.stack.pg_host, env.stack.pg_port)).await;
    let dsn = Secret::new(format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        proxy.port, env.db
    ));
    let t = Timeouts {
        statement: Duration::from_millis(700),
        ..Timeouts::default()
    };
    let endpoint = format!("127.0.0.1:{}/{} as postgres", proxy.port, env.db);
    let conn = connect("src", &dsn, "test", &t).await.expect("connect");
    let one: i32 = conn
        .query_one("a first query", "SELECT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);

    // A COPY that streams, then stops answering while it streams.
    let mut copy = conn
        .copy_out(
            "copying a series",
            "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 2000000) g) TO STDOUT",
        )
        .await
        .unwrap();
    use futures::StreamExt;
    for _ in 0..10 {
        copy.next().await.unwrap().unwrap();
    }
    proxy.freeze();
    let started = Instant::now();
    let e = loop {
        match copy.next().await {
            Some(Ok(_)) => continue, // what was already on its way
            Some(Err(e)) => break e,
            None => panic!("the copy ended although the proxy froze"),
        }
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Unanswered);
    assert_eq!(
        e.to_string(),
        format!("postgres (copying a series): {endpoint} did not answer within 700 ms (timeouts.statement of the target)")
    );
    drop(copy);

    // A statement on a frozen connection.
    let started = Instant::now();
    let e = conn
        .query_one("counting rows", "SELECT count(*) FROM pg_class", &[])
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        e.to_string()
            .ends_with("did not answer within 700 ms (timeouts.statement of the target)"),
        "{e}"
    );
}
