//! The user table shared by the auth server and the backends.
//!
//! Users come from `--user NAME:PASS` flags and `--users FILE` files whose
//! lines are `name:pass`. Names and passwords are raw bytes: they are split
//! at the first `:`, so a password may itself contain colons (a name may
//! not). A `--user` value may hold any byte but NUL, CR and LF included, and
//! need not be UTF-8; a line of a users file cannot hold LF, and a trailing
//! CR is taken as part of its line ending.

use std::collections::HashMap;
use std::path::Path;

/// Known users and their passwords.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    passwords: HashMap<Vec<u8>, Vec<u8>>,
}

impl Users {
    /// Builds the table from `--user` values and an optional `--users` file.
    /// Later entries replace earlier ones with the same name.
    pub fn load<P: AsRef<[u8]>>(pairs: &[P], file: Option<&Path>) -> Result<Users, String> {
        let mut users = Users::default();
        if let Some(path) = file {
            let data = std::fs::read(path).map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
            for (name, pass) in parse_file(&data).map_err(|e| format!("users file {}: {e}", path.display()))? {
                users.insert(name, pass);
            }
        }
        for pair in pairs {
            let pair = pair.as_ref();
            let (name, pass) = split_pair(pair)
                .ok_or_else(|| format!("--user {:?}: expected NAME:PASS", String::from_utf8_lossy(pair)))?;
            users.insert(name, pass);
        }
        Ok(users)
    }

    pub fn insert(&mut self, name: Vec<u8>, pass: Vec<u8>) {
        self.passwords.insert(name, pass);
    }

    pub fn len(&self) -> usize {
        self.passwords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passwords.is_empty()
    }

    /// The password of `name`, if it is a known user.
    pub fn password(&self, name: &[u8]) -> Option<&[u8]> {
        self.passwords.get(name).map(Vec::as_slice)
    }

    /// True when `name` is known and `pass` is its password.
    pub fn check(&self, name: &[u8], pass: &[u8]) -> bool {
        self.passwords.get(name).is_some_and(|p| p == pass)
    }
}

/// A user name and its password.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Splits `name:pass` at the first colon.
pub fn split_pair(pair: &[u8]) -> Option<Entry> {
    let colon = memchr::memchr(b':', pair)?;
    Some((pair[..colon].to_vec(), pair[colon + 1..].to_vec()))
}

/// Parses the contents of a users file. Blank lines and lines starting with
/// `#` are skipped; a trailing CR is removed from each line.
pub fn parse_file(data: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (number, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
            continue;
        }
        let entry = split_pair(line).ok_or_else(|| format!("line {}: expected name:pass", number + 1))?;
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, pass: &str) -> Entry {
        (name.as_bytes().to_vec(), pass.as_bytes().to_vec())
    }

    #[test]
    fn file_parsing() {
        let data = b"# comment\nalice:secret\r\n\n   \nbob:pa:ss:word\ncarol:\n#x:y\n:nameless\n";
        assert_eq!(
            parse_file(data).unwrap(),
            vec![
                pair("alice", "secret"),
                pair("bob", "pa:ss:word"),
                pair("carol", ""),
                pair("", "nameless"),
            ]
        );
    }

    #[test]
    fn file_without_trailing_newline() {
        assert_eq!(parse_file(b"a:b").unwrap(), vec![pair("a", "b")]);
        assert_eq!(parse_file(b"").unwrap(), vec![]);
    }

    #[test]
    fn file_line_without_colon_is_an_error() {
        let err = parse_file(b"a:b\n\nbroken\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn split_at_first_colon() {
        assert_eq!(split_pair(b"u:p:q"), Some(pair("u", "p:q")));
        assert_eq!(split_pair(b"nocolon"), None);
    }

    #[test]
    fn load_and_check() {
        let path = std::env::temp_dir().join(format!("postern-bench-users-{}", std::process::id()));
        std::fs::write(&path, "alice:old\nbob:b\n").unwrap();
        let users = Users::load(&["alice:new", "eve:e:e"], Some(&path)).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(users.len(), 3);
        assert!(users.check(b"alice", b"new"));
        assert!(!users.check(b"alice", b"old"));
        assert!(users.check(b"bob", b"b"));
        assert!(users.check(b"eve", b"e:e"));
        assert!(!users.check(b"mallory", b""));
        assert!(Users::load(&["bad"], None).is_err());
        assert!(Users::load::<&str>(&[], Some(Path::new("/nonexistent/users"))).is_err());
    }

    #[test]
    fn any_byte_but_nul_in_flags() {
        let odd: &[u8] = b"a\r\nb %\"\\\xff\t:p w:\r\n";
        let users = Users::load(&[odd], None).unwrap();
        assert!(users.check(b"a\r\nb %\"\\\xff\t", b"p w:\r\n"));
        assert!(!users.check(b"a\nb %\"\\\xff\t", b"p w:\r\n"));
        assert!(!users.check(b"a\r\nb %\"\\\xff\t", b"p w:"));
    }
}
