use std::process::ExitCode;

use clap::Parser;

use postern::cli::Args;
use postern::runtime::{self, RuntimeOptions};
use postern::{config, logging};

fn main() -> ExitCode {
    let args = Args::parse();
    let file = args.config.display().to_string();
    let config = match config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("postern: [emerg] {e}");
            if args.test {
                eprintln!("postern: configuration file {file} test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    if args.test {
        for warning in &config.warnings {
            eprintln!("postern: [warn] {warning}");
        }
        eprintln!("postern: the configuration file {file} syntax is ok");
        eprintln!("postern: configuration file {file} test is successful");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = logging::init(&config.main.error_log) {
        eprintln!("postern: [emerg] {e}");
        return ExitCode::FAILURE;
    }
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let options = RuntimeOptions {
        cores: args.cores,
        ..RuntimeOptions::default()
    };
    match runtime::run(config, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            postern::emerg!("{e}");
            // The error log may be a file; say it where the operator looks too.
            eprintln!("postern: [emerg] {e}");
            ExitCode::FAILURE
        }
    }
}
