//! The line framer: whatever the bytes and the limit, a line is a prefix of
//! the input without its terminator, `consumed` stays within the input and
//! the limit, and Partial / TooLong are said only when they are true.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::protocol::line::{next_line, Line};

fuzz_target!(|data: &[u8]| {
    let Some((&limit, input)) = data.split_first() else {
        return;
    };
    // 0 stands for a limit past any input, as the 4k defaults are.
    let limit = if limit == 0 { usize::MAX } else { usize::from(limit) };
    let window = &input[..input.len().min(limit)];
    match next_line(input, limit) {
        Line::Complete { line, consumed } => {
            assert!(consumed <= input.len() && consumed <= limit);
            assert_eq!(input[consumed - 1], b'\n');
            assert!(!input[..consumed - 1].contains(&b'\n'));
            assert!(input.starts_with(line));
            assert!(line.len() == consumed - 1 || (line.len() == consumed - 2 && input[consumed - 2] == b'\r'));
        }
        Line::Partial => assert!(input.len() < limit && !input.contains(&b'\n')),
        Line::TooLong => assert!(input.len() >= limit && !window.contains(&b'\n')),
    }
});
