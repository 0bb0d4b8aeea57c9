//! A stored index is checked by us before faiss reads it.
//!
//! faiss's reader trusts its input: a crafted HNSW index with a matching
//! crc32c looped forever in a search, and a crafted header made it
//! allocate gigabytes. So the bytes of a stored index are walked here, in
//! faiss's serialisation (`faiss/impl/index_write.cpp`, faiss 1.12), every
//! length checked against the bytes left and against the file before
//! anything is allocated, and every graph link against the vector count.
//! Only the HNSW-over-flat-storage index (what `HNSW<M>` builds) is
//! checked, so only it is loaded from the disk; any other stored index is
//! rebuilt from the rows instead of being read.

use super::labels::{Labels, LABELS_PER_SLOT_MAX};
use super::spec::{IndexSpec, HNSW_M_MAX};

/// Levels an HNSW graph may have: faiss draws a level with probability
/// M^-level; past this the probabilities underflow.
pub const HNSW_LEVELS_MAX: usize = 64;
/// faiss's efConstruction and efSearch as stored.
const EF_STORED_MAX: i32 = 1 << 16;

const METRIC_INNER_PRODUCT: i32 = 0;
const METRIC_L2: i32 = 1;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "{what}: {n} bytes at {} past the end of the index ({} bytes)",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        Ok(i32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self, what: &str) -> Result<i64, String> {
        Ok(i64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    /// A faiss vector: a u64 count, then the elements. The count is checked
    /// against `max` and the bytes left before it is believed.
    fn vector(&mut self, element_bytes: usize, max: usize, what: &str) -> Result<&'a [u8], String> {
        let count = self.i64(what)?;
        if count < 0 || count as u64 > max as u64 {
            return Err(format!("{what}: {count} elements, at most {max} expected"));
        }
        self.take(count as usize * element_bytes, what)
    }

    fn fourcc(&mut self, want: &[u8; 4], what: &str) -> Result<(), String> {
        let found = self.take(4, what)?;
        if found != want {
            return Err(format!(
                "{what}: {:?} where {:?} was expected",
                String::from_utf8_lossy(found),
                String::from_utf8_lossy(want)
            ));
        }
        Ok(())
    }

    /// faiss's index header: dimensions, count, two dummies, trained, metric.
    fn header(&mut self, dimensions: usize, metric: i32, what: &str) -> Result<i64, String> {
        let d = self.i32(what)?;
        if d as i64 != dimensions as i64 {
            return Err(format!("{what}: {d} dimensions, the file has {dimensions}"));
        }
        let ntotal = self.i64(what)?;
        self.i64(what)?;
        self.i64(what)?;
        if self.u8(what)? > 1 {
            return Err(format!("{what}: is_trained is not a bool"));
        }
        let found = self.i32(what)?;
        if found != metric {
            return Err(format!("{what}: metric {found}, expected {metric}"));
        }
        Ok(ntotal)
    }
}

fn ints(bytes: &[u8]) -> impl Iterator<Item = i32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Link bytes per vector a stored graph may average: level 0's 2 M links
/// at the largest M are 1 KiB, and a node reaches each level above with
/// probability 1/M: four times level 0's share is never reached.
const LINK_BYTES_PER_VECTOR_MAX: u64 = 4 * 2 * HNSW_M_MAX as u64 * 4;

/// Bytes a stored `HNSW<M>` index of `vectors` rows of `dimensions` may
/// take at most: the rows again (its flat storage), the links, and the
/// level and offset tables; checked before it is read.
pub fn index_bytes_max(dimensions: usize, vectors: u64) -> u64 {
    let per_vector = dimensions as u64 * 4 + LINK_BYTES_PER_VECTOR_MAX + 4 + 8;
    vectors.saturating_mul(per_vector).saturating_add(1 << 20)
}

/// Bytes a stored index (FORMAT.md §13.5: with its label map when
/// `label_map`) of a file of `vectors` rows may take at most.
pub fn stored_bytes_max(dimensions: usize, vectors: u64, label_map: bool) -> u64 {
    if !label_map {
        return index_bytes_max(dimensions, vectors);
    }
    let labels = vectors.saturating_mul(LABELS_PER_SLOT_MAX as u64);
    index_bytes_max(dimensions, labels)
        .saturating_add(8)
        .saturating_add(labels.saturating_mul(4))
}

/// The label map that precedes a stored index whose labels are not its
/// slots (FORMAT.md §13.5): the label count (u64), then each label's slot
/// (u32; u32::MAX for a tombstone), little-endian.
pub fn encode_label_map(labels: &Labels) -> Vec<u8> {
    let slots = labels.slot_of_labels();
    let mut bytes = Vec::with_capacity(8 + slots.len() * 4);
    bytes.extend_from_slice(&(slots.len() as u64).to_le_bytes());
    for slot in slots {
        bytes.extend_from_slice(&slot.to_le_bytes());
    }
    bytes
}

/// Checks a stored index of a file of `dimensions` and `vectors` before
/// faiss sees it: the label map first when there is one (its length, then
/// every slot, see [`Labels::from_slot_of`]), then faiss's bytes. Returns
/// the labels (None: label i is slot i) and faiss's part.
pub fn check_stored(
    bytes: &[u8],
    label_map: bool,
    dimensions: usize,
    vectors: usize,
    l2: bool,
) -> Result<(Option<Labels>, &[u8]), String> {
    if !label_map {
        check_hnsw(bytes, dimensions, vectors, l2)?;
        return Ok((None, bytes));
    }
    let mut r = Reader { bytes, at: 0 };
    let count = r.i64("label map length")?;
    let labels_max = vectors as u64 * LABELS_PER_SLOT_MAX as u64;
    if count < 0 || count as u64 > labels_max {
        return Err(format!(
            "label map: {count} labels for {vectors} vectors, over {labels_max}"
        ));
    }
    let raw = r.take(count as usize * 4, "label map")?;
    let slot_of: Vec<u32> = raw
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let labels = Labels::from_slot_of(slot_of, vectors).map_err(|e| format!("label map: {e}"))?;
    let faiss = &bytes[r.at..];
    check_hnsw(faiss, dimensions, labels.labels(), l2)?;
    Ok((Some(labels), faiss))
}

/// Whether a stored index of `spec` may be loaded at all (see the module).
pub fn loadable(spec: &IndexSpec) -> bool {
    matches!(spec, IndexSpec::Hnsw { .. })
}

/// Checks the bytes of a stored `HNSW<M>` index of a file of `dimensions`
/// and `vectors`, built for `l2` (else inner product): the error names the
/// first field that is wrong.
pub fn check_hnsw(bytes: &[u8], dimensions: usize, vectors: usize, l2: bool) -> Result<(), String> {
    let metric = if l2 { METRIC_L2 } else { METRIC_INNER_PRODUCT };
    let mut r = Reader { bytes, at: 0 };
    r.fourcc(b"IHNf", "index type")?;
    let ntotal = r.header(dimensions, metric, "HNSW header")?;
    if ntotal < 0 || ntotal as u64 > vectors as u64 {
        return Err(format!(
            "HNSW header: {ntotal} vectors, the file holds {vectors}"
        ));
    }
    let n = ntotal as usize;
    let probas = r.vector(8, HNSW_LEVELS_MAX, "assign_probas")?.len() / 8;
    let cum = r.vector(4, HNSW_LEVELS_MAX + 1, "cum_nneighbor_per_level")?;
    let cum: Vec<i32> = ints(cum).collect();
    if cum.len() != probas + 1 || cum.first() != Some(&0) {
        return Err(format!(
            "cum_nneighbor_per_level: {} entries starting {:?} for {probas} levels",
            cum.len(),
            cum.first()
        ));
    }
    // Links per node on a level: at most 2 M on level 0, M above.
    let per_node_max = 2 * HNSW_M_MAX as i32 * cum.len() as i32;
    if cum.windows(2).any(|w| w[1] < w[0]) || cum.last().is_some_and(|l| *l > per_node_max) {
        return Err("cum_nneighbor_per_level: not rising, or too many links per node".into());
    }
    let levels: Vec<i32> = ints(r.vector(4, n, "levels")?).collect();
    if levels.len() != n || levels.iter().any(|l| *l < 1 || *l as usize > probas) {
        return Err(format!(
            "levels: {} entries for {n} vectors, each must be in 1..={probas}",
            levels.len()
        ));
    }
    let offsets = r.vector(8, n + 1, "offsets")?;
    let offsets: Vec<u64> = offsets
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    if offsets.len() != n + 1 || offsets[0] != 0 {
        return Err(format!(
            "offsets: {} entries for {n} vectors",
            offsets.len()
        ));
    }
    for (i, level) in levels.iter().enumerate() {
        let links = cum[*level as usize] as u64;
        if offsets[i + 1] != offsets[i] + links {
            return Err(format!(
                "offsets: node {i} has {} links, its level {level} gives {links}",
                offsets[i + 1].wrapping_sub(offsets[i])
            ));
        }
    }
    let links_total = offsets[n] as usize;
    let neighbors = r.vector(4, links_total, "neighbors")?;
    if neighbors.len() != links_total * 4 {
        return Err(format!(
            "neighbors: {} links, the offsets say {links_total}",
            neighbors.len() / 4
        ));
    }
    if let Some(bad) = ints(neighbors).find(|v| *v < -1 || *v as i64 >= ntotal) {
        return Err(format!("neighbors: link to {bad}, outside the {n} vectors"));
    }
    let entry = r.i32("entry_point")?;
    let max_level = r.i32("max_level")?;
    if n == 0 {
        if entry != -1 {
            return Err(format!("entry_point {entry} in an empty graph"));
        }
    } else if entry < 0 || entry as usize >= n || levels[entry as usize] - 1 != max_level {
        return Err(format!(
            "entry_point {entry} at max_level {max_level} does not match its node"
        ));
    }
    for what in ["efConstruction", "efSearch"] {
        let ef = r.i32(what)?;
        if !(1..=EF_STORED_MAX).contains(&ef) {
            return Err(format!("{what}: {ef} out of range"));
        }
    }
    r.i32("upper_beam")?;
    // The flat storage: the vectors themselves.
    let storage = if l2 { b"IxF2" } else { b"IxFI" };
    r.fourcc(storage, "storage type")?;
    let stored = r.header(dimensions, metric, "storage header")?;
    if stored != ntotal {
        return Err(format!("storage: {stored} vectors, the graph {ntotal}"));
    }
    // WRITEXBVECTOR: the count is of 4-byte words.
    let words = r.vector(4, n * dimensions, "storage codes")?;
    if words.len() != n * dimensions * 4 {
        return Err(format!(
            "storage codes: {} floats for {n} vectors of {dimensions}",
            words.len() / 4
        ));
    }
    // A NaN among the stored vectors makes faiss's graph search loop forever.
    if let Some(at) = words
        .chunks_exact(4)
        .position(|b| !f32::from_le_bytes(b.try_into().expect("4 bytes")).is_finite())
    {
        return Err(format!(
            "storage codes: vector {} holds NaN or Inf",
            at / dimensions
        ));
    }
    if r.at != bytes.len() {
        return Err(format!(
            "{} bytes after the index's end",
            bytes.len() - r.at
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::index::{IndexChoice, VectorIndex};
    use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN};

    fn stored(n: usize, d: usize, search_type: u32) -> Vec<u8> {
        let rows: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let choice = IndexChoice::resolve(Some("HNSW8"), None, n, d as u32).unwrap();
        VectorIndex::build(&choice, &rows, d, search_type)
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    /// Offset of the first link: fourcc, header, the three tables before it.
    fn neighbors_at(bytes: &[u8], n: usize) -> usize {
        let mut at = 4 + 4 + 8 + 8 + 8 + 1 + 4;
        let count = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        at += 8 + count(at) * 8; // assign_probas
        at += 8 + count(at) * 4; // cum_nneighbor_per_level
        at += 8 + n * 4; // levels
        at += 8 + (n + 1) * 8; // offsets
        at + 8
    }

    #[test]
    fn what_faiss_writes_passes_and_every_damage_is_named() {
        let (n, d) = (300, 8);
        for (search_type, l2) in [(VEXFS_SEARCH_EUCLIDEAN, true), (VEXFS_SEARCH_COSINE, false)] {
            let bytes = stored(n, d, search_type);
            check_hnsw(&bytes, d, n, l2).unwrap();
            assert!((bytes.len() as u64) <= index_bytes_max(d, n as u64));
            assert!(check_hnsw(&bytes, d, n, !l2)
                .unwrap_err()
                .contains("metric"));
            assert!(check_hnsw(&bytes, d + 1, n, l2)
                .unwrap_err()
                .contains("dimensions"));
            assert!(check_hnsw(&bytes, d, n - 1, l2)
                .unwrap_err()
                .contains("vectors"));
            assert!(check_hnsw(&bytes[..bytes.len() - 1], d, n, l2).is_err());

            let link = neighbors_at(&bytes, n);
            let mut bad = bytes.clone();
            bad[link..link + 4].copy_from_slice(&(n as i32 + 5).to_le_bytes());
            assert!(check_hnsw(&bad, d, n, l2)
                .unwrap_err()
                .contains("neighbors"));
            // A huge ntotal in the header: refused before anything is allocated.
            let mut bad = bytes.clone();
            bad[8..16].copy_from_slice(&(1i64 << 40).to_le_bytes());
            assert!(check_hnsw(&bad, d, n, l2).is_err());
            // A huge count of assign_probas.
            let mut bad = bytes.clone();
            bad[37..45].copy_from_slice(&u64::MAX.to_le_bytes());
            assert!(check_hnsw(&bad, d, n, l2).is_err());
        }
    }
}
