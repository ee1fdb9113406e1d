//! Pseudo-terminals: allocation, raw mode, window size.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

pub fn open(size: Option<(u16, u16)>) -> io::Result<Pty> {
    let ws = size.map(|(rows, cols)| nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
    let r = nix::pty::openpty(ws.as_ref(), None).map_err(io::Error::from)?;
    super::proc::set_cloexec(r.master.as_raw_fd(), true)?;
    super::proc::set_cloexec(r.slave.as_raw_fd(), true)?;
    Ok(Pty { master: r.master, slave: r.slave })
}

/// Makes the tty on `fd` the controlling terminal of this (new) session.
pub fn set_controlling(fd: RawFd) -> io::Result<()> {
    // SAFETY: ioctl with an integer argument.
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY as _, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn get_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: winsize on the stack.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ as _, &mut ws) } < 0 || ws.ws_row == 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}

pub fn set_size(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: winsize on the stack.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ as _, &ws) };
}

pub fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty on an fd number.
    unsafe { libc::isatty(fd) == 1 }
}

/// Raw mode for the user's terminal while attached; restored on drop.
pub struct RawMode {
    fd: RawFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    pub fn enter(fd: impl AsFd) -> io::Result<RawMode> {
        let raw = fd.as_fd().as_raw_fd();
        let saved = nix::sys::termios::tcgetattr(&fd).map_err(io::Error::from)?;
        let mut t = saved.clone();
        nix::sys::termios::cfmakeraw(&mut t);
        nix::sys::termios::tcsetattr(&fd, nix::sys::termios::SetArg::TCSANOW, &t).map_err(io::Error::from)?;
        Ok(RawMode { fd: raw, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is the terminal we were given and still open.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// Opens a new pty pair from the /dev/ptmx of the current mount namespace
/// (inside a container: its own devpts, so `tty` names it).
pub fn open_here(size: Option<(u16, u16)>) -> io::Result<Pty> {
    use nix::fcntl::OFlag;
    let m = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    nix::pty::grantpt(&m).map_err(io::Error::from)?;
    nix::pty::unlockpt(&m).map_err(io::Error::from)?;
    let name = nix::pty::ptsname_r(&m).map_err(io::Error::from)?;
    let slave = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open(&name)?;
    let master = OwnedFd::from(m);
    if let Some((r, c)) = size {
        set_size(master.as_raw_fd(), r, c);
    }
    Ok(Pty { master, slave: OwnedFd::from(slave) })
}

/// Passes a descriptor over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let iov = [std::io::IoSlice::new(b"F")];
    let fds = [fd];
    sendmsg::<()>(sock, &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None).map_err(io::Error::from)?;
    Ok(())
}

/// Receives a descriptor sent by `send_fd`; None when the peer closed.
pub fn recv_fd(sock: RawFd) -> io::Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
    }
    Ok(None)
}
