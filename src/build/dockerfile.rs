//! Dockerfile parser.
//!
//! `parse` reads the whole Dockerfile syntax into [`Instruction`]s, each with
//! the line numbers it spans:
//!
//! - parser directives (`# syntax=`, `# escape=`, `# check=`) only before
//!   anything else (a blank line, a comment or an instruction ends them);
//! - comments and blank lines; line continuations with the escape character
//!   (`\` or `` ` ``), where comment lines and empty lines inside a
//!   continued instruction are skipped and an escape at the end of the file
//!   is allowed;
//! - flags (`--from=build`, `--mount=...`) before the arguments;
//! - exec form (a JSON array of strings) for RUN, CMD, ENTRYPOINT, SHELL,
//!   COPY, ADD, VOLUME and HEALTHCHECK CMD; text that looks like JSON but is
//!   not valid JSON is the shell form, as the reference builder does; a
//!   valid JSON array holding something else than strings is an error;
//! - ENV and LABEL in both forms (`K V` and `K=V ...`), ARG names with
//!   optional defaults, ONBUILD with its trigger, HEALTHCHECK NONE / CMD;
//! - heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`) in RUN, COPY and ADD, whose
//!   bodies follow the instruction.
//!
//! The arguments are kept as written: quotes and `$` references are left for
//! the builder, which expands them with [`super::shell`] when the instruction
//! runs (it knows the ENV and ARG values in scope).
//!
//! `parse` rejects what cannot be an instruction at all (unknown instruction,
//! missing arguments, malformed ENV/LABEL, SHELL not in JSON form, ...).
//! [`Dockerfile::validate`] adds the checks the builder needs before it
//! starts (known flags, HEALTHCHECK type, FROM first, stage names); the
//! reference corpus keeps those apart, so they are apart here too.

use std::fmt::Write as _;

use thiserror::Error;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives in order: (`syntax` | `escape` | `check`, value).
    pub directives: Vec<(String, String)>,
    /// The escape character: `\` unless the `escape` directive says `` ` ``.
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based last line (continuations and heredoc bodies included).
    pub end_line: usize,
    /// The instruction name, lower-case (`"run"`, `"copy"`).
    pub cmd: String,
    /// Flags as written, quotes removed: `"--from=build"`, `"--link"`.
    pub flags: Vec<String>,
    pub args: Args,
    /// The instruction text with its continuations joined (trimmed).
    pub original: String,
    /// Heredoc bodies, in the order their markers appear.
    pub heredocs: Vec<Heredoc>,
}

/// The arguments of an instruction, as written (not expanded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// Exec form: a JSON array of strings (RUN, CMD, ENTRYPOINT, SHELL, and
    /// the JSON form of COPY, ADD and VOLUME).
    Json(Vec<String>),
    /// Shell form of RUN, CMD and ENTRYPOINT: the rest of the line.
    Shell(String),
    /// ENV and LABEL: (key, value, separator) with separator `"="` for the
    /// `K=V` form and `""` for the legacy `K V` form (value = rest of line).
    KeyValues(Vec<(String, String, String)>),
    /// FROM, EXPOSE, COPY, ADD and VOLUME split at whitespace; ARG split at
    /// unquoted whitespace (quotes and escapes kept).
    Words(Vec<String>),
    /// The single argument of USER, WORKDIR, STOPSIGNAL and MAINTAINER: the
    /// rest of the line.
    Text(String),
    /// HEALTHCHECK: `kind` is the first word (`CMD`, `NONE`, as written);
    /// `cmd` the command after it (Json or Shell), if any.
    Healthcheck {
        kind: String,
        cmd: Option<Box<Args>>,
    },
    /// ONBUILD: the trigger instruction.
    OnBuild(Box<Instruction>),
    /// No arguments (only a bare `HEALTHCHECK` parses to this).
    Empty,
}

/// A heredoc body (`RUN <<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, quotes removed (`EOF`).
    pub name: String,
    /// The body, every line ending with `\n`; with `strip_tabs` the leading
    /// tabs of each line are already removed.
    pub content: String,
    /// False when the marker was quoted (`<<"EOF"`, `<<'EOF'`): the body is
    /// then not subject to variable expansion.
    pub expand: bool,
    /// `<<-EOF`: leading tabs are stripped from the body and the terminator.
    pub strip_tabs: bool,
}

/// A Dockerfile error at a line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ParseError {
    /// 1-based line (the first line of the instruction at fault).
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// Every instruction name, lower-case.
pub const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

impl Instruction {
    /// The value of flag `--name=value` (`Some("")` for a bare `--name`),
    /// the last one when repeated.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flag_values(name).pop()
    }

    /// Every value of a repeatable flag (`--mount`), in order.
    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter_map(|f| {
                let body = f.strip_prefix("--")?;
                match body.split_once('=') {
                    Some((n, v)) if n == name => Some(v),
                    None if body == name => Some(""),
                    _ => None,
                }
            })
            .collect()
    }

    /// The instruction name as upper-case, for messages (`RUN`).
    pub fn name(&self) -> String {
        self.cmd.to_ascii_uppercase()
    }
}

impl Args {
    /// The argument list of the list forms (Json, Words), if this is one.
    pub fn list(&self) -> Option<&[String]> {
        match self {
            Args::Json(v) | Args::Words(v) => Some(v),
            _ => None,
        }
    }
}

impl Heredoc {
    /// The body as the reference gives it to a heredoc file/command.
    pub fn body(&self) -> &str {
        &self.content
    }
}

// ---------------------------------------------------------------- lines

/// Whitespace as the reference's command splitting knows it.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{b}' | '\u{c}' | '\r')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn trim_left_ws(s: &str) -> &str {
    s.trim_start_matches(|c: char| c.is_whitespace())
}

fn is_comment(left_trimmed: &str) -> bool {
    left_trimmed.starts_with('#')
}

/// Strips a line-continuation escape. A line continues when it ends (before
/// optional spaces/tabs) with an odd number of escape characters; the last
/// one and the spaces after it are removed. Returns (text, ends_here).
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let before = body.trim_end_matches(escape);
    let count = body[before.len()..].chars().count();
    if count % 2 == 1 {
        (&body[..body.len() - escape.len_utf8()], false)
    } else {
        (line, true)
    }
}

struct Directives {
    done: bool,
    escape: char,
    list: Vec<(String, String)>,
}

impl Directives {
    /// Reads `# name = value`, as the reference's directive pattern does.
    fn read(line: &str) -> Option<(String, String)> {
        let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r');
        let rest = line.strip_prefix('#')?.trim_start_matches(ws);
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return None;
        }
        let value = rest[end..]
            .trim_start_matches(ws)
            .strip_prefix('=')?
            .trim_matches(ws);
        if value.is_empty() {
            return None;
        }
        Some((name.to_ascii_lowercase(), value.to_string()))
    }

    fn consider(&mut self, line: &str, lineno: usize) -> Result<bool, ParseError> {
        if self.done {
            return Ok(false);
        }
        let Some((name, value)) = Self::read(line) else {
            self.done = true;
            return Ok(false);
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(false);
        }
        if self.list.iter().any(|(n, _)| *n == name) {
            return err(
                lineno,
                format!("only one {name} parser directive can be used"),
            );
        }
        if name == "escape" {
            self.escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                _ => {
                    return err(
                        lineno,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    );
                }
            };
        }
        self.list.push((name, value));
        Ok(true)
    }
}

// ---------------------------------------------------------------- parse

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut dirs = Directives {
        done: false,
        escape: '\\',
        list: Vec::new(),
    };
    let mut instructions = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let left = trim_left_ws(trim_newline(lines[i]));
        i += 1;
        dirs.consider(left, start)?;
        if is_comment(left) {
            continue;
        }
        let escape = dirs.escape;
        let (first, mut ends) = trim_continuation(left, escape);
        if ends && first.is_empty() {
            continue;
        }
        let mut text = first.to_string();
        let mut end = start;
        while !ends && i < lines.len() {
            let line = trim_newline(lines[i]);
            i += 1;
            end = i;
            let left = trim_left_ws(line);
            // Comment lines and empty lines do not end a continued instruction.
            if is_comment(left) || left.is_empty() {
                continue;
            }
            let (piece, e) = trim_continuation(line, escape);
            text.push_str(piece);
            ends = e;
        }
        if text.trim().is_empty() {
            continue;
        }
        let mut ins = parse_instruction(&text, start, end, escape)?;
        if matches!(ins.cmd.as_str(), "run" | "copy" | "add")
            && !matches!(ins.args, Args::Json(_))
            && text.contains("<<")
        {
            for (name, expand, strip_tabs) in heredoc_markers(&text, escape, start)? {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    end = i;
                    let mut body = trim_newline(raw);
                    if strip_tabs {
                        body = body.trim_start_matches('\t');
                    }
                    if body == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body);
                    content.push('\n');
                }
                if !terminated {
                    return err(
                        start,
                        format!("unterminated heredoc <<{name}: no line \"{name}\" closes it"),
                    );
                }
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    strip_tabs,
                });
            }
            ins.end_line = end;
        }
        instructions.push(ins);
    }
    if instructions.is_empty() {
        return err(lines.len().max(1), "the Dockerfile has no instructions");
    }
    Ok(Dockerfile {
        directives: dirs.list,
        escape: dirs.escape,
        instructions,
    })
}

/// Splits `CMD rest`: the name is the first run of non-blank characters.
fn split_command(text: &str) -> (&str, &str) {
    match text.find(is_blank) {
        Some(p) => (&text[..p], text[p..].trim_start_matches(is_blank)),
        None => (text, ""),
    }
}

fn parse_instruction(
    text: &str,
    line: usize,
    end_line: usize,
    escape: char,
) -> Result<Instruction, ParseError> {
    let original = text.trim();
    let (word, rest) = split_command(original);
    let cmd = word.to_ascii_lowercase();
    if !INSTRUCTIONS.contains(&cmd.as_str()) {
        let hint = suggest(&cmd).map(|s| format!(" (did you mean {}?)", s.to_ascii_uppercase()));
        return err(
            line,
            format!("unknown instruction: {word}{}", hint.unwrap_or_default()),
        );
    }
    let (flags, rest) = extract_flags(rest);
    let rest = rest.trim();
    let upper = cmd.to_ascii_uppercase();
    let need_one = || err(line, format!("{upper} requires at least one argument"));
    let args = match cmd.as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => {
            if rest.is_empty() {
                return need_one();
            }
            match json_array(rest).map_err(|m| ParseError {
                line,
                message: format!("{upper}: {m}"),
            })? {
                Some(v) => {
                    if cmd == "shell" && v.is_empty() {
                        return need_one();
                    }
                    Args::Json(v)
                }
                None if cmd == "shell" => {
                    return err(
                        line,
                        "SHELL requires the arguments to be in JSON form, e.g. SHELL [\"/bin/sh\", \"-c\"]",
                    );
                }
                None => Args::Shell(rest.to_string()),
            }
        }
        "add" | "copy" | "volume" => {
            let args = match json_array(rest).map_err(|m| ParseError {
                line,
                message: format!("{upper}: {m}"),
            })? {
                Some(v) => Args::Json(v),
                None => Args::Words(split_blank(rest)),
            };
            let n = args.list().map_or(0, |l| l.len());
            if cmd == "volume" && n == 0 {
                return need_one();
            }
            if cmd != "volume" && n < 2 {
                return err(
                    line,
                    format!(
                        "{upper} requires at least two arguments (sources and a destination), but got {n}"
                    ),
                );
            }
            args
        }
        "from" => {
            let words = split_blank(rest);
            match words.len() {
                1 => {}
                3 if words[1].eq_ignore_ascii_case("as") => {}
                0 => return need_one(),
                3 => {
                    return err(
                        line,
                        format!(
                            "FROM: expected 'AS' before the stage name, found '{}'",
                            words[1]
                        ),
                    );
                }
                _ => {
                    return err(
                        line,
                        "FROM requires either one or three arguments: FROM image [AS name]",
                    );
                }
            }
            Args::Words(words)
        }
        "expose" => {
            if rest.is_empty() {
                return need_one();
            }
            Args::Words(split_blank(rest))
        }
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return need_one();
            }
            for w in &words {
                if w.starts_with('=') {
                    return err(line, format!("ARG names can not be blank: {w}"));
                }
            }
            Args::Words(words)
        }
        "env" | "label" => {
            name_values(rest, &upper, escape).map_err(|m| ParseError { line, message: m })?
        }
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if rest.is_empty() {
                return err(line, format!("{upper} requires exactly one argument"));
            }
            Args::Text(rest.to_string())
        }
        "healthcheck" => {
            if rest.is_empty() {
                Args::Empty
            } else {
                let (kind, after) = match rest.find(char::is_whitespace) {
                    Some(p) => (&rest[..p], rest[p..].trim_start()),
                    None => (rest, ""),
                };
                let cmd = if after.is_empty() {
                    None
                } else {
                    Some(Box::new(
                        match json_array(after).map_err(|m| ParseError {
                            line,
                            message: format!("HEALTHCHECK: {m}"),
                        })? {
                            Some(v) => Args::Json(v),
                            None => Args::Shell(after.to_string()),
                        },
                    ))
                };
                Args::Healthcheck {
                    kind: kind.to_string(),
                    cmd,
                }
            }
        }
        "onbuild" => {
            if rest.is_empty() {
                return need_one();
            }
            let inner = parse_instruction(rest, line, end_line, escape)?;
            match inner.cmd.as_str() {
                "onbuild" => {
                    return err(line, "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
                }
                "from" | "maintainer" => {
                    return err(
                        line,
                        format!("{} isn't allowed as an ONBUILD trigger", inner.name()),
                    );
                }
                _ => {}
            }
            Args::OnBuild(Box::new(inner))
        }
        _ => unreachable!("instruction list and dispatch agree"),
    };
    Ok(Instruction {
        line,
        end_line,
        cmd,
        flags,
        args,
        original: original.to_string(),
        heredocs: Vec::new(),
    })
}

fn split_blank(s: &str) -> Vec<String> {
    s.split(is_blank)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// `Ok(Some(list))` when `s` is a JSON array of strings, `Ok(None)` when it
/// is not JSON (then it is the shell form), `Err` for a JSON array holding
/// something else than strings.
fn json_array(s: &str) -> Result<Option<Vec<String>>, String> {
    let s = s.trim_start();
    if !s.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(s) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            other => Err(format!(
                "when using JSON array syntax, arrays must be comprised of strings only (found {other})"
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Leading `--flag[=value]` words. Quotes in a flag group characters and are
/// removed, a backslash makes the next character literal; a lone `--` ends
/// the flags. Returns the flags and the rest of the text.
fn extract_flags(s: &str) -> (Vec<String>, &str) {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let n = cs.len();
    let mut flags = Vec::new();
    let mut k = 0;
    loop {
        while k < n && cs[k].1.is_whitespace() {
            k += 1;
        }
        if k >= n {
            return (flags, "");
        }
        if !(cs[k].1 == '-' && k + 1 < n && cs[k + 1].1 == '-') {
            return (flags, &s[cs[k].0..]);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut quoted = false;
        loop {
            if k >= n {
                if word != "--" && (quoted || !word.is_empty()) {
                    flags.push(word);
                }
                return (flags, "");
            }
            let c = cs[k].1;
            k += 1;
            match quote {
                None if c.is_whitespace() => {
                    if word == "--" {
                        return (flags, &s[cs[k - 1].0..]);
                    }
                    if quoted || !word.is_empty() {
                        flags.push(word);
                    }
                    break;
                }
                None if c == '\'' || c == '"' => {
                    quote = Some(c);
                    quoted = true;
                }
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if k < n {
                        word.push(cs[k].1);
                        k += 1;
                    } else {
                        quote = None;
                    }
                }
                _ => word.push(c),
            }
        }
    }
}

/// Splits at unquoted whitespace, keeping quotes and escapes in the words
/// (an escape at the very end is dropped). Inside single quotes the escape
/// character is not special.
pub fn parse_words(s: &str, escape: char) -> Vec<String> {
    let cs: Vec<char> = s.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut quote: Option<char> = None;
    let mut k = 0;
    while k < cs.len() {
        let c = cs[k];
        k += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if in_word && (quoted || !word.is_empty()) {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                    quoted = false;
                    continue;
                }
                in_word = true;
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    quoted = true;
                }
                if c == escape {
                    if k == cs.len() {
                        continue;
                    }
                    word.push(c);
                    word.push(cs[k]);
                    k += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    if k == cs.len() {
                        quote = None;
                        continue;
                    }
                    word.push(c);
                    word.push(cs[k]);
                    k += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (quoted || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV / LABEL arguments: `K V` (legacy, one pair, the value is the rest of
/// the line) when the first word has no `=`, else `K=V` words.
fn name_values(rest: &str, upper: &str, escape: char) -> Result<Args, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(format!("{upper} requires at least one argument"));
    }
    if !words[0].contains('=') {
        let (key, value) = match rest.find(is_blank) {
            Some(p) => (&rest[..p], rest[p..].trim_start_matches(is_blank)),
            None => (rest, ""),
        };
        if value.is_empty() {
            return Err(format!(
                "{upper} must have two arguments: {upper} {key}=value (or the old form {upper} {key} value)"
            ));
        }
        return Ok(Args::KeyValues(vec![(
            key.to_string(),
            value.to_string(),
            String::new(),
        )]));
    }
    let mut pairs = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
            ));
        };
        if k.is_empty() {
            return Err(format!("{upper} names can not be blank: {w:?}"));
        }
        pairs.push((k.to_string(), v.to_string(), "=".to_string()));
    }
    Ok(Args::KeyValues(pairs))
}

/// The heredoc markers of an instruction line: words `[n]<<[-]WORD`.
/// Returns (name, expand, strip_tabs) for each.
fn heredoc_markers(
    text: &str,
    escape: char,
    line: usize,
) -> Result<Vec<(String, bool, bool)>, ParseError> {
    use super::shell::Lex;
    let none = |_: &str| None;
    let mut out = Vec::new();
    for w in parse_words(text, escape) {
        let digits = w.bytes().take_while(u8::is_ascii_digit).count();
        let Some(r) = w[digits..].strip_prefix("<<") else {
            continue;
        };
        let (strip_tabs, r) = match r.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, r),
        };
        if r.is_empty() || r.contains('<') {
            continue;
        }
        let lex = Lex {
            skip_unset_env: true,
            ..Lex::new(escape)
        };
        let cooked = lex.process_words(r, &none).map_err(|e| ParseError {
            line,
            message: format!("heredoc marker <<{r}: {e}"),
        })?;
        if cooked.len() != 1 {
            continue;
        }
        let raw = Lex {
            raw_quotes: true,
            ..lex
        }
        .process_words(r, &none)
        .map_err(|e| ParseError {
            line,
            message: format!("heredoc marker <<{r}: {e}"),
        })?;
        let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
        let expand = raw.len() == 1 && quotes(&raw[0]) == quotes(&cooked[0]);
        out.push((
            cooked.into_iter().next().unwrap_or_default(),
            expand,
            strip_tabs,
        ));
    }
    Ok(out)
}

/// The closest instruction name, for "did you mean".
fn suggest(word: &str) -> Option<&'static str> {
    let w: Vec<char> = word.chars().collect();
    INSTRUCTIONS
        .iter()
        .map(|cand| (edit_distance(&w, &cand.chars().collect::<Vec<_>>()), *cand))
        .filter(|(d, cand)| *d <= 2.min(cand.len() / 2).max(1))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------- validate

/// Flags each instruction accepts (names without `--`).
fn allowed_flags(cmd: &str) -> &'static [&'static str] {
    match cmd {
        "from" => &["platform"],
        "run" => &["mount", "network", "security", "device"],
        "copy" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "add" => &[
            "chown",
            "chmod",
            "link",
            "keep-git-dir",
            "checksum",
            "exclude",
            "unpack",
        ],
        "healthcheck" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

/// Whether `name` is a valid build stage name.
pub fn valid_stage_name(name: &str) -> bool {
    let mut cs = name.chars();
    cs.next().is_some_and(|c| c.is_ascii_alphabetic())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Dockerfile {
    /// The checks the builder needs before it starts: FROM comes first (only
    /// ARG may precede it), stage names are valid and unique, every flag is
    /// one its instruction knows, HEALTHCHECK is `NONE` or `CMD command`.
    pub fn validate(&self) -> Result<(), ParseError> {
        let mut seen_from = false;
        let mut stages: Vec<&str> = Vec::new();
        for ins in &self.instructions {
            if !seen_from && ins.cmd != "arg" && ins.cmd != "from" {
                return err(
                    ins.line,
                    format!(
                        "{} before the first FROM: only ARG may come before FROM",
                        ins.name()
                    ),
                );
            }
            if ins.cmd == "from" {
                seen_from = true;
                if let Args::Words(w) = &ins.args
                    && w.len() == 3
                {
                    let name = w[2].as_str();
                    if !valid_stage_name(name) {
                        return err(
                            ins.line,
                            format!(
                                "invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
                            ),
                        );
                    }
                    if stages.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                        return err(ins.line, format!("duplicate stage name {name:?}"));
                    }
                    stages.push(name);
                }
            }
            validate_instruction(ins)?;
        }
        if !seen_from {
            return err(
                self.instructions.last().map_or(1, |i| i.line),
                "no FROM instruction: a Dockerfile must start a build stage with FROM",
            );
        }
        Ok(())
    }
}

fn validate_instruction(ins: &Instruction) -> Result<(), ParseError> {
    let allowed = allowed_flags(&ins.cmd);
    for f in &ins.flags {
        let name = f.trim_start_matches('-');
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        if !allowed.contains(&name) {
            return err(
                ins.line,
                format!("unknown flag for {}: --{name}", ins.name()),
            );
        }
    }
    match &ins.args {
        Args::Empty if ins.cmd == "healthcheck" => err(
            ins.line,
            "HEALTHCHECK requires at least one argument: NONE or CMD command",
        ),
        Args::Healthcheck { kind, cmd } => {
            match (kind.to_ascii_uppercase().as_str(), cmd.as_deref()) {
                ("NONE", None) if ins.flags.is_empty() => Ok(()),
                ("NONE", _) => err(
                    ins.line,
                    "HEALTHCHECK NONE takes no other arguments or flags",
                ),
                ("CMD", Some(Args::Json(v))) if !v.is_empty() => Ok(()),
                ("CMD", Some(Args::Shell(s))) if !s.is_empty() => Ok(()),
                ("CMD", _) => err(ins.line, "HEALTHCHECK CMD requires a command"),
                (other, _) => err(
                    ins.line,
                    format!("unknown type for HEALTHCHECK: {other} (use CMD or NONE)"),
                ),
            }
        }
        Args::OnBuild(inner) => validate_instruction(inner),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- dump

/// Quotes like Go's `strconv.Quote` (the reference corpus' format).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || ('\u{f0000}'..).contains(&c))
}

fn push_args(out: &mut String, args: &Args) {
    let mut item = |s: &str| {
        out.push(' ');
        out.push_str(&go_quote(s));
    };
    match args {
        Args::Json(v) | Args::Words(v) => v.iter().for_each(|s| item(s)),
        Args::Shell(s) | Args::Text(s) => item(s),
        Args::KeyValues(kv) => {
            for (k, v, sep) in kv {
                item(k);
                item(v);
                item(sep);
            }
        }
        Args::Healthcheck { kind, cmd } => {
            item(kind);
            if let Some(cmd) = cmd {
                push_args(out, cmd);
            }
        }
        Args::OnBuild(inner) => {
            out.push(' ');
            out.push_str(&to_sexpr(inner));
        }
        Args::Empty => {}
    }
}

/// The instruction as one line of the reference corpus' `result` files:
/// `(cmd ["--flag" ...] "arg" ...)`.
pub fn to_sexpr(ins: &Instruction) -> String {
    let mut out = String::from("(");
    out.push_str(&ins.cmd);
    if !ins.flags.is_empty() {
        out.push_str(" [");
        let quoted: Vec<String> = ins.flags.iter().map(|f| go_quote(f)).collect();
        out.push_str(&quoted.join(" "));
        out.push(']');
    }
    push_args(&mut out, &ins.args);
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Instruction {
        let df = parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(df.instructions.len(), 1, "{src:?}");
        df.instructions.into_iter().next().unwrap()
    }

    fn sx(src: &str) -> Vec<String> {
        parse(src)
            .unwrap()
            .instructions
            .iter()
            .map(to_sexpr)
            .collect()
    }

    fn fails(src: &str) -> ParseError {
        match parse(src) {
            Ok(df) => panic!("{src:?} parsed: {df:?}"),
            Err(e) => e,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn from_forms() {
        let i = one("FROM busybox");
        assert_eq!(
            (i.cmd.as_str(), i.line, &i.args),
            ("from", 1, &Args::Words(s(&["busybox"])))
        );
        assert_eq!(one("from scratch").args, Args::Words(s(&["scratch"])));
        let i = one("FROM --platform=linux/amd64 golang:1.22 AS build");
        assert_eq!(i.flags, s(&["--platform=linux/amd64"]));
        assert_eq!(i.flag("platform"), Some("linux/amd64"));
        assert_eq!(i.args, Args::Words(s(&["golang:1.22", "AS", "build"])));
        assert_eq!(one("FROM x as y").args, Args::Words(s(&["x", "as", "y"])));
        let df = parse("ARG V=1\nFROM busybox:${V}\nARG V\n").unwrap();
        assert_eq!(
            df.instructions
                .iter()
                .map(|i| i.cmd.as_str())
                .collect::<Vec<_>>(),
            ["arg", "from", "arg"]
        );
        df.validate().unwrap();
    }

    #[test]
    fn run_cmd_entrypoint_forms() {
        assert_eq!(
            one("RUN echo hi && ls").args,
            Args::Shell("echo hi && ls".into())
        );
        assert_eq!(
            one("RUN [\"echo\", \"hi\"]").args,
            Args::Json(s(&["echo", "hi"]))
        );
        assert_eq!(one("CMD [\"sh\"]").args, Args::Json(s(&["sh"])));
        assert_eq!(one("CMD sleep 1").args, Args::Shell("sleep 1".into()));
        assert_eq!(one("CMD []").args, Args::Json(vec![]));
        assert_eq!(
            one("ENTRYPOINT [\"/init\", \"-v\"]").args,
            Args::Json(s(&["/init", "-v"]))
        );
        assert_eq!(
            one("ENTRYPOINT exec /init").args,
            Args::Shell("exec /init".into())
        );
        let i = one("RUN --mount=type=cache,target=/root/.cache --network=none make");
        assert_eq!(
            i.flags,
            s(&["--mount=type=cache,target=/root/.cache", "--network=none"])
        );
        assert_eq!(i.flag_values("mount"), ["type=cache,target=/root/.cache"]);
        assert_eq!(i.args, Args::Shell("make".into()));
    }

    #[test]
    fn invalid_json_falls_back_to_shell_form() {
        assert_eq!(one("CMD ['a','b']").args, Args::Shell("['a','b']".into()));
        assert_eq!(one("CMD [\"a\"").args, Args::Shell("[\"a\"".into()));
        let e = fails("FROM x\nCMD [\"a\", 1]");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("strings only"), "{e}");
    }

    #[test]
    fn shell_instruction_needs_json() {
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]").args,
            Args::Json(s(&["/bin/bash", "-c"]))
        );
        let e = fails("FROM x\n\nSHELL /bin/bash -c");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("JSON"), "{e}");
        assert_eq!(fails("SHELL []").line, 1);
    }

    #[test]
    fn env_both_forms() {
        assert_eq!(
            one("ENV A 1 2").args,
            Args::KeyValues(vec![("A".into(), "1 2".into(), "".into())])
        );
        assert_eq!(
            one("ENV A=1 B=\"x y\" C=a\\ b").args,
            Args::KeyValues(vec![
                ("A".into(), "1".into(), "=".into()),
                ("B".into(), "\"x y\"".into(), "=".into()),
                ("C".into(), "a\\ b".into(), "=".into()),
            ])
        );
        let e = fails("FROM x\nENV PATH");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("two arguments"), "{e}");
        assert_eq!(
            fails("FROM x\nENV").message,
            "ENV requires at least one argument"
        );
        assert!(fails("ENV A=1 B").message.contains("can't find ="));
        assert!(fails("ENV =1").message.contains("blank"));
    }

    #[test]
    fn arg_label_expose_workdir_user_volume_stopsignal_maintainer() {
        assert_eq!(one("ARG V").args, Args::Words(s(&["V"])));
        assert_eq!(
            one("ARG V=1 W=\"a b\"").args,
            Args::Words(s(&["V=1", "W=\"a b\""]))
        );
        assert_eq!(
            one("LABEL a=b \"c d\"=e").args,
            Args::KeyValues(vec![
                ("a".into(), "b".into(), "=".into()),
                ("\"c d\"".into(), "e".into(), "=".into())
            ])
        );
        assert_eq!(
            one("EXPOSE 80 443/tcp").args,
            Args::Words(s(&["80", "443/tcp"]))
        );
        assert_eq!(one("WORKDIR /my dir").args, Args::Text("/my dir".into()));
        assert_eq!(one("USER 1000:1000").args, Args::Text("1000:1000".into()));
        assert_eq!(
            one("VOLUME [\"/a\", \"/b c\"]").args,
            Args::Json(s(&["/a", "/b c"]))
        );
        assert_eq!(one("VOLUME /a /b").args, Args::Words(s(&["/a", "/b"])));
        assert_eq!(one("STOPSIGNAL SIGKILL").args, Args::Text("SIGKILL".into()));
        assert_eq!(
            one("MAINTAINER me <me@x>").args,
            Args::Text("me <me@x>".into())
        );
        for bad in [
            "ARG",
            "LABEL",
            "EXPOSE",
            "WORKDIR",
            "USER",
            "VOLUME",
            "STOPSIGNAL",
            "MAINTAINER",
            "FROM",
            "RUN",
            "CMD",
            "ENTRYPOINT",
            "ONBUILD",
        ] {
            let e = fails(&format!("FROM x\n# c\n{bad}\n"));
            assert_eq!(e.line, 3, "{bad}");
            assert!(
                e.message.starts_with(bad) && e.message.contains("argument"),
                "{e}"
            );
        }
    }

    #[test]
    fn copy_and_add() {
        let i = one("COPY --from=build --chown=1:1 --chmod=755 --link /out/app /usr/bin/");
        assert_eq!(i.flag("from"), Some("build"));
        assert_eq!(i.flag("chown"), Some("1:1"));
        assert_eq!(i.flag("chmod"), Some("755"));
        assert_eq!(i.flag("link"), Some(""));
        assert_eq!(i.args, Args::Words(s(&["/out/app", "/usr/bin/"])));
        assert_eq!(
            one("COPY a b *.txt /dst/").args,
            Args::Words(s(&["a", "b", "*.txt", "/dst/"]))
        );
        assert_eq!(
            one("ADD [\"a b\", \"/c\"]").args,
            Args::Json(s(&["a b", "/c"]))
        );
        assert_eq!(
            one("ADD app.tar.gz /").args,
            Args::Words(s(&["app.tar.gz", "/"]))
        );
        let e = fails("FROM x\nCOPY onlyone");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("at least two"), "{e}");
        assert_eq!(one("COPY --from=\"a b\" x y").flags, s(&["--from=a b"]));
    }

    #[test]
    fn healthcheck_forms() {
        let i =
            one("HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/ || exit 1");
        assert_eq!(i.flags, s(&["--interval=5s", "--retries=3"]));
        assert_eq!(
            i.args,
            Args::Healthcheck {
                kind: "CMD".into(),
                cmd: Some(Box::new(Args::Shell(
                    "curl -f http://localhost/ || exit 1".into()
                )))
            }
        );
        assert_eq!(
            one("HEALTHCHECK CMD [\"true\"]").args,
            Args::Healthcheck {
                kind: "CMD".into(),
                cmd: Some(Box::new(Args::Json(s(&["true"]))))
            }
        );
        assert_eq!(
            one("HEALTHCHECK NONE").args,
            Args::Healthcheck {
                kind: "NONE".into(),
                cmd: None
            }
        );
        assert_eq!(one("HEALTHCHECK").args, Args::Empty);
        let v = |src: &str| parse(&format!("FROM x\n{src}")).unwrap().validate();
        v("HEALTHCHECK NONE").unwrap();
        v("HEALTHCHECK --timeout=3s CMD true").unwrap();
        assert!(
            v("HEALTHCHECK")
                .unwrap_err()
                .message
                .contains("at least one")
        );
        assert!(
            v("HEALTHCHECK CMD")
                .unwrap_err()
                .message
                .contains("requires a command")
        );
        assert!(
            v("HEALTHCHECK CONNECT TCP 7000")
                .unwrap_err()
                .message
                .contains("unknown type")
        );
        assert!(v("HEALTHCHECK --interval=1s NONE").is_err());
    }

    #[test]
    fn onbuild_nests() {
        let i = one("ONBUILD RUN [\"echo\", \"x\"]");
        let Args::OnBuild(inner) = &i.args else {
            panic!()
        };
        assert_eq!(
            (inner.cmd.as_str(), &inner.args),
            ("run", &Args::Json(s(&["echo", "x"])))
        );
        assert_eq!(to_sexpr(&i), "(onbuild (run \"echo\" \"x\"))");
        assert_eq!(
            to_sexpr(&one("ONBUILD COPY --chown=1 . /")),
            "(onbuild (copy [\"--chown=1\"] \".\" \"/\"))"
        );
        assert!(
            fails("ONBUILD ONBUILD RUN x")
                .message
                .contains("isn't allowed")
        );
        assert!(fails("ONBUILD FROM x").message.contains("isn't allowed"));
        assert!(
            fails("ONBUILD NOPE x")
                .message
                .contains("unknown instruction")
        );
    }

    #[test]
    fn comments_blank_lines_and_line_numbers() {
        let df =
            parse("# hello\n\nFROM x\n\n  # indented comment\nRUN a \\\n  b\n\nCMD c\n").unwrap();
        let got: Vec<(usize, usize, &str)> = df
            .instructions
            .iter()
            .map(|i| (i.line, i.end_line, i.cmd.as_str()))
            .collect();
        assert_eq!(got, [(3, 3, "from"), (6, 7, "run"), (9, 9, "cmd")]);
        assert_eq!(df.instructions[1].original, "RUN a   b");
        assert!(df.directives.is_empty());
    }

    #[test]
    fn continuations() {
        assert_eq!(sx("RUN a \\\n# comment\n\n  b"), ["(run \"a   b\")"]);
        assert_eq!(sx("RUN a \\  \nb"), ["(run \"a b\")"]);
        assert_eq!(
            sx("ENV C x\\\\\nENV D y"),
            ["(env \"C\" \"x\\\\\\\\\" \"\")", "(env \"D\" \"y\" \"\")"]
        );
        assert_eq!(
            sx("FROM x\nRUN something \\"),
            ["(from \"x\")", "(run \"something\")"]
        );
        assert_eq!(
            sx("FROM x\r\nRUN a \\\r\n b\r\n"),
            ["(from \"x\")", "(run \"a  b\")"]
        );
    }

    #[test]
    fn directives() {
        let df =
            parse("# syntax=docker/dockerfile:1\n# escape=`\n\nFROM x\nRUN dir C:\\ `\n  /s\n")
                .unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.directives,
            vec![
                ("syntax".into(), "docker/dockerfile:1".into()),
                ("escape".into(), "`".into())
            ]
        );
        assert_eq!(df.instructions[1].args, Args::Shell("dir C:\\   /s".into()));
        // Not at the top: a plain comment.
        let df = parse("FROM x\n# escape=`\nRUN a \\\nb").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.instructions[1].args, Args::Shell("a b".into()));
        let e = fails("# escape=x\nFROM x");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("invalid escape"));
        let e = fails("# syntax=a\n# syntax=b\nFROM x");
        assert_eq!(e.line, 2);
        // A BOM before the directives.
        assert_eq!(parse("\u{feff}# escape=`\nFROM x").unwrap().escape, '`');
        // check directive
        assert_eq!(
            parse("# check=skip=all\nFROM x").unwrap().directives,
            vec![("check".into(), "skip=all".into())]
        );
    }

    #[test]
    fn heredocs() {
        let df = parse("FROM x\nRUN <<EOF\necho $A\n  b\nEOF\nRUN <<-'END' cat\n\tone\n\t\ttwo\n\tEND\nCOPY <<a.txt <<\"b.txt\" /dst/\nA\na.txt\nB\nb.txt\nCMD x\n").unwrap();
        let r = &df.instructions[1];
        assert_eq!((r.line, r.end_line), (2, 5));
        assert_eq!(r.args, Args::Shell("<<EOF".into()));
        assert_eq!(
            r.heredocs,
            vec![Heredoc {
                name: "EOF".into(),
                content: "echo $A\n  b\n".into(),
                expand: true,
                strip_tabs: false
            }]
        );
        let r = &df.instructions[2];
        assert_eq!((r.line, r.end_line), (6, 9));
        assert_eq!(
            r.heredocs,
            vec![Heredoc {
                name: "END".into(),
                content: "one\ntwo\n".into(),
                expand: false,
                strip_tabs: true
            }]
        );
        let c = &df.instructions[3];
        assert_eq!(c.args, Args::Words(s(&["<<a.txt", "<<\"b.txt\"", "/dst/"])));
        assert_eq!(
            c.heredocs
                .iter()
                .map(|h| (h.name.as_str(), h.content.as_str(), h.expand))
                .collect::<Vec<_>>(),
            [("a.txt", "A\n", true), ("b.txt", "B\n", false)]
        );
        assert_eq!((c.line, c.end_line), (10, 14));
        assert_eq!(df.instructions[4].line, 15);
        // Not heredocs: exec form, inside quotes, glued to a word, other instructions.
        assert!(one("RUN [\"cat\", \"<<EOF\"]").heredocs.is_empty());
        assert!(one("RUN echo \"<<EOF\"").heredocs.is_empty());
        assert!(one("RUN cat<<EOF").heredocs.is_empty());
        assert!(one("CMD cat <<EOF").heredocs.is_empty());
        let e = fails("FROM x\nRUN <<EOF\nno end\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated heredoc"));
    }

    #[test]
    fn unknown_instruction_and_empty_files() {
        let e = fails("FROM x\nRUN a\nFORM y\n");
        assert_eq!(e.line, 3);
        assert_eq!(e.message, "unknown instruction: FORM (did you mean FROM?)");
        assert_eq!(
            e.to_string(),
            "Dockerfile line 3: unknown instruction: FORM (did you mean FROM?)"
        );
        assert_eq!(fails("FROM x\nBLAH y").message, "unknown instruction: BLAH");
        assert!(fails("").message.contains("no instructions"));
        assert!(
            fails("# only\n\n# comments\n")
                .message
                .contains("no instructions")
        );
        assert!(
            fails("FROM x\nCMD [\"a\", [\"b\"]]")
                .message
                .contains("strings only")
        );
    }

    #[test]
    fn flags_and_double_dash() {
        let i = one("COPY --doit=true -- --weird /tmp/");
        assert_eq!(i.flags, s(&["--doit=true"]));
        assert_eq!(i.args, Args::Words(s(&["--weird", "/tmp/"])));
        let v = parse("FROM x\nCOPY --doit=true a b")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(v.line, 2);
        assert_eq!(v.message, "unknown flag for COPY: --doit");
    }

    #[test]
    fn validate_stages() {
        parse("ARG A\nFROM x AS build\nRUN a\nFROM y\nCOPY --from=build /a /b\n")
            .unwrap()
            .validate()
            .unwrap();
        let e = parse("RUN a\nFROM x").unwrap().validate().unwrap_err();
        assert_eq!(e.line, 1);
        assert!(parse("FROM x AS 1bad").unwrap().validate().is_err());
        let e = parse("FROM x AS a\nFROM y AS A")
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(fails("FROM a b").message.contains("one or three"));
        assert!(fails("FROM a b c").message.contains("AS"));
        assert!(parse("ARG A").unwrap().validate().is_err());
    }

    #[test]
    fn sexpr_format() {
        let i = one("HEALTHCHECK --timeout=3s CMD [\"foo\"]");
        assert_eq!(
            to_sexpr(&i),
            "(healthcheck [\"--timeout=3s\"] \"CMD\" \"foo\")"
        );
        assert_eq!(to_sexpr(&one("CMD []")), "(cmd)");
        assert_eq!(to_sexpr(&one("HEALTHCHECK")), "(healthcheck)");
        assert_eq!(
            go_quote("a\u{0}b\t♥\u{7f}\u{a0}"),
            "\"a\\x00b\\t♥\\x7f\\u00a0\""
        );
    }
}
