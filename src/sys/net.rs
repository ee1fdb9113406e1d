//! The few network calls the runtime core needs before networks arrive.

use std::io;
use std::os::fd::AsRawFd;

/// Brings a link up by name with the SIOCSIFFLAGS ioctl (in the caller's
/// network namespace); enough for a new namespace's loopback.
pub fn link_up(name: &str) -> io::Result<()> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"));
    // A fresh namespace's lo is down, so binding 127.0.0.1 fails: fall back
    // to a raw datagram socket that needs no address.
    let fd = match &sock {
        Ok(s) => s.as_raw_fd(),
        Err(_) => {
            // SAFETY: creating a socket; closed below.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            fd
        }
    };
    let r = set_up(fd, name);
    if sock.is_err() {
        // SAFETY: the fd we created above.
        unsafe { libc::close(fd) };
    }
    r
}

fn set_up(fd: i32, name: &str) -> io::Result<()> {
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in name.bytes().take(libc::IFNAMSIZ - 1).enumerate() {
        req.ifr_name[i] = b as libc::c_char;
    }
    // SAFETY: ifreq on the stack, ioctls defined for it.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
