//! Extended attributes, without following symlinks.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub fn get(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let cp = CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cn = CString::new(name).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 256];
    // SAFETY: C strings and a buffer of the length we pass.
    let n = unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

pub fn set(p: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let cp = CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cn = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: C strings and a value of the length we pass.
    let r = unsafe { libc::lsetxattr(cp.as_ptr(), cn.as_ptr(), value.as_ptr() as *const libc::c_void, value.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes every extended attribute of `p` (an ACL, a file capability, an
/// overlay mark). A filesystem without them has none to remove.
pub fn clear(p: &Path) -> io::Result<()> {
    let cp = CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: a C string and a buffer of the length we pass.
        let n = unsafe { libc::llistxattr(cp.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(()),
            _ => return Err(e),
        }
    }
    for name in buf.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cn = CString::new(name).map_err(io::Error::other)?;
        // SAFETY: two C strings.
        if unsafe { libc::lremovexattr(cp.as_ptr(), cn.as_ptr()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
