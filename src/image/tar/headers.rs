//! Follows the tar stream's headers as the bytes pass, to refuse an
//! extension header (GNU long name `L`, long link `K`, PAX `x`) larger than
//! [`MAX_EXTENSION`] before the tar crate reads it whole into memory: a
//! 20 GiB long name compresses to a few megabytes and would otherwise end
//! in an out-of-memory kill instead of an error.
//!
//! It walks the stream the way the tar crate does (a PAX `size` record
//! moves the next entry's end, GNU sparse extension blocks sit between a
//! header and its data) and goes quiet at the end-of-archive block or at a
//! block whose checksum is wrong, where the tar crate stops or fails on its
//! own. So it never refuses an archive the tar crate would read in
//! bounded memory.

use std::fmt;
use std::io::{self, Read};

use super::limits::human;

/// Largest extension header accepted. Names stop at PATH_MAX (4 KiB) and a
/// file's xattrs at one filesystem block on ext4 (64 KiB on others), so
/// no honest archive comes near.
pub const MAX_EXTENSION: u64 = 1 << 20;

const BLOCK: u64 = 512;

#[derive(Debug)]
pub struct ExtensionTooLarge {
    what: &'static str,
    size: u64,
}

impl fmt::Display for ExtensionTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the archive has a {} header of {}, above berth's limit of {} \
             (no real file name or attribute set is that large; a hostile archive?)",
            self.what,
            human(self.size),
            human(MAX_EXTENSION)
        )
    }
}

impl std::error::Error for ExtensionTooLarge {}

enum State {
    /// The next block at `next` is a header.
    Header,
    /// GNU sparse extension blocks follow; then `data` bytes of content.
    SparseExt { data: u64 },
    /// End of archive, or lost track: pass everything through.
    Quiet,
}

pub struct HeaderGuard<R> {
    inner: R,
    /// Stream offset of the next byte read.
    pos: u64,
    /// Offset of the next header (or sparse extension) block.
    next: u64,
    block: Vec<u8>,
    state: State,
    /// A PAX `x` header's body, kept while it passes: (start, end, bytes).
    pax: Option<(u64, u64, Vec<u8>)>,
    /// The `size` record of the last PAX header, for the next real entry.
    pax_size: Option<u64>,
}

impl<R> HeaderGuard<R> {
    pub fn new(inner: R) -> HeaderGuard<R> {
        HeaderGuard {
            inner,
            pos: 0,
            next: 0,
            block: Vec::with_capacity(BLOCK as usize),
            state: State::Header,
            pax: None,
            pax_size: None,
        }
    }

    fn see(&mut self, mut bytes: &[u8]) -> Result<(), ExtensionTooLarge> {
        while !bytes.is_empty() && !matches!(self.state, State::Quiet) {
            if self.pos < self.next {
                let k = (self.next - self.pos).min(bytes.len() as u64) as usize;
                if let Some((start, end, body)) = &mut self.pax {
                    let from = self.pos.max(*start);
                    let to = (self.pos + k as u64).min(*end);
                    if from < to {
                        body.extend_from_slice(
                            &bytes[(from - self.pos) as usize..(to - self.pos) as usize],
                        );
                    }
                }
                self.pos += k as u64;
                bytes = &bytes[k..];
                if let Some((_, end, body)) = &self.pax
                    && self.pos >= *end
                {
                    self.pax_size = tar::PaxExtensions::new(body)
                        .map_while(Result::ok)
                        .find(|e| e.key() == Ok("size"))
                        .and_then(|e| e.value().ok().and_then(|v| v.parse().ok()));
                    self.pax = None;
                }
                continue;
            }
            let k = (BLOCK as usize - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..k]);
            self.pos += k as u64;
            bytes = &bytes[k..];
            if self.block.len() == BLOCK as usize {
                let block = std::mem::take(&mut self.block);
                self.header(&block)?;
                self.block = block;
                self.block.clear();
            }
        }
        Ok(())
    }

    /// Called with a whole block once it has passed (`self.pos` is its end).
    fn header(&mut self, block: &[u8]) -> Result<(), ExtensionTooLarge> {
        let h = tar::Header::from_byte_slice(block);
        if let State::SparseExt { data } = self.state {
            // 21 sparse records of 24 bytes, then the "more follow" flag,
            // as tar::GnuExtSparseHeader lays it out.
            if block[504] != 1 {
                self.state = State::Header;
                self.next = self.pos + round(data);
            } else {
                self.next = self.pos;
            }
            return Ok(());
        }
        if block.iter().all(|b| *b == 0) || !checksum_ok(h) {
            self.state = State::Quiet;
            return Ok(());
        }
        let Ok(size) = h.entry_size() else {
            self.state = State::Quiet;
            return Ok(());
        };
        let kind = h.entry_type();
        let what = if kind.is_gnu_longname() {
            Some("GNU long name")
        } else if kind.is_gnu_longlink() {
            Some("GNU long link")
        } else if kind.is_pax_local_extensions() {
            Some("PAX")
        } else {
            None
        };
        if let Some(what) = what
            && size > MAX_EXTENSION
        {
            return Err(ExtensionTooLarge { what, size });
        }
        let extension = what.is_some() || kind.is_pax_global_extensions();
        let data = if extension {
            size
        } else {
            self.pax_size.take().unwrap_or(size)
        };
        if kind.is_pax_local_extensions() {
            self.pax = Some((self.pos, self.pos + size, Vec::with_capacity(size as usize)));
        }
        if kind.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended()) {
            self.state = State::SparseExt { data };
            self.next = self.pos;
        } else {
            self.next = self.pos + round(data);
        }
        Ok(())
    }
}

fn round(n: u64) -> u64 {
    n.div_ceil(BLOCK).saturating_mul(BLOCK)
}

fn checksum_ok(h: &tar::Header) -> bool {
    let b = h.as_bytes();
    let sum: u32 = b[..148].iter().chain(&b[156..]).map(|x| *x as u32).sum::<u32>() + 8 * 32;
    h.cksum().is_ok_and(|c| c == sum)
}

impl<R: Read> Read for HeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.see(&buf[..n])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use tar::{EntryType, Header};

    use super::super::test_archive::Ar;
    use super::*;

    /// Reads all of `data` through the guard in `chunk`-byte reads, then
    /// lists the tar crate's entries of the same bytes through a new guard.
    fn names(data: &[u8], chunk: usize) -> io::Result<Vec<String>> {
        let mut g = HeaderGuard::new(data);
        let mut buf = vec![0; chunk];
        while g.read(&mut buf)? > 0 {}
        let mut ar = tar::Archive::new(HeaderGuard::new(data));
        let mut out = Vec::new();
        for e in ar.entries()? {
            let e = e?;
            out.push(String::from_utf8_lossy(&e.path_bytes()).into_owned());
        }
        Ok(out)
    }

    fn long_name_header(size: u64) -> Header {
        let mut h = Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(EntryType::GNULongName);
        h.set_size(size);
        h.set_cksum();
        h
    }

    #[test]
    fn honest_archives_pass_in_any_read_size() {
        let long = "d/".repeat(1500) + "f";
        let mut ar = Ar::new();
        ar.file("a", b"hello")
            .pax(false, &[("path", b"p/with pax"), ("mtime", b"1")])
            .file("ignored-by-pax", b"x")
            .pax(true, &[("comment", &[b'c'; 3000])])
            .file("b", &[7; 1500]);
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_entry_type(EntryType::Regular);
        ar.0.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        ar.file("last", b"");
        let data = ar.bytes();
        for chunk in [1, 7, 512, 513, 65536] {
            let got = names(&data, chunk).unwrap();
            // The global PAX header is an entry of its own.
            assert_eq!(got.len(), 6, "{chunk}: {}", got.len());
            assert_eq!(got[1], "p/with pax");
            assert_eq!(got[4], long);
            assert_eq!(got[5], "last");
        }
    }

    #[test]
    fn a_huge_long_name_is_refused_before_it_is_read() {
        let h = long_name_header(20 << 30);
        // 20 GiB of name would follow; the guard must stop at the header.
        let stream = io::Cursor::new(h.as_bytes().to_vec()).chain(io::repeat(b'a'));
        let mut ar = tar::Archive::new(HeaderGuard::new(stream));
        let err = match ar.entries().unwrap().next() {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {:?}", other.map(|r| r.map(|_| ()))),
        };
        let msg = err.to_string();
        assert!(msg.contains("GNU long name header of 20 GiB"), "{msg}");
        assert!(msg.contains("limit of 1 MiB"), "{msg}");
    }

    #[test]
    fn a_pax_size_record_is_followed_to_the_next_header() {
        // The entry's own header says 0 bytes, PAX says 1000: a guard that
        // ignored PAX would take the data for a header and lose track, and
        // then miss the oversized long name after it.
        let mut ar = Ar::new();
        ar.pax(false, &[("size", b"1000")]);
        let mut h = Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..1].copy_from_slice(b"f");
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        h.set_cksum();
        ar.0.get_mut().extend_from_slice(h.as_bytes());
        // 1000 bytes of data that look like a header block of zeros, padded.
        ar.0.get_mut().extend_from_slice(&[0u8; 1024]);
        let mut data = ar.0.get_ref().clone();
        data.extend_from_slice(long_name_header(2 << 20).as_bytes());
        let mut g = HeaderGuard::new(&data[..]);
        let err = io::copy(&mut g, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("GNU long name header of 2 MiB"), "{err}");
    }

    #[test]
    fn sparse_extension_blocks_are_skipped() {
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..1].copy_from_slice(b"s");
            g.isextended[0] = 1;
            g.sparse[0].offset = *b"00000000000\0";
            g.sparse[0].numbytes = *b"00000001000\0";
            g.realsize = *b"00000010000\0";
        }
        h.set_entry_type(EntryType::GNUSparse);
        h.set_size(1024);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        let mut ext = [0u8; 512]; // one extension block, not extended further
        ext[..12].copy_from_slice(b"00000002000\0");
        ext[12..24].copy_from_slice(b"00000000024\0");
        data.extend_from_slice(&ext);
        data.extend_from_slice(&[0xAB; 1024]); // data, which is no header
        data.extend_from_slice(long_name_header(MAX_EXTENSION + 1).as_bytes());
        let err = io::copy(&mut HeaderGuard::new(&data[..]), &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("GNU long name header"), "{err}");
    }

    #[test]
    fn not_a_tar_passes_untouched() {
        let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let mut out = Vec::new();
        io::copy(&mut HeaderGuard::new(&junk[..]), &mut out).unwrap();
        assert_eq!(out, junk);
    }
}
