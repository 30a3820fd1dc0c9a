//! An HTTP/1.0 server speaking nginx's `auth_http` protocol.
//!
//! Each connection carries one request head; the reply tells the proxy
//! whether the login is good and which backend to use, then the connection
//! is closed. For testing the proxy's error paths the server can also ask
//! it to wait and retry ([`Config::wait_first`]), send a canned reply
//! ([`Mode::ReplyFile`]) or never answer ([`Mode::Hang`]).

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::digest::{hmac_md5_hex, md5_hex};
use crate::net::{self, Listener, Stream};
use crate::record::Record;
use crate::users::Users;

/// Largest accepted request head, final blank line included.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers parsed in one request.
pub const MAX_HEADERS: usize = 64;
/// Idle time allowed while waiting for a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

pub const BAD_REQUEST: &[u8] = b"HTTP/1.0 400 Bad Request\r\n\r\n";
/// The reply when a good login's password cannot be put in an `Auth-Pass`
/// header because it contains CR or LF.
pub const UNSENDABLE_PASS: &[u8] = b"HTTP/1.0 500 Internal Server Error\r\n\r\n";
pub const NO_BACKEND: &[u8] = b"HTTP/1.0 200 OK\r\n\
Auth-Status: Temporary server problem, try again later\r\n\
Auth-Error-Code: 451 4.3.0\r\n\
Auth-Wait: 3\r\n\r\n";

/// The reply to each of the first [`Config::wait_first`] requests: the proxy
/// must send the same request again after one second.
pub const WAIT: &[u8] = b"HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n";

/// The protocols nginx names in `Auth-Protocol`.
pub const PROTOCOLS: [&str; 3] = ["imap", "pop3", "smtp"];

/// Where logins for one protocol are sent (`--backend PROTO=IP:PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Lower-case protocol name.
    pub protocol: String,
    pub addr: SocketAddr,
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        let (protocol, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected PROTO=IP:PORT"))?;
        let protocol = protocol.to_ascii_lowercase();
        if !PROTOCOLS.contains(&protocol.as_str()) {
            return Err(format!("{s:?}: protocol must be one of imap, pop3, smtp"));
        }
        let addr = addr.parse().map_err(|e| format!("{s:?}: bad IP:PORT: {e}"))?;
        Ok(Backend { protocol, addr })
    }
}

/// Backend credentials sent for one user (`--override NAME=USER:PASS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The (percent-decoded) `Auth-User` this applies to.
    pub name: Vec<u8>,
    /// Sent raw as `Auth-User` in the OK reply.
    pub user: Vec<u8>,
    /// Sent raw as `Auth-Pass` in the OK reply.
    pub pass: Vec<u8>,
}

impl Override {
    /// Parses `NAME=USER:PASS`, split at the first `=` and then at the first
    /// `:`. USER and PASS go into reply headers verbatim (nginx does not
    /// decode them), so they must not contain CR or LF.
    pub fn parse(spec: &[u8]) -> Result<Override, String> {
        let shown = || String::from_utf8_lossy(spec).into_owned();
        let eq = memchr::memchr(b'=', spec).ok_or_else(|| format!("{:?}: expected NAME=USER:PASS", shown()))?;
        let (name, rest) = (&spec[..eq], &spec[eq + 1..]);
        let colon = memchr::memchr(b':', rest).ok_or_else(|| format!("{:?}: expected NAME=USER:PASS", shown()))?;
        let (user, pass) = (&rest[..colon], &rest[colon + 1..]);
        if memchr::memchr2(b'\r', b'\n', rest).is_some() {
            return Err(format!("{:?}: USER and PASS must not contain CR or LF", shown()));
        }
        Ok(Override {
            name: name.to_vec(),
            user: user.to_vec(),
            pass: pass.to_vec(),
        })
    }
}

/// How requests are answered once their head has been read.
#[derive(Debug, Default)]
pub enum Mode {
    /// Check the credentials and answer accordingly.
    #[default]
    Decide,
    /// Send these exact bytes, whatever the request (`--reply-file`).
    ReplyFile(Vec<u8>),
    /// Never answer; keep the connection until the peer closes it (`--hang`).
    Hang,
}

/// What to do with one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// Send these bytes, then close.
    Reply(Cow<'a, [u8]>),
    /// Send nothing and wait for the peer to close.
    Hang,
}

/// Everything the auth server needs to answer requests.
#[derive(Debug, Default)]
pub struct Config {
    pub users: Users,
    pub backends: Vec<Backend>,
    /// `Auth-Wait` seconds added to failed-login replies.
    pub wait: Option<u64>,
    /// `Auth-Status` text of failed-login replies.
    pub error: String,
    /// `Auth-Error-Code` of failed-login replies.
    pub error_code: Option<String>,
    /// `Auth-Error-SASL` of failed-login replies.
    pub error_sasl: Option<String>,
    /// Leave `Auth-Pass` out of the OK replies to `apop`, `cram-md5` and
    /// `external` logins (`--no-backend-pass`).
    pub no_backend_pass: bool,
    /// Whole header lines (no CRLF) added to every OK reply.
    pub ok_headers: Vec<String>,
    /// Pause before answering each request.
    pub delay: Duration,
    /// File receiving a copy of every request head.
    pub record: Option<Record>,
    /// The first this many requests are answered [`WAIT`].
    pub wait_first: u64,
    /// Backend credentials for particular users; the last match wins.
    pub overrides: Vec<Override>,
    pub mode: Mode,
    /// Request heads received so far, across all connections.
    pub received: AtomicU64,
    /// Say `connection N` on stderr at each accept.
    pub log_connections: bool,
    /// Connections accepted so far.
    pub connections: AtomicU64,
}

impl Config {
    fn backend(&self, protocol: &[u8]) -> Option<SocketAddr> {
        self.backends
            .iter()
            .rev()
            .find(|b| b.protocol.as_bytes().eq_ignore_ascii_case(protocol))
            .map(|b| b.addr)
    }

    /// Counts one received request head and decides what to do with it:
    /// [`WAIT`] for the first [`Config::wait_first`] requests, then whatever
    /// [`Config::mode`] says.
    pub fn answer(&self, head: &[u8]) -> Answer<'_> {
        let number = self.received.fetch_add(1, Ordering::SeqCst);
        if number < self.wait_first {
            return Answer::Reply(Cow::Borrowed(WAIT));
        }
        match &self.mode {
            Mode::Decide => Answer::Reply(Cow::Owned(respond(self, head))),
            Mode::ReplyFile(bytes) => Answer::Reply(Cow::Borrowed(bytes)),
            Mode::Hang => Answer::Hang,
        }
    }
}

/// Serves `listener` forever.
pub fn run(listener: Listener, config: Config) -> ! {
    net::serve(listener, move |stream| handle(&config, stream))
}

fn handle(config: &Config, mut stream: Stream) {
    let n = config.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if config.log_connections {
        eprintln!("postern-bench auth: connection {n}");
    }
    if let Err(e) = stream.set_read_timeout(Some(READ_TIMEOUT)) {
        eprintln!("postern-bench auth: set timeout: {e}");
    }
    // HTTP/1.0 keep-alive: requests asking for it get a reply that says so,
    // with its length, and the connection stays for the next request.
    while handle_one(config, &mut stream) {}
}

/// Answers one request; whether the connection stays open for another.
fn handle_one(config: &Config, stream: &mut Stream) -> bool {
    let head = match read_head(stream) {
        Ok(Some(head)) => head,
        Ok(None) => return false,
        Err(e) => {
            if !net::is_disconnect(&e) {
                eprintln!("postern-bench auth: read: {e}");
            }
            return false;
        }
    };
    if let Some(record) = &config.record {
        record.write(&head);
    }
    let mut reply = match config.answer(&head) {
        Answer::Reply(reply) => reply,
        Answer::Hang => {
            hang(stream);
            return false;
        }
    };
    let keep_alive = matches!(config.mode, Mode::Decide) && wants_keep_alive(&head) && reply.ends_with(b"\r\n\r\n");
    if keep_alive {
        let owned = reply.to_mut();
        owned.truncate(owned.len() - 2);
        owned.extend_from_slice(b"Connection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    }
    if !config.delay.is_zero() {
        std::thread::sleep(config.delay);
    }
    let sent = stream.write_all(&reply).and_then(|()| stream.flush());
    let sent = if keep_alive {
        sent
    } else {
        sent.and_then(|()| stream.shutdown_write())
    };
    if let Err(e) = sent {
        if !net::is_disconnect(&e) {
            eprintln!("postern-bench auth: write: {e}");
        }
        return false;
    }
    keep_alive
}

/// `Connection: keep-alive` in a request head (case-insensitive).
fn wants_keep_alive(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return false;
    }
    request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("Connection") && h.value.eq_ignore_ascii_case(b"keep-alive"))
}

/// Reads and discards whatever arrives until the peer closes the connection
/// (or it fails), however long that takes.
fn hang(stream: &mut Stream) {
    if let Err(e) = stream.set_read_timeout(None) {
        eprintln!("postern-bench auth: set timeout: {e}");
    }
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !net::is_disconnect(&e) {
                    eprintln!("postern-bench auth: read: {e}");
                }
                return;
            }
        }
    }
}

/// Reads up to and including the first `\r\n\r\n`. Returns `None` when the
/// peer closes first or the head would exceed [`MAX_HEAD`].
fn read_head(stream: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        let searched = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = memchr::memmem::find(&head[searched..], b"\r\n\r\n") {
            let end = searched + at + 4;
            if end > MAX_HEAD {
                return Ok(None);
            }
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() >= MAX_HEAD {
            return Ok(None);
        }
    }
}

/// The complete reply to one request head.
pub fn respond(config: &Config, head: &[u8]) -> Vec<u8> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return BAD_REQUEST.to_vec(),
    }
    let field = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map_or(&b""[..], |h| h.value)
    };
    let user = percent_decode(field("Auth-User"));
    let pass = percent_decode(field("Auth-Pass"));
    let salt = percent_decode(field("Auth-Salt"));
    let method = field("Auth-Method");
    let method = if method.is_empty() { &b"plain"[..] } else { method };
    let known = config.users.password(&user);
    // Whether the login is good, and whether nginx needs the plaintext
    // password in the reply to log in to the backend.
    let (good, needs_pass) = match method.to_ascii_lowercase().as_slice() {
        b"plain" => (known == Some(&pass[..]), false),
        b"apop" => (
            known.is_some_and(|p| pass.eq_ignore_ascii_case(md5_hex(&[&salt[..], p].concat()).as_bytes())),
            true,
        ),
        b"cram-md5" => (
            known.is_some_and(|p| pass.eq_ignore_ascii_case(hmac_md5_hex(p, &salt).as_bytes())),
            true,
        ),
        b"external" => (known.is_some(), true),
        b"none" => (true, false),
        // A bearer token is checked as the user's password would be.
        b"oauthbearer" | b"xoauth2" => (known == Some(&pass[..]), false),
        _ => return BAD_REQUEST.to_vec(),
    };
    if !good {
        let mut reply = format!("HTTP/1.0 200 OK\r\nAuth-Status: {}\r\n", config.error);
        if let Some(code) = &config.error_code {
            reply.push_str(&format!("Auth-Error-Code: {code}\r\n"));
        }
        if let Some(json) = &config.error_sasl {
            reply.push_str(&format!("Auth-Error-SASL: {json}\r\n"));
        }
        if let Some(wait) = config.wait {
            reply.push_str(&format!("Auth-Wait: {wait}\r\n"));
        }
        reply.push_str("\r\n");
        return reply.into_bytes();
    }
    let Some(addr) = config.backend(field("Auth-Protocol")) else {
        return NO_BACKEND.to_vec();
    };
    let mut reply = format!(
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: {}\r\nAuth-Port: {}\r\n",
        addr.ip(),
        addr.port()
    )
    .into_bytes();
    let mut add = |name: &[u8], value: &[u8]| {
        reply.extend_from_slice(name);
        reply.extend_from_slice(value);
        reply.extend_from_slice(b"\r\n");
    };
    if let Some(o) = config.overrides.iter().rev().find(|o| o.name == user) {
        add(b"Auth-User: ", &o.user);
        add(b"Auth-Pass: ", &o.pass);
    } else if let (true, false, Some(p)) = (needs_pass, config.no_backend_pass, known) {
        // nginx takes the value verbatim, so CR and LF cannot be sent.
        if memchr::memchr2(b'\r', b'\n', p).is_some() {
            return UNSENDABLE_PASS.to_vec();
        }
        add(b"Auth-Pass: ", p);
    }
    for header in &config.ok_headers {
        add(header.as_bytes(), b"");
    }
    reply.extend_from_slice(b"\r\n");
    reply
}

/// Decodes `%XX` escapes (hex digits of either case); every other byte,
/// including a `%` not followed by two hex digits, is kept as is.
pub fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(hi), Some(lo)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"plain"), b"plain");
        assert_eq!(percent_decode(b"a%20b"), b"a b");
        assert_eq!(percent_decode(b"%3a%3A%2f%2F"), b":://");
        assert_eq!(percent_decode(b"%00%ff%FF"), [0u8, 0xff, 0xff]);
        assert_eq!(percent_decode(b"100%"), b"100%");
        assert_eq!(percent_decode(b"%4"), b"%4");
        assert_eq!(percent_decode(b"%zz%4g"), b"%zz%4g");
        assert_eq!(percent_decode(b"%%41"), b"%A");
        assert_eq!(percent_decode(b"%2541"), b"%41");
        assert_eq!(percent_decode(b"+"), b"+");
        assert_eq!(percent_decode(b""), b"");
    }

    fn config() -> Config {
        let mut users = Users::default();
        users.insert(b"alice".to_vec(), b"p@ss word".to_vec());
        Config {
            users,
            backends: vec!["imap=127.0.0.1:1143".parse().unwrap(), "SMTP=[::1]:25".parse().unwrap()],
            wait: None,
            error: "Invalid login or password".into(),
            ..Config::default()
        }
    }

    fn request(user: &str, pass: &str, protocol: &str) -> Vec<u8> {
        format!(
            "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\n\
             Auth-User: {user}\r\nAuth-Pass: {pass}\r\nAuth-Protocol: {protocol}\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn replies() {
        let mut config = config();
        assert_eq!(
            respond(&config, &request("alice", "p%40ss%20word", "imap")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n"
        );
        assert_eq!(
            respond(&config, &request("alice", "p%40ss%20word", "smtp")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: ::1\r\nAuth-Port: 25\r\n\r\n"
        );
        assert_eq!(respond(&config, &request("alice", "p%40ss%20word", "pop3")), NO_BACKEND);
        assert_eq!(
            respond(&config, &request("alice", "wrong", "imap")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n"
        );
        config.wait = Some(5);
        config.error = "Go away".into();
        assert_eq!(
            respond(&config, &request("bob", "x", "imap")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: Go away\r\nAuth-Wait: 5\r\n\r\n"
        );
        assert_eq!(respond(&config, b"garbage\r\n\r\n"), BAD_REQUEST);
        assert_eq!(respond(&config, b"GET / HTTP/1.0\r\nBad Header\r\n\r\n"), BAD_REQUEST);
    }

    #[test]
    fn odd_user_names() {
        let mut config = config();
        config.users.insert(b"a\r\nb %\"\\\xff".to_vec(), b"p w".to_vec());
        let ok = b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n";
        assert_eq!(respond(&config, &request("a%0D%0Ab%20%25\"\\%FF", "p%20w", "imap")), ok);
        assert_eq!(
            respond(&config, &request("a%0d%0ab%20%25%22%5c%ff", "p%20w", "imap")),
            ok
        );
        assert_ne!(respond(&config, &request("a%0D%0Ab %25\"\\", "p%20w", "imap")), ok);
    }

    #[test]
    fn overrides() {
        let mut config = config();
        config.users.insert(b"a b".to_vec(), b"x".to_vec());
        config.overrides = vec![
            Override::parse(b"alice=old:old").unwrap(),
            Override::parse(b"alice=real=1:p:w d").unwrap(),
            Override::parse(b"a b=\xff:").unwrap(),
        ];
        assert_eq!(
            respond(&config, &request("alice", "p%40ss%20word", "imap")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
              Auth-User: real=1\r\nAuth-Pass: p:w d\r\n\r\n"
        );
        assert_eq!(
            respond(&config, &request("a%20b", "x", "smtp")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: ::1\r\nAuth-Port: 25\r\n\
              Auth-User: \xff\r\nAuth-Pass: \r\n\r\n"
        );
        // Failed logins and missing backends are not affected.
        assert_eq!(
            respond(&config, &request("alice", "nope", "imap")),
            b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n"
        );
        assert_eq!(respond(&config, &request("alice", "p%40ss%20word", "pop3")), NO_BACKEND);
    }

    fn method_request(method: &str, user: &str, pass: &str, salt: Option<&str>) -> Vec<u8> {
        let salt = salt.map_or(String::new(), |s| format!("Auth-Salt: {s}\r\n"));
        format!(
            "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: {method}\r\n\
             Auth-User: {user}\r\nAuth-Pass: {pass}\r\n{salt}Auth-Protocol: imap\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn methods() {
        let mut config = config();
        config.users.insert(b"t f".to_vec(), b"tanstaaf".to_vec());
        config.users.insert(b"crlf".to_vec(), b"a\r\nb".to_vec());
        let ok = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n";
        let with_pass = |p: &str| format!("{ok}Auth-Pass: {p}\r\n\r\n").into_bytes();
        let denied = b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n";
        let apop_salt = "%3C1896.697170952@dbc.mtview.ca.us>";
        let apop = "c4c9334bac560ecc979e58001b3e22fb";
        assert_eq!(
            respond(&config, &method_request("apop", "t%20f", apop, Some(apop_salt))),
            with_pass("tanstaaf")
        );
        assert_eq!(
            respond(
                &config,
                &method_request("APOP", "t%20f", &apop.to_uppercase(), Some(apop_salt))
            ),
            with_pass("tanstaaf")
        );
        assert_eq!(
            respond(&config, &method_request("apop", "t%20f", apop, Some("<x>"))),
            denied
        );
        assert_eq!(
            respond(&config, &method_request("apop", "t%20f", "tanstaaf", None)),
            denied
        );
        assert_eq!(
            respond(&config, &method_request("apop", "nobody", apop, Some(apop_salt))),
            denied
        );
        let cram = hmac_md5_hex(b"p@ss word", b"<1.2@host>");
        assert_eq!(
            respond(&config, &method_request("cram-md5", "alice", &cram, Some("<1.2@host>"))),
            with_pass("p@ss word")
        );
        assert_eq!(
            respond(&config, &method_request("cram-md5", "alice", &cram, Some("<1.3@host>"))),
            denied
        );
        assert_eq!(
            respond(&config, &method_request("external", "alice", "", None)),
            with_pass("p@ss word")
        );
        assert_eq!(respond(&config, &method_request("external", "bob", "", None)), denied);
        // No credential check at all.
        let plain_ok = format!("{ok}\r\n").into_bytes();
        assert_eq!(respond(&config, &method_request("none", "", "", None)), plain_ok);
        assert_eq!(respond(&config, &method_request("none", "bob", "x", None)), plain_ok);
        // Plain never sends the password; a missing method is plain.
        assert_eq!(
            respond(&config, &method_request("plain", "alice", "p@ss%20word", None)),
            plain_ok
        );
        assert_eq!(
            respond(
                &config,
                b"GET / HTTP/1.0\r\nAuth-User: alice\r\nAuth-Pass: p@ss word\r\nAuth-Protocol: imap\r\n\r\n"
            ),
            plain_ok
        );
        assert_eq!(
            respond(&config, &method_request("login", "alice", "p@ss%20word", None)),
            BAD_REQUEST
        );
        // A password with CR or LF cannot be sent back.
        assert_eq!(
            respond(&config, &method_request("external", "crlf", "", None)),
            UNSENDABLE_PASS
        );

        config.no_backend_pass = true;
        assert_eq!(
            respond(&config, &method_request("external", "alice", "", None)),
            plain_ok
        );
        assert_eq!(
            respond(&config, &method_request("external", "crlf", "", None)),
            plain_ok
        );
        config.no_backend_pass = false;
        // An override replaces the password rather than adding a second one.
        config.overrides = vec![Override::parse(b"alice=u:p").unwrap()];
        let overridden = format!("{ok}Auth-User: u\r\nAuth-Pass: p\r\n\r\n").into_bytes();
        assert_eq!(
            respond(&config, &method_request("cram-md5", "alice", &cram, Some("<1.2@host>"))),
            overridden
        );
        config.error_code = Some("535 5.7.8".into());
        config.wait = Some(2);
        assert_eq!(
            respond(&config, &method_request("external", "bob", "", None)),
            b"HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\
              Auth-Error-Code: 535 5.7.8\r\nAuth-Wait: 2\r\n\r\n"
        );
    }

    #[test]
    fn override_flag() {
        assert_eq!(
            Override::parse(b"n=a=b:c:d=e").unwrap(),
            Override {
                name: b"n".to_vec(),
                user: b"a=b".to_vec(),
                pass: b"c:d=e".to_vec()
            }
        );
        assert_eq!(Override::parse(b"=:").unwrap().name, b"");
        assert!(Override::parse(b"n:u=p").is_err());
        assert!(Override::parse(b"n=up").is_err());
        assert!(Override::parse(b"nup").is_err());
        assert!(Override::parse(b"n=u\r:p").is_err());
        assert!(Override::parse(b"n=u:p\n").is_err());
        assert!(Override::parse(b"n\r\n=u:p").is_ok());
    }

    #[test]
    fn wait_first_then_mode() {
        let mut config = config();
        config.wait_first = 2;
        let good = request("alice", "p%40ss%20word", "pop3");
        let reply = |bytes: &[u8]| Answer::Reply(Cow::Owned(bytes.to_vec()));
        assert_eq!(config.answer(&good), reply(WAIT));
        assert_eq!(config.answer(b"garbage\r\n\r\n"), reply(WAIT));
        assert_eq!(config.answer(&good), reply(NO_BACKEND));
        assert_eq!(config.answer(b"garbage\r\n\r\n"), reply(BAD_REQUEST));
        config.mode = Mode::ReplyFile(b"canned".to_vec());
        assert_eq!(config.answer(&good), reply(b"canned"));
        config.mode = Mode::Hang;
        assert_eq!(config.answer(&good), Answer::Hang);
        config.wait_first = 7;
        assert_eq!(config.answer(&good), reply(WAIT));
        assert_eq!(config.received.load(Ordering::SeqCst), 7);
        assert_eq!(config.answer(&good), Answer::Hang);
    }

    #[test]
    fn backend_flag() {
        let b: Backend = "POP3=10.0.0.1:110".parse().unwrap();
        assert_eq!(b.protocol, "pop3");
        assert_eq!(b.addr, "10.0.0.1:110".parse().unwrap());
        assert!("ftp=1.2.3.4:21".parse::<Backend>().is_err());
        assert!("imap=localhost:143".parse::<Backend>().is_err());
        assert!("imap".parse::<Backend>().is_err());
    }

    #[test]
    fn head_reading() {
        let mut input = &b"GET / HTTP/1.0\r\n\r\nextra"[..];
        assert_eq!(read_head(&mut input).unwrap().unwrap(), b"GET / HTTP/1.0\r\n\r\n");
        let mut partial = &b"GET / HTTP/1.0\r\n"[..];
        assert_eq!(read_head(&mut partial).unwrap(), None);
        let big = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(read_head(&mut &big[..]).unwrap(), None);
        let mut exact = vec![b'a'; MAX_HEAD - 4];
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(read_head(&mut &exact[..]).unwrap().unwrap().len(), MAX_HEAD);
        exact.insert(0, b'a');
        assert_eq!(read_head(&mut &exact[..]).unwrap(), None);
    }
}
