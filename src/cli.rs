//! The command line, nginx's flags first.

use std::path::PathBuf;

use clap::Parser;

use crate::config::Workers;

pub const DEFAULT_CONFIG: &str = "/etc/postern/postern.conf";

/// Postern: a mail proxy for IMAP, POP3 and SMTP that reads nginx's `mail {}`
/// configuration and runs one io_uring executor per core.
#[derive(Debug, Parser)]
#[command(name = "postern", version)]
pub struct Args {
    /// Configuration file (nginx syntax).
    #[arg(short = 'c', value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// Test the configuration and exit: "syntax is ok" / "test failed", exit
    /// status 0 or 1, as `nginx -t`.
    #[arg(short = 't')]
    pub test: bool,

    /// Executors to run, one per core: a number or `auto` (every CPU this
    /// process may use). Overrides `worker_processes`.
    #[arg(long, value_name = "N|auto", value_parser = parse_workers)]
    pub cores: Option<Workers>,
}

fn parse_workers(text: &str) -> Result<Workers, String> {
    if text == "auto" {
        return Ok(Workers::Auto);
    }
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(Workers::Count(n)),
        _ => Err(format!("expected a positive number or \"auto\", got \"{text}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let args = Args::try_parse_from(["postern", "-c", "x.conf", "-t", "--cores", "3"]).unwrap();
        assert_eq!(args.config, PathBuf::from("x.conf"));
        assert!(args.test);
        assert_eq!(args.cores, Some(Workers::Count(3)));
        let args = Args::try_parse_from(["postern", "--cores", "auto"]).unwrap();
        assert_eq!(args.config, PathBuf::from(DEFAULT_CONFIG));
        assert_eq!(args.cores, Some(Workers::Auto));
        assert!(Args::try_parse_from(["postern", "--cores", "0"]).is_err());
    }
}
