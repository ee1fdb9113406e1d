//! Parsers for the values users type, shared by the fronts (command line,
//! scripts, compose files, Dockerfiles) and the core: one meaning of "1m30s"
//! everywhere. Pure functions, tested beside.

use std::time::Duration;

/// A Go duration, as docker reads `--health-interval` and compose reads
/// `interval`: a sequence of decimal numbers with units ns, us (µs), ms, s,
/// m, h (`300ms`, `1.5s`, `1m30s`, `2h`). A bare number is `bare_unit`
/// (berth has always taken `--health-interval 500` as milliseconds and tc's
/// `--delay 50` likewise), or refused when None, as Go does except for "0".
pub fn duration(s: &str, bare_unit: Option<Duration>) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {s:?}: {why} (forms: 300ms, 1.5s, 1m30s, 2h)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    // Digits and a dot only: f64's parser would also take "inf", "NaN"
    // and "1e9", which no duration is.
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && let Ok(n) = t.parse::<f64>()
    {
        return match bare_unit {
            _ if n == 0.0 => Ok(Duration::ZERO),
            Some(u) => Duration::try_from_secs_f64(u.as_secs_f64() * n).map_err(|_| bad("too long")),
            None => Err(bad("a number needs a unit")),
        };
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if end == 0 {
            return Err(bad("expected a number"));
        }
        let n: f64 = rest[..end].parse().map_err(|_| bad("expected a number"))?;
        rest = &rest[end..];
        let uend = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let secs = match &rest[..uend] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(bad("a number needs a unit")),
            u => return Err(bad(&format!("unknown unit {u:?}"))),
        };
        rest = &rest[uend..];
        total += n * secs;
    }
    if !total.is_finite() || total > u64::MAX as f64 / 1e9 {
        return Err(bad("too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Milliseconds, the unit scripts and the store use; a bare number is ms.
pub fn duration_ms(s: &str) -> Result<u64, String> {
    duration(s, Some(Duration::from_millis(1))).map(|d| d.as_millis() as u64)
}

/// A byte size such as `64m`, `1g`, `512k` or `1048576` (units b, k, m, g,
/// as docker's `--memory`, `--shm-size` and tmpfs `size=`), above zero.
pub fn size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let how = || format!("invalid size {s:?}: use a number with an optional unit b, k, m or g (e.g. 64m)");
    // Digits and a dot only: not f64's "inf", "NaN" or "1e9".
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(how());
    }
    let v: f64 = num.parse().map_err(|_| how())?;
    if v * mult as f64 >= i64::MAX as f64 {
        return Err(format!("invalid size {s:?}: too large"));
    }
    if v <= 0.0 {
        return Err(format!("invalid size {s:?}: must be positive"));
    }
    Ok((v * mult as f64) as i64)
}

/// A memory limit: a size of at least 6m, as docker's --memory.
pub fn memory(s: &str) -> Result<i64, String> {
    let bytes = size(s)?;
    if bytes < 6 << 20 {
        return Err(format!("invalid size {s:?}: the minimum memory limit is 6m"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        let d = |s| duration(s, None).unwrap();
        assert_eq!(d("300ms"), Duration::from_millis(300));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d("1h2m3s4ms"), Duration::from_millis(3_723_004));
        assert_eq!(d("200us"), Duration::from_micros(200));
        assert_eq!(d("200µs"), Duration::from_micros(200));
        assert_eq!(d("5ns"), Duration::from_nanos(5));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d(".5m"), Duration::from_secs(30));
    }

    #[test]
    fn bare_numbers_take_the_callers_unit() {
        assert_eq!(duration("20", Some(Duration::from_millis(1))).unwrap(), Duration::from_millis(20));
        assert_eq!(duration_ms("1m").unwrap(), 60_000);
        assert_eq!(duration_ms("250").unwrap(), 250);
        assert!(duration("20", None).unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(memory("64m").unwrap(), 64 << 20);
        assert_eq!(memory("1g").unwrap(), 1 << 30);
        assert_eq!(memory("1.5GB").unwrap(), 3 << 29);
        assert!(memory("4m").unwrap_err().contains("minimum"));
        assert!(memory("lots").unwrap_err().contains("64m"));
    }

    #[test]
    fn mistakes_say_why() {
        for (s, why) in [("", "empty"), ("-1s", "negative"), ("5 parsecs", "unknown unit"), ("1x", "unknown unit"), ("m", "expected a number"), ("1.2.3s", "expected a number"), ("1s2", "needs a unit")] {
            let e = duration(s, None).unwrap_err();
            assert!(e.contains(why) && e.contains("1m30s"), "{s:?}: {e}");
        }
    }

    /// What a user types is any text: no input may panic, and a huge
    /// number is an error, not an overflow (the fuzz target `user_input`
    /// runs the same without end).
    #[test]
    fn no_input_panics() {
        let seeds = ["1m30s", "1.5h", "300ms", "64m", "1.5GB", "2562047h", "9223372036854775807", "1e400s", ".5m", "1µs", "0"];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for seed in seeds {
            for _ in 0..400 {
                let mut b: Vec<char> = seed.chars().collect();
                for _ in 0..1 + next() % 3 {
                    let pos = (next() as usize) % (b.len() + 1);
                    let c = "0123456789.-+hmsuµnkgbKMGB e9".chars().nth((next() % 29) as usize).unwrap();
                    match next() % 3 {
                        0 => b.insert(pos, c),
                        1 if pos < b.len() => b[pos] = c,
                        _ => b.truncate(pos),
                    }
                }
                let s: String = b.into_iter().collect();
                let _ = duration(&s, None);
                let _ = duration(&s, Some(Duration::from_secs(1)));
                let _ = duration_ms(&s);
                let _ = memory(&s);
            }
        }
        assert!(duration("99999999999999999999h", None).is_err());
        assert!(memory("99999999999999999999g").is_err());
    }
}
