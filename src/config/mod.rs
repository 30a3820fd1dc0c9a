//! Postern's configuration, written in nginx's syntax so that an nginx
//! `mail {}` block moves over unchanged.
//!
//! The text goes through `lexer` (words and `;` `{` `}`), `parser` (a tree of
//! directives, no names known), then `build`, which checks each directive
//! against its row in `directives` (the table of every directive nginx's
//! core, events and mail modules have) and merges `mail`-level settings and
//! defaults into each server. `values` and `address` read nginx's value
//! forms. Host names are resolved here, once; nothing is resolved later.

mod address;
mod build;
mod directives;
mod lexer;
pub mod model;
mod parser;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::path::Path;

pub use model::*;

/// Reads, parses and validates the file; resolves host names (`auth_http`,
/// `listen`) once.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes =
        std::fs::read(path).map_err(|err| ConfigError::new(format!("open() \"{}\" failed ({err})", path.display())))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        let valid = &err.as_bytes()[..err.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigError::at(
            "invalid UTF-8 in the configuration file",
            Location {
                file: path.to_path_buf(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
            },
        )
    })?;
    parse_str(&text, path)
}

/// As [`load`], from text; `file` names it in messages and is the folder
/// relative paths start from.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let tree = parser::parse(text, file)?;
    build::build(&tree, file)
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
