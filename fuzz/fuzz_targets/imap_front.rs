//! The IMAP front end fed a client byte stream cut at points the input
//! picks, with auth and backend outcomes the input picks too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::Protocol;
use postern::protocol::imap::{ImapFront, ImapFrontSettings};
use postern::protocol::FrontEnd;
use postern_fuzz::{drive_front, input_bound, seed, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let server = input.server(Protocol::Imap);
    let front = ImapFront::new(ImapFrontSettings::from_server(&server), seed());
    drive_front(FrontEnd::Imap(front), &input, input_bound(&server));
});
