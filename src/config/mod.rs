//! Postern's configuration, written in nginx's syntax so that an nginx
//! `mail {}` block moves over unchanged.
//!
//! The text goes through `lexer` (words and `;` `{` `}`), `parser` (a tree of
//! directives, no names known), then `build`, which checks each directive
//! against its row in `directives` (the table of every directive nginx's
//! core, events and mail modules have), reads `include`d files (`files`) in
//! their place, and merges `mail`-level settings and defaults into each
//! server. `values`, `address` and `listen` read nginx's value forms. Host
//! names are resolved here, once; nothing is resolved later.

mod address;
mod build;
mod directives;
mod errlog;
mod files;
mod lexer;
mod listen;
pub mod model;
mod parser;
mod realip;
mod ssl;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use model::*;
pub use realip::{trusted, SendProxyProtocol, TrustedPeer};

/// What the command line may change in how a file is read, as nginx's `-p`
/// and `-e`.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// nginx's `-p`: relative paths in the file (`pid`, `error_log`,
    /// `listen unix:`) start here instead of at the file's folder, and so
    /// does a relative path to the file itself. `include` still starts at the
    /// including file's folder.
    pub prefix: Option<PathBuf>,
    /// nginx's `-e`: `stderr` or a file (relative: as above) that replaces
    /// the main `error_log` target; the level stays the file's (or the
    /// default).
    pub error_log: Option<String>,
}

/// Reads, parses and validates the file; resolves host names (`auth_http`,
/// `listen`) once. Relative paths start at the file's folder.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, &LoadOptions::default())
}

/// As [`load`], with the command line's prefix and error log.
pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Config, ConfigError> {
    let file = match &options.prefix {
        Some(prefix) if path.is_relative() => prefix.join(path),
        _ => path.to_path_buf(),
    };
    let text = files::read(&file, None)?;
    parse_with(&text, &file, options, false)
}

/// As [`load`], from text; `file` names it in messages and is the folder
/// relative paths (and `include`s) start from.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with(text, file, &LoadOptions::default(), false)
}

/// As [`parse_str`], touching nothing outside the process: a host name
/// that is not an IP literal is not found and `include` is refused. For the
/// fuzz targets and property tests, which make up text by the million and
/// must neither wait on DNS nor read whatever files a made-up `include` names.
pub fn parse_str_offline(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with(text, file, &LoadOptions::default(), true)
}

/// Only the lexer and the parser: whether `text` is well-formed nginx
/// syntax, without checking any directive. The fuzz targets' way in to the
/// two stages every file goes through first.
pub fn check_syntax(text: &str, file: &Path) -> Result<(), ConfigError> {
    parser::parse(text, file).map(drop)
}

fn parse_with(text: &str, file: &Path, options: &LoadOptions, offline: bool) -> Result<Config, ConfigError> {
    let tree = parser::parse(text, file)?;
    build::build(&tree, file, options, offline)
}

/// Why a configuration was refused, and where, in nginx's words.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// What is wrong, without the place: `unknown directive "foo"`.
    pub message: String,
    /// The directive or token at fault; `None` when the file could not be read.
    pub location: Option<Location>,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            location: None,
        }
    }

    pub(crate) fn at(message: impl Into<String>, location: Location) -> ConfigError {
        ConfigError {
            message: message.into(),
            location: Some(location),
        }
    }
}

/// `unknown directive "foo" in /etc/postern/postern.conf:12`, as nginx.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(location) => write!(f, "{} in {location}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
