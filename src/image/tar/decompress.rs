//! Telling how an archive is compressed, and undoing it.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use super::TarError;
use super::headers::HeaderGuard;
use super::limits::{Capped, max_layer_size};

/// How an archive or layer blob is compressed, told by its first bytes.
/// Layer unpacking, `save`/`load` and the layer store all ask here, so they
/// agree on what a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
    /// Recognised only to be named in errors (xz, bzip2: not used by image layers).
    Other(&'static str),
}

/// One tar block is enough to see both compression magics and "ustar".
const HEAD: usize = 512;

impl Compression {
    /// Sniffs gzip (1f 8b), zstd (28 b5 2f fd), xz, bzip2 or plain tar from
    /// the first bytes of an archive ([`HEAD`] of them are enough).
    pub fn sniff(head: &[u8]) -> Compression {
        // A ustar header wins: its first bytes are a file name, which could
        // accidentally look like a magic number.
        if head.get(257..262) == Some(b"ustar") {
            return Compression::Plain;
        }
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Other("xz")
        } else if head.starts_with(b"BZh") {
            Compression::Other("bzip2")
        } else {
            Compression::Plain
        }
    }

    /// Sniffs the start of the file at `path`.
    pub fn of_file(path: &Path) -> io::Result<Compression> {
        let head = read_head(&mut File::open(path)?, HEAD)?;
        Ok(Compression::sniff(&head))
    }

    /// The OCI media type of a layer blob compressed this way.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Plain | Compression::Other(_) => "application/vnd.oci.image.layer.v1.tar",
        }
    }
}

/// Wraps a reader, undoing gzip or zstd and passing plain tar through.
/// xz and bzip2 are recognised only to report [`TarError::Unsupported`]
/// instead of a confusing "bad tar header".
///
/// The result fails once it has produced more than the layer size limit
/// (`BERTH_MAX_LAYER_SIZE`, see [`super::limits`]): every reader of an
/// archive, hashing included, goes through here, so none of them can be
/// kept inflating a bomb for hours. It also refuses an oversized long-name
/// or PAX header before the tar crate buffers it (see [`super::headers`]).
pub fn decompressed<'a, R: Read + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>, TarError> {
    let limit = max_layer_size().map_err(TarError::BadLimit)?;
    let head = read_head(&mut r, HEAD).map_err(TarError::Read)?;
    let compression = Compression::sniff(&head);
    let whole = io::Cursor::new(head).chain(r);
    let plain: Box<dyn Read + 'a> = match compression {
        Compression::Plain => Box::new(whole),
        // Multi-member: some tools write layers as concatenated gzip streams.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(whole).map_err(TarError::Read)?)
        }
        Compression::Other(name) => return Err(TarError::Unsupported(name)),
    };
    Ok(Box::new(HeaderGuard::new(Capped {
        inner: plain,
        left: limit,
        limit,
    })))
}

/// Reads up to `n` bytes, looping over short reads so sniffing sees them all.
fn read_head<R: Read>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use super::super::test_archive::Ar;
    use super::super::{UnpackStats, unpack};
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn gzip_input_is_decompressed() {
        let t = TempDir::new("gzip");
        let mut ar = Ar::new();
        ar.file("hello.txt", b"from gzip");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&ar.bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let stats = unpack(decompressed(&gz[..]).unwrap(), t.path()).unwrap();
        assert_eq!(stats, UnpackStats { files: 1, bytes: 9 });
        assert_eq!(fs::read(t.path().join("hello.txt")).unwrap(), b"from gzip");
    }

    #[test]
    fn plain_tar_passes_through_decompressed() {
        let t = TempDir::new("plaintar");
        let mut ar = Ar::new();
        ar.file("p", b"plain");
        let bytes = ar.bytes();
        unpack(decompressed(&bytes[..]).unwrap(), t.path()).unwrap();
        assert_eq!(fs::read(t.path().join("p")).unwrap(), b"plain");
    }

    #[test]
    fn zstd_input_is_decompressed() {
        let t = TempDir::new("zstd");
        let mut ar = Ar::new();
        ar.file("z", b"zstd layer");
        let packed = zstd::stream::encode_all(&ar.bytes()[..], 3).unwrap();
        unpack(decompressed(&packed[..]).unwrap(), t.path()).unwrap();
        assert_eq!(fs::read(t.path().join("z")).unwrap(), b"zstd layer");
    }

    #[test]
    fn xz_is_unsupported() {
        let data = [0xfdu8, b'7', b'z', b'X', b'Z', 0, 0, 0];
        let err = decompressed(&data[..]).err().expect("xz must be refused");
        assert!(matches!(err, TarError::Unsupported("xz")), "{err}");
    }

    #[test]
    fn a_ustar_header_wins_over_a_magic_looking_name() {
        let mut head = vec![0u8; 512];
        head[..2].copy_from_slice(&[0x1f, 0x8b]);
        head[257..262].copy_from_slice(b"ustar");
        assert_eq!(Compression::sniff(&head), Compression::Plain);
        assert_eq!(Compression::sniff(&head[..4]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"BZh9"), Compression::Other("bzip2"));
        assert_eq!(Compression::sniff(b""), Compression::Plain);
    }
}
