//! nginx's value syntax: sizes (`ngx_parse_size`), times (`ngx_parse_time`)
//! and flags (`ngx_conf_set_flag_slot`), plus the wording of the errors
//! nginx prints when one does not parse.

use std::time::Duration;

/// `invalid value "abc" in "timeout" directive`, nginx's wording.
pub(crate) fn invalid_value(value: &str, directive: &str) -> String {
    format!("invalid value \"{value}\" in \"{directive}\" directive")
}

/// A size: `4096`, `4k`/`4K`, `1m`/`1M`, `1g`/`1G`. `None` when it is not a
/// size or does not fit in `usize`.
pub(crate) fn parse_size(text: &str) -> Option<usize> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1 << 10),
        b'm' | b'M' => (&text[..text.len() - 1], 1 << 20),
        b'g' | b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    parse_number(digits)?.checked_mul(scale)
}

/// A plain decimal number as nginx's `ngx_atoi`: digits only, no sign.
pub(crate) fn parse_number(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `on` or `off`, in any case as nginx compares them.
pub(crate) fn parse_flag(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("on") {
        Some(true)
    } else if text.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// The error for a flag that is neither `on` nor `off`.
pub(crate) fn invalid_flag(value: &str, directive: &str) -> String {
    format!("invalid value \"{value}\" in \"{directive}\" directive, it must be \"on\" or \"off\"")
}

const SECOND_MS: u64 = 1000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// Units in the order nginx requires them: each may appear once, larger
/// before smaller (`1h30m`, never `30m1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Min,
    Sec,
    Msec,
    /// After a space: only a bare number (seconds) may follow.
    Last,
}

/// A time as nginx's `ngx_parse_time` reads it for millisecond settings:
/// `60` (seconds), `500ms`, `60s`, `5m`, `1h`, `1d`, `1w`, `1M` (30 days),
/// `1y` (365 days), and combinations such as `1h30m`. A trailing number
/// without a unit counts as seconds.
///
/// nginx refuses `y` and `M` in millisecond settings because its 32-bit
/// `ngx_msec_t` could not hold them; a `Duration` can, so they are accepted.
pub(crate) fn parse_time(text: &str) -> Option<Duration> {
    parse_time_in(text, false)
}

/// A time for a setting nginx keeps in whole seconds (`ngx_parse_time(s, 1)`,
/// as the `so_keepalive=` timers): as [`parse_time`], without `ms`.
pub(crate) fn parse_seconds(text: &str) -> Option<Duration> {
    parse_time_in(text, true)
}

fn parse_time_in(text: &str, seconds_only: bool) -> Option<Duration> {
    let bytes = text.as_bytes();
    let mut step = Step::Start;
    let mut value: u64 = 0;
    let mut total: u64 = 0;
    let mut seen_digit = false;
    let mut i = 0;

    while let Some(&c) = bytes.get(i) {
        i += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            seen_digit = true;
            continue;
        }
        let (next, scale) = match c {
            b'y' => (Step::Year, 365 * DAY_MS),
            b'M' => (Step::Month, 30 * DAY_MS),
            b'w' => (Step::Week, 7 * DAY_MS),
            b'd' => (Step::Day, DAY_MS),
            b'h' => (Step::Hour, HOUR_MS),
            b'm' if bytes.get(i) == Some(&b's') => {
                if seconds_only {
                    return None;
                }
                i += 1;
                (Step::Msec, 1)
            }
            b'm' => (Step::Min, MINUTE_MS),
            b's' => (Step::Sec, SECOND_MS),
            b' ' => (Step::Last, SECOND_MS),
            _ => return None,
        };
        // A space may follow anything down to minutes, nothing finer (nginx).
        let out_of_order = if next == Step::Last {
            step >= Step::Sec
        } else {
            next <= step
        };
        if out_of_order {
            return None;
        }
        step = next;
        total = total.checked_add(value.checked_mul(scale)?)?;
        value = 0;
    }

    if !seen_digit {
        return None;
    }
    total = total.checked_add(value.checked_mul(SECOND_MS)?)?;
    // nginx keeps times in a signed machine word; stay within the same range
    // so a value nginx refuses is refused here too.
    if total > i64::MAX as u64 {
        return None;
    }
    Some(Duration::from_millis(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let rows: &[(&str, Option<usize>)] = &[
            ("4096", Some(4096)),
            ("0", Some(0)),
            ("4k", Some(4096)),
            ("4K", Some(4096)),
            ("1m", Some(1 << 20)),
            ("1M", Some(1 << 20)),
            ("1g", Some(1 << 30)),
            ("1G", Some(1 << 30)),
            ("", None),
            ("k", None),
            ("4kb", None),
            ("-1", None),
            ("+1", None),
            ("1.5k", None),
            (" 4k", None),
            ("4 k", None),
            ("abc", None),
            ("18446744073709551615", Some(usize::MAX)),
            ("18446744073709551616", None),
            ("18446744073709551615k", None),
            ("17179869184g", None),
        ];
        for &(text, want) in rows {
            assert_eq!(parse_size(text), want, "parse_size({text:?})");
        }
    }

    #[test]
    fn times() {
        let s = |n: u64| Some(Duration::from_secs(n));
        let ms = |n: u64| Some(Duration::from_millis(n));
        let rows: &[(&str, Option<Duration>)] = &[
            ("60", s(60)),
            ("0", s(0)),
            ("60s", s(60)),
            ("500ms", ms(500)),
            ("5m", s(300)),
            ("1h", s(3600)),
            ("1d", s(86_400)),
            ("1w", s(7 * 86_400)),
            ("1M", s(30 * 86_400)),
            ("1y", s(365 * 86_400)),
            ("1h30m", s(5400)),
            ("1d2h3m4s5ms", ms(((86_400 + 2 * 3600 + 3 * 60 + 4) * 1000) + 5)),
            ("1y1M1w1d", s((365 + 30 + 7 + 1) * 86_400)),
            ("1m30", s(90)),
            ("1s500ms", ms(1500)),
            ("1h ", s(3600)),
            ("1h 30", s(3630)),
            ("", None),
            ("s", None),
            ("ms", None),
            ("abc", None),
            ("10x", None),
            ("30m1h", None),
            ("1h1h", None),
            ("500ms1s", None),
            ("1ms1ms", None),
            ("1s 5", None),
            ("1h 30m", None),
            ("-1s", None),
            ("1.5h", None),
            ("99999999999999999999", None),
            ("9223372036854775807ms", ms(i64::MAX as u64)),
            ("9223372036854775808ms", None),
            ("999999999999y", None),
        ];
        for &(text, want) in rows {
            assert_eq!(parse_time(text), want, "parse_time({text:?})");
        }
    }

    #[test]
    fn seconds() {
        let s = |n: u64| Some(Duration::from_secs(n));
        let rows: &[(&str, Option<Duration>)] = &[
            ("30", s(30)),
            ("30s", s(30)),
            ("30m", s(1800)),
            ("1h30m", s(5400)),
            ("1d", s(86_400)),
            ("0", s(0)),
            ("500ms", None),
            ("1s500ms", None),
            ("ms", None),
            ("", None),
            ("x", None),
        ];
        for &(text, want) in rows {
            assert_eq!(parse_seconds(text), want, "parse_seconds({text:?})");
        }
    }

    #[test]
    fn flags() {
        let rows: &[(&str, Option<bool>)] = &[
            ("on", Some(true)),
            ("off", Some(false)),
            ("ON", Some(true)),
            ("Off", Some(false)),
            ("yes", None),
            ("1", None),
            ("", None),
            ("onn", None),
        ];
        for &(text, want) in rows {
            assert_eq!(parse_flag(text), want, "parse_flag({text:?})");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("512"), Some(512));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("+5"), None);
        assert_eq!(parse_number("5 "), None);
    }

    #[test]
    fn messages() {
        assert_eq!(
            invalid_value("abc", "timeout"),
            "invalid value \"abc\" in \"timeout\" directive"
        );
        assert_eq!(
            invalid_flag("yes", "proxy_pass_error_message"),
            "invalid value \"yes\" in \"proxy_pass_error_message\" directive, \
             it must be \"on\" or \"off\""
        );
    }
}
