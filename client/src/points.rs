//! Payloads of points and the requests that filter by them: SET_PAYLOADS,
//! GET_PAYLOADS, FILTERED_SEARCH and SCROLL, each filter a Qdrant JSON
//! filter (docs/VECTORS.md).

use std::io;
use std::os::fd::AsFd;

use vexfs_uapi::limits::REQUEST_BYTES_MAX;
use vexfs_uapi::{
    VexfsFilteredSearchRequest, VexfsGetPayloadsRequest, VexfsScrollRequest,
    VexfsSetPayloadsRequest, VEXFS_IOC_FILTERED_SEARCH, VEXFS_IOC_GET_PAYLOADS, VEXFS_IOC_SCROLL,
    VEXFS_IOC_SET_PAYLOADS, VEXFS_NO_ID, VEXFS_PAYLOAD_MERGE, VEXFS_SEARCH_EXACT,
};

use crate::{address, address_mut, corrupt, count_u32, invalid, VectorFile};

/// One page of [`VectorFile::scroll`]: matching ids, ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrollPage {
    pub ids: Vec<u64>,
    /// Where the next page starts, when matching ids remain.
    pub next_id: Option<u64>,
    /// Ids at or after the page's start that match, in all.
    pub matching_count: u32,
}

/// A JSON filter's (address, bytes): (0, 0) for none. An empty filter is
/// refused here rather than sent as an address with 0 bytes (EINVAL).
fn filter_fields(filter: Option<&[u8]>) -> io::Result<(u64, u32)> {
    match filter {
        None => Ok((0, 0)),
        Some([]) => Err(invalid(
            "an empty filter (None means no filter)".to_string(),
        )),
        Some(filter) => Ok((address(filter), count_u32("filter bytes", filter.len())?)),
    }
}

impl<F: AsFd> VectorFile<F> {
    /// Sets the payload of each of `ids` (a JSON object each, UTF-8); an
    /// empty payload removes that id's. With `vectors` (elements and
    /// dimensions), upserts the ids' vectors in the same step, all or
    /// nothing. `merge` merges the given keys into each stored object
    /// instead of replacing it.
    pub fn set_payloads(
        &self,
        ids: &[u64],
        payloads: &[&[u8]],
        vectors: Option<(&[f32], u32)>,
        merge: bool,
    ) -> io::Result<()> {
        if payloads.len() != ids.len() {
            return Err(invalid(format!(
                "{} payloads for {} ids",
                payloads.len(),
                ids.len()
            )));
        }
        let (vectors_addr, dimensions) = match vectors {
            None => (0, 0),
            Some((vectors, dimensions)) => {
                let elements = ids.len().checked_mul(dimensions as usize);
                if dimensions == 0 || elements != Some(vectors.len()) {
                    return Err(invalid(format!(
                        "{} values are not {} vectors of {dimensions}",
                        vectors.len(),
                        ids.len()
                    )));
                }
                (address(vectors), dimensions)
            }
        };
        let payload_bytes = payloads
            .iter()
            .map(|payload| count_u32("payload bytes", payload.len()))
            .collect::<io::Result<Vec<u32>>>()?;
        let concatenated = payloads.concat();
        let request = VexfsSetPayloadsRequest {
            ids_addr: address(ids),
            // NULL when every payload is a removal: there is nothing to read.
            payloads_addr: if concatenated.is_empty() {
                0
            } else {
                address(&concatenated)
            },
            payload_bytes_addr: address(&payload_bytes),
            vectors_addr,
            id_count: count_u32("ids", ids.len())?,
            dimensions,
            flags: if merge { VEXFS_PAYLOAD_MERGE } else { 0 },
            reserved: 0,
        };
        self.ioctl(VEXFS_IOC_SET_PAYLOADS, &mut request.to_bytes())
    }

    /// The payloads of `ids`, in that order; `None` for an id without one.
    pub fn payloads(&self, ids: &[u64]) -> io::Result<Vec<Option<Vec<u8>>>> {
        let id_count = count_u32("ids", ids.len())?;
        let mut payload_bytes = vec![0u32; ids.len()];
        // Another writer may grow the payloads between learning their size
        // and fetching them (ERANGE, nothing written); learn it once more.
        let mut tries_left = 2;
        let buffer = loop {
            tries_left -= 1;
            let sizing = VexfsGetPayloadsRequest {
                ids_addr: address(ids),
                buffer_addr: 0,
                payload_bytes_addr: address_mut(&mut payload_bytes),
                buffer_bytes: 0,
                id_count,
                flags: 0,
            };
            let mut bytes = sizing.to_bytes();
            self.ioctl(VEXFS_IOC_GET_PAYLOADS, &mut bytes)?;
            let total_bytes = VexfsGetPayloadsRequest::from_bytes(&bytes).buffer_bytes;
            check_payload_total(&payload_bytes, total_bytes)?;
            if total_bytes == 0 {
                break Vec::new();
            }
            if total_bytes > REQUEST_BYTES_MAX {
                // The daemon refuses a buffer this large; say so without allocating it.
                return Err(io::Error::from_raw_os_error(libc::E2BIG));
            }
            let mut buffer = vec![0u8; total_bytes as usize];
            let fetch = VexfsGetPayloadsRequest {
                buffer_addr: address_mut(&mut buffer),
                buffer_bytes: total_bytes,
                ..sizing
            };
            let mut bytes = fetch.to_bytes();
            match self.ioctl(VEXFS_IOC_GET_PAYLOADS, &mut bytes) {
                Ok(()) => {
                    let written = VexfsGetPayloadsRequest::from_bytes(&bytes).buffer_bytes;
                    if written > total_bytes {
                        return Err(corrupt(format!(
                            "buffer_bytes {written} is over the {total_bytes} bytes given"
                        )));
                    }
                    check_payload_total(&payload_bytes, written)?;
                    buffer.truncate(written as usize);
                    break buffer;
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) && tries_left > 0 => continue,
                Err(e) => return Err(e),
            }
        };
        let mut rest = &buffer[..];
        Ok(payload_bytes
            .iter()
            .map(|&length| {
                let (payload, after) = rest.split_at(length as usize);
                rest = after;
                (length > 0).then(|| payload.to_vec())
            })
            .collect())
    }

    /// `queries.len() / dimensions` queries, each for its `k` nearest
    /// neighbours among the ids whose payload matches `filter` (all ids
    /// when `None`); `exact` scans every vector instead of using the index.
    /// Query q's results are `distances`/`ids[q * k..(q + 1) * k]`, best
    /// first, an unused place holding [`VEXFS_NO_ID`]. Returns the most
    /// results any query got.
    #[allow(clippy::too_many_arguments)] // the ioctl's fields, each with its own meaning
    pub fn filtered_search(
        &self,
        queries: &[f32],
        dimensions: u32,
        k: usize,
        search_type: u32,
        filter: Option<&[u8]>,
        exact: bool,
        distances: &mut [f32],
        ids: &mut [u64],
    ) -> io::Result<usize> {
        let dims = dimensions.max(1) as usize;
        if dimensions == 0 || queries.len() % dims != 0 {
            return Err(invalid(format!(
                "{} values are not whole queries of {dimensions}",
                queries.len()
            )));
        }
        let query_count = queries.len() / dims;
        if distances.len() != ids.len() {
            return Err(invalid(format!(
                "{} distance slots but {} id slots",
                distances.len(),
                ids.len()
            )));
        }
        if query_count.checked_mul(k) != Some(ids.len()) {
            return Err(invalid(format!(
                "{} result slots for {query_count} queries of k = {k}",
                ids.len()
            )));
        }
        let (filter_addr, filter_bytes) = filter_fields(filter)?;
        let request = VexfsFilteredSearchRequest {
            query_vector_addr: address(queries),
            results_addr: address_mut(distances),
            result_ids_addr: address_mut(ids),
            filter_addr,
            filter_bytes,
            dimensions,
            k: count_u32("neighbours", k)?,
            search_type,
            query_count: count_u32("queries", query_count)?,
            flags: if exact { VEXFS_SEARCH_EXACT } else { 0 },
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_FILTERED_SEARCH, &mut bytes)?;
        let written = VexfsFilteredSearchRequest::from_bytes(&bytes).result_count as usize;
        if written > k {
            return Err(corrupt(format!("result_count {written} is over k = {k}")));
        }
        Ok(written)
    }

    /// The `k` nearest neighbours of `query` among the ids whose payload
    /// matches `filter`, as (id, distance), best first.
    pub fn filtered_nearest(
        &self,
        query: &[f32],
        k: usize,
        search_type: u32,
        filter: Option<&[u8]>,
    ) -> io::Result<Vec<(u64, f32)>> {
        let dimensions = count_u32("dimensions", query.len())?;
        let mut distances = vec![0f32; k];
        let mut ids = vec![0u64; k];
        let written = self.filtered_search(
            query,
            dimensions,
            k,
            search_type,
            filter,
            false,
            &mut distances,
            &mut ids,
        )?;
        Ok(ids[..written]
            .iter()
            .copied()
            .zip(distances[..written].iter().copied())
            .filter(|&(id, _)| id != VEXFS_NO_ID)
            .collect())
    }

    /// Up to `limit` stored ids from `start_id` on whose payload matches
    /// `filter` (every stored id when `None`), ascending; `limit` 0 only
    /// counts them.
    pub fn scroll(
        &self,
        filter: Option<&[u8]>,
        start_id: u64,
        limit: usize,
    ) -> io::Result<ScrollPage> {
        let (filter_addr, filter_bytes) = filter_fields(filter)?;
        let mut ids = vec![0u64; limit];
        let request = VexfsScrollRequest {
            filter_addr,
            // NULL ids asks for the count alone, and goes with limit 0.
            ids_addr: if limit == 0 { 0 } else { address_mut(&mut ids) },
            start_id,
            filter_bytes,
            limit: count_u32("ids", limit)?,
            ..Default::default()
        };
        let mut bytes = request.to_bytes();
        self.ioctl(VEXFS_IOC_SCROLL, &mut bytes)?;
        let answer = VexfsScrollRequest::from_bytes(&bytes);
        if answer.id_count as usize > limit {
            return Err(corrupt(format!(
                "id_count {} is over limit = {limit}",
                answer.id_count
            )));
        }
        ids.truncate(answer.id_count as usize);
        Ok(ScrollPage {
            ids,
            next_id: (answer.more != 0).then_some(answer.next_id),
            matching_count: answer.matching_count,
        })
    }

    /// How many stored ids have a payload matching `filter` (all of them when `None`).
    pub fn count(&self, filter: Option<&[u8]>) -> io::Result<u32> {
        Ok(self.scroll(filter, 0, 0)?.matching_count)
    }
}

/// The lengths GET_PAYLOADS wrote add up to the bytes it says they take.
fn check_payload_total(payload_bytes: &[u32], total_bytes: u64) -> io::Result<()> {
    let sum: u64 = payload_bytes.iter().map(|&length| u64::from(length)).sum();
    if sum != total_bytes {
        return Err(corrupt(format!(
            "payload lengths add up to {sum} bytes, but buffer_bytes is {total_bytes}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vexfs_uapi::{VEXFS_SEARCH_COSINE, VEXFS_SEARCH_EUCLIDEAN};

    use crate::tests::scratch;

    #[test]
    fn payload_and_filter_counts_are_refused_before_any_ioctl() {
        let path = scratch("payload-counts");
        let file = VectorFile::create(&path).unwrap();
        let refused = |r: io::Result<()>| r.unwrap_err().kind();
        let payload: &[u8] = br#"{"color":"red"}"#;
        // Two ids, one payload.
        assert_eq!(
            refused(file.set_payloads(&[1, 2], &[payload], None, false)),
            io::ErrorKind::InvalidInput
        );
        // Vectors that are not one per id, or of no dimensions.
        for vectors in [(&[0.0; 6][..], 2), (&[0.0; 4], 0)] {
            assert_eq!(
                refused(file.set_payloads(&[1, 2], &[payload, b""], Some(vectors), true)),
                io::ErrorKind::InvalidInput
            );
        }
        let (mut distances, mut ids) = (vec![0f32; 6], vec![0u64; 6]);
        for (queries, dimensions, k) in [
            (&[0.0; 5][..], 2, 3), // not whole queries
            (&[0.0; 4], 0, 3),     // no dimensions
            (&[0.0; 4], 2, 2),     // 2 queries x k = 2 is not 6 slots
        ] {
            assert_eq!(
                file.filtered_search(
                    queries,
                    dimensions,
                    k,
                    VEXFS_SEARCH_EUCLIDEAN,
                    None,
                    false,
                    &mut distances,
                    &mut ids
                )
                .unwrap_err()
                .kind(),
                io::ErrorKind::InvalidInput
            );
        }
        assert_eq!(
            file.filtered_search(
                &[0.0; 4],
                2,
                3,
                VEXFS_SEARCH_EUCLIDEAN,
                None,
                false,
                &mut distances,
                &mut ids[..5]
            )
            .unwrap_err()
            .kind(),
            io::ErrorKind::InvalidInput
        );
        // An empty filter is refused rather than sent as "0 bytes at an address".
        assert_eq!(
            file.filtered_nearest(&[0.0; 2], 3, VEXFS_SEARCH_COSINE, Some(b""))
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            file.scroll(Some(b""), 0, 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            file.count(Some(b"")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn payload_lengths_must_add_up_to_the_bytes_they_take() {
        assert!(check_payload_total(&[3, 0, 5], 8).is_ok());
        assert!(check_payload_total(&[], 0).is_ok());
        assert_eq!(
            check_payload_total(&[3, 0, 5], 9).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn payload_and_filter_requests_on_a_file_outside_vexfs_answer_enotty() {
        let path = scratch("plain-payloads");
        let file = VectorFile::create(&path).unwrap();
        let enotty = |e: io::Error| assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
        let filter: &[u8] = br#"{"must":[{"key":"color","match":{"value":"red"}}]}"#;
        let payload: &[u8] = br#"{"color":"red"}"#;
        enotty(
            file.set_payloads(&[1, 2], &[payload, b""], None, false)
                .unwrap_err(),
        );
        enotty(
            file.set_payloads(&[1], &[payload], Some((&[0.5; 4], 4)), true)
                .unwrap_err(),
        );
        enotty(file.payloads(&[1, 2]).unwrap_err());
        enotty(
            file.filtered_nearest(&[0.0; 4], 3, VEXFS_SEARCH_COSINE, Some(filter))
                .unwrap_err(),
        );
        enotty(file.scroll(Some(filter), 0, 10).unwrap_err());
        enotty(file.scroll(None, 5, 0).unwrap_err());
        enotty(file.count(None).unwrap_err());
        std::fs::remove_file(&path).unwrap();
    }
}
