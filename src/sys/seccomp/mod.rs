//! Seccomp: compile an OCI seccomp profile into a classic BPF program, and
//! install it.
//!
//! berth does not link libseccomp; the profile is small enough to compile by
//! hand. The generated program has this shape:
//!
//! ```text
//!   ld  arch                 ; seccomp_data.arch
//!   jeq AUDIT_ARCH_<native>  ; else: ret KILL_PROCESS (no other ABI gets in)
//!   ld  nr
//!   jge 0x40000000           ; x86_64 only: x32 ABI -> ret ERRNO
//!   jge N ...                ; a binary search over the ranges of numbers
//!                            ; that share a verdict, each leaf jumping to
//!   ret <action> ...         ; its action, or to
//!   chain ...                ; one syscall's argument rules, in order
//! ```
//!
//! A syscall's verdict is what the first rule naming it, in profile order,
//! decides; a rule with argument conditions sends it to a chain that tests
//! them, falling through to the next rule's. Every jump is forward. Should a
//! profile's chains be too long for 8-bit jumps, or the program shorter in
//! the older shape, the rules are compiled as blocks in profile order
//! instead: a `jeq` per name, all jumping to a shared body that tests the
//! conditions and returns the rule's action; those jumps stay inside their
//! block, so they never overflow however long the program is.
//!
//! Semantics follow runc where the OCI spec is silent:
//! - syscall names unknown on this architecture are skipped (profiles list the
//!   syscalls of every architecture);
//! - `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` without `errnoRet` use `EPERM`;
//! - the conditions of one rule are ANDed, except when an argument index
//!   appears more than once: then each condition is a rule of its own (ORed),
//!   which is what runc does because libseccomp cannot AND two conditions on
//!   the same argument;
//! - `architectures` and `flags` are not used: the filter only admits the
//!   native ABI, and needs no filter flags.
//!
//! The parts: `compile` turns a profile into a program, `asm` resolves its
//! jumps, `syscalls` maps names to this architecture's numbers, and
//! `docker_profile` is the profile berth applies when the user names none.

mod asm;
mod compile;
mod docker_profile;
#[cfg(test)]
mod interpreter;
mod syscalls;

use std::fmt;
use std::io;

use oci_spec::runtime::LinuxSeccompAction;

pub use compile::compile;
pub use docker_profile::docker_default;
pub use syscalls::{AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64};

const MAX_INSNS: usize = libc::BPF_MAXINSNS as usize;

/// Everything that can go wrong while compiling or installing a filter.
#[derive(thiserror::Error, Debug)]
pub enum SeccompError {
    #[error(
        "seccomp filters are not supported on the {0} architecture (berth supports x86_64 and aarch64)"
    )]
    UnsupportedArch(&'static str),

    #[error(
        "seccomp action {action} for [{syscalls}] is not supported by berth (there is no seccomp agent)"
    )]
    UnsupportedAction {
        action: LinuxSeccompAction,
        syscalls: String,
    },

    #[error(
        "seccomp rule for [{syscalls}]: argument index {index} is out of range (syscalls have arguments 0 to 5)"
    )]
    ArgIndex { syscalls: String, index: usize },

    #[error("seccomp rule for [{syscalls}]: errno {errno} is too large (at most 65535)")]
    Errno { syscalls: String, errno: u32 },

    #[error(
        "seccomp program has {len} instructions, more than the kernel's limit of {MAX_INSNS}; shorten the profile"
    )]
    TooLong { len: usize },

    #[error("seccomp program is empty")]
    Empty,

    #[error("internal error: a seccomp jump over {distance} instructions does not fit in 8 bits")]
    JumpTooFar { distance: usize },

    #[error("prctl(PR_SET_SECCOMP) failed: {0}")]
    Install(io::Error),
}

// ---------------------------------------------------------------------------
// The program and its installation

/// A compiled seccomp filter, ready to install.
#[derive(Clone)]
pub struct Program(pub Vec<libc::sock_filter>);

impl Program {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Installs the filter on the calling thread; it is inherited by children
    /// and kept across `execve`.
    ///
    /// The caller must set `no_new_privs` first
    /// (`prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)`); without it the kernel only
    /// accepts a filter from a thread holding CAP_SYS_ADMIN.
    ///
    /// Meant for a freshly cloned child right before `execve`: it does not
    /// allocate and makes a single system call, so it is async-signal-safe.
    /// Compile the program before forking.
    pub fn install(&self) -> Result<(), SeccompError> {
        // Checked here because the kernel takes the length as a u16.
        if self.0.is_empty() {
            return Err(SeccompError::Empty);
        }
        if self.0.len() > MAX_INSNS {
            return Err(SeccompError::TooLong { len: self.0.len() });
        }
        let fprog = libc::sock_fprog {
            len: self.0.len() as libc::c_ushort,
            // The kernel only reads the filter; the field is *mut for C's sake.
            filter: self.0.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `fprog` points at `self.0`, which outlives the call; the
        // kernel copies the program before returning.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            // An OS error is stored inline: no allocation.
            return Err(SeccompError::Install(io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Program({} instructions)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs the default filter in a forked child and checks the kernel
    /// agrees with the interpreter.
    #[test]
    fn installed_filter_refuses_unshare() {
        // Built before fork: the child must not allocate (the test harness is
        // multithreaded, so only async-signal-safe calls are allowed there).
        let prog = compile(&docker_default(&[])).expect("default profile compiles");

        // SAFETY: the child only makes raw system calls and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            let code = unsafe { child_checks(&prog) };
            unsafe { libc::_exit(code) };
        }

        let mut status = 0;
        // SAFETY: plain waitpid on our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        let why = match code {
            0 => "ok",
            1 => "unshare(CLONE_NEWNS) did not fail with EPERM",
            2 => "clone3 did not fail with ENOSYS",
            3 => "mount did not fail with EPERM",
            4 => "getpid failed",
            10 => "PR_SET_NO_NEW_PRIVS failed",
            11 => "install failed",
            _ => "unexpected exit code",
        };
        assert_eq!(code, 0, "{why}");
    }

    unsafe fn child_checks(prog: &Program) -> i32 {
        let errno = || unsafe { *libc::__errno_location() };
        unsafe {
            if libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return 10;
            }
            if prog.install().is_err() {
                return 11;
            }
            if libc::getpid() <= 0 {
                return 4;
            }
            // As root this would succeed without the filter.
            if libc::unshare(libc::CLONE_NEWNS) != -1 || errno() != libc::EPERM {
                return 1;
            }
            // Without the filter: EFAULT/EINVAL for these bogus arguments.
            if libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) != -1
                || errno() != libc::ENOSYS
            {
                return 2;
            }
            let none = std::ptr::null::<libc::c_char>();
            if libc::mount(none, none, none, 0, std::ptr::null()) != -1 || errno() != libc::EPERM {
                return 3;
            }
            if libc::getpid() <= 0 {
                return 4;
            }
        }
        0
    }
}
