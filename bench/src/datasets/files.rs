//! Real vectors from files: float32 `.npy` (2-D, C order) and `.fvecs`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{check_size, Vectors, DIMENSIONS_MAX};

/// Reads a 2-D float32 `.npy` (C order) or an `.fvecs` file, by extension.
pub fn load(path: &Path) -> Result<Vectors> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let parse = match extension {
        "npy" => parse_npy,
        "fvecs" => parse_fvecs,
        _ => bail!(
            "{}: unknown format (expected a .npy of float32 or a .fvecs file)",
            path.display()
        ),
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// The `.npy` format: magic, version, a little-endian header length (u16 in
/// version 1, u32 in 2 and 3), a Python dict literal, then the raw array.
pub fn parse_npy(bytes: &[u8]) -> Result<Vectors> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        bail!("not a .npy file (no \\x93NUMPY magic)");
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        major => bail!(".npy version {major} is not supported"),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .context("the .npy header runs past the end of the file")?;
    let header = std::str::from_utf8(header).context("the .npy header is not text")?;
    let field = |name: &str| {
        header
            .split_once(&format!("'{name}':"))
            .map(|(_, rest)| rest.trim_start())
            .with_context(|| format!("the .npy header has no '{name}': {header}"))
    };
    let descr = field("descr")?;
    if !(descr.starts_with("'<f4'") || descr.starts_with("'|f4'")) {
        bail!("dtype {descr:.8}…: only little-endian float32 ('<f4') is supported");
    }
    if !field("fortran_order")?.starts_with("False") {
        bail!("Fortran-ordered arrays are not supported; save it in C order");
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("cannot read the shape in {header}"))?;
    let shape: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().with_context(|| format!("shape entry {s:?}")))
        .collect::<Result<_>>()?;
    let [count, dims] = shape[..] else {
        bail!("shape {shape:?}: expected a 2-D array (vectors × dimensions)");
    };
    check_size(count, dims)?;
    let payload = &bytes[data_start..];
    if payload.len() != count * dims * 4 {
        bail!(
            "shape ({count}, {dims}) needs {} bytes of data, the file has {}",
            count * dims * 4,
            payload.len()
        );
    }
    Vectors::new(dims, f32s(payload))
}

/// The `.fvecs` format (TEXMEX, ann-benchmarks): per vector a little-endian
/// i32 dimension count, then that many f32.
pub fn parse_fvecs(bytes: &[u8]) -> Result<Vectors> {
    let Some(first) = bytes.get(..4) else {
        bail!("an empty .fvecs file");
    };
    let dims = i32::from_le_bytes([first[0], first[1], first[2], first[3]]);
    let dims = usize::try_from(dims)
        .ok()
        .filter(|d| (1..=DIMENSIONS_MAX).contains(d))
        .with_context(|| format!("first vector has {dims} dimensions"))?;
    let record_bytes = 4 + dims * 4;
    if bytes.len() % record_bytes != 0 {
        bail!(
            "{} bytes are not whole records of {dims} dimensions",
            bytes.len()
        );
    }
    let count = bytes.len() / record_bytes;
    check_size(count, dims)?;
    let mut data = Vec::with_capacity(count * dims);
    for (i, record) in bytes.chunks_exact(record_bytes).enumerate() {
        if record[..4] != first[..] {
            bail!("vector {i} has another dimension count than the first");
        }
        data.extend(f32s(&record[4..]));
    }
    Vectors::new(dims, data)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, values: &[f32]) -> Vec<u8> {
        let mut padded = header.to_string();
        while (10 + padded.len() + 1) % 64 != 0 {
            padded.push(' ');
        }
        padded.push('\n');
        let mut bytes = NPY_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn npy_and_fvecs_round_trip() {
        let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
        let good = npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            &values,
        );
        let parsed = parse_npy(&good).unwrap();
        assert_eq!((parsed.count(), parsed.dims()), (2, 3));
        assert_eq!(parsed.as_slice(), &values[..]);
        assert!(parse_npy(&good[..good.len() - 4]).is_err());
        for header in [
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
        ] {
            assert!(parse_npy(&npy(header, &values)).is_err(), "{header}");
        }

        let mut fvecs = Vec::new();
        for row in values.chunks(3) {
            fvecs.extend_from_slice(&3i32.to_le_bytes());
            for v in row {
                fvecs.extend_from_slice(&v.to_le_bytes());
            }
        }
        assert_eq!(parse_fvecs(&fvecs).unwrap(), parsed);
        assert!(parse_fvecs(&fvecs[..fvecs.len() - 1]).is_err());
    }
}
