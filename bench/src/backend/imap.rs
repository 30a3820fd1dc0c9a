//! A fake IMAP4rev1 server (RFC 3501 subset): enough for a proxy to log in,
//! select, fetch and append.

pub mod command;
pub mod fetch;

use std::io::{self, BufRead, Write};

use super::{Config, Mailbox};
use crate::net::Stream;
use command::{read_command, Arg, Command, ReadError, LIMITS};

/// SASL-IR and the OAuth mechanisms: a proxy may pass a bearer token on
/// (`AUTHENTICATE XOAUTH2 <initial response>`); the token is checked as the
/// user's password. ID (RFC 2971), so a proxy may forward its client's.
pub const GREETING: &[u8] =
    b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=OAUTHBEARER AUTH=XOAUTH2] postern-bench backend ready\r\n";
const CAPABILITY: &[u8] = b"* CAPABILITY IMAP4rev1 LITERAL+\r\n";

/// Runs one client connection to completion.
pub fn serve_connection(config: &Config, stream: Stream) {
    super::serve_connection(config, stream, run);
}

/// Speaks IMAP over `input`/`output` until LOGOUT, EOF or a fatal error.
pub fn run<R: BufRead, W: Write>(config: &Config, input: &mut R, output: &mut W) -> io::Result<()> {
    let mut session = Session {
        config,
        state: State::NotAuthenticated,
        mailbox: config.mailbox.clone(),
    };
    output.write_all(GREETING)?;
    output.flush()?;
    loop {
        let flow = match read_command(input, output, LIMITS) {
            Ok(Some(command)) => session.execute(command, output)?,
            Ok(None) => return Ok(()),
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::LineTooLong) => {
                output.write_all(b"* BYE line too long\r\n")?;
                Flow::Close
            }
            Err(ReadError::LiteralTooLarge {
                tag,
                synchronizing: true,
            }) => {
                tagged(output, tag.as_deref(), "BAD literal too large")?;
                Flow::Continue
            }
            Err(ReadError::LiteralTooLarge {
                synchronizing: false, ..
            }) => {
                output.write_all(b"* BYE literal too large\r\n")?;
                Flow::Close
            }
            Err(ReadError::Syntax { tag, message }) => {
                tagged(output, tag.as_deref(), &format!("BAD {message}"))?;
                Flow::Continue
            }
        };
        output.flush()?;
        if flow == Flow::Close {
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session<'a> {
    config: &'a Config,
    state: State,
    /// This connection's copy of the mailbox; APPENDs land here.
    mailbox: Mailbox,
}

/// Writes `tag text CRLF`, using `*` when the tag is unknown.
fn tagged<W: Write>(out: &mut W, tag: Option<&[u8]>, text: &str) -> io::Result<()> {
    out.write_all(tag.unwrap_or(b"*"))?;
    out.write_all(b" ")?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")
}

impl Session<'_> {
    fn execute<W: Write>(&mut self, mut cmd: Command, out: &mut W) -> io::Result<Flow> {
        let tag = Some(cmd.tag.as_slice());
        let name = cmd.name.as_str();
        let needs_login = matches!(name, "SELECT" | "EXAMINE" | "FETCH" | "UID" | "APPEND");
        if needs_login && self.state == State::NotAuthenticated {
            tagged(out, tag, "BAD not authenticated")?;
            return Ok(Flow::Continue);
        }
        let reply = match name {
            "CAPABILITY" if cmd.args.is_empty() => {
                out.write_all(CAPABILITY)?;
                "OK CAPABILITY completed".to_string()
            }
            "NOOP" if cmd.args.is_empty() => "OK NOOP completed".to_string(),
            "LOGOUT" if cmd.args.is_empty() => {
                out.write_all(b"* BYE logging out\r\n")?;
                tagged(out, tag, "OK LOGOUT completed")?;
                return Ok(Flow::Close);
            }
            // Any parameters (recorded with `--record`); the server's own.
            "ID" if !cmd.args.is_empty() => {
                out.write_all(b"* ID (\"name\" \"postern-bench\")\r\n")?;
                "OK ID completed".to_string()
            }
            "CAPABILITY" | "NOOP" | "LOGOUT" => "BAD unexpected arguments".to_string(),
            "LOGIN" => self.login(&cmd.args),
            "AUTHENTICATE" => self.authenticate(&cmd.args),
            "SELECT" | "EXAMINE" => self.select(name, &cmd.args, out)?,
            "FETCH" => self.fetch(&cmd.args, false, out)?,
            "UID" => match cmd.args.first().and_then(Arg::atom) {
                Some(sub) if sub.eq_ignore_ascii_case(b"FETCH") => self.fetch(&cmd.args[1..], true, out)?,
                _ => "BAD unsupported UID command".to_string(),
            },
            "APPEND" => self.append(std::mem::take(&mut cmd.args)),
            _ => "BAD unknown command".to_string(),
        };
        tagged(out, tag, &reply)?;
        Ok(Flow::Continue)
    }

    fn login(&mut self, args: &[Arg]) -> String {
        if self.state != State::NotAuthenticated {
            return "BAD already authenticated".into();
        }
        let (Some(user), Some(pass), 2) = (
            args.first().and_then(Arg::astring),
            args.get(1).and_then(Arg::astring),
            args.len(),
        ) else {
            return "BAD LOGIN expects user and password".into();
        };
        if !self.config.login_ok(user, pass) {
            return "NO [AUTHENTICATIONFAILED] Invalid credentials".into();
        }
        self.state = State::Authenticated;
        "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed".into()
    }

    /// `AUTHENTICATE OAUTHBEARER|XOAUTH2 <initial response>` only: the
    /// user and bearer token of the message, checked as user and password.
    fn authenticate(&mut self, args: &[Arg]) -> String {
        if self.state != State::NotAuthenticated {
            return "BAD already authenticated".into();
        }
        let (Some(mechanism), Some(ir), 2) = (
            args.first().and_then(Arg::atom),
            args.get(1).and_then(Arg::atom),
            args.len(),
        ) else {
            return "BAD AUTHENTICATE expects a mechanism and an initial response".into();
        };
        let Some(message) = super::smtp::base64::decode(ir) else {
            return "BAD invalid base64".into();
        };
        let fields: Vec<&[u8]> = message.split(|&b| b == 1).collect();
        let field = |key: &[u8]| fields.iter().find_map(|f| f.strip_prefix(key));
        let user = if mechanism.eq_ignore_ascii_case(b"XOAUTH2") {
            field(b"user=")
        } else if mechanism.eq_ignore_ascii_case(b"OAUTHBEARER") {
            // `n,a=user,` then the pairs: the authzid is the user.
            fields
                .first()
                .and_then(|gs2| gs2.strip_prefix(b"n,a="))
                .and_then(|rest| rest.strip_suffix(b","))
        } else {
            return "NO [CANNOT] unsupported mechanism".into();
        };
        let token = field(b"auth=Bearer ");
        match (user, token) {
            (Some(user), Some(token)) if self.config.login_ok(user, token) => {
                self.state = State::Authenticated;
                "OK [CAPABILITY IMAP4rev1 LITERAL+] AUTHENTICATE completed".into()
            }
            _ => "NO [AUTHENTICATIONFAILED] Invalid credentials".into(),
        }
    }

    fn select<W: Write>(&mut self, name: &str, args: &[Arg], out: &mut W) -> io::Result<String> {
        if args.len() != 1 || args[0].astring().is_none() {
            return Ok(format!("BAD {name} expects a mailbox name"));
        }
        write!(
            out,
            "* {} EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n",
            self.mailbox.len()
        )?;
        self.state = State::Selected;
        let access = if name == "SELECT" { "READ-WRITE" } else { "READ-ONLY" };
        Ok(format!("OK [{access}] {name} completed"))
    }

    fn fetch<W: Write>(&mut self, args: &[Arg], uid: bool, out: &mut W) -> io::Result<String> {
        if self.state != State::Selected {
            return Ok("BAD no mailbox selected".into());
        }
        let (Some(set), Some(items), 2) = (
            args.first().and_then(Arg::atom),
            args.get(1).and_then(fetch::parse_items),
            args.len(),
        ) else {
            return Ok("BAD FETCH expects a sequence set and supported data items".into());
        };
        let numbers = match fetch::resolve_set(set, self.mailbox.len(), uid) {
            Ok(numbers) => numbers,
            Err(message) => return Ok(format!("BAD {message}")),
        };
        for n in numbers {
            if let Some(message) = self.mailbox.get(n) {
                fetch::write_response(out, n, message, &items)?;
            }
        }
        Ok("OK FETCH completed".into())
    }

    /// `APPEND mailbox [(flags)] ["date"] literal`.
    fn append(&mut self, mut args: Vec<Arg>) -> String {
        let valid = (2..=4).contains(&args.len())
            && args[0].astring().is_some()
            && args[1..args.len() - 1]
                .iter()
                .all(|a| matches!(a, Arg::List(_) | Arg::Quoted(_)));
        match args.pop() {
            Some(Arg::Literal(message)) if valid => {
                let uid = self.mailbox.append(message);
                format!("OK [APPENDUID 1 {uid}] APPEND completed")
            }
            _ => "BAD APPEND expects a mailbox, optional flags and date, and a literal".into(),
        }
    }
}

#[cfg(test)]
mod tests;
