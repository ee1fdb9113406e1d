//! A delay line in user space, for kernels without sch_netem.
//!
//! The container's host-side veth is taken off its bridge; a tap device
//! takes its place there. Frames the container sends are read from the veth
//! with a packet socket, held for their delay (plus jitter) and written into
//! the tap, which hands them to the bridge. Frames the bridge sends towards
//! the container come out of the tap and go straight into the veth. Both
//! ends carry a virtio-net header, so checksum-offloaded and GSO frames
//! cross unchanged.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
/// A GSO frame is at most 64 KiB, after its 10-byte virtio-net header.
const FRAME_MAX: usize = 65536 + 64;
/// Frames held at once; more are dropped, as netem's default limit does.
pub const QUEUE_LIMIT: usize = 1000;

fn cvt(r: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(r)
}

/// Creates the tap `name` (gone when the returned descriptor closes).
pub fn open_tap(name: &str) -> io::Result<OwnedFd> {
    let what = format!("creating tap device {name} (needs /dev/net/tun)");
    let path = CString::new("/dev/net/tun").unwrap();
    // SAFETY: plain syscalls on a descriptor we own; `ifr` outlives the ioctl.
    unsafe {
        let fd = cvt(libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC), &what)?;
        let fd = OwnedFd::from_raw_fd(fd);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        cvt(libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &ifr), &what)?;
        Ok(fd)
    }
}

/// A raw packet socket on interface `ifindex`, with virtio-net headers,
/// that does not see the frames it sends itself.
pub fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let what = "opening a packet socket";
    // SAFETY: as above; `sll` is a plain C struct.
    unsafe {
        // Protocol 0 until bound: it receives nothing from other links meanwhile.
        let fd = cvt(libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0), what)?;
        let fd = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        for opt in [PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING] {
            cvt(libc::setsockopt(fd.as_raw_fd(), libc::SOL_PACKET, opt, &one as *const _ as *const libc::c_void, 4), what)?;
        }
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        cvt(libc::bind(fd.as_raw_fd(), &sll as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_ll>() as u32), what)?;
        Ok(fd)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub delay: Duration,
    pub jitter: Duration,
}

/// Small, fast and good enough to spread jitter; not for secrets.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The frame schedule: each frame's due time is its arrival plus the delay
/// and a uniform jitter in [-jitter, +jitter], never earlier than the frame
/// before it, so the line keeps order as a wire does.
pub struct Line {
    d: Delay,
    rng: XorShift,
    queue: VecDeque<(Instant, Vec<u8>)>,
    pub dropped: u64,
}

impl Line {
    pub fn new(d: Delay) -> Line {
        let mut seed = [0u8; 8];
        crate::store::getrandom(&mut seed);
        Line { d, rng: XorShift(u64::from_ne_bytes(seed) | 1), queue: VecDeque::new(), dropped: 0 }
    }

    pub fn push(&mut self, now: Instant, frame: Vec<u8>) {
        if self.queue.len() >= QUEUE_LIMIT {
            self.dropped += 1;
            return;
        }
        let j = self.d.jitter.as_micros() as i64;
        let offset = if j > 0 { (self.rng.next() % (2 * j as u64 + 1)) as i64 - j } else { 0 };
        let us = (self.d.delay.as_micros() as i64 + offset).max(0) as u64;
        let mut due = now + Duration::from_micros(us);
        if let Some((last, _)) = self.queue.back() {
            due = due.max(*last);
        }
        self.queue.push_back((due, frame));
    }

    /// The next frame whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.queue.front().is_some_and(|(due, _)| *due <= now) {
            return self.queue.pop_front().map(|(_, f)| f);
        }
        None
    }

    /// Milliseconds until the next frame is due (rounded up, so never
    /// early), or -1 (wait forever) when the line is empty.
    pub fn timeout_ms(&self, now: Instant) -> i32 {
        match self.queue.front() {
            None => -1,
            Some((due, _)) => due.saturating_duration_since(now).as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        }
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: reads into a buffer we own.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

fn write(fd: RawFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: writes from a buffer we own.
    let n = unsafe { libc::write(fd, frame.as_ptr() as *const libc::c_void, frame.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        // A full queue or a link briefly down loses the frame, as a wire would.
        return match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN) | Some(libc::EIO) => Ok(()),
            _ => Err(e),
        };
    }
    Ok(())
}

/// Relays between the container's veth (`pkt`, a [`packet_socket`]) and the
/// bridge's `tap` until the veth goes away (the container's namespace was
/// deleted) or a signal ends the process.
pub fn relay(pkt: &OwnedFd, tap: &OwnedFd, d: Delay) -> io::Result<()> {
    let (p, t) = (pkt.as_raw_fd(), tap.as_raw_fd());
    let mut line = Line::new(d);
    let mut buf = vec![0u8; FRAME_MAX];
    loop {
        let now = Instant::now();
        while let Some(f) = line.pop_due(now) {
            write(t, &f)?;
        }
        let ready = crate::sys::proc::poll(&[(p, libc::POLLIN), (t, libc::POLLIN)], line.timeout_ms(Instant::now()))?;
        if ready[0] & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Ok(());
        }
        if ready[0] & libc::POLLIN != 0 {
            // A burst is taken whole, bounded so the other side is not starved.
            for _ in 0..64 {
                match read(p, &mut buf) {
                    Ok(Some(n)) => line.push(Instant::now(), buf[..n].to_vec()),
                    Ok(None) => break,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENETDOWN) | Some(libc::ENXIO) | Some(libc::ENODEV)) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
        if ready[1] & libc::POLLIN != 0 {
            for _ in 0..64 {
                match read(t, &mut buf)? {
                    Some(n) => {
                        if let Err(e) = write(p, &buf[..n]) {
                            if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENODEV)) {
                                return Ok(());
                            }
                            return Err(e);
                        }
                    }
                    None => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wait_their_delay_and_keep_order() {
        let mut l = Line::new(Delay { delay: Duration::from_millis(50), jitter: Duration::from_millis(20) });
        let t0 = Instant::now();
        for i in 0..100u8 {
            l.push(t0 + Duration::from_millis(i as u64), vec![i]);
        }
        assert!(l.pop_due(t0 + Duration::from_millis(29)).is_none(), "nothing leaves before delay - jitter");
        assert!(l.timeout_ms(t0) >= 30);
        let mut out = Vec::new();
        let end = t0 + Duration::from_millis(200);
        while let Some(f) = l.pop_due(end) {
            out.push(f[0]);
        }
        assert_eq!(out, (0..100).collect::<Vec<u8>>());
        assert_eq!(l.timeout_ms(end), -1);
    }

    #[test]
    fn full_line_drops() {
        let mut l = Line::new(Delay { delay: Duration::from_secs(1), jitter: Duration::ZERO });
        let t0 = Instant::now();
        for _ in 0..QUEUE_LIMIT + 5 {
            l.push(t0, vec![0]);
        }
        assert_eq!(l.dropped, 5);
    }
}
