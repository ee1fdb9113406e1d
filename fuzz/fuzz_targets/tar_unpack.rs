#![no_main]
//! The layer extractor's promise: whatever the archive, nothing is written
//! outside the target directory. The input is a tar, plain or (when the
//! first byte is odd) gzip-wrapped by the target so that the fuzzer's tar
//! mutations also reach the decompressing path; raw gzip or zstd input is
//! sniffed like any layer.
//!
//! Layout, on a private size-limited tmpfs (see common):
//!   berth-fuzz-tar/root/              unpacked into, emptied after each input
//!   berth-fuzz-tar/outside/sentinel   must stay exactly as it was
//! The scratch path is fixed so that seeds can aim absolute symlinks and
//! hard links at `outside` too.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

/// What must not change: (path, dev, ino, mode, uid, gid, nlink, size, mtime, ctime).
type Stamp = Vec<(String, u64, u64, u32, u32, u32, u64, u64, i64, i64, i64, i64)>;

fn stamp(top: &Path) -> Stamp {
    let mut out = Vec::new();
    for p in [top.to_path_buf(), top.join("outside"), top.join("outside/sentinel")] {
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{} is gone: {e}", p.display()));
        out.push((p.display().to_string(), m.dev(), m.ino(), m.mode(), m.uid(), m.gid(), m.nlink(), m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()));
    }
    let mut names: Vec<String> = std::fs::read_dir(top).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["outside", "root"], "something was written next to the target");
    let inside: Vec<_> = std::fs::read_dir(top.join("outside")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(inside, ["sentinel"], "something was written into the sibling directory");
    assert_eq!(std::fs::read(top.join("outside/sentinel")).unwrap(), b"untouched\n");
    out
}

fn setup() -> (&'static Path, &'static Stamp) {
    static S: OnceLock<Stamp> = OnceLock::new();
    let top = common::scratch("tar");
    let before = S.get_or_init(|| {
        common::empty_dir(top);
        std::fs::create_dir(top.join("root")).unwrap();
        std::fs::create_dir(top.join("outside")).unwrap();
        std::fs::write(top.join("outside/sentinel"), b"untouched\n").unwrap();
        stamp(top)
    });
    (top, before)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (top, before) = setup();
    let Some((&mode, tar)) = data.split_first() else { return };
    let gz;
    let input: &[u8] = if mode & 1 == 1 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(tar).unwrap();
        gz = e.finish().unwrap();
        &gz
    } else {
        tar
    };
    let root = top.join("root");
    if let Ok(src) = berth::image::tar::decompressed(input) {
        let _ = berth::image::tar::unpack(src, &root);
    }
    assert!(stamp(top) == *before, "the sibling directory or the parent changed:\n{:?}\n{:?}", before, stamp(top));
    common::empty_dir(&root);
});
