//! Backend login machines (nginx's `ngx_mail_proxy_module`): fed the
//! backend's bytes, they return the lines to send until the login is done.

pub mod imap;
pub mod pop3;
pub mod smtp;

pub use imap::ImapBackend;
pub use pop3::Pop3Backend;
pub use smtp::SmtpBackend;

use super::BackendOutcome;

/// An order from a backend login machine to the driver.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum BackendStep {
    /// Write these bytes to the backend.
    Send(Vec<u8>),
    /// The login is over; bytes `feed` did not consume belong to the relay.
    Done(BackendOutcome),
}

/// An unexpected backend line ends the login; the client sees that line only
/// with `proxy_pass_error_message`, else the protocol's internal error.
pub(crate) fn refusal(pass_error_message: bool, line: &[u8]) -> BackendOutcome {
    let client_reply = pass_error_message.then(|| {
        let mut reply = line.to_vec();
        reply.extend_from_slice(b"\r\n");
        reply
    });
    BackendOutcome::Failed { client_reply }
}

/// One variant per protocol, so the driver needs no trait objects.
#[derive(Debug)]
pub enum BackendLogin {
    Imap(ImapBackend),
    Pop3(Pop3Backend),
    Smtp(SmtpBackend),
}

impl BackendLogin {
    pub fn feed(&mut self, input: &[u8]) -> usize {
        match self {
            BackendLogin::Imap(m) => m.feed(input),
            BackendLogin::Pop3(m) => m.feed(input),
            BackendLogin::Smtp(m) => m.feed(input),
        }
    }

    pub fn poll(&mut self) -> Option<BackendStep> {
        match self {
            BackendLogin::Imap(m) => m.poll(),
            BackendLogin::Pop3(m) => m.poll(),
            BackendLogin::Smtp(m) => m.poll(),
        }
    }
}
