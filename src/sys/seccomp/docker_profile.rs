//! berth's default profile, with the effect of Docker's.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::syscalls::NATIVE;

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
    use super::super::interpreter::*;
    use super::super::syscalls::{AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
    use super::super::{MAX_INSNS, Program, compile};
    use super::*;

    fn default_program(caps: &[&str]) -> Program {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        compile(&docker_default(&caps)).expect("default profile compiles")
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
}
