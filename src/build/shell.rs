//! Dockerfile shell-word expansion: variable substitution and quoting.
//!
//! Dockerfile instructions other than RUN (and the shell form of CMD and
//! ENTRYPOINT) never see a real shell; their words are expanded here the way
//! the reference builder does it:
//!
//! - `$V`, `${V}`; an unset variable expands to the empty string;
//! - `${V:-word}` / `${V-word}`: `word` when V is empty or unset / unset;
//! - `${V:+word}` / `${V+word}`: `word` when V is non-empty / set;
//! - `${V:?msg}` / `${V?msg}`: an error when V is empty or unset / unset;
//! - `${#V}`: the length of V in characters;
//! - `${V#pat}`, `${V##pat}`, `${V%pat}`, `${V%%pat}`: remove the shortest or
//!   longest matching prefix or suffix (`*` and `?` globs);
//! - `${V/pat/repl}`, `${V//pat/repl}`: replace the first or every match;
//! - positional (`$1`, `${999}`) and special parameters (`$@ $* $# $? $- $$ $!
//!   $0`) are never set;
//! - single quotes keep everything literal; double quotes keep everything but
//!   `$` expansions, and there the escape character only escapes `"`, `$`
//!   and itself; outside quotes the escape character (`\`, or `` ` `` under
//!   the `escape` directive) makes the next character literal and is dropped
//!   at the end of the word.
//!
//! `split_words` also splits the result into words: at unquoted whitespace of
//! the input and at whitespace produced by unquoted expansions.

use thiserror::Error;

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShellError {
    /// The word is malformed: unterminated quote or brace, bad substitution.
    #[error("{0}")]
    Syntax(String),
    /// `${V?msg}` / `${V:?msg}` with V unset (or empty for the `:` form).
    #[error("{name}: {message}")]
    Unset { name: String, message: String },
}

/// Expands variables and removes quotes from one Dockerfile word.
///
/// `env` answers the value of a variable (None when it is not set);
/// `escape` is the Dockerfile's escape character (`\` or `` ` ``).
pub fn expand(
    word: &str,
    env: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ShellError> {
    Lex::new(escape).process_word(word, env)
}

/// Expands like [`expand`], then splits into words at unquoted whitespace
/// (including whitespace that unquoted expansions produce). Empty words are
/// dropped.
pub fn split_words(
    word: &str,
    env: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ShellError> {
    Lex::new(escape).process_words(word, env)
}

/// The expander with its options, for callers that need the raw variants
/// (the Dockerfile parser uses them to read heredoc markers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lex {
    /// The escape character, `\` by default.
    pub escape: char,
    /// Keep quote characters in the output (they still group words).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (they still make the next
    /// character literal).
    pub raw_escapes: bool,
    /// Leave references to unset variables as written (`$X`, `${X}`).
    pub skip_unset_env: bool,
}

impl Lex {
    pub fn new(escape: char) -> Self {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
        }
    }

    /// Expands one word (see [`expand`]).
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ShellError> {
        let mut st = State::new(*self, word, env);
        let (s, _) = st.run_until(&[])?.0;
        Ok(s)
    }

    /// Expands and splits into words (see [`split_words`]).
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        let mut st = State::new(*self, word, env);
        let (_, words) = st.run_until(&[])?.0;
        Ok(words)
    }
}

fn syntax(msg: impl Into<String>) -> ShellError {
    ShellError::Syntax(msg.into())
}

/// Special parameters: never set in a Dockerfile, but they are names.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Collects words: whitespace from `add_char` separates words, `add_raw_*`
/// never does (quoted or escaped text).
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct State<'a> {
    lex: Lex,
    cs: Vec<char>,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
}

type Expanded = ((String, Vec<String>), Option<char>);

impl<'a> State<'a> {
    fn new(lex: Lex, word: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        State {
            lex,
            cs: word.chars().collect(),
            pos: 0,
            env,
        }
    }

    fn peek(&self) -> Option<char> {
        self.cs.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.cs.get(self.pos + ahead).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Processes text until one of `stops` (consumed, and returned) or, when
    /// `stops` is empty, the end of the input. Returns the expanded string,
    /// its words, and the stop character met.
    fn run_until(&mut self, stops: &[char]) -> Result<Expanded, ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                self.next();
                return Ok(((result, words.finish()), Some(c)));
            }
            if c == '$' {
                let v = self.dollar()?;
                words.add_string(&v);
                result.push_str(&v);
                continue;
            }
            if !self.lex.raw_quotes && c == '\'' {
                let v = self.single_quoted()?;
                words.add_raw_string(&v);
                result.push_str(&v);
                continue;
            }
            if !self.lex.raw_quotes && c == '"' {
                let v = self.double_quoted()?;
                words.add_raw_string(&v);
                result.push_str(&v);
                continue;
            }
            self.next();
            if c == self.lex.escape {
                if self.lex.raw_escapes {
                    words.add_raw_char(c);
                    result.push(c);
                }
                match self.next() {
                    // An escape at the very end is dropped.
                    None => break,
                    Some(n) => {
                        words.add_raw_char(n);
                        result.push(n);
                    }
                }
            } else {
                words.add_char(c);
                result.push(c);
            }
        }
        if let Some(&s) = stops.first() {
            return Err(syntax(format!(
                "unexpected end of statement while looking for matching {s}"
            )));
        }
        Ok(((result, words.finish()), None))
    }

    fn single_quoted(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            out.extend(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(syntax(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let q = self.next();
        if self.lex.raw_quotes {
            out.extend(q);
        }
        loop {
            let Some(c) = self.peek() else {
                return Err(syntax(
                    "unexpected end of statement while looking for matching double-quote",
                ));
            };
            if c == '"' {
                self.next();
                if self.lex.raw_quotes {
                    out.push('"');
                }
                return Ok(out);
            }
            if c == '$' {
                let v = self.dollar()?;
                out.push_str(&v);
                continue;
            }
            self.next();
            let mut ch = c;
            if c == self.lex.escape {
                if self.lex.raw_escapes {
                    out.push(c);
                }
                match self.peek() {
                    // Loop again: the end of input is reported above.
                    None => continue,
                    Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                        self.next();
                        ch = n;
                    }
                    // Any other escape stays as written.
                    Some(_) => {}
                }
            }
            out.push(ch);
        }
    }

    /// Reads a parameter name: letters, digits and `_`; or all the digits of
    /// a positional parameter; or one special-parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek()
                    && d.is_numeric()
                {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.next();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    /// The word of `${V<op>word}` up to the closing brace.
    fn brace_word(&mut self, raw_escapes: bool) -> Result<String, ShellError> {
        Ok(self.brace_word_until(&['}'], raw_escapes)?.0)
    }

    fn brace_word_until(
        &mut self,
        stops: &[char],
        raw_escapes: bool,
    ) -> Result<(String, Option<char>), ShellError> {
        let saved = self.lex.raw_escapes;
        self.lex.raw_escapes = raw_escapes;
        let r = self.run_until(stops);
        self.lex.raw_escapes = saved;
        match r {
            Ok(((s, _), stop)) => Ok((s, stop)),
            Err(ShellError::Syntax(_)) if self.peek().is_none() => {
                Err(syntax("syntax error: missing '}'"))
            }
            Err(e) => Err(e),
        }
    }

    fn dollar(&mut self) -> Result<String, ShellError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return Err(syntax("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(syntax("syntax error: bad substitution")),
            Some('#')
                if self
                    .peek_at(1)
                    .is_some_and(|c| c.is_alphabetic() || c == '_') =>
            {
                self.next();
                let name = self.name();
                if self.next() != Some('}') {
                    return Err(syntax("syntax error: bad substitution in ${#...}"));
                }
                return Ok(match self.lookup(&name) {
                    Some(v) => v.chars().count().to_string(),
                    None if self.lex.skip_unset_env => format!("${{#{name}}}"),
                    None => "0".to_string(),
                });
            }
            Some(_) => {}
        }
        let name = self.name();
        let op = self.next();
        let value = self.lookup(&name);
        let keep = self.lex.skip_unset_env && value.is_none();
        match op {
            None => Err(syntax("syntax error: missing '}'")),
            Some('}') => Ok(match value {
                Some(v) => v,
                None if keep => format!("${{{name}}}"),
                None => String::new(),
            }),
            _ if name.is_empty() => Err(syntax("syntax error: bad substitution")),
            Some(m @ ('-' | '+' | '?')) => {
                let word = self.brace_word(self.lex.raw_escapes)?;
                if keep && m != '?' {
                    return Ok(format!("${{{name}{m}{word}}}"));
                }
                match m {
                    '-' => Ok(value.unwrap_or(word)),
                    '+' => Ok(if value.is_some() { word } else { String::new() }),
                    _ => match value {
                        Some(v) => Ok(v),
                        None => Err(unset(&name, word, "is not allowed to be unset")),
                    },
                }
            }
            Some(':') => {
                let m = self.next();
                let word = self.brace_word(self.lex.raw_escapes)?;
                let v = value.clone().unwrap_or_default();
                match m {
                    Some('+') => {
                        if keep {
                            return Ok(format!("${{{name}:+{word}}}"));
                        }
                        Ok(if v.is_empty() { v } else { word })
                    }
                    Some('-') => {
                        if keep {
                            return Ok(format!("${{{name}:-{word}}}"));
                        }
                        Ok(if v.is_empty() { word } else { v })
                    }
                    Some('?') => {
                        if value.is_none() {
                            Err(unset(&name, word, "is not allowed to be unset"))
                        } else if v.is_empty() {
                            Err(unset(&name, word, "is not allowed to be empty"))
                        } else {
                            Ok(v)
                        }
                    }
                    Some(c) => Err(syntax(format!(
                        "unsupported modifier ({c}) in substitution"
                    ))),
                    None => Err(syntax("syntax error: missing '}'")),
                }
            }
            Some(m @ ('#' | '%')) => {
                let longest = self.peek() == Some(m);
                if longest {
                    self.next();
                }
                let pat = self.brace_word(true)?;
                if keep {
                    let op = if longest {
                        format!("{m}{m}")
                    } else {
                        m.to_string()
                    };
                    return Ok(format!("${{{name}{op}{pat}}}"));
                }
                let v: Vec<char> = value.unwrap_or_default().chars().collect();
                let pat = compile_glob(&pat, self.lex.escape);
                Ok(if m == '#' {
                    trim_prefix(&v, &pat, longest)
                } else {
                    trim_suffix(&v, &pat, longest)
                })
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pat, stop) = self.brace_word_until(&['/', '}'], true)?;
                let repl = if stop == Some('/') {
                    self.brace_word(self.lex.raw_escapes)?
                } else {
                    String::new()
                };
                if keep {
                    let op = if all { "//" } else { "/" };
                    return Ok(format!("${{{name}{op}{pat}/{repl}}}"));
                }
                let v: Vec<char> = value.unwrap_or_default().chars().collect();
                let pat = compile_glob(&pat, self.lex.escape);
                Ok(replace(&v, &pat, &repl, all))
            }
            Some(c) => Err(syntax(format!(
                "syntax error: unexpected '{c}' in substitution of {name}"
            ))),
        }
    }
}

fn unset(name: &str, word: String, default: &str) -> ShellError {
    let message = if word.is_empty() {
        default.to_string()
    } else {
        word
    };
    ShellError::Unset {
        name: name.to_string(),
        message,
    }
}

/// One element of a `*`/`?` glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Glob {
    Lit(char),
    Any,
    Star,
}

fn compile_glob(pat: &str, escape: char) -> Vec<Glob> {
    let mut out = Vec::new();
    let mut it = pat.chars();
    while let Some(c) = it.next() {
        out.push(match c {
            '*' => Glob::Star,
            '?' => Glob::Any,
            c if c == escape => match it.next() {
                Some(n) => Glob::Lit(n),
                None => Glob::Lit(c),
            },
            c => Glob::Lit(c),
        });
    }
    out
}

/// Whether the whole of `s` matches `pat` (iterative, no exponential blowup).
fn glob_match(pat: &[Glob], s: &[char]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(Glob::Star) => {
                star = Some((p, i));
                p += 1;
            }
            Some(Glob::Any) => {
                p += 1;
                i += 1;
            }
            Some(Glob::Lit(c)) if *c == s[i] => {
                p += 1;
                i += 1;
            }
            _ => match star {
                Some((sp, si)) => {
                    p = sp + 1;
                    i = si + 1;
                    star = Some((sp, si + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|g| *g == Glob::Star)
}

fn trim_prefix(v: &[char], pat: &[Glob], longest: bool) -> String {
    let n = v.len();
    let found = if longest {
        (0..=n).rev().find(|&i| glob_match(pat, &v[..i]))
    } else {
        (0..=n).find(|&i| glob_match(pat, &v[..i]))
    };
    v[found.unwrap_or(0)..].iter().collect()
}

fn trim_suffix(v: &[char], pat: &[Glob], longest: bool) -> String {
    let n = v.len();
    let found = if longest {
        (0..=n).find(|&i| glob_match(pat, &v[i..]))
    } else {
        (0..=n).rev().find(|&i| glob_match(pat, &v[i..]))
    };
    v[..found.unwrap_or(n)].iter().collect()
}

/// Replaces the first (or every) leftmost-longest non-empty match.
fn replace(v: &[char], pat: &[Glob], repl: &str, all: bool) -> String {
    // Without `*` a match has exactly the pattern's length.
    let fixed = (!pat.contains(&Glob::Star)).then_some(pat.len());
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i < v.len() {
        if (all || !replaced)
            && let Some(end) = match fixed {
                Some(n) => {
                    Some(i + n).filter(|&e| n > 0 && e <= v.len() && glob_match(pat, &v[i..e]))
                }
                None => (i + 1..=v.len()).rev().find(|&e| glob_match(pat, &v[i..e])),
            }
        {
            out.push_str(repl);
            i = end;
            replaced = true;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "SHELL" => Some("bash".into()),
            "NULL" => Some(String::new()),
            "SPACE" => Some("a  b".into()),
            "PATH_V" => Some("/usr/local/bin/app.tar.gz".into()),
            _ => None,
        }
    }

    fn ex(s: &str) -> Result<String, ShellError> {
        expand(s, &env, '\\')
    }

    fn words(s: &str) -> Vec<String> {
        split_words(s, &env, '\\').unwrap()
    }

    #[test]
    fn plain_and_simple_variables() {
        assert_eq!(ex("hello").unwrap(), "hello");
        assert_eq!(ex("he$PWD").unwrap(), "he/home");
        assert_eq!(ex("he${PWD}x").unwrap(), "he/homex");
        assert_eq!(ex("$NOPE").unwrap(), "");
        assert_eq!(ex("a$.b").unwrap(), "a$.b");
        assert_eq!(ex("$").unwrap(), "$");
    }

    #[test]
    fn default_and_alternative() {
        assert_eq!(ex("${X:-d}").unwrap(), "d");
        assert_eq!(ex("${NULL:-d}").unwrap(), "d");
        assert_eq!(ex("${NULL-d}").unwrap(), "");
        assert_eq!(ex("${X-d}").unwrap(), "d");
        assert_eq!(ex("${PWD:-d}").unwrap(), "/home");
        assert_eq!(ex("${PWD:+alt}").unwrap(), "alt");
        assert_eq!(ex("${NULL:+alt}").unwrap(), "");
        assert_eq!(ex("${NULL+alt}").unwrap(), "alt");
        assert_eq!(ex("${X+alt}").unwrap(), "");
        assert_eq!(ex("${X:-${Y:-${PWD}}}").unwrap(), "/home");
    }

    #[test]
    fn required_variables() {
        assert_eq!(ex("${PWD:?}").unwrap(), "/home");
        assert_eq!(ex("${NULL?}").unwrap(), "");
        assert_eq!(
            ex("${X?must be set}").unwrap_err(),
            ShellError::Unset {
                name: "X".into(),
                message: "must be set".into()
            }
        );
        assert!(matches!(ex("${NULL:?}"), Err(ShellError::Unset { .. })));
        assert_eq!(
            ex("${X:?}").unwrap_err().to_string(),
            "X: is not allowed to be unset"
        );
    }

    #[test]
    fn length_and_patterns() {
        assert_eq!(ex("${#PWD}").unwrap(), "5");
        assert_eq!(ex("${#X}").unwrap(), "0");
        assert_eq!(ex("${#}").unwrap(), "");
        assert_eq!(ex("${#:-z}").unwrap(), "z");
        assert_eq!(ex("${PATH_V#*/}").unwrap(), "usr/local/bin/app.tar.gz");
        assert_eq!(ex("${PATH_V##*/}").unwrap(), "app.tar.gz");
        assert_eq!(ex("${PATH_V%.*}").unwrap(), "/usr/local/bin/app.tar");
        assert_eq!(ex("${PATH_V%%.*}").unwrap(), "/usr/local/bin/app");
        assert_eq!(
            ex("${PATH_V/local/opt}").unwrap(),
            "/usr/opt/bin/app.tar.gz"
        );
        assert_eq!(ex("${PATH_V//a/_}").unwrap(), "/usr/loc_l/bin/_pp.t_r.gz");
        assert_eq!(ex("${PATH_V/\\*/x}").unwrap(), "/usr/local/bin/app.tar.gz");
    }

    #[test]
    fn quoting() {
        assert_eq!(ex("he'll'o").unwrap(), "hello");
        assert_eq!(ex("'$PWD'").unwrap(), "$PWD");
        assert_eq!(ex("\"$PWD\"").unwrap(), "/home");
        assert_eq!(ex("\"a\\tb\"").unwrap(), "a\\tb");
        assert_eq!(ex("\"a\\\\b\"").unwrap(), "a\\b");
        assert_eq!(ex("\"a\\$b\"").unwrap(), "a$b");
        assert_eq!(ex("a\\tb").unwrap(), "atb");
        assert_eq!(ex("he\\$PWD").unwrap(), "he$PWD");
        assert_eq!(ex("hello\\").unwrap(), "hello");
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "he'llo",
            "\"hello",
            "\"hello\\\"",
            "${}",
            "${PWD",
            "${X:=1}",
            "${.}",
            "${:-x}",
            "${{a}",
        ] {
            assert!(
                matches!(ex(bad), Err(ShellError::Syntax(_))),
                "{bad} should fail"
            );
        }
        assert_eq!(
            ex("${PWD").unwrap_err().to_string(),
            "syntax error: missing '}'"
        );
    }

    #[test]
    fn backtick_escape() {
        let e = |s: &str| expand(s, &env, '`').unwrap();
        assert_eq!(e("C:\\dir"), "C:\\dir");
        assert_eq!(e("a`$PWD"), "a$PWD");
        assert_eq!(e("\"a`\"b\""), "a\"b");
    }

    #[test]
    fn splitting() {
        assert_eq!(words("a  b"), ["a", "b"]);
        assert_eq!(words("x${SPACE}y"), ["xa", "by"]);
        assert_eq!(words("x\"${SPACE}\"y"), ["xa  by"]);
        assert_eq!(words("a\\ b"), ["a b"]);
        assert_eq!(words("'' x"), ["x"]);
        assert!(split_words("a\"b", &env, '\\').is_err());
    }

    #[test]
    fn raw_modes() {
        let lex = Lex {
            raw_quotes: true,
            raw_escapes: true,
            ..Lex::new('\\')
        };
        assert_eq!(
            lex.process_words("<<\"EOF\" a\\ b", &env).unwrap(),
            ["<<\"EOF\"", "a\\ b"]
        );
        let keep = Lex {
            skip_unset_env: true,
            ..Lex::new('\\')
        };
        assert_eq!(
            keep.process_word("$X ${Y} $PWD", &env).unwrap(),
            "$X ${Y} /home"
        );
    }
}
