//! Splits configuration text into words and the three marks `;` `{` `}`,
//! following nginx's `ngx_conf_read_token` so that any file nginx reads is
//! split the same way here.
//!
//! The rules, as nginx has them:
//! - Words are separated by spaces, tabs, CR and LF; `;` and `{` end a word.
//! - `#` starts a comment to the end of the line only at the start of a word
//!   (`a#b` is one word).
//! - A word starting with `"` or `'` runs to the matching quote; the quote
//!   must then be followed by a separator (nginx allows `;`, `{` and blanks;
//!   a `}` is let through here and refused by the parser, as nginx does).
//! - A backslash keeps the next character from ending a word or a string.
//!   `\"`, `\'`, `\\`, `\n`, `\r`, `\t` are then unescaped; any other `\x`
//!   keeps both characters.
//! - In an unquoted word, `${` does not open a block (nginx's variables).

use std::path::Path;

use super::{ConfigError, Location};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Word(String),
    Semicolon,
    OpenBrace,
    CloseBrace,
    Eof,
}

/// nginx's wording whenever the text stops in the middle of a directive.
pub(crate) const UNEXPECTED_EOF: &str = "unexpected end of file, expecting \";\" or \"}\"";

pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// The line `pos` is on, counted from 1 as nginx does.
    line: u32,
    file: &'a Path,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Self {
        Lexer {
            text,
            pos: 0,
            line: 1,
            file,
        }
    }

    /// The line the lexer has reached (at the end: the last line).
    pub(crate) fn line(&self) -> u32 {
        self.line
    }

    pub(crate) fn location(&self, line: u32) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line,
        }
    }

    /// The next token and the line it starts on.
    pub(crate) fn next_token(&mut self) -> Result<(Token, u32), ConfigError> {
        self.skip_blanks_and_comments();
        let line = self.line;
        let token = match self.peek() {
            None => Token::Eof,
            Some(b';') => self.mark(Token::Semicolon),
            Some(b'{') => self.mark(Token::OpenBrace),
            Some(b'}') => self.mark(Token::CloseBrace),
            Some(quote @ (b'"' | b'\'')) => self.quoted(quote)?,
            Some(_) => self.bare(),
        };
        Ok((token, line))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Moves past one byte, counting lines.
    fn bump(&mut self) {
        if self.peek() == Some(b'\n') {
            self.line += 1;
        }
        self.pos += 1;
    }

    fn mark(&mut self, token: Token) -> Token {
        self.bump();
        token
    }

    fn skip_blanks_and_comments(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.bump(),
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    /// A word not starting with a quote.
    fn bare(&mut self) -> Token {
        let start = self.pos;
        let mut after_dollar = false;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' => break,
                b'{' if !after_dollar => break,
                b'\\' => self.skip_escaped(),
                _ => self.bump(),
            }
            after_dollar = c == b'$';
        }
        Token::Word(unescape(&self.text.as_bytes()[start..self.pos]))
    }

    /// A word in quotes; the quotes are not part of it.
    fn quoted(&mut self, quote: u8) -> Result<Token, ConfigError> {
        self.bump();
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(ConfigError::at(UNEXPECTED_EOF, self.location(self.line))),
                Some(c) if c == quote => break,
                Some(b'\\') => self.skip_escaped(),
                Some(_) => self.bump(),
            }
        }
        let word = unescape(&self.text.as_bytes()[start..self.pos]);
        self.bump();
        self.expect_separator()?;
        Ok(Token::Word(word))
    }

    /// A backslash and the byte it protects.
    fn skip_escaped(&mut self) {
        self.bump();
        if self.peek().is_some() {
            self.bump();
        }
    }

    /// After a closing quote nginx wants a separator: `"a"b` is an error, not
    /// a word `ab`.
    fn expect_separator(&self) -> Result<(), ConfigError> {
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{' | b'}') => Ok(()),
            Some(_) => {
                // The quote is ASCII, so `pos` is on a character boundary.
                let found = self.text[self.pos..].chars().next().unwrap_or('?');
                Err(ConfigError::at(
                    format!("unexpected \"{found}\""),
                    self.location(self.line),
                ))
            }
        }
    }
}

/// Applies nginx's escapes to the raw bytes of a word.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&c) = raw.get(i) {
        if c == b'\\' {
            let replacement = match raw.get(i + 1) {
                Some(&q @ (b'"' | b'\'' | b'\\')) => Some(q),
                Some(b'n') => Some(b'\n'),
                Some(b'r') => Some(b'\r'),
                Some(b't') => Some(b'\t'),
                _ => None,
            };
            if let Some(r) = replacement {
                out.push(r);
                i += 2;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    // The input was a &str cut at ASCII bytes and only ASCII was replaced, so
    // this is valid UTF-8; the lossy path exists only to avoid a panic.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/postern/postern.conf";

    /// All tokens as `(token, line)` up to and including `Eof`.
    fn lex(text: &str) -> Result<Vec<(Token, u32)>, ConfigError> {
        let mut lexer = Lexer::new(text, Path::new(FILE));
        let mut out = Vec::new();
        loop {
            let (token, line) = lexer.next_token()?;
            let end = token == Token::Eof;
            out.push((token, line));
            if end {
                return Ok(out);
            }
        }
    }

    fn words(text: &str) -> Vec<String> {
        lex(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .filter_map(|(t, _)| match t {
                Token::Word(w) => Some(w),
                _ => None,
            })
            .collect()
    }

    fn w(s: &str) -> Token {
        Token::Word(s.to_string())
    }

    #[test]
    fn word_rows() {
        let rows: &[(&str, &[&str])] = &[
            ("a b\tc\r\nd", &["a", "b", "c", "d"]),
            ("timeout 60s;", &["timeout", "60s"]),
            ("\"a b\" 'c d'", &["a b", "c d"]),
            ("\"\"", &[""]),
            ("''", &[""]),
            (r#""say \"hi\"""#, &["say \"hi\""]),
            (r"'it\'s'", &["it's"]),
            (r#""back\\slash""#, &["back\\slash"]),
            (r#""tab\there""#, &["tab\there"]),
            (r#""nl\n cr\r""#, &["nl\n cr\r"]),
            (r#""keep\x\d""#, &["keep\\x\\d"]),
            (r"bare\;semi", &["bare\\;semi"]),
            (r"bare\ space", &["bare\\ space"]),
            (r"a\\b", &["a\\b"]),
            ("\"single ' inside\"", &["single ' inside"]),
            ("'double \" inside'", &["double \" inside"]),
            ("\"# not a comment\"", &["# not a comment"]),
            ("a#b", &["a#b"]),
            ("a # comment\nb", &["a", "b"]),
            ("#only a comment", &[]),
            ("a}b", &["a}b"]),
            ("mid\"quote\"", &["mid\"quote\""]),
            ("${var}", &["${var}"]),
            ("x{", &["x"]),
            ("\"multi\nline\"", &["multi\nline"]),
            ("snowman☃ \"é\"", &["snowman☃", "é"]),
        ];
        for &(text, want) in rows {
            assert_eq!(words(text), want, "{text:?}");
        }
    }

    #[test]
    fn marks_and_lines() {
        let text = "mail {\n  # comment\n  timeout 5s;\n  \"two\nlines\" x;\n}\n";
        assert_eq!(
            lex(text).unwrap(),
            vec![
                (w("mail"), 1),
                (Token::OpenBrace, 1),
                (w("timeout"), 3),
                (w("5s"), 3),
                (Token::Semicolon, 3),
                (w("two\nlines"), 4),
                (w("x"), 5),
                (Token::Semicolon, 5),
                (Token::CloseBrace, 6),
                (Token::Eof, 7),
            ]
        );
    }

    #[test]
    fn quote_then_separator() {
        assert_eq!(
            lex("\"a\";\"b\"{'c'}").unwrap(),
            vec![
                (w("a"), 1),
                (Token::Semicolon, 1),
                (w("b"), 1),
                (Token::OpenBrace, 1),
                (w("c"), 1),
                (Token::CloseBrace, 1),
                (Token::Eof, 1),
            ]
        );
    }

    #[test]
    fn errors() {
        let rows: &[(&str, &str)] = &[
            ("\"ab\"c;", "unexpected \"c\" in /etc/postern/postern.conf:1"),
            ("x\n'ab'#", "unexpected \"#\" in /etc/postern/postern.conf:2"),
            ("\"ab\"☃", "unexpected \"☃\" in /etc/postern/postern.conf:1"),
            (
                "a \"open\n\n",
                "unexpected end of file, expecting \";\" or \"}\" in /etc/postern/postern.conf:3",
            ),
            (
                "a 'open\\'",
                "unexpected end of file, expecting \";\" or \"}\" in /etc/postern/postern.conf:1",
            ),
        ];
        for &(text, want) in rows {
            let err = lex(text).expect_err(text);
            assert_eq!(err.to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn backslash_at_end_of_text() {
        assert_eq!(words("a\\"), vec!["a\\"]);
    }
}
