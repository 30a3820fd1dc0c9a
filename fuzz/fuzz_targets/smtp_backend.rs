//! The SMTP backend login (EHLO/HELO, XCLIENT, AUTH PLAIN, envelope replay)
//! fed a backend byte stream cut at points the input picks, in each of the
//! modes the configuration allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::auth::Secret;
use postern::protocol::backend::smtp::{Helo, SmtpLogin};
use postern::protocol::backend::SmtpBackend;
use postern_fuzz::{credentials, drive_backend, flag, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let (user, pass) = credentials(&input);
    let limit = input.line_limit();
    let helo = match input.header[1] % 3 {
        0 => None,
        n => Some(Helo {
            extended: n == 2,
            name: b"client.example".to_vec(),
        }),
    };
    let mut login = SmtpBackend::new(SmtpLogin {
        server_name: "mx.fuzz.test".to_string(),
        client_addr: "192.0.2.1".to_string(),
        client_name: "[UNAVAILABLE]".to_string(),
        helo,
        user,
        pass: Secret::new(pass),
        xclient: !input.has(flag::NO_XCLIENT),
        proxy_smtp_auth: input.has(flag::PROXY_SMTP_AUTH),
        envelope: input.has(flag::SMTP_AUTH_NONE).then(|| {
            (
                b"MAIL FROM:<a@example.org>".to_vec(),
                b"RCPT TO:<b@example.org>".to_vec(),
            )
        }),
        line_limit: limit,
        pass_error_message: input.has(flag::PASS_ERROR),
        // Token pass-through sometimes: the AUTH exchange is input too.
        oauth: input.backend_oauth(),
    });
    drive_backend(
        &mut login,
        &input,
        limit,
        SmtpBackend::feed,
        SmtpBackend::poll,
        |bytes| assert!(bytes.ends_with(b"\r\n"), "send without CRLF: {bytes:?}"),
    );
});
