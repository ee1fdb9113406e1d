//! Bounds on what one archive may make berth do, so a hostile layer (a
//! decompression bomb, a million-level tree, names longer than the kernel
//! accepts) ends in a clear error instead of filling the disk, eating the
//! memory or running for hours.

use std::fmt;
use std::io::{self, Read};

/// Raises or lowers [`DEFAULT_MAX_LAYER_SIZE`], e.g. `64g` or `512m`.
pub const MAX_LAYER_SIZE_ENV: &str = "BERTH_MAX_LAYER_SIZE";

// Why a fixed cap rather than a compression ratio or a free-space check:
// a ratio refuses honest layers (sparse databases, zero-filled disk images
// compress a thousandfold), and free space changes while we write and is
// already reported by ENOSPC. What a bomb really costs is time spent
// inflating and writing; 32 GiB is above the largest real layers we know
// of (CUDA and model images reach 10-20 GB unpacked) and still stops a
// bomb of a few MB within minutes. The environment variable raises it for
// the rare genuine giant, or lowers it on a small disk.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 32 << 30;

/// Longest path the kernel takes, in bytes: PATH_MAX less its NUL. A
/// longer one cannot be named in one system call, neither by us nor by the
/// container's programs, so no working image has one.
pub const MAX_PATH_LEN: usize = 4095;

/// How long an entry path may be below `root`: we name files by their
/// full path, so the root's own length counts against [`MAX_PATH_LEN`].
/// Checked up front, it gives an error naming the limit instead of the
/// kernel's ENAMETOOLONG with a 4 KB path in it.
pub fn path_budget(root: &std::path::Path) -> usize {
    MAX_PATH_LEN.saturating_sub(root.as_os_str().len() + 1)
}

/// Deepest entry path accepted, in components. Resolving an entry costs
/// one lookup per level, so a tree thousands of levels deep costs time
/// quadratic in its depth; real trees (node_modules included) stay well
/// under a hundred levels.
pub const MAX_PATH_DEPTH: usize = 512;

/// The cap on uncompressed bytes of one archive: [`MAX_LAYER_SIZE_ENV`] or
/// the default.
pub fn max_layer_size() -> Result<u64, String> {
    match std::env::var(MAX_LAYER_SIZE_ENV) {
        Ok(v) => match crate::parse::memory(&v) {
            Ok(n) if n > 0 => Ok(n as u64),
            Ok(_) => Err(format!(
                "{MAX_LAYER_SIZE_ENV}={v}: the limit must be above zero"
            )),
            Err(e) => Err(format!("{MAX_LAYER_SIZE_ENV}={v}: {e}")),
        },
        Err(_) => Ok(DEFAULT_MAX_LAYER_SIZE),
    }
}

/// The error a [`Capped`] reader returns once the cap is passed.
#[derive(Debug)]
pub struct TooLarge {
    pub limit: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the archive holds more than {} uncompressed, berth's limit for one layer \
             (a decompression bomb?); set {MAX_LAYER_SIZE_ENV} to raise it",
            human(self.limit)
        )
    }
}

impl std::error::Error for TooLarge {}

/// Bytes as people write limits: 32 GiB, 64 MiB, or a plain count.
pub fn human(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

/// Passes at most `left` bytes through, then fails: counting the
/// decompressed stream itself also catches a bomb hidden where no entry
/// declares it (after the end-of-archive marker, which is still hashed,
/// or in padding).
pub struct Capped<R> {
    pub inner: R,
    pub left: u64,
    pub limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte more than allowed, so reaching exactly the cap
        // is fine and passing it is seen.
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                TooLarge { limit: self.limit },
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A long entry name cut for an error message: the start and the end,
/// which are what tell one entry from another.
pub fn shorten(name: &str) -> String {
    const KEEP: usize = 60;
    if name.len() <= 2 * KEEP + 20 {
        return name.to_string();
    }
    let mut head = KEEP;
    while !name.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = name.len() - KEEP;
    while !name.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}...{} ({} bytes)",
        &name[..head],
        &name[tail..],
        name.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_allows_exactly_the_limit_and_refuses_one_more() {
        let data = [0u8; 100];
        let mut ok = Capped {
            inner: &data[..],
            left: 100,
            limit: 100,
        };
        assert_eq!(io::copy(&mut ok, &mut io::sink()).unwrap(), 100);
        let mut over = Capped {
            inner: &data[..],
            left: 99,
            limit: 99,
        };
        let err = io::copy(&mut over, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(
            err.to_string().contains("more than 99 bytes uncompressed"),
            "{err}"
        );
    }

    #[test]
    fn human_sizes_and_short_names() {
        assert_eq!(human(32 << 30), "32 GiB");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1000), "1000 bytes");
        let long = "a/".repeat(200);
        let s = shorten(&long);
        assert!(s.len() < 160 && s.ends_with("(400 bytes)"), "{s}");
        assert_eq!(shorten("etc/passwd"), "etc/passwd");
    }
}
