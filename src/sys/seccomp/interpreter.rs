//! A classic-BPF interpreter and a hand-made `struct seccomp_data`, so the
//! tests can run compiled programs without installing them.

use super::Program;
use super::syscalls::{NATIVE, Native};

pub(super) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub(super) fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

pub(super) fn native() -> Native {
    NATIVE.expect("tests run on x86_64 or aarch64")
}

pub(super) fn nr(name: &str) -> u32 {
    native()
        .syscall_nr(name)
        .unwrap_or_else(|| panic!("no syscall {name}"))
}

/// A hand-made `struct seccomp_data`, as the kernel lays it out.
pub(super) fn data(arch: u32, nr: u32, args: [u64; 6]) -> [u8; 64] {
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
pub(super) fn run(prog: &Program, d: &[u8; 64]) -> u32 {
    let insns = &prog.0;
    assert!(!insns.is_empty() && insns.len() <= super::MAX_INSNS);
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

pub(super) fn verdict(prog: &Program, name: &str, args: [u64; 6]) -> u32 {
    run(prog, &data(native().audit_arch, nr(name), args))
}
