//! Tests of reading sslmode and its root file (DSN, libpq environment), and of their errors.

use super::*;

fn split(dsn: &str) -> Result<(tokio_postgres::Config, TlsSettings), String> {
    parse_with_env(dsn, &|_| None)
}

#[test]
fn the_default_is_prefer_like_libpq() {
    let (c, s) = split("postgres://u:pw@db.internal:6543/shop").unwrap();
    assert_eq!(s.mode, SslMode::Prefer);
    assert_eq!(c.get_ssl_mode(), PgSslMode::Prefer);
    assert!(!s.checks_chain());
    assert_eq!(c.get_dbname(), Some("shop"));
}

#[test]
fn every_libpq_mode_is_read_from_a_url_and_taken_out_of_it() {
    for (name, pg) in [
        ("disable", PgSslMode::Disable),
        ("allow", PgSslMode::Prefer),
        ("prefer", PgSslMode::Prefer),
        ("require", PgSslMode::Require),
        ("verify-ca", PgSslMode::Require),
        ("verify-full", PgSslMode::Require),
    ] {
        let (c, s) = split(&format!(
            "postgresql://u:pw@h/db?application_name=x&sslmode={name}&sslrootcert=%2Fcerts%2Fca.pem&connect_timeout=3"
        ))
        .unwrap();
        assert_eq!(s.mode.as_str(), name);
        assert_eq!(c.get_ssl_mode(), pg, "{name}");
        assert_eq!(s.root_cert, Some(Roots::File("/certs/ca.pem".into())));
        assert_eq!(c.get_application_name(), Some("x"));
        assert_eq!(
            c.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(3))
        );
    }
}

#[test]
fn key_value_dsns_keep_their_quoted_values() {
    let (c, s) = split(
        r"host=db.internal port=5433 dbname=shop user=app password='it\'s a \\secret' sslmode = verify-full sslrootcert='/etc/my certs/ca.pem'",
    )
    .unwrap();
    assert_eq!(s.mode, SslMode::VerifyFull);
    assert_eq!(
        s.root_cert,
        Some(Roots::File("/etc/my certs/ca.pem".into()))
    );
    assert_eq!(c.get_password(), Some(&br"it's a \secret"[..]));
    assert_eq!(c.get_ports(), [5433]);
    assert!(split("host=h sslmode='verify-full").is_err());
    assert!(split("host=h sslmode").is_err());
}

#[test]
fn a_unix_socket_host_never_uses_tls() {
    let (c, s) = split("postgres://app:pw@/shop?host=/cloudsql/p:r:i&sslmode=verify-full").unwrap();
    assert!(s.unix_socket);
    assert_eq!(c.get_ssl_mode(), PgSslMode::Disable);
    assert!(s.describe().contains("Unix socket"));
}

#[test]
fn bad_values_are_named_without_the_dsn() {
    let e = split("postgres://u:hunter2@h/db?sslmode=verify_full").unwrap_err();
    assert!(
        e.contains("sslmode `verify_full` is not one of disable, allow"),
        "{e}"
    );
    assert!(!e.contains("hunter2"));
    let e = split("postgres://u:hunter2@h/db?sslmode=require&sslrootcert=system").unwrap_err();
    assert!(
        e.contains("sslrootcert=system needs sslmode=verify-full"),
        "{e}"
    );
    let (_, s) = split("postgres://u@h/db?sslrootcert=system").unwrap();
    assert_eq!(s.mode, SslMode::VerifyFull);
    assert_eq!(s.root_cert, Some(Roots::System));
    assert!(split("postgres://u@h/db?sslcert=/c.pem")
        .unwrap_err()
        .contains("without sslkey"));
}

#[test]
fn libpq_environment_variables_fill_what_the_dsn_leaves_out() {
    let env = |k: &str| match k {
        "PGSSLMODE" => Some("verify-ca".to_string()),
        "PGSSLROOTCERT" => Some("/env/ca.pem".to_string()),
        _ => None,
    };
    let (_, s) = parse_with_env("postgres://u@h/db", &env).unwrap();
    assert_eq!(s.mode, SslMode::VerifyCa);
    assert_eq!(s.root_cert, Some(Roots::File("/env/ca.pem".into())));
    let (_, s) = parse_with_env("postgres://u@h/db?sslmode=disable", &env).unwrap();
    assert_eq!(s.mode, SslMode::Disable, "the DSN wins");
}

#[test]
fn require_checks_the_chain_only_with_a_root_file_as_libpq_does() {
    let s = |mode, root: Option<Roots>| TlsSettings {
        mode,
        root_cert: root,
        client_cert: None,
        unix_socket: false,
    };
    assert!(!s(SslMode::Require, None).checks_chain());
    assert!(s(SslMode::Require, Some(Roots::File("/ca".into()))).checks_chain());
    assert!(s(SslMode::VerifyCa, None).checks_chain());
    assert!(!s(SslMode::Disable, Some(Roots::File("/ca".into()))).checks_chain());
    assert_eq!(
        s(SslMode::VerifyFull, None).describe(),
        "sslmode=verify-full: TLS required, certificate chain and host name checked against the system's roots"
    );
}

#[test]
fn a_missing_root_file_is_named() {
    let s = TlsSettings {
        mode: SslMode::VerifyFull,
        root_cert: Some(Roots::File("/nonexistent/ca.pem".into())),
        client_cert: None,
        unix_socket: false,
    };
    let e = connector(&s).err().unwrap();
    assert!(
        e.starts_with("sslrootcert /nonexistent/ca.pem: cannot read it"),
        "{e}"
    );
}
