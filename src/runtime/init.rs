//! The container's init: runs in the freshly cloned child (pid 1 of new
//! namespaces), builds the root filesystem, drops privileges and execs the
//! user's command. Every failure before exec travels back to the monitor as
//! (exit code, message) over a close-on-exec pipe.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::Spec;

use super::{EXIT_CANNOT_INVOKE, EXIT_ENGINE, EXIT_NOT_FOUND};
use crate::sys::mount::{self, MsFlags};
use crate::sys::{caps, net, proc, pty, rootfs, seccomp};

pub struct InitError {
    pub code: i32,
    pub msg: String,
}

fn fail(msg: impl std::fmt::Display) -> InitError {
    InitError { code: EXIT_ENGINE, msg: msg.to_string() }
}

type R<T> = Result<T, InitError>;

pub enum Stdio {
    Pty { slave: RawFd },
    /// Open a pty in the container's own devpts and send its master over
    /// `console` (a unix socket) to whoever relays it.
    ContainerPty { console: RawFd, size: Option<(u16, u16)> },
    /// stdin -1: the container's /dev/null.
    Pipes { stdin: RawFd, stdout: RawFd, stderr: RawFd },
    /// Use the descriptors 0, 1, 2 we already have (exec without a tty).
    Inherit,
}

/// What the process to exec looks like, shared by init and exec.
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub seccomp: Option<seccomp::Program>,
    /// `--ulimit`s: (name, resource, soft, hard).
    pub rlimits: Vec<(String, i32, u64, u64)>,
}

impl ProcessPlan {
    pub fn from_spec(spec: &Spec) -> R<ProcessPlan> {
        let p = spec.process().as_ref().ok_or_else(|| fail("config.json has no process"))?;
        let caps: Vec<String> = p
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref())
            .map(|s| s.iter().filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp::compile(s).map_err(|e| fail(format!("seccomp profile: {e}")))?),
            None => None,
        };
        let user = spec.annotations().as_ref().and_then(|a| a.get("berth.user").cloned()).unwrap_or_default();
        let mut rlimits = Vec::new();
        for r in p.rlimits().clone().unwrap_or_default() {
            let name = serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(|s| s.trim_start_matches("RLIMIT_").to_ascii_lowercase())).unwrap_or_default();
            let resource = proc::RLIMITS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r).ok_or_else(|| fail(format!("config.json: rlimit {:?} is unknown to berth", r.typ())))?;
            rlimits.push((name, resource, r.soft(), r.hard()));
        }
        Ok(ProcessPlan {
            args: p.args().clone().unwrap_or_default(),
            env: p.env().clone().unwrap_or_default(),
            cwd: p.cwd().to_string_lossy().into_owned(),
            user,
            caps,
            no_new_privs: p.no_new_privileges().unwrap_or(true),
            seccomp,
            rlimits,
        })
    }
}

/// Entry point in the cloned child. Never returns.
/// `door`: the way into the container's cgroup, which the monitor makes
/// while this builds the root (v1); None when init is in it already.
pub fn run(spec: &Spec, stdio: Stdio, go: RawFd, errfd: RawFd, door: Option<crate::sys::cgroup::Door>) -> ! {
    let r = (|| {
        // If the monitor dies, its container must not live on unsupervised.
        proc::set_parent_death_signal(libc::SIGKILL).map_err(fail)?;
        prepare(spec)?;
        let plan = ProcessPlan::from_spec(spec)?;
        // "go" says the monitor survived the clone, made the cgroup and
        // supervises us, so nothing of the user's runs unwatched.
        wait_go(go)?;
        // Into the cgroup before anything of the user's runs.
        if let Some(d) = door {
            d.enter().map_err(|x| fail(format!("joining the container's cgroup: {x}")))?;
        }
        crate::fault!("start.exec");
        start_process(&plan, stdio, errfd, true)
    })();
    let e = match r {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(errfd, &e);
    proc::exit_now(1)
}

pub fn report(errfd: RawFd, e: &InitError) {
    // SAFETY: errfd is the write end handed to us; we are about to exit.
    let mut f = unsafe { std::fs::File::from_raw_fd(errfd) };
    let _ = f.write_all(&super::attach::error_payload(e.code, &e.msg));
    std::mem::forget(f);
}

/// Reads what `report` wrote; None when the pipe closed empty (exec worked).
pub fn read_report(fd: std::os::fd::OwnedFd) -> Option<InitError> {
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    if buf.is_empty() {
        return None;
    }
    let (code, msg) = super::attach::parse_error(&buf);
    Some(InitError { code, msg })
}

fn wait_go(go: RawFd) -> R<()> {
    // SAFETY: go is the read end given by the monitor, owned by us now.
    let mut g = unsafe { std::fs::File::from_raw_fd(go) };
    let mut b = [0u8; 1];
    if g.read(&mut b).map_err(fail)? == 0 {
        return Err(fail("monitor went away before start"));
    }
    Ok(())
}

fn prepare(spec: &Spec) -> R<()> {
    // Namespaces given by path (a network prepared with its veths) are
    // joined before anything else.
    for n in spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default() {
        if let Some(p) = n.path() {
            let flag = match n.typ() {
                oci_spec::runtime::LinuxNamespaceType::Network => libc::CLONE_NEWNET,
                oci_spec::runtime::LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
                oci_spec::runtime::LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
                _ => continue,
            };
            let f = std::fs::File::open(p).map_err(|e| fail(format!("opening namespace {}: {e}", p.display())))?;
            proc::setns(&f, flag).map_err(|e| fail(format!("joining namespace {}: {e}", p.display())))?;
        }
    }
    if let Some(h) = spec.hostname() {
        proc::sethostname(h).map_err(|e| fail(format!("sethostname: {e}")))?;
    }
    // Nothing we mount may propagate back to the host.
    mount::make_private(Path::new("/"), true).map_err(fail)?;
    let root = spec.root().as_ref().ok_or_else(|| fail("config.json has no root"))?.path().clone();
    let mounts = spec.mounts().clone().unwrap_or_default();
    for m in &mounts {
        if m.destination() == Path::new("/") {
            mount_root(m, &root)?;
        }
    }
    for m in &mounts {
        if m.destination() != Path::new("/") {
            do_mount(m, &root)?;
        }
    }
    if let Some(linux) = spec.linux() {
        for d in linux.devices().clone().unwrap_or_default() {
            let target = in_root(&root, d.path())?;
            let kind = match d.typ() {
                oci_spec::runtime::LinuxDeviceType::B => 'b',
                oci_spec::runtime::LinuxDeviceType::P => 'p',
                _ => 'c',
            };
            let _ = std::fs::remove_file(&target);
            // --device /dev/net/tun needs /dev/net in the container's tmpfs.
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(format!("creating {}: {e}", dir.display())))?;
            }
            // In a user namespace (rootless) the kernel makes no device
            // node: the host's own is bind-mounted, as runc and crun do.
            if crate::rootless::active() {
                std::fs::write(&target, b"").map_err(|e| fail(format!("creating {}: {e}", target.display())))?;
                mount::bind(d.path(), &target, false).map_err(|e| fail(format!("binding the host's {} (rootless): {e}", d.path().display())))?;
                continue;
            }
            mount::mknod(&target, kind, d.major() as u64, d.minor() as u64, d.file_mode().unwrap_or(0o666)).map_err(fail)?;
            // mknod applies the umask; set the mode the spec asks for.
            set_mode(&target, d.file_mode().unwrap_or(0o666))?;
            mount::chown(&target, d.uid().unwrap_or(0), d.gid().unwrap_or(0)).map_err(fail)?;
        }
    }
    for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")] {
        let p = root.join("dev").join(link);
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).map_err(|e| fail(format!("symlink /dev/{link}: {e}")))?;
    }
    if let Some(linux) = spec.linux() {
        for (k, v) in linux.sysctl().clone().unwrap_or_default() {
            let p = root.join("proc/sys").join(k.replace('.', "/"));
            std::fs::write(&p, &v).map_err(|e| fail(format!("sysctl {k}={v}: {e}")))?;
        }
    }
    let has_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none()));
    if has_netns {
        net::link_up("lo").map_err(|e| fail(format!("bringing up lo: {e}")))?;
    }
    mount::pivot_into(&root).map_err(fail)?;
    if let Some(linux) = spec.linux() {
        for p in linux.masked_paths().clone().unwrap_or_default() {
            mask(Path::new(&p))?;
        }
        for p in linux.readonly_paths().clone().unwrap_or_default() {
            let path = Path::new(&p);
            if !path.exists() {
                continue;
            }
            mount::bind(path, path, true).map_err(fail)?;
            mount::remount_ro(path, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC).map_err(fail)?;
        }
    }
    if spec.root().as_ref().is_some_and(|r| r.readonly() == Some(true)) {
        // The working directory is made now, while the root can still
        // take it; mounts on the root (/dev, /proc, /etc/hosts, volumes,
        // tmpfs) are mounts of their own and keep their flags.
        if let Some(p) = spec.process() {
            std::fs::create_dir_all(p.cwd()).map_err(|e| fail(format!("creating working directory {}: {e}", p.cwd().display())))?;
        }
        mount::remount_ro(Path::new("/"), MsFlags::empty()).map_err(|e| fail(format!("making the root filesystem read-only: {e}")))?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> R<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| fail(format!("chmod {}: {e}", p.display())))
}

/// Hides a path: /dev/null over a file, an empty read-only tmpfs over a
/// directory.
fn mask(p: &Path) -> R<()> {
    match std::fs::metadata(p) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => mount::mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, None).map_err(fail),
        Ok(_) => mount::bind(Path::new("/dev/null"), p, false).map_err(fail),
    }
}

fn mount_root(m: &oci_spec::runtime::Mount, root: &Path) -> R<()> {
    let opts = m.options().clone().unwrap_or_default();
    // fuse-overlayfs, mounted by the monitor in the namespace ours copies.
    if opts.iter().any(|o| o == crate::sys::fuseoverlay::PREMOUNTED) {
        return Ok(());
    }
    let mut data = Vec::new();
    let mut volatile = false;
    for o in &opts {
        if let Some(dir) = o.strip_prefix("berth.chdir=") {
            // Lower dirs are given relative to the layers directory, which
            // keeps the option string short.
            proc::chdir(Path::new(dir)).map_err(|e| fail(format!("chdir {dir}: {e}")))?;
        } else if o == crate::container::spec::VOLATILE {
            volatile = true;
        } else {
            data.push(o.as_str());
        }
    }
    let data = data.join(",");
    // A kernel before 5.10 refuses "volatile" (EINVAL): mount without it.
    if volatile && mount::mount(Some("overlay"), root, Some("overlay"), MsFlags::empty(), Some(&format!("{data},volatile"))).is_ok() {
        return Ok(());
    }
    mount::mount(Some("overlay"), root, Some("overlay"), MsFlags::empty(), Some(&data)).map_err(fail)
}

fn flags_and_data(opts: &[String]) -> (MsFlags, bool, String) {
    let mut f = MsFlags::empty();
    let mut ro = false;
    let mut data = Vec::new();
    for o in opts {
        match o.as_str() {
            "ro" => ro = true,
            "rw" | "rprivate" | "private" | "rslave" | "slave" => {}
            "nosuid" => f |= MsFlags::MS_NOSUID,
            "noexec" => f |= MsFlags::MS_NOEXEC,
            "nodev" => f |= MsFlags::MS_NODEV,
            "strictatime" => f |= MsFlags::MS_STRICTATIME,
            "relatime" => f |= MsFlags::MS_RELATIME,
            "noatime" => f |= MsFlags::MS_NOATIME,
            "bind" => f |= MsFlags::MS_BIND,
            "rbind" => f |= MsFlags::MS_BIND | MsFlags::MS_REC,
            other => data.push(other),
        }
    }
    (f, ro, data.join(","))
}

fn do_mount(m: &oci_spec::runtime::Mount, root: &Path) -> R<()> {
    let dest = m.destination();
    let opts = m.options().clone().unwrap_or_default();
    let (flags, ro, data) = flags_and_data(&opts);
    let typ = m.typ().clone().unwrap_or_default();
    let source = m.source().clone().unwrap_or_default();
    // The target is opened, not named: see rootfs::MountTarget. Errors name
    // the container's path, not the /proc/self/fd link.
    let at = |e: std::io::Error| fail(format!("mount on {}: {e}", dest.display()));
    if flags.contains(MsFlags::MS_BIND) || typ == "bind" {
        let src_is_dir = std::fs::metadata(&source).map(|md| md.is_dir()).map_err(|e| fail(format!("bind source {}: {e}", source.display())))?;
        let target = rootfs::mount_target(root, dest, src_is_dir).map_err(at)?;
        mount::bind(&source, &target.path(), flags.contains(MsFlags::MS_REC)).map_err(at)?;
        if ro {
            // The held descriptor is the directory under the new mount:
            // open the path again to reach the mount itself.
            let top = rootfs::mount_target(root, dest, src_is_dir).map_err(at)?;
            mount::remount_ro(&top.path(), flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)).map_err(at)?;
        }
        return Ok(());
    }
    let target = rootfs::mount_target(root, dest, true).map_err(at)?;
    let flags = if ro { flags | MsFlags::MS_RDONLY } else { flags };
    let data = (!data.is_empty()).then_some(data);
    let src = source.to_string_lossy().into_owned();
    match mount::mount(Some(&src), &target.path(), Some(&typ), flags, data.as_deref()) {
        Ok(()) => Ok(()),
        // mqueue may be missing from a kernel; a container runs without it.
        Err(_) if typ == "mqueue" => Ok(()),
        Err(e) => Err(at(e)),
    }
}

/// Resolves `path` inside `root` as if root were `/`: symlinks in the image
/// (absolute or with `..`) never lead a mount outside the container.
pub fn in_root(root: &Path, path: &Path) -> R<PathBuf> {
    let mut parts: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: Vec<std::ffi::OsString> = path.components().rev().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some("..".into()),
        _ => None,
    }).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            parts.pop();
            continue;
        }
        let candidate: PathBuf = root.join(parts.iter().collect::<PathBuf>()).join(&c);
        match std::fs::read_link(&candidate) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return Err(fail(format!("too many symlinks resolving {}", path.display())));
                }
                if target.is_absolute() {
                    parts.clear();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(n) => todo.push(n.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => parts.push(c),
        }
    }
    Ok(root.join(parts.iter().collect::<PathBuf>()))
}

/// Looks a user up in the container's /etc/passwd: "name", "uid",
/// "uid:gid" or "name:group".
fn resolve_user(spec: &str) -> R<(u32, u32, Vec<u32>)> {
    if spec.is_empty() || spec == "root" || spec == "0" {
        return Ok((0, 0, vec![]));
    }
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let find = |file: &str, key: &str| -> Option<(u32, u32)> {
        file.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() > 3 && (f[0] == key || f[2] == key) { Some((f[2].parse().ok()?, f[3].parse().ok()?)) } else { None }
        })
    };
    let (uid, mut gid) = match u.parse::<u32>() {
        Ok(n) => (n, find(&passwd, u).map(|(_, g)| g).unwrap_or(0)),
        Err(_) => find(&passwd, u).ok_or_else(|| fail(format!("unable to find user {u}: no matching entries in passwd file")))?,
    };
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
                group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        if f.len() > 2 && f[0] == g { f[2].parse().ok() } else { None }
                    })
                    .ok_or_else(|| fail(format!("unable to find group {g}: no matching entries in group file")))?
            }
        };
    }
    Ok((uid, gid, vec![gid]))
}

/// Finds the program as execve's caller would, to tell "not found" (127)
/// from "cannot invoke" (126) before we lose the chance to report it.
fn find_program(arg0: &str, env: &[String]) -> R<PathBuf> {
    let not_found = || InitError { code: EXIT_NOT_FOUND, msg: format!("exec: \"{arg0}\": executable file not found in $PATH") };
    let check = |p: &Path| -> R<()> {
        let md = std::fs::metadata(p).map_err(|_| InitError { code: EXIT_NOT_FOUND, msg: format!("exec: \"{arg0}\": stat {}: no such file or directory", p.display()) })?;
        if md.is_dir() || proc::access_exec(p).is_err() {
            return Err(InitError { code: EXIT_CANNOT_INVOKE, msg: format!("exec: \"{arg0}\": permission denied") });
        }
        Ok(())
    };
    if arg0.is_empty() {
        return Err(not_found());
    }
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        check(&p)?;
        return Ok(p);
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut denied = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        if p.exists() {
            match check(&p) {
                Ok(()) => return Ok(p),
                Err(e) => denied = Some(e),
            }
        }
    }
    Err(denied.unwrap_or_else(not_found))
}

fn cstrings(v: &[String]) -> R<Vec<CString>> {
    v.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| fail(format!("argument or variable {s:?} contains a NUL byte")))).collect()
}

/// The common tail of init and exec: stdio, identity, privileges, execve.
pub fn start_process(plan: &ProcessPlan, stdio: Stdio, errfd: RawFd, create_cwd: bool) -> R<std::convert::Infallible> {
    proc::setsid().ok();
    let stdio = match stdio {
        Stdio::ContainerPty { console, size } => {
            let p = pty::open_here(size).map_err(|e| fail(format!("allocating a pty: {e}")))?;
            pty::send_fd(console, p.master.as_raw_fd()).map_err(|e| fail(format!("sending the pty: {e}")))?;
            proc::close_fd(console);
            let slave = p.slave.as_raw_fd();
            // The numbers are closed below with every other stray fd.
            std::mem::forget(p);
            Stdio::Pty { slave }
        }
        other => other,
    };
    match stdio {
        Stdio::ContainerPty { .. } => unreachable!(),
        Stdio::Pty { slave } => {
            pty::set_controlling(slave).map_err(|e| fail(format!("setting the controlling terminal: {e}")))?;
            for t in 0..3 {
                proc::dup_onto(slave, t).map_err(fail)?;
            }
        }
        Stdio::Pipes { stdin, stdout, stderr } => {
            if stdin < 0 {
                // The container's own /dev/null, not the host's: a file of
                // the host's mounts could not be checkpointed.
                let null = std::fs::OpenOptions::new().read(true).open("/dev/null").map_err(|e| fail(format!("opening /dev/null: {e}")))?;
                proc::dup_onto(std::os::fd::AsRawFd::as_raw_fd(&null), 0).map_err(fail)?;
            } else {
                proc::dup_onto(stdin, 0).map_err(fail)?;
            }
            proc::dup_onto(stdout, 1).map_err(fail)?;
            proc::dup_onto(stderr, 2).map_err(fail)?;
        }
        Stdio::Inherit => {}
    }
    proc::close_fds_from(3, &[errfd]);
    let (uid, gid, groups) = resolve_user(&plan.user)?;
    if create_cwd {
        std::fs::create_dir_all(&plan.cwd).map_err(|e| fail(format!("creating working directory {}: {e}", plan.cwd)))?;
    }
    proc::chdir(Path::new(&plan.cwd)).map_err(|e| fail(format!("chdir to cwd (\"{}\") set in config.json failed: {e}", plan.cwd)))?;
    let arg0 = plan.args.first().cloned().unwrap_or_default();
    let program = find_program(&arg0, &plan.env)?;
    let prog = CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| fail("program path contains NUL"))?;
    let args = cstrings(&plan.args)?;
    let env = cstrings(&plan.env)?;
    apply_rlimits(&plan.rlimits)?;
    caps::limit_bounding(&plan.caps).map_err(fail)?;
    proc::set_ids(uid, gid, &groups).map_err(|e| fail(format!("setting user {}: {e}", plan.user)))?;
    let none: Vec<String> = vec![];
    let eff = if uid == 0 { &plan.caps } else { &none };
    caps::apply(eff, &plan.caps, &none, &none).map_err(fail)?;
    if plan.no_new_privs {
        proc::set_no_new_privs().map_err(|e| fail(format!("no_new_privs: {e}")))?;
    }
    // Signals the monitor blocked or ignored must not leak into the
    // container (an ignored SIGPIPE survives execve).
    for s in [libc::SIGPIPE, libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        proc::set_signal_default(s, false);
    }
    proc::unblock_all_signals();
    if let Some(f) = &plan.seccomp {
        f.install().map_err(|e| fail(format!("installing the seccomp filter: {e}")))?;
    }
    let e = proc::execve(&prog, &args, &env);
    let code = if e.raw_os_error() == Some(libc::ENOENT) { EXIT_NOT_FOUND } else { EXIT_CANNOT_INVOKE };
    Err(InitError { code, msg: format!("exec: \"{arg0}\": {e}") })
}

/// Sets the `--ulimit`s while still root. A hard limit above the current
/// one is refused by name, never raised: root here may lack
/// CAP_SYS_RESOURCE, and create checks the same (this catches a config
/// started by a process with lower limits than the one that made it).
fn apply_rlimits(limits: &[(String, i32, u64, u64)]) -> R<()> {
    let show = |v: u64| if v == u64::MAX { "unlimited".to_string() } else { v.to_string() };
    for (name, resource, soft, hard) in limits {
        let (_, cur_hard) = proc::get_rlimit(*resource).map_err(|e| fail(format!("ulimit {name}: reading the current limit: {e}")))?;
        if *hard > cur_hard {
            return Err(fail(format!("ulimit {name}: hard limit {} is above the host's hard limit {}; berth does not raise limits", show(*hard), show(cur_hard))));
        }
        proc::set_rlimit_exact(*resource, *soft, *hard).map_err(|e| fail(format!("ulimit {name}={}:{}: {e}", show(*soft), show(*hard))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_root_never_leaves_root() {
        let root = std::env::temp_dir().join(format!("berth-inroot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("/", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("a/up")).unwrap();
        let r = |p: &str| in_root(&root, Path::new(p)).ok().unwrap();
        assert_eq!(r("/evil/etc/passwd"), root.join("etc/passwd"));
        assert_eq!(r("/a/up/x"), root.join("x"));
        assert_eq!(r("/../../proc"), root.join("proc"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
