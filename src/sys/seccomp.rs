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
//!   rule blocks, in profile order; the first block that matches returns
//!   ret <default action>
//! ```
//!
//! Each rule block tests the syscall number (one `jeq` per name, all jumping
//! to a shared body), then the argument conditions, then returns the rule's
//! action. Every jump is forward and stays inside its block, so the 8-bit
//! offsets of conditional jumps never overflow however long the program is.
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

use std::fmt;
use std::io;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// `AUDIT_ARCH_*` values from `<linux/audit.h>` (libc does not export them).
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// x86_64 syscalls with this bit set come from the x32 ABI.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Offsets into `struct seccomp_data` (nr: u32, arch: u32, ip: u64, args: [u64; 6]).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const MAX_ARGS: usize = 6;

/// At most this many syscall numbers share one rule block. It bounds the
/// longest jump in a block (numbers + 6 conditions + return) well under 255.
const MAX_NAMES_PER_BLOCK: usize = 128;

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

// ---------------------------------------------------------------------------
// Compilation

/// Compiles `profile` into a BPF program for the host architecture.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let native = NATIVE.ok_or(SeccompError::UnsupportedArch(std::env::consts::ARCH))?;

    let default_ret = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        || "the default action".to_string(),
    )?;

    let mut asm = Asm::default();

    // Any other ABI (i386 via int 0x80, arm32 compat) would see different
    // syscall numbers, so it must not get past this filter at all.
    asm.load(OFF_ARCH);
    let arch_ok = asm.label();
    asm.jump(libc::BPF_JEQ, native.audit_arch, To(arch_ok), Next);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.bind(arch_ok);

    asm.load(OFF_NR);
    if native.x32_abi {
        // x32 syscalls share AUDIT_ARCH_X86_64 but are numbered from
        // 0x40000000; none of our rules name them, so refuse them all.
        let x32_ret = match profile.default_action() {
            LinuxSeccompAction::ScmpActErrno => default_ret,
            _ => libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        };
        let not_x32 = asm.label();
        asm.jump(libc::BPF_JGE, X32_SYSCALL_BIT, Next, To(not_x32));
        asm.ret(x32_ret);
        asm.bind(not_x32);
    }

    // Whether the accumulator still holds the syscall number.
    let mut acc_is_nr = true;
    for rule in profile.syscalls().iter().flatten() {
        compile_rule(&mut asm, &native, rule, &mut acc_is_nr)?;
    }
    asm.ret(default_ret);

    let insns = asm.finish()?;
    if insns.len() > MAX_INSNS {
        return Err(SeccompError::TooLong { len: insns.len() });
    }
    Ok(Program(insns))
}

fn compile_rule(
    asm: &mut Asm,
    native: &Native,
    rule: &LinuxSyscall,
    acc_is_nr: &mut bool,
) -> Result<(), SeccompError> {
    let names = || rule.names().join(", ");
    let ret = action_ret(rule.action(), rule.errno_ret(), names)?;

    let mut nrs: Vec<u32> = Vec::new();
    for name in rule.names() {
        if let Some(nr) = native.syscall_nr(name)
            && !nrs.contains(&nr)
        {
            nrs.push(nr);
        }
    }
    if nrs.is_empty() {
        return Ok(()); // nothing this architecture knows
    }

    let args: &[LinuxSeccompArg] = rule.args().as_deref().unwrap_or(&[]);
    let mut seen = [false; MAX_ARGS];
    let mut repeated = false;
    for arg in args {
        let index = arg.index();
        if index >= MAX_ARGS {
            return Err(SeccompError::ArgIndex {
                syscalls: names(),
                index,
            });
        }
        repeated |= seen[index];
        seen[index] = true;
    }
    // One group of ANDed conditions, or (runc) one group per condition.
    let groups: Vec<&[LinuxSeccompArg]> = if repeated {
        args.chunks(1).collect()
    } else {
        vec![args]
    };

    for chunk in nrs.chunks(MAX_NAMES_PER_BLOCK) {
        for conds in &groups {
            emit_block(asm, chunk, conds, ret, acc_is_nr);
        }
    }
    Ok(())
}

/// One rule block: "if nr is one of `nrs` and all `conds` hold, return `ret`".
fn emit_block(
    asm: &mut Asm,
    nrs: &[u32],
    conds: &[LinuxSeccompArg],
    ret: u32,
    acc_is_nr: &mut bool,
) {
    if !*acc_is_nr {
        asm.load(OFF_NR);
    }
    let body = asm.label();
    let skip = asm.label();
    for (i, &nr) in nrs.iter().enumerate() {
        if i + 1 < nrs.len() {
            asm.jump(libc::BPF_JEQ, nr, To(body), Next);
        } else {
            asm.jump(libc::BPF_JEQ, nr, Next, To(skip));
        }
    }
    asm.bind(body);
    for cond in conds {
        emit_condition(asm, cond, skip);
    }
    asm.ret(ret);
    asm.bind(skip);
    // Conditions load argument words into the accumulator.
    *acc_is_nr = conds.is_empty();
}

/// Falls through when `cond` holds for the 64-bit argument, jumps to `fail`
/// otherwise. The high word decides unless it is equal, then the low word.
fn emit_condition(asm: &mut Asm, cond: &LinuxSeccompArg, fail: Label) {
    let lo_off = OFF_ARGS + 8 * cond.index() as u32; // little-endian: low word first
    let hi_off = lo_off + 4;
    let (v_hi, v_lo) = split(cond.value());
    let pass = asm.label();
    use libc::{BPF_JEQ, BPF_JGE, BPF_JGT};
    match cond.op() {
        LinuxSeccompOperator::ScmpCmpEq => {
            asm.load(hi_off);
            asm.jump(BPF_JEQ, v_hi, Next, To(fail));
            asm.load(lo_off);
            asm.jump(BPF_JEQ, v_lo, Next, To(fail));
        }
        LinuxSeccompOperator::ScmpCmpNe => {
            asm.load(hi_off);
            asm.jump(BPF_JEQ, v_hi, Next, To(pass));
            asm.load(lo_off);
            asm.jump(BPF_JEQ, v_lo, To(fail), Next);
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            asm.load(hi_off);
            asm.jump(BPF_JGT, v_hi, To(pass), Next);
            asm.jump(BPF_JEQ, v_hi, Next, To(fail));
            asm.load(lo_off);
            let op = if cond.op() == LinuxSeccompOperator::ScmpCmpGt {
                BPF_JGT
            } else {
                BPF_JGE
            };
            asm.jump(op, v_lo, Next, To(fail));
        }
        // a < v is !(a >= v), a <= v is !(a > v): BPF only has "greater" jumps.
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            asm.load(hi_off);
            asm.jump(BPF_JGT, v_hi, To(fail), Next);
            asm.jump(BPF_JEQ, v_hi, Next, To(pass));
            asm.load(lo_off);
            let op = if cond.op() == LinuxSeccompOperator::ScmpCmpLt {
                BPF_JGE
            } else {
                BPF_JGT
            };
            asm.jump(op, v_lo, To(fail), Next);
        }
        // As in libseccomp: `value` is the mask, `valueTwo` the expected bits.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let (m_hi, m_lo) = split(cond.value());
            let (d_hi, d_lo) = split(cond.value_two().unwrap_or(0));
            emit_masked_word(asm, hi_off, m_hi, d_hi, fail);
            emit_masked_word(asm, lo_off, m_lo, d_lo, fail);
        }
    }
    asm.bind(pass);
}

/// `(word & mask) == datum`, using `jset` for the common "none set" and
/// "this one bit set" forms.
fn emit_masked_word(asm: &mut Asm, off: u32, mask: u32, datum: u32, fail: Label) {
    if datum & !mask != 0 {
        asm.ja(fail); // bits outside the mask can never be equal
        return;
    }
    if mask == 0 {
        return; // 0 == 0, nothing to test
    }
    asm.load(off);
    if datum == 0 {
        asm.jump(libc::BPF_JSET, mask, To(fail), Next);
    } else if datum == mask && mask.is_power_of_two() {
        asm.jump(libc::BPF_JSET, mask, Next, To(fail));
    } else {
        asm.alu_and(mask);
        asm.jump(libc::BPF_JEQ, datum, Next, To(fail));
    }
}

fn split(v: u64) -> (u32, u32) {
    ((v >> 32) as u32, v as u32)
}

/// The `SECCOMP_RET_*` value for an OCI action.
fn action_ret(
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    what: impl Fn() -> String,
) -> Result<u32, SeccompError> {
    let errno = || {
        let errno = errno_ret.unwrap_or(libc::EPERM as u32);
        if errno > libc::SECCOMP_RET_DATA {
            return Err(SeccompError::Errno {
                syscalls: what(),
                errno,
            });
        }
        Ok(errno)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | errno()?,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | errno()?,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::UnsupportedAction {
                action,
                syscalls: what(),
            });
        }
    })
}

// ---------------------------------------------------------------------------
// A tiny assembler: forward jumps to labels, resolved into 8-bit offsets.

#[derive(Clone, Copy)]
struct Label(usize);

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
enum Target {
    Next,
    To(Label),
}
use Target::{Next, To};

enum Insn {
    Plain(libc::sock_filter),
    Jump {
        code: u32,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Ja(Label),
}

#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The label now points at the next instruction emitted.
    fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn plain(&mut self, code: u32, k: u32) {
        self.insns.push(Insn::Plain(libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    fn load(&mut self, offset: u32) {
        self.plain(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, offset);
    }

    fn alu_and(&mut self, k: u32) {
        self.plain(libc::BPF_ALU | libc::BPF_AND | libc::BPF_K, k);
    }

    fn ret(&mut self, k: u32) {
        self.plain(libc::BPF_RET | libc::BPF_K, k);
    }

    fn jump(&mut self, op: u32, k: u32, jt: Target, jf: Target) {
        self.insns.push(Insn::Jump {
            code: libc::BPF_JMP | op | libc::BPF_K,
            k,
            jt,
            jf,
        });
    }

    fn ja(&mut self, to: Label) {
        self.insns.push(Insn::Ja(to));
    }

    fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let offset = |pc: usize, label: Label| -> usize {
            let dest = self.labels[label.0].expect("seccomp: jump to an unbound label");
            // Every label is bound after the jumps to it (forward only).
            dest.checked_sub(pc + 1).expect("seccomp: backward jump")
        };
        let short = |pc: usize, target: Target| -> Result<u8, SeccompError> {
            match target {
                Next => Ok(0),
                To(label) => {
                    let distance = offset(pc, label);
                    u8::try_from(distance).map_err(|_| SeccompError::JumpTooFar { distance })
                }
            }
        };
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, insn) in self.insns.iter().enumerate() {
            out.push(match *insn {
                Insn::Plain(f) => f,
                Insn::Jump { code, k, jt, jf } => libc::sock_filter {
                    code: code as u16,
                    jt: short(pc, jt)?,
                    jf: short(pc, jf)?,
                    k,
                },
                Insn::Ja(label) => libc::sock_filter {
                    code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                    jt: 0,
                    jf: 0,
                    k: offset(pc, label) as u32,
                },
            });
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------
// Syscall names of the host architecture

struct Native {
    audit_arch: u32,
    /// The OCI name of the architecture, for profiles we generate.
    oci_arch: Arch,
    /// x86_64 also accepts x32 syscalls under the same audit arch.
    x32_abi: bool,
    /// ("SYS_<name>", number) pairs straight from libc.
    syscalls: &'static [(&'static str, libc::c_long)],
}

impl Native {
    fn syscall_nr(&self, name: &str) -> Option<u32> {
        let from_libc = self
            .syscalls
            .iter()
            .find(|(sys, _)| sys.strip_prefix("SYS_") == Some(name));
        if let Some(&(_, nr)) = from_libc {
            return Some(nr as u32);
        }
        UNIFIED_SYSCALLS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, nr)| nr)
    }
}

/// Syscalls added since Linux 5.1 have the same number on every architecture
/// but alpha. libc does not know the newest ones yet; they are listed here so
/// that profiles allowing them (default-deny profiles) keep working.
const UNIFIED_SYSCALLS: &[(&str, u32)] = &[
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
];

/// Builds `[("SYS_read", libc::SYS_read), ...]`.
macro_rules! syscall_table {
    ($($sys:ident),* $(,)?) => {
        &[$((stringify!($sys), libc::$sys)),*]
    };
}

#[cfg(all(
    target_arch = "x86_64",
    target_endian = "little",
    target_pointer_width = "64"
))]
#[rustfmt::skip] // keep the name table compact
const NATIVE: Option<Native> = Some(Native {
    audit_arch: AUDIT_ARCH_X86_64,
    oci_arch: Arch::ScmpArchX86_64,
    x32_abi: true,
    syscalls: syscall_table![
        SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat, SYS_poll,
        SYS_lseek, SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_rt_sigaction,
        SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_ioctl, SYS_pread64, SYS_pwrite64, SYS_readv,
        SYS_writev, SYS_access, SYS_pipe, SYS_select, SYS_sched_yield, SYS_mremap, SYS_msync,
        SYS_mincore, SYS_madvise, SYS_shmget, SYS_shmat, SYS_shmctl, SYS_dup, SYS_dup2,
        SYS_pause, SYS_nanosleep, SYS_getitimer, SYS_alarm, SYS_setitimer, SYS_getpid,
        SYS_sendfile, SYS_socket, SYS_connect, SYS_accept, SYS_sendto, SYS_recvfrom,
        SYS_sendmsg, SYS_recvmsg, SYS_shutdown, SYS_bind, SYS_listen, SYS_getsockname,
        SYS_getpeername, SYS_socketpair, SYS_setsockopt, SYS_getsockopt, SYS_clone, SYS_fork,
        SYS_vfork, SYS_execve, SYS_exit, SYS_wait4, SYS_kill, SYS_uname, SYS_semget, SYS_semop,
        SYS_semctl, SYS_shmdt, SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_fcntl,
        SYS_flock, SYS_fsync, SYS_fdatasync, SYS_truncate, SYS_ftruncate, SYS_getdents,
        SYS_getcwd, SYS_chdir, SYS_fchdir, SYS_rename, SYS_mkdir, SYS_rmdir, SYS_creat,
        SYS_link, SYS_unlink, SYS_symlink, SYS_readlink, SYS_chmod, SYS_fchmod, SYS_chown,
        SYS_fchown, SYS_lchown, SYS_umask, SYS_gettimeofday, SYS_getrlimit, SYS_getrusage,
        SYS_sysinfo, SYS_times, SYS_ptrace, SYS_getuid, SYS_syslog, SYS_getgid, SYS_setuid,
        SYS_setgid, SYS_geteuid, SYS_getegid, SYS_setpgid, SYS_getppid, SYS_getpgrp,
        SYS_setsid, SYS_setreuid, SYS_setregid, SYS_getgroups, SYS_setgroups, SYS_setresuid,
        SYS_getresuid, SYS_setresgid, SYS_getresgid, SYS_getpgid, SYS_setfsuid, SYS_setfsgid,
        SYS_getsid, SYS_capget, SYS_capset, SYS_rt_sigpending, SYS_rt_sigtimedwait,
        SYS_rt_sigqueueinfo, SYS_rt_sigsuspend, SYS_sigaltstack, SYS_utime, SYS_mknod,
        SYS_uselib, SYS_personality, SYS_ustat, SYS_statfs, SYS_fstatfs, SYS_sysfs,
        SYS_getpriority, SYS_setpriority, SYS_sched_setparam, SYS_sched_getparam,
        SYS_sched_setscheduler, SYS_sched_getscheduler, SYS_sched_get_priority_max,
        SYS_sched_get_priority_min, SYS_sched_rr_get_interval, SYS_mlock, SYS_munlock,
        SYS_mlockall, SYS_munlockall, SYS_vhangup, SYS_modify_ldt, SYS_pivot_root, SYS__sysctl,
        SYS_prctl, SYS_arch_prctl, SYS_adjtimex, SYS_setrlimit, SYS_chroot, SYS_sync, SYS_acct,
        SYS_settimeofday, SYS_mount, SYS_umount2, SYS_swapon, SYS_swapoff, SYS_reboot,
        SYS_sethostname, SYS_setdomainname, SYS_iopl, SYS_ioperm, SYS_init_module,
        SYS_delete_module, SYS_quotactl, SYS_nfsservctl, SYS_getpmsg, SYS_putpmsg,
        SYS_afs_syscall, SYS_tuxcall, SYS_security, SYS_gettid, SYS_readahead, SYS_setxattr,
        SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
        SYS_listxattr, SYS_llistxattr, SYS_flistxattr, SYS_removexattr, SYS_lremovexattr,
        SYS_fremovexattr, SYS_tkill, SYS_time, SYS_futex, SYS_sched_setaffinity,
        SYS_sched_getaffinity, SYS_set_thread_area, SYS_io_setup, SYS_io_destroy,
        SYS_io_getevents, SYS_io_submit, SYS_io_cancel, SYS_get_thread_area,
        SYS_lookup_dcookie, SYS_epoll_create, SYS_epoll_ctl_old, SYS_epoll_wait_old,
        SYS_remap_file_pages, SYS_getdents64, SYS_set_tid_address, SYS_restart_syscall,
        SYS_semtimedop, SYS_fadvise64, SYS_timer_create, SYS_timer_settime, SYS_timer_gettime,
        SYS_timer_getoverrun, SYS_timer_delete, SYS_clock_settime, SYS_clock_gettime,
        SYS_clock_getres, SYS_clock_nanosleep, SYS_exit_group, SYS_epoll_wait, SYS_epoll_ctl,
        SYS_tgkill, SYS_utimes, SYS_vserver, SYS_mbind, SYS_set_mempolicy, SYS_get_mempolicy,
        SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify,
        SYS_mq_getsetattr, SYS_kexec_load, SYS_waitid, SYS_add_key, SYS_request_key,
        SYS_keyctl, SYS_ioprio_set, SYS_ioprio_get, SYS_inotify_init, SYS_inotify_add_watch,
        SYS_inotify_rm_watch, SYS_migrate_pages, SYS_openat, SYS_mkdirat, SYS_mknodat,
        SYS_fchownat, SYS_futimesat, SYS_newfstatat, SYS_unlinkat, SYS_renameat, SYS_linkat,
        SYS_symlinkat, SYS_readlinkat, SYS_fchmodat, SYS_faccessat, SYS_pselect6, SYS_ppoll,
        SYS_unshare, SYS_set_robust_list, SYS_get_robust_list, SYS_splice, SYS_tee,
        SYS_sync_file_range, SYS_vmsplice, SYS_move_pages, SYS_utimensat, SYS_epoll_pwait,
        SYS_signalfd, SYS_timerfd_create, SYS_eventfd, SYS_fallocate, SYS_timerfd_settime,
        SYS_timerfd_gettime, SYS_accept4, SYS_signalfd4, SYS_eventfd2, SYS_epoll_create1,
        SYS_dup3, SYS_pipe2, SYS_inotify_init1, SYS_preadv, SYS_pwritev, SYS_rt_tgsigqueueinfo,
        SYS_perf_event_open, SYS_recvmmsg, SYS_fanotify_init, SYS_fanotify_mark, SYS_prlimit64,
        SYS_name_to_handle_at, SYS_open_by_handle_at, SYS_clock_adjtime, SYS_syncfs,
        SYS_sendmmsg, SYS_setns, SYS_getcpu, SYS_process_vm_readv, SYS_process_vm_writev,
        SYS_kcmp, SYS_finit_module, SYS_sched_setattr, SYS_sched_getattr, SYS_renameat2,
        SYS_seccomp, SYS_getrandom, SYS_memfd_create, SYS_kexec_file_load, SYS_bpf,
        SYS_execveat, SYS_userfaultfd, SYS_membarrier, SYS_mlock2, SYS_copy_file_range,
        SYS_preadv2, SYS_pwritev2, SYS_pkey_mprotect, SYS_pkey_alloc, SYS_pkey_free, SYS_statx,
        SYS_rseq, SYS_pidfd_send_signal, SYS_io_uring_setup, SYS_io_uring_enter,
        SYS_io_uring_register, SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig,
        SYS_fsmount, SYS_fspick, SYS_pidfd_open, SYS_clone3, SYS_close_range, SYS_openat2,
        SYS_pidfd_getfd, SYS_faccessat2, SYS_process_madvise, SYS_epoll_pwait2,
        SYS_mount_setattr, SYS_quotactl_fd, SYS_landlock_create_ruleset, SYS_landlock_add_rule,
        SYS_landlock_restrict_self, SYS_memfd_secret, SYS_process_mrelease, SYS_futex_waitv,
        SYS_set_mempolicy_home_node, SYS_fchmodat2, SYS_mseal,
    ],
});

#[cfg(all(
    target_arch = "aarch64",
    target_endian = "little",
    target_pointer_width = "64"
))]
#[rustfmt::skip] // keep the name table compact
const NATIVE: Option<Native> = Some(Native {
    audit_arch: AUDIT_ARCH_AARCH64,
    oci_arch: Arch::ScmpArchAarch64,
    x32_abi: false,
    syscalls: syscall_table![
        SYS_io_setup, SYS_io_destroy, SYS_io_submit, SYS_io_cancel, SYS_io_getevents,
        SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
        SYS_listxattr, SYS_llistxattr, SYS_flistxattr, SYS_removexattr, SYS_lremovexattr,
        SYS_fremovexattr, SYS_getcwd, SYS_lookup_dcookie, SYS_eventfd2, SYS_epoll_create1,
        SYS_epoll_ctl, SYS_epoll_pwait, SYS_dup, SYS_dup3, SYS_fcntl, SYS_inotify_init1,
        SYS_inotify_add_watch, SYS_inotify_rm_watch, SYS_ioctl, SYS_ioprio_set, SYS_ioprio_get,
        SYS_flock, SYS_mknodat, SYS_mkdirat, SYS_unlinkat, SYS_symlinkat, SYS_linkat,
        SYS_renameat, SYS_umount2, SYS_mount, SYS_pivot_root, SYS_nfsservctl, SYS_statfs,
        SYS_fstatfs, SYS_truncate, SYS_ftruncate, SYS_fallocate, SYS_faccessat, SYS_chdir,
        SYS_fchdir, SYS_chroot, SYS_fchmod, SYS_fchmodat, SYS_fchownat, SYS_fchown, SYS_openat,
        SYS_close, SYS_vhangup, SYS_pipe2, SYS_quotactl, SYS_getdents64, SYS_lseek, SYS_read,
        SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev,
        SYS_sendfile, SYS_pselect6, SYS_ppoll, SYS_signalfd4, SYS_vmsplice, SYS_splice,
        SYS_tee, SYS_readlinkat, SYS_newfstatat, SYS_fstat, SYS_sync, SYS_fsync, SYS_fdatasync,
        SYS_sync_file_range, SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime,
        SYS_utimensat, SYS_acct, SYS_capget, SYS_capset, SYS_personality, SYS_exit,
        SYS_exit_group, SYS_waitid, SYS_set_tid_address, SYS_unshare, SYS_futex,
        SYS_set_robust_list, SYS_get_robust_list, SYS_nanosleep, SYS_getitimer, SYS_setitimer,
        SYS_kexec_load, SYS_init_module, SYS_delete_module, SYS_timer_create,
        SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_settime, SYS_timer_delete,
        SYS_clock_settime, SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep,
        SYS_syslog, SYS_ptrace, SYS_sched_setparam, SYS_sched_setscheduler,
        SYS_sched_getscheduler, SYS_sched_getparam, SYS_sched_setaffinity,
        SYS_sched_getaffinity, SYS_sched_yield, SYS_sched_get_priority_max,
        SYS_sched_get_priority_min, SYS_sched_rr_get_interval, SYS_restart_syscall, SYS_kill,
        SYS_tkill, SYS_tgkill, SYS_sigaltstack, SYS_rt_sigsuspend, SYS_rt_sigaction,
        SYS_rt_sigprocmask, SYS_rt_sigpending, SYS_rt_sigtimedwait, SYS_rt_sigqueueinfo,
        SYS_rt_sigreturn, SYS_setpriority, SYS_getpriority, SYS_reboot, SYS_setregid,
        SYS_setgid, SYS_setreuid, SYS_setuid, SYS_setresuid, SYS_getresuid, SYS_setresgid,
        SYS_getresgid, SYS_setfsuid, SYS_setfsgid, SYS_times, SYS_setpgid, SYS_getpgid,
        SYS_getsid, SYS_setsid, SYS_getgroups, SYS_setgroups, SYS_uname, SYS_sethostname,
        SYS_setdomainname, SYS_getrlimit, SYS_setrlimit, SYS_getrusage, SYS_umask, SYS_prctl,
        SYS_getcpu, SYS_gettimeofday, SYS_settimeofday, SYS_adjtimex, SYS_getpid, SYS_getppid,
        SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_gettid, SYS_sysinfo, SYS_mq_open,
        SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive, SYS_mq_notify, SYS_mq_getsetattr,
        SYS_msgget, SYS_msgctl, SYS_msgrcv, SYS_msgsnd, SYS_semget, SYS_semctl, SYS_semtimedop,
        SYS_semop, SYS_shmget, SYS_shmctl, SYS_shmat, SYS_shmdt, SYS_socket, SYS_socketpair,
        SYS_bind, SYS_listen, SYS_accept, SYS_connect, SYS_getsockname, SYS_getpeername,
        SYS_sendto, SYS_recvfrom, SYS_setsockopt, SYS_getsockopt, SYS_shutdown, SYS_sendmsg,
        SYS_recvmsg, SYS_readahead, SYS_brk, SYS_munmap, SYS_mremap, SYS_add_key,
        SYS_request_key, SYS_keyctl, SYS_clone, SYS_execve, SYS_mmap, SYS_fadvise64,
        SYS_swapon, SYS_swapoff, SYS_mprotect, SYS_msync, SYS_mlock, SYS_munlock, SYS_mlockall,
        SYS_munlockall, SYS_mincore, SYS_madvise, SYS_remap_file_pages, SYS_mbind,
        SYS_get_mempolicy, SYS_set_mempolicy, SYS_migrate_pages, SYS_move_pages,
        SYS_rt_tgsigqueueinfo, SYS_perf_event_open, SYS_accept4, SYS_recvmmsg, SYS_wait4,
        SYS_prlimit64, SYS_fanotify_init, SYS_fanotify_mark, SYS_name_to_handle_at,
        SYS_open_by_handle_at, SYS_clock_adjtime, SYS_syncfs, SYS_setns, SYS_sendmmsg,
        SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_finit_module,
        SYS_sched_setattr, SYS_sched_getattr, SYS_renameat2, SYS_seccomp, SYS_getrandom,
        SYS_memfd_create, SYS_bpf, SYS_execveat, SYS_userfaultfd, SYS_membarrier, SYS_mlock2,
        SYS_copy_file_range, SYS_preadv2, SYS_pwritev2, SYS_pkey_mprotect, SYS_pkey_alloc,
        SYS_pkey_free, SYS_statx, SYS_rseq, SYS_pidfd_send_signal, SYS_io_uring_setup,
        SYS_io_uring_enter, SYS_io_uring_register, SYS_open_tree, SYS_move_mount, SYS_fsopen,
        SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_pidfd_open, SYS_clone3, SYS_close_range,
        SYS_openat2, SYS_pidfd_getfd, SYS_faccessat2, SYS_process_madvise, SYS_epoll_pwait2,
        SYS_mount_setattr, SYS_quotactl_fd, SYS_landlock_create_ruleset, SYS_landlock_add_rule,
        SYS_landlock_restrict_self, SYS_memfd_secret, SYS_process_mrelease, SYS_futex_waitv,
        SYS_set_mempolicy_home_node, SYS_mseal,
    ],
});

#[cfg(not(any(
    all(
        target_arch = "x86_64",
        target_endian = "little",
        target_pointer_width = "64"
    ),
    all(
        target_arch = "aarch64",
        target_endian = "little",
        target_pointer_width = "64"
    ),
)))]
const NATIVE: Option<Native> = None;

// ---------------------------------------------------------------------------
// berth's default profile

/// Syscalls Docker's default profile refuses whatever capabilities the
/// container holds (obsolete, host-wide or notoriously risky interfaces).
const ALWAYS_DENIED: &[&str] = &[
    "add_key",
    "create_module",
    "get_kernel_syms",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "nfsservctl",
    "query_module",
    "request_key",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Syscalls Docker refuses unless the container holds the capability. A
/// syscall listed under several capabilities is allowed by any of them.
/// `clone` with namespace flags and `clone3` belong to CAP_SYS_ADMIN too; they
/// need argument rules and are handled in `docker_default`.
const CAP_GATED: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "pivot_root",
            "quotactl",
            "quotactl_fd",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "finit_module", "init_module"],
    ),
    (
        "CAP_SYS_TIME",
        &["clock_adjtime", "clock_settime", "settimeofday", "stime"],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "move_pages",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The `clone` flags that create namespaces; Docker refuses them without
/// CAP_SYS_ADMIN (its mask 0x7E020000).
const CLONE_NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// berth's default seccomp profile, with the effect of Docker's: everything is
/// allowed except the syscalls above, which fail with EPERM unless one of
/// `added_caps` (capabilities held beyond Docker's default set, e.g.
/// "CAP_SYS_ADMIN"; "ALL" means all) unlocks them. Without CAP_SYS_ADMIN,
/// `clone` with namespace flags fails with EPERM and `clone3` with ENOSYS (its
/// flags live in memory a filter cannot read; libc then falls back to `clone`).
pub fn docker_default(added_caps: &[String]) -> LinuxSeccomp {
    let holds = |cap: &str| added_caps.iter().any(|held| same_cap(held, cap));

    let mut denied: Vec<&str> = ALWAYS_DENIED.to_vec();
    for (_, syscalls) in CAP_GATED {
        for &name in *syscalls {
            let unlocked = CAP_GATED
                .iter()
                .any(|(cap, calls)| calls.contains(&name) && holds(cap));
            if !unlocked && !denied.contains(&name) {
                denied.push(name);
            }
        }
    }

    let mut rules = vec![errno_rule(&denied, libc::EPERM, None)];
    if !holds("CAP_SYS_ADMIN") {
        rules.push(errno_rule(&["clone3"], libc::ENOSYS, None));
        // One rule per flag: any flag set refuses the call. Each rule stands
        // alone, so the profile means the same under runc/libseccomp.
        for &flag in CLONE_NAMESPACE_FLAGS {
            let arg = LinuxSeccompArgBuilder::default()
                .index(0usize) // the flags argument on x86_64 and aarch64
                .value(flag as u64)
                .value_two(flag as u64)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()
                .expect("every LinuxSeccompArg field has a default");
            rules.push(errno_rule(&["clone"], libc::EPERM, Some(vec![arg])));
        }
    }

    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActAllow)
        .set_architectures(NATIVE.map(|n| vec![n.oci_arch]))
        .set_syscalls(Some(rules));
    profile
}

fn errno_rule(names: &[&str], errno: i32, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(LinuxSeccompAction::ScmpActErrno)
        .set_errno_ret(Some(errno as u32))
        .set_args(args);
    rule
}

/// Capability names compare without case and with or without "CAP_".
fn same_cap(held: &str, cap: &str) -> bool {
    let bare = |c: &str| {
        let c = c.trim();
        match c.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("CAP_") => c[4..].to_string(),
            _ => c.to_string(),
        }
    };
    let held = bare(held);
    held.eq_ignore_ascii_case("ALL") || held.eq_ignore_ascii_case(&bare(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    fn native() -> Native {
        NATIVE.expect("tests run on x86_64 or aarch64")
    }

    fn nr(name: &str) -> u32 {
        native()
            .syscall_nr(name)
            .unwrap_or_else(|| panic!("no syscall {name}"))
    }

    /// A hand-made `struct seccomp_data`, as the kernel lays it out.
    fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&arch.to_le_bytes());
        d[8..16].copy_from_slice(&0x4000_1234u64.to_le_bytes()); // instruction pointer
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// Runs the classic-BPF subset the compiler emits, checking what the
    /// kernel's verifier would check (in-bounds jumps, aligned loads, a RET
    /// at the end of every path).
    fn run(prog: &Program, d: &[u8; 64]) -> u32 {
        let insns = &prog.0;
        assert!(!insns.is_empty() && insns.len() <= MAX_INSNS);
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let f = insns
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} ran off the program"));
            let code = f.code as u32;
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let off = f.k as usize;
                    assert!(
                        off.is_multiple_of(4) && off + 4 <= 64,
                        "bad load offset {off}"
                    );
                    acc = u32::from_le_bytes(d[off..off + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= f.k,
                c if c == libc::BPF_RET | libc::BPF_K => return f.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += f.k as usize,
                c if c & 0x07 == libc::BPF_JMP && c & 0x08 == libc::BPF_K => {
                    let taken = match c & 0xf0 {
                        x if x == libc::BPF_JEQ => acc == f.k,
                        x if x == libc::BPF_JGT => acc > f.k,
                        x if x == libc::BPF_JGE => acc >= f.k,
                        x if x == libc::BPF_JSET => acc & f.k != 0,
                        _ => panic!("unknown jump {code:#x}"),
                    };
                    pc += if taken { f.jt } else { f.jf } as usize;
                }
                _ => panic!("unknown opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    fn verdict(prog: &Program, name: &str, args: [u64; 6]) -> u32 {
        run(prog, &data(native().audit_arch, nr(name), args))
    }

    fn default_program(caps: &[&str]) -> Program {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        compile(&docker_default(&caps)).expect("default profile compiles")
    }

    fn rule(
        names: &[&str],
        action: LinuxSeccompAction,
        args: Vec<LinuxSeccompArg>,
    ) -> LinuxSyscall {
        let mut r = LinuxSyscall::default();
        r.set_names(names.iter().map(|n| n.to_string()).collect())
            .set_action(action)
            .set_args(if args.is_empty() { None } else { Some(args) });
        r
    }

    fn arg(
        index: usize,
        op: LinuxSeccompOperator,
        value: u64,
        value_two: Option<u64>,
    ) -> LinuxSeccompArg {
        let mut b = LinuxSeccompArgBuilder::default()
            .index(index)
            .op(op)
            .value(value);
        if let Some(v2) = value_two {
            b = b.value_two(v2);
        }
        b.build().unwrap()
    }

    fn profile(default: LinuxSeccompAction, rules: Vec<LinuxSyscall>) -> LinuxSeccomp {
        let mut p = LinuxSeccomp::default();
        p.set_default_action(default).set_syscalls(Some(rules));
        p
    }

    const THREAD_FLAGS: u64 = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;

    #[test]
    fn default_profile_compiles_small() {
        let prog = default_program(&[]);
        eprintln!("default profile: {} instructions", prog.len());
        assert!(prog.len() < MAX_INSNS);
        assert!(prog.len() < 200, "unexpectedly long: {}", prog.len());
        let all = default_program(&["ALL"]);
        eprintln!("default profile with ALL caps: {} instructions", all.len());
    }

    #[test]
    fn default_profile_verdicts() {
        let prog = default_program(&[]);
        assert_eq!(verdict(&prog, "mount", [0; 6]), errno(libc::EPERM));
        assert_eq!(verdict(&prog, "unshare", [0; 6]), errno(libc::EPERM));
        assert_eq!(verdict(&prog, "ptrace", [0; 6]), errno(libc::EPERM));
        assert_eq!(verdict(&prog, "read", [0; 6]), ALLOW);
        assert_eq!(verdict(&prog, "getpid", [0; 6]), ALLOW);
        assert_eq!(verdict(&prog, "execve", [0; 6]), ALLOW);

        let clone_with = |flags: u64| verdict(&prog, "clone", [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone_with(THREAD_FLAGS), ALLOW);
        assert_eq!(clone_with(libc::SIGCHLD as u64), ALLOW); // fork()
        for &flag in CLONE_NAMESPACE_FLAGS {
            assert_eq!(
                clone_with(flag as u64),
                errno(libc::EPERM),
                "flag {flag:#x}"
            );
            assert_eq!(clone_with(THREAD_FLAGS | flag as u64), errno(libc::EPERM));
        }
        // Garbage in the high word does not hide a namespace flag.
        assert_eq!(
            clone_with(0xffff_0000_0000_0000 | libc::CLONE_NEWNS as u64),
            errno(libc::EPERM)
        );
        assert_eq!(verdict(&prog, "clone3", [0; 6]), errno(libc::ENOSYS));

        // Another ABI is killed before any rule runs.
        let i386 = 0x4000_0003;
        assert_eq!(run(&prog, &data(i386, nr("read"), [0; 6])), KILL_PROCESS);
        if native().x32_abi {
            let x32_read = X32_SYSCALL_BIT | nr("read");
            assert_eq!(
                run(&prog, &data(AUDIT_ARCH_X86_64, x32_read, [0; 6])),
                errno(libc::ENOSYS)
            );
        }
    }

    #[test]
    fn capabilities_unlock_syscalls() {
        let admin = default_program(&["CAP_SYS_ADMIN"]);
        assert_eq!(verdict(&admin, "mount", [0; 6]), ALLOW);
        assert_eq!(verdict(&admin, "unshare", [0; 6]), ALLOW);
        assert_eq!(verdict(&admin, "bpf", [0; 6]), ALLOW);
        assert_eq!(
            verdict(&admin, "clone", [libc::CLONE_NEWNS as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(verdict(&admin, "clone3", [0; 6]), ALLOW);
        assert_eq!(verdict(&admin, "ptrace", [0; 6]), errno(libc::EPERM));
        assert_eq!(
            verdict(&admin, "open_by_handle_at", [0; 6]),
            errno(libc::EPERM)
        );
        assert_eq!(verdict(&admin, "kexec_load", [0; 6]), errno(libc::EPERM));

        let ptrace = default_program(&["sys_ptrace"]); // case and prefix don't matter
        assert_eq!(verdict(&ptrace, "ptrace", [0; 6]), ALLOW);
        assert_eq!(verdict(&ptrace, "process_vm_readv", [0; 6]), ALLOW);
        assert_eq!(verdict(&ptrace, "mount", [0; 6]), errno(libc::EPERM));

        // Either capability unlocks a syscall guarded by two.
        let syslog = default_program(&["CAP_SYSLOG"]);
        assert_eq!(verdict(&syslog, "syslog", [0; 6]), ALLOW);
        let bpf = default_program(&["CAP_BPF"]);
        assert_eq!(verdict(&bpf, "bpf", [0; 6]), ALLOW);
        assert_eq!(verdict(&bpf, "perf_event_open", [0; 6]), errno(libc::EPERM));
    }

    #[test]
    fn default_profile_allows_everything_not_listed() {
        let prog = default_program(&[]);
        let denied: Vec<&str> = ALWAYS_DENIED
            .iter()
            .chain(CAP_GATED.iter().flat_map(|(_, calls)| calls.iter()))
            .copied()
            .collect();
        for &(sys, number) in native().syscalls {
            let name = sys.strip_prefix("SYS_").unwrap();
            let got = run(&prog, &data(native().audit_arch, number as u32, [0; 6]));
            let want = match name {
                "clone3" => errno(libc::ENOSYS),
                _ if denied.contains(&name) => errno(libc::EPERM),
                _ => ALLOW, // includes clone without namespace flags
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn unknown_names_are_skipped() {
        let only_unknown = profile(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(
                &["no_such_syscall", "vm86old_on_mars"],
                LinuxSeccompAction::ScmpActKillProcess,
                vec![],
            )],
        );
        let empty = profile(LinuxSeccompAction::ScmpActAllow, vec![]);
        let words = |p: &Program| {
            p.0.iter()
                .map(|f| (f.code, f.jt, f.jf, f.k))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            words(&compile(&only_unknown).unwrap()),
            words(&compile(&empty).unwrap())
        );

        let mixed = profile(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(
                &["no_such_syscall", "mkdir", "mkdirat"],
                LinuxSeccompAction::ScmpActErrno,
                vec![],
            )],
        );
        let prog = compile(&mixed).unwrap();
        assert_eq!(verdict(&prog, "mkdirat", [0; 6]), errno(libc::EPERM));
        assert_eq!(verdict(&prog, "unlinkat", [0; 6]), ALLOW);
    }

    #[test]
    fn actions_and_default_errno() {
        use LinuxSeccompAction::*;
        let mut trace = rule(&["openat"], ScmpActTrace, vec![]);
        trace.set_errno_ret(Some(7));
        let mut errno_rule = rule(&["close"], ScmpActErrno, vec![]);
        errno_rule.set_errno_ret(Some(libc::EACCES as u32));
        let mut p = profile(
            ScmpActErrno,
            vec![
                rule(&["read"], ScmpActAllow, vec![]),
                rule(&["write"], ScmpActLog, vec![]),
                rule(&["getpid"], ScmpActTrap, vec![]),
                rule(&["gettid"], ScmpActKill, vec![]),
                rule(&["getppid"], ScmpActKillThread, vec![]),
                rule(&["getuid"], ScmpActKillProcess, vec![]),
                trace,
                errno_rule,
            ],
        );
        p.set_default_errno_ret(Some(libc::ENOSYS as u32));
        let prog = compile(&p).unwrap();
        assert_eq!(verdict(&prog, "read", [0; 6]), ALLOW);
        assert_eq!(verdict(&prog, "write", [0; 6]), libc::SECCOMP_RET_LOG);
        assert_eq!(verdict(&prog, "getpid", [0; 6]), libc::SECCOMP_RET_TRAP);
        assert_eq!(
            verdict(&prog, "gettid", [0; 6]),
            libc::SECCOMP_RET_KILL_THREAD
        );
        assert_eq!(
            verdict(&prog, "getppid", [0; 6]),
            libc::SECCOMP_RET_KILL_THREAD
        );
        assert_eq!(verdict(&prog, "getuid", [0; 6]), KILL_PROCESS);
        assert_eq!(
            verdict(&prog, "openat", [0; 6]),
            libc::SECCOMP_RET_TRACE | 7
        );
        assert_eq!(verdict(&prog, "close", [0; 6]), errno(libc::EACCES));
        assert_eq!(verdict(&prog, "mkdirat", [0; 6]), errno(libc::ENOSYS));
        if native().x32_abi {
            // x32 follows an ERRNO default.
            let x32 = X32_SYSCALL_BIT | nr("read");
            assert_eq!(
                run(&prog, &data(AUDIT_ARCH_X86_64, x32, [0; 6])),
                errno(libc::ENOSYS)
            );
        }
    }

    #[test]
    fn rules_apply_in_order() {
        use LinuxSeccompAction::*;
        let p = profile(
            ScmpActAllow,
            vec![
                rule(
                    &["dup"],
                    ScmpActAllow,
                    vec![arg(0, LinuxSeccompOperator::ScmpCmpEq, 1, None)],
                ),
                rule(&["dup"], ScmpActErrno, vec![]),
            ],
        );
        let prog = compile(&p).unwrap();
        assert_eq!(verdict(&prog, "dup", [1, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            verdict(&prog, "dup", [2, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }

    /// Every operator against values that differ in the high word, the low
    /// word, or both, compared with a plain 64-bit evaluation.
    #[test]
    fn argument_operators_on_64_bit_values() {
        use LinuxSeccompOperator::*;
        let samples: [u64; 12] = [
            0,
            1,
            5,
            6,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0004,
            0x1_0000_0005,
            0x1_0000_0006,
            0x2_0000_0000,
            0x2_0000_0005,
            u64::MAX,
        ];
        let reference = |op: LinuxSeccompOperator, a: u64, v: u64, v2: u64| match op {
            ScmpCmpEq => a == v,
            ScmpCmpNe => a != v,
            ScmpCmpLt => a < v,
            ScmpCmpLe => a <= v,
            ScmpCmpGt => a > v,
            ScmpCmpGe => a >= v,
            ScmpCmpMaskedEq => a & v == v2,
        };
        let cases: Vec<(LinuxSeccompOperator, u64, u64)> = vec![
            (ScmpCmpEq, 0x1_0000_0005, 0),
            (ScmpCmpNe, 0x1_0000_0005, 0),
            (ScmpCmpLt, 0x1_0000_0005, 0),
            (ScmpCmpLe, 0x1_0000_0005, 0),
            (ScmpCmpGt, 0x1_0000_0005, 0),
            (ScmpCmpGe, 0x1_0000_0005, 0),
            (ScmpCmpGt, 5, 0),
            (ScmpCmpLt, 0x2_0000_0000, 0),
            (ScmpCmpMaskedEq, 0x3_0000_0007, 0x1_0000_0005), // AND + JEQ on both words
            (ScmpCmpMaskedEq, 0x3_0000_0007, 0),             // "none set": JSET
            (ScmpCmpMaskedEq, 0x1_0000_0004, 0x1_0000_0004), // "bit set": JSET
            (ScmpCmpMaskedEq, 0x0_0000_0004, 0x1_0000_0004), // never true
        ];
        for (op, value, value_two) in cases {
            for index in [0usize, 3, 5] {
                let p = profile(
                    LinuxSeccompAction::ScmpActAllow,
                    vec![rule(
                        &["ioctl"],
                        LinuxSeccompAction::ScmpActErrno,
                        vec![arg(index, op, value, Some(value_two))],
                    )],
                );
                let prog = compile(&p).unwrap();
                for &a in &samples {
                    // Put a decoy in the other arguments so a wrong offset shows.
                    let mut args = [0x5555_5555_5555_5555u64; 6];
                    args[index] = a;
                    let want = if reference(op, a, value, value_two) {
                        errno(libc::EPERM)
                    } else {
                        ALLOW
                    };
                    assert_eq!(
                        verdict(&prog, "ioctl", args),
                        want,
                        "{op:?} arg{index}={a:#x} value={value:#x} value_two={value_two:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn conditions_on_distinct_args_are_anded() {
        use LinuxSeccompOperator::*;
        let p = profile(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(
                &["socket", "socketpair"],
                LinuxSeccompAction::ScmpActErrno,
                vec![
                    arg(0, ScmpCmpEq, 1, None),
                    arg(1, ScmpCmpGe, 0x1_0000_0000, None),
                ],
            )],
        );
        let prog = compile(&p).unwrap();
        for name in ["socket", "socketpair"] {
            assert_eq!(
                verdict(&prog, name, [1, 0x1_0000_0000, 0, 0, 0, 0]),
                errno(libc::EPERM)
            );
            assert_eq!(verdict(&prog, name, [1, 0xffff_ffff, 0, 0, 0, 0]), ALLOW);
            assert_eq!(verdict(&prog, name, [2, 0x1_0000_0000, 0, 0, 0, 0]), ALLOW);
        }
        assert_eq!(
            verdict(&prog, "read", [1, 0x1_0000_0000, 0, 0, 0, 0]),
            ALLOW
        );
    }

    #[test]
    fn repeated_arg_index_is_ored_like_runc() {
        use LinuxSeccompOperator::*;
        let p = profile(
            LinuxSeccompAction::ScmpActErrno,
            vec![rule(
                &["personality"],
                LinuxSeccompAction::ScmpActAllow,
                vec![
                    arg(0, ScmpCmpEq, 0, None),
                    arg(0, ScmpCmpEq, 8, None),
                    arg(0, ScmpCmpEq, 0xffff_ffff, None),
                ],
            )],
        );
        let prog = compile(&p).unwrap();
        for ok in [0, 8, 0xffff_ffff] {
            assert_eq!(verdict(&prog, "personality", [ok, 0, 0, 0, 0, 0]), ALLOW);
        }
        assert_eq!(
            verdict(&prog, "personality", [0x40000, 0, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
    }

    #[test]
    fn long_programs_keep_jumps_short() {
        use LinuxSeccompOperator::*;
        // 300 names in one rule (split into blocks), then 400 argument rules.
        let names: Vec<String> = native()
            .syscalls
            .iter()
            .take(300)
            .map(|(s, _)| s[4..].to_string())
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rules = vec![rule(
            &name_refs,
            LinuxSeccompAction::ScmpActLog,
            vec![arg(2, ScmpCmpEq, 99, None)],
        )];
        for i in 0..400u64 {
            rules.push(rule(
                &["ioctl"],
                LinuxSeccompAction::ScmpActErrno,
                vec![arg(1, ScmpCmpEq, 1000 + i, None)],
            ));
        }
        let prog = compile(&profile(LinuxSeccompAction::ScmpActAllow, rules)).unwrap();
        assert!(
            prog.len() > 2000 && prog.len() < MAX_INSNS,
            "{}",
            prog.len()
        );
        let last = native().syscalls[299].1 as u32;
        let arch = native().audit_arch;
        assert_eq!(
            run(&prog, &data(arch, last, [0, 0, 99, 0, 0, 0])),
            libc::SECCOMP_RET_LOG
        );
        assert_eq!(run(&prog, &data(arch, last, [0, 0, 98, 0, 0, 0])), ALLOW);
        assert_eq!(
            verdict(&prog, "ioctl", [0, 1399, 0, 0, 0, 0]),
            errno(libc::EPERM)
        );
        assert_eq!(verdict(&prog, "ioctl", [0, 1400, 0, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn errors_are_reported() {
        use LinuxSeccompAction::*;
        let too_long: Vec<LinuxSyscall> = (0..1000u64)
            .map(|i| {
                rule(
                    &["ioctl"],
                    ScmpActErrno,
                    vec![arg(1, LinuxSeccompOperator::ScmpCmpEq, i, None)],
                )
            })
            .collect();
        let err = compile(&profile(ScmpActAllow, too_long)).unwrap_err();
        assert!(
            matches!(err, SeccompError::TooLong { len } if len > MAX_INSNS),
            "{err}"
        );

        let err = compile(&profile(
            ScmpActAllow,
            vec![rule(&["read"], ScmpActNotify, vec![])],
        ))
        .unwrap_err();
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");

        let bad_index = rule(
            &["read"],
            ScmpActErrno,
            vec![arg(6, LinuxSeccompOperator::ScmpCmpEq, 0, None)],
        );
        let err = compile(&profile(ScmpActAllow, vec![bad_index])).unwrap_err();
        assert!(
            matches!(err, SeccompError::ArgIndex { index: 6, .. }),
            "{err}"
        );

        let mut big_errno = rule(&["read"], ScmpActErrno, vec![]);
        big_errno.set_errno_ret(Some(0x1_0000));
        let err = compile(&profile(ScmpActAllow, vec![big_errno])).unwrap_err();
        assert!(
            matches!(
                err,
                SeccompError::Errno {
                    errno: 0x1_0000,
                    ..
                }
            ),
            "{err}"
        );

        assert!(matches!(
            Program(Vec::new()).install(),
            Err(SeccompError::Empty)
        ));
    }

    /// Installs the default filter in a forked child and checks the kernel
    /// agrees with the interpreter.
    #[test]
    fn installed_filter_refuses_unshare() {
        // Built before fork: the child must not allocate (the test harness is
        // multithreaded, so only async-signal-safe calls are allowed there).
        let prog = default_program(&[]);

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
