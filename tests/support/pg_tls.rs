//! A PostgreSQL server that speaks only TLS, as managed Postgres does with "require SSL": a
//! cluster of the test's own (initdb), `ssl = on` with a server certificate signed by a CA the
//! test makes, and a `pg_hba.conf` of `hostssl` lines only, so a client that does not ask for
//! TLS is refused by the server itself. Stopped and deleted on drop. `start_plain` makes the
//! same cluster without TLS, for server-wide settings a test must not impose on the shared
//! server (a small `max_slot_wal_keep_size` invalidates slots).

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority and a server certificate it signed.
pub struct Certs {
    /// The CA's certificate (PEM): what `sslrootcert` points at.
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

/// A CA named `name`, and a server certificate for the host names and addresses in `sans`.
pub fn certs(name: &str, sans: &[&str]) -> Certs {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("a server key");
    let mut server = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("server params");
    server.distinguished_name.push(
        DnType::CommonName,
        sans.first().copied().unwrap_or("server"),
    );
    let cert = server
        .signed_by(&key, &issuer)
        .expect("a server certificate");
    Certs {
        ca_pem: ca_cert.pem(),
        server_cert_pem: cert.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

/// The running TLS-only server.
pub struct TlsPostgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
}

fn as_postgres(cmd: &Path) -> Command {
    if nix::unistd::Uid::effective().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(cmd);
        c
    } else {
        Command::new(cmd)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsPostgres {
    /// initdb, certificates in place, started on a free port of 127.0.0.1 with logical
    /// decoding on. The PostgreSQL binaries are `SLUICE_PG_BIN`'s (scripts/local-stack.sh env).
    pub fn start(certs: &Certs) -> TlsPostgres {
        TlsPostgres::start_with(Some(certs), "")
    }

    /// A cluster of the test's own without TLS (plain `host … trust`), with `extra` lines
    /// added to postgresql.conf: for settings a test must not impose on the shared server,
    /// such as a small `max_slot_wal_keep_size`.
    pub fn start_plain(extra: &str) -> TlsPostgres {
        TlsPostgres::start_with(None, extra)
    }

    fn start_with(certs: Option<&Certs>, extra: &str) -> TlsPostgres {
        let bin = PathBuf::from(std::env::var("SLUICE_PG_BIN").unwrap_or_else(|_| {
            panic!(
                "SLUICE_PG_BIN is not set: eval \"$(scripts/local-stack.sh env)\" (make test does)"
            )
        }));
        let dir = std::env::temp_dir().join(format!(
            "sluice-tls-pg-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        ));
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let data = dir.join("data");
        if nix::unistd::Uid::effective().is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown the cluster's directory",
            );
        }
        let mut init = as_postgres(&bin.join("initdb"));
        init.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(init, "initdb");
        for (name, text) in certs.iter().flat_map(|c| {
            [
                ("server.crt", &c.server_cert_pem),
                ("server.key", &c.server_key_pem),
            ]
        }) {
            std::fs::write(data.join(name), text).expect("write the certificate");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Every TCP connection must use TLS; the socket (for the harness) is trusted.
        let host = if certs.is_some() { "hostssl" } else { "host" };
        std::fs::write(
            data.join("pg_hba.conf"),
            format!("local all all trust\n{host} all all 127.0.0.1/32 trust\n{host} all all ::1/128 trust\n"),
        )
        .expect("pg_hba.conf");
        let ssl = if certs.is_some() {
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
        } else {
            ""
        };
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             {ssl}wal_level = logical\nmax_replication_slots = 8\nmax_wal_senders = 8\nfsync = off\n{extra}\n",
            dir.display()
        );
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap_or_default();
        pgconf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pgconf).expect("postgresql.conf");
        if nix::unistd::Uid::effective().is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&data);
                    c
                },
                "chown the cluster",
            );
        }
        if certs.is_some() {
            run(
                {
                    let mut c = Command::new("chmod");
                    c.arg("0600").arg(data.join("server.key"));
                    c
                },
                "chmod the server key",
            );
        }
        let mut start = as_postgres(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "start"]);
        run(start, "pg_ctl start");
        TlsPostgres { dir, port, bin }
    }

    /// Writes a file (a CA, a pipeline.yaml) next to the cluster and returns its path.
    pub fn write_file(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).expect("write a file next to the cluster");
        path
    }

    /// A DSN for `db` at `host` (`localhost` is the name the certificate lists) with the
    /// given libpq options, e.g. `sslmode=verify-full&sslrootcert=/…/ca.pem`.
    pub fn dsn(&self, host: &str, db: &str, options: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}?{options}", self.port)
    }

    /// Runs SQL as the superuser over the Unix socket (the harness's way in, no TLS).
    pub fn psql(&self, db: &str, sql: &str) {
        let mut c = Command::new("psql");
        c.args(["-v", "ON_ERROR_STOP=1", "-q", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ]);
        run(c, &format!("psql {sql}"));
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let mut stop = as_postgres(&self.bin.join("pg_ctl"));
        stop.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = stop.output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
