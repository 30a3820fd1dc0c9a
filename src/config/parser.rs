//! Groups tokens into a tree of directives, with nginx's messages for text
//! that is not a well-formed configuration. The parser knows no directive
//! names: whether `mail` must have a block is the table's business.

use std::path::Path;

use super::lexer::{Lexer, Token, UNEXPECTED_EOF};
use super::{ConfigError, Location};

/// One `name arg...;` or `name arg... { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    /// The line of the name.
    pub(crate) location: Location,
    /// The directives inside `{ }`, when the directive has a block.
    pub(crate) block: Option<Vec<Directive>>,
}

/// nginx's deepest meaningful nesting is main -> mail -> server; this bound
/// only keeps a hostile file from building a tree too deep to drop or walk
/// without exhausting the stack.
const MAX_DEPTH: usize = 16;

/// A block that has been opened and not yet closed.
struct Open {
    head: Vec<(String, u32)>,
    /// The directives before it at its own level, put back when it closes.
    siblings: Vec<Directive>,
}

pub(crate) fn parse(text: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
    let mut lexer = Lexer::new(text, file);
    let mut open: Vec<Open> = Vec::new();
    let mut current: Vec<Directive> = Vec::new();
    let mut words: Vec<(String, u32)> = Vec::new();

    loop {
        let (token, line) = lexer.next_token()?;
        let here = || lexer.location(line);
        match token {
            Token::Word(word) => words.push((word, line)),
            Token::Semicolon => match directive(std::mem::take(&mut words), None, file) {
                Some(d) => current.push(d),
                None => return Err(ConfigError::at("unexpected \";\"", here())),
            },
            Token::OpenBrace => {
                if words.is_empty() {
                    return Err(ConfigError::at("unexpected \"{\"", here()));
                }
                if open.len() == MAX_DEPTH {
                    return Err(ConfigError::at(
                        format!("unexpected \"{{\": blocks nested deeper than {MAX_DEPTH}"),
                        here(),
                    ));
                }
                open.push(Open {
                    head: std::mem::take(&mut words),
                    siblings: std::mem::take(&mut current),
                });
            }
            Token::CloseBrace => {
                let block = match open.pop() {
                    Some(block) if words.is_empty() => block,
                    _ => return Err(ConfigError::at("unexpected \"}\"", here())),
                };
                let children = std::mem::replace(&mut current, block.siblings);
                current.extend(directive(block.head, Some(children), file));
            }
            Token::Eof => {
                let message = if !words.is_empty() {
                    UNEXPECTED_EOF
                } else if !open.is_empty() {
                    "unexpected end of file, expecting \"}\""
                } else {
                    return Ok(current);
                };
                return Err(ConfigError::at(message, lexer.location(lexer.line())));
            }
        }
    }
}

/// Builds a directive from its words; `None` when there are none.
fn directive(words: Vec<(String, u32)>, block: Option<Vec<Directive>>, file: &Path) -> Option<Directive> {
    let mut words = words.into_iter();
    let (name, line) = words.next()?;
    Some(Directive {
        name,
        args: words.map(|(w, _)| w).collect(),
        location: Location {
            file: file.to_path_buf(),
            line,
        },
        block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/postern/postern.conf";

    fn parse_ok(text: &str) -> Vec<Directive> {
        parse(text, Path::new(FILE)).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// A compact picture of a tree: `name(args)[line]{children}`.
    fn shape(dirs: &[Directive]) -> String {
        dirs.iter()
            .map(|d| {
                let mut s = format!("{}({})[{}]", d.name, d.args.join(","), d.location.line);
                if let Some(block) = &d.block {
                    s.push_str(&format!("{{{}}}", shape(block)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn trees() {
        let rows: &[(&str, &str)] = &[
            ("", ""),
            ("# nothing\n", ""),
            ("a;", "a()[1]"),
            ("a b c;", "a(b,c)[1]"),
            ("a\nb\n;", "a(b)[1]"),
            ("a {}", "a()[1]{}"),
            ("a x { }", "a(x)[1]{}"),
            (
                "main 1;\nmail {\n  t 5;\n  server {\n    listen 143;\n  }\n}\nlast;",
                "main(1)[1] mail()[2]{t(5)[3] server()[4]{listen(143)[5]}} last()[8]",
            ),
            ("a{b;}c;", "a()[1]{b()[1]} c()[1]"),
            ("a \"\";", "a()[1]"),
        ];
        for &(text, want) in rows {
            assert_eq!(shape(&parse_ok(text)), want, "{text:?}");
        }
    }

    #[test]
    fn empty_argument_is_kept() {
        let tree = parse_ok("server_name \"\";");
        assert_eq!(tree[0].args, vec![String::new()]);
    }

    #[test]
    fn errors() {
        let rows: &[(&str, &str)] = &[
            ("}", "unexpected \"}\" in /etc/postern/postern.conf:1"),
            ("a;\n\n}", "unexpected \"}\" in /etc/postern/postern.conf:3"),
            ("a {\n b }", "unexpected \"}\" in /etc/postern/postern.conf:2"),
            ("a { b \"c\"}", "unexpected \"}\" in /etc/postern/postern.conf:1"),
            ("{", "unexpected \"{\" in /etc/postern/postern.conf:1"),
            ("a;\n;", "unexpected \";\" in /etc/postern/postern.conf:2"),
            (
                "a {\n\n",
                "unexpected end of file, expecting \"}\" in /etc/postern/postern.conf:3",
            ),
            (
                "a {\n b {\n }",
                "unexpected end of file, expecting \"}\" in /etc/postern/postern.conf:3",
            ),
            (
                "a {\n b c",
                "unexpected end of file, expecting \";\" or \"}\" in /etc/postern/postern.conf:2",
            ),
            (
                "timeout 5\n",
                "unexpected end of file, expecting \";\" or \"}\" in /etc/postern/postern.conf:2",
            ),
        ];
        for &(text, want) in rows {
            let err = parse(text, Path::new(FILE)).expect_err(text);
            assert_eq!(err.to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = "a {".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        assert!(parse(&ok, Path::new(FILE)).is_ok());
        let deep = "a {".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        let err = parse(&deep, Path::new(FILE)).expect_err("too deep");
        assert_eq!(
            err.message,
            format!("unexpected \"{{\": blocks nested deeper than {MAX_DEPTH}")
        );
    }
}
