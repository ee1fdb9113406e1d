//! An entry's ownership, permissions, time and xattrs, read from its header
//! and PAX records.

use std::io::{self, Read};

use nix::sys::time::TimeSpec;

use super::TarError;

const XATTR_PAX_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Ownership, permissions, time and xattrs of one entry, PAX overrides applied.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(super) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<Meta, TarError> {
    let bad = |what: &str, e: io::Error| TarError::BadEntry {
        entry: name.into(),
        detail: format!("invalid {what} field: {e}"),
    };
    let h = entry.header();
    let old = h.as_old();
    let mode = numeric(h.mode(), &old.mode).map_err(|e| bad("mode", e))? & 0o7777;
    let mut uid = numeric(h.uid(), &old.uid).map_err(|e| bad("uid", e))?;
    let mut gid = numeric(h.gid(), &old.gid).map_err(|e| bad("gid", e))?;
    let secs = numeric(h.mtime(), &old.mtime).map_err(|e| bad("mtime", e))?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(TarError::Read)? {
        for ext in exts {
            let ext = ext.map_err(|e| bad("pax", e))?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            match key {
                // PAX carries ids and times that do not fit the ustar fields.
                b"uid" => uid = parse_pax_u64(value).ok_or_else(|| bad("pax uid", other()))?,
                b"gid" => gid = parse_pax_u64(value).ok_or_else(|| bad("pax gid", other()))?,
                b"mtime" => mtime = parse_pax_time(value).unwrap_or(mtime),
                _ => {
                    if let Some(attr) = key.strip_prefix(XATTR_PAX_PREFIX) {
                        xattrs.push((attr.to_vec(), value.to_vec()));
                    }
                }
            }
        }
    }
    let id = |v: u64, what| u32::try_from(v).map_err(|_| bad(what, io::Error::other("too large")));
    Ok(Meta {
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mtime,
        xattrs,
    })
}

/// Some writers leave numeric fields blank (NUL or spaces) for 0; the tar
/// crate rejects those, so a blank raw field reads as the default.
pub(super) fn numeric<T: Default>(value: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    match value {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(T::default()),
        v => v,
    }
}

fn other() -> io::Error {
    io::Error::other("not a number")
}

fn parse_pax_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Parses a PAX time such as "1700000000.123456789" or "-1.5".
fn parse_pax_time(v: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut secs: i64 = whole.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut nanos: i64 = digits.parse().ok()?;
    if neg {
        // timespec wants a non-negative nanosecond part: -1.5 is -2 s + 0.5 s.
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    Some(TimeSpec::new(secs, nanos as _))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_time_parsing() {
        let t = parse_pax_time(b"-1.5").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (-2, 500_000_000));
        let t = parse_pax_time(b"12.000000001999").unwrap();
        assert_eq!((t.tv_sec(), t.tv_nsec()), (12, 1));
        assert!(parse_pax_time(b"12.x").is_none());
    }
}
