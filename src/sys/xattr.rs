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
