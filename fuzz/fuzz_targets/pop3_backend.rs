//! The POP3 backend login fed a backend byte stream cut at points the input
//! picks. POP3 has no quoting, so each command sent must be one line: a CR
//! or LF from the credentials would let a client inject a command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::auth::Secret;
use postern::protocol::backend::Pop3Backend;
use postern_fuzz::{credentials, drive_backend, flag, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let (user, pass) = credentials(&input);
    let limit = input.line_limit();
    let mut login =
        Pop3Backend::new(user, Secret::new(pass), limit, input.has(flag::PASS_ERROR)).with_oauth(input.backend_oauth());
    drive_backend(
        &mut login,
        &input,
        limit,
        Pop3Backend::feed,
        Pop3Backend::poll,
        |bytes| {
            let body = bytes.strip_suffix(b"\r\n").expect("send ends with CRLF");
            assert!(
                !body.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'\0')),
                "one line per send: {bytes:?}"
            );
        },
    );
});
