//! The auth_http reply parser: any bytes give a decision, Partial or an
//! error, never a panic; Partial only under the size limit; the head ends
//! within the input and its bytes alone give the same decision.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::auth::reply::{parse, parse_framed, Parsed, MAX_REPLY_BYTES};
use postern::auth::AuthReply;

fuzz_target!(|data: &[u8]| {
    let framed = parse_framed(data);
    match (&framed, parse(data)) {
        (Ok(Some((reply, _))), Ok(Parsed::Complete(same))) => assert_eq!(reply, &same),
        (Ok(None), Ok(Parsed::Partial)) => assert!(data.len() < MAX_REPLY_BYTES),
        (Err(a), Err(b)) => assert_eq!(a, &b),
        (a, b) => panic!("parse and parse_framed disagree: {a:?} / {b:?}"),
    }
    if let Ok(Some((reply, framing))) = framed {
        assert!(framing.head <= data.len());
        if let Some(end) = framing.reusable_end() {
            assert!(end >= framing.head);
        }
        let again = parse_framed(&data[..framing.head]).expect("the head alone parses");
        assert_eq!(again.map(|(r, _)| r), Some(reply.clone()));
        if let AuthReply::Reject { wait: Some(wait), .. } | AuthReply::Retry { wait } = reply {
            assert!(wait.as_secs() <= 3600, "Auth-Wait over the cap: {wait:?}");
        }
    }
});
