//! Entering a running container: setns into its namespaces, join its
//! cgroup, and exec with the container's privileges. Must run in a
//! single-threaded process: the exec helper (`berth-monitor enter`, see
//! `super::helper`), which `berth exec` becomes and which scripts, the API
//! and health probes start.

use std::os::fd::{AsRawFd, OwnedFd};

use oci_spec::runtime::Spec;

use super::init::{self, ProcessPlan, Stdio};
use super::{EXIT_ENGINE, EXIT_CANNOT_INVOKE};
use crate::sys::cgroup::Cgroup;
use crate::sys::{proc, pty};

pub struct ExecOptions {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    /// Forward our stdin (docker's -i); without it the process gets none.
    pub interactive: bool,
    pub privileged: bool,
}

#[derive(Debug)]
pub struct ExecError {
    pub code: i32,
    pub msg: String,
}

/// Runs the process to completion with this process's stdio (or a pty
/// relayed to it) and returns its exit code.
pub fn exec(spec: &Spec, init_pid: i32, cgroup_path: &str, o: ExecOptions) -> Result<i32, ExecError> {
    let fail = |code: i32, msg: String| ExecError { code, msg };
    if proc::thread_count() > 1 {
        return Err(fail(EXIT_ENGINE, "exec must run in a single-threaded process (use `berth exec`)".into()));
    }
    // What we fork below runs this binary inside the container until it
    // execs the command: it must not be the host's writable file.
    if !crate::sys::exe::self_is_sealed() {
        let e = crate::sys::exe::reexec_sealed();
        return Err(fail(EXIT_ENGINE, format!("exec: cannot run berth from a read-only copy of itself: {e}")));
    }
    let o_interactive = o.interactive;
    let mut plan = ProcessPlan::from_spec(spec).map_err(|e| fail(e.code, e.msg))?;
    plan.args = o.args;
    for kv in o.env {
        let key = kv.split('=').next().unwrap_or("").to_string();
        plan.env.retain(|e| e.split('=').next() != Some(&key));
        plan.env.push(kv);
    }
    if let Some(w) = o.workdir {
        plan.cwd = w;
    }
    if let Some(u) = o.user {
        plan.user = u;
    }
    if o.privileged {
        plan.caps = crate::sys::caps::host_bounding();
        plan.seccomp = None;
        plan.no_new_privs = false;
    }
    // Open the namespaces before forking so a vanished container is a
    // clear error here.
    let mut nss = Vec::new();
    for (name, flag) in [("ipc", libc::CLONE_NEWIPC), ("uts", libc::CLONE_NEWUTS), ("net", libc::CLONE_NEWNET), ("pid", libc::CLONE_NEWPID), ("mnt", libc::CLONE_NEWNS)] {
        let f = proc::open_ns(init_pid, name).map_err(|e| fail(EXIT_ENGINE, format!("container is not running (opening its {name} namespace: {e})")))?;
        nss.push((f, flag));
    }
    // The pty is opened inside, from the container's devpts, and its
    // master comes back over this socket.
    let console = if o.tty {
        Some(std::os::unix::net::UnixStream::pair().map_err(|e| fail(EXIT_ENGINE, format!("socketpair: {e}")))?)
    } else {
        None
    };
    let size = pty::get_size(0);
    let devnull = std::fs::File::open("/dev/null").map_err(|e| fail(EXIT_ENGINE, format!("/dev/null: {e}")))?;
    let (err_r, err_w) = proc::pipe().map_err(|e| fail(EXIT_ENGINE, e.to_string()))?;
    // Born in the container's cgroup where the kernel can (v2, see
    // proc::clone_into_cgroup), else it moves itself in first thing below
    // (Cgroup::enter).
    let cgroup = Cgroup::load(cgroup_path);
    let born_in = cgroup.v2_dir_fd().and_then(|fd| proc::clone_into_cgroup(0, &fd).ok());
    let child = match born_in {
        Some(r) => r,
        None => proc::fork().map_err(|e| fail(EXIT_ENGINE, format!("fork: {e}")))?,
    };
    let Some(child) = child else {
        // Intermediate: join, then fork once more so the pid namespace
        // applies to the process that execs.
        drop(err_r);
        let errfd = err_w.as_raw_fd();
        std::mem::forget(err_w);
        let r = (|| -> Result<i32, init::InitError> {
            let e = |m: String| init::InitError { code: EXIT_ENGINE, msg: m };
            if born_in.is_none() {
                cgroup.enter().map_err(|x| e(x.to_string()))?;
            }
            for (f, flag) in &nss {
                proc::setns(f, *flag).map_err(|x| e(format!("setns: {x}")))?;
            }
            match proc::fork().map_err(|x| e(format!("fork: {x}")))? {
                None => {
                    let stdio = match &console {
                        Some((_, theirs)) => Stdio::ContainerPty { console: theirs.as_raw_fd(), size },
                        None if o_interactive => Stdio::Inherit,
                        None => Stdio::Pipes { stdin: devnull.as_raw_fd(), stdout: 1, stderr: 2 },
                    };
                    let never = init::start_process(&plan, stdio, errfd, false);
                    let err = match never {
                        Ok(n) => match n {},
                        Err(err) => err,
                    };
                    init::report(errfd, &err);
                    proc::exit_now(1)
                }
                Some(pid) => {
                    drop(console);
                    // Not close_fds_from: after setns /proc/self is the
                    // container's procfs, where we have no entry.
                    proc::close_fd(errfd);
                    Ok(proc::wait_pid(pid).map(|s| s.code()).unwrap_or(EXIT_ENGINE))
                }
            }
        })();
        match r {
            Ok(code) => proc::exit_now(code),
            Err(err) => {
                init::report(errfd, &err);
                proc::exit_now(1)
            }
        }
    };
    drop(err_w);
    let master = console.and_then(|(ours, theirs)| {
        drop(theirs);
        pty::recv_fd(ours.as_raw_fd()).ok().flatten()
    });
    if let Some(err) = init::read_report(err_r) {
        let _ = proc::wait_pid(child);
        return Err(fail(err.code, err.msg));
    }
    if let Some(m) = master {
        relay(&m, o_interactive);
    }
    let code = proc::wait_pid(child).map(|s| s.code()).unwrap_or(EXIT_CANNOT_INVOKE);
    Ok(code)
}

/// Copies the user's terminal to the pty and back until the process ends.
pub fn relay(master: &OwnedFd, interactive: bool) {
    let raw = if pty::is_tty(0) { crate::sys::pty::RawMode::enter(std::io::stdin()).ok() } else { None };
    let m = master.as_raw_fd();
    // Our terminal's size follows to the container's: on SIGWINCH (a
    // user's window, or the API's pty resized), and once now for a change
    // made before we listened.
    let winch = proc::signalfd(&[libc::SIGWINCH]).ok();
    let pass_size = || {
        if let Some((rows, cols)) = pty::get_size(0) {
            pty::set_size(m, rows, cols);
        }
    };
    pass_size();
    let mut buf = vec![0u8; 16384];
    let mut stdin_open = interactive;
    loop {
        let mut fds = vec![(m, libc::POLLIN)];
        if let Some(w) = &winch {
            fds.push((w.as_raw_fd(), libc::POLLIN));
        }
        let stdin_at = fds.len();
        if stdin_open {
            fds.push((0, libc::POLLIN));
        }
        let Ok(rev) = proc::poll(&fds, -1) else { break };
        if let Some(w) = &winch
            && rev[1] != 0
            && !proc::read_signalfd(w).is_empty()
        {
            pass_size();
        }
        if rev[0] != 0 {
            match proc::read_fd(m, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if proc::write_all_fd(1, &buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        if stdin_open && rev.get(stdin_at).copied().unwrap_or(0) != 0 {
            match proc::read_fd(0, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = proc::write_all_fd(m, &buf[..n]);
                }
            }
        }
    }
    drop(raw);
}
