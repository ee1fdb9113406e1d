//! The Dockerfile parser and the shell-word expander against the reference
//! implementation's own corpus (moby/buildkit, see
//! ../shared/testdata/buildkit-dockerfile/README.md), read at run time.
//!
//! Every corpus test counts its cases, prints `passed/total` and the names of
//! the failing cases, and fails if any case fails.

use std::collections::BTreeMap;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use berth::build::dockerfile::{self, Args, to_sexpr};
use berth::build::shell;

fn corpus() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/buildkit-dockerfile"
    ));
    assert!(
        dir.join("README.md").is_file(),
        "reference corpus missing at {}",
        dir.display()
    );
    dir
}

/// The case directories under `sub`, sorted by name.
fn cases(sub: &str) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(corpus().join(sub))
        .unwrap_or_else(|e| panic!("{sub}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

fn report(corpus: &str, total: usize, failures: &[(String, String)]) {
    let passed = total - failures.len();
    eprintln!("{corpus}: {passed}/{total} passed");
    for (name, why) in failures {
        eprintln!("  FAIL {name}: {why}");
    }
    assert!(total > 0, "{corpus}: no cases found");
    assert!(
        failures.is_empty(),
        "{corpus}: {passed}/{total} passed; failing: {}",
        failures
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ------------------------------------------------------------ S-expressions

/// One element of a result line: `(name [flags] "arg" ... (nested))`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sx {
    List(Vec<Sx>),
    Flags(Vec<String>),
    Str(String),
    Atom(String),
}

/// Reads a Go-quoted string starting at the opening quote.
fn go_unquote(cs: &[char], pos: &mut usize) -> Result<String, String> {
    let mut bytes: Vec<u8> = Vec::new();
    let push = |bytes: &mut Vec<u8>, c: char| {
        let mut b = [0u8; 4];
        bytes.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    };
    *pos += 1;
    let hex = |cs: &[char], pos: &mut usize, n: usize| -> Result<u32, String> {
        let s: String = cs
            .get(*pos..*pos + n)
            .ok_or("short escape")?
            .iter()
            .collect();
        *pos += n;
        u32::from_str_radix(&s, 16).map_err(|e| format!("bad escape {s}: {e}"))
    };
    loop {
        let c = *cs.get(*pos).ok_or("unterminated string")?;
        *pos += 1;
        match c {
            '"' => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            '\\' => {
                let e = *cs.get(*pos).ok_or("unterminated escape")?;
                *pos += 1;
                match e {
                    'a' => bytes.push(7),
                    'b' => bytes.push(8),
                    'f' => bytes.push(12),
                    'n' => bytes.push(b'\n'),
                    'r' => bytes.push(b'\r'),
                    't' => bytes.push(b'\t'),
                    'v' => bytes.push(11),
                    '\\' | '"' | '\'' => push(&mut bytes, e),
                    'x' => bytes.push(hex(cs, pos, 2)? as u8),
                    'u' => push(
                        &mut bytes,
                        char::from_u32(hex(cs, pos, 4)?).ok_or("bad \\u")?,
                    ),
                    'U' => push(
                        &mut bytes,
                        char::from_u32(hex(cs, pos, 8)?).ok_or("bad \\U")?,
                    ),
                    '0'..='7' => {
                        let s: String = cs
                            .get(*pos - 1..*pos + 2)
                            .ok_or("short octal")?
                            .iter()
                            .collect();
                        *pos += 2;
                        bytes.push(u8::from_str_radix(&s, 8).map_err(|e| e.to_string())?);
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            c => push(&mut bytes, c),
        }
    }
}

fn skip_ws(cs: &[char], pos: &mut usize) {
    while cs.get(*pos).is_some_and(|c| c.is_whitespace()) {
        *pos += 1;
    }
}

fn read_sx(cs: &[char], pos: &mut usize) -> Result<Sx, String> {
    skip_ws(cs, pos);
    match cs.get(*pos) {
        None => Err("unexpected end".into()),
        Some('(') => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                skip_ws(cs, pos);
                match cs.get(*pos) {
                    Some(')') => {
                        *pos += 1;
                        return Ok(Sx::List(items));
                    }
                    None => return Err("unterminated list".into()),
                    _ => items.push(read_sx(cs, pos)?),
                }
            }
        }
        Some('[') => {
            *pos += 1;
            let mut flags = Vec::new();
            loop {
                skip_ws(cs, pos);
                match cs.get(*pos) {
                    Some(']') => {
                        *pos += 1;
                        return Ok(Sx::Flags(flags));
                    }
                    Some('"') => flags.push(go_unquote(cs, pos)?),
                    other => return Err(format!("unexpected {other:?} in flags")),
                }
            }
        }
        Some('"') => Ok(Sx::Str(go_unquote(cs, pos)?)),
        Some(_) => {
            let start = *pos;
            while cs
                .get(*pos)
                .is_some_and(|c| !c.is_whitespace() && !"()[]\"".contains(*c))
            {
                *pos += 1;
            }
            Ok(Sx::Atom(cs[start..*pos].iter().collect()))
        }
    }
}

/// Parses one whole result line; whitespace between elements is not
/// significant.
fn sexpr(line: &str) -> Result<Sx, String> {
    let cs: Vec<char> = line.chars().collect();
    let mut pos = 0;
    let sx = read_sx(&cs, &mut pos)?;
    skip_ws(&cs, &mut pos);
    if pos != cs.len() {
        return Err(format!("trailing text after position {pos}"));
    }
    Ok(sx)
}

#[test]
fn sexpr_reader_reads_go_quoting() {
    let sx = sexpr(r#"(cmd ["--a=1" "--b"] "x\ty\"" "\x00\u00e9" (run "z"))"#).unwrap();
    assert_eq!(
        sx,
        Sx::List(vec![
            Sx::Atom("cmd".into()),
            Sx::Flags(vec!["--a=1".into(), "--b".into()]),
            Sx::Str("x\ty\"".into()),
            Sx::Str("\u{0}é".into()),
            Sx::List(vec![Sx::Atom("run".into()), Sx::Str("z".into())]),
        ])
    );
}

// ------------------------------------------------------------ parser corpus

fn check_positive(dir: &Path) -> Result<usize, String> {
    let src = fs::read_to_string(dir.join("Dockerfile")).map_err(|e| e.to_string())?;
    let result = fs::read_to_string(dir.join("result")).map_err(|e| e.to_string())?;
    let expected: Vec<&str> = result.lines().filter(|l| !l.trim().is_empty()).collect();
    let df = dockerfile::parse(&src).map_err(|e| format!("rejected: {e}"))?;
    let got: Vec<String> = df.instructions.iter().map(to_sexpr).collect();
    let mut exact = 0;
    for (i, (want, have)) in expected.iter().zip(&got).enumerate() {
        let w = sexpr(want).map_err(|e| format!("result line {}: {e}", i + 1))?;
        let h = sexpr(have).map_err(|e| format!("our line {}: {e}: {have}", i + 1))?;
        if w != h {
            return Err(format!(
                "instruction {}:\n      want {want}\n      got  {have}",
                i + 1
            ));
        }
        exact += usize::from(want.trim() == have);
    }
    if expected.len() != got.len() {
        return Err(format!(
            "{} instructions, result has {}",
            got.len(),
            expected.len()
        ));
    }
    Ok(exact)
}

#[test]
fn parser_testfiles_match_results() {
    let cases = cases("parser/testfiles");
    let mut failures = Vec::new();
    let (mut lines, mut exact) = (0, 0);
    for (name, dir) in &cases {
        match check_positive(dir) {
            Ok(n) => {
                exact += n;
                lines += fs::read_to_string(dir.join("result"))
                    .unwrap()
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .count();
            }
            Err(why) => failures.push((name.clone(), why)),
        }
    }
    eprintln!(
        "parser/testfiles: {exact}/{lines} result lines of the passing cases are also byte-identical"
    );
    report("parser/testfiles", cases.len(), &failures);
}

#[test]
fn parser_testfiles_negative_are_rejected() {
    let cases = cases("parser/testfiles-negative");
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let src = fs::read_to_string(dir.join("Dockerfile")).unwrap();
        match dockerfile::parse(&src) {
            Ok(df) => failures.push((
                name.clone(),
                format!("accepted ({} instructions)", df.instructions.len()),
            )),
            Err(e) => eprintln!("  ok {name}: {e}"),
        }
    }
    report("parser/testfiles-negative", cases.len(), &failures);
}

// ------------------------------------------------------------ shell corpus

/// The environment of the reference's envVarTest runs (the values the cases
/// expect: $PWD is /home, $SHELL is bash, $KOREAN is 한국어, $NULL is set
/// and empty).
fn env_var_test_env(name: &str) -> Option<String> {
    match name {
        "PWD" => Some("/home".into()),
        "SHELL" => Some("bash".into()),
        "KOREAN" => Some("한국어".into()),
        "NULL" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn shell_env_var_test() {
    let text = fs::read_to_string(corpus().join("shell/envVarTest")).unwrap();
    let (mut total, mut windows_only) = (0, 0);
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 3, "envVarTest line {}: {line:?}", n + 1);
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if platform == "W" {
            windows_only += 1;
            continue;
        }
        assert!(
            platform == "A" || platform == "U",
            "envVarTest line {}: platform {platform}",
            n + 1
        );
        total += 1;
        let got = shell::expand(input, &env_var_test_env, '\\');
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(v), e) => e != "error" && v == e,
            _ => false,
        };
        if !ok {
            failures.push((
                format!("line {}: {input}", n + 1),
                format!("want {expected:?}, got {got:?}"),
            ));
        }
    }
    eprintln!("shell/envVarTest: {windows_only} Windows-only (W) cases not run");
    report("shell/envVarTest", total, &failures);
}

#[test]
fn shell_words_test() {
    let text = fs::read_to_string(corpus().join("shell/wordsTest")).unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let rest = rest.trim_start_matches(' ');
            let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
            env.insert(k.to_string(), v.to_string());
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields.len(), 2, "wordsTest line {}: {line:?}", n + 1);
        let input = fields[0].trim();
        let expected: Vec<&str> = fields[1].trim_start_matches(' ').split(',').collect();
        total += 1;
        let lookup = |name: &str| env.get(name).cloned();
        let got = shell::split_words(input, &lookup, '\\');
        let ok = match &got {
            Ok(words) => words
                .iter()
                .map(String::as_str)
                .eq(expected.iter().copied()),
            Err(_) => expected == ["error"],
        };
        if !ok {
            failures.push((
                format!("line {}: {input}", n + 1),
                format!("want {expected:?}, got {got:?}"),
            ));
        }
    }
    report("shell/wordsTest", total, &failures);
}

// ------------------------------------------------------------ robustness

/// xorshift64*: deterministic, fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&[u8]] = &[
    b"\\",
    b"\\\n",
    b"`",
    b"`\n",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"#",
    b"# escape=`\n",
    b"# syntax=x\n",
    b"[",
    b"]",
    b"\"",
    b"'",
    b"[\"a\", 1]",
    b"$",
    b"${",
    b"}",
    b"${A:-",
    b"${A:+x}",
    b"${#A}",
    b"${A##*/}",
    b"${A/x/y}",
    b"<<EOF",
    b"<<-'EOF'\n",
    b"\nEOF\n",
    b"--",
    b"--from=",
    b"=",
    b"ONBUILD ",
    b"HEALTHCHECK ",
    b"ENV ",
    b"\xc3\xa9",
    b"\xe2\x99\xa5",
    b"\xff",
    b"\x00",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if !data.is_empty() => {
                let p = rng.below(data.len());
                data[p] = if rng.below(2) == 0 {
                    rng.next() as u8
                } else {
                    const SPECIAL: &[u8] = b"\\`\"'[]{}$#<-=\n\t ";
                    SPECIAL[rng.below(SPECIAL.len())]
                };
            }
            1 => {
                let p = rng.below(data.len() + 1);
                data.truncate(p);
            }
            2 | 3 => {
                let lines: Vec<&[u8]> = data.split_inclusive(|b| *b == b'\n').collect();
                if lines.is_empty() {
                    continue;
                }
                let i = rng.below(lines.len());
                let mut out = Vec::with_capacity(data.len() * 2);
                for (k, l) in lines.iter().enumerate() {
                    out.extend_from_slice(l);
                    if k == i {
                        if rng.below(2) == 0 {
                            out.extend_from_slice(l); // duplicated line
                        } else {
                            out.extend_from_slice(lines[rng.below(lines.len())]); // a line from elsewhere
                        }
                    }
                }
                data = out;
            }
            4 => {
                let p = rng.below(data.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())];
                data.splice(p..p, t.iter().copied());
            }
            _ => {
                let lines: Vec<Vec<u8>> = data
                    .split_inclusive(|b| *b == b'\n')
                    .map(<[u8]>::to_vec)
                    .collect();
                if lines.is_empty() {
                    continue;
                }
                let drop = rng.below(lines.len());
                data = lines
                    .into_iter()
                    .enumerate()
                    .filter(|(k, _)| *k != drop)
                    .flat_map(|(_, l)| l)
                    .collect();
            }
        }
    }
    data
}

fn env_a(name: &str) -> Option<String> {
    (name == "A").then(|| "x/y z".to_string())
}

/// Parses, validates, dumps and expands every word, so all code paths run.
fn exercise(src: &str) {
    if let Ok(df) = dockerfile::parse(src) {
        let _ = df.validate();
        for ins in &df.instructions {
            let _ = to_sexpr(ins);
            let mut words: Vec<&str> = ins.flags.iter().map(String::as_str).collect();
            match &ins.args {
                Args::Json(v) | Args::Words(v) => words.extend(v.iter().map(String::as_str)),
                Args::Shell(s) | Args::Text(s) => words.push(s),
                Args::KeyValues(kv) => {
                    words.extend(kv.iter().flat_map(|(k, v, _)| [k.as_str(), v.as_str()]))
                }
                _ => {}
            }
            for w in words {
                let _ = shell::expand(w, &env_a, df.escape);
                let _ = shell::split_words(w, &env_a, df.escape);
            }
        }
    }
}

#[test]
fn parse_never_panics_on_mutations() {
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for sub in ["parser/testfiles", "parser/testfiles-negative"] {
        for (name, dir) in cases(sub) {
            seeds.push((name, fs::read(dir.join("Dockerfile")).unwrap()));
        }
    }
    let mut shell_seeds: Vec<Vec<u8>> = Vec::new();
    for f in ["shell/envVarTest", "shell/wordsTest"] {
        for line in fs::read_to_string(corpus().join(f)).unwrap().lines() {
            if let Some(input) = line
                .split('|')
                .nth(if f.ends_with("envVarTest") { 1 } else { 0 })
            {
                shell_seeds.push(input.trim().as_bytes().to_vec());
            }
        }
    }

    let mut rng = Rng(0x5eed_0fbe_2740_1234);
    let mut panics: Vec<String> = Vec::new();
    let mut runs = 0;
    const PER_FILE: usize = 120;
    for (name, seed) in &seeds {
        for k in 0..PER_FILE {
            let input = String::from_utf8_lossy(&mutate(&mut rng, seed)).into_owned();
            runs += 1;
            if catch_unwind(AssertUnwindSafe(|| exercise(&input))).is_err() && panics.len() < 20 {
                panics.push(format!("{name} mutation {k}: {input:?}"));
            }
        }
    }
    let mut shell_runs = 0;
    for seed in &shell_seeds {
        for _ in 0..8 {
            let input = String::from_utf8_lossy(&mutate(&mut rng, seed)).into_owned();
            shell_runs += 1;
            let r = catch_unwind(AssertUnwindSafe(|| {
                for esc in ['\\', '`'] {
                    let _ = shell::expand(&input, &env_a, esc);
                    let _ = shell::split_words(&input, &env_a, esc);
                }
            }));
            if r.is_err() && panics.len() < 20 {
                panics.push(format!("shell input {input:?}"));
            }
        }
    }
    eprintln!(
        "mutations: {runs} Dockerfiles from {} seeds, {shell_runs} shell words; {} panicked",
        seeds.len(),
        panics.len()
    );
    assert!(runs >= 3000, "only {runs} mutated Dockerfiles");
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
}
