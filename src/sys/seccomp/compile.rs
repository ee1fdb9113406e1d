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

/// A rule with its action resolved and its syscall names numbered for this
/// architecture.
struct Rule {
    nrs: Vec<u32>,
    /// One group of ANDed conditions, or (runc) one group per condition;
    /// the rule matches when any group holds. An empty group always holds.
    groups: Vec<Vec<LinuxSeccompArg>>,
    ret: u32,
}

/// Compiles `profile` into a BPF program for the host architecture.
///
/// The program is a binary search on the syscall number: a few compares
/// on each of the container's syscalls where the rule blocks test every
/// name in turn. It is shorter too, and the kernel checks and compiles a
/// filter at about 1.5 us an instruction here, at each container start.
/// A profile whose search would need jumps longer than BPF allows gets
/// the plain rule blocks.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let native = NATIVE.ok_or(SeccompError::UnsupportedArch(std::env::consts::ARCH))?;
    let default_ret = action_ret(
        profile.default_action(),
        profile.default_errno_ret(),
        || "the default action".to_string(),
    )?;
    // x32 syscalls share AUDIT_ARCH_X86_64 but are numbered from
    // 0x40000000; none of our rules name them, so refuse them all.
    let x32_ret = match profile.default_action() {
        LinuxSeccompAction::ScmpActErrno => default_ret,
        _ => libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    };
    let mut rules = Vec::new();
    for rule in profile.syscalls().iter().flatten() {
        if let Some(r) = prepare(&native, rule)? {
            rules.push(r);
        }
    }
    // The search repeats a rule's conditions for each syscall it names, so
    // a profile of argument rules over many names may come out shorter as
    // blocks: the shorter wins, the search on a tie (it decides sooner).
    let plain = blocks(&native, &rules, default_ret, x32_ret);
    let insns = match (search(&native, &rules, default_ret, x32_ret), plain) {
        (Ok(s), Ok(b)) if s.len() <= b.len() => s,
        (Ok(s), Err(_)) => s,
        (_, plain) => plain?,
    };
    if insns.len() > MAX_INSNS {
        return Err(SeccompError::TooLong { len: insns.len() });
    }
    Ok(Program(insns))
}

/// Checks the architecture, leaving the syscall number in the accumulator.
fn prologue(asm: &mut Asm, native: &Native, x32_ret: u32) {
    // Any other ABI (i386 via int 0x80, arm32 compat) would see different
    // syscall numbers, so it must not get past this filter at all.
    asm.load(OFF_ARCH);
    let arch_ok = asm.label();
    asm.jump(libc::BPF_JEQ, native.audit_arch, To(arch_ok), Next);
    asm.ret(libc::SECCOMP_RET_KILL_PROCESS);
    asm.bind(arch_ok);

    asm.load(OFF_NR);
    if native.x32_abi {
        let not_x32 = asm.label();
        asm.jump(libc::BPF_JGE, X32_SYSCALL_BIT, Next, To(not_x32));
        asm.ret(x32_ret);
        asm.bind(not_x32);
    }
}

/// The plain shape: the rule blocks in profile order.
fn blocks(native: &Native, rules: &[Rule], default_ret: u32, x32_ret: u32) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut asm = Asm::default();
    prologue(&mut asm, native, x32_ret);
    // Whether the accumulator still holds the syscall number.
    let mut acc_is_nr = true;
    for rule in rules {
        for chunk in rule.nrs.chunks(MAX_NAMES_PER_BLOCK) {
            for conds in &rule.groups {
                emit_block(&mut asm, chunk, conds, rule.ret, &mut acc_is_nr);
            }
        }
    }
    asm.ret(default_ret);
    asm.finish()
}

/// What a range of syscall numbers leads to: an action, or the conditions
/// (`Chain`, an index into the chains) their rules put on the arguments.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Verdict {
    Ret(u32),
    Chain(usize),
}

/// A rule block: its conditions (none: it always holds) and action.
type Block<'a> = (&'a [LinuxSeccompArg], u32);

/// The rule blocks that apply to one syscall, in order, up to the first
/// without conditions; then the action when none matched.
#[derive(PartialEq)]
struct Chain<'a> {
    blocks: Vec<Block<'a>>,
    tail: u32,
}

/// The search shape: the prologue, a binary search over the ranges of
/// syscall numbers that share a verdict, then each action and chain once.
fn search(native: &Native, rules: &[Rule], default_ret: u32, x32_ret: u32) -> Result<Vec<libc::sock_filter>, SeccompError> {
    use std::collections::BTreeMap;
    // Per syscall, its blocks in profile order; true once one always holds.
    let mut per_nr: BTreeMap<u32, (Vec<Block>, bool)> = BTreeMap::new();
    for rule in rules {
        for &nr in &rule.nrs {
            let (blocks, done) = per_nr.entry(nr).or_default();
            if *done {
                continue;
            }
            for conds in &rule.groups {
                blocks.push((conds.as_slice(), rule.ret));
                if conds.is_empty() {
                    *done = true;
                    break;
                }
            }
        }
    }
    let mut chains: Vec<Chain> = Vec::new();
    // (first number, verdict) in ascending order; each runs to the next.
    let mut ranges: Vec<(u32, Verdict)> = vec![(0, Verdict::Ret(default_ret))];
    let set = |ranges: &mut Vec<(u32, Verdict)>, from: u32, v: Verdict| match ranges.last_mut() {
        Some(last) if last.0 == from => last.1 = v,
        _ => ranges.push((from, v)),
    };
    for (nr, (mut blocks, done)) in per_nr {
        let v = if blocks[0].0.is_empty() {
            Verdict::Ret(blocks[0].1)
        } else {
            let tail = if done { blocks.pop().map_or(default_ret, |b| b.1) } else { default_ret };
            let chain = Chain { blocks, tail };
            Verdict::Chain(match chains.iter().position(|c| *c == chain) {
                Some(i) => i,
                None => {
                    chains.push(chain);
                    chains.len() - 1
                }
            })
        };
        set(&mut ranges, nr, v);
        if let Some(next) = nr.checked_add(1) {
            set(&mut ranges, next, Verdict::Ret(default_ret));
        }
    }
    ranges.dedup_by(|later, earlier| later.1 == earlier.1);

    let mut asm = Asm::default();
    prologue(&mut asm, native, x32_ret);
    let mut targets: Vec<(Verdict, Label)> = Vec::new();
    let mut target = |asm: &mut Asm, v: Verdict| match targets.iter().find(|t| t.0 == v) {
        Some(t) => t.1,
        None => {
            let l = asm.label();
            targets.push((v, l));
            l
        }
    };
    if ranges.len() == 1 {
        let l = target(&mut asm, ranges[0].1);
        asm.ja(l);
    } else {
        split(&mut asm, &ranges, &mut target);
    }
    // Actions first: most ranges end in one, and they are short.
    targets.sort_by_key(|t| matches!(t.0, Verdict::Chain(_)));
    for (v, label) in targets {
        asm.bind(label);
        match v {
            Verdict::Ret(k) => asm.ret(k),
            Verdict::Chain(i) => emit_chain(&mut asm, &chains[i]),
        }
    }
    asm.finish()
}

/// Emits the search over `ranges` (at least two), the syscall number in
/// the accumulator: every compare halves what is left, and a range decided
/// jumps to its verdict's label.
fn split(asm: &mut Asm, ranges: &[(u32, Verdict)], target: &mut impl FnMut(&mut Asm, Verdict) -> Label) {
    let mid = ranges.len() / 2;
    let (low, high) = ranges.split_at(mid);
    let right = if high.len() == 1 { target(asm, high[0].1) } else { asm.label() };
    let left = if low.len() == 1 { To(target(asm, low[0].1)) } else { Next };
    asm.jump(libc::BPF_JGE, high[0].0, To(right), left);
    if low.len() > 1 {
        split(asm, low, target);
    }
    if high.len() > 1 {
        asm.bind(right);
        split(asm, high, target);
    }
}

/// One syscall's argument rules. Blocks in a row that each test one flag
/// bit of the same argument for the same action (Docker's `clone` rules:
/// any namespace flag refuses it) become one `jset` on all those bits.
fn emit_chain(asm: &mut Asm, chain: &Chain) {
    let flag = |conds: &[LinuxSeccompArg]| match conds {
        [c] if c.op() == LinuxSeccompOperator::ScmpCmpMaskedEq
            && c.value().is_power_of_two()
            && c.value_two() == Some(c.value()) =>
        {
            Some((c.index(), c.value()))
        }
        _ => None,
    };
    let mut i = 0;
    while i < chain.blocks.len() {
        let (conds, ret) = chain.blocks[i];
        if let Some((index, bit)) = flag(conds) {
            let mut mask = bit;
            let mut j = i + 1;
            while let Some(&(next, next_ret)) = chain.blocks.get(j) {
                match flag(next) {
                    Some((ix, b)) if ix == index && next_ret == ret => mask |= b,
                    _ => break,
                }
                j += 1;
            }
            if j > i + 1 {
                let lo_off = OFF_ARGS + 8 * index as u32;
                let (m_hi, m_lo) = split_word(mask);
                let parts: Vec<(u32, u32)> = [(lo_off, m_lo), (lo_off + 4, m_hi)].into_iter().filter(|p| p.1 != 0).collect();
                let (hit, miss) = (asm.label(), asm.label());
                for (n, (off, m)) in parts.iter().enumerate() {
                    asm.load(*off);
                    if n + 1 == parts.len() {
                        asm.jump(libc::BPF_JSET, *m, Next, To(miss));
                    } else {
                        asm.jump(libc::BPF_JSET, *m, To(hit), Next);
                    }
                }
                asm.bind(hit);
                asm.ret(ret);
                asm.bind(miss);
                i = j;
                continue;
            }
        }
        let miss = asm.label();
        for cond in conds {
            emit_condition(asm, cond, miss);
        }
        asm.ret(ret);
        asm.bind(miss);
        i += 1;
    }
    asm.ret(chain.tail);
}

/// Resolves `rule` for this architecture: None when it names no syscall
/// this architecture has.
fn prepare(native: &Native, rule: &LinuxSyscall) -> Result<Option<Rule>, SeccompError> {
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
        return Ok(None); // nothing this architecture knows
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
    let groups = if repeated {
        args.chunks(1).map(<[_]>::to_vec).collect()
    } else {
        vec![args.to_vec()]
    };
    Ok(Some(Rule { nrs, groups, ret }))
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
    let (v_hi, v_lo) = split_word(cond.value());
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
            let (m_hi, m_lo) = split_word(cond.value());
            let (d_hi, d_lo) = split_word(cond.value_two().unwrap_or(0));
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

fn split_word(v: u64) -> (u32, u32) {
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

    /// Both shapes of a profile, through `compile`'s own steps.
    fn both(p: &LinuxSeccomp) -> (Program, Program) {
        let native = native();
        let default_ret = action_ret(p.default_action(), p.default_errno_ret(), String::new).unwrap();
        let x32_ret = match p.default_action() {
            LinuxSeccompAction::ScmpActErrno => default_ret,
            _ => libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        };
        let rules: Vec<Rule> = p.syscalls().iter().flatten().filter_map(|r| prepare(&native, r).unwrap()).collect();
        (
            Program(search(&native, &rules, default_ret, x32_ret).unwrap()),
            Program(blocks(&native, &rules, default_ret, x32_ret).unwrap()),
        )
    }

    /// The search must decide every call as the rule blocks in profile
    /// order do: random profiles (overlapping names, argument rules before
    /// and after plain ones, flag tests in a row) against random calls.
    #[test]
    fn the_search_decides_as_the_rule_blocks_do() {
        use LinuxSeccompAction::*;
        use LinuxSeccompOperator::*;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let names: Vec<String> = native().syscalls.iter().take(40).map(|(s, _)| s[4..].to_string()).collect();
        let actions = [ScmpActAllow, ScmpActErrno, ScmpActLog, ScmpActTrap, ScmpActKillProcess];
        let ops = [ScmpCmpEq, ScmpCmpNe, ScmpCmpLt, ScmpCmpLe, ScmpCmpGt, ScmpCmpGe, ScmpCmpMaskedEq];
        let values = [0u64, 1, 2, 0x10, 0x2000_0000, 0x1_0000_0000, u64::MAX];
        for round in 0..300 {
            let mut rules = Vec::new();
            for _ in 0..1 + rnd(12) {
                let picked: Vec<&str> = (0..1 + rnd(6)).map(|_| names[rnd(names.len() as u64) as usize].as_str()).collect();
                let action = actions[rnd(actions.len() as u64) as usize];
                let mut args = Vec::new();
                match rnd(3) {
                    0 => {}
                    1 => {
                        // a flag bit, as Docker's clone rules test
                        let bit = 1u64 << [0, 3, 17, 31, 33][rnd(5) as usize];
                        args.push(arg(rnd(2) as usize, ScmpCmpMaskedEq, bit, Some(bit)));
                    }
                    _ => {
                        for _ in 0..1 + rnd(2) {
                            let v = values[rnd(values.len() as u64) as usize];
                            args.push(arg(rnd(3) as usize, ops[rnd(ops.len() as u64) as usize], v, Some(values[rnd(7) as usize])));
                        }
                    }
                }
                let mut r = rule(&picked, action, args);
                if action == ScmpActErrno {
                    r.set_errno_ret(Some(1 + rnd(40) as u32));
                }
                rules.push(r);
            }
            let default = [ScmpActAllow, ScmpActErrno][round % 2];
            let (search, blocks) = both(&profile(default, rules));
            let arch = native().audit_arch;
            for _ in 0..400 {
                let nr = if rnd(8) == 0 { rnd(1000) as u32 } else { native().syscalls[rnd(42) as usize].1 as u32 };
                let mut a = [0u64; 6];
                for x in a.iter_mut().take(3) {
                    *x = match rnd(3) {
                        0 => values[rnd(values.len() as u64) as usize],
                        1 => 1 << rnd(64),
                        _ => rnd(u64::MAX),
                    };
                }
                let d = data(arch, nr, a);
                assert_eq!(run(&search, &d), run(&blocks, &d), "round {round}, nr {nr}, args {a:x?}");
            }
        }
    }

    /// Docker's default profile: the shape each container start installs.
    #[test]
    fn the_default_profile_is_short() {
        let p = super::super::docker_default(&[]);
        let (search, blocks) = both(&p);
        // 77 against 103 on x86_64: the denied numbers are scattered.
        assert!(search.len() * 5 < blocks.len() * 4, "{} against {}", search.len(), blocks.len());
        assert_eq!(compile(&p).unwrap().len(), search.len());
        for (name, args, want) in [
            ("mount", [0; 6], errno(libc::EPERM)),
            ("clone", [libc::CLONE_NEWNET as u64, 0, 0, 0, 0, 0], errno(libc::EPERM)),
            ("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0], ALLOW),
            ("clone3", [0; 6], errno(libc::ENOSYS)),
            ("read", [0; 6], ALLOW),
        ] {
            assert_eq!(verdict(&search, name, args), want, "{name}");
        }
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
