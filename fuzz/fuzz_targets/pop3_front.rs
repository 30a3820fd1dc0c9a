//! The POP3 front end fed a client byte stream cut at points the input
//! picks, with auth and backend outcomes the input picks too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::Protocol;
use postern::protocol::pop3::{Pop3Front, Pop3FrontSettings};
use postern::protocol::FrontEnd;
use postern_fuzz::{drive_front, input_bound, seed, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let server = input.server(Protocol::Pop3);
    let front = Pop3Front::new(Pop3FrontSettings::from_server(&server), seed());
    drive_front(FrontEnd::Pop3(front), &input, input_bound(&server));
});
