//! Reader for the IDX format of (Fashion-)MNIST, gzipped or raw.

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A malformed or unreadable IDX file.
#[derive(Debug, thiserror::Error)]
pub enum IdxError {
    /// The file cannot be read or decompressed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The content is not a u8 IDX array.
    #[error("{path} is not a u8 IDX file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// An IDX array of u8 values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<u8>,
}

/// Reads `path` (decompressing when it ends in `.gz`).
pub fn read(path: &Path) -> Result<IdxArray, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        raw
    };
    parse(&bytes).map_err(|reason| IdxError::Format {
        path: path.to_path_buf(),
        reason,
    })
}

/// Parses IDX bytes: magic `00 00 08 ndim`, ndim big-endian u32 sizes, then the values.
pub fn parse(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err("shorter than the 4-byte magic".into());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!("bad magic {:02x}{:02x}", bytes[0], bytes[1]));
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x}, only u8 (0x08) is supported",
            bytes[2]
        ));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err("truncated header".into());
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or("dimensions overflow")?;
    let body = &bytes[header..];
    if body.len() != n {
        return Err(format!(
            "{} values for dims {dims:?}, expected {n}",
            body.len()
        ));
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_small_array() {
        let mut b = vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend([1, 2, 3, 4, 5, 6]);
        let a = parse(&b).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_truncated_and_foreign_files() {
        assert!(parse(&[0, 0, 8]).is_err());
        assert!(parse(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).is_err());
        assert!(parse(&[0, 0, 8, 1, 0, 0, 0, 5, 1, 2]).is_err());
        assert!(parse(&[0x1f, 0x8b, 8, 1]).is_err());
    }
}
