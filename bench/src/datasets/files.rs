//! Real vectors from files: float32 `.npy` (2-D, C order) and `.fvecs`;
//! their exact neighbours from `.ivecs` or an integer `.npy`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{check_size, Neighbours, Vectors, DIMENSIONS_MAX};

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

/// A 2-D `.npy` array as stored: its dtype string (`<f4`), shape and raw bytes.
struct NpyArray<'a> {
    descr: &'a str,
    rows: usize,
    columns: usize,
    payload: &'a [u8],
}

/// The `.npy` format: magic, version, a little-endian header length (u16 in
/// version 1, u32 in 2 and 3), a Python dict literal, then the raw array.
fn parse_npy_2d(bytes: &[u8]) -> Result<NpyArray<'_>> {
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
    let descr = field("descr")?
        .strip_prefix('\'')
        .and_then(|rest| rest.split('\'').next())
        .with_context(|| format!("cannot read the dtype in {header}"))?;
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
    let [rows, columns] = shape[..] else {
        bail!("shape {shape:?}: expected a 2-D array (rows × columns)");
    };
    Ok(NpyArray {
        descr,
        rows,
        columns,
        payload: &bytes[data_start..],
    })
}

fn check_payload(array: &NpyArray, element_bytes: usize) -> Result<()> {
    let expected = array
        .rows
        .checked_mul(array.columns)
        .and_then(|n| n.checked_mul(element_bytes))
        .context("the .npy shape overflows")?;
    if array.payload.len() != expected {
        bail!(
            "shape ({}, {}) of {} needs {expected} bytes of data, the file has {}",
            array.rows,
            array.columns,
            array.descr,
            array.payload.len()
        );
    }
    Ok(())
}

/// A 2-D little-endian float32 `.npy` (C order): vectors × dimensions.
pub fn parse_npy(bytes: &[u8]) -> Result<Vectors> {
    let array = parse_npy_2d(bytes)?;
    if !matches!(array.descr, "<f4" | "|f4") {
        bail!(
            "dtype {:.8}: only little-endian float32 ('<f4') is supported",
            array.descr
        );
    }
    check_size(array.rows, array.columns)?;
    check_payload(&array, 4)?;
    Vectors::new(array.columns, f32s(array.payload))
}

/// Exact neighbours from a file, by extension: `.ivecs` (per query a
/// little-endian i32 count, then that many i32 ids, as TEXMEX ships its
/// ground truth) or a 2-D `.npy` of int32 or int64 (queries × neighbours).
/// Ids are row numbers of the stored vectors, best first.
pub fn load_neighbours(path: &Path) -> Result<Neighbours> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let parse = match extension {
        "npy" => parse_neighbours_npy,
        "ivecs" => parse_ivecs,
        _ => bail!(
            "{}: unknown format (expected an .ivecs file or a .npy of int32/int64)",
            path.display()
        ),
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

/// Neighbours an id file may hold: ids per query times queries.
pub const NEIGHBOURS_IDS_MAX: usize = 1 << 30;

fn neighbour_id(value: i64, at: usize) -> Result<u64> {
    u64::try_from(value).with_context(|| format!("entry {at} is {value}, not a row number"))
}

/// A 2-D int32 or int64 `.npy` of neighbour ids.
pub fn parse_neighbours_npy(bytes: &[u8]) -> Result<Neighbours> {
    let array = parse_npy_2d(bytes)?;
    let element_bytes = match array.descr {
        "<i4" => 4,
        "<i8" | "<u8" => 8,
        other => bail!("dtype {other:.8}: expected little-endian int32 or int64 ids"),
    };
    if array.rows == 0 || array.columns == 0 || array.rows * array.columns > NEIGHBOURS_IDS_MAX {
        bail!(
            "shape ({}, {}): expected [1, {NEIGHBOURS_IDS_MAX}] ids",
            array.rows,
            array.columns
        );
    }
    check_payload(&array, element_bytes)?;
    let ids = array
        .payload
        .chunks_exact(element_bytes)
        .enumerate()
        .map(|(at, b)| match array.descr {
            "<i4" => neighbour_id(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])), at),
            "<u8" => Ok(u64::from_le_bytes(b.try_into().expect("8 bytes"))),
            _ => neighbour_id(i64::from_le_bytes(b.try_into().expect("8 bytes")), at),
        })
        .collect::<Result<_>>()?;
    Ok(Neighbours {
        k: array.columns,
        ids,
    })
}

/// The `.ivecs` format (TEXMEX ground truth): per query a little-endian i32
/// count, then that many i32 ids; every query the same count.
pub fn parse_ivecs(bytes: &[u8]) -> Result<Neighbours> {
    let Some(first) = bytes.get(..4) else {
        bail!("an empty .ivecs file");
    };
    let columns = i32::from_le_bytes([first[0], first[1], first[2], first[3]]);
    let columns = usize::try_from(columns)
        .ok()
        .filter(|c| (1..=NEIGHBOURS_IDS_MAX).contains(c))
        .with_context(|| format!("the first row has {columns} ids"))?;
    let record_bytes = 4 + columns * 4;
    if bytes.len() % record_bytes != 0 || bytes.len() / 4 > NEIGHBOURS_IDS_MAX {
        bail!(
            "{} bytes are not whole rows of {columns} ids (or are over {NEIGHBOURS_IDS_MAX} ids)",
            bytes.len()
        );
    }
    let mut ids = Vec::with_capacity(bytes.len() / record_bytes * columns);
    for (row, record) in bytes.chunks_exact(record_bytes).enumerate() {
        if record[..4] != first[..] {
            bail!("row {row} has another id count than the first");
        }
        for (at, b) in record[4..].chunks_exact(4).enumerate() {
            let value = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            ids.push(neighbour_id(i64::from(value), row * columns + at)?);
        }
    }
    Ok(Neighbours { k: columns, ids })
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

/// numpy pads the `.npy` header so the array starts at a multiple of this.
const NPY_ALIGNMENT_BYTES: usize = 64;

/// The `.npy` version 1.0 header of a 2-D little-endian float32 array in C
/// order: magic, version, u16 header length, the dict padded with spaces
/// and ended by a newline so the data starts aligned.
fn npy_f32_header(rows: usize, columns: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let fixed = NPY_MAGIC.len() + 2 + 2;
    while (fixed + dict.len() + 1) % NPY_ALIGNMENT_BYTES != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut header = NPY_MAGIC.to_vec();
    header.extend_from_slice(&[1, 0]);
    // Two integers and a fixed text: far below u16::MAX.
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Writes `vectors` as a 2-D float32 `.npy` (C order), which numpy and
/// [`parse_npy`] read.
pub fn write_npy(path: &Path, vectors: &Vectors) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = (|| -> std::io::Result<()> {
        out.write_all(&npy_f32_header(vectors.count(), vectors.dims()))?;
        for value in vectors.as_slice() {
            out.write_all(&value.to_le_bytes())?;
        }
        out.flush()
    })();
    written.with_context(|| format!("writing {}", path.display()))
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
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        npy_bytes(header, &payload)
    }

    fn npy_bytes(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut padded = header.to_string();
        while (10 + padded.len() + 1) % 64 != 0 {
            padded.push(' ');
        }
        padded.push('\n');
        let mut bytes = NPY_MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        bytes.extend_from_slice(payload);
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

    #[test]
    fn written_npy_reads_back_bit_for_bit_with_the_data_aligned() {
        let values: Vec<f32> = vec![0.0, -1.5, f32::MIN_POSITIVE, 3.25e7, -0.0, 1.0 / 3.0];
        let vectors = Vectors::new(2, values).unwrap();
        let path = std::env::temp_dir().join(format!("vexfs-bench-npy.{}.npy", std::process::id()));
        write_npy(&path, &vectors).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let header = npy_f32_header(3, 2);
        assert_eq!(bytes[..header.len()], header[..]);
        assert_eq!(header.len() % NPY_ALIGNMENT_BYTES, 0);
        assert_eq!(header.last(), Some(&b'\n'));
        let read = parse_npy(&bytes).unwrap();
        assert_eq!((read.count(), read.dims()), (3, 2));
        let bits = |v: &Vectors| v.as_slice().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&read), bits(&vectors));
    }

    #[test]
    fn neighbours_from_ivecs_and_integer_npy_agree() {
        let ids: [i32; 6] = [5, 1, 0, 2, 4, 3];
        let mut ivecs = Vec::new();
        for row in ids.chunks(3) {
            ivecs.extend_from_slice(&3i32.to_le_bytes());
            for id in row {
                ivecs.extend_from_slice(&id.to_le_bytes());
            }
        }
        let from_ivecs = parse_ivecs(&ivecs).unwrap();
        assert_eq!(from_ivecs.k, 3);
        assert_eq!(from_ivecs.of(1), &[2, 4, 3]);
        assert!(parse_ivecs(&ivecs[..ivecs.len() - 4]).is_err());

        let int32 = npy_bytes(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
            &ids.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<_>>(),
        );
        let int64 = npy_bytes(
            "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }",
            &ids.iter()
                .flat_map(|&i| i64::from(i).to_le_bytes())
                .collect::<Vec<_>>(),
        );
        for bytes in [int32, int64] {
            let parsed = parse_neighbours_npy(&bytes).unwrap();
            assert_eq!((parsed.k, &parsed.ids), (from_ivecs.k, &from_ivecs.ids));
        }
        let negative = npy_bytes(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1), }",
            &(-1i32).to_le_bytes(),
        );
        assert!(parse_neighbours_npy(&negative).is_err());
    }
}
