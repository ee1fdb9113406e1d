//! Thin, safe wrappers over the kernel. Nothing above `sys/` uses `unsafe`
//! or raw syscalls.

pub mod bpfdev;
pub mod caps;
pub mod delayline;
pub mod exe;
pub mod fuseoverlay;
pub mod cgroup;
pub mod mount;
pub mod net;
pub mod netlink;
pub mod nft;
pub mod proc;
pub mod pty;
pub mod rootfs;
pub mod seccomp;
pub mod stats;
pub mod xattr;

/// Writes `data` as the whole of the file at `path` over its old content,
/// in place. Truncating first (`fs::write`) would free the file's blocks
/// only to allocate them again, and on ext4 a truncate to zero also forces
/// a writeback at close; where the filesystem is mounted with `discard`
/// and no journal, the free waits for a TRIM as well. A reader may see the
/// file half rewritten, as it could see it empty with a truncate.
pub fn write_in_place(path: &std::path::Path, data: impl AsRef<[u8]>, create: bool) -> std::io::Result<()> {
    use std::io::Write;
    let data = data.as_ref();
    let mut f = std::fs::OpenOptions::new().write(true).create(create).truncate(false).open(path)?;
    f.write_all(data)?;
    if f.metadata()?.len() != data.len() as u64 {
        f.set_len(data.len() as u64)?;
    }
    Ok(())
}

/// The hex SHA-256 of a file's content (checkpoint manifests, migration
/// archives, a build's COPY sources).
pub fn sha256_file(p: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
