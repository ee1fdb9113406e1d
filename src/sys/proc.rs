//! Processes: clone with namespaces, fds, pidfds, /proc readings.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// fork(2) with namespace flags: in the child returns None, in the parent
/// the child's pid. Safe only in a single-threaded process (the monitor and
/// the exec helper are), which is why every caller is one.
pub fn clone_fork(ns_flags: i32) -> io::Result<Option<i32>> {
    // SAFETY: a raw clone without CLONE_VM and without a new stack behaves
    // like fork(); the caller is single-threaded.
    let r = check(unsafe {
        libc::syscall(libc::SYS_clone, (ns_flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    })?;
    Ok(if r == 0 { None } else { Some(r as i32) })
}

/// `clone_fork` with the child born in the cgroup v2 directory open as
/// `cgroup` (clone3's CLONE_INTO_CGROUP, Linux 5.7+). Moving a process in
/// later writes cgroup.procs, which takes a global lock whose write side
/// waits for an RCU grace period (5 to 15 ms after a pause); being born
/// there takes only its read side. An error means no child: the caller
/// falls back to `clone_fork` and the child moves itself in
/// (`Cgroup::enter`: an old kernel, a seccomp filter that hides clone3, v1).
pub fn clone_into_cgroup(ns_flags: i32, cgroup: &impl AsRawFd) -> io::Result<Option<i32>> {
    // struct clone_args, as of Linux 5.7 (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: ns_flags as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: without CLONE_VM and a stack, clone3 behaves like fork(); the
    // caller is single-threaded; `args` outlives the call.
    let r = check(unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) })?;
    Ok(if r == 0 { None } else { Some(r as i32) })
}

/// fork(2) through libc, which keeps its own caches right in the child.
/// Callers are single-threaded.
pub fn fork() -> io::Result<Option<i32>> {
    // SAFETY: the callers (monitor, exec helper) are single-threaded.
    let r = unsafe { libc::fork() };
    match r {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Makes `fd` available as `target` (dup2), clearing close-on-exec.
pub fn dup_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on descriptors we own.
    if unsafe { libc::dup2(fd, target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes every descriptor from `from` up, except those in `keep`.
/// close_range first: it needs no /proc, which a container's mount
/// namespace may not show us; listing /proc/self/fd is the fallback for
/// kernels before 5.9.
pub fn close_fds_from(from: RawFd, keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|k| *k >= from).collect();
    keep.sort_unstable();
    let mut lo = from as libc::c_uint;
    let mut ok = true;
    for k in keep.iter().map(|k| *k as libc::c_uint).chain([libc::c_uint::MAX]) {
        if k > lo {
            // SAFETY: closing numbers unknown to Rust owners in the freshly
            // forked child where this is called.
            ok &= unsafe { libc::syscall(libc::SYS_close_range, lo, k - 1, 0) } == 0;
        }
        lo = k.saturating_add(1);
    }
    if ok {
        return;
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for fd in fds {
        if fd >= from && !keep.contains(&fd) {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Closes a raw descriptor we hold without an owner.
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns the number and never uses it again.
    unsafe { libc::close(fd) };
}

pub fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd number.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let nf = if on { flags | libc::FD_CLOEXEC } else { flags & !libc::FD_CLOEXEC };
    if unsafe { libc::fcntl(fd, libc::F_SETFD, nf) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Leaves the process at once, without running destructors or atexit
/// handlers (they belong to the parent's copy of memory).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(code) }
}

pub fn set_no_new_privs() -> io::Result<()> {
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)
}

/// Asks the kernel to send `sig` to us when our parent dies.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    let sig = nix::sys::signal::Signal::try_from(sig).map_err(io::Error::from)?;
    nix::sys::prctl::set_pdeathsig(sig).map_err(io::Error::from)
}

pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the syscall returns a new fd we then own.
    let r = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: signal through a pidfd we own; no siginfo.
    check(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0usize, 0) })?;
    Ok(())
}

/// Waits until the process behind `pidfd` is gone; false on timeout.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout: Option<Duration>) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.map(|t| t.as_millis().min(i32::MAX as u128) as i32).unwrap_or(-1);
    loop {
        // SAFETY: one pollfd on the stack.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(r > 0);
    }
}

/// Sends a signal by pid.
/// SIGTERM, then SIGKILL after `grace` if it still runs.
pub fn terminate(pid: i32, grace: std::time::Duration) {
    if pid <= 0 || kill(pid, libc::SIGTERM).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + grace;
    while is_alive(pid, None) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = kill(pid, libc::SIGKILL);
}

pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill with integer arguments.
    if unsafe { libc::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat), which tells a live process from a recycled pid.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).map(|(_, t)| t)
}

/// How long ago the process started (None when it is gone).
pub fn age(pid: i32) -> Option<std::time::Duration> {
    // SAFETY: sysconf with a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let up: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    let started = start_time(pid)? as f64 / hz;
    Some(std::time::Duration::from_secs_f64((up - started).max(0.0)))
}

/// The state letter and start time from /proc/PID/stat, read with one
/// read call: every container lookup checks its processes this way, and
/// read_to_string's growing buffer took six.
fn stat_fields(pid: i32) -> Option<(char, u64)> {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    let mut f = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let n = f.read(&mut buf).ok()?;
    let s = std::str::from_utf8(&buf[..n]).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let state = after.chars().next()?;
    Some((state, after.split(' ').nth(19)?.parse().ok()?))
}

/// Every process below `pid` (children, their children, ...), as the
/// host's /proc shows them.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parent: Vec<(i32, i32)> = Vec::new();
    for d in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = d.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(st) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // The field after ") STATE " is the parent.
        if let Some(pp) = st.rsplit_once(") ").and_then(|(_, r)| r.split(' ').nth(1)).and_then(|x| x.parse::<i32>().ok()) {
            parent.push((p, pp));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, _) in parent.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

pub fn is_alive(pid: i32, started: Option<u64>) -> bool {
    if pid <= 0 {
        return false;
    }
    match stat_fields(pid) {
        None => false,
        // A zombie is not alive for our purposes.
        Some((state, t)) => state != 'Z' && started.is_none_or(|st| st == t),
    }
}

pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().unwrap_or(1))))
        .unwrap_or(1)
}

pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_ascii_uppercase();
    if let Ok(v) = n.parse::<i32>() {
        return (1..=64).contains(&v).then_some(v);
    }
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    })
}

/// Sets a signal's disposition to default or ignore.
pub fn set_signal_default(sig: i32, ignore: bool) {
    // SAFETY: installing SIG_DFL/SIG_IGN has no handler code.
    unsafe { libc::signal(sig, if ignore { libc::SIG_IGN } else { libc::SIG_DFL }) };
}

/// Empties the signal mask (a forked child inherits the monitor's).
pub fn unblock_all_signals() {
    // SAFETY: sigset on the stack, filled by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Blocks `sigs` and returns a signalfd that reports them.
pub fn signalfd(sigs: &[i32]) -> io::Result<OwnedFd> {
    // SAFETY: sigset on the stack, then a new fd we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Drains a signalfd, returning the signal numbers read.
pub fn read_signalfd(fd: &OwnedFd) -> Vec<i32> {
    let mut out = Vec::new();
    loop {
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let sz = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading into a struct of the right size.
        let r = unsafe { libc::read(fd.as_raw_fd(), &mut info as *mut _ as *mut libc::c_void, sz) };
        if r as usize != sz {
            break;
        }
        out.push(info.ssi_signo as i32);
    }
    out
}

/// Non-blocking reap of any child: Some((pid, status)) for each exited one.
pub fn reap_any() -> Option<(i32, WaitStatus)> {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    Some((pid, WaitStatus::from_raw(status)))
}

/// Blocking wait for one child.
pub fn wait_pid(pid: i32) -> io::Result<WaitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(WaitStatus::from_raw(status));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WaitStatus {
    Exited(i32),
    Signaled(i32),
    Other,
}

impl WaitStatus {
    fn from_raw(s: i32) -> WaitStatus {
        if libc::WIFEXITED(s) {
            WaitStatus::Exited(libc::WEXITSTATUS(s))
        } else if libc::WIFSIGNALED(s) {
            WaitStatus::Signaled(libc::WTERMSIG(s))
        } else {
            WaitStatus::Other
        }
    }
    /// The shell's convention, which docker follows: 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            WaitStatus::Exited(c) => c,
            WaitStatus::Signaled(s) => 128 + s,
            WaitStatus::Other => 255,
        }
    }
}

/// Opens a namespace file of another process.
pub fn open_ns(pid: i32, ns: &str) -> io::Result<std::fs::File> {
    std::fs::File::open(format!("/proc/{pid}/ns/{ns}"))
}

pub fn setns(f: &std::fs::File, nstype: i32) -> io::Result<()> {
    // SAFETY: setns on an fd we hold.
    if unsafe { libc::setns(f.as_raw_fd(), nstype) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn sethostname(name: &str) -> io::Result<()> {
    nix::unistd::sethostname(name).map_err(io::Error::from)
}

pub fn setsid() -> io::Result<()> {
    nix::unistd::setsid().map(|_| ()).map_err(io::Error::from)
}

pub fn chdir(p: &std::path::Path) -> io::Result<()> {
    nix::unistd::chdir(p).map_err(io::Error::from)
}

/// Sets uid, gid and supplementary groups, keeping capabilities across the
/// uid change so the caller can then set exactly the ones the spec asks for.
pub fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    use nix::unistd::{Gid, Uid};
    nix::sys::prctl::set_keepcaps(true)?;
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups)?;
    let (g, u) = (Gid::from_raw(gid), Uid::from_raw(uid));
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setresuid(u, u, u)?;
    Ok(())
}

/// execve that returns only on failure.
pub fn execve(path: &std::ffi::CStr, args: &[std::ffi::CString], env: &[std::ffi::CString]) -> io::Error {
    match nix::unistd::execve(path, args, env) {
        Err(e) => io::Error::from(e),
        Ok(_) => unreachable!(),
    }
}

/// Does `path` name a file we could execute? (access(X_OK) from inside.)
pub fn access_exec(path: &std::path::Path) -> io::Result<()> {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).map_err(io::Error::from)
}

pub fn getpid() -> i32 {
    std::process::id() as i32
}

/// Restricts the hard and soft limit of a resource, never above the
/// current hard limit (root here lacks CAP_SYS_RESOURCE).
pub fn set_rlimit(resource: i32, soft: u64, hard: u64) -> io::Result<()> {
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: get/setrlimit with a struct on the stack.
    unsafe {
        if libc::getrlimit(resource as _, &mut cur) < 0 {
            return Err(io::Error::last_os_error());
        }
        let hard = hard.min(cur.rlim_max);
        let lim = libc::rlimit { rlim_cur: soft.min(hard), rlim_max: hard };
        if libc::setrlimit(resource as _, &lim) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Resource limits by docker's `--ulimit` names, with their RLIMIT_ numbers.
pub const RLIMITS: &[(&str, i32)] = &[
    ("core", libc::RLIMIT_CORE as i32), ("cpu", libc::RLIMIT_CPU as i32), ("data", libc::RLIMIT_DATA as i32), ("fsize", libc::RLIMIT_FSIZE as i32),
    ("locks", libc::RLIMIT_LOCKS as i32), ("memlock", libc::RLIMIT_MEMLOCK as i32), ("msgqueue", libc::RLIMIT_MSGQUEUE as i32), ("nice", libc::RLIMIT_NICE as i32),
    ("nofile", libc::RLIMIT_NOFILE as i32), ("nproc", libc::RLIMIT_NPROC as i32), ("rss", libc::RLIMIT_RSS as i32), ("rtprio", libc::RLIMIT_RTPRIO as i32),
    ("rttime", libc::RLIMIT_RTTIME as i32), ("sigpending", libc::RLIMIT_SIGPENDING as i32), ("stack", libc::RLIMIT_STACK as i32), ("as", libc::RLIMIT_AS as i32),
];

/// The (soft, hard) limits of a resource in this process.
pub fn get_rlimit(resource: i32) -> io::Result<(u64, u64)> {
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills a struct on the stack.
    if unsafe { libc::getrlimit(resource as _, &mut cur) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cur.rlim_cur, cur.rlim_max))
}

/// Sets a resource's limits as given (unlike `set_rlimit`, nothing is
/// clamped: raising a hard limit without CAP_SYS_RESOURCE fails with EPERM).
pub fn set_rlimit_exact(resource: i32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft as _, rlim_max: hard as _ };
    // SAFETY: setrlimit reads a struct on the stack.
    if unsafe { libc::setrlimit(resource as _, &lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn duration_ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Makes `cmd` run in the network namespace at `ns` (a `setns` between
/// fork and exec), leaving the caller's own namespace alone.
pub fn enter_netns_on_exec(cmd: &mut std::process::Command, ns: &std::path::Path) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let f = std::fs::File::open(ns).map_err(|e| io::Error::new(e.kind(), format!("opening network namespace {}: {e}", ns.display())))?;
    // SAFETY: setns is async-signal-safe; `f` moves into the closure and
    // stays open until the child has exec'd.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// poll(2) over (fd, events) pairs; returns revents in the same order.
pub fn poll(fds: &[(RawFd, i16)], timeout_ms: i32) -> io::Result<Vec<i16>> {
    let mut p: Vec<libc::pollfd> = fds.iter().map(|&(fd, events)| libc::pollfd { fd, events, revents: 0 }).collect();
    // SAFETY: a vector of pollfd of the length we pass.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![0; fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter().map(|x| x.revents).collect())
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on an fd number.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let nf = if on { flags | libc::O_NONBLOCK } else { flags & !libc::O_NONBLOCK };
    if unsafe { libc::fcntl(fd, libc::F_SETFL, nf) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe whose both ends close on exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}

/// read(2) on a raw fd: Ok(0) at end of file.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a buffer of the given length.
    let r = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

/// Writes all of `buf` to a raw fd, retrying on EAGAIN briefly.
pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: writing from a buffer of the given length.
        let r = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    poll(&[(fd, libc::POLLOUT)], 1000)?;
                    continue;
                }
                _ => return Err(e),
            }
        }
        buf = &buf[r as usize..];
    }
    Ok(())
}

/// Returns freed heap memory to the kernel.
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks the allocator's own structures.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shells_children_are_its_descendants() {
        let mut c = std::process::Command::new("sh").args(["-c", "sleep 30 & sleep 30 & wait"]).spawn().unwrap();
        let pid = c.id() as i32;
        let mut found = Vec::new();
        for _ in 0..100 {
            found = super::descendants(pid);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        for p in &found {
            let _ = super::kill(*p, libc::SIGKILL);
        }
        let _ = c.kill();
        let _ = c.wait();
        assert_eq!(found.len(), 2, "two sleeps below the shell: {found:?}");
    }
}

/// Starts `cmd` as a daemon that init adopts (a second fork between fork
/// and exec, in a session of its own), so that no berth process has to
/// reap it. `ready` (a pipe's write end) becomes its fd 3. Returns its pid.
pub fn spawn_daemon(cmd: &mut std::process::Command, ready: Option<&OwnedFd>) -> io::Result<i32> {
    use std::os::unix::process::CommandExt;
    let (pid_r, pid_w) = pipe()?;
    let (rw, pw) = (ready.map(|f| f.as_raw_fd()), pid_w.as_raw_fd());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                _ => libc::_exit(0),
            }
            let me = libc::getpid().to_ne_bytes();
            libc::write(pw, me.as_ptr().cast(), me.len());
            if let Some(rw) = rw {
                if rw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0);
                } else if libc::dup2(rw, 3) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let _ = child.wait();
    drop(pid_w);
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match read_fd(pid_r.as_raw_fd(), &mut b[got..])? {
            0 => return Err(io::Error::other("the daemon did not start")),
            n => got += n,
        }
    }
    Ok(i32::from_ne_bytes(b))
}

/// A system tool by name: from PATH, else from the sbin directories that
/// an unprivileged user's PATH often lacks (nft, tc).
pub fn tool(name: &str) -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
    if !on_path {
        for d in ["/usr/sbin", "/sbin", "/usr/local/sbin"] {
            let p = std::path::Path::new(d).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    std::path::PathBuf::from(name)
}
