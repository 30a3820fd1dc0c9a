//! The error log in nginx's line format, so log parsers and fail2ban filters
//! written for nginx keep working:
//! `YYYY/MM/DD HH:MM:SS [level] PID#TID: *CONN message`.
//!
//! Messages come through the `log` facade. nginx has more levels than `log`:
//! `notice`, `crit`, `alert` and `emerg` are given as the record's target
//! (`log::info!(target: "notice", ...)`); the macros below spell that.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock};

use crate::config::{ErrorLog, LogLevel, LogTarget};

/// `notice!(...)`: an nginx `[notice]` line.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)+) => { log::info!(target: "notice", $($arg)+) };
}

/// `emerg!(...)`: an nginx `[emerg]` line, for what stops Postern.
#[macro_export]
macro_rules! emerg {
    ($($arg:tt)+) => { log::error!(target: "emerg", $($arg)+) };
}

enum Sink {
    Stderr,
    /// Opened with O_APPEND: each line is one write(2), so lines from
    /// several cores never interleave. The lock is only for SIGUSR1's
    /// reopen; writers share it uncontended.
    File {
        path: PathBuf,
        file: RwLock<File>,
    },
}

struct ErrorLogger {
    threshold: LogLevel,
    sink: Sink,
    pid: u32,
}

static LOGGER: OnceLock<ErrorLogger> = OnceLock::new();

thread_local! {
    static TID: u32 = current_tid();
}

fn current_tid() -> u32 {
    // SAFETY: gettid(2) takes no arguments, cannot fail and touches no memory.
    let tid = unsafe { libc::gettid() };
    u32::try_from(tid).unwrap_or(0)
}

/// Installs the logger for `log`. Fails if the log file cannot be opened, or
/// if a logger was installed already.
pub fn init(config: &ErrorLog) -> Result<(), String> {
    let sink = match &config.target {
        LogTarget::Stderr => Sink::Stderr,
        LogTarget::File(path) => Sink::File {
            path: path.clone(),
            file: RwLock::new(open_log(path)?),
        },
    };
    let logger = ErrorLogger {
        threshold: config.level,
        sink,
        pid: std::process::id(),
    };
    if LOGGER.set(logger).is_err() {
        return Err("the error log is already set up".to_string());
    }
    let logger = LOGGER.get().ok_or("the error log is not set up")?;
    log::set_logger(logger).map_err(|e| e.to_string())?;
    log::set_max_level(match config.level {
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info | LogLevel::Notice => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    });
    Ok(())
}

fn open_log(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("open() \"{}\" failed ({e})", path.display()))
}

/// SIGUSR1: opens the log file again by name, so logrotate can move the old
/// one away. On failure the old file stays in use.
pub fn reopen() -> Result<(), String> {
    let Some(ErrorLogger {
        sink: Sink::File { path, file },
        ..
    }) = LOGGER.get()
    else {
        return Ok(());
    };
    let fresh = open_log(path)?;
    match file.write() {
        Ok(mut current) => *current = fresh,
        // A writer panicked mid-line; the file handle itself is still sound.
        Err(poisoned) => *poisoned.into_inner() = fresh,
    }
    Ok(())
}

fn nginx_level(record: &log::Record<'_>) -> LogLevel {
    match (record.target(), record.level()) {
        ("notice", _) => LogLevel::Notice,
        ("crit", _) => LogLevel::Crit,
        ("alert", _) => LogLevel::Alert,
        ("emerg", _) => LogLevel::Emerg,
        (_, log::Level::Error) => LogLevel::Error,
        (_, log::Level::Warn) => LogLevel::Warn,
        (_, log::Level::Info) => LogLevel::Info,
        (_, log::Level::Debug | log::Level::Trace) => LogLevel::Debug,
    }
}

/// One formatted line, newline included.
pub fn format_line(level: LogLevel, pid: u32, tid: u32, message: &std::fmt::Arguments<'_>) -> String {
    let now = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
    format!("{now} [{}] {pid}#{tid}: {message}\n", level.name())
}

impl log::Log for ErrorLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = nginx_level(record);
        if level < self.threshold {
            return;
        }
        let line = format_line(level, self.pid, TID.with(|t| *t), record.args());
        // A failed log write has nowhere to be reported; dropping it is the
        // only choice that does not stop the proxy.
        let _ = match &self.sink {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File { file, .. } => {
                let guard = file.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                let mut file: &File = &guard;
                file.write_all(line.as_bytes())
            }
        };
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_matches_nginx() {
        let line = format_line(LogLevel::Notice, 12, 34, &format_args!("*5 hello"));
        let (stamp, rest) = line.split_at(19);
        assert_eq!(rest, " [notice] 12#34: *5 hello\n");
        let shape: String = stamp
            .chars()
            .map(|c| if c.is_ascii_digit() { 'D' } else { c })
            .collect();
        assert_eq!(shape, "DDDD/DD/DD DD:DD:DD");
    }
}
