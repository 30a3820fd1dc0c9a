//! Fake mail backends. Each protocol lives in its own child module and
//! shares the user table and seeded mailbox defined here.

pub mod imap;
pub mod line;
pub mod pop3;
pub mod smtp;

use std::io::{self, BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::message::seeded_message;
use crate::net::{self, Listener, Stream};
use crate::record::{Record, Recording};
use crate::users::Users;

/// The protocol a backend speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Imap,
    Pop3,
    Smtp,
}

/// Backend settings shared by all connections.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub protocol: Protocol,
    /// Accepted logins; when empty every login is accepted.
    pub users: Users,
    /// The mailbox every connection starts with.
    pub mailbox: Mailbox,
    /// File receiving every byte read from clients, as it is read.
    pub record: Option<Arc<Record>>,
    /// Numbers (and optionally stores) the messages accepted over SMTP.
    pub queue: Queue,
    /// Speak implicit TLS with this configuration (`--tls-cert`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Config {
    /// True when the login should succeed.
    pub fn login_ok(&self, user: &[u8], pass: &[u8]) -> bool {
        self.users.is_empty() || self.users.check(user, pass)
    }
}

/// An ordered list of messages; message `n` (1-based) has UID `n`.
/// Cloning is cheap: message bodies are shared.
#[derive(Debug, Clone, Default)]
pub struct Mailbox {
    messages: Vec<Arc<Vec<u8>>>,
}

impl Mailbox {
    /// `count` messages of `size` bytes from [`seeded_message`].
    pub fn seeded(count: usize, size: usize) -> Mailbox {
        Mailbox {
            messages: (1..=count).map(|i| Arc::new(seeded_message(i, size))).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Message number `n`, counting from 1.
    pub fn get(&self, n: usize) -> Option<&[u8]> {
        let index = n.checked_sub(1)?;
        self.messages.get(index).map(|m| m.as_slice())
    }

    /// Adds a message and returns its number (and UID).
    pub fn append(&mut self, message: Vec<u8>) -> usize {
        self.messages.push(Arc::new(message));
        self.messages.len()
    }
}

/// Numbers the messages accepted over SMTP, counting from 1 across all
/// connections, and writes each one to `DIR/<n>.eml` when a directory is
/// set. Clones share the counter.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    dir: Option<PathBuf>,
    last: Arc<AtomicU64>,
}

impl Queue {
    /// A queue that stores messages in `dir`, if given.
    pub fn new(dir: Option<PathBuf>) -> Queue {
        Queue {
            dir,
            last: Arc::default(),
        }
    }

    /// Takes the next number and, with a directory, writes `message` to
    /// `DIR/<n>.eml`. The file is written under a temporary name and then
    /// renamed, so it appears complete or not at all; it is in place when
    /// this returns.
    pub fn deliver(&self, message: &[u8]) -> io::Result<u64> {
        let n = self.last.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(dir) = &self.dir {
            let temp = dir.join(format!(".{n}.eml.tmp"));
            std::fs::write(&temp, message)?;
            std::fs::rename(&temp, dir.join(format!("{n}.eml")))?;
        }
        Ok(n)
    }
}

/// Serves `listener` forever.
pub fn run(listener: Listener, config: Config) -> ! {
    let config = Arc::new(config);
    net::serve(listener, move |stream: Stream| {
        let stream = match &config.tls {
            Some(tls) => match stream.accept_tls(tls) {
                Ok(stream) => stream,
                Err(e) => {
                    eprintln!("postern-bench backend: TLS setup: {e}");
                    return;
                }
            },
            None => stream,
        };
        match config.protocol {
            Protocol::Imap => serve_connection(&config, stream, imap::run),
            Protocol::Pop3 => serve_connection(&config, stream, pop3::run),
            Protocol::Smtp => serve_connection(&config, stream, smtp::run),
        }
    })
}

/// Buffer size for each connection's reader and writer.
const BUFFER: usize = 64 * 1024;

/// The reader a protocol session gets: buffered, and recording what it reads.
pub type Input = BufReader<Recording<Stream>>;

/// Runs one client connection to completion with `session`, which speaks
/// the protocol until the client quits, EOF or a fatal error. The write side
/// is shut down afterwards so the client sees EOF after the last reply.
pub fn serve_connection(
    config: &Config,
    stream: Stream,
    session: fn(&Config, &mut Input, &mut BufWriter<Stream>) -> io::Result<()>,
) {
    let reader = match stream.try_clone() {
        Ok(reader) => reader,
        Err(e) => {
            eprintln!("postern-bench backend: clone socket: {e}");
            return;
        }
    };
    let mut input = BufReader::with_capacity(BUFFER, Recording::new(reader, config.record.clone()));
    let mut output = BufWriter::with_capacity(BUFFER, stream);
    if let Err(e) = session(config, &mut input, &mut output) {
        if !net::is_disconnect(&e) {
            eprintln!("postern-bench backend: {e}");
        }
    }
    if let Ok(stream) = output.into_inner() {
        let _ = stream.shutdown_write();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_numbers_from_one() {
        let mut mailbox = Mailbox::seeded(2, 100);
        assert_eq!(mailbox.len(), 2);
        assert_eq!(mailbox.get(0), None);
        assert_eq!(mailbox.get(1), Some(&seeded_message(1, 100)[..]));
        assert_eq!(mailbox.get(3), None);
        assert_eq!(mailbox.append(b"x".to_vec()), 3);
        assert_eq!(mailbox.get(3), Some(&b"x"[..]));
    }

    #[test]
    fn empty_user_table_accepts_everyone() {
        let mut config = Config::default();
        assert!(config.login_ok(b"anyone", b"anything"));
        config.users.insert(b"a".to_vec(), b"b".to_vec());
        assert!(config.login_ok(b"a", b"b"));
        assert!(!config.login_ok(b"anyone", b"anything"));
    }

    #[test]
    fn queue_counts_and_stores() {
        let dir = std::env::temp_dir().join(format!("postern-bench-queue-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let queue = Queue::new(Some(dir.clone()));
        let shared = queue.clone();
        assert_eq!(queue.deliver(b"one").unwrap(), 1);
        assert_eq!(shared.deliver(b"two\r\n").unwrap(), 2);
        assert_eq!(std::fs::read(dir.join("1.eml")).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.join("2.eml")).unwrap(), b"two\r\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(queue.deliver(b"three").is_err());
        let memory = Queue::default();
        assert_eq!(memory.deliver(b"x").unwrap(), 1);
        assert_eq!(memory.deliver(b"y").unwrap(), 2);
    }
}
