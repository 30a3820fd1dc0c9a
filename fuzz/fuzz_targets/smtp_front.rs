//! The SMTP front end (greeting delay and early talkers included) fed a client byte stream cut at points the input
//! picks, with auth and backend outcomes the input picks too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::config::Protocol;
use postern::protocol::smtp::{SmtpFront, SmtpFrontSettings};
use postern::protocol::FrontEnd;
use postern_fuzz::{drive_front, input_bound, seed, Input};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let server = input.server(Protocol::Smtp);
    let front = SmtpFront::new(SmtpFrontSettings::from_server(&server), seed());
    drive_front(FrontEnd::Smtp(front), &input, input_bound(&server));
});
