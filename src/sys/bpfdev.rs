//! The device allow-list on cgroup v2: a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program attached to the container's cgroup directory.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny` files; the kernel instead
//! runs every BPF device program attached to the cgroup of the task (and of
//! its ancestors, with `BPF_F_ALLOW_MULTI`) on each open or mknod of a device
//! node, and allows the access only if all of them return 1.
//!
//! berth links no BPF library; the program is a handful of instructions
//! assembled here. Its context is `struct bpf_cgroup_dev_ctx { u32
//! access_type; u32 major; u32 minor; }` with `access_type = access << 16 |
//! type` (the access bits are in the upper half, as <linux/bpf.h> says; with
//! the halves swapped a read of a char device still passes, since both are 2,
//! but every write is refused). The generated program has this shape:
//!
//! ```text
//!   r2 = access_type >> 16      ; requested access bits (m=1, r=2, w=4)
//!   r3 = access_type & 0xffff   ; device type (block=1, char=2)
//!   r4 = major
//!   r5 = minor
//!   one block per rule, in order:
//!     if r3 != TYPE goto next       ; left out for type 'a'
//!     if r2 & ~ACCESS goto next     ; left out for "rwm"
//!     if r4 != MAJOR goto next      ; left out for major -1
//!     if r5 != MINOR goto next      ; left out for minor -1
//!     r0 = 1; exit                  ; allow
//!   r0 = 0; exit                    ; default: deny
//! ```
//!
//! A block without any test (`a *:* rwm`) allows everything; nothing after it
//! is emitted, since the verifier refuses unreachable instructions.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One allow rule: kind 'c' | 'b' | 'a' (any), major/minor (-1 = any),
/// access a subset of "rwm".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevRule {
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub access: String,
}

/// The tuples of `cgroup::Limits::devices`.
impl From<&(char, i64, i64, String)> for DevRule {
    fn from((kind, major, minor, access): &(char, i64, i64, String)) -> DevRule {
        DevRule { kind: *kind, major: *major, minor: *minor, access: access.clone() }
    }
}

/// Builds the program (default deny; a device access is allowed if some rule
/// matches type, major, minor and all requested access bits are within the
/// rule's access) and attaches it to the cgroup v2 directory `cgroup_dir`.
/// An empty rule set denies all; a rule kind 'a' with -1/-1 and "rwm" allows
/// all.
///
/// The program is attached with `BPF_F_ALLOW_MULTI`, so programs of parent
/// cgroups (systemd's, say) still apply. Programs of an earlier call on the
/// same directory (recognised by their name) are detached once the new one is
/// in place, so there is no moment without a filter. Loading needs
/// CAP_SYS_ADMIN (or CAP_BPF) in the initial user namespace: rootless berth
/// gets EPERM here.
pub fn attach(cgroup_dir: &Path, rules: &[DevRule]) -> io::Result<()> {
    let dir = cgroup_dir.display();
    let insns = program(rules).map_err(|e| io::Error::new(e.kind(), format!("cgroup {dir}: {e}")))?;
    let prog = load(&insns, PROG_NAME).map_err(|e| io::Error::new(e.kind(), format!("load device filter for cgroup {dir}: {e}")))?;
    let cg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(cgroup_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("open cgroup {dir}: {e}")))?;
    let cg = OwnedFd::from(cg);
    let old = our_programs(&cg).map_err(|e| io::Error::new(e.kind(), format!("query device filters of {dir}: {e}")))?;
    prog_attach(&cg, &prog).map_err(|e| io::Error::new(e.kind(), format!("attach device filter to {dir}: {e}")))?;
    for p in old {
        match prog_detach(&cg, &p) {
            // Gone already (a concurrent detach, or the cgroup went away).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            r => r.map_err(|e| io::Error::new(e.kind(), format!("detach old device filter from {dir}: {e}")))?,
        }
    }
    tracing::debug!(cgroup = %dir, rules = rules.len(), insns = insns.len(), "device filter attached");
    // `prog` is closed here; the attachment keeps the program alive.
    Ok(())
}

// ---------------------------------------------------------------------------
// The program generator (pure).

/// `struct bpf_insn`: the two 4-bit register fields share one byte, dst_reg
/// first (the low nibble on little-endian, the high one on big-endian).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes (class | op | source), from <linux/bpf.h> and <linux/bpf_common.h>.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JSET_K: u8 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// Registers.
const R0: u8 = 0; // return value
const R1: u8 = 1; // context pointer on entry
const R_ACC: u8 = 2;
const R_TYPE: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

// `struct bpf_cgroup_dev_ctx` offsets and values.
const OFF_ACCESS_TYPE: i16 = 0;
const OFF_MAJOR: i16 = 4;
const OFF_MINOR: i16 = 8;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

const PROLOGUE_LEN: usize = 6;

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0xf);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0xf);
        Insn { code, regs, off, imm }
    }
    #[cfg(test)]
    fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") { self.regs & 0xf } else { self.regs >> 4 }
    }
    #[cfg(test)]
    fn src(&self) -> u8 {
        if cfg!(target_endian = "little") { self.regs >> 4 } else { self.regs & 0xf }
    }
}

fn invalid(rule: &DevRule, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("device rule {} {}:{} {:?}: {why}", rule.kind, rule.major, rule.minor, rule.access),
    )
}

/// A major or minor as an immediate: `None` for "any" (negative). Device
/// numbers are at most 32 bits and in practice 12 (major) and 20 (minor);
/// values past `i32::MAX` would be sign-extended by the 64-bit compare and
/// never match, so they are refused.
fn dev_number(rule: &DevRule, v: i64) -> io::Result<Option<i32>> {
    if v < 0 {
        return Ok(None);
    }
    i32::try_from(v).map(Some).map_err(|_| invalid(rule, "device number out of range"))
}

/// The test instructions of one rule, each `jne/jset ..., next` with the
/// offset still 0; `None` if the rule can never match (empty access).
fn conditions(rule: &DevRule) -> io::Result<Option<Vec<Insn>>> {
    let mut access = 0;
    for c in rule.access.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return Err(invalid(rule, "access must be made of r, w and m")),
        };
    }
    let kind = match rule.kind {
        'c' => Some(DEV_CHAR),
        'b' => Some(DEV_BLOCK),
        'a' => None,
        _ => return Err(invalid(rule, "type must be c, b or a")),
    };
    let major = dev_number(rule, rule.major)?;
    let minor = dev_number(rule, rule.minor)?;
    if access == 0 {
        return Ok(None);
    }
    let mut tests = Vec::new();
    if let Some(t) = kind {
        tests.push(Insn::new(JMP_JNE_K, R_TYPE, 0, 0, t));
    }
    if access != ACC_ALL {
        // Some requested bit outside the rule's access: not this rule.
        tests.push(Insn::new(JMP_JSET_K, R_ACC, 0, 0, !access & 0xffff));
    }
    if let Some(m) = major {
        tests.push(Insn::new(JMP_JNE_K, R_MAJOR, 0, 0, m));
    }
    if let Some(m) = minor {
        tests.push(Insn::new(JMP_JNE_K, R_MINOR, 0, 0, m));
    }
    Ok(Some(tests))
}

/// Assembles the filter for `rules`.
fn program(rules: &[DevRule]) -> io::Result<Vec<Insn>> {
    let mut p = vec![
        Insn::new(LDX_MEM_W, R_ACC, R1, OFF_ACCESS_TYPE, 0),
        Insn::new(LDX_MEM_W, R_TYPE, R1, OFF_ACCESS_TYPE, 0),
        Insn::new(ALU64_RSH_K, R_ACC, 0, 0, 16),
        Insn::new(ALU64_AND_K, R_TYPE, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, R_MAJOR, R1, OFF_MAJOR, 0),
        Insn::new(LDX_MEM_W, R_MINOR, R1, OFF_MINOR, 0),
    ];
    debug_assert_eq!(p.len(), PROLOGUE_LEN);
    for rule in rules {
        let Some(tests) = conditions(rule)? else { continue };
        // Block: tests, then "r0 = 1; exit". A failed test jumps just past
        // the block: from test i that is (tests.len() - i) + 1 forward.
        let n = tests.len();
        for (i, mut t) in tests.into_iter().enumerate() {
            t.off = i16::try_from(n - i + 1).expect("a rule block has at most 6 instructions");
            p.push(t);
        }
        p.push(Insn::new(ALU64_MOV_K, R0, 0, 0, 1));
        p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
        if n == 0 {
            // Allows everything: the rest would be unreachable.
            return Ok(p);
        }
    }
    p.push(Insn::new(ALU64_MOV_K, R0, 0, 0, 0));
    p.push(Insn::new(JMP_EXIT, 0, 0, 0, 0));
    if p.len() > BPF_MAXINSNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} device rules make a filter of {} instructions, more than the kernel's {BPF_MAXINSNS}", rules.len(), p.len()),
        ));
    }
    Ok(p)
}

// ---------------------------------------------------------------------------
// The bpf(2) system call.

/// Without CAP_BPF/CAP_SYS_ADMIN programs are limited to 4096 instructions;
/// 4096 / 6 is still ~680 rules, far beyond any device list.
const BPF_MAXINSNS: usize = 4096;

// Commands.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The name the kernel keeps for our programs (at most 15 bytes, letters,
/// digits, '_' and '.'); how a later `attach` recognises them.
const PROG_NAME: &[u8] = b"berth_dev";
const LICENSE: &[u8] = b"GPL\0";
const LOG_SIZE: usize = 64 * 1024;
/// The kernel refuses more than this many programs per cgroup and attach type.
const MAX_PROGS: usize = 64;

// Prefixes of the members of `union bpf_attr` we use. Every field is
// written, there is no padding (the structs are laid out to avoid it), and
// the kernel zero-fills whatever lies past the size we pass.

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The start of `struct bpf_prog_info` (through `name`, kernel 4.15).
#[repr(C)]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// bpf(cmd, attr, sizeof attr).
///
/// # Safety
/// Every pointer stored in `attr` must point to memory valid for what `cmd`
/// reads or writes through it (with the lengths given in `attr`), for the
/// duration of the call.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised repr(C) struct of exactly
    // the size passed; the kernel copies that many bytes in (and for some
    // commands back out). Embedded pointers are the caller's contract.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>() as libc::c_uint) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// A bpf(2) result that is a new file descriptor, owned from here on.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us (bpf objects are
    // opened O_CLOEXEC); nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    fd.as_raw_fd() as u32
}

/// Loads `insns` as a cgroup device program. On failure the load is retried
/// with the verifier log on, and the log goes into the error. (Loading with
/// the log on from the start would fail with ENOSPC on a large but valid
/// program whose trace outgrows the buffer.)
fn load(insns: &[Insn], prog_name: &[u8]) -> io::Result<OwnedFd> {
    let try_load = |log: Option<&mut Vec<u8>>| -> io::Result<OwnedFd> {
        let mut name = [0u8; 16];
        name[..prog_name.len()].copy_from_slice(prog_name);
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            prog_name: name,
            ..Default::default()
        };
        if let Some(buf) = log {
            attr.log_level = 1;
            attr.log_size = buf.len() as u32;
            attr.log_buf = buf.as_mut_ptr() as u64;
        }
        // The verifier may ask for a restart (EAGAIN); libbpf retries too.
        let mut tries = 0;
        loop {
            // SAFETY: `insns` (insn_cnt entries), the NUL-terminated license
            // and the log buffer (log_size bytes, written by the kernel) all
            // outlive the call.
            match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < 5 => tries += 1,
                r => return r.map(owned),
            }
        }
    };
    let err = match try_load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; LOG_SIZE];
    // A success on the second try would be odd, but is a success.
    if let Ok(fd) = try_load(Some(&mut log)) {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let text = text.trim_end();
    if text.is_empty() {
        Err(err)
    } else {
        Err(io::Error::new(err.kind(), format!("{err}; verifier log:\n{text}")))
    }
}

fn prog_attach(cg: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cg),
        attach_bpf_fd: fd_u32(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    // SAFETY: the attr holds descriptors only, no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

fn prog_detach(cg: &OwnedFd, prog: &OwnedFd) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: fd_u32(cg),
        attach_bpf_fd: fd_u32(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
    };
    // SAFETY: the attr holds descriptors only, no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// Ids of the device programs attached to this very cgroup (not inherited
/// from its parents).
fn attached_ids(cg: &OwnedFd) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; MAX_PROGS];
    let mut attr = QueryAttr {
        target_fd: fd_u32(cg),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: the kernel writes at most prog_cnt u32s to prog_ids, which
    // points to `ids`, alive for the call.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    let n = (attr.prog_cnt as usize).min(ids.len());
    Ok(ids[..n].to_vec())
}

/// The name and type of a loaded program.
fn prog_info(prog: &OwnedFd) -> io::Result<ProgInfo> {
    let mut info = ProgInfo::default();
    let mut attr = InfoByFdAttr {
        bpf_fd: fd_u32(prog),
        info_len: size_of::<ProgInfo>() as u32,
        info: &mut info as *mut ProgInfo as u64,
    };
    // SAFETY: the kernel writes at most info_len bytes to `info`, a live
    // repr(C) struct of that size made only of integers.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(info)
}

/// Descriptors of the device programs berth attached to this cgroup before.
/// Other programs there (nobody else should put any on a container's
/// cgroup) are left alone: with ALLOW_MULTI they can only deny more.
fn our_programs(cg: &OwnedFd) -> io::Result<Vec<OwnedFd>> {
    let mut ours = Vec::new();
    for id in attached_ids(cg)? {
        let mut attr = GetFdByIdAttr { prog_id: id, ..Default::default() };
        // SAFETY: the attr holds an id only, no pointers.
        let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) } {
            Ok(fd) => owned(fd),
            // Detached and freed since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let info = prog_info(&fd)?;
        let end = info.name.iter().position(|&b| b == 0).unwrap_or(info.name.len());
        if info.prog_type == BPF_PROG_TYPE_CGROUP_DEVICE && &info.name[..end] == PROG_NAME {
            ours.push(fd);
        }
    }
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn rule(kind: char, major: i64, minor: i64, access: &str) -> DevRule {
        DevRule { kind, major, minor, access: access.to_string() }
    }

    // --- The generator, checked without the kernel ------------------------

    /// Runs `p` the way the kernel would, for the few opcodes we emit.
    fn run(p: &[Insn], kind: i32, major: u32, minor: u32, access: i32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let imm = i.imm as i64 as u64; // sign-extended, as the kernel does
            let jump = match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, R1 as usize);
                    r[d] = ctx[i.off as usize / 4] as u64;
                    false
                }
                ALU64_AND_K => {
                    r[d] &= imm;
                    false
                }
                ALU64_RSH_K => {
                    r[d] >>= imm;
                    false
                }
                ALU64_MOV_K => {
                    r[d] = imm;
                    false
                }
                JMP_JNE_K => r[d] != imm,
                JMP_JSET_K => r[d] & imm != 0,
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x} at {pc}"),
            };
            pc += 1;
            if jump {
                pc = (pc as i64 + i.off as i64) as usize;
            }
            assert!(pc < p.len(), "fell off the end");
        }
    }

    const C: i32 = DEV_CHAR;
    const B: i32 = DEV_BLOCK;
    const R: i32 = ACC_READ;
    const W: i32 = ACC_WRITE;
    const M: i32 = ACC_MKNOD;

    #[test]
    fn empty_denies_everything() {
        let p = program(&[]).unwrap();
        assert_eq!(p.len(), PROLOGUE_LEN + 2);
        for (k, a) in [(C, R), (B, W), (C, M), (C, R | W)] {
            assert_eq!(run(&p, k, 1, 3, a), 0);
        }
    }

    #[test]
    fn allow_all_is_one_unconditional_block() {
        let p = program(&[rule('a', -1, -1, "rwm"), rule('c', 1, 3, "r")]).unwrap();
        // Prologue, "r0 = 1; exit", and nothing after (would be unreachable).
        assert_eq!(p.len(), PROLOGUE_LEN + 2);
        assert_eq!(p[PROLOGUE_LEN], Insn::new(ALU64_MOV_K, R0, 0, 0, 1));
        for (k, a) in [(C, R), (B, W | M), (C, M | R | W)] {
            assert_eq!(run(&p, k, 259, 1 << 19, a), 1);
        }
    }

    #[test]
    fn wildcards_skip_their_comparison() {
        let count = |r: DevRule| program(&[r]).unwrap().len() - PROLOGUE_LEN - 4;
        assert_eq!(count(rule('c', 1, 3, "r")), 4); // type, access, major, minor
        assert_eq!(count(rule('c', 1, 3, "rwm")), 3); // no access test
        assert_eq!(count(rule('c', -1, 3, "rwm")), 2);
        assert_eq!(count(rule('c', 1, -1, "rwm")), 2);
        assert_eq!(count(rule('a', 1, -1, "rwm")), 1);
        assert_eq!(count(rule('a', -1, -1, "m")), 1); // access only
        let p = program(&[rule('c', -1, 3, "rw")]).unwrap();
        assert!(p.iter().all(|i| i.dst() != R_MAJOR || i.code == LDX_MEM_W), "no major test");
    }

    #[test]
    fn jumps_land_on_the_next_block() {
        let p = program(&[rule('c', 1, 3, "rwm"), rule('b', 7, -1, "r")]).unwrap();
        // Prologue 6, block one 3+2, block two 3+2, deny 2.
        assert_eq!(p.len(), 6 + 5 + 5 + 2);
        for (pc, i) in p.iter().enumerate().take(11).skip(6) {
            if i.code == JMP_JNE_K {
                assert_eq!(pc + 1 + i.off as usize, 11);
            }
        }
        for (pc, i) in p.iter().enumerate().skip(11) {
            if i.code == JMP_JNE_K || i.code == JMP_JSET_K {
                assert_eq!(pc + 1 + i.off as usize, 16);
            }
        }
    }

    #[test]
    fn semantics() {
        let p = program(&[rule('c', 1, 3, "rwm"), rule('c', 1, 5, "r"), rule('b', -1, -1, "m"), rule('c', 136, -1, "rw")])
            .unwrap();
        // c 1:3 rwm
        assert_eq!(run(&p, C, 1, 3, R | W), 1);
        assert_eq!(run(&p, C, 1, 3, M), 1);
        assert_eq!(run(&p, B, 1, 3, R), 0, "type matters");
        // c 1:5 r
        assert_eq!(run(&p, C, 1, 5, R), 1);
        assert_eq!(run(&p, C, 1, 5, W), 0);
        assert_eq!(run(&p, C, 1, 5, R | W), 0, "all requested bits must be allowed");
        assert_eq!(run(&p, C, 1, 5, M), 0);
        // b *:* m
        assert_eq!(run(&p, B, 8, 0, M), 1);
        assert_eq!(run(&p, B, 8, 0, R), 0);
        // c 136:* rw
        assert_eq!(run(&p, C, 136, 12345, R | W), 1);
        assert_eq!(run(&p, C, 136, 0, M), 0);
        // nothing else
        assert_eq!(run(&p, C, 1, 7, R), 0);
        assert_eq!(run(&p, C, 5, 0, R), 0);
    }

    #[test]
    fn empty_access_never_matches() {
        let p = program(&[rule('a', -1, -1, "")]).unwrap();
        assert_eq!(p.len(), PROLOGUE_LEN + 2);
        assert_eq!(run(&p, C, 1, 3, R), 0);
    }

    #[test]
    fn bad_rules_are_refused() {
        for r in [rule('p', 1, 3, "r"), rule('c', 1, 3, "rx"), rule('c', 1 << 31, 3, "r"), rule('c', 1, 1 << 40, "r")] {
            let e = program(&[r.clone()]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{r:?}");
        }
        let e = program(&vec![rule('c', 1, 3, "r"); 1000]).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn from_tuple() {
        let t = ('c', 1, -1, "rw".to_string());
        assert_eq!(DevRule::from(&t), rule('c', 1, -1, "rw"));
    }

    #[test]
    fn layouts() {
        assert_eq!(size_of::<Insn>(), 8);
        assert_eq!(size_of::<ProgLoadAttr>(), 64);
        assert_eq!(size_of::<AttachAttr>(), 16);
        assert_eq!(size_of::<QueryAttr>(), 32);
        assert_eq!(size_of::<InfoByFdAttr>(), 16);
        assert_eq!(size_of::<ProgInfo>(), 80);
        let i = Insn::new(LDX_MEM_W, 2, 1, 4, 0);
        assert_eq!((i.dst(), i.src()), (2, 1));
    }

    // --- In the kernel (root, a cgroup2 mount) -----------------------------

    /// The cgroup2 mount: /sys/fs/cgroup on a v2 host, /sys/fs/cgroup/unified
    /// on a hybrid one.
    fn cgroup2_mount() -> PathBuf {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        info.lines()
            .find_map(|l| {
                let (pre, post) = l.split_once(" - ")?;
                (post.split(' ').next() == Some("cgroup2")).then(|| PathBuf::from(pre.split(' ').nth(4).unwrap()))
            })
            .expect("no cgroup2 mount")
    }

    /// A cgroup of its own for one test, removed on drop even when the test
    /// fails (its processes have exited by then), with a scratch path for
    /// mknod.
    struct TestCg {
        name: String,
        dir: PathBuf,
        node: PathBuf,
    }

    impl TestCg {
        fn new() -> TestCg {
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!("berth-bpfdev-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
            let dir = cgroup2_mount().join(&name);
            std::fs::create_dir(&dir).unwrap();
            let node = std::env::temp_dir().join(format!("{name}-node"));
            TestCg { name, dir, node }
        }

        /// Runs `script` with sh in this cgroup (the shell moves itself in
        /// first; this test process stays where it is): (success, stdout,
        /// stderr).
        fn sh(&self, script: &str) -> (bool, String, String) {
            let procs = self.dir.join("cgroup.procs");
            let full = format!(
                "echo $$ > '{}' || exit 99\ngrep -qx '0::/{}' /proc/self/cgroup || exit 98\n{script}",
                procs.display(),
                self.name
            );
            let out = Command::new("/bin/sh").arg("-c").arg(&full).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!matches!(out.status.code(), Some(98 | 99)), "could not join {}: {stderr}", self.dir.display());
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
        }

        fn allowed(&self, script: &str) {
            let (ok, _, err) = self.sh(script);
            assert!(ok, "{script:?} should work: {err}");
        }

        fn denied(&self, script: &str) {
            let (ok, _, err) = self.sh(script);
            assert!(!ok && err.contains("Operation not permitted"), "{script:?} should be denied, got ok={ok}: {err}");
        }
    }

    impl Drop for TestCg {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.node);
            // A reaped child can linger in the cgroup for a moment.
            for _ in 0..100 {
                match std::fs::remove_dir(&self.dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    Err(e) => return eprintln!("cleanup {}: {e}", self.dir.display()),
                    Ok(()) => return,
                }
            }
            eprintln!("cleanup {}: still busy", self.dir.display());
        }
    }

    #[test]
    fn kernel_allow_list() {
        let cg = TestCg::new();
        attach(&cg.dir, &[rule('c', 1, 3, "rwm"), rule('c', 1, 5, "r")]).unwrap();
        let node = cg.node.display();
        cg.allowed("cat /dev/null && echo x > /dev/null");
        let (ok, out, err) = cg.sh("head -c1 /dev/zero | od -An -tx1");
        assert!(ok && out.trim() == "00", "read /dev/zero: {out:?} {err}");
        cg.denied("echo x > /dev/zero");
        cg.denied("head -c1 /dev/full");
        cg.denied(&format!("mknod {node} b 7 0"));
        cg.denied(&format!("mknod {node} c 1 5"));
        assert!(!cg.node.exists());
        cg.allowed(&format!("mknod {node} c 1 3 && rm {node}"));
        // This process is not in the cgroup and is not filtered.
        std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    }

    #[test]
    fn kernel_access_bits() {
        // Write-only and mknod-only rules, each bit on its own.
        let cg = TestCg::new();
        attach(&cg.dir, &[rule('c', 1, 7, "w"), rule('c', 1, 3, "m"), rule('b', 7, -1, "rw")]).unwrap();
        let node = cg.node.display();
        cg.allowed(": > /dev/full");
        cg.denied("head -c1 /dev/full");
        cg.denied("cat /dev/null");
        cg.denied("echo x > /dev/null");
        cg.allowed(&format!("mknod {node} c 1 3 && rm {node}"));
        cg.denied(&format!("mknod {node} b 7 0"));
    }

    #[test]
    fn kernel_allow_all() {
        let cg = TestCg::new();
        attach(&cg.dir, &[rule('a', -1, -1, "rwm")]).unwrap();
        let node = cg.node.display();
        cg.allowed("cat /dev/null && head -c1 /dev/zero >/dev/null && echo x > /dev/zero && head -c1 /dev/full >/dev/null");
        cg.allowed(&format!("mknod {node} b 7 0 && rm {node}"));
    }

    #[test]
    fn kernel_empty_denies() {
        let cg = TestCg::new();
        let rules: Vec<DevRule> = Vec::new();
        attach(&cg.dir, &rules).unwrap();
        cg.denied("cat /dev/null");
    }

    #[test]
    fn kernel_reattach_replaces_ours_only() {
        let cg = TestCg::new();
        let open = || OwnedFd::from(std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(&cg.dir).unwrap());
        // A foreign program on the same cgroup, allowing everything: it stays.
        let foreign = load(&program(&[rule('a', -1, -1, "rwm")]).unwrap(), b"not_berth").unwrap();
        prog_attach(&open(), &foreign).unwrap();
        drop(foreign);
        attach(&cg.dir, &[]).unwrap();
        cg.denied("cat /dev/null");
        attach(&cg.dir, &[rule('c', 1, 3, "rwm")]).unwrap();
        assert_eq!(attached_ids(&open()).unwrap().len(), 2, "our first program was detached, the foreign one kept");
        cg.allowed("cat /dev/null");
        attach(&cg.dir, &[rule('c', 1, 3, "r")]).unwrap();
        assert_eq!(attached_ids(&open()).unwrap().len(), 2);
        cg.denied("echo x > /dev/null");
    }

    #[test]
    fn kernel_errors_name_the_step() {
        // Not a cgroup.
        let e = attach(Path::new("/proc"), &[]).unwrap_err();
        assert!(e.to_string().contains("/proc"), "{e}");
        // Missing directory.
        let e = attach(Path::new("/sys/fs/cgroup/berth-no-such-cgroup"), &[]).unwrap_err();
        assert!(e.to_string().contains("open cgroup /sys/fs/cgroup/berth-no-such-cgroup"), "{e}");
        // A program the verifier refuses: exit without setting r0.
        let e = load(&[Insn::new(JMP_EXIT, 0, 0, 0, 0)], PROG_NAME).unwrap_err();
        assert!(e.to_string().contains("verifier log") && e.to_string().contains("R0"), "{e}");
    }
}
