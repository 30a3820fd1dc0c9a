use std::process::ExitCode;

use clap::Parser;

use postern::cli::Args;
use postern::config::{self, LoadOptions};
use postern::logging;
use postern::runtime::{self, RuntimeOptions};
use postern::tls;

fn main() -> ExitCode {
    let args = Args::parse();
    let load_options = LoadOptions {
        prefix: args.prefix.clone(),
        error_log: args.error_log.clone(),
    };
    let file = match &args.prefix {
        Some(prefix) => prefix.join(&args.config),
        None => args.config.clone(),
    };
    let file = file.display().to_string();
    // `-t` also loads every certificate, key, CA and CRL, as `nginx -t`;
    // a start or a reload loads them where it builds its TLS.
    let loaded = config::load_with(&args.config, &load_options);
    let loaded = if args.test {
        loaded
            .and_then(|c| tls::check(&c).map(|()| c))
            .and_then(|c| match logging::check_files(&c) {
                Ok(()) => Ok(c),
                Err(message) => Err(config::ConfigError {
                    message,
                    location: None,
                }),
            })
    } else {
        loaded
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("postern: [emerg] {e}");
            if args.test {
                eprintln!("postern: configuration file {file} test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(signal) = args.signal {
        return match runtime::signal_running(&config, signal.number()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("postern: [error] {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.test {
        for warning in &config.warnings {
            eprintln!("postern: [warn] {warning}");
        }
        eprintln!("postern: the configuration file {file} syntax is ok");
        eprintln!("postern: configuration file {file} test is successful");
        return ExitCode::SUCCESS;
    }
    if let Some(level) = args.log_level {
        config.main.error_log.iter_mut().for_each(|log| log.level = level);
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
        cpus: args.cpus.map(|list| list.0),
        pin: !args.no_pin,
        io_memory: args.io_memory,
        max_conns: args.max_conns,
        relay: args.relay,
        pipe_size: args.pipe_size,
        ktls: args.ktls,
        spin_before_park: std::time::Duration::from_micros(args.spin_before_park),
    };
    // SIGHUP reads the same file with the same -p and -e; `--log-level`
    // keeps overriding.
    let reload = || {
        let mut config = config::load_with(&args.config, &load_options).map_err(|e| e.to_string())?;
        if let Some(level) = args.log_level {
            config.main.error_log.iter_mut().for_each(|log| log.level = level);
        }
        Ok(config)
    };
    match runtime::run(config, options, &reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            postern::emerg!("{e}");
            // The error log may be a file; say it where the operator looks too.
            eprintln!("postern: [emerg] {e}");
            ExitCode::FAILURE
        }
    }
}
