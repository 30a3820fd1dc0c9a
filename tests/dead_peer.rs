//! A relayed backend that vanishes without a FIN or a reset (its machine
//! gone, a cable cut) is found by `proxy_dead_peer_timeout` (TCP keepalive
//! and TCP_USER_TIMEOUT) instead of holding the session for `proxy_timeout`.
//!
//! Loopback always answers, so the backend lives in a network namespace of
//! the test's own, behind a veth pair; taking the namespace's end down makes
//! every packet to it vanish silently. Needs root and iproute2 (installed by
//! scripts/test.sh), as CI has.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace joined to ours by a veth pair with a /30 of its own; gone
/// (with every process in it) on drop.
struct Netns {
    name: String,
    host_if: String,
    peer_if: String,
    host_ip: String,
    peer_ip: String,
}

impl Netns {
    fn new() -> Netns {
        // Names and addresses from the pid: two runs at once do not meet.
        let pid = std::process::id();
        let block = (pid % 16_384) * 4;
        let net = Netns {
            name: format!("pstn{pid}"),
            host_if: format!("pv{pid}a"),
            peer_if: format!("pv{pid}b"),
            host_ip: format!("10.213.{}.{}", block / 256, block % 256 + 1),
            peer_ip: format!("10.213.{}.{}", block / 256, block % 256 + 2),
        };
        ip(&["netns", "add", &net.name]);
        ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &net.peer_if,
        ]);
        ip(&["link", "set", &net.peer_if, "netns", &net.name]);
        ip(&["addr", "add", &format!("{}/30", net.host_ip), "dev", &net.host_if]);
        ip(&["link", "set", &net.host_if, "up"]);
        net.exec(&["addr", "add", &format!("{}/30", net.peer_ip), "dev", &net.peer_if]);
        net.exec(&["link", "set", &net.peer_if, "up"]);
        net
    }

    /// `ip ARGS` inside the namespace.
    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, "ip"];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// From here on, nothing sent to the namespace arrives and nothing
    /// comes back: no FIN, no reset, no ICMP.
    fn vanish(&self) {
        self.exec(&["link", "set", &self.peer_if, "down"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[test]
fn a_backend_gone_without_a_fin_ends_the_session_within_the_timeout() {
    let net = Netns::new();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.name]).arg(bench_bin()).args([
        "backend",
        "--user",
        "bob:secret",
        "--listen",
        &format!("{}:0", net.peer_ip),
    ]);
    let backend = Proc::spawn(cmd);
    let line = backend.wait_for("listening ");
    let backend_addr: SocketAddr = line.trim().strip_prefix("listening ").unwrap().parse().unwrap();
    let auth = start_auth(&["bob:secret"], backend_addr, &[]);
    // proxy_timeout stays at its 24 hours: only the dead-peer check can end
    // this session in time.
    let postern = start_postern(&format!("{}\n    proxy_dead_peer_timeout 2s;", auth_http(&auth)));

    let mut c = Client::imap(postern.addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.expect("b NOOP\r\n", &["b OK NOOP completed\r\n"]);

    net.vanish();
    let gone = Instant::now();
    // The command goes out and is never acknowledged: TCP_USER_TIMEOUT
    // (2 s) gives up on it.
    c.send(b"c NOOP\r\n");
    assert_eq!(c.read_to_close_lossy(), b"", "nothing from a backend that is gone");
    let took = gone.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
        "ended after {took:?}"
    );
    let done = postern.proc.wait_for("session done");
    assert!(done.contains("timed out"), "{done}");
    let log = postern.proc.log();
    assert!(!log.contains("panicked"), "{log}");
}
