//! The attach protocol between a client and a container's monitor, over a
//! unix stream socket. Every message is a frame: kind (1 byte), length
//! (4 bytes, big endian), payload.

use std::io::{self, Read, Write};

// client -> monitor
pub const STDIN: u8 = 0;
pub const STDIN_EOF: u8 = 1;
pub const RESIZE: u8 = 2; // rows u16, cols u16
pub const STOP: u8 = 3; // timeout seconds u32, then optional flags u8 (STOP_KEEP)
pub const KILL: u8 = 4; // signal u32
pub const HELLO: u8 = 5; // flags u8: 1 = wants output, 2 = sends stdin

// monitor -> client
pub const STDOUT: u8 = 11;
pub const STDERR: u8 = 12;
pub const EXIT: u8 = 13; // code i32
pub const STARTED: u8 = 14; // pid i32
pub const ERROR: u8 = 15; // code i32, then message

pub const WANT_OUTPUT: u8 = 1;
pub const SENDS_STDIN: u8 = 2;
/// STOP's flag for a restart: a `--rm` container stays (as an exited one)
/// for the start that follows. A monitor that predates it reads only the
/// timeout and stops the container as before.
pub const STOP_KEEP: u8 = 1;

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    w.write_all(&frame(kind, payload))
}

pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > 16 << 20 {
        return Err(io::Error::other("attach frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// Splits a byte buffer into complete frames, leaving a partial one.
pub fn take_frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while buf.len() - pos >= 5 {
        let len = u32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]) as usize;
        if buf.len() - pos - 5 < len {
            break;
        }
        out.push((buf[pos], buf[pos + 5..pos + 5 + len].to_vec()));
        pos += 5 + len;
    }
    buf.drain(..pos);
    out
}

pub fn i32_payload(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}

pub fn payload_i32(p: &[u8]) -> i32 {
    p.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0)
}

pub fn error_payload(code: i32, msg: &str) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(msg.as_bytes());
    v
}

pub fn parse_error(p: &[u8]) -> (i32, String) {
    (payload_i32(p), String::from_utf8_lossy(p.get(4..).unwrap_or(&[])).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn frames_split_and_join() {
        let mut buf = frame(STDOUT, b"hello");
        buf.extend(frame(EXIT, &i32_payload(3)));
        buf.extend(&frame(STDERR, b"partial")[..6]);
        let f = take_frames(&mut buf);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0], (STDOUT, b"hello".to_vec()));
        assert_eq!(payload_i32(&f[1].1), 3);
        assert_eq!(buf.len(), 6);
    }
}
