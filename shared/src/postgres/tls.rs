//! TLS to Postgres as libpq does it: `sslmode` (`disable`, `allow`, `prefer`, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system`), and `sslcert` /
//! `sslkey` for servers that ask for a client certificate, read from the DSN (or libpq's
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`), over rustls.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses every other ssl
//! key, and tokio-postgres-rustls verifies as a browser does (chain and name) or not at all.
//! So the ssl keys are taken out of the DSN here, tokio-postgres gets the rest, and the
//! certificate checks each mode promises are a rustls verifier of our own:
//!
//! | sslmode | encrypted | chain checked | host name checked |
//! |---|---|---|---|
//! | disable | no | – | – |
//! | allow, prefer (default) | when the server offers TLS | only with an `sslrootcert` | no |
//! | require | yes, or the connection fails | only with an `sslrootcert` (as libpq) | no |
//! | verify-ca | yes | yes | no |
//! | verify-full | yes | yes | yes |
//!
//! The roots are the `sslrootcert` file, or, without one (or with `sslrootcert=system`), the
//! system's (libpq would look for `~/.postgresql/root.crt`, which a container does not have).
//! `sslrootcert=system` makes `verify-full` the default and refuses weaker modes (PostgreSQL
//! 16's rule). Unix-socket hosts (`host=/cloudsql/…`) never use TLS: Postgres does not offer
//! it there, and libpq skips it too. `allow` tries TLS first (libpq tries without first).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as PgSslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: [&'static str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];

    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's roots (no `sslrootcert`, or `sslrootcert=system`).
    System,
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
}

/// The TLS settings of one DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// The `sslrootcert` given, if any (`None`: the system's roots, used by the verify modes).
    pub root_cert: Option<Roots>,
    /// `sslcert` and `sslkey`: a client certificate and its key, PEM files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Every host of the DSN is a Unix socket directory: no TLS.
    pub unix_socket: bool,
}

impl TlsSettings {
    /// Whether the server's chain is checked against the roots.
    pub fn checks_chain(&self) -> bool {
        self.mode >= SslMode::VerifyCa
            || (self.mode > SslMode::Disable && matches!(self.root_cert, Some(Roots::File(_))))
    }

    /// What this mode checks, in a few words (for logs and `monitor doctor`).
    pub fn describe(&self) -> String {
        if self.unix_socket {
            return format!(
                "sslmode={}, Unix socket: no TLS (Postgres offers none there)",
                self.mode.as_str()
            );
        }
        let what = match self.mode {
            SslMode::Disable => "no TLS",
            SslMode::Allow | SslMode::Prefer => "TLS when the server offers it",
            SslMode::Require => "TLS required",
            SslMode::VerifyCa => "TLS required, certificate chain checked",
            SslMode::VerifyFull => "TLS required, certificate chain and host name checked",
        };
        let chain = if self.mode < SslMode::VerifyCa && self.checks_chain() {
            ", chain checked (sslrootcert given)"
        } else {
            ""
        };
        let roots = match (&self.root_cert, self.checks_chain()) {
            (_, false) => String::new(),
            (Some(Roots::File(p)), true) => format!(" against {}", p.display()),
            (_, true) => " against the system's roots".into(),
        };
        format!("sslmode={}: {what}{chain}{roots}", self.mode.as_str())
    }
}

/// A DSN split into what tokio-postgres reads (its `Config`, with its own ssl mode set) and
/// the TLS settings, or a message naming what is wrong (never the DSN itself).
pub fn parse(dsn: &str) -> Result<(tokio_postgres::Config, TlsSettings), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    parse_with_env(dsn, &env)
}

const SSL_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

fn parse_with_env(
    dsn: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(tokio_postgres::Config, TlsSettings), String> {
    let (rest, mut ssl) = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        split_url(dsn)?
    } else {
        split_key_values(dsn)?
    };
    for (key, var) in SSL_KEYS
        .iter()
        .zip(["PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"])
    {
        if !ssl.iter().any(|(k, _)| k == key) {
            if let Some(v) = env(var) {
                ssl.push((key.to_string(), v));
            }
        }
    }
    let get = |k: &str| ssl.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let root_cert = get("sslrootcert").map(|r| {
        if r == "system" {
            Roots::System
        } else {
            Roots::File(PathBuf::from(r))
        }
    });
    let mode = match get("sslmode") {
        Some(m) => SslMode::parse(&m)
            .ok_or_else(|| format!("sslmode `{m}` is not one of {}", SslMode::NAMES.join(", ")))?,
        None if root_cert == Some(Roots::System) => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if root_cert == Some(Roots::System) && mode != SslMode::VerifyFull {
        return Err(format!(
            "sslrootcert=system needs sslmode=verify-full (the system's roots vouch for host names, so a weaker mode would check nothing), not {}",
            mode.as_str()
        ));
    }
    let client_cert = match (get("sslcert"), get("sslkey")) {
        (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
        (None, None) => None,
        (Some(_), None) => return Err("sslcert is set without sslkey".into()),
        (None, Some(_)) => return Err("sslkey is set without sslcert".into()),
    };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
        format!("the connection string is not valid ({e}); expected postgres://user:password@host:port/db")
    })?;
    let hosts = config.get_hosts();
    let unix_socket = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
    config.ssl_mode(match mode {
        _ if unix_socket => PgSslMode::Disable,
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    Ok((
        config,
        TlsSettings {
            mode,
            root_cert,
            client_cert,
            unix_socket,
        },
    ))
}

type Split = (String, Vec<(String, String)>);

/// `postgres://…?a=b&sslmode=…`: the ssl keys of the query taken out, the rest kept as written.
fn split_url(dsn: &str) -> Result<Split, String> {
    let Some((base, query)) = dsn.split_once('?') else {
        return Ok((dsn.to_string(), vec![]));
    };
    let mut kept = vec![];
    let mut ssl = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        if SSL_KEYS.contains(&key.as_str()) {
            ssl.push((key, decode(v)?));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, ssl))
}

fn decode(s: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "the connection string's query is not UTF-8 once decoded".to_string())
}

/// `host=… sslmode=…`: libpq's keyword/value form (values unquoted or in single quotes, with
/// `\'` and `\\`), the ssl keys taken out and the rest written back quoted.
fn split_key_values(dsn: &str) -> Result<Split, String> {
    let mut chars = dsn.chars().peekable();
    let mut kept = vec![];
    let mut ssl = vec![];
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "the connection string is not valid (`{key}` has no `=value`); expected postgres://user:password@host:port/db"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!(
                            "the connection string is not valid (the value of `{key}` has no closing quote)"
                        ))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if SSL_KEYS.contains(&key.as_str()) {
            ssl.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), ssl))
}

/// A DSN as tokio-postgres' config and the connector its ssl settings ask for, for callers
/// that drive tokio-postgres themselves (the benchmarks); the workers use `connect`.
#[cfg(feature = "test-utils")]
pub fn config(dsn: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    let (config, settings) = parse(dsn)?;
    Ok((config, connector(&settings)?))
}

/// The rustls connector for these settings: roots, the verifier the mode asks for, and the
/// client certificate. Errors name the file that could not be used.
pub fn connector(s: &TlsSettings) -> Result<MakeRustlsConnect, String> {
    crate::install_crypto();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let roots = match s.checks_chain() {
        true => Some(roots(s.root_cert.as_ref())?),
        false => None,
    };
    let verifier = Arc::new(Verifier {
        roots,
        check_name: s.mode == SslMode::VerifyFull,
        provider,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &s.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert, "sslcert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "sslkey {}: no private key could be read ({e})",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("sslcert/sslkey: {e}"))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key} {}: cannot read it ({e})", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key} {}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: holds no certificate", path.display()));
    }
    Ok(certs)
}

fn roots(r: Option<&Roots>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match r {
        Some(Roots::File(path)) => {
            for c in certificates(path, "sslrootcert")? {
                store.add(c).map_err(|e| {
                    format!(
                        "sslrootcert {}: not a usable CA certificate ({e})",
                        path.display()
                    )
                })?;
            }
        }
        None | Some(Roots::System) => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(
                    "no system CA certificates found (install ca-certificates, or set sslrootcert to a CA file)"
                        .into(),
                );
            }
        }
    }
    Ok(store)
}

/// The certificate check of every mode: with roots (verify-ca, verify-full, and require or
/// prefer with an `sslrootcert` file) the chain must lead to one, and for verify-full the name
/// must match; without (prefer, require) the certificate is taken as it comes, libpq's meaning
/// of those modes. The handshake's own signatures are checked either way.
#[derive(Debug)]
struct Verifier {
    roots: Option<RootCertStore>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check_name {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls error somewhere under a connection error, said for a person: what the
/// certificate check found and which setting decides it.
pub fn explain(e: &tokio_postgres::Error, s: &TlsSettings, host: &str) -> Option<String> {
    for err in crate::error::causes(e) {
        // An io::Error's `source()` skips the error it wraps: look at that one too.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(err), inner].into_iter().flatten() {
            if let Some(r) = candidate.downcast_ref::<rustls::Error>() {
                return Some(explain_rustls(r, s, host));
            }
        }
    }
    if crate::error::with_causes(e).contains("server does not support TLS") {
        return Some(format!(
            "the server does not offer TLS, and sslmode={} requires it (turn ssl on in the server, or lower sslmode)",
            s.mode.as_str()
        ));
    }
    None
}

fn explain_rustls(r: &rustls::Error, s: &TlsSettings, host: &str) -> String {
    use rustls::CertificateError as C;
    let roots = match &s.root_cert {
        Some(Roots::File(p)) => format!("the CA in sslrootcert {}", p.display()),
        _ => "the system's CA certificates (set sslrootcert to the server's CA file)".into(),
    };
    let mode = s.mode.as_str();
    match r {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => format!(
                "TLS: the server's certificate is not signed by {roots} (sslmode={mode} checks the chain)"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "TLS: the server's certificate is not valid for host name {host} (sslmode=verify-full checks it; connect by a name the certificate lists)"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (check the clocks)".into()
            }
            other => format!("TLS: the server's certificate was refused ({other:?}, sslmode={mode})"),
        },
        rustls::Error::AlertReceived(a) => format!(
            "TLS: the server ended the handshake ({a:?}){}",
            if s.client_cert.is_none() {
                "; it may want a client certificate (sslcert, sslkey)"
            } else {
                ""
            }
        ),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests;
