//! VECTOR_SEARCH: which index serves a search (the file's
//! `user.vexfs.*` attributes through [`spec`](super::spec)), building it or
//! reading it back from the file (through [`stored`](super::stored)'s check),
//! and the exact scan when no index can answer.

use vexfs_uapi::*;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::Fs;
use crate::interrupt::Interrupt;
use crate::locks::RwLock;

use super::answers::{Answers, Ranking, Scratch};
use super::builder::{Job, SYNC_BUILD_VECTORS_MAX};
use super::changes::Build;
use super::exact::TopK;
use super::filter::{parse_index_spec, Filter};
use super::index::{IndexChoice, VectorIndex, DEFAULT_EXACT_VECTORS_MAX};
use super::layout::{VectorMeta, INDEX_SPEC_BYTES_MAX};
use super::{
    einval, read_lock, spec, stored, write_lock, VectorFile, XATTR_INDEX, XATTR_PAYLOAD_INDEX,
    XATTR_SEARCH,
};

/// An index choice and what it was resolved for: the attributes as of
/// `epoch` ([`VectorFiles`](super::VectorFiles)'s count of attribute
/// changes), a file at or past the default-index size or not, dimensions.
pub(super) struct CachedChoice {
    epoch: u64,
    large: bool,
    dimensions: u32,
    choice: Arc<IndexChoice>,
}

/// Below this fraction of the vectors, a filter's matches are ranked by an
/// exact scan of them rather than by the index with a selector: a graph
/// index searched for few matches walks mostly past non-matching nodes and
/// loses recall, while a scan of a tenth of the rows costs a tenth of a
/// full one and is exact. (Measured in `tests/points.rs` and
/// `vexfs-bench search --filter-selectivity`.)
pub const FILTER_INDEX_FRACTION_MIN: f64 = 0.25;

/// Which vectors a search ranks.
#[derive(Default)]
pub struct Among<'a> {
    /// Only those whose (id, payload) the filter matches; None: all.
    pub filter: Option<&'a Filter>,
    /// Rank by an exact scan, whatever index the file has.
    pub exact: bool,
}

/// What [`Fs::prepare_index`] left behind.
enum Prepared {
    /// The index serves the search.
    Ready,
    /// The builder thread is making it.
    Building,
}

impl Fs {
    /// VECTOR_SEARCH: (id, value) pairs, best first.
    pub fn search_vectors(
        &self,
        ino: u64,
        query: &[f32],
        k: u32,
        search_type: u32,
    ) -> Result<Vec<(u64, f32)>> {
        self.search_vectors_for(ino, query, k, search_type, &Interrupt::never())
    }

    /// [`search_vectors`](Self::search_vectors) for a caller that may be
    /// killed meanwhile: a long exact scan then ends with EINTR.
    pub fn search_vectors_for(
        &self,
        ino: u64,
        query: &[f32],
        k: u32,
        search_type: u32,
        interrupt: &Interrupt,
    ) -> Result<Vec<(u64, f32)>> {
        let mut answers =
            self.search_points(ino, query, k, search_type, &Among::default(), interrupt)?;
        Ok(answers.pop().unwrap_or_default())
    }

    /// The `k` best (id, value) pairs for each query in `queries` (rows of
    /// the file's dimensions), best first, among the vectors `among`
    /// selects (allocates: for callers off the request path; the request
    /// path uses [`search_into`](Self::search_into)).
    pub fn search_points(
        &self,
        ino: u64,
        queries: &[f32],
        k: u32,
        search_type: u32,
        among: &Among<'_>,
        interrupt: &Interrupt,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let file = self.vector_file(ino)?;
        let dimensions = read_lock(&file).meta.dimensions.max(1) as usize;
        let count = queries.len() / dimensions;
        let mut scratch = Scratch::default();
        let (mut answers, ranking) = scratch.answers(count, k as usize);
        self.search_into(
            &file,
            ino,
            (queries, count),
            k,
            search_type,
            among,
            interrupt,
            &mut answers,
            ranking,
        )?;
        Ok(scratch
            .ids
            .chunks(k.max(1) as usize)
            .zip(scratch.values.chunks(k.max(1) as usize))
            .take(count)
            .map(|(ids, values)| {
                ids.iter()
                    .zip(values)
                    .take_while(|(&id, _)| id != VEXFS_NO_ID)
                    .map(|(&id, &value)| (id, value))
                    .collect()
            })
            .collect())
    }

    /// [`search_into`](Self::search_into) for the `count` queries in
    /// `scratch.queries`, answered into `scratch.ids` / `scratch.values`
    /// (`k` places per query, unused ones VEXFS_NO_ID and NaN); returns
    /// the most results any query got.
    pub fn search_scratch(
        &self,
        (file, ino): (&Arc<RwLock<VectorFile>>, u64),
        scratch: &mut Scratch,
        count: usize,
        (k, search_type): (u32, u32),
        among: &Among<'_>,
        interrupt: &Interrupt,
    ) -> Result<usize> {
        let queries = std::mem::take(&mut scratch.queries);
        let (mut answers, ranking) = scratch.answers(count, k as usize);
        let searched = self.search_into(
            file,
            ino,
            (&queries, count),
            k,
            search_type,
            among,
            interrupt,
            &mut answers,
            ranking,
        );
        let most = answers.most();
        scratch.queries = queries;
        searched.map(|()| most)
    }

    /// The vector file `ino` in memory, for [`search_into`](Self::search_into):
    /// EINVAL when it is not a vector file.
    pub fn searched_file(&self, ino: u64) -> Result<Arc<RwLock<VectorFile>>> {
        self.vector_file(ino)
    }

    /// Searches `file` (`ino`) for the `k` best (id, value) pairs of each
    /// of the `count` queries in `queries` (EINVAL unless they are rows of
    /// the file's dimensions), best first,
    /// among the vectors `among` selects, into `answers` (whose places
    /// start unused). An index answers all the queries in one faiss call
    /// when one serves the metric and, with a filter, its matches are not
    /// too few for it ([`FILTER_INDEX_FRACTION_MIN`]); an exact scan of
    /// the matches answers otherwise, and for any query the index comes
    /// back with fewer than min(k, matches) for. On the common path (an
    /// index in memory for this metric) it takes the file's read lock once
    /// and allocates nothing.
    #[allow(clippy::too_many_arguments)] // the request's fields, and where its answers go
    pub fn search_into(
        &self,
        file: &Arc<RwLock<VectorFile>>,
        ino: u64,
        (queries, count): (&[f32], usize),
        k: u32,
        search_type: u32,
        among: &Among<'_>,
        interrupt: &Interrupt,
        answers: &mut Answers<'_>,
        ranking: &mut Ranking,
    ) -> Result<()> {
        let k = k as usize;
        loop {
            let guard = read_lock(file);
            // Checked under the lock that the search holds: a relayout may
            // change the dimensions, a truncate empty the file, between
            // requests. The request's rows are `count` queries of its own
            // dimensions, never cut into rows of the file's.
            let d = guard.meta.dimensions as usize;
            if d == 0 || queries.len() != count * d {
                return Err(einval(format!(
                    "dimensions: {} per query does not match the file's {d}",
                    queries.len() / count.max(1)
                )));
            }
            let mut any = false;
            for query in queries.chunks(d) {
                any |= guard.answers(query)?;
            }
            if !any {
                return Ok(());
            }
            let choice = self.index_choice(ino, &guard)?;
            let matches = among
                .filter
                .map(|f| self.matches(ino, &guard, f))
                .transpose()?;
            let matching = matches.as_ref().map(|m| m.slots());
            let ranked = (k, search_type);
            let scan = |guard: &VectorFile,
                        matching: Option<&[usize]>,
                        answers: &mut Answers,
                        top: &mut TopK| {
                for (q, query) in queries.chunks(d).enumerate() {
                    answers.put(q, guard.scan(query, ranked, matching, interrupt, top)?);
                }
                Ok(())
            };
            if let Some(m) = matching {
                if m.is_empty() {
                    return Ok(());
                }
                if among.exact
                    || (m.len() as f64) < FILTER_INDEX_FRACTION_MIN * guard.set.len() as f64
                {
                    return scan(&guard, Some(m), answers, &mut ranking.scan);
                }
            } else if among.exact {
                return scan(&guard, None, answers, &mut ranking.scan);
            }
            if guard.index_serves(search_type, &choice) {
                let index = guard.index.as_ref().expect("checked by index_serves");
                // None: no filter; Some(None): the family takes no selector.
                let labels = matches
                    .as_ref()
                    .map(|m| m.label_bitmap(index, guard.set.len()));
                let bitmap = match &labels {
                    None => None,
                    Some(Some(bitmap)) => Some(bitmap.as_slice()),
                    Some(None) => return scan(&guard, matching, answers, &mut ranking.scan),
                };
                index
                    .search_batch(queries, k, bitmap, &mut ranking.index)
                    .map_err(|e| Error::refused(libc::EIO, format!("faiss search failed: {e}")))?;
                let reachable = matching.map_or(guard.set.len(), <[usize]>::len);
                let ids = guard.set.ids();
                for (q, query) in queries.chunks(d).enumerate() {
                    let hits = index
                        .hits(&ranking.index, q)
                        .filter(|hit| hit.slot < ids.len())
                        .map(|hit| (ids[hit.slot], hit.value));
                    // A graph or IVF index can come back short of min(k,
                    // count) (HNSW at a k far above efSearch, or a selective
                    // filter): that query's answer is then exact.
                    if answers.put(q, hits) < k.min(reachable) {
                        let top = &mut ranking.scan;
                        answers.put(q, guard.scan(query, ranked, matching, interrupt, top)?);
                    }
                }
                return Ok(());
            }
            // The chosen index, current, but built for another metric.
            let other_metric = guard.index.as_ref().is_some_and(|i| {
                i.search_type != search_type
                    && i.factory == choice.factory
                    && guard.index_generation == guard.generation
            });
            let building = guard
                .building
                .as_ref()
                .is_some_and(|b| b.factory == choice.factory && b.search_type == search_type);
            if other_metric
                || building
                || guard.set.len() < k
                || guard.index_failed(search_type, &choice)
            {
                // The index was built for another metric (or cannot rank
                // more than it holds): a scan is exact and cheap enough.
                return scan(&guard, matching, answers, &mut ranking.scan);
            }
            drop(guard);
            let mut guard = write_lock(file);
            if d != guard.meta.dimensions as usize || guard.set.is_empty() {
                continue; // changed while no lock was held: answered above
            }
            if !guard.index_serves(search_type, &choice) {
                // The slots may have moved while no lock was held.
                let matches = among
                    .filter
                    .map(|f| self.matches(ino, &guard, f))
                    .transpose()?;
                let matching = matches.as_ref().map(|m| m.slots());
                match self.prepare_index(ino, file, &mut guard, search_type, &choice) {
                    Ok(Prepared::Ready) => {}
                    // Until the builder thread is done, the answer is exact.
                    Ok(Prepared::Building) => {
                        return scan(&guard, matching, answers, &mut ranking.scan)
                    }
                    Err(e) => {
                        guard.failed =
                            Some((choice.factory.clone(), search_type, guard.generation));
                        eprintln!(
                            "vexfs: vector file {ino}: index {:?}: {e}; answering by exact scan",
                            choice.factory
                        );
                        return scan(&guard, matching, answers, &mut ranking.scan);
                    }
                }
            }
        }
    }

    /// The index `file` wants, from its attributes; they are read again
    /// only when one changed or the file crossed the default-index size.
    pub(super) fn index_choice(&self, ino: u64, file: &VectorFile) -> Result<Arc<IndexChoice>> {
        let large = file.set.len() >= DEFAULT_EXACT_VECTORS_MAX;
        let dimensions = file.meta.dimensions;
        // Read before the attributes: a change after this makes what is
        // cached below stale, never the other way round.
        let epoch = self.vectors.xattr_epoch();
        if let Some(cached) = file
            .choice
            .lock()
            .as_ref()
            .filter(|c| c.epoch == epoch && c.large == large && c.dimensions == dimensions)
        {
            return Ok(Arc::clone(&cached.choice));
        }
        let factory = self.vector_xattr(ino, XATTR_INDEX)?;
        let params = self.vector_xattr(ino, XATTR_SEARCH)?;
        let choice = IndexChoice::resolve(
            factory.as_deref(),
            params.as_deref(),
            file.set.len(),
            dimensions,
        )
        .map_err(|e| einval(format!("user.vexfs.index / user.vexfs.search: {e}")))?;
        let choice = Arc::new(choice);
        *file.choice.lock() = Some(CachedChoice {
            epoch,
            large,
            dimensions,
            choice: Arc::clone(&choice),
        });
        Ok(choice)
    }

    /// `user.vexfs.status`: one `key=value` line each for the vectors, the
    /// index in memory (family, metric, rows it covers, tombstones), the
    /// build in progress and the index stored in the file.
    pub(crate) fn vector_status(&self, ino: u64) -> Result<Vec<u8>> {
        if self.vector_meta_item(ino)?.is_none() {
            return Err(Error::refused(libc::ENODATA, "not a vector file"));
        }
        let file = self.vector_file(ino)?;
        let file = read_lock(&file);
        let metric = |search_type: u32| match search_type {
            VEXFS_SEARCH_EUCLIDEAN => "euclidean",
            VEXFS_SEARCH_COSINE => "cosine",
            VEXFS_SEARCH_DOT_PRODUCT => "dot",
            _ => "none",
        };
        let current = file
            .index
            .as_ref()
            .filter(|_| file.index_generation == file.generation);
        let text = format!(
            "vectors={}\ndimensions={}\nindex={}\nmetric={}\nindexed={}\ntombstones={}\nbuilding={}\nstored_index={}\npayloads={}\n",
            file.set.len(),
            file.meta.dimensions,
            current.map_or("none", |i| i.factory.as_str()),
            current.map_or("none", |i| metric(i.search_type)),
            current.map_or(0, |i| i.covered),
            current.map_or(0, |i| i.tombstones()),
            file.building.as_ref().map_or("none", |b| b.factory.as_str()),
            if file.meta.index_bytes > 0 && file.meta.index_generation == file.generation {
                file.meta.index_spec.as_str()
            } else {
                "none"
            },
            file.payloads.len(),
        );
        Ok(text.into_bytes())
    }

    /// One of the `user.vexfs.*` attributes as text; None when unset.
    pub(super) fn vector_xattr(&self, ino: u64, name: &[u8]) -> Result<Option<String>> {
        match self.getxattr(ino, name) {
            Ok(value) if value.len() > INDEX_SPEC_BYTES_MAX => Err(einval(format!(
                "{}: {} bytes, over the maximum of {INDEX_SPEC_BYTES_MAX}",
                String::from_utf8_lossy(name),
                value.len()
            ))),
            Ok(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
            Err(e) if e.errno() == libc::ENODATA => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// setxattr of `user.vexfs.index` or `user.vexfs.search`: the value
    /// must parse, and fit the file (its dimensions, its index) when it is
    /// a vector file already. EINVAL names what is refused; other names pass.
    pub(crate) fn check_vector_xattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        if name != XATTR_INDEX && name != XATTR_SEARCH && name != XATTR_PAYLOAD_INDEX {
            return Ok(());
        }
        let what = String::from_utf8_lossy(name).into_owned();
        let refuse = |e: String| einval(format!("{what}: {e}"));
        let text = std::str::from_utf8(value).map_err(|_| refuse("not UTF-8 text".into()))?;
        if name == XATTR_PAYLOAD_INDEX {
            return parse_index_spec(text).map(drop).map_err(refuse);
        }
        let dimensions = self.vector_meta_item(ino)?.map(|meta| meta.dimensions);
        if name == XATTR_INDEX {
            let spec = spec::IndexSpec::parse(text).map_err(refuse)?;
            if let Some(dimensions) = dimensions {
                spec.check_dimensions(dimensions).map_err(refuse)?;
            }
            if let Some(params) = self.vector_xattr(ino, XATTR_SEARCH)? {
                if let Ok(params) = spec::SearchParams::parse(&params) {
                    params.check_for(&spec).map_err(|e| {
                        refuse(format!("the file's user.vexfs.search does not fit it: {e}"))
                    })?;
                }
            }
        } else {
            let params = spec::SearchParams::parse(text).map_err(refuse)?;
            if let Some(index) = self.vector_xattr(ino, XATTR_INDEX)? {
                if let Ok(spec) = spec::IndexSpec::parse(&index) {
                    params.check_for(&spec).map_err(refuse)?;
                }
            }
        }
        Ok(())
    }

    /// Makes `file.index` serve `search_type` under `choice`: the stored index
    /// when it matches, else a new build, here for a small file and by the
    /// builder thread for a large one.
    fn prepare_index(
        &self,
        ino: u64,
        shared: &Arc<RwLock<VectorFile>>,
        file: &mut VectorFile,
        search_type: u32,
        choice: &IndexChoice,
    ) -> std::result::Result<Prepared, String> {
        let d = file.meta.dimensions as usize;
        if let Some(index) = file
            .index
            .as_mut()
            .filter(|index| index.search_type == search_type && index.factory == choice.factory)
        {
            if file.index_generation == file.generation {
                // Only the search parameters changed.
                return index.set_params(&choice.params).map(|()| Prepared::Ready);
            }
        }
        let stored_matches = file.meta.index_bytes > 0
            && file.meta.index_generation == file.generation
            && file.meta.index_metric == search_type
            && file.meta.index_spec == choice.factory;
        if stored_matches && file.index.is_none() {
            match self.read_stored_index(ino, &file.meta, choice) {
                Ok(index) if index.covered == file.set.len() => {
                    file.index = Some(index);
                    file.index_generation = file.generation;
                    self.vectors.builder.huge_pages_later();
                    return Ok(Prepared::Ready);
                }
                Ok(_) => eprintln!("vexfs: vector file {ino}: stored index does not cover every vector; rebuilding"),
                Err(e) => eprintln!("vexfs: vector file {ino}: stored index unusable ({e}); rebuilding"),
            }
        }
        if file
            .building
            .as_ref()
            .is_some_and(|b| b.factory == choice.factory && b.search_type == search_type)
        {
            return Ok(Prepared::Building);
        }
        if !choice.is_flat() && file.set.len() > SYNC_BUILD_VECTORS_MAX {
            let build = Build::new(choice.factory.clone(), search_type);
            let job = Job {
                ino,
                file: shared.clone(),
                choice: choice.clone(),
                search_type,
                serial: build.serial,
            };
            let superseded = file.building.replace(build);
            if self.vectors.builder.submit(job) {
                return Ok(Prepared::Building);
            }
            file.building = superseded;
        }
        let index = VectorIndex::build(choice, file.set.rows(), d, search_type)?;
        file.index = Some(index);
        file.index_generation = file.generation;
        if !choice.is_flat() {
            self.vectors.builder.huge_pages_later();
        }
        if !choice.is_flat() {
            // Worth keeping: the next write-back stores it.
            file.rewrite = true;
        }
        Ok(Prepared::Ready)
    }

    fn read_stored_index(
        &self,
        ino: u64,
        meta: &VectorMeta,
        choice: &IndexChoice,
    ) -> std::result::Result<VectorIndex, String> {
        // Everything about the stored bytes is checked by us first: the
        // family (only what stored.rs can check is loaded), the size
        // (before it is read), the checksum, then every field.
        let spec = spec::IndexSpec::parse(&meta.index_spec)?;
        if !stored::loadable(&spec) {
            return Err(format!(
                "a stored {spec} index is not loaded, it is rebuilt"
            ));
        }
        let bytes_max = stored::stored_bytes_max(
            meta.dimensions as usize,
            meta.vector_count,
            meta.index_label_map,
        );
        if meta.index_bytes > bytes_max {
            return Err(format!(
                "{} bytes for {} vectors, more than an HNSW index of them takes ({bytes_max})",
                meta.index_bytes, meta.vector_count
            ));
        }
        let bytes = self
            .read(ino, meta.index_offset, meta.index_bytes as usize)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 != meta.index_bytes || crc32c::crc32c(&bytes) != meta.index_crc {
            return Err("checksum mismatch".into());
        }
        let (labels, faiss) = stored::check_stored(
            &bytes,
            meta.index_label_map,
            meta.dimensions as usize,
            meta.vector_count as usize,
            meta.index_metric == VEXFS_SEARCH_EUCLIDEAN,
        )?;
        let index = VectorIndex::from_bytes(
            faiss,
            meta.dimensions as usize,
            meta.index_metric,
            &meta.index_spec,
            &choice.params,
        )?;
        match labels {
            Some(labels) => index.with_labels(labels),
            None => Ok(index),
        }
    }
}
