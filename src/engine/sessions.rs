//! Interactive sessions for a front that relays a container's streams to
//! somewhere other than its own stdio (the API's attach and exec): the
//! monitor's attach socket as typed events, and `berth exec` run as a
//! child with pipes or a pty of ours.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use super::{Engine, Result, other};
use crate::container::ContainerError;
use crate::runtime::{self, attach, exec::ExecOptions};
use crate::sys::{proc, pty};

/// What comes out of a container while attached.
#[derive(Debug, PartialEq)]
pub enum AttachEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The container ended for good (restarts included): its code.
    Exit(i32),
    /// A restart failed before the command ran.
    Failed { code: i32, msg: String },
}

/// A connection to a container's monitor.
pub struct AttachStream {
    sock: UnixStream,
}

impl AttachStream {
    /// The next event; None once the monitor has gone without a word.
    pub fn next_event(&mut self) -> Option<AttachEvent> {
        loop {
            let (kind, p) = attach::read_frame(&mut self.sock).ok()??;
            return Some(match kind {
                attach::STDOUT => AttachEvent::Stdout(p),
                attach::STDERR => AttachEvent::Stderr(p),
                attach::EXIT => AttachEvent::Exit(attach::payload_i32(&p)),
                attach::ERROR => {
                    let (code, msg) = attach::parse_error(&p);
                    AttachEvent::Failed { code, msg }
                }
                _ => continue,
            });
        }
    }

    /// The sending half: stdin, its end, the terminal size.
    pub fn input(&self) -> Result<AttachInput> {
        Ok(AttachInput { sock: self.sock.try_clone().map_err(other("attach socket"))? })
    }
}

pub struct AttachInput {
    sock: UnixStream,
}

impl AttachInput {
    pub fn stdin(&mut self, data: &[u8]) -> io::Result<()> {
        attach::write_frame(&mut self.sock, attach::STDIN, data)
    }
    /// The container's stdin reaches its end (without a tty).
    pub fn close_stdin(&mut self) -> io::Result<()> {
        attach::write_frame(&mut self.sock, attach::STDIN_EOF, &[])
    }
    /// Ends the session, both halves; the container goes on.
    pub fn detach(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

/// A wait for a container's next start, registered before it starts so
/// the session sees its output from the first byte (`docker run`: attach,
/// then start). Unregistered on drop.
pub struct PendingAttach {
    key: PathBuf,
    token: u64,
    rx: mpsc::Receiver<UnixStream>,
}

pub enum Waited {
    Started(AttachStream),
    Pending,
    /// The start failed (or the waiter was dropped): nothing will come.
    Never,
}

impl PendingAttach {
    pub fn wait(&self, timeout: Duration) -> Waited {
        match self.rx.recv_timeout(timeout) {
            Ok(sock) => Waited::Started(AttachStream { sock }),
            Err(mpsc::RecvTimeoutError::Timeout) => Waited::Pending,
            Err(mpsc::RecvTimeoutError::Disconnected) => Waited::Never,
        }
    }
}

impl Drop for PendingAttach {
    fn drop(&mut self) {
        let mut w = waiting();
        if let Some(v) = w.get_mut(&self.key) {
            v.retain(|(t, _)| *t != self.token);
            if v.is_empty() {
                w.remove(&self.key);
            }
        }
    }
}

type Waiters = HashMap<PathBuf, Vec<(u64, mpsc::Sender<UnixStream>)>>;

/// Sessions waiting for a start, by container directory (unique across
/// roots). Process-wide: starts and attaches come on different requests.
fn waiting() -> std::sync::MutexGuard<'static, Waiters> {
    static W: OnceLock<Mutex<Waiters>> = OnceLock::new();
    W.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// Attaches to a container whose monitor runs (running, paused or
    /// restarting).
    pub fn attach_stream(&self, key: &str, stdin: bool) -> Result<AttachStream> {
        let c = self.container(key)?;
        let mut sock = self.connect(&c).ok_or_else(|| ContainerError::BadState {
            name: c.name.clone(),
            state: c.state.clone(),
            what: "you cannot attach to a container that is not running; start it first".into(),
        })?;
        let flags = attach::WANT_OUTPUT | if stdin { attach::SENDS_STDIN } else { 0 };
        attach::write_frame(&mut sock, attach::HELLO, &[flags]).map_err(other("attach"))?;
        Ok(AttachStream { sock })
    }

    /// Waits for the next start of a container that is not running.
    pub fn attach_next_start(&self, key: &str) -> Result<PendingAttach> {
        let c = self.container(key)?;
        static TOKEN: AtomicU64 = AtomicU64::new(1);
        let token = TOKEN.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        let key = self.paths.container_dir(&c.id);
        waiting().entry(key.clone()).or_default().push((token, tx));
        Ok(PendingAttach { key, token, rx })
    }

    /// After a detached start: the starter's socket, which has had the
    /// container's output from its first byte, goes to the first session
    /// waiting; the others connect afresh. A failed start (None) ends
    /// their wait.
    pub(super) fn hand_over_start(&self, id: &str, starter: Option<UnixStream>) {
        let Some(waiters) = waiting().remove(&self.paths.container_dir(id)) else { return };
        let mut spare = starter;
        if spare.is_none() {
            return;
        }
        for (_, tx) in waiters {
            let sock = match spare.take() {
                Some(s) => s,
                None => match UnixStream::connect(self.paths.attach_socket(id)) {
                    Ok(s) => s,
                    Err(_) => continue,
                },
            };
            // A waiter that left gives the socket back for the next one.
            if let Err(mpsc::SendError(s)) = tx.send(sock) {
                spare = Some(s);
            }
        }
    }

    /// The tty size of a running container.
    pub fn resize(&self, key: &str, rows: u16, cols: u16) -> Result<()> {
        let c = self.container(key)?;
        let mut sock = self.connect(&c).ok_or_else(|| ContainerError::BadState {
            name: c.name.clone(),
            state: c.state.clone(),
            what: "only a running container's terminal can be resized".into(),
        })?;
        attach::write_frame(&mut sock, attach::HELLO, &[0]).map_err(other("attach"))?;
        let mut p = rows.to_be_bytes().to_vec();
        p.extend(cols.to_be_bytes());
        attach::write_frame(&mut sock, attach::RESIZE, &p).map_err(other("attach"))?;
        Ok(())
    }

    /// The exec helper's command that enters the running container `c`
    /// from a fresh, single-threaded process, and the descriptor that keeps
    /// its sealed binary valid until it has started.
    pub(super) fn berth_exec(&self, c: &crate::container::Container, o: &ExecOptions) -> Result<(Command, OwnedFd)> {
        let (exe, sealed) = runtime::sealed_helper().map_err(other("sealing berth's monitor binary"))?;
        let mut cmd = Command::new(exe);
        std::os::unix::process::CommandExt::arg0(&mut cmd, crate::sys::exe::HELPER);
        cmd.args(runtime::helper::enter_args(c.pid, &c.cgroup(&self.paths), &self.paths.container_dir(&c.id), o));
        cmd.env("BERTH_ROOT", &self.paths.root).env("BERTH_RUN", &self.paths.run);
        Ok((cmd, sealed))
    }

    /// Starts a process in a running container as a child `berth exec`,
    /// its streams ours to relay: pipes, or with `o.tty` a pty whose slave
    /// is the child's terminal (of `size`). `discard` sends the output
    /// nowhere (a detached exec).
    pub fn exec_session(&self, key: &str, o: &ExecOptions, size: Option<(u16, u16)>, discard: bool) -> Result<ExecSession> {
        let c = self.container(key)?;
        if c.state != "running" {
            return Err(ContainerError::BadState { name: c.name, state: c.state, what: "exec needs a running container".into() }.into());
        }
        let (mut cmd, _sealed) = self.berth_exec(&c, o)?;
        let mut s = ExecSession { child: None, stdin: None, stdout: None, stderr: None, master: None, pidfd: None };
        if discard {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        } else if o.tty {
            let p = pty::open(Some(size.unwrap_or((24, 80)))).map_err(other("opening a pty"))?;
            let dup = |f: &OwnedFd| f.try_clone().map_err(other("pty"));
            cmd.stdin(dup(&p.slave)?).stdout(dup(&p.slave)?).stderr(p.slave);
            let master = Arc::new(File::from(p.master));
            s.stdin = Some(Box::new(SharedFile(master.clone())));
            s.stdout = Some(Box::new(PtyOut(SharedFile(master.clone()))));
            s.master = Some(master);
        } else {
            cmd.stdin(if o.interactive { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(other("running berth exec"))?;
        // Our copies of the slave went with `cmd`: the master reads EOF once
        // the child's are closed.
        drop(cmd);
        if let Some(i) = child.stdin.take() {
            s.stdin = Some(Box::new(i));
        }
        if let Some(o) = child.stdout.take() {
            s.stdout = Some(Box::new(o));
        }
        if let Some(e) = child.stderr.take() {
            s.stderr = Some(Box::new(e));
        }
        // Signals go by pidfd: the pid may be reaped and reused meanwhile.
        s.pidfd = proc::pidfd_open(child.id() as i32).ok().map(Arc::new);
        s.child = Some(child);
        Ok(s)
    }
}

/// A `berth exec` child and its streams; the front takes the streams.
pub struct ExecSession {
    child: Option<Child>,
    pub stdin: Option<Box<dyn Write + Send>>,
    pub stdout: Option<Box<dyn Read + Send>>,
    /// None with a tty: it shares stdout.
    pub stderr: Option<Box<dyn Read + Send>>,
    master: Option<Arc<File>>,
    pidfd: Option<Arc<OwnedFd>>,
}

impl ExecSession {
    /// The helper's host pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The handle on its terminal, with a tty.
    pub fn terminal(&self) -> Option<ExecTerminal> {
        Some(ExecTerminal { master: self.master.clone()?, pidfd: self.pidfd.clone()? })
    }

    /// Waits for the process; its exit code (128+N for signal N).
    pub fn wait(&mut self) -> i32 {
        let Some(mut c) = self.child.take() else { return runtime::EXIT_ENGINE };
        match c.wait() {
            Ok(st) => {
                use std::os::unix::process::ExitStatusExt;
                st.code().or_else(|| st.signal().map(|s| 128 + s)).unwrap_or(runtime::EXIT_ENGINE)
            }
            Err(_) => runtime::EXIT_ENGINE,
        }
    }
}

/// An exec's terminal, as the user's window: it can change size (our pty,
/// then `berth exec` is told with SIGWINCH to pass the size on to the
/// container's) and go away (SIGHUP, as when a terminal closes).
#[derive(Clone)]
pub struct ExecTerminal {
    master: Arc<File>,
    pidfd: Arc<OwnedFd>,
}

impl ExecTerminal {
    pub fn resize(&self, rows: u16, cols: u16) {
        pty::set_size(self.master.as_raw_fd(), rows, cols);
        let _ = proc::pidfd_send_signal(&self.pidfd, libc::SIGWINCH);
    }

    pub fn hang_up(&self) {
        let _ = proc::pidfd_send_signal(&self.pidfd, libc::SIGHUP);
    }
}

struct SharedFile(Arc<File>);

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A pty master's output: EIO once the last slave closed is its end.
struct PtyOut(SharedFile);

impl Read for PtyOut {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.read(buf) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            r => r,
        }
    }
}
