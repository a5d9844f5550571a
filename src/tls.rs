//! TLS, configured like Redis 7.0: `tls-port`, `tls-cert-file`,
//! `tls-key-file`, `tls-ca-cert-file`/`-dir`, `tls-auth-clients`,
//! `tls-protocols`, `tls-ciphersuites`, `tls-ciphers`, session caching.
//!
//! The acceptor is built from the config as a whole (like Redis's
//! `tlsConfigure`): either every file and option is valid and the new
//! acceptor replaces the old one, or nothing changes. Connections take the
//! acceptor current at their accept, so a reload (CONFIG SET) affects new
//! connections only.

use std::io::BufReader;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use rustls::crypto::ring::cipher_suite as suites;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};

use crate::config::Config;

/// A client that connects but never completes the handshake is dropped after
/// this long, so it cannot hold a socket and a task forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Redis's reply when CONFIG SET cannot apply a TLS parameter.
pub const RELOAD_FAILED: &str = "Unable to update TLS configuration. Check server logs.";

/// Session cache entries kept at most (OpenSSL's 0 means "no limit"; a
/// memory cache needs some bound).
const MAX_SESSION_CACHE: usize = 1 << 20;

/// TLS 1.3 suites: OpenSSL's names (what tls-ciphersuites lists) and ring's.
const TLS13_SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_AES_128_GCM_SHA256", suites::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", suites::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.2 suites rustls implements, under OpenSSL's names (tls-ciphers).
const TLS12_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The live TLS state of the server.
#[derive(Default)]
pub struct Tls {
    /// None while TLS is off (tls-port 0).
    acceptor: RwLock<Option<TlsAcceptor>>,
    /// The bound TLS port (0 = not listening).
    pub port: AtomicU64,
}

impl Tls {
    /// The acceptor for a connection accepted now.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().clone()
    }

    pub fn enabled(&self) -> bool {
        self.acceptor.read().is_some()
    }

    /// Builds the acceptor from `config` and installs it; on error the
    /// previous acceptor stays (the error says why, for the log).
    pub fn configure(&self, config: &Config) -> Result<(), String> {
        let acceptor = build_acceptor(&Settings::from_config(config))?;
        *self.acceptor.write() = Some(acceptor);
        Ok(())
    }

    /// CONFIG SET of TLS parameters: when TLS is on, rebuilds the acceptor
    /// from the new config. Called before the new config is installed, so a
    /// failure leaves both the config and the acceptor as they were.
    pub fn reload(&self, new_config: &Config) -> Result<(), String> {
        if new_config.get_i64("tls-port") == 0 {
            return Ok(());
        }
        self.configure(new_config).inspect_err(|e| {
            tracing::warn!("Failed to update the TLS configuration: {e}");
        })
    }
}

/// Config parameters whose change rebuilds the acceptor.
pub fn affects_acceptor(param: &str) -> bool {
    param.starts_with("tls-") && param != "tls-port"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    No,
    Yes,
    Optional,
}

/// The TLS parameters, read out of the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cert_file: String,
    pub key_file: String,
    pub key_file_pass: String,
    pub ca_cert_file: String,
    pub ca_cert_dir: String,
    pub auth_clients: ClientAuth,
    pub protocols: String,
    pub ciphersuites: String,
    pub ciphers: String,
    pub prefer_server_ciphers: bool,
    pub session_caching: bool,
    pub session_cache_size: usize,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            cert_file: c.get("tls-cert-file").to_string(),
            key_file: c.get("tls-key-file").to_string(),
            key_file_pass: c.get("tls-key-file-pass").to_string(),
            ca_cert_file: c.get("tls-ca-cert-file").to_string(),
            ca_cert_dir: c.get("tls-ca-cert-dir").to_string(),
            auth_clients: match c.get("tls-auth-clients") {
                "no" => ClientAuth::No,
                "optional" => ClientAuth::Optional,
                _ => ClientAuth::Yes,
            },
            protocols: c.get("tls-protocols").to_string(),
            ciphersuites: c.get("tls-ciphersuites").to_string(),
            ciphers: c.get("tls-ciphers").to_string(),
            prefer_server_ciphers: c.get_bool("tls-prefer-server-ciphers"),
            session_caching: c.get_bool("tls-session-caching"),
            session_cache_size: c.get_i64("tls-session-cache-size").max(0) as usize,
        }
    }
}

/// Builds a server acceptor, checking everything Redis's `tlsConfigure`
/// checks: both files set and readable, the key matching the certificate,
/// a CA when clients must authenticate, known protocols and suites.
pub fn build_acceptor(s: &Settings) -> Result<TlsAcceptor, String> {
    if s.cert_file.is_empty() {
        return Err("No tls-cert-file configured!".into());
    }
    if s.key_file.is_empty() {
        return Err("No tls-key-file configured!".into());
    }
    if s.auth_clients != ClientAuth::No && s.ca_cert_file.is_empty() && s.ca_cert_dir.is_empty() {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-auth-clients is enabled!".into());
    }
    let versions = parse_protocols(&s.protocols)?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = cipher_suites(&s.ciphersuites, &s.ciphers)?;
    let provider = Arc::new(provider);

    let certs = load_certs(Path::new(&s.cert_file))
        .map_err(|e| format!("Failed to load certificate: {}: {e}", s.cert_file))?;
    let key = load_key(Path::new(&s.key_file), &s.key_file_pass)
        .map_err(|e| format!("Failed to load private key: {}: {e}", s.key_file))?;

    let verifier = if s.auth_clients == ClientAuth::No {
        WebPkiClientVerifier::no_client_auth()
    } else {
        let roots = load_roots(&s.ca_cert_file, &s.ca_cert_dir)
            .map_err(|e| format!("Failed to configure CA certificate(s) file/directory: {e}"))?;
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        let builder = if s.auth_clients == ClientAuth::Optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("Failed to configure client verification: {e}"))?
    };

    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure protocols: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("Failed to use the certificate and key: {e}"))?;
    cfg.ignore_client_order = s.prefer_server_ciphers;
    cfg.session_storage = if s.session_caching {
        let size = match s.session_cache_size {
            0 => MAX_SESSION_CACHE,
            n => n.min(MAX_SESSION_CACHE),
        };
        ServerSessionMemoryCache::new(size)
    } else {
        Arc::new(NoServerSessionStorage {})
    };
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// tls-protocols: space-separated TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 (any
/// case); empty = TLSv1.2 and TLSv1.3. rustls has no TLS 1.0/1.1, so those
/// are accepted but cannot be the only ones listed.
pub fn parse_protocols(s: &str) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    if s.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS12, &rustls::version::TLS13]);
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    let mut legacy = false;
    for word in s.split_whitespace() {
        match word.to_ascii_lowercase().as_str() {
            "tlsv1" | "tlsv1.1" => legacy = true,
            "tlsv1.2" => versions.push(&rustls::version::TLS12),
            "tlsv1.3" => versions.push(&rustls::version::TLS13),
            _ => {
                return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".into())
            }
        }
    }
    if versions.is_empty() {
        return Err("tls-protocols names only TLSv1/TLSv1.1, which Cairn does not support: add TLSv1.2 or TLSv1.3".into());
    }
    if legacy {
        tracing::warn!("tls-protocols: TLSv1 and TLSv1.1 are not supported and are ignored");
    }
    Ok(versions)
}

/// The enabled suites: tls-ciphersuites picks TLS 1.3 suites (OpenSSL names,
/// colon-separated; every name must be known, as OpenSSL requires),
/// tls-ciphers picks TLS 1.2 suites (an OpenSSL cipher list: the names rustls
/// implements are kept, keywords such as HIGH or !aNULL are ignored, since
/// every rustls suite is a modern AEAD one). Empty = all.
pub fn cipher_suites(
    ciphersuites: &str,
    ciphers: &str,
) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut out = Vec::new();
    if ciphersuites.trim().is_empty() {
        out.extend(TLS13_SUITES.iter().map(|(_, s)| *s));
    } else {
        for name in ciphersuites
            .split(':')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            match TLS13_SUITES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, s)) => out.push(*s),
                None => return Err(format!("Failed to configure ciphersuites: {ciphersuites}")),
            }
        }
    }
    let mut tls12 = Vec::new();
    let mut named_any = false;
    for word in ciphers
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        // Exclusions and keywords (HIGH, DEFAULT, @STRENGTH, !MD5 ...).
        if word.starts_with(['!', '-', '+', '@']) || !word.contains('-') {
            continue;
        }
        named_any = true;
        if let Some((_, s)) = TLS12_SUITES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(word))
        {
            tls12.push(*s);
        }
    }
    if named_any && tls12.is_empty() {
        return Err(format!("Failed to configure ciphers: {ciphers}"));
    }
    if tls12.is_empty() {
        tls12.extend(TLS12_SUITES.iter().map(|(_, s)| *s));
    }
    out.extend(tls12);
    Ok(out)
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file ({e})"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

fn load_key(path: &Path, pass: &str) -> Result<PrivateKeyDer<'static>, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let encrypted = text.windows(9).any(|w| w == b"ENCRYPTED");
    if encrypted {
        return Err(if pass.is_empty() {
            "the key is encrypted and no tls-key-file-pass is set".into()
        } else {
            "encrypted private keys are not supported by Cairn (tls-key-file-pass); store the key unencrypted with restricted file permissions".into()
        });
    }
    rustls_pemfile::private_key(&mut text.as_slice())
        .map_err(|e| format!("not a PEM key file ({e})"))?
        .ok_or_else(|| "no PEM private key found".into())
}

fn load_roots(ca_file: &str, ca_dir: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut add = |path: &Path, strict: bool| -> Result<(), String> {
        let certs = match load_certs(path) {
            Ok(c) => c,
            Err(e) if strict => return Err(format!("{}: {e}", path.display())),
            // A CA directory may hold other files (hash links, CRLs).
            Err(_) => return Ok(()),
        };
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    };
    if !ca_file.is_empty() {
        add(Path::new(ca_file), true)?;
    }
    if !ca_dir.is_empty() {
        let entries = std::fs::read_dir(ca_dir).map_err(|e| format!("{ca_dir}: {e}"))?;
        for entry in entries.flatten() {
            if entry.path().is_file() {
                add(&entry.path(), false)?;
            }
        }
    }
    if roots.is_empty() {
        return Err("no CA certificate found".into());
    }
    Ok(roots)
}

/// The TLS handshake of an accepted connection, bounded by
/// [`HANDSHAKE_TIMEOUT`]. None if it failed (logged at debug level, as a
/// client's failure, not the server's).
pub async fn handshake(
    acceptor: TlsAcceptor,
    sock: TcpStream,
    peer: &std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!("Error accepting a client connection: {e} (conn: fd, addr={peer})");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer} timed out");
            None
        }
    }
}

/// Startup: with tls-port set, build the acceptor and refuse to start on
/// any error, like Redis ("Failed to configure TLS").
pub fn configure_at_startup(tls: &Tls, config: &Config) -> Result<(), String> {
    if config.get_i64("tls-port") == 0 {
        return Ok(());
    }
    tls.configure(config)
        .map_err(|e| format!("{e}\nFailed to configure TLS. Check logs for more info."))
}

/// Listens on tls-port, if set. Startup failure names the port, like Redis.
pub async fn bind(
    srv: &std::sync::Arc<crate::server::Server>,
) -> Result<Option<tokio::net::TcpListener>, String> {
    let port = srv.config.read().get_i64("tls-port") as u16;
    if port == 0 {
        return Ok(None);
    }
    let listener = crate::server::listen(srv, port)
        .await
        .map_err(|e| format!("Failed listening on port {port} (TLS), aborting: {e}"))?;
    let actual = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    srv.tls
        .port
        .store(actual as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(parse_protocols("").unwrap().len(), 2);
        assert_eq!(parse_protocols("TLSv1.3").unwrap().len(), 1);
        assert_eq!(parse_protocols("tlsv1.2 TLSV1.3").unwrap().len(), 2);
        assert_eq!(parse_protocols("TLSv1.1 TLSv1.2").unwrap().len(), 1);
        assert!(parse_protocols("TLSv1.1").is_err());
        assert!(parse_protocols("SSLv3").is_err());
    }

    #[test]
    fn suites() {
        assert_eq!(cipher_suites("", "").unwrap().len(), 9);
        let s = cipher_suites("TLS_AES_256_GCM_SHA384", "").unwrap();
        assert_eq!(s.len(), 7);
        assert!(cipher_suites("TLS_BOGUS", "").is_err());
        // OpenSSL keyword lists keep every TLS 1.2 suite.
        assert_eq!(cipher_suites("", "HIGH:!aNULL:!MD5").unwrap().len(), 9);
        // Named suites restrict TLS 1.2 to the ones rustls implements.
        let s = cipher_suites("", "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA").unwrap();
        assert_eq!(s.len(), 4);
        assert!(cipher_suites("", "AES128-SHA:DES-CBC3-SHA").is_err());
    }
}
