//! Reading 2-d float32 arrays from NumPy `.npy` files (format versions 1 to
//! 3, little-endian `<f4`, C order), so that uae and a Python reference can
//! be measured on the very same vectors.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// A row-major matrix read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// `rows x cols` values, row-major.
    pub values: Vec<f32>,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
}

/// Reads a 2-d little-endian float32 array in C order from `path`.
pub fn read_f32_matrix(path: &Path) -> Result<Matrix> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}: not a 2-d float32 .npy array", path.display()))
}

/// Parses the bytes of a `.npy` file.
fn parse(bytes: &[u8]) -> Result<Matrix> {
    ensure!(bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY", "no .npy magic");
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "truncated header");
            (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12)
        }
        v => bail!("unknown .npy version {v}"),
    };
    ensure!(bytes.len() >= start + header_len, "truncated header");
    let header = std::str::from_utf8(&bytes[start..start + header_len]).context("header is not text")?;
    let field = |name: &str| -> Result<&str> {
        let key = format!("'{name}':");
        let at = header.find(&key).with_context(|| format!("header has no {name}"))?;
        Ok(header[at + key.len()..].trim_start())
    };
    ensure!(field("descr")?.starts_with("'<f4'"), "dtype is not little-endian float32 ('<f4'): {header}");
    ensure!(field("fortran_order")?.starts_with("False"), "array is in Fortran order");
    let shape = field("shape")?;
    let shape = shape.strip_prefix('(').and_then(|s| s.split(')').next()).context("malformed shape")?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(|| format!("malformed shape entry {s:?}")))
        .collect::<Result<_>>()?;
    let [rows, cols] = dims[..] else { bail!("shape ({shape}) is not 2-d") };
    let data = &bytes[start + header_len..];
    ensure!(data.len() == rows * cols * 4, "{} data bytes for shape ({rows}, {cols})", data.len());
    let values = data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
    Ok(Matrix { values, rows, cols })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 `.npy` file as NumPy writes it.
    fn npy(descr: &str, shape: &str, values: &[f32]) -> Vec<u8> {
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        values.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        out
    }

    #[test]
    fn reads_a_matrix_and_refuses_other_arrays() {
        let m = parse(&npy("<f4", "(2, 3)", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();
        assert_eq!((m.rows, m.cols), (2, 3));
        assert_eq!(m.values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let err = |bytes: &[u8]| format!("{:#}", parse(bytes).unwrap_err());
        assert!(err(&npy("<f8", "(1, 1)", &[1.0, 2.0])).contains("'<f4'"));
        assert!(err(&npy("<f4", "(2,)", &[1.0, 2.0])).contains("not 2-d"));
        assert!(err(&npy("<f4", "(2, 2)", &[1.0])).contains("4 data bytes"));
        assert!(err(b"PK\x03\x04 not numpy").contains("magic"));
    }
}
