//! Building test archives entry by entry, and looking at what was unpacked.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::{EntryType, Header};

use super::{TarError, UnpackStats, unpack};
use crate::testutil::TempDir;

pub(super) const MTIME: u64 = 1_600_000_000;

/// Builds archives entry by entry, writing names as raw bytes so that
/// hostile names (`..`, absolute, non-UTF-8) get through.
pub(super) struct Ar(pub(super) tar::Builder<Vec<u8>>);

impl Ar {
    pub(super) fn new() -> Ar {
        Ar(tar::Builder::new(Vec::new()))
    }

    pub(super) fn entry(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: Option<&[u8]>,
        data: &[u8],
        tweak: impl FnOnce(&mut Header),
    ) -> &mut Ar {
        let mut h = Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            g.name[..name.len()].copy_from_slice(name);
            if let Some(l) = link {
                g.linkname[..l.len()].copy_from_slice(l);
            }
        }
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        tweak(&mut h);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    pub(super) fn file(&mut self, name: &str, data: &[u8]) -> &mut Ar {
        self.entry(name.as_bytes(), EntryType::Regular, None, data, |_| {})
    }
    pub(super) fn dir(&mut self, name: &str) -> &mut Ar {
        self.entry(name.as_bytes(), EntryType::Directory, None, b"", |_| {})
    }
    pub(super) fn symlink(&mut self, name: &str, target: &str) -> &mut Ar {
        self.entry(
            name.as_bytes(),
            EntryType::Symlink,
            Some(target.as_bytes()),
            b"",
            |_| {},
        )
    }
    pub(super) fn hardlink(&mut self, name: &str, target: &str) -> &mut Ar {
        self.entry(
            name.as_bytes(),
            EntryType::Link,
            Some(target.as_bytes()),
            b"",
            |_| {},
        )
    }

    /// A PAX header ('x' local, 'g' global) with the given records.
    pub(super) fn pax(&mut self, global: bool, records: &[(&str, &[u8])]) -> &mut Ar {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {k}=").as_bytes());
            body.extend_from_slice(v);
            body.push(b'\n');
        }
        let mut h = Header::new_ustar();
        h.set_path("PaxHeaders/x").unwrap();
        h.set_entry_type(if global {
            EntryType::XGlobalHeader
        } else {
            EntryType::XHeader
        });
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.0.append(&h, &body[..]).unwrap();
        self
    }

    pub(super) fn bytes(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

pub(super) fn unpack_into(ar: &mut Ar, dest: &TempDir) -> Result<UnpackStats, TarError> {
    unpack(&ar.bytes()[..], dest.path())
}

pub(super) fn lgetxattr(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    xattr::get(path, name)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENODATA))
}

pub(super) fn is_whiteout(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let m = fs::symlink_metadata(path).unwrap();
    m.file_type().is_char_device() && m.rdev() == 0
}
