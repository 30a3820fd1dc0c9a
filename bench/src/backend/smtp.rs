//! A fake SMTP server (RFC 5321) in the style of Postfix: EHLO with
//! PIPELINING, 8BITMIME, SIZE, AUTH PLAIN and LOGIN (RFC 4954) and XCLIENT,
//! then MAIL, RCPT and DATA. Accepted messages are numbered and, with
//! `--deliveries DIR`, written to `DIR/<n>.eml`.

pub mod base64;

use std::io::{self, BufRead, Write};

use super::line::{self, Line, MAX_LINE};
use super::Config;
use crate::net::Stream;

pub const GREETING: &[u8] = b"220 backend.postern.test ESMTP postern-bench\r\n";
pub const EHLO_REPLY: &[u8] = b"250-backend.postern.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-XCLIENT ADDR LOGIN NAME HELO PROTO\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 104857600\r\n";
/// Largest message accepted, as advertised by `SIZE`.
pub const MAX_MESSAGE: usize = 104_857_600;
/// XCLIENT attributes accepted, as advertised in the EHLO reply.
pub const XCLIENT_ATTRIBUTES: [&str; 5] = ["ADDR", "LOGIN", "NAME", "HELO", "PROTO"];

const OK: &str = "250 2.0.0 Ok";
const AUTH_OK: &str = "235 2.7.0 Authentication successful";
const AUTH_FAILED: &str = "535 5.7.8 Authentication credentials invalid";
const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit";

/// Runs one client connection to completion.
pub fn serve_connection(config: &Config, stream: Stream) {
    super::serve_connection(config, stream, run);
}

/// Speaks SMTP over `input`/`output` until QUIT, EOF or a fatal error.
/// Commands are handled one at a time in the order they arrive, so a client
/// may pipeline them; each reply is flushed when its command is done.
pub fn run<R: BufRead, W: Write>(config: &Config, input: &mut R, output: &mut W) -> io::Result<()> {
    let mut session = Session {
        config,
        greeted: false,
        authenticated: false,
        mail: false,
        recipients: 0,
    };
    output.write_all(GREETING)?;
    output.flush()?;
    loop {
        let (reply, flow) = match line::read_line(input, MAX_LINE)? {
            Line::Eof => return Ok(()),
            Line::TooLong => line_too_long(),
            Line::BareLf(_) => bare_lf(),
            Line::Crlf(command) => session.execute(&command, input, output)?,
        };
        output.write_all(reply.as_bytes())?;
        output.write_all(b"\r\n")?;
        output.flush()?;
        if flow == Flow::Close {
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// The last reply line of a command (CRLF excluded) and what to do next.
type Reply = (String, Flow);

fn reply(text: &str) -> Reply {
    (text.to_string(), Flow::Continue)
}

/// A constant reply without its final CRLF, which [`run`] adds.
fn without_crlf(text: &[u8]) -> String {
    String::from_utf8_lossy(text.strip_suffix(b"\r\n").unwrap_or(text)).into_owned()
}

fn line_too_long() -> Reply {
    ("500 5.5.0 Error: line too long".into(), Flow::Close)
}

fn bare_lf() -> Reply {
    reply("500 5.5.2 Error: bare <LF> received")
}

struct Session<'a> {
    config: &'a Config,
    /// HELO or EHLO seen since the start or the last XCLIENT.
    greeted: bool,
    /// AUTH succeeded, or XCLIENT named a LOGIN.
    authenticated: bool,
    /// A MAIL command opened the current transaction.
    mail: bool,
    /// Accepted RCPTs in the current transaction.
    recipients: usize,
}

impl Session<'_> {
    fn execute<R: BufRead, W: Write>(&mut self, command: &[u8], input: &mut R, out: &mut W) -> io::Result<Reply> {
        let (verb, rest) = line::verb(command);
        Ok(match verb.as_str() {
            "EHLO" | "HELO" => {
                if rest.is_none_or(|name| name.iter().all(|&b| b == b' ')) {
                    return Ok(reply(&format!("501 5.5.4 Syntax: {verb} hostname")));
                }
                self.greeted = true;
                self.reset();
                if verb == "HELO" {
                    reply("250 backend.postern.test")
                } else {
                    reply(&without_crlf(EHLO_REPLY))
                }
            }
            "XCLIENT" => self.xclient(rest.unwrap_or_default()),
            "AUTH" => self.auth(rest.unwrap_or_default(), input, out)?,
            "MAIL" => self.mail(rest.unwrap_or_default()),
            "RCPT" => self.rcpt(rest.unwrap_or_default()),
            "DATA" if rest.is_some() => reply("501 5.5.4 Syntax: DATA"),
            "DATA" => self.data(input, out)?,
            "RSET" => {
                self.reset();
                reply(OK)
            }
            "NOOP" => reply(OK),
            "QUIT" => ("221 2.0.0 Bye".into(), Flow::Close),
            _ => reply("502 5.5.2 Error: command not recognized"),
        })
    }

    /// Ends the current mail transaction, if any.
    fn reset(&mut self) {
        self.mail = false;
        self.recipients = 0;
    }

    /// `XCLIENT attr=value ...`: answered with the greeting, after which the
    /// session starts over and the client must say EHLO again, as with
    /// Postfix. The values are not checked; the attribute names must be the
    /// advertised ones.
    fn xclient(&mut self, args: &[u8]) -> Reply {
        if self.mail {
            return reply("503 5.5.1 Error: MAIL transaction in progress");
        }
        const SYNTAX: &str = "501 5.5.4 Syntax: XCLIENT attribute=value...";
        if args.is_empty() {
            return reply(SYNTAX);
        }
        let mut login = false;
        for attribute in args.split(|&b| b == b' ') {
            let Some(eq) = memchr::memchr(b'=', attribute) else {
                return reply(SYNTAX);
            };
            let name = String::from_utf8_lossy(&attribute[..eq]).to_ascii_uppercase();
            if !XCLIENT_ATTRIBUTES.contains(&name.as_str()) {
                return reply(&format!("501 5.5.4 Bad XCLIENT attribute name: {name}"));
            }
            let value = &attribute[eq + 1..];
            if name == "LOGIN" {
                login = !value.is_empty() && value != b"[UNAVAILABLE]" && value != b"[TEMPUNAVAIL]";
            }
        }
        self.greeted = false;
        self.authenticated = login;
        self.reset();
        reply(&without_crlf(GREETING))
    }

    /// `AUTH PLAIN [initial-response]` or `AUTH LOGIN [initial-response]`.
    fn auth<R: BufRead, W: Write>(&mut self, args: &[u8], input: &mut R, out: &mut W) -> io::Result<Reply> {
        if !self.greeted {
            return Ok(reply("503 5.5.1 Error: send HELO/EHLO first"));
        }
        if self.authenticated {
            return Ok(reply("503 5.5.1 Error: already authenticated"));
        }
        if self.mail {
            return Ok(reply("503 5.5.1 Error: MAIL transaction in progress"));
        }
        let (mechanism, initial) = line::verb(args);
        let (user, pass) = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(b"=") => Vec::new(),
                    Some(text) => match base64::decode(text) {
                        Some(response) => response,
                        None => return Ok(reply("501 5.5.2 Cannot decode response")),
                    },
                    None => match challenge(input, out, "")? {
                        Ok(response) => response,
                        Err(reply) => return Ok(reply),
                    },
                };
                let mut parts = response.split(|&b| b == 0);
                let (Some(authzid), Some(user), Some(pass), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Ok(reply(AUTH_FAILED));
                };
                if !authzid.is_empty() && authzid != user {
                    return Ok(reply(AUTH_FAILED));
                }
                (user.to_vec(), pass.to_vec())
            }
            "LOGIN" => {
                let user = match initial.map(base64::decode) {
                    Some(Some(user)) => user,
                    Some(None) => return Ok(reply("501 5.5.2 Cannot decode response")),
                    None => match challenge(input, out, "VXNlcm5hbWU6")? {
                        Ok(user) => user,
                        Err(reply) => return Ok(reply),
                    },
                };
                match challenge(input, out, "UGFzc3dvcmQ6")? {
                    Ok(pass) => (user, pass),
                    Err(reply) => return Ok(reply),
                }
            }
            "" => return Ok(reply("501 5.5.4 Syntax: AUTH mechanism")),
            _ => return Ok(reply("504 5.5.4 Unrecognized authentication type")),
        };
        if !self.config.login_ok(&user, &pass) {
            return Ok(reply(AUTH_FAILED));
        }
        self.authenticated = true;
        Ok(reply(AUTH_OK))
    }

    /// `MAIL FROM:<address> [parameters]`; a `SIZE=n` parameter over the
    /// limit is refused.
    fn mail(&mut self, args: &[u8]) -> Reply {
        if !self.greeted {
            return reply("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.mail {
            return reply("503 5.5.1 Error: nested MAIL command");
        }
        let Some((_, parameters)) = path(args, b"FROM:") else {
            return reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        for parameter in parameters.split(|&b| b == b' ') {
            if parameter.len() > 5 && parameter[..5].eq_ignore_ascii_case(b"SIZE=") {
                let size = std::str::from_utf8(&parameter[5..])
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                match size {
                    Some(size) if size > MAX_MESSAGE as u64 => return reply(TOO_BIG),
                    Some(_) => {}
                    None => return reply("501 5.5.4 Bad message size syntax"),
                }
            }
        }
        self.mail = true;
        reply("250 2.1.0 Ok")
    }

    /// `RCPT TO:<address>`; an address containing `reject` (any case) is
    /// refused.
    fn rcpt(&mut self, args: &[u8]) -> Reply {
        if !self.mail {
            return reply("503 5.5.1 Error: need MAIL command");
        }
        let Some((address, _)) = path(args, b"TO:") else {
            return reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if address.windows(6).any(|w| w.eq_ignore_ascii_case(b"reject")) {
            return reply("550 5.1.1 User unknown");
        }
        self.recipients += 1;
        reply("250 2.1.5 Ok")
    }

    /// `DATA`: reads the message through the `.` line, un-dot-stuffs it,
    /// hands it to the queue and only then replies.
    fn data<R: BufRead, W: Write>(&mut self, input: &mut R, out: &mut W) -> io::Result<Reply> {
        if !self.mail {
            return Ok(reply("503 5.5.1 Error: need MAIL command"));
        }
        if self.recipients == 0 {
            return Ok(reply("503 5.5.1 Error: need RCPT command"));
        }
        out.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
        out.flush()?;
        let message = read_data(input, MAX_MESSAGE)?;
        self.reset();
        let Some(message) = message else {
            return Ok(reply(TOO_BIG));
        };
        Ok(match self.config.queue.deliver(&message) {
            Ok(n) => reply(&format!("250 2.0.0 Ok: queued as {n}")),
            Err(e) => {
                eprintln!("postern-bench backend: cannot store message: {e}");
                reply("451 4.3.0 Error: queue file write error")
            }
        })
    }
}

/// Sends `334 prompt` and reads the client's base64 answer: `Ok(Ok(bytes))`,
/// or `Ok(Err(reply))` when the exchange ends here (`*` cancels it).
fn challenge<R: BufRead, W: Write>(input: &mut R, out: &mut W, prompt: &str) -> io::Result<Result<Vec<u8>, Reply>> {
    write!(out, "334 {prompt}\r\n")?;
    out.flush()?;
    Ok(match line::read_line(input, MAX_LINE)? {
        Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
        Line::TooLong => Err(line_too_long()),
        Line::BareLf(_) => Err(bare_lf()),
        Line::Crlf(answer) if answer == b"*" => Err(reply("501 5.7.0 Authentication aborted")),
        Line::Crlf(answer) => base64::decode(&answer).ok_or_else(|| reply("501 5.5.2 Cannot decode response")),
    })
}

/// Parses `KEYWORD<address> parameters` (the keyword is matched ignoring
/// case and may be followed by spaces) into the address, without its angle
/// brackets, and the parameters.
fn path<'a>(args: &'a [u8], keyword: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    if args.len() < keyword.len() || !args[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = &args[keyword.len()..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
    let rest = rest.strip_prefix(b"<")?;
    let close = memchr::memchr(b'>', rest)?;
    let (address, after) = (&rest[..close], &rest[close + 1..]);
    match after {
        [] => Some((address, after)),
        [b' ', parameters @ ..] => Some((address, parameters)),
        _ => None,
    }
}

/// Reads a DATA block through the `.` CRLF line that ends it and returns
/// the message with dot-stuffing removed (see
/// [`crate::message::dot_unstuff`]): the CRLF before the final `.` belongs
/// to the message. Lines end with CRLF only and may be of any length.
/// Returns `None` if the message is longer than `max`; it is still read to
/// its end, so the session can go on.
pub fn read_data<R: BufRead>(input: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    /// Where the reader stands within the current line.
    #[derive(Clone, Copy)]
    enum At {
        LineStart,
        /// After a `.` at the start of a line.
        Dot,
        /// After `.` CR at the start of a line.
        DotCr,
        Text,
        /// After a CR within a line.
        Cr,
    }
    fn push(message: &mut Vec<u8>, too_big: &mut bool, bytes: &[u8], max: usize) {
        if *too_big {
            return;
        }
        if message.len() + bytes.len() > max {
            *too_big = true;
            *message = Vec::new();
            return;
        }
        message.extend_from_slice(bytes);
    }
    let mut message = Vec::new();
    let mut too_big = false;
    let mut at = At::LineStart;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut i = 0;
        let mut done = false;
        while i < buf.len() {
            match at {
                At::LineStart if buf[i] == b'.' => {
                    at = At::Dot;
                    i += 1;
                }
                At::Dot if buf[i] == b'\r' => {
                    at = At::DotCr;
                    i += 1;
                }
                At::DotCr if buf[i] == b'\n' => {
                    i += 1;
                    done = true;
                    break;
                }
                At::DotCr => {
                    // `.` CR and something else: the dot was stuffing.
                    push(&mut message, &mut too_big, b"\r", max);
                    at = At::Cr;
                }
                At::Cr if buf[i] == b'\n' => {
                    push(&mut message, &mut too_big, b"\n", max);
                    at = At::LineStart;
                    i += 1;
                }
                At::LineStart | At::Dot | At::Cr => at = At::Text,
                At::Text => match memchr::memchr(b'\r', &buf[i..]) {
                    Some(k) => {
                        push(&mut message, &mut too_big, &buf[i..i + k + 1], max);
                        at = At::Cr;
                        i += k + 1;
                    }
                    None => {
                        push(&mut message, &mut too_big, &buf[i..], max);
                        i = buf.len();
                    }
                },
            }
        }
        input.consume(i);
        if done {
            return Ok((!too_big).then_some(message));
        }
    }
}

#[cfg(test)]
mod tests;
