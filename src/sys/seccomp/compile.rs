//! Compiling an OCI profile into the program shape described in `mod.rs`.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall,
};

use super::asm::{Asm, Label, Target::Next, Target::To};
use super::syscalls::{NATIVE, Native, X32_SYSCALL_BIT};
use super::{MAX_INSNS, Program, SeccompError};

/// Offsets into `struct seccomp_data` (nr: u32, arch: u32, ip: u64, args: [u64; 6]).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const MAX_ARGS: usize = 6;

/// At most this many syscall numbers share one rule block. It bounds the
/// longest jump in a block (numbers + 6 conditions + return) well under 255.
const MAX_NAMES_PER_BLOCK: usize = 128;

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

#[cfg(test)]
mod tests {
    use super::super::interpreter::*;
    use super::super::syscalls::AUDIT_ARCH_X86_64;
    use super::*;
    use oci_spec::runtime::LinuxSeccompArgBuilder;

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
}
