//! The configuration reader from text: the lexer and parser on any UTF-8,
//! then the whole reader (directive table, values, merging) offline, so no
//! made-up host name waits on DNS and no made-up include reads a file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use postern::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/postern-fuzz/postern.conf");
    let syntax = config::check_syntax(text, file);
    match config::parse_str_offline(text, file) {
        // Whatever the reader accepts is well-formed, and its errors say
        // where when the text is at fault.
        Ok(config) => {
            assert!(syntax.is_ok());
            // The machines divide and subtract with these: never zero.
            for server in &config.servers {
                assert!(server.max_errors > 0 && server.proxy_buffer > 0);
                assert!(server.imap.client_buffer > 0 && server.pop3.client_buffer > 0);
                assert!(server.smtp.client_buffer > 0);
            }
        }
        Err(err) => {
            if let Err(syntax_err) = syntax {
                assert_eq!(err, syntax_err, "the parser's error comes first");
            }
            let _ = err.to_string();
        }
    }
});
