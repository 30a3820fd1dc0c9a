//! TLS in the companions: `backend --tls-cert`, `load --tls`, `fetch --tls`
//! and `certs`, against each other with no proxy between.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Server, TempDir};
use postern_bench::certs::{write_test_pki, TestPki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn pki(name: &str) -> (TempDir, TestPki) {
    let dir = TempDir::new(name);
    let pki = write_test_pki(&dir.0).unwrap();
    (dir, pki)
}

fn tls_backend(pki: &TestPki, protocol: &str) -> Server {
    Server::start(&[
        "backend",
        "--protocol",
        protocol,
        "--user",
        "bob:secret",
        "--msg-bytes",
        "70000",
        "--tls-cert",
        pki.server_cert.to_str().unwrap(),
        "--tls-key",
        pki.server_key.to_str().unwrap(),
    ])
}

/// Runs `postern-bench ARGS`; returns success, stdout and stderr.
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postern-bench"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run postern-bench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn rustls_client(
    ca: &std::path::Path,
    name: &str,
    addr: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from(name.to_string()).unwrap()).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn imap_login_over_implicit_tls() {
    let (_dir, pki) = pki("imap-tls");
    let server = tls_backend(&pki, "imap");
    let mut tls = BufReader::new(rustls_client(&pki.ca, "localhost", &server.addr));
    let mut line = String::new();
    let mut read = |tls: &mut BufReader<_>| {
        line.clear();
        tls.read_line(&mut line).unwrap();
        line.clone()
    };
    assert!(read(&mut tls).starts_with("* OK "));
    tls.get_mut().write_all(b"a LOGIN bob secret\r\n").unwrap();
    assert!(read(&mut tls).starts_with("a OK "));
    tls.get_mut().write_all(b"b LOGOUT\r\n").unwrap();
    assert!(read(&mut tls).starts_with("* BYE"));
    assert!(read(&mut tls).starts_with("b OK "));
    // The backend ends with close_notify: a clean EOF, not a truncation error.
    assert_eq!(read(&mut tls), "");
}

#[test]
fn load_logs_in_over_tls_for_each_protocol() {
    let (_dir, pki) = pki("load-tls");
    let ca = pki.ca.to_str().unwrap();
    for protocol in ["imap", "pop3", "smtp"] {
        let server = tls_backend(&pki, protocol);
        for mode in ["login", "handshake", "session"] {
            let (ok, stdout, stderr) = run(&[
                "load",
                "--mode",
                mode,
                "--protocol",
                protocol,
                "--addr",
                &server.addr,
                "--user",
                "bob:secret",
                "--conns",
                "2",
                "--duration",
                "0.3",
                "--tls",
                "--ca",
                ca,
                "--json-only",
            ]);
            assert!(ok, "{protocol} {mode}: {stderr}");
            assert!(stdout.contains("\"errors\":0"), "{protocol} {mode}: {stdout}");
        }
    }
}

#[test]
fn load_resumes_and_accepts_any_certificate_when_asked() {
    let (_dir, pki) = pki("load-resume");
    let server = tls_backend(&pki, "imap");
    for extra in [&["--insecure", "--resume"][..], &["--insecure"][..]] {
        let mut args = vec![
            "load",
            "--mode",
            "login",
            "--protocol",
            "imap",
            "--addr",
            &server.addr,
            "--user",
            "bob:secret",
            "--conns",
            "2",
            "--duration",
            "0.3",
            "--tls",
            "--json-only",
        ];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = run(&args);
        assert!(ok, "{extra:?}: {stderr}");
        assert!(stdout.contains("\"errors\":0"), "{extra:?}: {stdout}");
        assert!(stdout.contains("\"tls\":\"TLSv1_3 TLS13_"), "{stdout}");
        let resumed: u64 = stdout
            .split("\"tls_resumed\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .unwrap()
            .parse()
            .unwrap();
        if extra.contains(&"--resume") {
            assert!(resumed > 0, "{stdout}");
        } else {
            assert_eq!(resumed, 0, "{stdout}");
        }
    }
}

#[test]
fn load_refuses_a_server_from_another_ca_or_name() {
    let (_dir, pki) = pki("load-wrong-ca");
    let server = tls_backend(&pki, "imap");
    let base = [
        "load",
        "--mode",
        "login",
        "--protocol",
        "imap",
        "--addr",
        &server.addr,
        "--user",
        "bob:secret",
        "--conns",
        "1",
        "--duration",
        "0.2",
        "--tls",
    ];
    let mut wrong_ca = base.to_vec();
    wrong_ca.extend_from_slice(&["--ca", pki.other_ca.to_str().unwrap()]);
    let (ok, _, stderr) = run(&wrong_ca);
    assert!(!ok);
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
    let mut wrong_name = base.to_vec();
    wrong_name.extend_from_slice(&["--ca", pki.ca.to_str().unwrap(), "--tls-name", "wrong.example"]);
    let (ok, _, stderr) = run(&wrong_name);
    assert!(!ok);
    assert!(stderr.contains("not valid for name"), "{stderr}");
    let (ok, _, stderr) = run(&base);
    assert!(!ok);
    assert!(stderr.contains("--ca FILE or --insecure"), "{stderr}");
}

#[test]
fn fetch_over_tls_verifies_messages() {
    let (_dir, pki) = pki("fetch-tls");
    let server = tls_backend(&pki, "imap");
    let (ok, stdout, stderr) = run(&[
        "fetch",
        "--addr",
        &server.addr,
        "--user",
        "bob:secret",
        "--count",
        "20",
        "--conns",
        "2",
        "--verify",
        "--tls",
        "--ca",
        pki.ca.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"bytes\":2800000"), "{stdout}");
}

#[test]
fn certs_subcommand_lists_the_files() {
    let dir = TempDir::new("certs-cli");
    let (ok, stdout, stderr) = run(&["certs", "--dir", dir.as_str()]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 16, "{stdout}");
    for line in lines {
        let (_, path) = line.split_once(' ').unwrap();
        assert!(std::fs::metadata(path).unwrap().len() > 0, "{line}");
    }
}
