//! Samples of other processes (and this one) from `/proc`: CPU time,
//! resident and proportional memory, and open file descriptors.

/// Clock ticks per second for `/proc/PID/stat` times: `getconf CLK_TCK`,
/// or 100 when that cannot be run.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// utime + stime, in clock ticks, from the text of a `/proc/PID/stat` file.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and ')' included: the fields after the last ')' are field 3 on.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks used so far by process `pid` (`"self"` for this one).
pub fn process_ticks(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_stat_ticks(&stat).ok_or_else(|| format!("cannot parse {path}"))
}

/// CPU ticks of each of `pids`, in order, and of this process.
pub fn cpu_sample(pids: &[u32]) -> Result<(Vec<u64>, u64), String> {
    let watched = pids
        .iter()
        .map(|pid| process_ticks(&pid.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((watched, process_ticks("self")?))
}

/// Memory of one process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// Sums the `Rss:` and `Pss:` lines of a `/proc/PID/smaps_rollup` (or
/// `smaps`) text. Other lines (`Pss_Anon:` and so on) are ignored.
pub fn parse_smaps(text: &str) -> Option<Memory> {
    let mut memory = Memory::default();
    let mut seen = false;
    for line in text.lines() {
        let (slot, rest) = if let Some(rest) = line.strip_prefix("Rss:") {
            (&mut memory.rss_kib, rest)
        } else if let Some(rest) = line.strip_prefix("Pss:") {
            (&mut memory.pss_kib, rest)
        } else {
            continue;
        };
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        *slot += kib;
        seen = true;
    }
    seen.then_some(memory)
}

/// RSS and PSS of process `pid` from `/proc/PID/smaps_rollup`.
pub fn memory(pid: u32) -> Result<Memory, String> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_smaps(&text).ok_or_else(|| format!("cannot parse {path}"))
}

/// Number of open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(entries.filter(|entry| entry.is_ok()).count() as u64)
}

/// A finite number with `decimals` digits after the point (JSON has no NaN).
pub fn json_number(value: f64, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:.decimals$}")
    } else {
        "0".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks() {
        let stat = "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 1 0 1 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(287));
        assert_eq!(parse_stat_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert!(process_ticks("self").is_ok());
    }

    #[test]
    fn smaps() {
        let text = "55d0c0000000-7ffd00000000 ---p 00000000 00:00 0                          [rollup]\n\
                    Rss:                4520 kB\nPss:                1234 kB\nPss_Anon:            800 kB\n\
                    Shared_Clean:       3000 kB\n";
        assert_eq!(
            parse_smaps(text),
            Some(Memory {
                rss_kib: 4520,
                pss_kib: 1234
            })
        );
        assert_eq!(parse_smaps("nothing here\n"), None);
        assert_eq!(parse_smaps("Rss: x kB\n"), None);
        let me = memory(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.pss_kib > 0, "{me:?}");
        assert!(fd_count(std::process::id()).unwrap() >= 3);
    }

    #[test]
    fn numbers() {
        assert_eq!(json_number(1.0 / 3.0, 2), "0.33");
        assert_eq!(json_number(f64::NAN, 2), "0");
        assert_eq!(json_number(f64::INFINITY, 1), "0");
    }
}
