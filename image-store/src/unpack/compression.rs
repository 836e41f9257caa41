//! Detecting and undoing layer compression by magic bytes (never by file name).

use std::io::{BufRead, BufReader, Read};

use super::UnpackError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Peek at the stream and wrap it in the right decoder. bzip2 and xz are refused by name.
pub fn decompressed<'a, R: Read + 'a>(
    reader: R,
) -> Result<(Compression, Box<dyn Read + 'a>), UnpackError> {
    let mut br = BufReader::with_capacity(1 << 20, reader);
    let head = br.fill_buf().map_err(UnpackError::Read)?;
    let kind = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        return Err(UnpackError::UnsupportedCompression("bzip2"));
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(UnpackError::UnsupportedCompression("xz"));
    } else {
        Compression::None
    };
    let r: Box<dyn Read + 'a> = match kind {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(br).map_err(UnpackError::Read)?)
        }
    };
    Ok((kind, r))
}
