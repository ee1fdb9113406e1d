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
