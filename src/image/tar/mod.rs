//! Unpacking image layer tarballs (and `berth image import` root filesystem
//! archives) into a directory that becomes an overlayfs lower dir.
//!
//! The extractor must never write outside its target, whatever the archive
//! says. Every path it touches is computed by [`walk`], which resolves entry
//! names below the target as if the target were `/`: symlinks met on the way
//! are read and spliced in by us (absolute targets restart at the target,
//! `..` stops at it), so the kernel only ever sees paths whose directory part
//! is made of real directories. The final component of a path is never
//! followed: an entry replaces what was there instead of writing through it.
//!
//! OCI/docker whiteouts (`.wh.name`, `.wh..wh..opq`) are converted to the
//! overlayfs form (a 0:0 character device, the `trusted.overlay.opaque`
//! xattr), so this needs root on a filesystem with `trusted.*` xattrs.
//!
//! On error the target is left half-filled: the caller removes it.
//!
//! The parts: `decompress` tells how an archive is compressed and undoes it,
//! `walk` resolves entry names safely below the target, `meta` reads an
//! entry's ownership, times and xattrs, and `unpack` writes the entries.

mod decompress;
mod headers;
mod limits;
mod meta;
#[cfg(test)]
mod test_archive;
mod unpack;
mod walk;

use std::io;
use std::path::PathBuf;

pub use decompress::{Compression, decompressed};
pub use headers::MAX_EXTENSION;
pub use limits::{shorten, DEFAULT_MAX_LAYER_SIZE, MAX_LAYER_SIZE_ENV, MAX_PATH_DEPTH, MAX_PATH_LEN};
pub use unpack::unpack;
use walk::MAX_SYMLINK_HOPS;

/// What [`unpack`] wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// Filesystem objects created from entries (files, dirs, links, devices, whiteouts).
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

#[derive(thiserror::Error, Debug)]
pub enum TarError {
    #[error(
        "the archive is compressed with {0}, which berth cannot decompress yet; \
         provide it gzip-compressed or uncompressed"
    )]
    Unsupported(&'static str),
    #[error("reading the layer archive: {0}")]
    Read(io::Error),
    #[error("{0}")]
    BadLimit(String),
    #[error(
        "layer entry \"{entry}\" holds {} while the layer may unpack to {} in all \
         (a decompression bomb?); refusing the archive. Set {MAX_LAYER_SIZE_ENV} to raise the limit",
        limits::human(*size), limits::human(*limit)
    )]
    TooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error(
        "layer entry \"{entry}\": its path is {len} bytes long, more than the {max} that fit \
         below the layer directory in a Linux path ({MAX_PATH_LEN} bytes); refusing the archive"
    )]
    PathTooLong {
        entry: String,
        len: usize,
        max: usize,
    },
    #[error(
        "layer entry \"{entry}\": its path is {depth} directories deep, more than berth's \
         limit of {MAX_PATH_DEPTH}; refusing the archive"
    )]
    TooDeep { entry: String, depth: usize },
    #[error("cannot unpack into {}: {error}", path.display())]
    Target { path: PathBuf, error: io::Error },
    #[error("layer entry \"{entry}\" climbs out of the target directory; refusing the archive")]
    Escape { entry: String },
    #[error(
        "layer entry \"{entry}\" is a hard link to \"{target}\", which {reason}; refusing the archive"
    )]
    HardLink {
        entry: String,
        target: String,
        reason: &'static str,
    },
    #[error(
        "layer entry \"{entry}\": more than {MAX_SYMLINK_HOPS} symbolic links while resolving \
         its path (a symlink loop?); refusing the archive"
    )]
    SymlinkLoop { entry: String },
    #[error(
        "layer entry \"{entry}\": \"{component}\" is not a directory, so nothing can be \
         placed under it; refusing the archive"
    )]
    NotADirectory { entry: String, component: String },
    #[error("layer entry \"{entry}\" is {what}, which berth cannot unpack")]
    UnsupportedEntry { entry: String, what: String },
    #[error("layer entry \"{entry}\" is malformed: {detail}")]
    BadEntry { entry: String, detail: String },
    #[error("layer entry \"{entry}\": cannot {op} {}: {error}", path.display())]
    Io {
        entry: String,
        op: String,
        path: PathBuf,
        error: io::Error,
    },
}
