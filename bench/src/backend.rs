//! Fake mail backends. Each protocol lives in its own child module and
//! shares the user table and seeded mailbox defined here.

pub mod imap;

use std::sync::Arc;

use crate::message::seeded_message;
use crate::net::{self, Listener, Stream};
use crate::record::Record;
use crate::users::Users;

/// The protocol a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
}

/// Backend settings shared by all connections.
#[derive(Debug, Clone)]
pub struct Config {
    pub protocol: Protocol,
    /// Accepted logins; when empty every login is accepted.
    pub users: Users,
    /// The mailbox every connection starts with.
    pub mailbox: Mailbox,
    /// File receiving every byte read from clients, as it is read.
    pub record: Option<Arc<Record>>,
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

/// Serves `listener` forever.
pub fn run(listener: Listener, config: Config) -> ! {
    let config = Arc::new(config);
    net::serve(listener, move |stream: Stream| match config.protocol {
        Protocol::Imap => imap::serve_connection(&config, stream),
    })
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
        let mut config = Config {
            protocol: Protocol::Imap,
            users: Users::default(),
            mailbox: Mailbox::default(),
            record: None,
        };
        assert!(config.login_ok(b"anyone", b"anything"));
        config.users.insert(b"a".to_vec(), b"b".to_vec());
        assert!(config.login_ok(b"a", b"b"));
        assert!(!config.login_ok(b"anyone", b"anything"));
    }
}
