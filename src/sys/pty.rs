//! Pseudo-terminals: allocation, raw mode, window size.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

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
