//! Shared by the targets that write files: a scratch directory that a
//! hostile input cannot use to fill the machine's disk.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// Size of the scratch tmpfs. A tar can declare a sparse file of any size
/// in a few hundred bytes (see tar_unpack's notes); here that ends in ENOSPC,
/// which the code under test must report as an error like any other.
const SCRATCH_SIZE: &str = "size=64m";

/// `/tmp/berth-fuzz-NAME`, a private tmpfs seen only by this process.
///
/// The mount namespace is the calling thread's, so every later call must
/// come from the same thread: libFuzzer runs its inputs on the main thread,
/// and the namespace goes away with the process, so nothing is left mounted
/// on the host. Without root (no unshare), a plain directory is used and the
/// size limit is lost; that is said once on stderr.
pub fn scratch(name: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-fuzz-{name}"));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        let private = unshare(CloneFlags::CLONE_NEWNS)
            .and_then(|_| mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>))
            .and_then(|_| mount(Some("tmpfs"), &dir, Some("tmpfs"), MsFlags::empty(), Some(SCRATCH_SIZE)));
        if let Err(e) = private {
            eprintln!("berth-fuzz: no private tmpfs for {} ({e}); writes are not size-limited", dir.display());
        }
        dir
    })
}

/// Empties `dir` without following symlinks (std's remove_dir_all does not).
pub fn empty_dir(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("read scratch dir").flatten() {
        let p = e.path();
        let r = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        r.unwrap_or_else(|err| panic!("cannot clean {}: {err}", p.display()));
    }
}
