//! The IMAP backend login fed a backend byte stream cut at points the input
//! picks; credentials plain or full of IMAP syntax, per the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::auth::Secret;
use postern::protocol::backend::ImapBackend;
use postern_fuzz::{credentials, drive_backend, flag, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let (user, pass) = credentials(&input);
    let limit = input.line_limit();
    let mut login = ImapBackend::new(
        b"a1".to_vec(),
        user,
        Secret::new(pass),
        limit,
        input.has(flag::PASS_ERROR),
    )
    .with_oauth(input.backend_oauth());
    drive_backend(
        &mut login,
        &input,
        limit,
        ImapBackend::feed,
        ImapBackend::poll,
        |bytes| assert!(bytes.ends_with(b"\r\n"), "send without CRLF: {bytes:?}"),
    );
});
