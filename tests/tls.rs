//! TLS over real sockets: certificates are generated per test with rcgen,
//! the real `cairn` binary serves them, and clients are the `redis` crate,
//! redis-cli, and a bare rustls client (to look at the handshake itself).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, raw};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use tokio_rustls::rustls;

/// A certificate authority that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate for 127.0.0.1/localhost (server) or a client.
    fn issue(&self, name: &str, serial: u64, client: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

/// A CA, a server certificate and a client certificate, written to a tempdir.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    server: Leaf,
    client: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Cairn test CA");
        let server = ca.issue("cairn server", 1001, false);
        let client = ca.issue("cairn client", 2001, true);
        let pki = Pki {
            dir,
            ca,
            server,
            client,
        };
        pki.write("ca.crt", &pki.ca.pem());
        pki.write("server.crt", &pki.server.cert_pem);
        pki.write("server.key", &pki.server.key_pem);
        pki.write("client.crt", &pki.client.cert_pem);
        pki.write("client.key", &pki.client.key_pem);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.path(name), text).unwrap();
        self.p(name)
    }

    /// The server's TLS arguments, plus `extra`.
    fn server_args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--tls-cert-file",
            &self.p("server.crt"),
            "--tls-key-file",
            &self.p("server.key"),
            "--tls-ca-cert-file",
            &self.p("ca.crt"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }
}

/// A cairn process with a TLS port (and a plain port unless TLS-only).
struct TlsServer {
    child: Child,
    tls_port: u16,
    plain_port: Option<u16>,
    _data: tempfile::TempDir,
    log: tempfile::NamedTempFile,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_cairn(plain_port: Option<u16>, tls_port: u16, args: &[String]) -> TlsServer {
    let data = tempfile::tempdir().unwrap();
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--port")
        .arg(plain_port.unwrap_or(0).to_string())
        .arg("--tls-port")
        .arg(tls_port.to_string())
        .arg("--dir")
        .arg(data.path())
        .arg("--save")
        .arg("")
        .args(args)
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("spawn cairn");
    TlsServer {
        child,
        tls_port,
        plain_port,
        _data: data,
        log,
    }
}

impl TlsServer {
    /// Starts cairn and waits until a TLS client (with the client
    /// certificate) gets PONG.
    fn start(pki: &Pki, plain: bool, extra: &[&str]) -> TlsServer {
        let plain_port = plain.then(free_port);
        let mut s = spawn_cairn(plain_port, free_port(), &pki.server_args(extra));
        let cfg = client_config(&[&pki.ca.pem()], Some(&pki.client), &[]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("cairn exited during startup: {status}\n{}", s.output());
            }
            if let Ok(mut c) = tls_connect(s.tls_port, &cfg) {
                if ping(&mut c).is_ok_and(|r| r == "+PONG") {
                    return s;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cairn did not start: {}",
                s.output()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn plain(&self) -> redis::Connection {
        let port = self.plain_port.expect("a plain port");
        redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// A `redis` crate connection over TLS trusting `pki`'s CA.
    fn redis_tls(&self, pki: &Pki, client_cert: bool) -> redis::RedisResult<redis::Connection> {
        let certs = redis::TlsCertificates {
            client_tls: client_cert.then(|| redis::ClientTlsConfig {
                client_cert: pki.client.cert_pem.clone().into_bytes(),
                client_key: pki.client.key_pem.clone().into_bytes(),
            }),
            root_cert: Some(pki.ca.pem().into_bytes()),
        };
        redis::Client::build_with_tls(format!("rediss://127.0.0.1:{}/", self.tls_port), certs)?
            .get_connection_with_timeout(Duration::from_secs(5))
    }
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A bare rustls client config: trusts `cas`, presents `client` if given,
/// speaks `versions` (empty = all).
fn client_config(
    cas: &[&str],
    client: Option<&Leaf>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for pem in cas {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let versions: Vec<&'static SupportedProtocolVersion> = if versions.is_empty() {
        vec![&rustls::version::TLS12, &rustls::version::TLS13]
    } else {
        versions.to_vec()
    };
    let builder = ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match client {
        Some(leaf) => {
            let key = rustls_pemfile::private_key(&mut leaf.key_pem.as_bytes())
                .unwrap()
                .unwrap();
            builder
                .with_client_auth_cert(vec![CertificateDer::from(leaf.der.clone())], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(cfg)
}

type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (from the client's side: with TLS
/// 1.3 the server may still reject the client's certificate afterwards).
fn tls_connect(port: u16, cfg: &Arc<ClientConfig>) -> std::io::Result<TlsClient> {
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let conn = ClientConnection::new(cfg.clone(), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Sends PING and returns the reply line.
fn ping(s: &mut TlsClient) -> std::io::Result<String> {
    s.write_all(b"PING\r\n")?;
    s.flush()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end().to_string())
}

/// The certificate the server presented on `s`.
fn served_cert(s: &TlsClient) -> Vec<u8> {
    s.conn.peer_certificates().expect("server certificate")[0].to_vec()
}

fn config_get(con: &mut redis::Connection, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(con)
        .unwrap();
    v.get(1).cloned().unwrap_or_default()
}

fn err_of(r: redis::RedisResult<redis::Value>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
            .trim()
            .to_string(),
    }
}

#[test]
fn ping_set_get_and_large_values_over_tls() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    let mut con = s.redis_tls(&pki, true).expect("TLS connection");
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).unwrap(),
        "PONG"
    );
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    assert_eq!(
        redis::cmd("GET")
            .arg("k")
            .query::<String>(&mut con)
            .unwrap(),
        "v"
    );

    // Larger than a TLS record and than the session's write buffer.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut con)
        .unwrap();
    let back: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert_eq!(back, big);

    // A pipeline whose replies span many records.
    let mut p = redis::pipe();
    for _ in 0..5000 {
        p.cmd("INCR").arg("n");
    }
    let replies: Vec<i64> = p.query(&mut con).unwrap();
    assert_eq!(replies.last(), Some(&5000));

    // The same data on the plain port.
    let mut plain = s.plain();
    assert_eq!(
        raw(&mut plain, &["GET", "n"]).unwrap(),
        redis::Value::BulkString(b"5000".to_vec())
    );
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut plain).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn a_client_that_never_finishes_the_handshake_does_not_block_others() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    // Connected, silent: its handshake waits on its own task.
    let _silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap())
        .collect();
    // Half a ClientHello.
    let mut half = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    for _ in 0..3 {
        let mut con = s.redis_tls(&pki, true).unwrap();
        assert_eq!(
            redis::cmd("PING").query::<String>(&mut con).unwrap(),
            "PONG"
        );
    }
    assert_eq!(
        raw(&mut s.plain(), &["PING"]).unwrap(),
        redis::Value::SimpleString("PONG".into())
    );
}

#[test]
fn redis_cli_tls_interop() {
    if Command::new("redis-cli").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-cli is required in CI but is not installed");
        }
        eprintln!("SKIPPED: redis-cli is not installed; TLS interop test not run");
        return;
    }
    let pki = Pki::new();
    let s = TlsServer::start(&pki, false, &[]);
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert", &pki.p("ca.crt")])
            .args([
                "--cert",
                &pki.p("client.crt"),
                "--key",
                &pki.p("client.key"),
            ])
            .args(["-h", "127.0.0.1", "-p", &s.tls_port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim()
        .to_string()
    };
    assert_eq!(cli(&["ping"]), "PONG");
    assert_eq!(cli(&["set", "greeting", "hello tls"]), "OK");
    assert_eq!(cli(&["get", "greeting"]), "hello tls");
    assert_eq!(cli(&["config", "get", "port"]), "port\n0");
    // Without the client certificate the server (tls-auth-clients yes) refuses.
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", &pki.p("ca.crt")])
        .args(["-h", "127.0.0.1", "-p", &s.tls_port.to_string(), "ping"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PONG"),
        "{out:?}"
    );
}

#[test]
fn mutual_tls_requires_a_ca_signed_client_certificate() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    assert_eq!(config_get(&mut s.plain(), "tls-auth-clients"), "yes");
    let ca = pki.ca.pem();

    // No certificate: the handshake (or the first exchange, in TLS 1.3) fails.
    let no_cert = client_config(&[&ca], None, &[]);
    let r = tls_connect(s.tls_port, &no_cert).and_then(|mut c| ping(&mut c));
    assert!(r.is_err(), "a client without a certificate got {r:?}");
    assert!(s
        .redis_tls(&pki, false)
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_err());

    // A certificate from another CA is refused too.
    let stranger = Ca::new("Another CA").issue("intruder", 7, true);
    let foreign = client_config(&[&ca], Some(&stranger), &[]);
    let r = tls_connect(s.tls_port, &foreign).and_then(|mut c| ping(&mut c));
    assert!(r.is_err(), "a foreign client certificate got {r:?}");

    // The CA-signed client certificate works.
    let good = client_config(&[&ca], Some(&pki.client), &[]);
    let mut c = tls_connect(s.tls_port, &good).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    assert_eq!(served_cert(&c), pki.server.der);
    let mut con = s.redis_tls(&pki, true).unwrap();
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).unwrap(),
        "PONG"
    );
}

#[test]
fn optional_client_auth_verifies_only_presented_certificates() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &["--tls-auth-clients", "optional"]);
    let ca = pki.ca.pem();
    let mut c = tls_connect(s.tls_port, &client_config(&[&ca], None, &[])).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    let mut c = tls_connect(s.tls_port, &client_config(&[&ca], Some(&pki.client), &[])).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    let stranger = Ca::new("Another CA").issue("intruder", 7, true);
    let r = tls_connect(s.tls_port, &client_config(&[&ca], Some(&stranger), &[]))
        .and_then(|mut c| ping(&mut c));
    assert!(r.is_err(), "a foreign client certificate got {r:?}");

    // tls-auth-clients no: no CA needed, no certificate asked for.
    let mut plain = s.plain();
    assert_eq!(
        raw(
            &mut plain,
            &[
                "CONFIG",
                "SET",
                "tls-auth-clients",
                "no",
                "tls-ca-cert-file",
                ""
            ]
        )
        .unwrap(),
        redis::Value::Okay
    );
    let mut c = tls_connect(s.tls_port, &client_config(&[&ca], None, &[])).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    // And back to yes without a CA is refused, as Redis's tlsConfigure does.
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-auth-clients", "yes"],
    ));
    assert_eq!(e, "ERR CONFIG SET failed (possibly related to argument 'tls-auth-clients') - Unable to update TLS configuration. Check server logs.");
    assert_eq!(config_get(&mut plain, "tls-auth-clients"), "no");
}

#[test]
fn tls_only_server_refuses_plain_connections() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, false, &[]);
    let mut con = s.redis_tls(&pki, true).unwrap();
    assert_eq!(config_get(&mut con, "port"), "0");
    assert_eq!(config_get(&mut con, "tls-port"), s.tls_port.to_string());
    // A plain RESP client on the TLS port gets no reply, only a close.
    let mut sock = TcpStream::connect(("127.0.0.1", s.tls_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("PONG"), "{buf:?}");
    // The server is still up.
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut con).unwrap(),
        "PONG"
    );
}

#[test]
fn config_set_reloads_the_certificate_for_new_connections() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    let ca1 = pki.ca.pem();
    let ca2 = Ca::new("Second CA");
    let next = ca2.issue("cairn server renewed", 1002, false);
    let cert2 = pki.write("server2.crt", &next.cert_pem);
    let key2 = pki.write("server2.key", &next.key_pem);

    let mut old = tls_connect(s.tls_port, &client_config(&[&ca1], Some(&pki.client), &[])).unwrap();
    assert_eq!(served_cert(&old), pki.server.der);

    let mut plain = s.plain();
    assert_eq!(
        raw(
            &mut plain,
            &[
                "CONFIG",
                "SET",
                "tls-cert-file",
                &cert2,
                "tls-key-file",
                &key2
            ]
        )
        .unwrap(),
        redis::Value::Okay
    );
    assert_eq!(config_get(&mut plain, "tls-cert-file"), cert2);

    // New connections get the new certificate: the new CA verifies it...
    let both = client_config(&[&ca1, &ca2.pem()], Some(&pki.client), &[]);
    let mut c = tls_connect(s.tls_port, &both).unwrap();
    assert_eq!(served_cert(&c), next.der);
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    // ...and the old CA alone no longer does.
    let only_ca1 = client_config(&[&ca1], Some(&pki.client), &[]);
    assert!(tls_connect(s.tls_port, &only_ca1).is_err());
    // The connection made before keeps its session.
    assert_eq!(ping(&mut old).unwrap(), "+PONG");

    // CONFIG REWRITE-able: CONFIG GET shows what is served.
    assert_eq!(config_get(&mut plain, "tls-key-file"), key2);
}

#[test]
fn bad_certificate_on_config_set_keeps_the_old_one() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    let mut plain = s.plain();
    let garbage = pki.write("garbage.crt", "this is not a certificate\n");
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-cert-file", &garbage],
    ));
    assert_eq!(e, "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.");
    let missing = pki.p("missing.crt");
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-cert-file", &missing],
    ));
    assert!(e.contains("Unable to update TLS configuration"), "{e}");
    // A valid certificate whose key is not the configured key.
    let other = pki.ca.issue("other", 3003, false);
    let other_cert = pki.write("other.crt", &other.cert_pem);
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-cert-file", &other_cert],
    ));
    assert!(e.contains("Unable to update TLS configuration"), "{e}");
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-protocols", "SSLv3"],
    ));
    assert_eq!(e, "ERR CONFIG SET failed (possibly related to argument 'tls-protocols') - Unable to update TLS configuration. Check server logs.");

    // Nothing changed: neither the config nor the served certificate.
    assert_eq!(config_get(&mut plain, "tls-cert-file"), pki.p("server.crt"));
    assert_eq!(config_get(&mut plain, "tls-protocols"), "");
    let mut c = tls_connect(
        s.tls_port,
        &client_config(&[&pki.ca.pem()], Some(&pki.client), &[]),
    )
    .unwrap();
    assert_eq!(served_cert(&c), pki.server.der);
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
}

#[test]
fn bad_tls_files_refuse_startup() {
    let pki = Pki::new();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (pki.server_args(&["--tls-cert-file", &pki.p("nope.crt")]), "Failed to load certificate"),
        (pki.server_args(&["--tls-key-file", &pki.write("bad.key", "junk\n")]), "Failed to load private key"),
        (
            vec!["--tls-cert-file".into(), pki.p("server.crt"), "--tls-key-file".into(), pki.p("server.key")],
            "tls-ca-cert-file or tls-ca-cert-dir must be specified",
        ),
        (
            pki.server_args(&["--tls-key-file", &pki.write("enc.key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), "--tls-key-file-pass", "secret"]),
            "encrypted private keys are not supported",
        ),
    ];
    for (args, why) in cases {
        let mut s = spawn_cairn(Some(free_port()), free_port(), &args);
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(st) = s.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "cairn started with {args:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success());
        let out = s.output();
        assert!(out.contains("Failed to configure TLS"), "{out}");
        assert!(out.contains(why), "expected {why:?} in: {out}");
    }
}

#[test]
fn tls_protocols_restrict_versions_and_reload() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &["--tls-protocols", "TLSv1.3"]);
    let ca = pki.ca.pem();
    let tls12 = client_config(&[&ca], Some(&pki.client), &[&rustls::version::TLS12]);
    let tls13 = client_config(&[&ca], Some(&pki.client), &[&rustls::version::TLS13]);
    assert!(tls_connect(s.tls_port, &tls12)
        .and_then(|mut c| ping(&mut c))
        .is_err());
    let mut c = tls_connect(s.tls_port, &tls13).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    assert_eq!(
        c.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    let mut plain = s.plain();
    assert_eq!(
        raw(&mut plain, &["CONFIG", "SET", "tls-protocols", "TLSv1.2"]).unwrap(),
        redis::Value::Okay
    );
    let mut c = tls_connect(s.tls_port, &tls12).unwrap();
    assert_eq!(ping(&mut c).unwrap(), "+PONG");
    assert_eq!(
        c.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert!(tls_connect(s.tls_port, &tls13)
        .and_then(|mut c| ping(&mut c))
        .is_err());

    // TLS 1.3 suites by OpenSSL name; unknown names are refused.
    assert_eq!(
        raw(
            &mut plain,
            &[
                "CONFIG",
                "SET",
                "tls-protocols",
                "TLSv1.2 TLSv1.3",
                "tls-ciphersuites",
                "TLS_CHACHA20_POLY1305_SHA256"
            ]
        )
        .unwrap(),
        redis::Value::Okay
    );
    let c = tls_connect(s.tls_port, &tls13).unwrap();
    assert_eq!(
        c.conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
    );
    let e = err_of(raw(
        &mut plain,
        &["CONFIG", "SET", "tls-ciphersuites", "TLS_NO_SUCH_SUITE"],
    ));
    assert!(e.contains("Unable to update TLS configuration"), "{e}");
}

#[test]
fn pubsub_and_client_kill_over_tls() {
    let pki = Pki::new();
    let s = TlsServer::start(&pki, true, &[]);
    let mut sub = s.redis_tls(&pki, true).unwrap();
    let mut plain = s.plain();
    let mut ps = sub.as_pubsub();
    ps.subscribe("news").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("over tls")
        .query(&mut plain)
        .unwrap();
    assert_eq!(n, 1);
    let msg = ps.get_message().unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "over tls");
    drop(ps);

    let mut victim = s.redis_tls(&pki, true).unwrap();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut victim).unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut plain)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(redis::cmd("PING").query::<String>(&mut victim).is_err());
}

#[test]
fn tls_config_defaults_match_redis() {
    let Some(r) = common::Server::redis(&[]) else {
        return;
    };
    let c = common::Server::cairn(&[]);
    let get = |con: &mut redis::Connection| {
        let mut v: Vec<(String, String)> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("tls-*")
            .query::<std::collections::HashMap<String, String>>(con)
            .unwrap()
            .into_iter()
            .collect();
        v.sort();
        v
    };
    assert_eq!(get(&mut c.con()), get(&mut r.con()));
}
